"""Decoding speed of a trained run, in NumPy as the chat decodes: per-reply latency, cached
against uncached decoding at a fixed reply length, and the chat's cold start.

- latency: `Bot.reply` (batch of 1, as the chat asks), with the run's saved greedy settings,
  retrieval on (as the chat) and off, over distinct training prompts, after a warm-up;
- forced length: the greedy sampler with min_len = max_len = `forced_tokens`, so every reply
  has exactly that many tokens (<EOS> is banned before, the loop stops at it), batch of 1,
  through the run's engine and, for the transformer, through `UncachedEngine` (the same model
  recomputing the whole sequence at every step), taking turns prompt by prompt; the replies
  of both must be identical;
- cold start: wall time of a fresh `python -c "from chatbot.decoding.bot import Bot;
  Bot.load(DIR).reply('hi')"`, and whether that process imported TensorFlow.
"""

from __future__ import annotations

import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import ROOT, summary

WARM_UP = 5  # replies before timing starts


@dataclass(frozen=True)
class DecodeJob:
    """The decoding figures of the run `run_dir` (see the module's docstring)."""

    run_dir: str
    prompts: int = 300  # distinct training prompts timed with Bot.reply, drawn with `seed`
    forced_prompts: int = 50  # prompts timed at the forced length, each engine
    forced_tokens: int = 40  # reply tokens at the forced length
    cold_starts: int = 5  # fresh processes timed
    seed: int = 0
    name: str = ""

    def run(self) -> dict[str, Any]:
        from known import run_split

        from chatbot.decoding.bot import Bot

        bot = Bot.load(self.run_dir)
        train, _ = run_split(bot.config, bot.config.data.path)
        distinct = list(dict.fromkeys(p.prompt for p in train))
        prompts = random.Random(self.seed).sample(distinct, min(self.prompts, len(distinct)))
        latency = {}
        for retrieval in (True, False):
            bot.configure(retrieval=retrieval)
            latency["retrieval_on" if retrieval else "retrieval_off"] = per_reply_ms(
                bot.reply, prompts)
        return {"arch": bot.config.model.arch, "prompts": len(prompts),
                "decode": {"strategy": bot.decode.strategy, "max_reply_len":
                           bot.decode.max_reply_len, "loop_guard": bot.decode.loop_guard},
                "greedy_ms": latency,
                "forced_length": self.forced(bot, prompts[: self.forced_prompts]),
                "cold_start_s": self.cold_start()}

    def forced(self, bot, prompts: Sequence[str]) -> dict[str, Any]:
        """ms per reply of exactly `forced_tokens` tokens, cached and (transformer) uncached."""
        from chatbot.decoding.samplers import get_sampler
        from chatbot.models import transformer
        from chatbot.models.weights import read_keras_weights
        from chatbot.rundir import MODEL

        sampler = get_sampler("greedy", max_len=self.forced_tokens, min_len=self.forced_tokens)
        encoded = [bot.vocab.encode(bot.prompt_tokens(p)) for p in prompts]
        engines = {"cached": bot.engine}
        if bot.config.model.arch == "transformer":
            weights = read_keras_weights(Path(self.run_dir) / MODEL)
            engines["uncached"] = transformer.UncachedEngine(weights, bot.config.model, bot.vocab)
        out: dict[str, Any] = {"prompts": len(prompts), "reply_tokens": self.forced_tokens}

        def reply(engine, ids):
            return sampler(engine, [ids], bot.vocab)[0][0].tokens

        # Prompt by prompt, each engine in turn, so that a drift in a shared machine's speed
        # falls on both alike.
        for ids in encoded[:WARM_UP]:
            for engine in engines.values():
                reply(engine, ids)
        times: dict[str, list[float]] = {name: [] for name in engines}
        replies: dict[str, list[list[int]]] = {name: [] for name in engines}
        for ids in encoded:
            for name, engine in engines.items():
                started = time.perf_counter()
                replies[name].append(reply(engine, ids))
                times[name].append((time.perf_counter() - started) * 1e3)
        out |= {name: summary(times[name]) for name in engines}
        lengths = {len(r) for r in replies["cached"]}
        out["reply_lengths"] = sorted(lengths)
        if "uncached" in engines:
            out["identical_replies"] = (f"{sum(a == b for a, b in zip(*replies.values()))}/"
                                        f"{len(encoded)}")
            out["speedup_cached_over_uncached"] = round(
                out["uncached"]["p50_ms"] / out["cached"]["p50_ms"], 2)
            out["speedup_per_prompt_median"] = round(statistics.median(
                u / c for u, c in zip(times["uncached"], times["cached"])), 2)
        return out

    def cold_start(self) -> dict[str, Any]:
        """Seconds of fresh processes that load the run and reply once."""
        code = f"from chatbot.decoding.bot import Bot; Bot.load({self.run_dir!r}).reply('hi')"
        times = []
        for _ in range(self.cold_starts):
            started = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)
            times.append(time.perf_counter() - started)
        check = code + "; import sys; print('tensorflow' in sys.modules)"
        imported = subprocess.run([sys.executable, "-c", check], cwd=ROOT, check=True,
                                  capture_output=True, text=True).stdout.strip()
        return {"runs": [round(t, 3) for t in times],
                "median": round(statistics.median(times), 3),
                "imports_tensorflow": imported == "True"}


def per_reply_ms(reply: Callable[[Any], object], prompts: Sequence[Any]) -> dict[str, float]:
    """p50, p90 and mean milliseconds per call of `reply`, one prompt at a time, after a
    warm-up of WARM_UP calls."""
    for prompt in prompts[:WARM_UP]:
        reply(prompt)
    times = []
    for prompt in prompts:
        started = time.perf_counter()
        reply(prompt)
        times.append(time.perf_counter() - started)
    return summary(times)
