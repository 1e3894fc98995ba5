"""Architectures side by side at equal training time, on English-French pairs.

    .venv/bin/python bench/archs.py --archs lstm gru --minutes 2 --rounds 2 -o bench/archs.json

Each architecture is trained by `chatbot train`'s own function (the default preset, its `arch`
changed) for the same wall-clock budget (TrainConfig.max_minutes) on the English-French
training pairs of bench/unseen.py's split, then scored on its held-out English prompts as
bench/equal_time.py scores a run: chrF and the answer rate of greedy replies (the model alone,
and with its memory), and perplexity per word. The issue that added `--arch gru` (#26) asks the
GRU to reach the lstm's held-out chrF within 10%.

The architectures train in turn, round after round (lstm, gru, lstm, gru, ...), each round with
its own seed, so that a busy stretch of this shared machine falls on both; every job runs alone
in a fresh process (bench/harness.py), its run under --work (git-ignored). Every figure comes
from one invocation: compare the architectures within it, not across invocations.
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import time
from pathlib import Path
from typing import Any

from equal_time import QualityJob, TrainJob
from harness import ROOT, load_average, machine, spawn, write_results
from transformer import FRA_ENG, write_tsv
from unseen import FraSetup, fra_split

from chatbot.models import ARCHS

FIGURES = ("chrf", "answer_rate", "perplexity_per_word")  # from QualityJob's held_out section


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--archs", nargs="+", default=["lstm", "gru"], choices=sorted(ARCHS))
    parser.add_argument("--minutes", type=float, default=2.0, help="training budget of each run")
    parser.add_argument("--rounds", type=int, default=2, help="runs of each architecture")
    parser.add_argument("--seed", type=int, default=1234, help="the first round's seed")
    parser.add_argument("--fra-data", default=str(FRA_ENG), help="English<TAB>French pairs")
    parser.add_argument("-o", "--out", default=str(ROOT / "bench/archs.json"))
    parser.add_argument("--work", default=str(ROOT / "bench/.work/archs"))
    args = parser.parse_args(argv)

    load_start, started = load_average(), time.perf_counter()
    work = Path(args.work)
    setup = FraSetup(path=args.fra_data, work=str(work), seed=args.seed)
    train_pairs, held_out = fra_split(setup)
    train_tsv, held_tsv = work / "fra-eng-train.tsv", work / "fra-eng-held-out.tsv"
    write_tsv(train_tsv, train_pairs)
    write_tsv(held_tsv, held_out)
    runs: dict[str, list[dict[str, Any]]] = {arch: [] for arch in args.archs}
    for round_ in range(args.rounds):
        seed = args.seed + round_
        for arch in args.archs:
            out = work / f"{arch}-{seed}"
            trained = spawn(TrainJob(str(train_tsv), str(out), "default", args.minutes,
                                     seed=seed, arch=arch, name=f"{arch} seed {seed}"))
            scored = spawn(QualityJob(str(out), str(held_tsv), name=f"{arch} seed {seed}"))
            runs[arch].append({"seed": seed, **trained, **scored})
    summary = {arch: {figure: statistics.mean(r["held_out"][figure] for r in done)
                      for figure in FIGURES} for arch, done in runs.items()}
    results = {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "what": __doc__.split("\n\n")[1].replace("\n", " "),
        "settings": {"archs": args.archs, "minutes": args.minutes, "rounds": args.rounds,
                     "seed": args.seed, "train_pairs": len(train_pairs),
                     "held_out_pairs": len(held_out)},
        "runs": runs,
        "mean": summary,
        "machine": machine(load_start),
        "seconds": round(time.perf_counter() - started, 1),
    }
    if "lstm" in summary:
        results["chrf_ratio_to_lstm"] = {arch: round(s["chrf"] / summary["lstm"]["chrf"], 3)
                                         for arch, s in summary.items()}
    write_results(args.out, results)
    for arch, figures in summary.items():
        print(f"{arch:12s}" + "  ".join(f"{k} {v:.3f}" for k, v in figures.items()))


if __name__ == "__main__":
    main()
