"""Transformer benchmark: the `transformer` architecture against `lstm`, side by side in one run.

    make bench-transformer      # or: .venv/bin/python bench/transformer.py

A smoke run (10-20 minutes on 2 cores, most of it `chatbot train`'s final evaluation of
barely trained runs; its figures mean nothing):

    .venv/bin/python bench/transformer.py -o /tmp/tx.json --work /tmp/tx-work --minutes 0.2 \\
        --fra-pairs 1000 --fra-prompts 50 --speed-epochs 2 --speed-examples 500 \\
        --decode-prompts 20 --forced-prompts 5 --cold-starts 2

1. Quality at equal training time (bench/equal_time.py): `lstm` (preset default),
   `transformer` (preset transformer) and, when the checkout has sentencepiece,
   `transformer` with `text.tokenizer = "sentencepiece"`, each trained by
   chatbot.training.train.train with the same wall-clock budget (`--minutes`,
   TrainConfig.max_minutes) on the default corpus (scored on the run's own validation split) and on
   English-French pairs (scored on held-out prompts, the split of bench/quality.py: bench/unseen.py
   fra_split). Perplexity per word, chrF and answer rate of greedy replies, and the known-prompt
   answer rates.
2. Training speed (bench/fit_speed.py): the transformer preset on the default corpus through
   `chatbot train`'s loop and through a keras-io style padded fit(); samples/s, their ratio,
   and the share of the float32 matmul peak (harness.MatmulJob) each reaches.
3. Decoding speed (bench/engines.py) of the default-corpus runs of step 1: greedy latency with
   retrieval on and off, cached against uncached decoding at a forced reply length, cold start.

`--decoding-only` trains (or with --reuse keeps) the two default-corpus runs of step 1 and
measures step 3 alone, written to -o (give another file than bench/transformer.json, which
holds the whole run):

    .venv/bin/python bench/transformer.py --decoding-only -o bench/transformer_decoding.json

Every job runs alone in a fresh process (bench/harness.py); runs are trained under --work
(git-ignored bench/.work/transformer). Writes bench/transformer.json and prints a table. All
figures come from one run on this machine; on a shared machine compare ratios measured
together rather than numbers from different runs.
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from engines import DecodeJob
from equal_time import QualityJob, TrainJob
from fit_speed import PIPELINES, SpeedJob
from harness import ROOT, MatmulJob, load_average, machine, spawn, write_results
from unseen import FraSetup, fra_split

from chatbot.config import TextConfig
from chatbot.data.pairs import Pair

FRA_ENG = Path(os.path.normpath(ROOT / "../shared/data/fra-eng.tsv"))  # see its README.md
DEFAULT_CORPUS = "data/chatterbot.tsv"  # what `make data` writes and `make train` reads
ROWS = {  # name: (preset, tokenizer)
    "lstm": ("default", "word"),
    "transformer": ("transformer", "word"),
    "transformer_sentencepiece": ("transformer", "sentencepiece"),
}
TARGETS = {  # name: (comparison, bound)
    "train_speedup_ours_over_fit": (">=", 3.0),
    "train_share_of_matmul_peak_ours": (">=", 0.5),
    "decode_speedup_cached_over_uncached": (">=", 5.0),
    "cold_start_transformer_s": ("<=", 1.0),
}


def log(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


# --- 1. quality at equal training time -------------------------------------------------------

def datasets(args: argparse.Namespace, work: Path) -> dict[str, tuple[str, str]]:
    """{dataset: (training TSV, held-out TSV or "" for the run's own validation split)}."""
    found = {"default": (DEFAULT_CORPUS, "")}
    if args.skip_fra or not Path(args.fra_data).is_file():
        log(f"{args.fra_data}: skipping the fra-eng part" if not args.skip_fra
            else "--skip-fra: skipping the fra-eng part")
        return found
    setup = FraSetup(path=args.fra_data, work=str(work), pairs=args.fra_pairs,
                     prompts=args.fra_prompts, seed=args.seed)
    train, held = fra_split(setup)
    paths = work / "fra-eng-train.tsv", work / "fra-eng-held-out.tsv"
    for path, pairs in zip(paths, (train, held)):
        write_tsv(path, pairs)
    found["fra_eng"] = tuple(_shown(p) for p in paths)
    return found


def write_tsv(path: Path, pairs: list[Pair]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{p.prompt}\t{p.reply}\n" for p in pairs), encoding="utf-8")


def quality(args: argparse.Namespace, work: Path, rows: list[str]) -> dict[str, Any]:
    """Every row trained and scored on every dataset."""
    section: dict[str, Any] = {}
    for dataset, (train_tsv, held_out) in datasets(args, work).items():
        section[dataset] = {"data": train_tsv, "held_out": held_out or "the run's validation "
                            "split (val_fraction, seed of its config.json)"}
        for row in rows:
            run, trained = train(args, work, dataset, train_tsv, row)
            scored = spawn(QualityJob(run, held_out, name=f"{dataset}/{row} quality"))
            section[dataset][row] = {"preset": ROWS[row][0], **trained, **scored}
    return section


def train(args: argparse.Namespace, work: Path, dataset: str, train_tsv: str, row: str
          ) -> tuple[str, dict[str, Any]]:
    """`row` trained on `dataset` in work/DATASET-ROW (kept with --reuse): the run directory
    and the training figures."""
    preset, tokenizer = ROWS[row]
    run = _shown(work / f"{dataset}-{row}")
    return run, spawn(TrainJob(train_tsv, run, preset, args.minutes, tokenizer, args.seed,
                               args.reuse, name=f"{dataset}/{row}"))


# --- 2. training speed -------------------------------------------------------------------------

def speed(args: argparse.Namespace, peak: float) -> dict[str, Any]:
    runs = {p: spawn(SpeedJob(DEFAULT_CORPUS, p, args.speed_epochs, args.speed_examples,
                              seed=args.seed, name=f"speed {p}")) for p in PIPELINES}
    summaries = {p: speed_summary(run, peak) for p, run in runs.items()}
    ours, fit = summaries["ours"], summaries["fit"]
    reached = {}
    if all(run["train_set_loss"] for run in runs.values()):
        target = max(min(run["train_set_loss"]) for run in runs.values())  # both reach it
        for p, run in runs.items():
            summaries[p]["time_to_target"] = reached[p] = time_to(run, target)
        reached["target_train_set_loss"] = target
    by_mean = ours["samples_per_s"] / fit["samples_per_s"]
    by_median = fit["epoch_s_median"] / ours["epoch_s_median"]
    return {
        **summaries,
        "speedup_ours_over_fit": round(by_mean, 2),
        "speedup_from_median_epochs": round(by_median, 2),
        "positions_ratio_fit_over_ours": round(runs["fit"]["positions_processed"]
                                               / runs["ours"]["positions_processed"], 2),
        "executed_flops_ratio_fit_over_ours": round(runs["fit"]["flops_executed_per_epoch"]
                                                    / runs["ours"]["flops_executed_per_epoch"],
                                                    2),
        "target_train_set_loss": reached.get("target_train_set_loss"),
        "time_to_target_speedup": (round(reached["fit"]["seconds"] / reached["ours"]["seconds"],
                                         2) if reached else None),
        "pipelines": PIPELINES,
    }


def time_to(run: dict[str, Any], target: float) -> dict[str, Any]:
    """Epochs and seconds (fit setup and epochs, scoring left out) until the loss on the
    training examples first reaches `target`."""
    for epoch, loss in enumerate(run["train_set_loss"]):
        if loss <= target:
            return {"epochs": epoch + 1,
                    "seconds": round(run["fit_setup_s"] + sum(run["epoch_s"][: epoch + 1]), 1)}
    raise AssertionError(f"the target {target} is one of the runs' losses")


def speed_summary(run: dict[str, Any], peak: float) -> dict[str, Any]:
    """Samples/s and shares of the matmul peak over epochs 2.. (epoch 1 traces)."""
    timed = run["epoch_s"][1:]
    steady = statistics.mean(timed)
    busy = run["other_cores_busy"][1:]
    model_gflops = run["flops_model_per_epoch"] / steady / 1e9
    executed_gflops = run["flops_executed_per_epoch"] / steady / 1e9
    return {
        "samples_per_s": round(run["examples"] / steady, 1),
        "epoch_s_mean": round(steady, 2), "epoch_s_median": round(statistics.median(timed), 2),
        "epochs_averaged": f"2-{len(run['epoch_s'])}",
        "model_gflop_per_s": round(model_gflops, 2),
        "share_of_matmul_peak": round(model_gflops / peak, 3),
        "executed_gflop_per_s": round(executed_gflops, 2),
        "executed_share_of_matmul_peak": round(executed_gflops / peak, 3),
        "other_cores_busy_mean": round(statistics.mean(busy), 2) if None not in busy else None,
        **{k: run[k] for k in ("examples", "vocab", "batch_size", "model", "parameters",
                               "init_weights_abs_sum", "fit_setup_s", "epoch_s",
                               "other_cores_busy", "train_loss", "train_set_loss",
                               "positions_real",
                               "positions_processed", "positions_scored", "longest_positions",
                               "flops_model_per_epoch", "flops_executed_per_epoch",
                               "peak_rss_mib", "load_1min_at_start")},
    }


# --- 3. decoding speed -------------------------------------------------------------------------

def decoding(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    return {arch: spawn(DecodeJob(_shown(work / f"default-{arch}"), args.decode_prompts,
                                  args.forced_prompts, cold_starts=args.cold_starts,
                                  name=f"decode {arch}"))
            for arch in ("lstm", "transformer")}


# --- targets, table ----------------------------------------------------------------------------

def targets(results: dict[str, Any]) -> dict[str, Any]:
    speed_, decode = results["training_speed"], results["decoding"]["transformer"]
    values = {
        # Met only if the mean and the median epochs both say so (as bench/train.py).
        "train_speedup_ours_over_fit": min(speed_["speedup_ours_over_fit"],
                                           speed_["speedup_from_median_epochs"]),
        "train_share_of_matmul_peak_ours": speed_["ours"]["share_of_matmul_peak"],
        "decode_speedup_cached_over_uncached":
            decode["forced_length"]["speedup_cached_over_uncached"],
        "cold_start_transformer_s": decode["cold_start_s"]["median"],
    }
    found = {}
    for name, (comparison, bound) in TARGETS.items():
        value = values[name]
        met = value >= bound if comparison == ">=" else value <= bound
        found[name] = {"value": value, "target": f"{comparison} {bound}", "met": met}
    return found


def table(results: dict[str, Any]) -> str:
    """The figures a reader compares, as aligned text."""
    lines = [f"Quality at equal training time ({results['settings']['minutes']:g} min each); "
             "best val: the epoch of the lowest validation loss (the model saved is the last "
             "best by training loss); held-out: ppl/word, chrF and answer rate (model alone | "
             "hybrid); known prompts: answer rate (hybrid | model alone)"]
    head = (f"{'dataset':<9}{'model':<27}{'epochs':>6}{'train s':>8}{'best val':>9}"
            f"{'ppl/word':>10}{'chrF':>7}{'|hyb':>6}{'answer':>8}{'|hyb':>6}{'known':>7}"
            f"{'|model':>7}")
    lines.append(head)
    for dataset, rows in results["quality"].items():
        for row, r in rows.items():
            if not isinstance(r, dict):
                continue
            h, k = r["held_out"], r["known"]
            best = r["history"].get("best_val_loss_epoch", "-")
            lines.append(
                f"{dataset:<9}{row:<27}{r['epochs']:>6}{_num(r.get('train_wall_s'), 0):>8}"
                f"{'epoch ' + str(best):>9}{h['perplexity_per_word']:>10.1f}"
                f"{h['chrf']:>7.1f}{h['chrf_hybrid']:>6.1f}"
                f"{h['answer_rate']:>8.1%}{h['answer_rate_hybrid']:>6.0%}"
                f"{k['answer_rate_hybrid']:>7.1%}{_pct(k['answer_rate_model']):>7}")
    s = results["training_speed"]
    lines += ["", "Training speed (transformer preset, default corpus): samples/s, share of the "
              f"float32 matmul peak ({results['matmul_peak_float32']['gflop_per_s_best']} GFLOP/s)"
              " by model FLOPs | by executed FLOPs"]
    for p in PIPELINES:
        lines.append(f"  {p:<6}{s[p]['samples_per_s']:>9.1f}/s  "
                     f"{s[p]['share_of_matmul_peak']:>6.1%} | "
                     f"{s[p]['executed_share_of_matmul_peak']:.1%}  epochs {s[p]['epoch_s']} s")
    lines.append(f"  ours/fit {s['speedup_ours_over_fit']}x (median epochs "
                 f"{s['speedup_from_median_epochs']}x)")
    if s.get("time_to_target_speedup"):
        lines.append(f"  time to a training-set loss of {s['target_train_set_loss']}: ours "
                     f"{s['ours']['time_to_target']['seconds']} s, fit "
                     f"{s['fit']['time_to_target']['seconds']} s "
                     f"({s['time_to_target_speedup']}x)")
    lines += ["", "Decoding (default corpus, batch 1): greedy p50/p90 ms retrieval on | off; "
              "forced-length ms p50 cached | uncached; cold start s"]
    for arch, d in results["decoding"].items():
        on, off = d["greedy_ms"]["retrieval_on"], d["greedy_ms"]["retrieval_off"]
        f = d["forced_length"]
        uncached = (f"{f['uncached']['p50_ms']:.1f} ({f['speedup_cached_over_uncached']}x)"
                    if "uncached" in f else "-")
        lines.append(f"  {arch:<12}{on['p50_ms']:>7.1f}/{on['p90_ms']:<7.1f}| "
                     f"{off['p50_ms']:.1f}/{off['p90_ms']:<7.1f}{f['cached']['p50_ms']:>8.1f} | "
                     f"{uncached:<16}{d['cold_start_s']['median']:>6.2f}")
    lines += ["", "Targets:"] + [f"  {name}: {t['value']} (target {t['target']}): "
                                 f"{'met' if t['met'] else 'NOT met'}"
                                 for name, t in results["targets"].items()]
    return "\n".join(lines)


def _num(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def _shown(path: Path | str) -> str:
    """`path` relative to the project when it is inside it (the workers run there)."""
    resolved = Path(path).resolve()
    return str(resolved.relative_to(ROOT)) if resolved.is_relative_to(ROOT) else str(path)


NOTES = (
    "Units: seconds (_s), ms per reply (_ms), samples = training examples (pairs and their "
    "noisy copies, as `chatbot train` trains on them). "
    "Quality: each row trained by chatbot.training.train.train with max_minutes = settings.minutes "
    "(it stops after the first epoch that ends past the budget, so train_wall_s, from the "
    "call to the end of the last epoch, data preparation included, can exceed it by up to one "
    "epoch); the saved model is the best epoch by the preset's monitor (training loss); "
    "history holds every epoch's validation loss. held_out: perplexity_per_word = exp(nll_total "
    "/ words_with_eos), nll_total = the model's teacher-forced NLL of every held-out reply's "
    "tokens and <EOS> (its own tokenizer, replies truncated to max_len tokens as in training), "
    "words_with_eos = the replies' word-tokenizer tokens (chatbot.text.words.Tokenizer) + 1 per "
    "reply; word-tokenizer rows score <UNK> targets (reply_unk_share of the reply tokens) as "
    "any token, which favours them on open text. chrf / answer_rate: greedy replies of the "
    "model alone (retrieval off); _hybrid: retrieval on, as the chat. known: metrics.json of "
    "the run (chatbot train's own evaluation on all its training prompts). "
    "Training speed: see training_speed.pipelines and bench/fit_speed.py; samples_per_s over "
    "epochs 2.. (epoch 1 traces); share_of_matmul_peak = model FLOPs per epoch (forward + "
    "backward = 3 x forward: 2 x L(4d^2 + 2df) per real position for the blocks' weight "
    "matmuls, 2dn(n+1) per block and sequence of n positions for causal attention scores and "
    "values, 2dV per scored position for the output layer) / epoch seconds / the best "
    "float32 matmul rate; executed_share_of_matmul_peak counts what the pipeline computes "
    "(padded positions, the full T x T attention, the output layer at every position for fit). "
    "train_set_loss: after every epoch, outside its time, chatbot train's loss on fixed batches "
    "of all the training examples, the same figure for both pipelines; time_to_target: fit "
    "setup plus epochs until it first reaches target_train_set_loss (the higher of the two "
    "lowest), at epoch granularity. "
    "Decoding: see bench/engines.py; the uncached engine recomputes the whole sequence at "
    "every step."
)


# --- the command line --------------------------------------------------------------------------

def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    base = FraSetup(path=str(FRA_ENG), work="")
    job = DecodeJob(run_dir="")
    parser.add_argument("-o", "--out", default=str(ROOT / "bench/transformer.json"))
    parser.add_argument("--work", default=str(ROOT / "bench/.work/transformer"),
                        help="where the runs are trained (git-ignored)")
    parser.add_argument("--minutes", type=float, default=2.0,
                        help="training budget of every model on every dataset")
    parser.add_argument("--reuse", action="store_true",
                        help="keep finished runs in --work (their settings are not checked)")
    parser.add_argument("--skip-fra", action="store_true", help="leave out the fra-eng data")
    parser.add_argument("--no-sentencepiece", action="store_true",
                        help="leave out the transformer + sentencepiece row")
    parser.add_argument("--fra-data", default=str(FRA_ENG), help="English<TAB>French pairs")
    parser.add_argument("--fra-pairs", type=int, default=base.pairs, help="training pairs")
    parser.add_argument("--fra-prompts", type=int, default=base.prompts,
                        help="held-out distinct English prompts")
    parser.add_argument("--speed-epochs", type=int, default=3,
                        help="epochs of each training-speed job (epoch 1 is left out)")
    parser.add_argument("--speed-examples", type=int, default=0,
                        help="training examples of the speed jobs (default 0: all)")
    parser.add_argument("--decode-prompts", type=int, default=job.prompts)
    parser.add_argument("--forced-prompts", type=int, default=job.forced_prompts)
    parser.add_argument("--cold-starts", type=int, default=job.cold_starts)
    parser.add_argument("--decoding-only", action="store_true",
                        help="the default-corpus runs and step 3 alone (see above), to -o")
    parser.add_argument("--seed", type=int, default=1234,
                        help="training seed (split, shuffling, weights) and the fra-eng split")
    args = parser.parse_args(argv)
    least = {"fra_pairs": 1, "fra_prompts": 1, "speed_epochs": 2, "decode_prompts": 2,
             "forced_prompts": 2, "cold_starts": 1}
    for name, low in least.items():
        if getattr(args, name) < low:
            parser.error(f"--{name.replace('_', '-')} must be at least {low}, received "
                         f"{getattr(args, name)}")
    if args.minutes <= 0:
        parser.error(f"--minutes must be above 0, received {args.minutes}")
    if not (ROOT / DEFAULT_CORPUS).is_file():
        parser.error(f"{DEFAULT_CORPUS}: not found; `make data` writes the default corpus")
    if args.decoding_only and Path(args.out).resolve() == (ROOT / "bench/transformer.json"):
        parser.error("--decoding-only: give -o another file than bench/transformer.json, "
                     "which holds the whole run's figures")
    return args


def decoding_only(args: argparse.Namespace) -> None:
    """The default-corpus runs of lstm and transformer (trained as step 1 trains them), and
    their decoding figures alone."""
    work = Path(args.work)
    started, load_start = time.perf_counter(), load_average()
    date = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    trained = {row: train(args, work, "default", DEFAULT_CORPUS, row)[1]
               for row in ("lstm", "transformer")}
    results = {"date": date, "what": "step 3 (decoding) of bench/transformer.py alone, on its "
               "default-corpus runs of step 1 (--decoding-only)",
               "settings": {"minutes": args.minutes, "seed": args.seed,
                            "reused_runs": args.reuse},
               "training": trained, "decoding": decoding(args, work),
               "machine": machine(load_start),
               "seconds": round(time.perf_counter() - started, 1)}
    write_results(args.out, results)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.decoding_only:
        decoding_only(args)
        return
    work = Path(args.work)
    rows = list(ROWS)
    sentencepiece = hasattr(TextConfig(), "tokenizer")
    if args.no_sentencepiece or not sentencepiece:
        rows.remove("transformer_sentencepiece")
    started, load_start = time.perf_counter(), load_average()
    date = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    matmul = spawn(MatmulJob())
    results: dict[str, Any] = {
        "date": date,
        "settings": {"minutes": args.minutes, "seed": args.seed, "rows": {
            row: {"preset": ROWS[row][0], "tokenizer": ROWS[row][1]} for row in rows},
            "fra_pairs": args.fra_pairs, "fra_prompts": args.fra_prompts,
            "speed_epochs": args.speed_epochs, "speed_examples": args.speed_examples or "all",
            "reused_runs": args.reuse},
        "matmul_peak_float32": matmul,
    }
    if not sentencepiece:
        results["settings"]["sentencepiece"] = "skipped: TextConfig has no tokenizer setting"
    seconds = {}
    clock = time.perf_counter()
    results["training_speed"] = speed(args, matmul["gflop_per_s_best"])
    seconds["training_speed"] = round(time.perf_counter() - clock, 1)
    clock = time.perf_counter()
    results["quality"] = quality(args, work, rows)
    seconds["quality"] = round(time.perf_counter() - clock, 1)
    clock = time.perf_counter()
    results["decoding"] = decoding(args, work)
    seconds["decoding"] = round(time.perf_counter() - clock, 1)
    results["targets"] = targets(results)
    results["machine"] = machine(load_start)
    results["seconds"] = {**seconds, "total": round(time.perf_counter() - started, 1)}
    results["notes"] = NOTES
    write_results(args.out, results)
    print()
    print(table(results))


if __name__ == "__main__":
    main()
