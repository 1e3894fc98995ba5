"""The tokens of `chatbot data prepare`: its chunks of pairs tokenized, and the training
prompts' noisy copies drawn and tokenized, in a second process while the first one numbers,
counts and writes.

    with Helper(tokenizer, limit) as helper:
        for chunk, tokens in helper.tokenized(chunks):  # in order
            ...  # tokens[i]: (prompt tokens, reply tokens) of chunk[i], `limit` at most
            job = helper.noisy(prompts, copies, seed, words)
            ...
            job.get()  # each copy's prompt tokens (max_len at most), copies of a prompt in a row

Tokenizing and drawing the noise are most of a prepare's work, and the rest of it (repeats,
the split, numbers, records) must see the pairs in order. So a worker process tokenizes the
next chunks (at most AHEAD of them, which bounds the memory) and draws the noise while this
one handles the current chunk. What comes back depends on what was sent alone, never on timing:
the prepared directory is the same whether or not a worker helps. There is none on a machine
with one processor, nor for a tokenizer that cannot be sent to another process
(sentencepiece's): this process does it all then.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
from collections import deque
from collections.abc import Iterable, Iterator, Sequence

from chatbot.data.noise import noisy_copies
from chatbot.data.pairs import Pair
from chatbot.text.words import TextTokenizer, Tokenizer

AHEAD = 4  # chunks tokenized ahead of the one being written
Chunk = Sequence[tuple[int, Pair]]  # (file number, pair)
Tokens = list[tuple[list[str], list[str]]]  # per pair: its prompt's and its reply's


class Done:
    """A result computed in this process (the worker's are multiprocessing's AsyncResult)."""

    def __init__(self, value):
        self.value = value

    def get(self):
        return self.value


class Helper:
    """The worker process that tokenizes and draws noise, or this process (see the module doc).

    limit: tokens kept of a chunk's texts (a noisy copy's prompt: limit - 1).
    workers: processes besides this one (None: one, if this machine has a processor to spare).
    """

    def __init__(self, tokenizer: TextTokenizer, limit: int, workers: int | None = None):
        if workers is None:
            workers = 1 if (os.cpu_count() or 1) > 1 else 0
        self.tokenizer, self.limit = tokenizer, limit
        self.parallel = bool(workers) and isinstance(tokenizer, Tokenizer)
        self.pool = None
        self.words_sent = -1  # how many `words` the worker holds: they only ever grow

    def __enter__(self) -> Helper:
        if self.parallel:  # spawn: a fresh interpreter, whatever the parent holds
            # One worker: its jobs run in the order they were sent (the words it holds).
            self.pool = multiprocessing.get_context("spawn").Pool(
                1, initializer=_start_worker, initargs=(self.tokenizer,))
        return self

    def __exit__(self, *exc) -> None:
        if self.pool is not None:
            self.pool.terminate()
            self.pool.join()

    def tokenized(self, chunks: Iterable[Chunk]) -> Iterator[tuple[Chunk, Tokens]]:
        """Each chunk with its pairs' tokens, in order."""
        waiting: deque = deque()
        for chunk in chunks:
            texts = [(pair.prompt, pair.reply) for _, pair in chunk]
            waiting.append((chunk, self._run(_tokenize_texts, texts, self.limit)))
            if len(waiting) > AHEAD:
                done, job = waiting.popleft()
                yield done, job.get()
        while waiting:
            done, job = waiting.popleft()
            yield done, job.get()

    def noisy(self, prompts: Sequence[str], copies: int, seed: int, words: Sequence[str]):
        """`copies` noisy copies of each prompt (chatbot.data.noise.noisy_copies with `seed`
        and the insertion's `words`), tokenized: a job whose get() gives them."""
        # A copy: the job is sent later, from another thread, and the caller's words grow.
        sent = list(words) if len(words) != self.words_sent else None  # None: as before
        self.words_sent = len(words)
        return self._run(_noisy_tokens, list(prompts), copies, seed, sent, self.limit - 1)

    def _run(self, function, *args):
        if self.pool is not None:
            return self.pool.apply_async(function, args)
        _start(self.tokenizer)
        return Done(function(*args))


_tokenizer: TextTokenizer | None = None  # the process's, and the insertion's words
_words: Sequence[str] = ()


def _start_worker(tokenizer: TextTokenizer) -> None:
    # Ctrl-C reaches the whole process group: the parent handles it (and ends the pool).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _start(tokenizer)


def _start(tokenizer: TextTokenizer) -> None:
    global _tokenizer
    _tokenizer = tokenizer


def _tokenize_texts(texts: Sequence[tuple[str, str]], limit: int) -> Tokens:
    tokenize = _tokenizer.tokenize
    return [(tokenize(prompt, limit), tokenize(reply, limit)) for prompt, reply in texts]


def _noisy_tokens(prompts: list[str], copies: int, seed: int, words: Sequence[str] | None,
                  limit: int) -> list[list[str]]:
    global _words
    if words is not None:
        _words = words
    pairs = [Pair(prompt, "", 0) for prompt in prompts]  # the draws read prompts alone
    return [_tokenizer.tokenize(pair.prompt, limit)
            for pair in noisy_copies(pairs, copies, seed, _words)]
