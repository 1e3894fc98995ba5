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
from chatbot.data.stream import Seen, StreamReport, pair_key, split_of, stream_pairs
from chatbot.data.summary import Reservoir
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
    record_of,
    write_manifest,
)

SHARD_SIZE = 100_000  # examples per shard
MEMORY_CAP = 20_000  # prompts the bot knows by heart (the most frequent): see bench/scale.json
SUBWORD_SAMPLE = 200_000  # texts a sentencepiece model learns from, sampled
MEASURE_SAMPLE = 2_000  # pairs of each side kept to measure the run with
CHUNK = 4096  # pairs whose repeats are looked up together
NOISE_CHUNK = 1024  # training pairs whose noisy copies are drawn together
SAMPLES = {"train": "sample-train.jsonl", "validation": "sample-validation.jsonl"}


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
    vocab = Vocabulary([*SPECIALS, *tokenizer.pieces]) if subword else None
    state = _Pass(out, config, shard_size, memory_cap)
    report = StreamReport([str(p) for p in paths])
    chunks = _chunks(stream_pairs(paths, config.data.on_bad_lines, report), CHUNK)
    # One token more than is kept tells a text that is cut, without reading all of it. The
    # word tokenizer's tokens are numbered by the helper, sentencepiece's by its vocabulary.
    with Helper(tokenizer, config.data.max_len + 1, vocab.encode if subword else None,
                workers) as helper:
        for chunk, read in helper.tokenized(chunks):
            state.add(chunk, read, helper)
        state.flush_noise(helper)
        state.write_noise()
        numbered = None if subword else helper.numbered()
    for writer in state.writers.values():
        writer.close()
    if numbered is not None:
        tokens = numbered[0]
        vocab = Vocabulary.from_counts(Counter(dict(zip(tokens, state.counted(len(tokens))))),
                                       config.data.min_count, config.data.max_vocab)
        remap = np.asarray([vocab.index.get(t, vocab.unk_id) for t in tokens] +
                           [vocab.unk_id], dtype=np.int32)  # the last: the overflow's
        np.save(out / REMAP, remap)
    else:
        tokenizer.save(out / TOKENIZER)
    vocab.save(out / VOCAB)
    raw = state.manifest(paths, report, vocab, numbered)
    write_manifest(out, raw)
    return raw


class _Pass:
    """Everything the one pass over the pairs keeps, bounded."""

    def __init__(self, out: Path, config: RunConfig, shard_size: int, memory_cap: int):
        self.out, self.config = out, config
        self.writers = {split: ShardWriter(out, split, shard_size) for split in SPLITS}
        self.seen, self.prompts = Seen(), Seen()
        self.frequent = FrequentPrompts(memory_cap)
        self.samples = {split: Reservoir(MEASURE_SAMPLE, config.train.seed) for split in SPLITS}
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
        self.counts = np.zeros(0, dtype=np.int64)  # training occurrences, by token number

    def add(self, chunk: Sequence[tuple[int, Pair]], read: Read, helper: Helper) -> None:
        """The pairs of `chunk` (file number, pair), in order, with what they are (`read`:
        prompt hashes, lengths, numbers); exact repeats dropped, the others each on its side
        (split_of). The noisy copies drawn while the chunk before was added are written
        first."""
        self.write_noise()
        repeated = self.seen.add_many([pair_key(pair) for _, pair in chunk])
        fresh = [i for i, again in enumerate(repeated) if not again]
        self.duplicates += len(chunk) - len(fresh)
        self.prompts.add_many([read.prompt_keys[i] for i in fresh])
        fraction, seed = self.config.data.val_fraction, self.config.train.seed
        sides = {i: split_of(chunk[i][1], fraction, seed, chunk[i][0]) for i in fresh}
        self._count(read, [i for i in fresh if sides[i] == "train"])
        for i in fresh:
            self._add(chunk[i][1], sides[i], read, i, helper)

    def _count(self, read: Read, rows: list[int]) -> None:
        """Counts the numbers of the pairs `rows` of `read` (training pairs, as kept)."""
        if not rows:
            return
        chosen = np.zeros(len(read.prompt_keys), dtype=bool)
        chosen[rows] = True
        ids = np.frombuffer(read.ids, dtype="<i4")[np.repeat(chosen, np.diff(read.starts))]
        found = np.bincount(ids)
        if len(found) > len(self.counts):
            self.counts = np.concatenate([self.counts, np.zeros(len(found) - len(self.counts),
                                                                dtype=np.int64)])
        self.counts[: len(found)] += found

    def counted(self, types: int) -> list[int]:
        """The training count of each of the `types` numbered tokens, by number."""
        return [*self.counts[:types].tolist(), *[0] * max(types - len(self.counts), 0)]

    def _add(self, pair: Pair, split: str, read: Read, i: int, helper: Helper) -> None:
        if pair.context:  # single turns (see prepare_corpus)
            pair = Pair(pair.prompt, pair.reply, pair.line)
        self.frequent.add(pair, split == "train")
        self.samples[split].add(pair)
        self.pairs[split] += 1
        reply = self._write(split, read, i)
        if split == "train" and self.config.train.noise_copies:
            self.pending.append((pair, np.frombuffer(reply, dtype="<i4").tolist()))
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

    def write_noise(self) -> None:
        """The records of the noisy copies drawn so far: each pair's copies in turn, its
        reply as encoded."""
        copies, writer = self.config.train.noise_copies, self.writers["train"]
        for job, replies in self.drawn:
            prompts = job()
            for i, ids in enumerate(prompts):
                writer.write(encode_record(1 + i % copies, ids, replies[i // copies]))
            self.noisy += len(prompts)
        self.drawn = []

    def _write(self, split: str, read: Read, i: int) -> bytes:
        """Writes the record of pair `i` of `read` (tokens read: max_len + 1 at most, one more
        telling a text that is cut) and counts its lengths; returns its reply's numbers."""
        max_len = self.config.data.max_len
        prompt, reply = read.lengths[i]
        self.truncated[split] += (prompt > max_len) + (reply > max_len)
        prompt, reply = min(prompt, max_len), min(reply, max_len)
        self.lengths["prompt"][prompt] += 1
        self.lengths["reply"][reply] += 1
        self.tokens[split]["prompt"] += prompt
        self.tokens[split]["reply"] += reply
        start, end = 4 * read.starts[i], 4 * read.starts[i + 1]
        self.writers[split].write(record_of(0, prompt, read.ids[start:end]))
        return read.ids[start + 4 * prompt: end]

    def manifest(self, paths, report: StreamReport, vocab: Vocabulary,
                 numbered: tuple[list[str], int] | None) -> dict:
        """The manifest's fields; `numbered`: the word tokens by number and the overflow's
        count (None: sentencepiece's pieces, numbered by the vocabulary)."""
        if not self.pairs["train"]:
            raise ChatbotError(f"{', '.join(map(str, paths))}: no pairs to train on"
                               + (f" ({report.bad_count} bad lines skipped)"
                                  if report.bad_count else ""))
        memory = self.frequent.pairs()
        _write_pairs(self.out / MEMORY_PAIRS, memory)
        for split, file in SAMPLES.items():
            _write_pairs(self.out / file, self.samples[split].items)
        tokens, overflow = numbered or ([], 0)
        unknown = sum(c for t, c in zip(tokens, self.counted(len(tokens)))
                      if t not in vocab.index)  # training tokens too rare for the vocabulary
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
            "unknown_train_tokens": unknown,
            "token_types": len(tokens) if numbered else len(vocab), "token_overflow": overflow,
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
    sample = Reservoir(SUBWORD_SAMPLE, config.train.seed)
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
