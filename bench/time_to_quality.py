"""Time to quality (#27): the default `make train` against the one of the code before the
issue, side by side in one run.

    make bench-train   # or: .venv/bin/python bench/time_to_quality.py -o bench/time_to_quality.json
    .venv/bin/python bench/time_to_quality.py --skip-baseline --skip-fresh-clone -o /tmp/t.json

Runs, one after another, each a fresh `chatbot train` on the default data with the flags its
code's `make train` passes:

1. baseline: the code of BASELINE (a git worktree, removed at the end), `--max-minutes 8`;
2. new: this code, no flags (the stop rule ends it);
3. baseline_2, new_2: the two again, alternated (--pairs 2, the default), so that the ratio
   is not one moment's load on this shared machine: the time ratio is the new runs' total
   training time over the baseline runs' (each pair's own ratio is listed too);
4. new, loaded: this code again while a second CPU-bound process runs (a busy loop).

Training time is each run's metrics.json `train_seconds`: from the start of `chatbot train` to
its last epoch's end (reading and preparing the data included; the evaluation after training
excluded). Each finished run is then measured by this code, the same way:

- known prompts: every distinct prompt of the data, with the bot as it chats (memory on): the
  share answered with one of the prompt's own replies (chatbot.evaluate.answer_rate);
- the model alone (no memory, no fallback) on the training prompts;
- typing variants (seed 0, one of each kind that applies) of every known prompt, memory on.

5. Fresh clone: `git clone` of this repository into a temporary folder, then `make chat` with
   one prompt on stdin: seconds to the first reply (install, data, training, evaluation
   included). Skipped with --skip-fresh-clone.

Targets (issue #27): the new run reaches >= 99% known, >= 95% model alone, >= 97% variants, in
<= 1/3 of the baseline's training time (totals of the alternated runs); the loaded run's rates
agree within 0.5 points; the fresh clone replies within 5 minutes.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from harness import ROOT, load_average, machine, write_results
from known import run_split

from chatbot.config import RunConfig
from chatbot.decoding.bot import Bot
from chatbot.evaluate import answer_rate, variant_answer_rates
from chatbot.rundir import CONFIG, METRICS

DATA = ROOT / "data/chatterbot.tsv"
WORK = ROOT / "bench/.work/time_to_quality"  # git-ignored
BASELINE = "dae3324"  # main before issue #27
BASELINE_FLAGS = ["--max-minutes", "8"]  # what its `make train` passed
VARIANT_SEED = 0  # the reporting seed (3: the stop rule's, 7: the calibration's)
FIRST_PROMPT = "hello"
STARTED = time.perf_counter()

TARGETS = {  # name: (path of the figure in the results, comparison, bound)
    "known": (("runs", "new", "rates", "known"), ">=", 0.99),
    "model_alone": (("runs", "new", "rates", "model_alone"), ">=", 0.95),
    "variants": (("runs", "new", "rates", "variants"), ">=", 0.97),
    "time_ratio": (("time_ratio_new_to_baseline",), "<=", 1 / 3),
    "loaded_max_difference_points": (("loaded", "max_difference_points"), "<=", 0.5),
    "fresh_clone_first_reply_s": (("fresh_clone", "first_reply_s"), "<=", 300),
}


def log(message: str) -> None:
    print(f"[{time.perf_counter() - STARTED:6.0f} s] {message}", file=sys.stderr, flush=True)


def train(code: Path, out: Path, flags: list[str]) -> dict[str, Any]:
    """`chatbot train` of the code in `code` into `out`, as its make train runs it."""
    env = {**os.environ, "PYTHONPATH": str(code), "TF_CPP_MIN_LOG_LEVEL": "2"}
    command = [sys.executable, "-m", "chatbot.cli", "train", "--data", str(DATA), "--out",
               str(out), "--overwrite", *flags]
    started = time.perf_counter()
    done = subprocess.run(command, env=env, cwd=code, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    metrics = json.loads((out / METRICS).read_text())
    lines = done.stdout.splitlines()
    return {"train_seconds": metrics["train_seconds"],
            "wall_seconds_with_evaluation": round(time.perf_counter() - started, 1),
            "epochs": len((out / "history.csv").read_text().splitlines()) - 1,
            "best_epoch": metrics["best_epoch"], "monitor": metrics["monitor"],
            "stopped": metrics.get("stopped") or next(
                (line for line in lines if line.startswith("stopped")), "all epochs"),
            "load_average_after": load_average()}


def rates(run: Path) -> dict[str, Any]:
    """The three answer rates of a finished run, measured by this code."""
    config = RunConfig.load(run / CONFIG)
    train_pairs, val_pairs = run_split(config, DATA)
    bot = Bot.load(run)
    known = answer_rate(bot, [*train_pairs, *val_pairs])
    variants = variant_answer_rates(bot, [*train_pairs, *val_pairs], VARIANT_SEED)
    bot.configure(retrieval=False, fallback=False)
    alone = answer_rate(bot, train_pairs)
    return {"known": round(known["answer_rate"], 4), "known_prompts": known["prompts"],
            "model_alone": round(alone["answer_rate"], 4), "model_alone_prompts": alone["prompts"],
            "variants": round(variants["all"]["answer_rate"], 4),
            "variants_asked": variants["all"]["prompts"]}


class Busy:
    """A second CPU-bound process: a Python busy loop, for as long as the `with` lasts."""

    def __enter__(self):
        self.process = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        return self

    def __exit__(self, *exc):
        self.process.kill()
        self.process.wait()


def fresh_clone() -> dict[str, Any]:
    """Seconds from `git clone` to the first reply of `make chat`. The chat runs in a
    pseudo-terminal (util-linux `script`), as for a person, and is sent one prompt once it
    asks for one."""
    scratch = Path(tempfile.mkdtemp(prefix="ttq-clone-"))
    chat = None
    try:
        started = time.perf_counter()
        subprocess.run(["git", "clone", "--quiet", str(ROOT), str(scratch / "chatbot")],
                       check=True)
        chat = subprocess.Popen(["script", "-qfec", "make chat", "/dev/null"],
                                cwd=scratch / "chatbot", stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                start_new_session=True)
        output, asked, first = b"", False, None
        while first is None:
            chunk = os.read(chat.stdout.fileno(), 4096)
            if not chunk:  # it ended
                break
            output += chunk
            if not asked and b"you>" in output:
                chat.stdin.write(FIRST_PROMPT.encode() + b"\r")
                chat.stdin.flush()
                asked = True
            elif asked and b"bot>" in output.split(b"you>", 1)[1]:
                first = time.perf_counter() - started
        text = output.decode("utf-8", "replace")
        reply = text[text.find("bot>"):].splitlines()[0] if "bot>" in text else None
        return {"first_reply_s": round(first, 1) if first else None, "reply": reply,
                "output_tail": [line.rstrip() for line in text.splitlines()[-12:]]}
    finally:
        if chat is not None:
            os.killpg(chat.pid, signal.SIGKILL)  # script, make and the chat
            chat.wait()
        shutil.rmtree(scratch, ignore_errors=True)


def check(results: dict[str, Any]) -> dict[str, Any]:
    found = {}
    for name, (path, op, bound) in TARGETS.items():
        value: Any = results
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        met = None if value is None else (value >= bound if op == ">=" else value <= bound)
        found[name] = {"value": value, "target": f"{op} {bound:.4g}", "met": met}
    return found


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-o", "--output", default="bench/time_to_quality.json")
    parser.add_argument("--pairs", type=int, default=2,
                        help="baseline and new runs, alternated (the time ratio is of totals)")
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument("--skip-fresh-clone", action="store_true")
    parser.add_argument("--reuse", action="store_true",
                        help="measure the finished runs of an earlier invocation again instead "
                             "of training them (their training figures are read back)")
    args = parser.parse_args(argv)
    load_at_start = load_average()
    WORK.mkdir(parents=True, exist_ok=True)
    runs: dict[str, Any] = {}
    tree = WORK / "baseline-code"
    git = ["git", "-C", str(ROOT)]
    if not args.skip_baseline and not args.reuse:
        subprocess.run([*git, "worktree", "add", "--detach", "--quiet", str(tree), BASELINE],
                       check=True)
    saved = WORK / "runs.json"  # each run's training figures, as soon as it has them
    if args.reuse:
        runs = json.loads(saved.read_text())
    try:
        order = [(f"{name}{suffix}", code, flags)
                 for suffix in ["", *(f"_{n}" for n in range(2, args.pairs + 1))]
                 for name, code, flags in (("baseline", tree, BASELINE_FLAGS), ("new", ROOT, []))]
        for name, code, flags in [*order, ("new_loaded", ROOT, [])]:
            if name in runs or (name.startswith("baseline") and args.skip_baseline):
                continue
            log(f"{name} ({' '.join(flags) or 'no flags'})")
            with Busy() if name == "new_loaded" else contextlib.nullcontext():
                runs[name] = train(code, WORK / name, flags)
            saved.write_text(json.dumps(runs, indent=1))
    finally:
        if tree.exists():
            subprocess.run([*git, "worktree", "remove", "--force", str(tree)], check=False)
            subprocess.run([*git, "worktree", "prune"], check=False)
    for name, run in runs.items():
        log(f"measuring {name}")
        run["rates"] = rates(WORK / name)
    results: dict[str, Any] = {"what": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
                               "baseline_commit": BASELINE, "runs": runs}
    if "baseline" in runs:
        pairs = [(runs[name]["train_seconds"], runs[name.replace("baseline", "new")]
                  ["train_seconds"]) for name in runs if name.startswith("baseline")]
        results["time_ratio_new_to_baseline"] = round(
            sum(new for _, new in pairs) / sum(old for old, _ in pairs), 3)
        results["time_ratio_of_each_pair"] = [round(new / old, 3) for old, new in pairs]
    again = [runs[name] for name in runs if name.startswith("new_") and name != "new_loaded"]
    results["new_again_same_bot"] = all(
        (run["epochs"], run["rates"]) == (runs["new"]["epochs"], runs["new"]["rates"])
        for run in again) if again else None
    quiet, busy = runs["new"]["rates"], runs["new_loaded"]["rates"]
    differences = {k: round(100 * abs(quiet[k] - busy[k]), 2)
                   for k in ("known", "model_alone", "variants")}
    results["loaded"] = {"difference_points": differences,
                         "max_difference_points": max(differences.values()),
                         "same_epochs": runs["new"]["epochs"] == runs["new_loaded"]["epochs"]}
    if not args.skip_fresh_clone:
        log("fresh clone: make chat")
        results["fresh_clone"] = fresh_clone()
    results["targets"] = check(results)
    results["machine"] = machine(load_at_start)
    results["seconds"] = round(time.perf_counter() - STARTED)
    write_results(args.output, results)


if __name__ == "__main__":
    main()
