"""The measuring harness of the benchmarks, apart from what they measure.

A job is a small dataclass with a `name` and a `run()` that returns a dict of figures (see
`Job`). `spawn(job)` runs it alone in a fresh Python process, so that its peak resident set size
(`ru_maxrss`) belongs to that job alone:

    python bench/harness.py --worker '{"class": "pipelines:FitJob", "job": {...}}'

is what spawn() runs; the job's figures are the last line it prints. Inside a job, `EpochClock`
times each training epoch and measures how busy the machine's other cores were meanwhile, the
figure that says whether a measurement was disturbed. `MatmulJob` measures the float32 matmul
peak that achieved FLOP rates are compared with.

Importing this module does not load TensorFlow: the parent process only spawns and sums up.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before any job loads TensorFlow
if str(ROOT) not in sys.path:  # the chatbot package, also when it is not installed
    sys.path.insert(0, str(ROOT))


def ms(seconds: Sequence[float], q: float) -> float:
    """The q-th percentile (0 to 100) of durations in seconds, in milliseconds: linear
    interpolation between the closest ranks (numpy's default), the one definition every
    benchmark here reports."""
    ordered = sorted(seconds)
    if not ordered:
        raise ValueError("no durations to take a percentile of")
    at = (len(ordered) - 1) * q / 100
    low = int(at)
    high = min(low + 1, len(ordered) - 1)
    return round(1000 * (ordered[low] + (ordered[high] - ordered[low]) * (at - low)), 2)


def summary(seconds: Sequence[float]) -> dict[str, float]:
    """p50, p90 and mean of durations in seconds, in milliseconds."""
    return {"p50_ms": ms(seconds, 50), "p90_ms": ms(seconds, 90),
            "mean_ms": round(1000 * sum(seconds) / len(seconds), 2)}


class JobError(Exception):
    """A job's settings that do not fit its data: the worker prints the message, no traceback."""


class Job(Protocol):
    """What spawn() runs: a dataclass (JSON-serializable fields, nested dataclasses allowed),
    defined in an importable module of bench/, whose run() returns JSON-serializable figures."""

    name: str

    def run(self) -> dict[str, Any]: ...


# --- the parent: one subprocess per job ----------------------------------------------------------

def spawn(job: Job) -> dict[str, Any]:
    """Runs `job` alone in a fresh Python process and returns its figures, with the 1-minute
    load average at its start (`load_1min_at_start`).

    Jobs run one at a time: in a trial where several Keras fit() processes took turns epoch by
    epoch, a fifth of the fit() epochs took 3-5x as long (with no other load on the machine),
    while the same jobs run alone never did. The cause was not found."""
    cls = type(job)
    if cls.__module__ == "__main__":
        raise ValueError(f"{cls.__name__}: a job's class must live in an importable module of "
                         f"bench/, not in the script that runs it, so the worker can import it")
    load = round(os.getloadavg()[0], 2)
    print(f"[{job.name}] starts; load {load}", file=sys.stderr, flush=True)
    spec = {"class": f"{cls.__module__}:{cls.__qualname__}", "job": dataclasses.asdict(job)}
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(spec)]
    done = subprocess.run(command, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    if done.returncode != 0:
        raise SystemExit(f"benchmark job {job.name} failed (exit {done.returncode})")
    return {**json.loads(done.stdout.strip().splitlines()[-1]), "load_1min_at_start": load}


def load_average() -> list[float]:
    """The machine's 1, 5 and 15-minute load averages."""
    return [round(v, 2) for v in os.getloadavg()]


def machine(load_at_start: list[float]) -> dict[str, Any]:
    """Where the figures were measured, and how loaded the machine was from start to end."""
    return {"cpus": os.cpu_count(), "python": platform.python_version(),
            "load_average_start_1_5_15min": load_at_start,
            "load_average_end_1_5_15min": load_average()}


def write_results(path: str | Path, results: dict[str, Any]) -> None:
    """Saves the figures as indented JSON at `path`, and prints them."""
    text = json.dumps(results, indent=2) + "\n"
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(text)
    print(text, end="")


# --- the worker: what a job measures with ------------------------------------------------------

def rss_mib() -> dict[str, float | None]:
    """Peak resident set size so far (ru_maxrss is KiB on Linux) and the current one, in MiB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    try:
        status = Path("/proc/self/status").read_text().splitlines()
        now = int(next(line for line in status if line.startswith("VmRSS:")).split()[1])
    except (OSError, StopIteration):
        now = None
    return {"peak": round(peak, 1), "current": None if now is None else round(now / 1024, 1)}


def cpu_seconds() -> tuple[float | None, float]:
    """CPU seconds used so far by the whole machine (None if unknown) and by this process.

    Their difference over an epoch, divided by its length, is how many cores other programs
    took meanwhile: the figure that says whether a measurement was disturbed.
    """
    usage = resource.getrusage(resource.RUSAGE_SELF)
    try:  # cpu  user nice system idle iowait irq softirq steal ... (in clock ticks)
        ticks = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:9]]
        machine_s = (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError):
        machine_s = None
    return machine_s, usage.ru_utime + usage.ru_stime


class EpochClock:
    """Seconds per training epoch, the cores other programs kept busy meanwhile, the training
    loss, and then (outside the timed epoch) `validation()`, if given."""

    def __init__(self, name: str, validation: Callable[[], float] | None = None):
        self.name, self.validation = name, validation
        self.began = 0.0  # perf_counter() when training began (after fit's own setup)
        self.seconds: list[float] = []
        self.others: list[float | None] = []  # cores busy with other programs, per epoch
        self.train_loss: list[float] = []
        self.val_loss: list[float] = []

    def callback(self):
        """The clock as a Keras callback, for Keras fit() and chatbot.training.loop.Loop alike."""
        import keras

        return keras.callbacks.LambdaCallback(
            on_train_begin=lambda logs: self.train_begin(),
            on_epoch_begin=lambda epoch, logs: self.epoch_begin(),
            on_epoch_end=lambda epoch, logs: self.epoch_end(epoch, float(logs["loss"])))

    def train_begin(self) -> None:
        self.began = time.perf_counter()

    def epoch_begin(self) -> None:
        self.cpu_start = cpu_seconds()
        self.epoch_start = time.perf_counter()

    def epoch_end(self, epoch: int, loss: float) -> None:
        self.seconds.append(time.perf_counter() - self.epoch_start)
        machine_s, own = (end - start for end, start in zip(cpu_seconds(), self.cpu_start))
        self.others.append((machine_s - own) / self.seconds[-1] if machine_s is not None else None)
        self.train_loss.append(loss)
        if self.validation is not None:
            self.val_loss.append(self.validation())
        shown = f", val_loss {self.val_loss[-1]:.4f}" if self.val_loss else ""
        print(f"    {self.name} epoch {epoch + 1}: {self.seconds[-1]:.1f} s, loss "
              f"{loss:.4f}{shown}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class MatmulJob:
    """The machine's float32 matmul rate: the peak that training's FLOP rates are compared with."""

    n: int = 2048  # the matrices are n x n
    repeats: int = 10  # timed products, after one warm-up
    name: str = "matmul"

    def run(self) -> dict[str, Any]:
        """Best and median GFLOP/s of an n x n float32 tf.matmul, after one warm-up."""
        import tensorflow as tf

        a, b = tf.random.normal((self.n, self.n)), tf.random.normal((self.n, self.n))
        float(tf.matmul(a, b)[0, 0])
        times = []
        for _ in range(self.repeats):
            started = time.perf_counter()
            float(tf.matmul(a, b)[0, 0])  # reading one element waits for the product
            times.append(time.perf_counter() - started)
        flop = 2 * self.n**3
        return {"n": self.n, "repeats": len(times),
                "gflop_per_s_best": round(flop / min(times) / 1e9, 1),
                "gflop_per_s_median": round(flop / statistics.median(times) / 1e9, 1)}


def from_dict(cls: type, raw: dict[str, Any]):
    """An instance of the dataclass `cls` from `dataclasses.asdict` output (after JSON)."""
    hints = typing.get_type_hints(cls)
    return cls(**{key: from_dict(hints[key], value) if dataclasses.is_dataclass(hints[key])
                  else value for key, value in raw.items()})


def work(spec: dict[str, Any]) -> dict[str, Any]:
    """Runs the job that spawn() described in `spec`; returns its figures."""
    module, _, name = spec["class"].partition(":")
    return from_dict(getattr(importlib.import_module(module), name), spec["job"]).run()


def worker_main(argv: list[str] | None = None) -> None:
    """`python bench/harness.py --worker SPEC`: runs one job, prints its figures as JSON."""
    parser = argparse.ArgumentParser(description="Runs one benchmark job (see spawn()).")
    parser.add_argument("--worker", required=True, help="the job, as spawn() writes it")
    try:
        figures = work(json.loads(parser.parse_args(argv).worker))
    except JobError as exc:
        raise SystemExit(f"error: {exc}") from None
    print(json.dumps(figures))


if __name__ == "__main__":
    # Through the module `harness`, which the jobs import: its JobError is the one they raise.
    import harness

    harness.worker_main()
