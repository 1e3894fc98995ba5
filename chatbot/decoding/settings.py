"""The decoding settings, declared once: each DecodeConfig field carries its user-facing name,
range, help and the order it applies in, and everything that reads a setting is made from it.

    field              name (/set, API, --flag)   range
    max_reply_len      max_len                    1 .. 4096      applied first
    beam_width         beam                       1 .. 256       applied last (picks beam search)
    ...

`chatbot chat`/`reply`/`serve` make their `--name` flags from this table (chatbot.cli), the REPL's
`/set NAME VALUE` parses with `parse_setting`, the HTTP API reads the same names as JSON fields
(chatbot.serving.completions), and `config.json` is checked against the same ranges when it loads. A
value out of range is refused by `check_decode` with a message that names the setting, its range and
what was received, before anything changes.

Standard library only: the CLI builds its flags without loading a model.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from chatbot.errors import ChatbotError
from chatbot.fields import TYPES, kind_of, setting, valid

# The decoding strategies (chatbot.decoding.samplers.SAMPLERS implements one class per name).
STRATEGIES = ("greedy", "beam", "random", "top_k", "top_p")
DETERMINISTIC = ("greedy", "beam")  # the strategies whose reply a seed does not change
BOOLEAN_WORDS = {"on": True, "off": False, "true": True, "false": False, "1": True, "0": False,
                 "yes": True, "no": False}


@dataclass
class DecodeConfig:
    strategy: str = setting("greedy", "greedy, beam, random (temperature only), top_k or top_p",
                            choices=STRATEGIES)
    max_reply_len: int = setting(40, "at most this many reply tokens", name="max_len",
                                 low=1, high=4096, order=0,
                                 openai=("max_tokens", "max_completion_tokens"))
    min_len: int = setting(0, "at least this many reply tokens (<EOS> is not allowed before)",
                           low=0, high=4096)
    beam_width: int = setting(5, "beam search with this width (1 = greedy)", name="beam",
                              low=1, high=256, order=2)
    length_penalty: float = setting(1.0, "beam scores are logprob / length ** this (0: logprob "
                                         "alone)", low=0, high=5)
    nbest: int = setting(1, "show the N best candidates (beam search)", low=1, high=256, order=2)
    temperature: float = setting(1.0, "sample with this temperature (<1 is bolder)",
                                 low=0.001, high=100, openai=("temperature",))
    top_k: int = setting(10, "sample among the K most probable tokens", low=1, high=100_000)
    top_p: float = setting(0.9, "sample among the fewest tokens reaching probability P",
                           low=0, high=1, low_open=True, openai=("top_p",))
    no_repeat_ngram: int = setting(0, "never repeat an n-gram of this size (0: off)",
                                   low=0, high=100)
    loop_guard: int = setting(3, "a 3-gram may occur at most this often in a reply (0: off)",
                              low=0, high=100)
    allow_unk: bool = setting(False, "on or off: whether <UNK> may be generated")
    seed: int | None = setting(None, "seed for reproducible sampling (none: random)",
                               low=0, high=2**63 - 1, openai=("seed",))
    # Reranking (chatbot/decoding/rerank.py): the model scores whole candidate replies.
    mmi: float = setting(0.0, "rerank candidates by MMI with this anti-language-model weight "
                              "(0: off; > 0 demotes generic replies)", low=0, high=10)
    retrieval: bool = setting(True, "on or off: let the replies of similar known prompts "
                                    "compete (greedy and beam)")
    retrieval_k: int = setting(3, "known prompts considered by retrieval", low=1, high=100)
    retrieval_min_similarity: float = setting(
        0.4, "the n-gram similarity a known prompt needs to join", name="similarity",
        low=0, high=1)
    closest_first: bool = setting(True, "on or off: say one of the closest known prompt's "
                                        "replies, the model choosing among them (off: the "
                                        "model's scores choose among every candidate)")
    retrieval_weight: float = setting(5.0, "bonus of a known reply per unit of similarity, in "
                                           "nats per token", low=0, high=100)
    # Honest replies (chatbot.decoding.policy.decide): say so when the bot does not know.
    fallback: bool = setting(True, "on or off: say that the bot does not know when a reply's "
                                   "confidence is below min_confidence, two known prompts are "
                                   "as close with different replies, or no word is known")
    # Chosen by bench/choose.py on bench/ood/dev.txt and typing variants (seed 11) of the
    # default data (bench/choose.json), never on what bench-honest reports.
    min_confidence: float = setting(0.4, "the confidence (0 to 1) a reply needs; below it, "
                                         "the fallback", low=0, high=1)
    ambiguity: float = setting(0.05, "two closest known prompts within this similarity of "
                                     "each other, with different replies: the fallback (0: off)",
                               low=0, high=1)
    truecase: bool = setting(True, "on or off: write generated words with the case the known "
                                   "replies use, and capitals at sentence starts (a "
                                   "lower-casing tokenizer drops case)")
    context: bool = setting(True, "on or off: a context model reads the conversation's "
                                  "earlier turns (off: the prompt alone)")
    spelling: bool = setting(True, "on or off: read an unknown word as the known word one "
                                   "typo away (word tokenizer)")


@dataclass(frozen=True)
class Setting:
    """One row of the table: a DecodeConfig field as users see it."""

    name: str  # what `/set`, the API and `--name` call it
    field: str  # the DecodeConfig field
    kind: type  # int, float, bool or str
    optional: bool  # None is a value (seed)
    help: str
    low: float | None
    high: float | None
    low_open: bool
    choices: tuple
    order: int
    openai: tuple[str, ...]  # the OpenAI request fields that set it too (chatbot.serving)

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def metavar(self) -> str:
        """How a value is written, for the CLI's help."""
        if self.kind is bool:
            return "on|off"
        if self.choices:
            return "|".join(self.choices)
        return ("N" if self.kind is int else "X") + ("|none" if self.optional else "")

    def expected(self) -> str:
        """What a valid value looks like, for error messages."""
        if self.kind is bool:
            return "on or off"
        if self.choices:
            return f"one of: {', '.join(self.choices)}"
        what = "a whole number" if self.kind is int else "a number"
        if self.low is not None and self.high is not None:
            low = f"{self.low:g}{' (excluded)' if self.low_open else ''}"
            what += f" from {low} to {self.high:g}"
        if self.optional:
            what += ", or none"
        return what

    def check(self, value: Any, label: str | None = None) -> None:
        """ChatbotError unless `value` is a valid value of this setting (named `label`, by
        default its name, with its field's name where they differ)."""
        if not valid(FIELDS[self.field], value):  # the one rule of chatbot.fields
            shown = repr(value) if not isinstance(value, str) else repr(value[:40])
            label = label or (self.name if self.name == self.field else
                              f"{self.name} ({self.field})")
            raise ChatbotError(f"{label} must be {self.expected()}, received {shown}")


FIELDS = {f.name: f for f in dataclasses.fields(DecodeConfig)}
SETTINGS: dict[str, Setting] = {}  # by name, in DecodeConfig's order
for _f in dataclasses.fields(DecodeConfig):
    _kind_, _optional = kind_of(_f.type)
    _meta = _f.metadata
    SETTINGS[_meta["name"] or _f.name] = Setting(
        _meta["name"] or _f.name, _f.name, TYPES[_kind_], _optional, _meta["help"], _meta["low"],
        _meta["high"], _meta["low_open"], _meta["choices"], _meta["order"], _meta["openai"])
BY_FIELD = {s.field: s for s in SETTINGS.values()}
# OpenAI's request fields that set one of ours: {field: setting name}. Their own ranges and
# rules (temperature 0 means greedy, top_p applies below 1) are chatbot.serving.completions'.
OPENAI = {field: s.name for s in SETTINGS.values() for field in s.openai}
SETTING_NAMES = tuple(SETTINGS)


def check_decode(decode: DecodeConfig, by_field: bool = False) -> None:
    """ChatbotError naming the first setting out of its range (by its field name with
    `by_field`, as config.json spells it), or two that disagree."""
    for s in SETTINGS.values():
        s.check(getattr(decode, s.field), s.field if by_field else None)
    if decode.min_len > decode.max_reply_len:
        raise ChatbotError(f"min_len ({decode.min_len}) cannot exceed max_len "
                           f"({decode.max_reply_len})")
    if decode.strategy == "beam" and decode.nbest > decode.beam_width:
        raise ChatbotError(f"nbest ({decode.nbest}) cannot exceed the beam width "
                           f"({decode.beam_width}); raise the width with '/set beam N'")


def parse_value(name: str, text: str) -> Any:
    """The value of setting `name` that `text` spells (as `/set NAME TEXT` reads it)."""
    s = SETTINGS[name]
    word = text.strip().lower()
    try:
        if s.kind is bool:
            return BOOLEAN_WORDS[word]
        if s.optional and word in ("none", "off"):
            return None
        return s.kind(word)
    except (KeyError, ValueError, OverflowError):
        raise ChatbotError(f"{name} expects {s.expected()}, received {text[:40]!r}") from None


def parse_setting(name: str, value: str, current: DecodeConfig) -> dict:
    """DecodeConfig changes for `/set NAME VALUE`, e.g. ("beam", "5") -> beam search, width 5.
    Some settings also pick the strategy they imply."""
    name = name.lower().replace("-", "_")
    if name not in SETTINGS:
        raise ChatbotError(f"unknown setting {name!r}; settings: {', '.join(SETTING_NAMES)}")
    parsed = parse_value(name, value)
    SETTINGS[name].check(parsed, label=name)
    changes: dict = {SETTINGS[name].field: parsed}
    if name == "beam":  # `/set beam 1` means greedy
        changes["strategy"] = "beam" if parsed > 1 else "greedy"
    elif name in ("top_k", "top_p"):
        changes["strategy"] = name
    elif name == "temperature" and current.strategy in DETERMINISTIC:
        changes["strategy"] = "random"  # a temperature only matters when sampling
    elif name == "nbest" and parsed > 1:
        changes["strategy"] = "beam"
        changes["beam_width"] = max(current.beam_width, parsed)
    return changes


def in_order(names) -> list[str]:
    """Setting names in the order their changes apply: max_len first (min_len is checked
    against it), beam and nbest last (beam search overrides a sampling strategy)."""
    return sorted(names, key=lambda n: SETTINGS[n].order)
