"""What TensorBoard logs cost a training run (#29): the same training with and without them,
alternated, each in a fresh process; writes bench/tensorboard.json.

    make bench-tensorboard
    .venv/bin/python bench/tensorboard_overhead.py --rounds 1 -o /tmp/t.json  # a quick look

The training is `chatbot train`'s on the default corpus with the default preset, cut to
`--epochs` epochs (3): the callbacks chatbot train passes (probe replies, and the answer rates
its stop rule reads), the time train() reports (metrics.json's train_seconds: from the start of
train() to the finished run directory). Only train.tensorboard differs: "runs" (the default) or
"off". Few epochs make the logs' fixed costs (clearing old logs, the settings, the projector's
labels) weigh more than in a whole run, so the overhead is, if anything, overstated.

Rounds alternate the order (off then on, on then off, ...), so that a drift of the machine's
speed falls on both alike; the overhead is the median of the rounds' ratios on/off, minus 1,
of train()'s wall time and of the process's CPU time (which other programs on a shared machine
sway less).

Each run with logs also times the TensorBoard callback's methods from inside (the logs' own
work, apart from the gradient norm in the training step), a figure the machine's noise hardly
touches; and the gradient norm, the part inside the training step, is timed on its own
(NormJob). About 12 minutes on 2 idle CPU cores for 4 rounds; a busy machine takes longer.

(Not bench/tensorboard.py: run as a script, a module of that name in bench/ would stand in for
the tensorboard package, in this process and in the harness's workers.)
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import ROOT, load_average, machine, spawn, write_results

WORK = ROOT / "bench" / ".work" / "tensorboard"
DATA = ROOT / "data" / "chatterbot.tsv"


@dataclass(frozen=True)
class TrainJob:
    """One training run of `epochs` epochs with train.tensorboard = `tensorboard`."""

    tensorboard: str
    epochs: int
    data: str
    out: str
    name: str

    def run(self) -> dict[str, Any]:
        from chatbot.cli.training import train_config
        from chatbot.decoding.probes import ProbeReplies
        from chatbot.decoding.quality import AnswerRates
        from chatbot.training.train import train

        config = train_config(argparse.Namespace(preset="default"))  # as chatbot train makes it
        config.train.epochs, config.train.tensorboard = self.epochs, self.tensorboard
        inside = timed_callback()
        cpu = cpu_seconds()
        result = train(self.data, self.out, config, overwrite=True, verbose=0,
                       log=lambda _: None, callbacks=[ProbeReplies.of, AnswerRates.of])
        logs = Path(self.out) / "runs"
        written = sum(p.stat().st_size for p in logs.rglob("*") if p.is_file()) \
            if logs.is_dir() else 0
        return {"seconds": round(result.seconds, 3), "epochs": result.epochs,
                "cpu_seconds": round(cpu_seconds() - cpu, 3),
                "seconds_in_logging_callback": round(inside[0], 3), "log_bytes": written}


@dataclass(frozen=True)
class NormJob:
    """What the gradient norm costs a training step, the part of the logs' cost that is inside
    the step: the default model on `batches` batches of the default corpus, trained by one loop
    that measures the norm and one that does not, in turn, `blocks` times each, in one
    process. The same batches for both; seconds per step, wall and CPU."""

    data: str
    batches: int = 20
    blocks: int = 10
    name: str = "gradient norm"

    def run(self) -> dict[str, Any]:
        import itertools
        import time

        import keras
        import tensorflow as tf

        from chatbot.cli.training import train_config
        from chatbot.models import arch_module
        from chatbot.models.common import compile_model
        from chatbot.training.batches import Batches
        from chatbot.training.loop import Loop
        from chatbot.training.prepare import prepare_data

        config = train_config(argparse.Namespace(preset="default"))
        data = prepare_data(config, self.data)
        config.model.vocab_size = len(data.vocab)
        keras.utils.set_random_seed(config.train.seed)
        model = arch_module(config.model.arch).build(config.model)
        compile_model(model, config.train, devices=1)  # as train() builds it
        train = config.train
        batches = list(itertools.islice(iter(Batches(
            data.train_examples, batch_size=train.batch_size,
            bucket_by_length=train.bucket_by_length, seed=train.seed).dataset()), self.batches))
        strategy = tf.distribute.get_strategy()
        loops = {"without": Loop(model, strategy), "with": Loop(model, strategy, True)}
        for loop in loops.values():  # traced for every batch shape before timing
            loop.fit(batches, epochs=1, steps=len(batches), verbose=0)
        wall: dict[str, list[float]] = {arm: [] for arm in loops}
        cpu: dict[str, list[float]] = {arm: [] for arm in loops}
        for block in range(self.blocks):
            for arm in (["without", "with"] if block % 2 == 0 else ["with", "without"]):
                started, used = time.perf_counter(), cpu_seconds()
                loops[arm].fit(batches, epochs=1, steps=len(batches), verbose=0)
                wall[arm].append((time.perf_counter() - started) / len(batches))
                cpu[arm].append((cpu_seconds() - used) / len(batches))
        return {arm: {"step_ms_wall_median": round(1000 * statistics.median(wall[arm]), 3),
                      "step_ms_cpu_median": round(1000 * statistics.median(cpu[arm]), 3)}
                for arm in loops}


def cpu_seconds() -> float:
    """CPU seconds this process (all its threads) has used: less swayed than wall time by
    other programs on a shared machine."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def timed_callback() -> list[float]:
    """Makes every method of the TensorBoard callback add its seconds to the list's one item:
    the logs' own cost, measured inside the run, which the machine's noise hardly touches
    (the gradient norm, computed in the training step, is not in it)."""
    import time

    from chatbot.training.tensorboard import TensorBoardLogs

    seconds = [0.0]

    def timed(method):
        def wrapper(*args, **kwargs):
            started = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                seconds[0] += time.perf_counter() - started
        return wrapper

    for name in ("on_train_begin", "on_epoch_begin", "on_train_batch_end", "on_epoch_end",
                 "on_train_end", "table"):
        setattr(TensorBoardLogs, name, timed(getattr(TensorBoardLogs, name)))
    return seconds


def rounds(count: int, epochs: int) -> list[dict[str, Any]]:
    """`count` rounds of one run without logs and one with, in alternating order."""
    # The job through this module's importable name, which the harness's worker imports.
    from tensorboard_overhead import TrainJob as Job

    done = []
    for n in range(count):
        order = ["off", "runs"] if n % 2 == 0 else ["runs", "off"]
        runs = {}
        for setting in order:
            name = f"round {n + 1} {'with' if setting == 'runs' else 'without'} logs"
            runs[setting] = spawn(Job(setting, epochs, str(DATA), str(WORK / setting), name))
            print(f"[{name}] {runs[setting]['seconds']:.1f} s", file=sys.stderr, flush=True)
        done.append({"order": ["without" if s == "off" else "with" for s in order],
                     "without_logs": runs["off"], "with_logs": runs["runs"],
                     "ratio": round(runs["runs"]["seconds"] / runs["off"]["seconds"], 4),
                     "cpu_ratio": round(runs["runs"]["cpu_seconds"] / runs["off"]["cpu_seconds"],
                                        4)})
    return done


def summary(done: list[dict[str, Any]]) -> dict[str, Any]:
    figures = {}
    for what, ratio in (("seconds", "ratio"), ("cpu_seconds", "cpu_ratio")):
        ratios = [r[ratio] for r in done]
        figures[what] = {
            "median_without_logs": round(statistics.median(
                r["without_logs"][what] for r in done), 2),
            "median_with_logs": round(statistics.median(r["with_logs"][what] for r in done), 2),
            "ratio_with_over_without": {"median": statistics.median(ratios), "min": min(ratios),
                                        "max": max(ratios)},
            "overhead_percent": round(100 * (statistics.median(ratios) - 1), 2)}
    return {
        "wall": figures["seconds"], "cpu": figures["cpu_seconds"],
        "target_percent": 3.0,
        # The callback's own seconds in the runs with logs, as a share of their time.
        "logging_callback_percent": round(100 * statistics.median(
            r["with_logs"]["seconds_in_logging_callback"] / r["with_logs"]["seconds"]
            for r in done), 2),
        "log_bytes": done[-1]["with_logs"]["log_bytes"],
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-o", "--output", default="bench/tensorboard.json")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args(argv)
    if not DATA.is_file():
        raise SystemExit(f"{DATA}: missing; run 'make data' first")
    os.chdir(ROOT)
    started = load_average()
    done = rounds(args.rounds, args.epochs)
    from tensorboard_overhead import NormJob  # importable by the harness's worker

    norm = spawn(NormJob(str(DATA)))
    for measure in ("wall", "cpu"):
        without, with_ = (norm[arm][f"step_ms_{measure}_median"] for arm in ("without", "with"))
        norm[f"{measure}_percent_of_a_step"] = round(100 * (with_ / without - 1), 2)
    write_results(args.output, {
        "what": f"chatbot train's training (default preset, {DATA.relative_to(ROOT)}, "
                f"{args.epochs} epochs, probe replies and answer rates) with TensorBoard logs "
                "(train.tensorboard runs, every train.tensorboard_steps steps) and without "
                "(off), alternated, a fresh process each; seconds: train()'s own",
        "summary": summary(done), "rounds": done, "gradient_norm_in_the_step": norm,
        "machine": machine(started)})


if __name__ == "__main__":
    main()
