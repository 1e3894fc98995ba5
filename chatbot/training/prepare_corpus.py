"""`chatbot data prepare`: stream a corpus once into shards a run trains from, in bounded memory.

    files (TSV, chat JSONL, gzip) -> pairs, line by line (chatbot.data.stream)
      -> exact repeats dropped (8 bytes a pair), each pair to the training or validation side
         by a hash of its prompt
      -> tokens -> token numbers, counted (the word vocabulary is made from the counts at the
         end; a sentencepiece model is learned first from a seeded sample of the texts)
      -> records in shards (chatbot.training.shards), with `noise_copies` noisy copies of each
         training prompt (typing noise, chatbot.data.noise); `chatbot data prepare` writes
         none by default, and a run draws them in the stream (chatbot.training.stream_noise)
      -> the most frequent prompts, for the bot's memory; a sample of each side, to measure
      -> manifest.json, last

A prepare that is killed leaves no manifest, and the directory is not used; run it again and
it starts over, removing what the killed one wrote. `load_prepared` (chatbot.training.train's
way in) reads the directory back as the `Prepared` of a TSV, with streamed batches.
"""

from __future__ import annotations

import json
import random
import shutil
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np

from chatbot.config import RunConfig
from chatbot.data.frequent import FrequentPrompts
from chatbot.data.pairs import Pair
from chatbot.data.stream import Seen, StreamReport, stream_pairs
from chatbot.errors import ChatbotError
from chatbot.rundir import TOKENIZER, VOCAB, atomic_write_text
from chatbot.text.subword import SubwordTokenizer
from chatbot.text.tokenizer import train_tokenizer
from chatbot.text.vocab import SPECIALS, Vocabulary
from chatbot.text.words import Tokenizer
from chatbot.training.prepare_tokens import Helper, Read
from chatbot.training.shards import (
    MANIFEST,
    MEMORY_PAIRS,
    REMAP,
    SPLITS,
    ShardWriter,
    encode_record,
    write_manifest,
)

SHARD_SIZE = 100_000  # examples per shard
MEMORY_CAP = 20_000  # prompts the bot knows by heart (the most frequent): see bench/scale.json
SUBWORD_SAMPLE = 200_000  # texts a sentencepiece model learns from, sampled
MEASURE_SAMPLE = 2_000  # pairs of each side kept to measure the run with
MAX_TOKEN_TYPES = 2_000_000  # distinct tokens numbered; rarer new ones are read as <UNK>
CHUNK = 4096  # pairs whose repeats are looked up together
NOISE_CHUNK = 1024  # training pairs whose noisy copies are drawn together
COUNT_BATCH = 1 << 16  # training tokens counted together
SAMPLES = {"train": "sample-train.jsonl", "validation": "sample-validation.jsonl"}


class _Numbers:
    """Token -> number in order of first appearance, with counts of the training side."""

    def __init__(self):
        self.index: dict[str, int] = {}
        self.counted: Counter[int] = Counter()  # number -> training occurrences
        self.uncounted: list[int] = []  # training numbers not yet in `counted`
        self.overflow = 0  # tokens met after MAX_TOKEN_TYPES: numbered as <UNK>

    def __call__(self, tokens: Sequence[str], count: bool) -> list[int]:
        out = list(map(self.index.get, tokens))
        if None in out:  # new tokens: numbered here
            out = [self._new(token) if n is None else n for token, n in zip(tokens, out)]
        if count:  # counted many texts at a time: Counter counts an iterable in C
            self.uncounted += out
            if len(self.uncounted) >= COUNT_BATCH:
                self._count()
        return out

    def _count(self) -> None:
        self.counted.update(self.uncounted)
        self.uncounted = []

    def _new(self, token: str) -> int:
        n = self.index.get(token)  # met earlier in the same text
        if n is None:
            if len(self.index) >= MAX_TOKEN_TYPES:
                self.overflow += 1
                return MAX_TOKEN_TYPES  # remap's last entry: <UNK>
            n = self.index[token] = len(self.index)
        return n

    @property
    def counts(self) -> list[int]:
        """Each numbered token's training count, by number."""
        self._count()
        return [self.counted[n] for n in range(len(self.index))]


def prepare_corpus(paths: Sequence[str | Path], out: str | Path, config: RunConfig, *,
                   shard_size: int = SHARD_SIZE, memory_cap: int = MEMORY_CAP,
                   overwrite: bool = False, log=print, workers: int | None = None
                   ) -> dict[str, Any]:
    """Writes the prepared directory `out` from `paths` with `config`'s text, data and noise
    settings; returns its manifest. `workers`: 1 for a second process that reads the pairs and
    draws the noise, 0 for none (chatbot.training.prepare_tokens; None: 1 where there is a
    processor to spare)."""
    if config.data.context_turns != 1:
        raise ChatbotError("prepared data holds single turns; use --context-turns 1, or train "
                           "on the JSONL file itself")
    out = Path(out)
    _claim(out, overwrite, log)
    subword = config.text.tokenizer == "sentencepiece"
    tokenizer = _subword(paths, config, log) if subword else Tokenizer(config.text.lowercase)
    vocab = (Vocabulary([*SPECIALS, *tokenizer.pieces]) if subword else None)
    numbers = None if subword else _Numbers()
    state = _Pass(out, config, shard_size, memory_cap)
    report = StreamReport([str(p) for p in paths])
    chunks = _chunks(stream_pairs(paths, config.data.on_bad_lines, report), CHUNK)
    # One token more than is kept tells a text that is cut, without reading all of it.
    with Helper(tokenizer, config.data.max_len + 1, config.data.val_fraction,
                config.train.seed, workers) as helper:
        for chunk, read in helper.tokenized(chunks):
            state.add(chunk, read, helper, numbers, vocab)
        state.flush_noise(helper)
        state.write_noise(numbers, vocab)
    for writer in state.writers.values():
        writer.close()
    if numbers is not None:
        vocab = Vocabulary.from_counts(Counter(dict(zip(numbers.index, numbers.counts))),
                                       config.data.min_count, config.data.max_vocab)
        remap = np.asarray([vocab.index.get(t, vocab.unk_id) for t in numbers.index] +
                           [vocab.unk_id], dtype=np.int32)  # the last: the overflow's
        np.save(out / REMAP, remap)
    else:
        tokenizer.save(out / TOKENIZER)
    vocab.save(out / VOCAB)
    raw = state.manifest(paths, report, vocab, numbers)
    write_manifest(out, raw)
    return raw


class _Pass:
    """Everything the one pass over the pairs keeps, bounded."""

    def __init__(self, out: Path, config: RunConfig, shard_size: int, memory_cap: int):
        self.out, self.config = out, config
        self.writers = {split: ShardWriter(out, split, shard_size) for split in SPLITS}
        self.seen, self.prompts = Seen(), Seen()
        self.frequent = FrequentPrompts(memory_cap)
        self.samples = {split: _Reservoir(MEASURE_SAMPLE, config.train.seed) for split in SPLITS}
        self.pairs = dict.fromkeys(SPLITS, 0)
        self.tokens = {split: {"prompt": 0, "reply": 0} for split in SPLITS}
        self.truncated = dict.fromkeys(SPLITS, 0)
        self.lengths: dict[str, Counter[int]] = {"prompt": Counter(), "reply": Counter()}
        self.duplicates = self.noisy = 0
        self.pending: list[tuple[Pair, list[int]]] = []  # training pairs (and their replies'
        # ids) whose noisy copies are still to draw
        self.drawn: list[tuple[Callable, list[list[int]]]] = []  # (the helper's job, its
        # pairs' replies' ids): noisy copies drawn, still to write
        self.chunks = 0
        self.words: list[str] = []  # the first training prompts' words: noise inserts them

    def add(self, chunk: Sequence[tuple[int, Pair]], read: Sequence[Read], helper: Helper,
            numbers, vocab) -> None:
        """The pairs of `chunk` (file number, pair), in order, with what they are (`read`:
        hashes, side, tokens max_len + 1 at most); exact repeats dropped. The noisy copies
        drawn while the chunk before was added are written first."""
        self.write_noise(numbers, vocab)
        repeated = self.seen.add_many([r.key for r in read])
        fresh = [(pair, r) for (_, pair), r, again in zip(chunk, read, repeated) if not again]
        self.duplicates += len(chunk) - len(fresh)
        self.prompts.add_many([r.prompt_key for _, r in fresh])
        for pair, r in fresh:
            self._add(pair, r, helper, numbers, vocab)

    def _add(self, pair: Pair, read: Read, helper: Helper, numbers, vocab) -> None:
        split = read.split
        pair = Pair(pair.prompt, pair.reply, pair.line)  # single turns (see prepare_corpus)
        self.frequent.add(pair, split == "train")
        self.samples[split].add(pair)
        self.pairs[split] += 1
        reply = self._write(split, read.prompt, read.reply, numbers, vocab)
        if split == "train" and self.config.train.noise_copies:
            self.pending.append((pair, reply))
            if len(self.words) < 50_000:
                self.words += [w for w in pair.prompt.split() if w.isalpha()]
            if len(self.pending) == NOISE_CHUNK:
                self.flush_noise(helper)

    def flush_noise(self, helper: Helper) -> None:
        """Has the helper draw the pending pairs' noisy copies (written by write_noise)."""
        copies = self.config.train.noise_copies
        if not self.pending or not copies:
            return
        seed = self.config.train.seed + self.chunks
        job = helper.noisy([pair.prompt for pair, _ in self.pending], copies, seed, self.words)
        self.drawn.append((job, [reply for _, reply in self.pending]))
        self.pending, self.chunks = [], self.chunks + 1

    def write_noise(self, numbers, vocab) -> None:
        """The records of the noisy copies drawn so far: each pair's copies in turn, its
        reply as encoded."""
        copies, writer = self.config.train.noise_copies, self.writers["train"]
        for job, replies in self.drawn:
            prompts = job()
            for i, prompt in enumerate(prompts):
                ids = _ids(prompt, numbers, vocab, False)
                writer.write(encode_record(1 + i % copies, ids, replies[i // copies]))
            self.noisy += len(prompts)
        self.drawn = []

    def _write(self, split: str, prompt: list[str], reply: list[str], numbers, vocab
               ) -> list[int]:
        """Writes the record of a pair of tokens (max_len + 1 at most: one more tells a text
        that is cut) and counts its lengths; returns its reply's ids."""
        max_len = self.config.data.max_len
        self.truncated[split] += (len(prompt) > max_len) + (len(reply) > max_len)
        prompt, reply = prompt[:max_len], reply[:max_len]
        self.lengths["prompt"][len(prompt)] += 1
        self.lengths["reply"][len(reply)] += 1
        self.tokens[split]["prompt"] += len(prompt)
        self.tokens[split]["reply"] += len(reply)
        count = split == "train"
        ids = _ids(prompt, numbers, vocab, count), _ids(reply, numbers, vocab, count)
        self.writers[split].write(encode_record(0, *ids))
        return ids[1]

    def manifest(self, paths, report: StreamReport, vocab: Vocabulary, numbers) -> dict:
        if not self.pairs["train"]:
            raise ChatbotError(f"{', '.join(map(str, paths))}: no pairs to train on"
                               + (f" ({report.bad_count} bad lines skipped)"
                                  if report.bad_count else ""))
        memory = self.frequent.pairs()
        _write_pairs(self.out / MEMORY_PAIRS, memory)
        for split, file in SAMPLES.items():
            _write_pairs(self.out / file, self.samples[split].items)
        unknown = _unknown(numbers, vocab) if numbers is not None else 0
        d, t = self.config.data, self.config.text
        return {
            "inputs": [{"path": str(p), "bytes": Path(p).stat().st_size} for p in paths],
            "text": {"tokenizer": t.tokenizer, "lowercase": t.lowercase,
                     "subword_model": t.subword_model, "subword_vocab": t.subword_vocab},
            "data": {"max_len": d.max_len, "min_count": d.min_count, "max_vocab": d.max_vocab,
                     "val_fraction": d.val_fraction, "on_bad_lines": d.on_bad_lines},
            "seed": self.config.train.seed, "noise_copies": self.config.train.noise_copies,
            "lines": report.lines, "bad_lines": report.bad_count, "blank_lines": report.blank_lines,
            "first_bad_lines": report.bad_lines[:10], "conversations": report.conversations,
            "duplicates": self.duplicates, "pairs": self.pairs, "noisy": self.noisy,
            "distinct_prompts": len(self.prompts), "truncated": self.truncated,
            "prompt_tokens": {s: self.tokens[s]["prompt"] for s in SPLITS},
            "reply_tokens": {s: self.tokens[s]["reply"] for s in SPLITS},
            "unknown_train_tokens": unknown, "token_types": len(numbers.index) if numbers else
            len(vocab), "token_overflow": numbers.overflow if numbers else 0,
            "vocab_size": len(vocab),
            "length_histogram": {side: {str(k): v for k, v in sorted(h.items())}
                                 for side, h in self.lengths.items()},
            "memory": {"kept": len(memory), "cap": self.frequent.cap,
                       "exact": self.frequent.exact,
                       "validation_only": [i + 1 for i in self.frequent.untrained()]},
            "shards": [s for w in self.writers.values() for s in w.shards],
        }


def _chunks(items: Iterable[tuple[int, Pair]], size: int) -> Iterator[list[tuple[int, Pair]]]:
    """`items` in lists of `size` (the last one shorter, never empty)."""
    items = iter(items)
    while chunk := list(islice(items, size)):
        yield chunk


def _ids(tokens: Sequence[str], numbers: _Numbers | None, vocab: Vocabulary | None,
         count: bool) -> list[int]:
    """Tokens as the numbers a shard holds: the word numbering's (counted on the training
    side), or the subword vocabulary's indices."""
    return numbers(tokens, count) if numbers is not None else vocab.encode(tokens)


class _Reservoir:
    """A uniform, seeded sample of at most `size` items of a stream (Algorithm R)."""

    def __init__(self, size: int, seed: int):
        self.size, self.items, self.seen = size, [], 0
        self.rng = random.Random(seed)

    def add(self, item) -> None:
        self.seen += 1
        if len(self.items) < self.size:
            self.items.append(item)
        elif (j := self.rng.randrange(self.seen)) < self.size:
            self.items[j] = item


def _unknown(numbers: _Numbers, vocab: Vocabulary) -> int:
    """Training tokens the vocabulary reads as <UNK> (too rare for it)."""
    return sum(c for t, c in zip(numbers.index, numbers.counts) if t not in vocab.index)


def _write_pairs(path: Path, pairs: Sequence[Pair]) -> None:
    """Pairs as JSON lines [prompt, reply]: a reply may hold tabs and line ends."""
    atomic_write_text(path, "".join(json.dumps([p.prompt, p.reply], ensure_ascii=False) + "\n"
                                    for p in pairs))


def read_pairs_file(path: Path) -> list[Pair]:
    """What `_write_pairs` wrote, as pairs numbered by line."""
    with open(path, encoding="utf-8") as f:
        return [Pair(*json.loads(line), number) for number, line in enumerate(f, start=1)]


def _subword(paths, config: RunConfig, log) -> SubwordTokenizer:
    """A sentencepiece model learned from a seeded sample of SUBWORD_SAMPLE texts."""
    sample = _Reservoir(SUBWORD_SAMPLE, config.train.seed)
    for _, pair in stream_pairs(paths, "skip"):
        sample.add(pair.prompt)
        sample.add(pair.reply)
    log(f"learning a sentencepiece model from {len(sample.items):,} of {sample.seen:,} texts")
    return train_tokenizer(config.text, sample.items)


def _claim(out: Path, overwrite: bool, log) -> None:
    """`out` made ready: refused if it holds a finished preparation (unless `overwrite`) or
    something else; what an unfinished one left is removed."""
    if out.exists() and not out.is_dir():
        raise ChatbotError(f"{out}: is a file; --out names the directory to prepare into")
    if (out / MANIFEST).is_file():
        if not overwrite:
            raise ChatbotError(f"{out}: already prepared; pass --overwrite to prepare it again")
        (out / MANIFEST).unlink()  # first: from here on the directory is unfinished
    if out.is_dir() and any(out.iterdir()):
        ours = [p for p in out.iterdir() if _ours(p.name)]
        if len(ours) < len(list(out.iterdir())):
            raise ChatbotError(f"{out}: holds files that `chatbot data prepare` did not write; "
                               "choose an empty or new directory")
        log(f"{out}: removing what an unfinished prepare left ({len(ours)} files)")
        for p in ours:
            shutil.rmtree(p) if p.is_dir() else p.unlink()
    out.mkdir(parents=True, exist_ok=True)


def _ours(name: str) -> bool:
    return (name.endswith((".tfrecord", ".tfrecord.tmp")) or name.startswith(".")
            or name in (MANIFEST, REMAP, MEMORY_PAIRS, VOCAB, TOKENIZER, *SAMPLES.values()))
