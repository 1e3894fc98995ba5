"""What `chatbot data prepare` reads in its pairs, as token numbers, and the noisy copies of
its training prompts, worked out in a second process while the first one counts and writes.

    with Helper(tokenizer, limit, numbering) as helper:
        for chunk, read in helper.tokenized(chunks):  # in order
            ...  # read: each pair of the chunk's prompt hash, lengths and token numbers
            job = helper.noisy(prompts, copies, seed, words)
            ...
            job()  # each copy's prompt as numbers (limit - 1 at most), copies of a prompt in a row
        tokens, overflow = helper.numbered()  # the tokens by number, and the overflow's count

Tokenizing, numbering and drawing the noise are most of a prepare's work, and the rest of it
(repeats, sides, counts, records) must see the pairs in order. So a worker process reads the
next chunks (at most AHEAD of them, which bounds the memory) and draws the noise while this one
handles the current chunk (this one hashes each pair for its repeats and its side). The
worker's jobs run one at a time in the order they were sent, so the numbers it gives each new
token (in order of first appearance: `Numbering`) do not depend on timing: the prepared
directory is the same whether or not a worker helps. There is none on a machine with one
processor, nor for a tokenizer that cannot be sent to another process (sentencepiece's, whose
pieces the vocabulary numbers): this process does it all then.

Numbers cross back as int32 bytes, one string of them per chunk: 90,000 numbers, about a
chunk's, pickle and unpickle in 0.01 ms so, against 3.9 ms as a list of ints and 9.7 ms as strings.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
from array import array
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import NamedTuple

import numpy as np

from chatbot.data.noise import noisy_copies
from chatbot.data.pairs import Pair
from chatbot.data.stream import digest
from chatbot.text.words import TextTokenizer, Tokenizer

AHEAD = 4  # chunks tokenized ahead of the one being written
MAX_TOKEN_TYPES = 2_000_000  # distinct tokens numbered; rarer new ones are read as <UNK>
Chunk = Sequence[tuple[int, Pair]]  # (file number, pair)
Encode = Callable[[Sequence[str]], list[int]]  # tokens -> numbers


class Numbering:
    """Token -> number, in order of first appearance; a token met after MAX_TOKEN_TYPES others
    gets MAX_TOKEN_TYPES (the overflow's number, which the remap reads as <UNK>)."""

    def __init__(self):
        self.index: dict[str, int] = {}
        self.overflow = 0  # tokens numbered as the overflow

    def __call__(self, tokens: Sequence[str]) -> list[int]:
        out = list(map(self.index.get, tokens))
        if None in out:  # new tokens: numbered here
            out = [self._new(token) if n is None else n for token, n in zip(tokens, out)]
        return out

    def _new(self, token: str) -> int:
        n = self.index.get(token)  # met earlier in the same text
        if n is None:
            if len(self.index) >= MAX_TOKEN_TYPES:
                self.overflow += 1
                return MAX_TOKEN_TYPES
            n = self.index[token] = len(self.index)
        return n


class Read(NamedTuple):
    """What the pairs of a chunk are to a prepare, before the pairs before them are known."""

    prompt_keys: list[int]  # per pair: digest(prompt), by which distinct prompts are counted
    lengths: list[list[int]]  # per pair: tokens of the prompt and of the reply, `limit` at most
    ids: bytes  # int32: each pair's prompt then reply numbers, `limit - 1` of each at most
    starts: list[int]  # where each pair's numbers start in `ids` (in int32s), and the end


class Done:
    """A result computed in this process (the worker's are multiprocessing's AsyncResult)."""

    def __init__(self, value):
        self.value = value

    def get(self):
        return self.value


class Helper:
    """The worker process that tokenizes, numbers and draws noise, or this process (see the
    module doc).

    limit: tokens read of a chunk's texts (one more than is kept: it tells a text that is cut);
        a noisy copy's prompt keeps limit - 1.
    numbering: tokens -> numbers; None: a `Numbering` of the helper's (the word tokenizer's).
    workers: 1 for the worker process, 0 for none (None: 1 if this machine has a processor to
        spare). One at most: its jobs must run in the order they were sent (the numbers and
        the words it holds).
    """

    def __init__(self, tokenizer: TextTokenizer, limit: int, numbering: Encode | None = None,
                 workers: int | None = None):
        if workers is None:
            workers = 1 if (os.cpu_count() or 1) > 1 else 0
        self.tokenizer, self.limit = tokenizer, limit
        if workers not in (0, 1):
            raise ValueError(f"workers must be 0 or 1, received {workers}")
        self.parallel = bool(workers) and isinstance(tokenizer, Tokenizer) and numbering is None
        self.numbering = numbering
        self.pool = None
        self.words_sent = -1  # how many `words` the worker holds: they only ever grow

    def __enter__(self) -> Helper:
        if self.parallel:  # spawn: a fresh interpreter, whatever the parent holds
            self.pool = multiprocessing.get_context("spawn").Pool(
                1, initializer=_start_worker, initargs=(self.tokenizer,))
        else:
            _start(self.tokenizer, self.numbering or Numbering())
        return self

    def __exit__(self, *exc) -> None:
        if self.pool is not None:
            self.pool.terminate()
            self.pool.join()

    def tokenized(self, chunks: Iterable[Chunk]) -> Iterator[tuple[Chunk, Read]]:
        """Each chunk with what its pairs are (Read), in order."""
        waiting: deque = deque()
        for chunk in chunks:
            sent = [(pair.prompt, pair.reply) for _, pair in chunk]  # cheaper to send than Pairs
            waiting.append((chunk, self._run(_read_pairs, sent, self.limit)))
            if len(waiting) > AHEAD:
                yield _received(*waiting.popleft(), self.limit - 1)
        while waiting:
            yield _received(*waiting.popleft(), self.limit - 1)

    def noisy(self, prompts: Sequence[str], copies: int, seed: int, words: Sequence[str]
              ) -> Callable[[], list[list[int]]]:
        """`copies` noisy copies of each prompt (chatbot.data.noise.noisy_copies with `seed`
        and the insertion's `words`), drawn, tokenized and numbered by the worker: a function
        that waits for their numbers."""
        # A copy: the job is sent later, from another thread, and the caller's words grow.
        sent = list(words) if len(words) != self.words_sent else None  # None: as before
        self.words_sent = len(words)
        return self._run(_noisy_prompts, list(prompts), copies, seed, sent, self.limit - 1).get

    def numbered(self) -> tuple[list[str], int]:
        """The tokens by number, and how many were numbered as the overflow (after every job
        sent so far)."""
        return self._run(_numbered).get()

    def _run(self, function, *args):
        if self.pool is not None:
            return self.pool.apply_async(function, args)
        return Done(function(*args))


_tokenizer: TextTokenizer | None = None  # this process's (_start)
_encode: Encode | None = None  # its numbering
_words: Sequence[str] = ()  # the noise's insertion's words, as last sent


def _start_worker(tokenizer: TextTokenizer) -> None:
    # Ctrl-C reaches the whole process group: the parent handles it (and ends the pool).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _start(tokenizer, Numbering())


def _start(tokenizer: TextTokenizer, encode: Encode) -> None:
    global _tokenizer, _encode
    _tokenizer, _encode = tokenizer, encode


def _read_pairs(sent: Sequence[tuple[str, str]], limit: int) -> tuple[list[int], bytes, bytes]:
    """The sent (prompt, reply)s' prompt hashes, and their lengths and numbers as int32 bytes
    (see Read)."""
    tokenize, encode, keep = _tokenizer.tokenize, _encode, limit - 1
    keys, lengths, ids = [], array("i"), array("i")
    for prompt, reply in sent:
        keys.append(digest(prompt))
        prompt, reply = tokenize(prompt, limit), tokenize(reply, limit)
        lengths.append(len(prompt))
        lengths.append(len(reply))
        ids.extend(encode(prompt[:keep]))
        ids.extend(encode(reply[:keep]))
    if sys.byteorder == "big":  # records are little-endian (chatbot.training.shards)
        ids.byteswap()
    return keys, lengths.tobytes(), ids.tobytes()


def _received(chunk: Chunk, job, keep: int) -> tuple[Chunk, Read]:
    keys, lengths, ids = job.get()
    lengths = np.frombuffer(lengths, dtype=np.int32).reshape(-1, 2)
    starts = np.concatenate([[0], np.cumsum(np.minimum(lengths, keep).sum(axis=1))])
    return chunk, Read(keys, lengths.tolist(), ids, starts.tolist())


def _noisy_prompts(prompts: list[str], copies: int, seed: int, words: Sequence[str] | None,
                   keep: int) -> list[list[int]]:
    global _words
    if words is not None:
        _words = words
    pairs = [Pair(prompt, "", 0) for prompt in prompts]  # the draws read prompts alone
    return [_encode(_tokenizer.tokenize(pair.prompt, keep))
            for pair in noisy_copies(pairs, copies, seed, _words)]


def _numbered() -> tuple[list[str], int]:
    if isinstance(_encode, Numbering):
        return list(_encode.index), _encode.overflow
    return [], 0
