"""How the cost of the data grows with the corpus (issue #28): `make bench-scale`.

    .venv/bin/python bench/scale.py                          # 10k, 100k, 1M and 10M pairs
    .venv/bin/python bench/scale.py --sizes 10k 100k         # these sizes; the others are kept
    .venv/bin/python bench/scale.py --sizes 1M --steps startup

For each size N, a synthetic TSV of N pairs shaped like the default corpus (bench/synthetic.py)
is written to bench/.work/scale/ (kept for the next run; never committed). Then each step runs
alone in a child process, one after the other, and its wall seconds, CPU seconds (user +
system: the 2 cores are shared, so CPU time is the steadier figure) and peak RSS (ru_maxrss from
os.wait4, started through bench/peak_rss.py so that it is the step's own) are recorded, with the
1-minute load average at its start:

    check          chatbot data check FILE
    tokenize       reading and tokenizing alone (bench/scale_jobs.py TokenizeJob): the baseline
    prepare_plain  chatbot data prepare FILE --out DIR --noise-copies 0: the baseline's work
                   plus dropping repeats, splitting, encoding and writing the shards
    prepare        chatbot data prepare FILE --out DIR, the default settings: since 2026-12-07
                   no noisy copies written (a run draws them in the stream), before that one
                   of each training prompt, made and tokenized too
    train          chatbot train --data DIR --preset tiny --epochs 1 --steps-per-epoch 50: also
                   the bot's memory (the most frequent prompts), the answer rates after the
                   epoch and the final evaluation, on samples of the data
    speed          (at 100k) training steps per second from the shards and from examples in
                   memory, on the same model, one process per pipeline, alternated (ABAB)
    startup        (at 1M) `chatbot reply` of one prompt on stdin and `chatbot serve` until
                   GET /health answers, on the run trained at that size

A step that fails is recorded with its exit code and the end of its output, and the
benchmark goes on. Results go to bench/scale.json (sizes measured before are kept) and the
figure to bench/scale.png.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from harness import ROOT, load_average, machine, write_results  # noqa: E402
from scale_jobs import SpeedJob, TokenizeJob  # noqa: E402
from synthetic import RARE, write_synthetic_tsv  # noqa: E402

WORK = ROOT / "bench" / ".work" / "scale"
SIZES = ("10k", "100k", "1M", "10M")
STEPS = ("check", "tokenize", "prepare_plain", "prepare", "train", "speed", "startup")
SPEED_SIZE = 100_000  # pairs of the steps-per-second comparison
STARTUP_SIZE = 1_000_000  # pairs of the run whose start-up is measured
TARGET_SIZE = 10_000_000  # pairs the memory and time targets are set at
TRAIN_STEPS = 50  # training steps of the `train` step
# The targets on this 2-core, 24 GiB machine.
TARGETS = {"data_peak_rss_mib": 1024, "prepare_over_tokenize": 2.0, "train_peak_rss_mib": 2048,
           "shards_over_memory_steps_per_second": 0.9, "start_seconds": 2.0,
           "start_rss_mib": 600}
PROMPT = "how are you?"  # what `chatbot reply` answers in the start-up step


def pairs_of(text: str) -> int:
    """'10k' -> 10000, '1M' -> 1000000, '250' -> 250."""
    scale = {"k": 1_000, "m": 1_000_000}.get(text[-1:].lower(), 1)
    try:
        pairs = int(float(text[:-1] if scale > 1 else text) * scale)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a corpus size such as 10k or 1M, received "
                                         f"{text!r}") from None
    if pairs < 1:
        raise argparse.ArgumentTypeError(f"a corpus size must be at least 1, received {text!r}")
    return pairs


def synthetic_file(pairs: int, seed: int) -> tuple[Path, dict[str, Any]]:
    """The synthetic TSV of `pairs` pairs, written unless a finished one is there already
    (its description, written last, says so)."""
    path = WORK / f"pairs-{pairs}-seed{seed}.tsv"
    meta = path.with_suffix(".json")
    if meta.exists() and path.exists():
        info = json.loads(meta.read_text())
        if info.get("rare_share") == RARE and info.get("bytes") == path.stat().st_size:
            return path, info
    print(f"writing {pairs:,} synthetic pairs to {path} ...", file=sys.stderr, flush=True)
    started = time.perf_counter()
    info = write_synthetic_tsv(path, pairs, seed)
    info["seconds_to_write"] = round(time.perf_counter() - started, 1)
    meta.write_text(json.dumps(info, indent=2) + "\n")
    return path, info


# --- one child process, measured ----------------------------------------------------------------

def chatbot(*args: str) -> list[str]:
    return [sys.executable, "-m", "chatbot.cli", *args]


def worker(job) -> list[str]:
    """The command that runs a bench/scale_jobs.py job alone (bench/harness.py's worker)."""
    spec = {"class": f"scale_jobs:{type(job).__qualname__}", "job": dataclasses.asdict(job)}
    return [sys.executable, str(ROOT / "bench" / "harness.py"), "--worker", json.dumps(spec)]


def shown(command: list[str]) -> str:
    """The command as a user would type it, paths relative to the repository."""
    words = ["chatbot" if w == "chatbot.cli" else os.path.relpath(w, ROOT) if w.startswith(
        str(ROOT)) else w for w in command[1:] if w != "-m"]
    return " ".join(words if words[0] == "chatbot" else ["python", *words])


def measure(name: str, command: list[str], stdin: bytes | None = None) -> dict[str, Any]:
    """Runs `command` in a child process, alone, through bench/peak_rss.py (the peak RSS of a
    child of this process would count this process's own: see there): its exit code, wall
    seconds, CPU seconds (user + system) and peak RSS; the end of its output, and on failure
    the end of its error output."""
    logs = WORK / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    out, err, report = (logs / f"{name}.{kind}" for kind in ("out", "err", "json"))
    report.unlink(missing_ok=True)
    load = round(os.getloadavg()[0], 2)
    print(f"[{name}] {shown(command)} (load {load}) ...", file=sys.stderr, flush=True)
    with open(out, "wb") as stdout, open(err, "wb") as stderr:
        done = subprocess.run([sys.executable, "-S", str(ROOT / "bench" / "peak_rss.py"),
                               str(report), *command], input=stdin, stdout=stdout,
                              stderr=stderr, cwd=ROOT)
    figures = {"command": shown(command), "exit_code": done.returncode,
               **(json.loads(report.read_text()) if report.exists() else {}),
               "load_1min_at_start": load, "at": time.strftime("%Y-%m-%dT%H:%M:%S"),
               "code": code_version()}
    lines = out.read_text(encoding="utf-8", errors="replace").splitlines()
    if done.returncode != 0:
        errors = err.read_text(encoding="utf-8", errors="replace").splitlines()
        figures["error"] = (errors or lines)[-12:]
        print(f"[{name}] failed (exit {done.returncode}): {figures['error'][-1:]}",
              file=sys.stderr, flush=True)
    figures["output"] = lines[-12:]
    return figures


def code_version() -> str:
    """The commit of the checkout, and the files of chatbot/ changed since (the code a step
    measured: it may change between the steps of a long run)."""
    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], capture_output=True, text=True, cwd=ROOT)
        return done.stdout.rstrip() if done.returncode == 0 else ""

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    changed = [line[3:] for line in git("status", "--porcelain", "--", "chatbot").splitlines()]
    return commit + (f" + uncommitted changes to {', '.join(changed)}" if changed else "")


def job_figures(measured: dict[str, Any]) -> dict[str, Any]:
    """A worker's measurement with the figures the job printed (its last output line)."""
    if measured["exit_code"] == 0:
        measured["job"] = json.loads(measured.pop("output")[-1])
    return measured


# --- the steps of one size ----------------------------------------------------------------------

def data_steps(pairs: int, tsv: Path, steps: list[str]):
    """(step, its figures) of check, tokenize, prepare_plain, prepare and train at one size
    (those in `steps`), one at a time, each measured when it is asked for."""
    prepared, plain, run = (WORK / f"{name}-{pairs}" for name in ("prepared", "plain", "run"))
    commands = {
        "check": lambda: measure(f"{pairs}-check", chatbot("data", "check", str(tsv))),
        "tokenize": lambda: job_figures(measure(f"{pairs}-tokenize",
                                                worker(TokenizeJob(str(tsv))))),
        "prepare_plain": lambda: measure(f"{pairs}-prepare_plain", chatbot(
            "data", "prepare", str(tsv), "--out", str(plain), "--overwrite",
            "--noise-copies", "0")),
        "prepare": lambda: measure(f"{pairs}-prepare", chatbot(
            "data", "prepare", str(tsv), "--out", str(prepared), "--overwrite")),
        "train": lambda: train_step(pairs, prepared, run),
    }
    for step, run_step in commands.items():
        if step in steps:
            yield step, run_step()


def train_step(pairs: int, prepared: Path, run: Path) -> dict[str, Any]:
    """`chatbot train` of the tiny preset for TRAIN_STEPS steps on the prepared data, with
    what the run recorded of its own time."""
    figures = measure(f"{pairs}-train", chatbot(
        "train", "--data", str(prepared), "--preset", "tiny", "--epochs", "1",
        "--steps-per-epoch", str(TRAIN_STEPS), "--out", str(run), "--overwrite"))
    metrics = run / "metrics.json"
    if figures["exit_code"] == 0 and metrics.exists():
        figures["train_seconds_of_run"] = json.loads(metrics.read_text()).get("train_seconds")
    return figures


def ratios(entry: dict[str, Any]) -> dict[str, Any]:
    """Each prepare's wall and CPU seconds over those of reading and tokenizing alone."""
    base = entry.get("tokenize", {})
    out = {}
    for step in ("prepare_plain", "prepare"):
        done = entry.get(step, {})
        if done.get("exit_code") == 0 and base.get("exit_code") == 0:
            out[f"{step}_over_tokenize"] = {
                "wall": round(done["seconds"] / base["seconds"], 2),
                "cpu": round(done["cpu_seconds"] / base["cpu_seconds"], 2)}
    return out


def speed(tsv: Path, pairs: int, presets: list[str], rounds: int,
          steps: int) -> dict[str, Any]:
    """Steps per second from shards and from memory, one process each, alternated: each round
    runs shards, then memory (then, for a model trained without noisy copies, the shards of
    the --noise-copies 0 prepare, which hold none to filter out); per preset, the ratio of
    each round to memory, and their median."""
    from chatbot.config import preset

    out: dict[str, Any] = {"pairs": pairs, "rounds": rounds,
                           "order": "ABAB (A: shards, B: memory), ABCABC with C: shards_plain"}
    for name in presets:
        sides = {"shards": ("shards", WORK / f"prepared-{pairs}"), "memory": ("memory", None)}
        if not preset(name).train.noise_copies:
            sides["shards_plain"] = ("shards", WORK / f"plain-{pairs}")
        runs = []
        for r in range(1, rounds + 1):
            for side, (pipeline, prepared) in sides.items():
                job = SpeedJob(pipeline, str(tsv), str(prepared or ""), name, steps=steps)
                runs.append({"round": r, "side": side, **job_figures(measure(
                    f"{pairs}-speed-{name}-{side}-{r}", worker(job)))})
        out[name] = {"runs": runs, **_speed_ratios(runs, rounds, [s for s in sides
                                                                  if s != "memory"])}
    return out


def _speed_ratios(runs: list[dict[str, Any]], rounds: int, sides: list[str]) -> dict[str, Any]:
    """Each side's steps per second (per wall and per CPU second) over memory's of the same
    round, and their medians."""
    out = {}
    for kind, key in (("", "steps_per_second"), ("_cpu", "steps_per_cpu_second")):
        rate = {(run["round"], run["side"]): run["job"][key] for run in runs if "job" in run}
        for side in sides:
            each = [round(rate[r, side] / rate[r, "memory"], 3) for r in range(1, rounds + 1)
                    if (r, side) in rate and (r, "memory") in rate]
            out[f"{side}_over_memory{kind}"] = each
            out[f"{side}_median{kind}"] = round(statistics.median(each), 3) if each else None
    return out


def startup(run: Path, pairs: int, rounds: int) -> dict[str, Any]:
    """`chatbot reply` of one prompt and `chatbot serve` until it answers, `rounds` times
    each, on the run trained at `pairs` pairs."""
    replies = [measure(f"{pairs}-reply-{r + 1}", chatbot("reply", "--model", str(run)),
                       stdin=(PROMPT + "\n").encode()) for r in range(rounds)]
    served = [serve_once(run, f"{pairs}-serve-{r + 1}") for r in range(rounds)]
    return {"pairs": pairs, "run": os.path.relpath(run, ROOT), "prompt": PROMPT,
            "reply": replies, "serve": served,
            "median": {"reply_seconds": _median(replies, "seconds"),
                       "reply_cpu_seconds": _median(replies, "cpu_seconds"),
                       "reply_peak_rss_mib": _median(replies, "peak_rss_mib"),
                       "serve_seconds_to_health": _median(served, "seconds_to_health"),
                       "serve_rss_mib_at_health": _median(served, "peak_rss_mib_at_health"),
                       "serve_cpu_seconds": _median(served, "cpu_seconds")}}


def _median(entries: list[dict[str, Any]], key: str) -> float | None:
    values = [e[key] for e in entries if e.get(key) is not None]
    return round(statistics.median(values), 2) if values else None


def serve_once(run: Path, name: str, timeout: float = 120.0) -> dict[str, Any]:
    """`chatbot serve` on a free port: seconds until GET /health first answers 200, and its
    peak RSS then (VmHWM); then it is stopped."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    command = chatbot("serve", "--model", str(run), "--port", str(port))
    load = round(os.getloadavg()[0], 2)
    print(f"[{name}] {shown(command)} (load {load}) ...", file=sys.stderr, flush=True)
    log = WORK / "logs" / f"{name}.log"
    with open(log, "wb") as output:
        started = time.perf_counter()
        child = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, cwd=ROOT)
        seconds = _until_health(child, port, started, timeout)
        rss = _status_mib(child.pid, ("VmHWM", "VmRSS")) if seconds is not None else {}
        child.terminate()
        _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    figures = {"command": shown(command), "seconds_to_health": seconds,
               "peak_rss_mib_at_health": rss.get("VmHWM"), "rss_mib_at_health": rss.get("VmRSS"),
               "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 2),
               "load_1min_at_start": load, "at": time.strftime("%Y-%m-%dT%H:%M:%S"),
               "code": code_version()}
    if seconds is None:
        figures["error"] = log.read_text(errors="replace").splitlines()[-12:] + [
            f"no answer from /health within {timeout:.0f} s (exit {child.returncode})"]
    return figures


def _until_health(child: subprocess.Popen, port: int, started: float,
                  timeout: float) -> float | None:
    """Seconds from `started` until GET /health answers 200; None if the server ended or
    `timeout` passed first."""
    url = f"http://127.0.0.1:{port}/health"
    while time.perf_counter() - started < timeout and _running(child.pid):
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return round(time.perf_counter() - started, 3)
        except OSError:  # not listening yet
            time.sleep(0.01)
    return None


def _running(pid: int) -> bool:
    """Whether the child still runs (not a zombie), without reaping it: os.wait4 does that."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"


def _status_mib(pid: int, fields: tuple[str, ...]) -> dict[str, float]:
    status = Path(f"/proc/{pid}/status").read_text().splitlines()
    return {line.split(":")[0]: round(int(line.split()[1]) / 1024, 1) for line in status
            if line.split(":")[0] in fields}


# --- the targets and the figure -----------------------------------------------------------------

DATA_STEPS = {"check": "data check", "tokenize": "read + tokenize alone (baseline)",
              "prepare_plain": "data prepare --noise-copies 0", "prepare": "data prepare",
              "train": f"train from shards (tiny, {TRAIN_STEPS} steps, + memory, evaluation)"}
WHAT = {
    "sizes": "per corpus size (pairs): the synthetic corpus (bench/synthetic.py), then each "
             "step alone in a child process: the code it ran (commit, and the files of "
             "chatbot/ changed since), wall seconds, CPU seconds (user + system), peak "
             "RSS (ru_maxrss of the child from os.wait4, the child started by bench/peak_rss.py "
             "so that the figure is its own), 1-minute load average at its start",
    "check": "chatbot data check FILE",
    "tokenize": "a child that streams FILE with chatbot.data.stream.stream_pairs and tokenizes "
                "both sides with the word tokenizer (default settings), nothing else: the "
                "baseline of the prepare target (bench/scale_jobs.py TokenizeJob)",
    "prepare_plain": "chatbot data prepare FILE --out DIR --noise-copies 0: the baseline's work "
                     "plus repeats dropped, the split, encoding, the memory and samples, writing "
                     "the shards",
    "prepare": "chatbot data prepare FILE --out DIR, default settings: also 1 noisy copy of "
               "each training prompt made, tokenized and written",
    "ratios": "each prepare's seconds over the baseline's, wall and CPU, measured in the same "
              "run of this benchmark",
    "train": f"chatbot train --data DIR --preset tiny --epochs 1 --steps-per-epoch "
             f"{TRAIN_STEPS}: its peak RSS and seconds include loading TensorFlow, building "
             "the bot's memory (the prepared most frequent prompts), the answer rates after "
             "the epoch and the final evaluation (calibration, metrics on samples of the data)",
    "speed": "training steps per second (per wall second, and per CPU second of the process: "
             "the step and tf.data's threads) of chatbot.training.loop.Loop on the same model "
             "and batch size, built as chatbot.training.train._batches does: shards: "
             "ShardBatches.dataset() of the default prepare (1 noisy copy of each prompt, which "
             "a model trained without noisy copies reads and filters out); shards_plain (for "
             "such a model): of the --noise-copies 0 prepare; memory: Batches(prepare_data(...)"
             ".train_examples).dataset(repeat=True) of the same TSV. One process per pipeline, "
             "alternated; one epoch of warm-up, then the median of the timed epochs. Per "
             "preset: each side's ratio to memory in each round, and the median (X_median: per "
             "wall second, the target's; X_median_cpu: per CPU second)",
    "startup": "of the run trained at that size: `chatbot reply --model RUN` with one prompt "
               "on stdin (wall seconds to exit, CPU seconds, peak RSS), and `chatbot serve "
               "--model RUN --port P`: seconds until GET /health first answers 200, VmHWM "
               "then, CPU seconds to its end (stopped with SIGTERM once /health answered)",
}


def _verdict(entry: dict[str, Any] | None, key: str, limit: float,
             at_most: bool = True) -> dict[str, Any]:
    if not entry:
        return {"limit": limit, "met": None, "note": "not measured"}
    if entry.get("exit_code", 0) != 0 or entry.get(key) is None:
        return {"limit": limit, "met": False, "note": "the step failed"}
    value = entry[key]
    return {"value": value, "limit": limit, "met": value <= limit if at_most else value >= limit}


def verdicts(results: dict[str, Any]) -> dict[str, Any]:
    """Each of the issue's targets, met or not, from what has been measured."""
    big = results.get("sizes", {}).get(str(TARGET_SIZE), {})
    rss, out = TARGETS["data_peak_rss_mib"], {}
    for step in ("check", "prepare_plain", "prepare"):
        out[f"{step}_peak_rss_mib_at_10M"] = _verdict(big.get(step), "peak_rss_mib", rss)
    for step in ("prepare_plain", "prepare"):
        ratio = big.get("ratios", {}).get(f"{step}_over_tokenize")
        for kind in ("wall", "cpu"):
            out[f"{step}_over_tokenize_{kind}_at_10M"] = _verdict(
                ratio, kind, TARGETS["prepare_over_tokenize"])
    out["train_peak_rss_mib_at_10M"] = _verdict(big.get("train"), "peak_rss_mib",
                                                TARGETS["train_peak_rss_mib"])
    for name, figures in results.get("speed", {}).items():
        if isinstance(figures, dict) and "shards_median" in figures:
            out[f"shards_over_memory_steps_per_second_{name}"] = _verdict(
                figures, "shards_median", TARGETS["shards_over_memory_steps_per_second"], False)
    median = results.get("startup", {}).get("median")
    for key, limit in (("reply_seconds", "start_seconds"), ("reply_peak_rss_mib", "start_rss_mib"),
                       ("serve_seconds_to_health", "start_seconds"),
                       ("serve_rss_mib_at_health", "start_rss_mib")):
        out[f"{key}_at_1M"] = _verdict(median, key, TARGETS[limit])
    return out


def plot(results: dict[str, Any], path: Path) -> None:
    """Seconds and peak RSS against pairs, log-log, one line per step; the RSS limits dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5.6))
    sizes = sorted(results.get("sizes", {}).items(), key=lambda item: int(item[0]))
    for i, (step, label) in enumerate(DATA_STEPS.items()):
        done = [(int(n), e[step]) for n, e in sizes if e.get(step, {}).get("exit_code") == 0]
        if not done:
            continue
        x = [n for n, _ in done]
        left.plot(x, [e["seconds"] for _, e in done], "o-", color=f"C{i}", label=label)
        left.plot(x, [e["cpu_seconds"] for _, e in done], ":", color=f"C{i}")
        right.plot(x, [e["peak_rss_mib"] for _, e in done], "o-", color=f"C{i}", label=label)
    median = results.get("startup", {}).get("median")
    if median:
        n = results["startup"]["pairs"]
        for j, (what, seconds, rss) in enumerate((
                ("chatbot reply (start to exit)", "reply_seconds", "reply_peak_rss_mib"),
                ("chatbot serve (start to /health)", "serve_seconds_to_health",
                 "serve_rss_mib_at_health"))):
            left.plot([n], [median[seconds]], "*", ms=12, color=f"C{5 + j}", label=what)
            right.plot([n], [median[rss]], "*", ms=12, color=f"C{5 + j}", label=what)
    left.axhline(TARGETS["start_seconds"], ls="--", color="grey", lw=1)
    for limit, what in ((TARGETS["data_peak_rss_mib"], "check / prepare limit"),
                        (TARGETS["train_peak_rss_mib"], "train limit"),
                        (TARGETS["start_rss_mib"], "reply / serve limit")):
        right.axhline(limit, ls="--", color="grey", lw=1)
        right.annotate(f"{what} ({limit} MiB)", (1, limit), xycoords=("axes fraction", "data"),
                       ha="right", va="bottom", fontsize=8, color="grey")
    left.set(xscale="log", yscale="log", xlabel="pairs", title="seconds (solid: wall, dotted: "
             "CPU; dashed: 2 s start-up limit)")
    right.set(xscale="log", yscale="log", xlabel="pairs", title="peak RSS (MiB)")
    for axes in (left, right):
        axes.grid(True, which="both", alpha=0.3)
    fig.legend(*left.get_legend_handles_labels(), loc="lower center", ncol=4, fontsize=8)
    fig.suptitle("chatbot at scale: synthetic corpora (bench/scale.py, 2 shared CPU cores)")
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


# --- the run -----------------------------------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=pairs_of, nargs="+", default=list(map(pairs_of, SIZES)),
                        help=f"corpus sizes in pairs (default: {' '.join(SIZES)})")
    parser.add_argument("--steps", nargs="+", choices=STEPS, default=list(STEPS),
                        help="steps to measure (default: all); the others keep their figures")
    parser.add_argument("--seed", type=int, default=0, help="of the synthetic corpora")
    parser.add_argument("--speed-presets", nargs="+", default=["tiny", "default"],
                        help="models of the steps-per-second comparison (default: tiny default)")
    parser.add_argument("--speed-rounds", type=int, default=3,
                        help="rounds of the comparison, each both pipelines (default: 3)")
    parser.add_argument("--speed-steps", type=int, default=200,
                        help="steps of each timed epoch of the comparison (default: 200)")
    parser.add_argument("--start-rounds", type=int, default=3,
                        help="start-ups of chatbot reply and of chatbot serve (default: 3)")
    parser.add_argument("-o", "--out", default=str(ROOT / "bench" / "scale.json"))
    parser.add_argument("--figure", default=str(ROOT / "bench" / "scale.png"))
    args = parser.parse_args()

    out = Path(args.out)
    results = json.loads(out.read_text()) if out.exists() else {}
    load_start = load_average()

    def save() -> None:
        results["sizes"] = dict(sorted(results.get("sizes", {}).items(), key=lambda i: int(i[0])))
        results.update(what=WHAT, targets=TARGETS, verdict=verdicts(results),
                       machine=machine(load_start))
        out.write_text(json.dumps(results, indent=2) + "\n")

    for pairs in sorted(set(args.sizes)):
        tsv, corpus = synthetic_file(pairs, args.seed)
        entry = results.setdefault("sizes", {}).setdefault(str(pairs), {})
        entry["corpus"] = {**corpus, "mib": round(corpus["bytes"] / 2**20, 1)}
        for step, figures in data_steps(pairs, tsv, args.steps):
            entry[step] = figures
            entry["ratios"] = ratios(entry)
            save()
        if pairs == SPEED_SIZE and "speed" in args.steps:
            # Per preset: a run of some presets keeps the others' figures.
            results["speed"] = {**results.get("speed", {}), **speed(
                tsv, pairs, args.speed_presets, args.speed_rounds, args.speed_steps)}
            save()
        if pairs == STARTUP_SIZE and "startup" in args.steps:
            results["startup"] = startup(WORK / f"run-{pairs}", pairs, args.start_rounds)
            save()
    save()
    plot(results, Path(args.figure))
    write_results(out, results)
    print(f"wrote {out} and {args.figure}", file=sys.stderr)


if __name__ == "__main__":
    main()
