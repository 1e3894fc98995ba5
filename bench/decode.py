"""Decoding benchmark: cold start, per-reply latency, tokens/s, and the tutorials' naive way.

    make bench-decode            # or: .venv/bin/python bench/decode.py --model models/default

Writes bench/decode.json. All figures come from one run on this machine; they are noisy on a
shared machine, so compare ratios measured together rather than numbers from different runs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import pty
import select
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from harness import ROOT, ms  # noqa: E402  (first: it puts the chatbot package on sys.path)

from chatbot.data.pairs import read_pairs  # noqa: E402
from chatbot.decoding.bot import Bot  # noqa: E402


def cold_start(model: Path, runs: int = 3) -> list[float]:
    """Seconds from process start until `chatbot chat` shows its prompt (model loaded)."""
    times = []
    for _ in range(runs):
        leader, follower = pty.openpty()
        started = time.perf_counter()
        command = [sys.executable, "-m", "chatbot.cli", "chat", "--model", str(model)]
        proc = subprocess.Popen(command, stdin=follower, stdout=follower, stderr=follower, cwd=ROOT,
                                env={**os.environ, "TERM": "xterm"})
        seen = b""
        while b"you>" not in seen:
            ready, _, _ = select.select([leader], [], [], 30)
            if not ready:
                proc.kill()
                raise RuntimeError(f"no prompt after 30 s; output so far: {seen[-500:]!r}")
            seen += os.read(leader, 4096)
        times.append(time.perf_counter() - started)
        os.write(leader, b"\x04")  # Ctrl-D
        proc.wait(timeout=30)
        os.close(leader)
        os.close(follower)
    return times


def latencies(bot: Bot, prompts: list[str]) -> tuple[list[float], int]:
    """Seconds per reply (one prompt at a time) and the number of tokens generated."""
    times, tokens = [], 0
    for prompt in prompts:
        started = time.perf_counter()
        reply = bot.reply(prompt)
        times.append(time.perf_counter() - started)
        tokens += len(reply.tokens) + 1  # + <EOS>
    return times, tokens


def naive_replies(model_dir: Path, bot: Bot, prompts: list[str]) -> tuple[list[float], list]:
    """The tutorials' way: model.predict over the whole prefix for every new token."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    import chatbot.models.common  # noqa: F401  registers the custom metric for loading

    model = keras.saving.load_model(model_dir / "model.keras")
    vocab = bot.vocab
    banned = [vocab.pad_id, vocab.sos_id, vocab.sep_id, vocab.unk_id]
    times, replies = [], []
    for prompt in prompts:
        started = time.perf_counter()
        ids = [vocab.sos_id, *vocab.encode(bot.prompt_tokens(prompt)), vocab.sep_id]
        reply: list[int] = []
        for _ in range(bot.decode.max_reply_len):
            logits = np.array(model.predict(np.array([ids]), verbose=0))[0, -1]
            logits[banned] = -np.inf
            token = int(logits.argmax())
            if token == vocab.eos_id:
                break
            reply.append(token)
            ids.append(token)
        times.append(time.perf_counter() - started)
        replies.append(vocab.decode(reply))
    return times, replies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="models/default")
    parser.add_argument("--data", default="data/chatterbot.tsv")
    parser.add_argument("--prompts", type=int, default=200)
    parser.add_argument("--naive-prompts", type=int, default=20)
    parser.add_argument("-o", "--out", default="bench/decode.json")
    args = parser.parse_args()
    model_dir = Path(args.model)

    prompts = list(dict.fromkeys(p.prompt for p in read_pairs(args.data).pairs))[: args.prompts]
    starts = cold_start(model_dir)
    bot = Bot.load(model_dir)
    bot.reply("warm up")
    greedy, greedy_tokens = latencies(bot, prompts)
    bot.set("beam", "5")
    beam, beam_tokens = latencies(bot, prompts)
    bot.set("beam", "1")

    few = prompts[: args.naive_prompts]
    naive_figures = None
    if bot.config.model.arch == "lstm":  # the baseline below feeds the lstm model's one input
        ours_few, _ = latencies(bot, few)
        naive, naive_out = naive_replies(model_dir, bot, few)
        same = sum(r.tokens == n for r, n in zip(bot.reply_batch(few), naive_out))
        naive_figures = {
            "prompts": len(few),
            "method": "keras model.predict over the whole prefix for every new token",
            "ms_per_reply_mean": round(statistics.mean(naive) * 1e3, 1),
            "ours_ms_per_reply_mean": round(statistics.mean(ours_few) * 1e3, 2),
            "speedup": round(statistics.mean(naive) / statistics.mean(ours_few), 1),
            "identical_replies": f"{same}/{len(few)}",
        }

    results = {
        "model": str(model_dir),
        "arch": bot.config.model.arch,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "cold_start_s": {"runs": [round(t, 3) for t in starts],
                         "median": round(statistics.median(starts), 3)},
        "prompts": len(prompts),
        "greedy_ms": {"p50": ms(greedy, 50), "p95": ms(greedy, 95)},
        "beam5_ms": {"p50": ms(beam, 50), "p95": ms(beam, 95)},
        "greedy_tokens_per_s": round(greedy_tokens / sum(greedy), 1),
        "beam5_tokens_per_s": round(beam_tokens / sum(beam), 1),
        "naive": naive_figures,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
