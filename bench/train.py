"""Training benchmark: our bucketed pipeline against a padded one-hot one, XLA, and scaling.

    make bench-throughput       # or: .venv/bin/python bench/train.py -o bench/train.json

A smoke run (under 2 minutes on 2 idle cores; its figures mean nothing):

    .venv/bin/python bench/train.py -o /tmp/train.json --train-pairs 300 --val-pairs 50 \\
        --embedding 32 --hidden 48 --epochs 2 --xla-epochs 2 --scale-pairs 700 \\
        --scale-epochs 1 --default-pairs 100 --default-epochs 2

Every measurement trains the `lstm` architecture with the same size and starting weights, in its
own subprocess (bench/harness.py), so that peak RSS (`ru_maxrss`) belongs to that measurement
alone. The pipelines are in bench/pipelines.py, the figures made of their measurements in
bench/figures.py:

1. ours (what `chatbot train` runs: `Batches(...).dataset()` with length buckets and sparse
   targets, trained by `chatbot.training.loop.Loop`, which computes the output layer at scored
   positions only) against padded (a padded one-hot fit, masked by sample weights: `pad_sequences`
   to the global longest row, one-hot `to_categorical` targets, `CategoricalCrossentropy` weighted
   by a 0/1 "scored" mask, `fit(x, y, shuffle=True)`), and against ours_fit (our batches, but Keras
   `fit()` with the output layer at every position), which separates what bucketing gains from
   what the loop gains; all are scored after every epoch with `chatbot train`'s validation loss
   on the same validation batches: on 10k fra-eng pairs (short sentences of similar length:
   little padding to save), and again with the settings of `make train` (the default corpus,
   whose replies vary from 1 to 40 tokens, and the default preset: embedding 128, LSTM 384,
   batch 32);
2. ours_fit with and without XLA (`jit_compile=True`), with padding rounded to 1 and to 8 (the
   loop's gather has a data-dependent shape, which XLA cannot compile);
3. time per epoch and peak RSS of ours at 1k, 10k and 100k pairs, against the machine's
   float32 matmul peak.

The fra-eng parts (1 on fra-eng, 2 and 3) need ../shared/data/fra-eng.tsv (see
../shared/data/README.md); without it they are skipped with a message, their JSON sections say
`skipped`, and the default-corpus comparison still runs.

Renamed: the padded pipeline was called "plain" up to the bench/train.json committed with
8faa3b6, which is not literally the tutorials' pipeline (they score every position, with no
sample weights). Its keys are renamed with it: `pipelines.plain` -> `pipelines.padded`,
`speedup_samples_per_s_ours_over_plain` -> `..._over_padded`, `speedup_ours_fit_over_plain`
-> `speedup_ours_fit_over_padded`, `positions_ratio_plain_over_ours` and
`peak_rss_ratio_plain_over_ours` -> `..._padded_over_ours`, `settings.epochs.ours_vs_plain` ->
`ours_vs_padded`. What every figure measures is unchanged.

Writes bench/train.json. All figures come from one run on this machine; on a shared machine
compare ratios measured together rather than numbers from different runs.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from figures import summary, time_to, xla_verdict
from harness import ROOT, MatmulJob, load_average, machine, spawn, write_results
from pipelines import PIPELINES, FitJob, Setup

from chatbot.config import TrainConfig

FRA_ENG = Path(os.path.normpath(ROOT / "../shared/data/fra-eng.tsv"))  # see its README.md
DEFAULT_CORPUS = ROOT / "data/chatterbot.tsv"  # what `make data` writes and `make train` reads
COMPARED = tuple(PIPELINES)  # ours, ours_fit, padded


# --- the comparisons ---------------------------------------------------------------------------

def compare_pipelines(setup: Setup, epochs: int, peak: float) -> tuple[dict[str, Any], int]:
    """Ours, ours_fit and padded on the same pairs, from the same weights; the vocabulary size."""
    runs = {name: spawn(FitJob(setup, name, epochs, pairs=setup.train_pairs, validate=True,
                               name=name)) for name in COMPARED}
    target = max(min(run["val_loss"]) for run in runs.values())  # a loss all of them reached
    summaries = {name: summary(run, setup, peak) for name, run in runs.items()}
    for name, run in runs.items():
        summaries[name]["time_to_target"] = time_to(run, target)
    ours, fit, padded = (summaries[name] for name in COMPARED)
    speedup = ours["samples_per_s"] / padded["samples_per_s"]
    by_median = padded["epoch_s_median"] / ours["epoch_s_median"]
    reached = ours["time_to_target"]["seconds"], padded["time_to_target"]["seconds"]
    return {
        **summaries,
        "speedup_samples_per_s_ours_over_padded": round(speedup, 2),
        "speedup_from_median_epochs": round(by_median, 2),
        # Met only if the mean and the median epochs both say so: on this shared machine an
        # epoch now and then takes twice as long, and one such epoch should not decide it.
        "speedup_target": 3.0, "speedup_target_met": min(speedup, by_median) >= 3.0,
        # What bucketing gains (same fit, fewer positions) and what the loop adds on top.
        "speedup_ours_fit_over_padded": round(fit["samples_per_s"] / padded["samples_per_s"], 2),
        "speedup_ours_over_ours_fit": round(ours["samples_per_s"] / fit["samples_per_s"], 2),
        # The speed-up if time were proportional to positions computed (padding included).
        "positions_ratio_padded_over_ours": round(runs["padded"]["tokens_processed_per_epoch"]
                                                  / runs["ours"]["tokens_processed_per_epoch"],
                                                  2),
        "target_val_loss": target,
        "time_to_target_speedup": round(reached[1] / reached[0], 2) if all(reached) else None,
        "peak_rss_ratio_padded_over_ours": round(padded["peak_rss_mib"] / ours["peak_rss_mib"],
                                                 2),
    }, runs["ours"]["vocab"]


def compare_xla(setup: Setup, epochs: int, peak: float) -> dict[str, Any]:
    """ours_fit with and without jit_compile, each with padding rounded up to 1 and to 8."""
    runs = {}
    for jit in (False, True):
        for pad in (1, 8):
            name = f"{'xla' if jit else 'no_xla'}_pad{pad}"
            run = spawn(FitJob(setup, "ours_fit", epochs, pairs=setup.train_pairs, jit=jit,
                               pad_multiple=pad, name=name))
            runs[name] = {**summary(run, setup, peak), "jit_compile": run["jit_compile"]}
    return {**runs, **xla_verdict(runs)}


def scale(setup: Setup, pair_counts: list[int], epochs: list[int],
          peak: float) -> dict[str, Any]:
    """Time per epoch and peak RSS of ours as the number of pairs grows."""
    runs = {}
    for pairs, n_epochs in zip(pair_counts, epochs):
        run = spawn(FitJob(setup, "ours", n_epochs, pairs=pairs, name=f"scale_{pairs}"))
        runs[str(pairs)] = {
            **summary(run, setup, peak),
            "peak_rss_gib": round(run["peak_rss_mib"] / 1024, 3),
            "mean_tokens_per_pair": round(run["tokens_real"] / run["pairs"], 2),
        }
    largest = runs[str(max(pair_counts))]
    return {**runs, "rss_target_gib": 1.5, "rss_target_met": largest["peak_rss_gib"] < 1.5}


def settings(setup: Setup, vocab: int | None) -> dict[str, Any]:
    """What a comparison ran with, for the JSON."""
    train = TrainConfig()
    return {
        "arch": "lstm", "embedding_dim": setup.embedding, "hidden_dim": setup.hidden,
        "max_len_per_side": setup.max_len, "batch_size": setup.batch,
        "vocab_min_count": setup.min_count, "vocab_size": vocab,
        "optimizer": f"{train.optimizer}, learning rate {train.learning_rate}, clipnorm "
                     f"{train.clipnorm} (TrainConfig defaults)",
        "seed": setup.seed, "data": os.path.relpath(setup.data, ROOT),
        "train_pairs": setup.train_pairs or "all", "val_pairs": setup.val_pairs or "all",
    }


NOTES = (
    "Units: seconds (_s), samples = training pairs, MiB/GiB from ru_maxrss (KiB on Linux). "
    "samples_per_s, tokens_per_s (real tokens, no padding) and epoch_s_mean leave out epoch 1 "
    "(tracing, XLA compiling) whenever a run has more than one (see epochs_averaged). "
    "Validation loss is our masked per-token cross-entropy on the same bucketed validation "
    "batches for every model, computed after each epoch outside the timed epoch. "
    "time_to_target counts fit setup plus epochs until val_loss first reaches target_val_loss "
    "(the worse of the two best losses, so both reach it), at epoch granularity; "
    "seconds_with_prepare adds the data preparation (prepare_s: read, encode, pad, one-hot). "
    "padded (called 'plain' in files up to commit 8faa3b6, keys renamed with it): "
    "pad_sequences to the longest training row, one-hot float32 targets built with "
    "to_categorical in slices of 1000 rows (its float64 output at once would need twice the "
    "memory), CategoricalCrossentropy(from_logits, mean_with_sample_weight) weighted by "
    "target != 0, fit(shuffle=True); same optimizer and initial weights (init_weights_abs_sum). "
    "ours_fit: our batches through Keras fit() (output layer at every position). "
    "FLOPs per epoch: 3 x (8h(e+h) x processed positions (padding included) + 2hV x rows of "
    "the output Dense: scored positions for ours, processed positions for the others). "
    "Scaling: pairs beyond the real training pairs are 'A B<TAB>A2 B2' joins of two different "
    "training pairs, drawn with the seed, distinct, each side <= max_len tokens; the "
    "vocabulary is always the one of the --train-pairs training pairs. "
    "A section {'skipped': reason} was not measured."
)


# --- the command line ----------------------------------------------------------------------------

def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    count = _at_least(1)
    base = Setup(data=str(FRA_ENG))  # the defaults of the fra-eng comparisons
    parser.add_argument("--data", help=f"English-French pairs (default: {base.data}; skipped "
                                       "with a message when that file is missing)")
    parser.add_argument("-o", "--out", default=str(ROOT / "bench/train.json"))
    parser.add_argument("--train-pairs", type=count, default=base.train_pairs)
    parser.add_argument("--val-pairs", type=count, default=base.val_pairs)
    parser.add_argument("--embedding", type=count, default=base.embedding)
    parser.add_argument("--hidden", type=count, default=base.hidden)
    parser.add_argument("--max-len", type=count, default=base.max_len,
                        help="tokens kept per side")
    parser.add_argument("--batch", type=count, default=base.batch)
    parser.add_argument("--min-count", type=count, default=base.min_count,
                        help="tokens seen fewer times become <UNK>; sets the vocabulary size")
    # Epoch 1 (tracing, compiling) is left out of the speed figures: hence at least 2.
    parser.add_argument("--epochs", type=_at_least(2), default=6,
                        help="ours vs ours_fit vs padded")
    parser.add_argument("--xla-epochs", type=_at_least(2), default=4)
    parser.add_argument("--scale-pairs", type=count, nargs="+", default=[1000, 10000, 100000])
    parser.add_argument("--scale-epochs", type=count, nargs="+", default=[2, 2, 1],
                        help="one per --scale-pairs; with 1, the epoch includes tracing")
    parser.add_argument("--default-data", default=str(DEFAULT_CORPUS),
                        help="the default corpus (make data), compared with the default preset")
    parser.add_argument("--default-pairs", type=count,
                        help="training pairs of the default corpus (default: all)")
    parser.add_argument("--default-epochs", type=_at_least(2), default=5)
    parser.add_argument("--seed", type=int, default=base.seed)
    args = parser.parse_args(argv)
    if len(args.scale_epochs) != len(args.scale_pairs):
        parser.error(f"--scale-epochs needs one count per --scale-pairs "
                     f"({len(args.scale_pairs)}); received {args.scale_epochs}")
    if not Path(args.default_data).is_file():
        parser.error(f"{args.default_data}: not found; `make data` writes the default corpus")
    if args.data is not None and not Path(args.data).is_file():
        parser.error(f"--data {args.data}: not found")
    return args


def _at_least(low: int) -> Callable[[str], int]:
    """An argparse type: a whole number of at least `low`."""
    def parse(text: str) -> int:
        if int(text) < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, received {text}")
        return int(text)
    return parse


def sample_setup(args: argparse.Namespace) -> tuple[Setup, str | None]:
    """The fra-eng comparisons' setup, and why they are skipped (None: they run)."""
    setup = Setup(data=args.data or str(FRA_ENG), train_pairs=args.train_pairs,
                  val_pairs=args.val_pairs, embedding=args.embedding, hidden=args.hidden,
                  max_len=args.max_len, batch=args.batch, min_count=args.min_count,
                  seed=args.seed)
    if Path(setup.data).is_file():
        return setup, None
    reason = (f"{os.path.relpath(setup.data, ROOT)} not found (English-French pairs: see "
              f"../shared/data/README.md)")
    print(f"bench: {reason}; skipping the fra-eng comparison, XLA and scaling; the default "
          f"corpus is still compared", file=sys.stderr, flush=True)
    return setup, reason


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    sample, missing = sample_setup(args)
    default = Setup.default_corpus(args.default_data, args.seed, args.default_pairs)
    started, load_start = time.perf_counter(), load_average()
    matmul = spawn(MatmulJob())
    peak = matmul["gflop_per_s_best"]
    skipped = {"skipped": missing}
    pipelines, vocab = (skipped, None) if missing else compare_pipelines(sample, args.epochs, peak)
    default_pipelines, default_vocab = compare_pipelines(default, args.default_epochs, peak)
    xla = skipped if missing else compare_xla(sample, args.xla_epochs, peak)
    scaling = skipped if missing else scale(sample, args.scale_pairs, args.scale_epochs, peak)
    write_results(args.out, {
        "machine": machine(load_start),
        "settings": {**settings(sample, vocab), "epochs": {
            "ours_vs_padded": args.epochs, "xla": args.xla_epochs,
            "scaling": dict(zip(map(str, args.scale_pairs), args.scale_epochs))}},
        "matmul_peak_float32": matmul,
        "pipelines": pipelines,
        # The same comparison with what `make train` trains: the default corpus and preset.
        "default_corpus": {"settings": {**settings(default, default_vocab),
                                        "epochs": args.default_epochs},
                           "pipelines": default_pipelines},
        "xla": xla,
        "scaling": scaling,
        "total_s": round(time.perf_counter() - started, 1),
        "notes": NOTES,
        "pipeline_descriptions": PIPELINES,
    })


if __name__ == "__main__":
    main()
