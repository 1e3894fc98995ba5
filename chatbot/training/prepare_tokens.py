"""What `chatbot data prepare` reads in its pairs, and the noisy copies of its training
prompts, worked out in a second process while the first one numbers, counts and writes.

    with Helper(tokenizer, limit, val_fraction, seed) as helper:
        for chunk, read in helper.tokenized(chunks):  # in order
            ...  # read[i]: chunk[i]'s Read: its hashes, its side, its tokens (`limit` at most)
            job = helper.noisy(prompts, copies, seed, words)
            ...
            job()  # each copy's prompt tokens (limit - 1 at most), copies of a prompt in a row

Tokenizing, hashing and drawing the noise are most of a prepare's work, and the rest of it
(repeats, numbers, records) must see the pairs in order. So a worker process reads the next
chunks (at most AHEAD of them, which bounds the memory) and draws the noise while this one
handles the current chunk; this one tokenizes the noisy copies, which balances the two. What
comes back depends on what was sent alone, never on timing: the prepared directory is the same
whether or not a worker helps. There is none on a machine with one processor, nor for a
tokenizer that cannot be sent to another process (sentencepiece's): this process does it all
then.

Measured on 200,000 pairs (one process: 5.9 s with --noise-copies 0, 10.3 s by default): 4.5 s
and 7.9 s.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import NamedTuple

from chatbot.data.noise import noisy_copies
from chatbot.data.pairs import Pair
from chatbot.data.stream import digest, pair_key, split_of
from chatbot.text.words import TextTokenizer, Tokenizer

AHEAD = 4  # chunks tokenized ahead of the one being written
SEPARATOR = " "  # between the tokens of a text sent back (_packed)
Chunk = Sequence[tuple[int, Pair]]  # (file number, pair)


class Read(NamedTuple):
    """What a pair is to a prepare, before the pairs before it are known."""

    key: int  # chatbot.data.stream.pair_key: the same for an exact repeat
    prompt_key: int  # digest(prompt): distinct prompts are counted by it
    split: str  # chatbot.data.stream.split_of: "train" or "validation"
    prompt: list[str]  # tokens, `limit` at most
    reply: list[str]


class Done:
    """A result computed in this process (the worker's are multiprocessing's AsyncResult)."""

    def __init__(self, value):
        self.value = value

    def get(self):
        return self.value


class Helper:
    """The worker process that tokenizes and draws noise, or this process (see the module doc).

    limit: tokens kept of a chunk's texts (a noisy copy's prompt: limit - 1).
    val_fraction, seed: the split's (chatbot.data.stream.split_of).
    workers: 1 for the worker process, 0 for none (None: 1 if this machine has a processor to
        spare). One at most: its jobs must run in the order they were sent (the words it holds).
    """

    def __init__(self, tokenizer: TextTokenizer, limit: int, val_fraction: float, seed: int,
                 workers: int | None = None):
        if workers is None:
            workers = 1 if (os.cpu_count() or 1) > 1 else 0
        self.tokenizer, self.limit = tokenizer, limit
        self.split = (val_fraction, seed)
        if workers not in (0, 1):
            raise ValueError(f"workers must be 0 or 1, received {workers}")
        self.parallel = bool(workers) and isinstance(tokenizer, Tokenizer)
        self.pool = None
        self.words_sent = -1  # how many `words` the worker holds: they only ever grow

    def __enter__(self) -> Helper:
        if self.parallel:  # spawn: a fresh interpreter, whatever the parent holds
            self.pool = multiprocessing.get_context("spawn").Pool(
                1, initializer=_start_worker, initargs=(self.tokenizer,))
        else:
            _start(self.tokenizer)
        return self

    def __exit__(self, *exc) -> None:
        if self.pool is not None:
            self.pool.terminate()
            self.pool.join()

    def tokenized(self, chunks: Iterable[Chunk]) -> Iterator[tuple[Chunk, list[Read]]]:
        """Each chunk with what its pairs are (Read), in order."""
        waiting: deque = deque()
        for chunk in chunks:
            sent = [(file, pair.prompt, pair.reply, pair.line, pair.context)  # cheaper
                    for file, pair in chunk]  # to send than Pairs
            waiting.append((chunk, self._run(_read_pairs, sent, self.limit, *self.split)))
            if len(waiting) > AHEAD:
                yield _received(*waiting.popleft())
        while waiting:
            yield _received(*waiting.popleft())

    def noisy(self, prompts: Sequence[str], copies: int, seed: int, words: Sequence[str]
              ) -> Callable[[], list[list[str]]]:
        """`copies` noisy copies of each prompt (chatbot.data.noise.noisy_copies with `seed`
        and the insertion's `words`), drawn by the worker: a function that waits for them and
        tokenizes them here."""
        # A copy: the job is sent later, from another thread, and the caller's words grow.
        sent = list(words) if len(words) != self.words_sent else None  # None: as before
        self.words_sent = len(words)
        job = self._run(_noisy_prompts, list(prompts), copies, seed, sent)
        tokenize, limit = self.tokenizer.tokenize, self.limit - 1
        return lambda: [tokenize(prompt, limit) for prompt in job.get()]

    def _run(self, function, *args):
        if self.pool is not None:
            return self.pool.apply_async(function, args)
        return Done(function(*args))


_tokenizer: TextTokenizer | None = None  # this process's (_start)
_words: Sequence[str] = ()  # the noise's insertion's words, as last sent


def _start_worker(tokenizer: TextTokenizer) -> None:
    # Ctrl-C reaches the whole process group: the parent handles it (and ends the pool).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _start(tokenizer)


def _start(tokenizer: TextTokenizer) -> None:
    global _tokenizer
    _tokenizer = tokenizer


def _read_pairs(sent: Sequence[tuple], limit: int, val_fraction: float, seed: int
                ) -> list[tuple]:
    """Each sent (file, prompt, reply, line, context) as a Read, its tokens _packed."""
    tokenize, out = _tokenizer.tokenize, []
    for file, *fields in sent:
        pair = Pair(*fields)
        out.append((pair_key(pair), digest(pair.prompt), split_of(pair, val_fraction, seed, file),
                    _packed(tokenize(pair.prompt, limit)), _packed(tokenize(pair.reply, limit))))
    return out


def _received(chunk: Chunk, job) -> tuple[Chunk, list[Read]]:
    return chunk, [Read(key, prompt_key, split, _unpacked(prompt), _unpacked(reply))
                   for key, prompt_key, split, prompt, reply in job.get()]


def _packed(tokens: list[str]) -> str | list[str]:
    """Tokens as one string, which crosses between processes many times faster than a list
    of strings; as they are if one holds the separator (no word token does: they hold no
    white space)."""
    joined = SEPARATOR.join(tokens)
    return joined if joined and joined.count(SEPARATOR) == len(tokens) - 1 else tokens


def _unpacked(packed: str | list[str]) -> list[str]:
    return packed if isinstance(packed, list) else packed.split(SEPARATOR)


def _noisy_prompts(prompts: list[str], copies: int, seed: int, words: Sequence[str] | None
                   ) -> list[str]:
    global _words
    if words is not None:
        _words = words
    pairs = [Pair(prompt, "", 0) for prompt in prompts]  # the draws read prompts alone
    return [pair.prompt for pair in noisy_copies(pairs, copies, seed, _words)]
