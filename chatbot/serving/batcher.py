"""Decoding off the event loop, for `chatbot serve`: a micro-batching queue and token streams.

`Batcher` owns worker threads (`workers`). Each request hands it a Bot with the request's own
settings (see chatbot.serving.app) and its prompts, and gets a Future. A worker that is free takes
whatever has queued up at once, groups it by decoding settings and decodes it as one
`Bot.reply_batch` call per group, so requests that arrive together are decoded together and
the replies per second grow with concurrency. There is no timed wait for a batch to fill: a
request alone is decoded the moment it arrives. (Under a steady load of k clients and one
worker, the batches settle at about k / 2 requests: one half queues while the other's batch
decodes, and waiting to merge them measured no faster.) With two workers, one decodes while
the other is in Python: NumPy's matrix products release the interpreter's lock, so the two
overlap on two cores.

Batching never changes a reply. Greedy and beam search give each row the reply it gets alone,
and unseeded sampling is random anyway; seeded sampling draws row i of a batch from a generator
seeded seed + i, so a seeded sampling request is decoded on its own. A request abandoned before its
batch started (it timed out, or its client left: `Ticket.abandon`) is skipped; a batch whose
requests are all abandoned stops at its next decoding step.

`stream_rows` runs one sampler search in a thread of its own and yields its tokens to the
event loop as they are generated (the sampler's `on_step` hook); closing the iterator stops
the search at its next step.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import dataclasses
import logging
import queue
import threading
from collections.abc import AsyncIterator, Hashable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass

import numpy as np

from chatbot.decoding.bot import Bot, Prompt
from chatbot.decoding.samplers import Sampler

log = logging.getLogger("chatbot.serving.app")


class Ticket(Future):
    """The Future of a request's replies, which its caller may abandon even once it runs."""

    def __init__(self):
        super().__init__()
        self.abandoned = threading.Event()

    def abandon(self) -> None:
        """Nobody waits for these replies any more (a timeout, a client gone)."""
        self.abandoned.set()
        self.cancel()  # not decoded at all if its batch has not started


class _Stop(Exception):
    """Raised in a decoding step: nobody waits for what is being decoded any more."""


class _Stoppable:
    """An engine that raises _Stop at its next step once `stopped()` is true; every other
    attribute is the wrapped engine's (so Bot and the samplers use it as they would it)."""

    def __init__(self, engine, stopped):
        self._engine, self._stopped = engine, stopped

    def step(self, tokens, state):
        if self._stopped():
            raise _Stop
        return self._engine.step(tokens, state)

    def __getattr__(self, name: str):
        return getattr(self._engine, name)


@dataclass
class _Job:
    bot: Bot
    prompts: list[Prompt]
    future: Ticket
    key: Hashable


def batch_key(bot: Bot) -> Hashable:
    """Requests with equal keys may share a batch: equal settings, and not seeded sampling."""
    decode = bot.decode
    if decode.seed is not None and decode.strategy not in ("greedy", "beam"):
        return object()  # its own batch
    # (its fields are numbers, strings and None: a flat tuple, not astuple's deep copy)
    return tuple(getattr(decode, field.name) for field in dataclasses.fields(decode))


class Batcher:
    """`workers` threads decoding queued requests in batches of at most `max_rows` prompts."""

    def __init__(self, max_rows: int = 64, workers: int = 1):
        if workers < 1:
            raise ValueError(f"a Batcher needs at least one worker, not {workers}")
        self.max_rows = max_rows
        self.batches = 0  # batches decoded, and the prompts in them (for /health)
        self.rows = 0
        self.stopped = 0  # batches stopped because every request in them was abandoned
        self._counting = threading.Lock()  # (the workers update the counts)
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._threads = [threading.Thread(target=self._run, name=f"chatbot-decode-{n}",
                                          daemon=True) for n in range(workers)]
        for thread in self._threads:
            thread.start()

    def submit(self, bot: Bot, prompts: Sequence[Prompt]) -> Ticket:
        """The replies to `prompts` with `bot`'s settings, as a Future (list[Reply])."""
        job = _Job(bot, list(prompts), Ticket(), batch_key(bot))
        self._queue.put(job)
        return job.future

    def close(self) -> None:
        for _ in self._threads:
            self._queue.put(None)  # one each: a worker that takes it ends
        for thread in self._threads:
            thread.join(timeout=5)

    def _take(self) -> list[_Job] | None:
        """What has queued up (see the module docstring); None once closed."""
        job = self._queue.get()
        if job is None:
            return None
        jobs = [job]
        with contextlib.suppress(queue.Empty):
            while True:  # everything that queued up while the last batch was decoded
                job = self._queue.get_nowait()
                if job is None:
                    self._queue.put(None)  # close(): this worker ends after this batch
                    break
                jobs.append(job)
        return jobs

    def _run(self) -> None:
        while (jobs := self._take()) is not None:
            groups: dict[Hashable, list[_Job]] = {}
            for job in jobs:
                groups.setdefault(job.key, []).append(job)
            for group in groups.values():
                batch: list[_Job] = []
                for job in group:
                    if batch and sum(len(j.prompts) for j in batch) + len(job.prompts) > \
                            self.max_rows:
                        self._decode(batch)
                        batch = []
                    batch.append(job)
                self._decode(batch)

    def _decode(self, jobs: list[_Job]) -> None:
        jobs = [job for job in jobs if job.future.set_running_or_notify_cancel()]
        if not jobs:
            return
        bot = copy.copy(jobs[0].bot)  # (a shallow copy: the engine's weights are shared)
        bot.engine = _Stoppable(bot.engine,
                                lambda: all(job.future.abandoned.is_set() for job in jobs))
        try:
            replies = bot.reply_batch([p for job in jobs for p in job.prompts])
        except _Stop:
            with self._counting:
                self.stopped += 1
            for job in jobs:
                job.future.set_exception(asyncio.CancelledError())
            return
        except Exception as exc:  # a bug: keep it to the request that caused it
            if len(jobs) > 1:
                for job in jobs:
                    self._retry(job)
                return
            log.exception("decoding failed")
            jobs[0].future.set_exception(exc)
            return
        with self._counting:
            self.batches += 1
            self.rows += len(replies)
        start = 0
        for job in jobs:
            job.future.set_result(replies[start: start + len(job.prompts)])
            start += len(job.prompts)

    def _retry(self, job: _Job) -> None:
        try:
            job.future.set_result(job.bot.reply_batch(job.prompts))
        except Exception as exc:
            log.exception("decoding failed")
            job.future.set_exception(exc)


_END = object()


async def stream_rows(sampler: Sampler, bot: Bot, prompts: Sequence[Sequence[int]],
                      deadline: float) -> AsyncIterator[tuple[int, int]]:
    """(row, token id) for every token `sampler` generates for `prompts` (ids) with `bot`'s
    engine, <EOS> included, as they come. TimeoutError past `deadline` (the event loop's
    clock); leaving the loop early, or the consumer's cancellation, stops the search."""
    loop = asyncio.get_running_loop()
    tokens: asyncio.Queue = asyncio.Queue()
    stop = threading.Event()

    def put(item) -> None:
        try:
            loop.call_soon_threadsafe(tokens.put_nowait, item)
        except RuntimeError:  # the event loop has closed: the server is stopping
            stop.set()

    def hook(rows: np.ndarray, ids: np.ndarray) -> None:
        if stop.is_set():
            raise _Stop
        put(list(zip(rows.tolist(), ids.tolist())))

    def run() -> None:
        try:
            sampler(bot.engine, prompts, bot.vocab, on_step=hook)
        except _Stop:
            return
        except Exception as exc:
            log.exception("decoding failed")
            put(exc)
            return
        put(_END)

    threading.Thread(target=run, name="chatbot-stream", daemon=True).start()
    try:
        while True:
            item = await asyncio.wait_for(tokens.get(), max(0.0, deadline - loop.time()))
            if item is _END:
                return
            if isinstance(item, Exception):
                raise item
            for pair in item:
                yield pair
    finally:
        stop.set()
