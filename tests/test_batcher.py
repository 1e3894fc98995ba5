"""The micro-batching queue of `chatbot serve`: what arrives together is decoded together,
and batching never changes a reply."""

from __future__ import annotations

import copy
import time

import pytest

from chatbot.decoding.bot import Bot
from chatbot.serving.batcher import Batcher
from tests.conftest import TINY_PAIRS
from tests.serving import SlowEngine

pytestmark = pytest.mark.slow  # the tiny run trains once per session


@pytest.fixture(scope="module")
def bot(tiny_run) -> Bot:
    return Bot.load(tiny_run)


def configured(bot: Bot, **settings) -> Bot:
    clone = copy.copy(bot)  # what chatbot.serving.app does for each request
    clone.configure(**settings)
    return clone


def busy(batcher: Batcher, bot: Bot):
    """Keeps the worker decoding (a slow reply, settings of its own) until it is released."""
    slow = configured(bot, min_len=30, max_reply_len=30, retrieval=False, fallback=False)
    slow.engine = SlowEngine(bot.engine, 0.01)
    future = batcher.submit(slow, ["hello"])
    while not future.running():
        time.sleep(0.001)
    return future


def test_requests_that_queue_up_are_decoded_in_one_batch(bot):
    batcher = Batcher()
    try:
        blocker = busy(batcher, bot)
        prompts = [p for p, _ in TINY_PAIRS]
        futures = [batcher.submit(configured(bot), [p]) for p in prompts]
        two = batcher.submit(configured(bot), prompts[:2])  # a request of two rows
        assert [f.result(timeout=30)[0].text for f in futures] == [r for _, r in TINY_PAIRS]
        assert [r.text for r in two.result(timeout=30)] == [r for _, r in TINY_PAIRS[:2]]
        blocker.result(timeout=30)
        assert (batcher.batches, batcher.rows) == (2, 1 + len(prompts) + 2)
    finally:
        batcher.close()


def test_different_settings_and_seeded_sampling_are_decoded_apart(bot):
    batcher = Batcher()
    try:
        blocker = busy(batcher, bot)
        beam = [batcher.submit(configured(bot, strategy="beam", beam_width=2), ["hello"])
                for _ in range(2)]
        seeded = [batcher.submit(configured(bot, strategy="random", temperature=2.0, seed=s),
                                 ["what is your name?"]) for s in range(3)]
        for f in [*beam, *seeded, blocker]:
            f.result(timeout=30)
        assert batcher.batches == 1 + 1 + 3  # the blocker, the two beams, each seeded one
        for s, future in enumerate(seeded):  # as each seed gives alone
            alone = configured(bot, strategy="random", temperature=2.0, seed=s)
            assert future.result()[0].text == alone.reply("what is your name?").text
    finally:
        batcher.close()


def test_a_cancelled_request_is_not_decoded(bot):
    batcher = Batcher()
    try:
        blocker = busy(batcher, bot)
        gone = batcher.submit(configured(bot), ["hello"])
        assert gone.cancel()
        kept = batcher.submit(configured(bot), ["你好"])
        assert kept.result(timeout=30)[0].text == "你好！很高兴认识你。"
        blocker.result(timeout=30)
        assert batcher.rows == 2
    finally:
        batcher.close()


def test_a_running_batch_stops_once_every_request_in_it_is_abandoned(bot):
    batcher = Batcher()
    try:
        slow = configured(bot, min_len=30, max_reply_len=30, retrieval=False)
        slow.engine = engine = SlowEngine(bot.engine, 0.01)
        ticket = batcher.submit(slow, ["hello"])
        while engine.steps < 3:  # decoding has started
            time.sleep(0.001)
        ticket.abandon()  # the request timed out, or its client left
        deadline = time.monotonic() + 10
        while batcher.stopped == 0 and time.monotonic() < deadline:
            time.sleep(0.001)
        assert batcher.stopped == 1
        steps = engine.steps
        time.sleep(0.1)
        assert engine.steps == steps < 29  # stopped at its next step, far from the end
        assert batcher.submit(configured(bot), ["你好"]).result(timeout=30)[0].text == \
            "你好！很高兴认识你。"  # and the worker goes on
    finally:
        batcher.close()


def test_a_batch_with_one_request_still_waited_for_runs_to_the_end(bot):
    batcher = Batcher()
    try:
        blocker = busy(batcher, bot)
        request = configured(bot, min_len=5, max_reply_len=5, retrieval=False, fallback=False)
        # Slowed down (0.25 s), so that the batch still runs when it is seen running: at full
        # speed its 5 steps can end within one switch of threads, and running() is never seen.
        request.engine = SlowEngine(bot.engine, 0.05)
        gone = batcher.submit(copy.copy(request), ["hello"])
        kept = batcher.submit(copy.copy(request), ["hello"])
        blocker.result(timeout=30)
        while not kept.running():  # the two share the batch after the blocker's
            assert not kept.done(), "the batch ended before it was seen running"
            time.sleep(0.001)
        gone.abandon()
        assert len(kept.result(timeout=30)[0].tokens) == 5
        assert batcher.stopped == 0
    finally:
        batcher.close()


def test_two_workers_decode_two_batches_at_once(bot):
    """With two workers, a second request does not wait for the first's batch to end, and
    what queues up while both are busy is still decoded in one batch."""
    batcher = Batcher(workers=2)
    try:
        first = busy(batcher, bot)
        second = busy(batcher, bot)  # taken by the other worker while the first runs
        assert first.running() and not first.done()
        prompts = [p for p, _ in TINY_PAIRS]
        futures = [batcher.submit(configured(bot), [p]) for p in prompts]
        assert [f.result(timeout=30)[0].text for f in futures] == [r for _, r in TINY_PAIRS]
        for blocker in (first, second):
            assert len(blocker.result(timeout=30)[0].tokens) == 30
        assert (batcher.batches, batcher.rows) == (3, 2 + len(prompts))
    finally:
        batcher.close()
    assert not any(thread.is_alive() for thread in batcher._threads)


def test_a_batcher_needs_a_worker():
    with pytest.raises(ValueError, match="at least one worker"):
        Batcher(workers=0)
