"""The figures `chatbot data check` reports, from one pass over any number of files.

    summary = summarize(["a.tsv", "b.jsonl.gz"], Tokenizer(), max_len=40)
    figures = summary.figures()
    figures["tokens_per_pair"] = summary.tokens_per_pair(TextConfig())
    print(format_summary(figures))

The pairs are streamed (chatbot.data.stream), so what the pass holds does not grow with the
corpus but for 8 bytes a distinct pair and 8 a distinct prompt (`Seen`: exact repeats are
dropped, as training drops them) and the token counter, which keeps at most TOKEN_CAP tokens:
past that the rarest are dropped and the vocabulary figures become estimates, marked as such.
Lengths are kept as histograms, so their percentiles are exact. The sentencepiece figures come
from a model learned from a seeded sample of SAMPLE_PAIRS pairs, and measured on it.

Pure Python and NumPy (no TensorFlow), so `chatbot data check` starts at once.
"""

from __future__ import annotations

import dataclasses
import math
import random
from bisect import bisect_right
from collections import Counter
from collections.abc import Sequence
from itertools import accumulate, islice
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from chatbot.data.dialogue import is_conversation_file
from chatbot.data.pairs import Pair, nothing_found
from chatbot.data.stream import Seen, StreamReport, digest, pair_key, stream_pairs
from chatbot.errors import ChatbotError
from chatbot.text.tokenizer import train_tokenizer
from chatbot.text.words import TextTokenizer

if TYPE_CHECKING:
    from chatbot.text.tokenizer import TextConfig

TOKEN_CAP = 2_000_000  # distinct tokens counted exactly; past it the rarest are dropped
SAMPLE_PAIRS = 20_000  # pairs that sentencepiece learns its pieces from, and is measured on
SHOWN = 10  # long lines and bad lines listed in the report; the rest are counted
BATCH = 4096  # pairs looked up in the `Seen` sets at a time


class Lengths:
    """A histogram of token counts: exact percentiles, in memory that grows with the longest
    count, not with how many there are."""

    def __init__(self, counts: dict[int, int] | None = None):
        self.counts: Counter[int] = Counter(counts or {})

    def add(self, value: int) -> None:
        self.counts[value] += 1

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def mean(self) -> float:
        return sum(v * n for v, n in self.counts.items()) / self.total

    def percentiles(self) -> dict[str, int]:
        """p50, p90, p99 and max: the value at index int(q * n) of the sorted values."""
        values = sorted(self.counts)
        ends = list(accumulate(self.counts[v] for v in values))  # ends[i]: values <= values[i]
        n = ends[-1]
        pick = lambda q: values[bisect_right(ends, min(n - 1, int(q * n)))]  # noqa: E731
        return {"p50": pick(0.5), "p90": pick(0.9), "p99": pick(0.99), "max": values[-1]}


class TokenCounter:
    """How often each token was seen, in at most `cap` entries. Past the cap the rarest half is
    dropped and only counted: a dropped token seen again is counted anew, so from then on the
    vocabulary and the tokens seen once are upper bounds, not exact."""

    def __init__(self, cap: int = TOKEN_CAP):
        if cap < 2:
            raise ValueError(f"token_cap must be at least 2, received {cap}")
        self.cap = cap
        self.counts: Counter[str] = Counter()
        self.dropped = 0  # entries dropped
        self.dropped_once = 0  # of them, tokens seen once when dropped

    def update(self, tokens: Sequence[str]) -> None:
        self.counts.update(tokens)
        if len(self.counts) > self.cap:
            self._prune()

    def _prune(self) -> None:
        values = np.fromiter(self.counts.values(), dtype=np.int64, count=len(self.counts))
        keep = self.cap // 2
        # The (keep + 1)-th largest count: the tokens seen more often than it are kept.
        threshold = np.partition(values, len(values) - keep - 1)[len(values) - keep - 1]
        kept = Counter({t: c for t, c in self.counts.items() if c > threshold})
        self.dropped += len(self.counts) - len(kept)
        self.dropped_once += int((values == 1).sum())  # threshold >= 1: every 1 is dropped
        self.counts = kept

    @property
    def approximate(self) -> bool:
        return self.dropped > 0

    def vocabulary(self) -> int:
        return len(self.counts) + self.dropped

    def seen_once(self) -> int:
        return sum(1 for c in self.counts.values() if c == 1) + self.dropped_once


class Reservoir:
    """A uniform sample of at most `size` of the items added, the same for the same seed:
    reservoir sampling by Li's Algorithm L, which draws how many items to skip before the next
    one it keeps, so about size * (1 + log(seen / size)) random numbers in all, not one per
    item (`data check` and `data prepare` sample millions of pairs)."""

    def __init__(self, size: int, seed: int = 0):
        self.size, self.seen = size, 0
        self.items: list = []
        self._rng = random.Random(seed)
        self._weight = self._draw()
        self._next = size + self._skip()  # the 0-based place of the next item kept

    def add(self, item) -> None:
        self.seen += 1
        if len(self.items) < self.size:
            self.items.append(item)
        elif self.size and self.seen - 1 == self._next:
            self.items[self._rng.randrange(self.size)] = item
            self._weight *= self._draw()
            self._next += 1 + self._skip()

    def _draw(self) -> float:
        return math.exp(math.log(1.0 - self._rng.random()) / max(self.size, 1))

    def _skip(self) -> int:
        if self._weight >= 1.0:  # (rounding, or a sample of 0) keep the next item
            return 0
        return math.floor(math.log(1.0 - self._rng.random()) / math.log1p(-self._weight))


class Summary:
    """What one pass over the pairs accumulates for `chatbot data check`."""

    def __init__(self, report: StreamReport, tokenizer: TextTokenizer, max_len: int,
                 token_cap: int = TOKEN_CAP, sample_pairs: int = SAMPLE_PAIRS, seed: int = 0):
        self.report, self.tokenizer, self.max_len = report, tokenizer, max_len
        self.seen_pairs, self.seen_prompts = Seen(), Seen()
        self.pairs = 0  # counted: exact repeats left out
        self.duplicates = 0
        self.prompt_lengths, self.reply_lengths = Lengths(), Lengths()
        self.pair_lengths = Lengths()  # prompt and reply tokens together
        self.tokens = TokenCounter(token_cap)
        self.too_long = 0  # pairs with a side longer than max_len (a conversation's, each)
        self.too_long_lines: list[tuple[str, int]] = []  # the first SHOWN + 1: (file, line)
        self.with_context = 0
        self.sample = Reservoir(sample_pairs, seed)  # (prompt, reply)

    def add(self, batch: Sequence[tuple[int, Pair]]) -> None:
        """Counts the pairs of `batch` ((file index, pair), in the files' order) that are not
        exact repeats of an earlier pair."""
        repeated = self.seen_pairs.add_many([pair_key(pair) for _, pair in batch])
        fresh = [item for item, again in zip(batch, repeated) if not again]
        self.duplicates += len(batch) - len(fresh)
        self.seen_prompts.add_many([digest(pair.prompt) for _, pair in fresh])
        for file, pair in fresh:
            self._count(self.report.paths[file], pair)

    def _count(self, file: str, pair: Pair) -> None:
        prompt, reply = self.tokenizer.tokenize(pair.prompt), self.tokenizer.tokenize(pair.reply)
        self.pairs += 1
        self.tokens.update(prompt + reply)
        self.prompt_lengths.add(len(prompt))
        self.reply_lengths.add(len(reply))
        self.pair_lengths.add(len(prompt) + len(reply))
        if len(prompt) > self.max_len or len(reply) > self.max_len:
            self.too_long += 1
            where = (file, pair.line)  # a conversation's pairs share its line: listed once
            if len(self.too_long_lines) <= SHOWN and where not in self.too_long_lines:
                self.too_long_lines.append(where)
        self.with_context += bool(pair.context)
        self.sample.add((pair.prompt, pair.reply))

    def figures(self) -> dict:
        """The figures `chatbot data check` prints, as a dict (format_summary prints it)."""
        report = self.report
        summary = {
            "files": list(report.paths),
            "pairs": self.pairs,
            "distinct_prompts": len(self.seen_prompts),
            "bad_lines": report.bad_count,
            "first_bad_lines": report.bad_lines[:SHOWN],  # (file, line, reason)
            "blank_lines": report.blank_lines,
            "duplicates": self.duplicates,
            "prompt_tokens": self.prompt_lengths.percentiles(),
            "reply_tokens": self.reply_lengths.percentiles(),
            "vocabulary": self.tokens.vocabulary(),
            "tokens_seen_once": self.tokens.seen_once(),
            "vocabulary_approximate": self.tokens.approximate,
            "token_cap": self.tokens.cap,
            "max_len": self.max_len,
            "fit_share": 1 - self.too_long / self.pairs,
            "too_long_pairs": self.too_long,
            "too_long_lines": list(self.too_long_lines),  # the first SHOWN + 1 lines
        }
        if report.conversations:  # chat JSONL
            turns = Lengths(report.turns).percentiles()
            summary["conversations"] = report.conversations
            summary["turns"] = {k: turns[k] for k in ("p50", "p90", "max")}
            summary["context_share"] = self.with_context / self.pairs
        return summary

    def tokens_per_pair(self, text: TextConfig) -> dict[str, dict | str]:
        """Prompt and reply tokens of a pair (mean and percentiles), by tokenizer name: the
        summary's own tokenizer ("word") over every pair; sentencepiece (`text`'s settings)
        learned from the sample, and measured on it; or why no pieces could be learned."""
        word = {"mean": self.pair_lengths.mean(), **self.pair_lengths.percentiles()}
        sample = self.sample.items
        settings = dataclasses.replace(text, tokenizer="sentencepiece")
        try:
            pieces = train_tokenizer(settings, (t for pair in sample for t in pair))
        except ChatbotError as exc:
            return {"word": word, "sentencepiece": str(exc)}
        lengths = Lengths()
        for prompt, reply in sample:
            lengths.add(len(pieces.tokenize(prompt)) + len(pieces.tokenize(reply)))
        figures: dict = {"mean": lengths.mean(), **lengths.percentiles()}
        if len(sample) < self.pairs:
            figures["sample"] = (len(sample), self.pairs)
        name = f"sentencepiece ({text.subword_model}, {len(pieces.pieces)} pieces)"
        return {"word": word, name: figures}


def summarize(paths: Sequence[str | Path], tokenizer: TextTokenizer, max_len: int,
              on_bad_lines: str = "skip", *, token_cap: int = TOKEN_CAP,
              sample_pairs: int = SAMPLE_PAIRS, seed: int = 0) -> Summary:
    """One streamed pass over the pairs of `paths` (TSV or chat JSONL, plain or .gz): exact
    repeats dropped, bad lines skipped and counted (or, with on_bad_lines="error", the first
    raises ChatbotError naming FILE:LINE). Raises ChatbotError if there are no pairs at all."""
    if not paths:
        raise ChatbotError("no data files given; name one or more .tsv or .jsonl files")
    report = StreamReport([str(Path(p)) for p in paths])
    summary = Summary(report, tokenizer, max_len, token_cap, sample_pairs, seed)
    stream = stream_pairs(paths, on_bad_lines, report)
    while batch := list(islice(stream, BATCH)):
        summary.add(batch)
    if not summary.pairs:
        kind = is_conversation_file(report.paths[0].removesuffix(".gz")) if len(paths) == 1 \
            else None
        raise ChatbotError(nothing_found(", ".join(report.paths), report.bad_count, kind))
    return summary


def format_summary(s: dict) -> str:
    """The report of `chatbot data check`: the figures of Summary.figures(), with
    "tokens_per_pair" (Summary.tokens_per_pair) if it was added."""
    files = s["files"]
    lines = [f"{'file' if len(files) == 1 else 'files':<16}{', '.join(files)}",
             f"pairs           {s['pairs']} ({s['distinct_prompts']} distinct prompts)"]
    if "conversations" in s:  # chat JSONL
        q = s["turns"]
        lines += [
            f"conversations   {s['conversations']}",
            f"turns           p50 {q['p50']}  p90 {q['p90']}  max {q['max']} per conversation "
            "(system turns left out)",
            f"with context    {s['context_share']:.1%} of pairs (earlier turns before the prompt)",
        ]
    lines += [
        f"bad lines       {s['bad_lines']}",
        f"duplicates      {s['duplicates']} (dropped)",
        f"blank lines     {s['blank_lines']}",
    ]
    for side in ("prompt", "reply"):
        q = s[f"{side}_tokens"]
        lines.append(
            f"{side + ' tokens':<16}p50 {q['p50']}  p90 {q['p90']}  p99 {q['p99']}  max {q['max']}"
        )
    lines += _tokens_per_pair_lines(s.get("tokens_per_pair", {}))
    lines += _vocabulary_lines(s)
    lines.append(f"fit max_len={s['max_len']:<4}{s['fit_share']:.1%} of pairs" + (
        f" ({s['too_long_pairs']} truncated when training)" if s["too_long_pairs"] else ""))
    if s["too_long_lines"]:
        where = [str(line) if len(files) == 1 else f"{file}:{line}"
                 for file, line in s["too_long_lines"]]
        more = " ..." if len(where) > SHOWN else ""
        lines.append(f"  longer lines  {', '.join(where[:SHOWN])}{more}")
    for file, number, reason in s["first_bad_lines"][:SHOWN]:
        lines.append(f"  {file}:{number}: {reason}")
    if s["bad_lines"] > SHOWN:
        lines.append(f"  ... and {s['bad_lines'] - SHOWN} more bad lines")
    return "\n".join(lines)


def _tokens_per_pair_lines(per_pair: dict[str, dict | str]) -> list[str]:
    width = max(map(len, per_pair), default=0)
    lines = []
    for i, (name, q) in enumerate(per_pair.items()):
        figures = q if isinstance(q, str) else (f"mean {q['mean']:.1f}  p50 {q['p50']}  p90 "
                                                f"{q['p90']}  p99 {q['p99']}  max {q['max']}")
        if isinstance(q, dict) and "sample" in q:
            figures += (f"  (learned from and measured on a sample of {q['sample'][0]} "
                        f"of the {q['sample'][1]} pairs)")
        lines.append(f"{'' if i else 'tokens per pair':<16}{name:<{width}}  {figures}")
    return lines


def _vocabulary_lines(s: dict) -> list[str]:
    if not s["vocabulary_approximate"]:
        return [f"vocabulary      {s['vocabulary']} distinct tokens "
                f"({s['tokens_seen_once']} seen once)"]
    return [f"vocabulary      at most {s['vocabulary']} distinct tokens (at most "
            f"{s['tokens_seen_once']} seen once)",
            f"{'':16}(estimates: past {s['token_cap']} distinct tokens the count dropped the "
            "rarest, and a dropped token seen again was counted anew)"]
