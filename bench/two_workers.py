"""Two workers against one with twice the batch (issue #28): `make bench-two-workers`.

    .venv/bin/python bench/two_workers.py -o bench/two_workers.json
    .venv/bin/python bench/two_workers.py --epochs 2 --steps 20 --seeds 1 2 --two-seeds 1 \
        -o /tmp/t.json

The issue's target: "Two workers on this machine (two processes, TF_CONFIG on localhost) train
from the shards. Each reads only its own shards, with no shared copy of the corpus, and they
reach the validation loss of one worker with twice the batch, within noise."

1. The corpus (../shared/data/fra-eng.tsv, else the Makefile's DATA) is prepared once into
   bench/.work/two_workers/prepared/ (`chatbot data prepare --noise-copies 0`), with a shard
   size of half the validation pairs, so that the validation split is two shards and there
   are dozens of training shards. Then each worker gets a directory of its own, worker-K/,
   holding copies of the manifest, vocabulary, memory and samples, of the validation shards
   (every worker reads every n-th validation record of them all: ShardBatches.dataset) and of
   its own training shards alone (worker K of 2 reads every 2nd from the K-th): a worker that
   opened another's training shard would fail, as there is none to open.
2. For each seed: two `chatbot train --data worker-K --strategy multiworker` processes (TF_CONFIG
   on 127.0.0.1, each its own index; batch B each), then one `chatbot train --data prepared`
   (batch 2B), the same steps of 2B pairs per epoch, epochs, seed and everything else. Each
   process runs through bench/peak_rss.py (wall and CPU seconds, peak RSS of its own), while
   this process lists its open files (/proc/PID/fd) every few milliseconds: the shards each
   worker (and the single run) really opened.
3. The verdict compares the final validation losses of the two workers with the single worker's,
   against the spread of the single worker's between seeds, and epoch by epoch.

Runs of seeds not asked for again are kept from the previous bench/two_workers.json when it
measured the same shards with the same settings (`--seeds --two-seeds 3` runs the two workers of
seed 3 alone; `--seeds --two-seeds` only judges again).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from harness import ROOT, load_average, machine, write_results  # noqa: E402
from scale import code_version, shown  # noqa: E402

WORK = ROOT / "bench" / ".work" / "two_workers"
CORPORA = (ROOT.parent / "shared" / "data" / "fra-eng.tsv", ROOT / "data" / "chatterbot.tsv")
WORKERS = 2
BATCH = 32  # B: each worker's batch; the single worker's is 2B
STEPS = 100  # optimizer steps (of 2B pairs) per epoch, the same in both runs
EPOCHS = 6
SEEDS = (1, 2, 3)  # of the single worker's runs: their spread is the noise
TWO_SEEDS = (1, 2)  # of the two workers' runs
SAMPLE_EVERY = 0.005  # seconds between two listings of a process's open files
FLAGS = ("--preset", "tiny", "--monitor", "val_loss", "--stop-at", "0", "--tensorboard", "off")


# --- the data: prepared once, then one directory per worker --------------------------------------

def chatbot(*args: str) -> list[str]:
    return [sys.executable, "-m", "chatbot.cli", *args]


def prepare(corpus: Path, out: Path) -> dict[str, Any]:
    """`chatbot data prepare` of `corpus` into `out`, with a shard size of half the validation
    pairs (read from a first prepare): the manifest."""
    def run(shard_size: int) -> dict[str, Any]:
        done = subprocess.run(chatbot("data", "prepare", str(corpus), "--out", str(out),
                                      "--overwrite", "--noise-copies", "0", "--shard-size",
                                      str(shard_size)), capture_output=True, text=True, cwd=ROOT)
        if done.returncode != 0:
            raise SystemExit(f"data prepare failed: {done.stderr[-2000:]}")
        return json.loads((out / "manifest.json").read_text())

    manifest = run(100_000)
    size = math.ceil(manifest["pairs"]["validation"] / WORKERS)
    return run(size) if size != manifest["shards"][0]["examples"] else manifest


def shard_names(manifest: dict[str, Any], split: str) -> list[str]:
    return [s["name"] for s in manifest["shards"] if s["split"] == split]


def worker_dirs(prepared: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    """worker-K/ for each worker: the prepared directory without the training shards of the
    others. Returns each worker's directory and shards."""
    out = {}
    for k in range(WORKERS):
        own = {"train": shard_names(manifest, "train")[k::WORKERS],
               "validation": shard_names(manifest, "validation")}
        folder = WORK / f"worker-{k}"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        for path in prepared.iterdir():
            if not path.name.endswith(".tfrecord") or path.name in own["train"] + own[
                    "validation"]:
                shutil.copy2(path, folder / path.name)
        out[str(k)] = {"dir": os.path.relpath(folder, ROOT), "shards": own,
                       "mib": round(sum(p.stat().st_size for p in folder.iterdir()) / 2**20, 2)}
    return out


# --- the processes: each measured, its open files watched ----------------------------------------

class OpenFiles(threading.Thread):
    """Lists the open files of some processes every SAMPLE_EVERY seconds, until stopped:
    the .tfrecord files each one had open at least once (by name)."""

    def __init__(self, pids: dict[str, int]):
        super().__init__(daemon=True)
        self.pids, self.seen = pids, {name: set() for name in pids}
        self.samples, self.halt = 0, threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            for name, pid in self.pids.items():
                self.seen[name] |= tfrecords_open(pid)
            self.samples += 1
            time.sleep(SAMPLE_EVERY)

    def stop(self) -> dict[str, list[str]]:
        self.halt.set()
        self.join()
        return {name: sorted(files) for name, files in self.seen.items()}


def tfrecords_open(pid: int) -> set[str]:
    """The names of the .tfrecord files process `pid` has open now (none once it ended)."""
    names = set()
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return names
    for fd in fds:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:  # closed meanwhile
            continue
        if target.endswith(".tfrecord"):
            names.add(f"{Path(target).parent.name}/{Path(target).name}")
    return names


def trainer_pid(wrapper: subprocess.Popen, timeout: float = 30.0) -> int:
    """The pid of the command that bench/peak_rss.py (`wrapper`) forked."""
    children = Path(f"/proc/{wrapper.pid}/task/{wrapper.pid}/children")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = children.read_text().split() if children.exists() else []
        if found:
            return int(found[0])
        time.sleep(0.001)
    raise SystemExit(f"bench/peak_rss.py (pid {wrapper.pid}) started no command")


def run_together(commands: dict[str, list[str]], envs: dict[str, dict[str, str]]
                 ) -> dict[str, Any]:
    """Runs the commands at once, each through bench/peak_rss.py; per command: exit code, wall
    and CPU seconds, peak RSS, the shards it opened, the end of its output; and how many
    listings of the open files this process made, in how many CPU seconds."""
    logs = WORK / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    load = round(os.getloadavg()[0], 2)
    started, pids, handles = {}, {}, []
    for name, command in commands.items():
        print(f"[{name}] {shown(command)} (load {load}) ...", file=sys.stderr, flush=True)
        (logs / f"{name}.json").unlink(missing_ok=True)
        out, err = open(logs / f"{name}.out", "wb"), open(logs / f"{name}.err", "wb")
        handles += [out, err]
        started[name] = subprocess.Popen(
            [sys.executable, "-S", str(ROOT / "bench" / "peak_rss.py"), str(logs / f"{name}.json"),
             *command], stdout=out, stderr=err, cwd=ROOT, env={**os.environ, **envs.get(name, {})})
        pids[name] = trainer_pid(started[name])
    watch, own_cpu = OpenFiles(pids), time.process_time()
    watch.start()
    for process in started.values():
        process.wait()
    opened = watch.stop()
    for handle in handles:
        handle.close()
    figures = {}
    for name, command in commands.items():
        report = logs / f"{name}.json"
        lines = (logs / f"{name}.out").read_text(errors="replace").splitlines()
        figures[name] = {"command": shown(command), **({"tf_config": envs[name]["TF_CONFIG"]}
                                                         if name in envs else {}),
                         **(json.loads(report.read_text()) if report.exists() else {}),
                         "shards_opened": opened[name], "load_1min_at_start": load,
                         "output": lines[-6:]}
        if figures[name].get("exit_code") != 0:
            figures[name]["error"] = (logs / f"{name}.err").read_text(
                errors="replace").splitlines()[-12:]
    return {"processes": figures, "code": code_version(), "at": time.strftime(
                "%Y-%m-%dT%H:%M:%S"), "open_file_listings": watch.samples,
            "open_file_listing_cpu_seconds": round(time.process_time() - own_cpu, 1)}


def free_ports(n: int) -> list[int]:
    """`n` distinct ports that were free on 127.0.0.1 a moment ago."""
    ports: set[int] = set()
    while len(ports) < n:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            ports.add(sock.getsockname()[1])
    return sorted(ports)


# --- the runs ------------------------------------------------------------------------------------

def train_args(data: str, out: Path, batch: int, steps_per_epoch: int, epochs: int,
               seed: int) -> list[str]:
    return chatbot("train", "--data", data, "--out", str(out), "--overwrite", *FLAGS,
                   "--batch-size", str(batch), "--steps-per-epoch", str(steps_per_epoch),
                   "--epochs", str(epochs), "--patience", str(epochs), "--seed", str(seed))


def history(run: Path) -> dict[str, Any]:
    """The run's loss and validation loss per epoch (history.csv), and its training seconds
    (metrics.json: from the start of chatbot train to the last epoch's end)."""
    import pandas as pd

    frame = pd.read_csv(run / "history.csv")
    out: dict[str, Any] = {key: [round(float(v), 4) for v in frame[key]]
                           for key in ("loss", "val_loss")}
    out["train_seconds"] = json.loads((run / "metrics.json").read_text()).get("train_seconds")
    return out


def two_workers(seed: int, dirs: dict[str, Any], steps: int, epochs: int) -> dict[str, Any]:
    """The two workers of one seed, each on its own directory, batch B, `steps` steps of 2B
    pairs per epoch (--steps-per-epoch counts batches of B over both workers)."""
    run = WORK / f"two-seed{seed}"
    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(WORKERS)]}
    commands, envs = {}, {}
    for k in range(WORKERS):
        name = f"two-seed{seed}-worker{k}"
        commands[name] = train_args(dirs[str(k)]["dir"], run, BATCH, WORKERS * steps, epochs,
                                    seed) + ["--strategy", "multiworker"]
        envs[name] = {"TF_CONFIG": json.dumps({"cluster": cluster,
                                               "task": {"type": "worker", "index": k}})}
    figures = run_together(commands, envs)
    ok = all(figures["processes"][n].get("exit_code") == 0 for n in commands)
    return {"run": os.path.relpath(run, ROOT), **figures,
            **(history(run) if ok else {"failed": True})}


def single_worker(seed: int, prepared: Path, steps: int, epochs: int) -> dict[str, Any]:
    """One worker on the whole prepared directory, batch 2B, `steps` steps per epoch."""
    run = WORK / f"single-seed{seed}"
    name = f"single-seed{seed}"
    figures = run_together({name: train_args(os.path.relpath(prepared, ROOT), run,
                                             WORKERS * BATCH, steps, epochs, seed)}, {})
    ok = figures["processes"][name].get("exit_code") == 0
    return {"run": os.path.relpath(run, ROOT), **figures,
            **(history(run) if ok else {"failed": True})}


# --- what the figures say ------------------------------------------------------------------------

def shards_check(manifest: dict[str, Any], dirs: dict[str, Any], runs: dict[str, Any]
                 ) -> dict[str, Any]:
    """Per two-worker run: the shards each worker opened (seen in /proc/PID/fd), whether each
    opened only its own, whether the workers' sets are disjoint and together all shards; per
    single run, whether it was seen opening every shard (the listing misses none)."""
    out: dict[str, Any] = {}
    for name, run in runs.items():
        procs = run["processes"]
        opened = {n: {f.split("/")[1] for f in p["shards_opened"]} for n, p in procs.items()}
        entry: dict[str, Any] = {}
        for split in ("train", "validation"):
            every = set(shard_names(manifest, split))
            seen = {n: sorted(s & every) for n, s in opened.items()}
            if name.startswith("single"):
                entry[split] = {"opened": len(seen[name]), "of": len(every),
                                "all_seen": set(seen[name]) == every}
                continue
            own = [set(dirs[str(k)]["shards"][split]) for k in range(WORKERS)]
            sets = [set(s) for s in seen.values()]
            if split == "validation":  # every worker reads all, every n-th record of them
                entry[split] = {"opened_per_worker": [len(s) for s in sets],
                                "each_read_every_shard": all(s == every for s in sets)}
                continue
            entry[split] = {
                "opened_per_worker": [len(s) for s in sets],
                "own_per_worker": [len(s) for s in own],
                "each_only_its_own": all(s <= o for s, o in zip(sets, own)),
                "disjoint": not set.intersection(*sets),
                "together_all": set.union(*sets) == every,
                "opened": {f"worker{k}": sorted(s) for k, s in enumerate(sets)}}
        out[name] = entry
    return out


def verdict(single: dict[str, Any], two: dict[str, Any]) -> dict[str, Any]:
    """The two workers' final validation loss against the single worker's, whose spread over
    the seeds is the noise: met when the means differ by no more than that spread."""
    finals = {kind: {seed: r["val_loss"][-1] for seed, r in runs.items() if "val_loss" in r}
              for kind, runs in (("single", single), ("two_workers", two))}
    s, t = list(finals["single"].values()), list(finals["two_workers"].values())
    if len(s) < 2 or not t:
        return {"met": None, "note": "needs the single worker at two seeds or more and the "
                                     "two workers at one", "final_val_loss": finals}
    noise = max(s) - min(s)
    difference = statistics.mean(t) - statistics.mean(s)
    paired = {seed: round(v - finals["single"][seed], 4)
              for seed, v in finals["two_workers"].items() if seed in finals["single"]}
    epochs = per_epoch(single, two)
    return {"final_val_loss": finals,
            "single_mean": round(statistics.mean(s), 4),
            "single_spread_between_seeds": round(noise, 4),
            "single_stdev": round(statistics.stdev(s), 4),
            "two_workers_mean": round(statistics.mean(t), 4),
            "two_workers_spread_between_seeds": round(max(t) - min(t), 4) if len(t) > 1 else None,
            "difference_of_means": round(difference, 4),
            "paired_differences_same_seed": paired,
            "per_epoch": epochs,
            "epochs_two_workers_mean_below_single_mean": sum(
                e["two_workers_mean"] < e["single_mean"] for e in epochs if e["two_workers_mean"]),
            "rule": "met when |mean(two workers) - mean(single)| <= the single worker's spread "
                    "(max - min) of final validation loss over the seeds",
            "met": abs(difference) <= noise}


def per_epoch(single: dict[str, Any], two: dict[str, Any]) -> list[dict[str, Any]]:
    """After each epoch: the single worker's lowest, mean and highest validation loss over the
    seeds, and the two workers' mean, and how many of their runs were below the single's
    lowest or above its highest."""
    curves = {kind: [r["val_loss"] for r in runs.values() if "val_loss" in r]
              for kind, runs in (("single", single), ("two", two))}
    out = []
    for epoch, values in enumerate(zip(*curves["single"], strict=False)):
        theirs = [c[epoch] for c in curves["two"] if len(c) > epoch]
        out.append({"epoch": epoch + 1, "single_min": min(values),
                    "single_mean": round(statistics.mean(values), 4), "single_max": max(values),
                    "two_workers_mean": round(statistics.mean(theirs), 4) if theirs else None,
                    "two_workers_below_single_min": sum(v < min(values) for v in theirs),
                    "two_workers_above_single_max": sum(v > max(values) for v in theirs)})
    return out


def validation_batches(manifest: dict[str, Any]) -> dict[str, Any]:
    """Each worker's batches of validation pairs (every 2nd record of all the validation shards:
    the shares differ by one pair at most) and the validation steps of an epoch
    (ShardBatches.steps); a shorter share ends on a padding batch, so that no pair counts twice."""
    pairs = manifest["pairs"]["validation"]
    shares = [len(range(k, pairs, WORKERS)) for k in range(WORKERS)]
    return {"pairs_per_worker": shares,
            "batches_per_worker": [math.ceil(n / BATCH) for n in shares],
            "steps_per_epoch": math.ceil(pairs / BATCH / WORKERS)}


def costs(runs: dict[str, Any]) -> dict[str, Any]:
    """Per run: wall seconds (of the last process to end), CPU seconds (summed over its
    processes) and the peak RSS of each process."""
    out = {}
    for name, run in runs.items():
        procs = list(run["processes"].values())
        out[name] = {"wall_seconds": max(p.get("seconds", 0) for p in procs),
                     "cpu_seconds": round(sum(p.get("cpu_seconds", 0) for p in procs), 1),
                     "peak_rss_mib_per_process": [p.get("peak_rss_mib") for p in procs]}
    return out


def what(corpus: Path, steps: int, epochs: int) -> dict[str, str]:
    why = ("English-French pairs (Tatoeba, ../shared/data/fra-eng.tsv): each prompt has one "
           "clear reply, so the validation loss on held-out prompts keeps falling for many "
           "epochs of the tiny model (about 5.1 after 100 steps of 64 pairs, 4.5 after 200, "
           "in a trial). The default corpus (2,019 chit-chat pairs) would hold about 100 "
           "validation pairs. A synthetic corpus (bench/synthetic.py) draws every token "
           "independently, so by construction it has nothing to learn beyond the tokens' "
           "frequencies and the lengths: its validation loss can only fall to their entropy, "
           "where any two runs agree whatever they read (not measured here)")
    if corpus != CORPORA[0]:
        why = (f"{CORPORA[0]} is missing, so the Makefile's DATA, the default corpus; its "
               "validation split is small (about 100 pairs) and the loss on it noisier")
    return {
        "corpus": f"{os.path.relpath(corpus, ROOT)}: {why}",
        "data": "chatbot data prepare CORPUS --noise-copies 0 --shard-size HALF (half the "
                "validation pairs, rounded up); then worker-K/: copies of the manifest, "
                "vocabulary, remap, memory and samples, of the validation shards (every worker "
                "reads every 2nd validation record of them all, ShardBatches.dataset's rule "
                "since the validation fix: before it, a worker read its own validation shards, "
                "and with uneven shares, e.g. --shard-size 400 here, 498 and 400 pairs, 16 and "
                "13 batches of 32 for 15 steps, an epoch's validation loss was over 944 or 930 "
                "rows, some read twice, some missed, not the 898 of the split), and of the "
                "training shards of worker K alone (every 2nd from the K-th)",
        "runs": f"chatbot train, tiny preset, --monitor val_loss --stop-at 0 --patience "
                f"{epochs} --tensorboard off --epochs {epochs}, the same --seed in both; two "
                f"workers: --batch-size {BATCH} --steps-per-epoch {WORKERS * steps} (batches of "
                f"{BATCH} over both: {steps} steps of {WORKERS * BATCH} pairs) --strategy "
                f"multiworker, TF_CONFIG on 127.0.0.1; single: --batch-size {WORKERS * BATCH} "
                f"--steps-per-epoch {steps}. Both train {steps * epochs} optimizer steps on "
                f"{steps * epochs * WORKERS * BATCH:,} pairs; no clock stops them",
        "val_loss": "history.csv of the run (written by the chief): masked mean cross-entropy "
                    "per scored token over the whole validation split after each epoch",
        "processes": "each through bench/peak_rss.py: wall and CPU seconds (user + system) and "
                     "peak RSS (ru_maxrss) of the process alone, load average at the start; "
                     "CPU and wall include loading TensorFlow, the answer rates after each "
                     "epoch and the evaluation after training (the chief's)",
        "shards_opened": f"the .tfrecord files seen open in /proc/PID/fd of the process, "
                         f"listed every {SAMPLE_EVERY * 1000:g} ms while it ran; a single run "
                         "that was seen opening every shard shows the listing misses none",
        "verdict": "final validation loss (the last epoch's) of the two workers against the "
                   "single worker's; the noise is the single worker's spread over the seeds; "
                   "per_epoch: the same after every epoch",
        "machine": "2 CPU cores shared with the other engineers' work (see each process's load "
                   "at its start): wall seconds vary with it; validation losses do not (fixed "
                   "steps, no clock)",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    parser.add_argument("--steps", type=int, default=STEPS,
                        help=f"optimizer steps of {WORKERS * BATCH} pairs per epoch")
    parser.add_argument("--seeds", type=int, nargs="*", default=list(SEEDS),
                        help="of the single worker's runs (default: 1 2 3)")
    parser.add_argument("--two-seeds", type=int, nargs="*", default=list(TWO_SEEDS),
                        help="of the two workers' runs (default: 1 2)")
    parser.add_argument("-o", "--out", default=str(ROOT / "bench" / "two_workers.json"))
    args = parser.parse_args()

    load_start, began = load_average(), time.perf_counter()
    corpus = next((c for c in CORPORA if c.exists()), CORPORA[-1])
    prepared = WORK / "prepared"
    manifest = prepare(corpus, prepared)
    dirs = worker_dirs(prepared, manifest)
    settings = {"batch_per_worker": BATCH, "single_batch": WORKERS * BATCH,
                "steps_per_epoch": args.steps, "epochs": args.epochs,
                "shards_sha256": data_digest(manifest)}
    single, two = kept(Path(args.out), settings)
    for seed in dict.fromkeys([*args.two_seeds, *args.seeds]):  # alternated, seed by seed
        if seed in args.two_seeds:
            two[str(seed)] = two_workers(seed, dirs, args.steps, args.epochs)
        if seed in args.seeds:
            single[str(seed)] = single_worker(seed, prepared, args.steps, args.epochs)
    runs = {**{f"two-seed{k}": v for k, v in two.items()},
            **{f"single-seed{k}": v for k, v in single.items()}}
    results = {
        "what": what(corpus, args.steps, args.epochs),
        "data": {"corpus": os.path.relpath(corpus, ROOT), "pairs": manifest["pairs"],
                 "shard_size": manifest["shards"][0]["examples"],
                 "shards": {s: len(shard_names(manifest, s)) for s in ("train", "validation")},
                 "workers": dirs, "validation_batches": validation_batches(manifest)},
        "settings": settings,
        "verdict": verdict(single, two),
        "shards": shards_check(manifest, dirs, runs),
        "costs": costs(runs),
        "single": single, "two_workers": two,
        "seconds_of_this_invocation": round(time.perf_counter() - began, 1),
        "machine": machine(load_start),
    }
    write_results(args.out, results)


def data_digest(manifest: dict[str, Any]) -> str:
    """One SHA-256 of every shard's: the same data gives the same digest."""
    return hashlib.sha256("".join(s["sha256"] for s in manifest["shards"]).encode()).hexdigest()


def kept(out: Path, settings: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The single and two-worker runs of a previous invocation's `out`, if it measured the same
    data with the same settings (the runs of the seeds asked for again are measured anew)."""
    previous = json.loads(out.read_text()) if out.exists() else {}
    if previous.get("settings") != settings:
        return {}, {}
    return previous.get("single", {}), previous.get("two_workers", {})


if __name__ == "__main__":
    main()
