"""Load a run directory and reply to text: the API behind `chat`, `reply` and your own scripts.

    from chatbot.bot import Bot
    bot = Bot.load("models/default")
    print(bot.reply("hello").text)
    bot.set("beam", "5")              # decoding settings can change at any time
    print(bot.reply("hello").candidates)

Decoding runs in NumPy from the saved weights, so loading takes well under a second and needs
no TensorFlow.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from chatbot.config import DECODE_STRATEGIES, DecodeConfig, RunConfig
from chatbot.errors import ChatbotError
from chatbot.models import ARCHS, arch_module
from chatbot.rundir import CONFIG, MODEL, VOCAB, check_run_dir
from chatbot.samplers import Sampler, get_sampler
from chatbot.text import Tokenizer
from chatbot.vocab import Vocabulary
from chatbot.weights import Weights, read_keras_weights


@dataclass(frozen=True)
class Candidate:
    text: str
    tokens: list[str]
    logprob: float  # sum of the log-probabilities of the reply's tokens and its <EOS>
    score: float  # what candidates are ranked by (beam search: length-normalized logprob)


@dataclass(frozen=True)
class Reply:
    text: str  # the best reply, detokenized
    tokens: list[str]  # its tokens
    unknown: list[str]  # prompt tokens not in the vocabulary (read as <UNK>)
    candidates: list[Candidate]  # best first; more than one with beam search and nbest > 1


@dataclass(frozen=True)
class AttentionMap:
    prompt: list[str]  # prompt tokens (columns)
    reply: list[str]  # reply tokens and <EOS> (rows)
    weights: np.ndarray  # (len(reply), len(prompt)); each row sums to 1


class Bot:
    def __init__(self, config: RunConfig, vocab: Vocabulary, weights: Weights):
        if config.model.arch not in ARCHS:
            raise ChatbotError(
                f"config.json names the architecture {config.model.arch!r}, which this chatbot "
                f"does not know ({', '.join(ARCHS)}); upgrade the chatbot package or retrain"
            )
        _check_shapes(config, vocab, weights)
        self.config = config
        self.vocab = vocab
        self.tokenizer = Tokenizer(lowercase=config.text.lowercase)
        try:
            self.engine = arch_module(config.model.arch).Engine(weights, config.model, vocab)
            self.engine.start([[vocab.unk_id]])  # a dry run: shapes that disagree fail here
        except (KeyError, ValueError, IndexError, TypeError) as exc:
            raise ChatbotError(
                f"the model's layers do not match its config.json (arch "
                f"{config.model.arch!r}, {config.model.num_layers} layer(s)): {exc!r}; the run "
                "directory mixes files from different runs; retrain the model"
            ) from None
        self.decode = dataclasses.replace(config.decode)
        self._sampler = make_sampler(self.decode)

    @classmethod
    def load(cls, run_dir: str | Path) -> Bot:
        run_dir = check_run_dir(run_dir)
        config = RunConfig.load(run_dir / CONFIG)
        vocab = Vocabulary.load(run_dir / VOCAB)
        try:
            return cls(config, vocab, read_keras_weights(run_dir / MODEL))
        except ChatbotError as exc:
            raise ChatbotError(f"{run_dir}: {exc}") from None

    # -- decoding settings ------------------------------------------------------------------

    def configure(self, **changes) -> None:
        """Changes decoding settings (DecodeConfig field names); invalid values change nothing."""
        decode = dataclasses.replace(self.decode, **changes)
        self._sampler = make_sampler(decode)  # raises ChatbotError before anything changes
        self.decode = decode

    def set(self, name: str, value: str) -> None:
        """`/set NAME VALUE` from the REPL: parses text, then configure()."""
        self.configure(**parse_setting(name, value, self.decode))

    # -- replies ----------------------------------------------------------------------------

    def reply(self, text: str) -> Reply:
        return self.reply_batch([text])[0]

    def reply_batch(self, texts: Sequence[str]) -> list[Reply]:
        """Replies to many prompts at once; an empty prompt gets an empty reply."""
        tokenized = [self.prompt_tokens(t) for t in texts]
        rows = [i for i, toks in enumerate(tokenized) if toks]
        found = self._sampler(
            self.engine, [self.vocab.encode(tokenized[i]) for i in rows], self.vocab,
            nbest=self.decode.nbest if self.decode.strategy == "beam" else 1,
        ) if rows else []
        by_row = dict(zip(rows, found))
        replies = []
        for i, toks in enumerate(tokenized):
            candidates = [self._candidate(c) for c in by_row.get(i, [])]
            best = candidates[0] if candidates else Candidate("", [], 0.0, 0.0)
            replies.append(Reply(best.text, best.tokens, self.vocab.unknown(toks), candidates))
        return replies

    def prompt_tokens(self, text: str) -> list[str]:
        """The tokens the model reads for `text` (truncated to max_len, as in training)."""
        return self.tokenizer.tokenize(text)[: self.config.data.max_len]

    def attention(self, text: str, reply_tokens: Sequence[str]) -> AttentionMap:
        """Where each reply token (and the final <EOS>) looked in the prompt."""
        prompt = self.prompt_tokens(text)
        if not prompt:
            raise ChatbotError("attention needs a non-empty prompt")
        ids = self.vocab.encode(reply_tokens)
        _, state = self.engine.start([self.vocab.encode(prompt)])
        if not isinstance(state, dict) or "attention" not in state:
            raise ChatbotError(
                f"this model ({self.config.model.arch}) has no attention; train one with "
                "'chatbot train --arch attention'"
            )
        rows = [state["attention"][0, : len(prompt)]]
        for token in ids:
            _, state = self.engine.step(np.array([token]), state)
            rows.append(state["attention"][0, : len(prompt)])
        return AttentionMap(list(prompt), [*reply_tokens, "<EOS>"], np.stack(rows))

    def _candidate(self, found) -> Candidate:
        tokens = self.vocab.decode(found.tokens)
        return Candidate(self.tokenizer.detokenize(tokens), tokens, found.logprob, found.score)


def _check_shapes(config: RunConfig, vocab: Vocabulary, weights: Weights) -> None:
    """config.json, vocab.json and model.keras must describe the same model."""
    embedding = weights.get("embedding", [None])[0]
    if embedding is None or embedding.shape[0] != len(vocab):
        found = "none" if embedding is None else embedding.shape[0]
        raise ChatbotError(
            f"the vocabulary has {len(vocab)} tokens but the model's embedding has {found} "
            "rows: vocab.json and model.keras come from different runs; retrain the model"
        )
    output = weights.get("time_distributed_dense", [None])[0]
    found = {"model.embedding_dim": embedding.shape[1],
             "model.hidden_dim": None if output is None else output.shape[0]}
    for name, value in found.items():
        expected = getattr(config.model, name.split(".")[1])
        if value != expected:
            raise ChatbotError(
                f"config.json says {name} = {expected!r} but model.keras has {value}: the files "
                "come from different runs or config.json was edited; retrain the model"
            )


def make_sampler(decode: DecodeConfig) -> Sampler:
    """The sampler a DecodeConfig describes; ChatbotError if a value is out of range."""
    if decode.strategy not in DECODE_STRATEGIES:
        raise ChatbotError(
            f"unknown strategy {decode.strategy!r}; choose one of: {', '.join(DECODE_STRATEGIES)}"
        )
    common = dict(max_len=decode.max_reply_len, min_len=decode.min_len,
                  allow_unk=decode.allow_unk, no_repeat_ngram=decode.no_repeat_ngram,
                  temperature=decode.temperature, seed=decode.seed)
    extra = {
        "beam": dict(width=decode.beam_width, length_penalty=decode.length_penalty),
        "top_k": dict(k=decode.top_k),
        "top_p": dict(p=decode.top_p),
    }.get(decode.strategy, {})
    if decode.strategy == "beam" and decode.nbest > decode.beam_width:
        raise ChatbotError(f"nbest ({decode.nbest}) cannot exceed the beam width "
                           f"({decode.beam_width}); raise the width with '/set beam N'")
    if decode.nbest < 1:
        raise ChatbotError(f"nbest must be at least 1, received {decode.nbest}")
    return get_sampler(decode.strategy, **common, **extra)


# REPL and CLI names -> (DecodeConfig field, parser). Some also pick the strategy they imply.
_SETTINGS = {
    "strategy": ("strategy", str),
    "beam": ("beam_width", int),
    "temperature": ("temperature", float),
    "top_k": ("top_k", int),
    "top_p": ("top_p", float),
    "no_repeat_ngram": ("no_repeat_ngram", int),
    "min_len": ("min_len", int),
    "max_len": ("max_reply_len", int),
    "length_penalty": ("length_penalty", float),
    "nbest": ("nbest", int),
    "seed": ("seed", int),
    "allow_unk": ("allow_unk", bool),
}
SETTING_NAMES = tuple(_SETTINGS)


def parse_setting(name: str, value: str, current: DecodeConfig) -> dict:
    """DecodeConfig changes for `/set NAME VALUE`, e.g. ("beam", "5") -> beam search, width 5."""
    name = name.lower().replace("-", "_")
    if name not in _SETTINGS:
        raise ChatbotError(f"unknown setting {name!r}; settings: {', '.join(SETTING_NAMES)}")
    field, kind = _SETTINGS[name]
    text = value.strip().lower()
    try:
        if kind is bool:
            if text not in ("on", "off", "true", "false", "1", "0", "yes", "no"):
                raise ValueError
            parsed = text in ("on", "true", "1", "yes")
        elif name == "seed" and text in ("none", "off"):
            parsed = None
        else:
            parsed = kind(text)
    except ValueError:
        expected = {int: "a whole number", float: "a number", bool: "on or off", str: "a word"}
        raise ChatbotError(f"{name} expects {expected[kind]}, received {value!r}") from None
    changes: dict = {field: parsed}
    if name == "beam":  # `/set beam 1` means greedy
        changes["strategy"] = "beam" if parsed > 1 else "greedy"
    elif name in ("top_k", "top_p"):
        changes["strategy"] = name
    elif name == "temperature" and current.strategy in ("greedy", "beam"):
        changes["strategy"] = "random"  # a temperature only matters when sampling
    elif name == "nbest" and parsed > 1:
        changes["strategy"] = "beam"
        changes["beam_width"] = max(current.beam_width, parsed)
    return changes
