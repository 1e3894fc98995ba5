"""Figures made of a training job's measurements (bench/pipelines.py): speed, padding, FLOP
rate, time to a target loss, and the XLA verdict. Pure arithmetic on the jobs' dicts."""

from __future__ import annotations

import statistics
from typing import TYPE_CHECKING, Any

from chatbot.config import TrainConfig

if TYPE_CHECKING:
    from pipelines import Setup


def flop_per_epoch(run: dict, setup: Setup) -> int:
    """Forward + backward (x3) FLOPs: the LSTM gates at every processed position,
    the output Dense at every processed position (fit) or at scored positions only (ours)."""
    e, h = setup.embedding, setup.hidden
    dense_rows = run["tokens_scored"] if run["pipeline"] == "ours" else run[
        "tokens_processed_per_epoch"]
    return 3 * (8 * h * (e + h) * run["tokens_processed_per_epoch"]
                + 2 * h * run["vocab"] * dense_rows)


def summary(run: dict, setup: Setup, matmul_peak: float) -> dict[str, Any]:
    timed = run["epoch_s"][1:] or run["epoch_s"]  # leave out epoch 1 (tracing) if there are more
    steady = statistics.mean(timed)
    busy = run["other_cores_busy"][-len(timed):]  # during the timed epochs
    gflops = flop_per_epoch(run, setup) / steady / 1e9
    out = {
        "samples_per_s": round(run["pairs"] / steady, 1),
        "tokens_per_s": round(run["tokens_real"] / steady),
        "epoch_s_mean": round(steady, 2),
        "epoch_s_median": round(statistics.median(timed), 2),
        "epochs_averaged": (f"2-{len(run['epoch_s'])}" if len(run["epoch_s"]) > 1
                            else "1 (includes tracing)"),
        "epoch_s": run["epoch_s"],
        # Cores that other programs kept busy during each epoch (of the machine's cpus).
        "other_cores_busy": run["other_cores_busy"],
        "other_cores_busy_mean": round(statistics.mean(busy), 2) if None not in busy else None,
        "prepare_s": run["prepare_s"],
        "fit_setup_s": run["fit_setup_s"],
        "tokens_processed_per_epoch": run["tokens_processed_per_epoch"],
        "padding_share": round(1 - run["tokens_real"] / run["tokens_processed_per_epoch"], 3),
        # Positions whose prediction is scored (reply + <EOS>); the loop runs the output Dense
        # on those only, fit() on every processed position.
        "scored_share": round(run["tokens_scored"] / run["tokens_processed_per_epoch"], 3),
        "achieved_gflop_per_s": round(gflops, 2),
        "share_of_matmul_peak": round(gflops / matmul_peak, 3),
        "peak_rss_mib": run["peak_rss_mib"],
        "peak_rss_mib_before_fit": run["rss_mib_before_fit"]["peak"],
        "init_weights_abs_sum": run["init_weights_abs_sum"],
        "load_1min_at_start": run["load_1min_at_start"],
    }
    if run["val_loss"]:
        out["val_loss"] = run["val_loss"]
        out["best_val_loss"] = min(run["val_loss"])
    out["train_loss"] = run["train_loss"]
    return out


def time_to(run: dict, target: float) -> dict[str, Any]:
    """Seconds of fit (setup + epochs, validation excluded) until val_loss first <= target."""
    for epoch, loss in enumerate(run["val_loss"]):
        if loss <= target:
            seconds = run["fit_setup_s"] + sum(run["epoch_s"][: epoch + 1])
            return {"epochs": epoch + 1, "seconds": round(seconds, 1),
                    "seconds_with_prepare": round(seconds + run["prepare_s"], 1)}
    return {"epochs": None, "seconds": None, "seconds_with_prepare": None}


def xla_verdict(runs: dict[str, dict]) -> dict[str, Any]:
    """Each XLA run against the faster run without: steady speed-up, epochs that repay its
    compiling (its slower first epoch), and which variant finishes a default-length run first.
    Steady epochs are compared by their median: on this shared machine a single epoch now and
    then takes several times as long, and a mean of a few epochs follows it."""
    default_epochs = TrainConfig().epochs
    for run in runs.values():
        steady = run["epoch_s_median"]
        run["projected_s_default_run"] = round(run["epoch_s"][0] + (default_epochs - 1) * steady)
    eager = min((runs[k] for k in runs if not runs[k]["jit_compile"]),
                key=lambda r: r["epoch_s_median"])
    verdict = {}
    for key in (k for k in runs if runs[k]["jit_compile"]):
        jit = runs[key]
        saving = eager["epoch_s_median"] - jit["epoch_s_median"]
        extra = ((jit["epoch_s"][0] - jit["epoch_s_median"])
                 - (eager["epoch_s"][0] - eager["epoch_s_median"]))
        verdict[f"{key}_vs_best_without"] = {
            "speedup_steady_median": round(eager["epoch_s_median"] / jit["epoch_s_median"], 2),
            "compile_overhead_s": round(extra, 1),
            "break_even_epochs": round(extra / saving, 1) if saving > 0 else None,
        }
    fastest = min(runs, key=lambda k: runs[k]["projected_s_default_run"])
    return {**verdict, "default_train_epochs": default_epochs,
            "fastest_for_default_run": fastest, "helps": bool(runs[fastest]["jit_compile"])}
