"""Answer rates on known prompts, by language: exact, and for typing variants of each kind.

A prompt is answered when its reply equals one of its own references after the model's
tokenization and truncation (chatbot.evaluate). The bot's figures come from
`chatbot.evaluate.answer_rate` and `variant_answer_rates`; `reply_fn_rates` computes the same
figures, with the same variants, for any function that maps prompts to reply texts (the
closest-match baseline).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from chatbot.config import RunConfig
from chatbot.data.pairs import Pair, read_pairs, split_pairs
from chatbot.data.variants import KINDS, prompt_rng, typing_variants
from chatbot.decoding.bot import Bot
from chatbot.evaluate import answer_rate, variant_answer_rates
from chatbot.text.words import is_cjk

LANGUAGES = ("en", "zh")  # zh: a prompt with a CJK character; en: every other prompt
Tokens = tuple[str, ...]
ReplyFn = Callable[[Sequence[str]], list[str]]  # prompts -> reply texts
Rates = dict[str, Any]  # {"exact": counts, "variants": {kind: counts, "all": counts}, ...}


def language(text: str) -> str:
    return "zh" if any(is_cjk(ch) for ch in text) else "en"


def by_language(pairs: Sequence[Pair]) -> dict[str, list[Pair]]:
    """The pairs of each language (of their prompt), in order."""
    split: dict[str, list[Pair]] = {lang: [] for lang in LANGUAGES}
    for pair in pairs:
        split[language(pair.prompt)].append(pair)
    return split


def run_split(config: RunConfig, data: str | Path) -> tuple[list[Pair], list[Pair]]:
    """The run's own (training, validation) pairs of `data`: the first two steps of
    chatbot.training.prepare.prepare_data, without importing TensorFlow."""
    pairs = read_pairs(data, config.data.on_bad_lines).pairs
    return split_pairs(pairs, config.data.val_fraction, config.train.seed)


def variant_rows(pairs: Sequence[Pair], seed: int) -> list[tuple[str, str, str]]:
    """(kind, original prompt, variant) of every distinct prompt, as variant_answer_rates
    makes them: one variant of each kind that applies, chosen by `seed` and the prompt."""
    prompts = dict.fromkeys(p.prompt for p in pairs)
    return [(kind, prompt, variant) for prompt in prompts
            for kind, variant in typing_variants(prompt, prompt_rng(prompt, seed)).items()]


def latency_sample(pairs: Sequence[Pair], size: int, seed: int) -> list[str]:
    """A fixed sample of what people type to a bot that knows `pairs`: typing variants of its
    prompts (all kinds), drawn with `seed`."""
    variants = [variant for _, _, variant in variant_rows(pairs, seed)]
    return random.Random(seed).sample(variants, min(size, len(variants)))


# --- the rates -----------------------------------------------------------------------------------

def rates_by_language(measure: Callable[[list[Pair]], Rates], pairs: Sequence[Pair]
                      ) -> dict[str, Rates]:
    """`measure` on the pairs of each language, and both summed as "all"."""
    split = by_language(pairs)
    rates = {lang: measure(split[lang]) for lang in LANGUAGES if split[lang]}
    rates["all"] = _summed(list(rates.values()))
    return rates


def bot_rates(bot: Bot, pairs: list[Pair], seed: int) -> Rates:
    """The bot's exact and variant answer rates on `pairs`, as `chatbot eval` reports them."""
    exact = answer_rate(bot, pairs)
    variants = variant_answer_rates(bot, pairs, seed)
    missed = [{"kind": kind, **example} for kind, figures in variants.items()
              if isinstance(figures, dict) for example in figures.get("missed_examples", [])]
    return {"exact": _counts(exact), "variants": {kind: _counts(figures) for kind, figures
                                                  in variants.items() if kind != "seed"},
            "missed_examples": {"exact": exact["missed_examples"][:3], "variants": missed[:5]}}


def reply_fn_rates(reply: ReplyFn, tokenize: Callable[[str], Tokens], pairs: list[Pair],
                   seed: int) -> Rates:
    """The same figures as bot_rates for any `reply` function, with the same variants;
    `tokenize` is the model's tokenization and truncation, that replies are compared after."""
    references: dict[str, set[Tokens]] = {}
    for pair in pairs:
        references.setdefault(pair.prompt, set()).add(tokenize(pair.reply))
    prompts = list(references)
    replies = reply(prompts)
    exact = [tokenize(r) in references[p] for p, r in zip(prompts, replies)]
    rows = variant_rows(pairs, seed)
    variant_replies = reply([variant for _, _, variant in rows])
    hits = [tokenize(r) in references[p] for (_, p, _), r in zip(rows, variant_replies)]
    variants = {kind: _tally([hit for (k, _, _), hit in zip(rows, hits) if k == kind])
                for kind in KINDS if any(k == kind for k, _, _ in rows)}
    variants["all"] = _tally(hits)
    return {"exact": _tally(exact), "variants": variants, "missed_examples": {
        "exact": [{"prompt": p, "reply": r} for p, r, hit in zip(prompts, replies, exact)
                  if not hit][:3],
        "variants": [{"kind": kind, "prompt": variant, "reply": text} for (kind, _, variant),
                     text, hit in zip(rows, variant_replies, hits) if not hit][:5]}}


def _rate(answered: int, prompts: int) -> dict[str, Any]:
    return {"prompts": prompts, "answered": answered,
            "answer_rate": round(answered / prompts, 4) if prompts else None}


def _tally(hits: Sequence[bool]) -> dict[str, Any]:
    return _rate(sum(hits), len(hits))


def _counts(figures: dict[str, Any]) -> dict[str, Any]:
    return _rate(figures["answered"], figures["prompts"])


def _summed(rates: list[Rates]) -> Rates:
    """Counts of several languages added up (their prompts are distinct); no examples."""
    def add(parts: list[dict[str, Any]]) -> dict[str, Any]:
        return _rate(sum(p["answered"] for p in parts), sum(p["prompts"] for p in parts))

    kinds = [kind for kind in (*KINDS, "all") if any(kind in r["variants"] for r in rates)]
    return {"exact": add([r["exact"] for r in rates]),
            "variants": {kind: add([r["variants"][kind] for r in rates
                                    if kind in r["variants"]]) for kind in kinds}}
