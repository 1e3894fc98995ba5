"""Replies to prompts the model never saw: do they collapse into one reply, loop, or go generic?

Two sets of unseen prompts: the run's own validation split (prompts of the default data kept
out of training), and a held-out split of English-French pairs (../shared/data/fra-eng.tsv,
English prompt -> French reply, a proxy for open text) asked of a model that this benchmark
trains on the other pairs (see `FraSetup`).
"""

from __future__ import annotations

import math
import os
import random
import subprocess
import sys
from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chatbot.data.pairs import Pair, read_pairs
from chatbot.decoding.bot import Bot, Reply
from chatbot.evaluate import bleu_chrf, distinct_n, most_common_reply, same_reply_share
from chatbot.rundir import METRICS, read_json

GENERIC_SHARE = 0.01  # a reply given to at least this share of the prompts is generic ...
GENERIC_MIN_PROMPTS = 3  # ... and to at least this many prompts (two can share by chance)
LOOP_NGRAM = 3  # a reply that repeats an n-gram of this many tokens loops
BATCH = 256  # prompts per reply_batch call
DEFINITIONS = {
    "generic_reply_share": f"share of replies whose exact text the configuration gives to at "
                           f"least {GENERIC_SHARE:.0%} of the prompts and to at least "
                           f"{GENERIC_MIN_PROMPTS} prompts: a reply that does not depend on "
                           "its prompt (language-neutral, so it holds for French replies too)",
    "loop_share": f"share of replies that repeat a {LOOP_NGRAM}-token n-gram or reach "
                  "max_reply_len tokens (repeated_ngram_share, at_max_len_share: each part)",
    "most_common_reply_share": "share of replies equal to the most common reply, an honest "
                               "fallback too",
    "fallback_share": "share of replies that say the bot does not know (Reply.source == "
                      "'fallback', chatbot.decoding.fallback)",
    "most_common_answer_share": "share of replies equal to the most common reply that is not a "
                                "fallback: one answer given whatever the prompt (target <= 10%)",
    "distinct_1/2": "distinct n-grams / all n-grams of the reply tokens, counted within each "
                    "reply (chatbot.evaluate.distinct_n)",
    "exact_answer_rate": "share of prompts whose reply equals one of their references after "
                         "the model's tokenization (for open text, how often it gets the "
                         "single reference reply)",
    "chrf": "corpus chrF (sacrebleu) of the replies against all references of their prompt",
    "memory_reply_share": "share of replies that are the known reply of a similar training "
                          "prompt (Reply.source == 'memory')",
}


# --- the figures -------------------------------------------------------------------------------

def repeats_ngram(tokens: Sequence[str], n: int = LOOP_NGRAM) -> bool:
    """True when some n-gram occurs twice in `tokens` (overlaps count: "a a a a" for n=3)."""
    grams = [tuple(tokens[i: i + n]) for i in range(len(tokens) - n + 1)]
    return len(set(grams)) < len(grams)


def generic_replies(texts: Sequence[str]) -> dict[str, int]:
    """{reply: prompts that got it} of the generic replies (see DEFINITIONS), most given first."""
    least = max(GENERIC_MIN_PROMPTS, math.ceil(GENERIC_SHARE * len(texts)))
    return {text: n for text, n in Counter(texts).most_common() if n >= least}


def share(count: int, total: int) -> float:
    return round(count / total, 4) if total else 0.0


def figures(bot: Bot, prompts: Sequence[str], references: dict[str, list[str]]
            ) -> dict[str, Any]:
    """What the bot's current settings reply to `prompts`, each with its reference replies."""
    replies: list[Reply] = []
    for start in range(0, len(prompts), BATCH):
        replies += bot.reply_batch(prompts[start: start + BATCH])
    texts, tokens = [r.text for r in replies], [r.tokens for r in replies]
    answers = [r.text for r in replies if r.source != "fallback"]
    top_answer = most_common_reply(answers)  # "" when every reply is a fallback
    max_len = bot.decode.max_reply_len
    repeated = [repeats_ngram(t) for t in tokens]
    at_limit = [len(t) >= max_len for t in tokens]
    generic = generic_replies(texts)
    normalize = _normalizer(bot)
    expected = [{normalize(ref) for ref in references[p]} for p in prompts]
    _, chrf = bleu_chrf(texts, [sorted(refs) for refs in expected])
    return {
        "prompts": len(prompts),
        "most_common_reply": most_common_reply(texts),
        "most_common_reply_share": round(same_reply_share(texts), 4),
        "fallback_share": share(len(texts) - len(answers), len(texts)),
        "most_common_answer": top_answer,
        "most_common_answer_share": share(answers.count(top_answer) if answers else 0,
                                          len(texts)),
        "distinct_1": round(distinct_n(tokens, 1), 4),
        "distinct_2": round(distinct_n(tokens, 2), 4),
        "generic_reply_share": share(sum(generic.values()), len(texts)),
        "generic_replies": dict(list(generic.items())[:5]),
        "loop_share": share(sum(a or b for a, b in zip(repeated, at_limit)), len(texts)),
        "repeated_ngram_share": share(sum(repeated), len(texts)),
        "at_max_len_share": share(sum(at_limit), len(texts)),
        "mean_reply_tokens": round(sum(map(len, tokens)) / max(1, len(tokens)), 2),
        "empty_reply_share": share(sum(not t for t in texts), len(texts)),
        "exact_answer_rate": share(sum(normalize(t) in e for t, e in zip(texts, expected)),
                                   len(texts)),
        "chrf": round(chrf, 2),
        "memory_reply_share": share(sum(r.source == "memory" for r in replies), len(texts)),
        "examples": [{"prompt": p, "reply": t} for p, t in zip(prompts[:5], texts)],
    }


def _normalizer(bot: Bot):
    """Text as the model can write it: its tokens (lower-cased, truncated), detokenized."""
    tokenizer, max_len = bot.tokenizer, bot.config.data.max_len
    return lambda text: tokenizer.detokenize(tokenizer.tokenize(text)[:max_len])


def references_of(pairs: Sequence[Pair], leave_out: Collection[str] = ()
                  ) -> dict[str, list[str]]:
    """Each distinct prompt of `pairs` not in `leave_out` -> its replies, in order."""
    found: dict[str, list[str]] = {}
    for pair in pairs:
        if pair.prompt not in leave_out:
            found.setdefault(pair.prompt, []).append(pair.reply)
    return found


# --- the English-French model --------------------------------------------------------------------

@dataclass(frozen=True)
class FraSetup:
    """A model trained on English-French pairs, asked held-out English prompts."""

    path: str  # the TSV of English<TAB>French pairs
    work: str  # where the training TSV and the run directory go
    pairs: int = 10000  # training pairs (before the run's own validation split)
    prompts: int = 400  # held-out distinct English prompts
    seed: int = 1234  # the held-out split and the training seed
    preset: str = "default"  # `chatbot train --preset`
    epochs: int = 8  # with the default preset, about 5 minutes on 2 idle cores
    reuse: bool = False  # keep a finished run trained with the same settings

    @property
    def run_dir(self) -> Path:
        return Path(self.work) / (f"fra-{self.pairs}p-{self.prompts}h-seed{self.seed}-"
                                  f"{self.preset}-{self.epochs}e")


def fra_split(setup: FraSetup) -> tuple[list[Pair], list[Pair]]:
    """(training pairs, held-out pairs): held-out prompts are distinct English prompts drawn
    with the seed, and no training pair has one of them as its prompt."""
    pairs = read_pairs(setup.path, on_bad_lines="skip").pairs
    prompts = list(dict.fromkeys(p.prompt for p in pairs))
    rng = random.Random(setup.seed)
    rng.shuffle(prompts)
    held = set(prompts[: setup.prompts])
    rest = [p for p in pairs if p.prompt not in held]
    rng.shuffle(rest)
    train = sorted(rest[: setup.pairs], key=lambda p: p.line)
    return train, [p for p in pairs if p.prompt in held]


def train_fra(setup: FraSetup, train: Sequence[Pair]) -> Path:
    """Trains the English-French model with `chatbot train` in a subprocess (TensorFlow stays
    out of the benchmark's process); returns its run directory."""
    run = setup.run_dir
    run.parent.mkdir(parents=True, exist_ok=True)
    tsv = run.with_suffix(".tsv")
    tsv.write_text("".join(f"{p.prompt}\t{p.reply}\n" for p in train), encoding="utf-8")
    command = [sys.executable, "-m", "chatbot.cli", "train", "--data", str(tsv), "--out",
               str(run), "--preset", setup.preset, "--epochs", str(setup.epochs), "--seed",
               str(setup.seed), "--if-needed" if setup.reuse else "--overwrite"]
    print(f"bench: training the English-French model: {' '.join(command[2:])}",
          file=sys.stderr, flush=True)
    env = {"TF_CPP_MIN_LOG_LEVEL": "2", **os.environ}  # TensorFlow's start-up chatter
    done = subprocess.run(command, stdout=sys.stderr, env=env)
    if done.returncode != 0:
        raise SystemExit(f"bench: training the English-French model failed (exit "
                         f"{done.returncode})")
    return run


def train_seconds(run: Path) -> float | None:
    return read_json(run / METRICS).get("train_seconds") if (run / METRICS).exists() else None
