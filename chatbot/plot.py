"""Training curves of one or more run directories, drawn from their `history.csv`.

Each run directory holds `history.csv` (one row per finished epoch, `epoch` 0-based, as
keras.callbacks.CSVLogger writes it) and `config.json` (whose `train.monitor` chose the best
checkpoint); chatbot.rundir reads both. `plot_runs` draws loss and masked accuracy against epoch
(1-based, as training logs it) for every run, marking each run's best epoch. `plot_attention_map`
draws where a model looked while it replied: one heatmap of reply over prompt tokens, or a grid
of every layer's and head's self-attention. Uses matplotlib's Figure directly, never pyplot, so
it works headless and imports no TensorFlow.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from chatbot.config import MEASURED, higher_is_better
from chatbot.errors import ChatbotError
from chatbot.rundir import CONFIG, HISTORY, atomic_write, read_history, read_json

if TYPE_CHECKING:  # only for the annotation: plot imports nothing that decodes
    from chatbot.decoding.bot import AttentionMap

REQUIRED = ("epoch", "loss", "masked_accuracy")
PANELS = (("loss", "loss"), ("masked_accuracy", "masked accuracy"))


def load_history(run_dir: str | Path) -> pd.DataFrame:
    """Read `run_dir/history.csv`; ChatbotError says what to do if it is missing or incomplete."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ChatbotError(
            f"{run_dir}: no such run directory; train one with 'make train' or "
            f"'chatbot train --data FILE --out {run_dir}'"
        )
    path = run_dir / HISTORY
    if not path.is_file():
        raise ChatbotError(f"{path}: not found; the run has not finished an epoch yet")
    history = read_history(run_dir)
    if history.empty:
        raise ChatbotError(f"{path}: no epochs recorded; the run has not finished an epoch yet")
    missing = [column for column in REQUIRED if column not in history.columns]
    if missing:
        raise ChatbotError(
            f"{path}: missing column(s) {', '.join(missing)}; expected a CSVLogger history "
            f"with {', '.join(REQUIRED)}"
        )
    return history.sort_values("epoch").reset_index(drop=True)


def best_epoch(history: pd.DataFrame, monitor: str) -> int | None:
    """The 0-based `epoch` of the best `monitor` value (min for losses, max for accuracies).

    None if the column is absent or has no values. Ties go to the earliest epoch, as with
    Keras checkpoints, which only save on strict improvement; for an answer rate (MEASURED),
    to the lowest training loss among them, as the run's checkpoint chose
    (chatbot.training.callbacks.Monitor).
    """
    if monitor not in history.columns:
        return None
    values = pd.to_numeric(history[monitor], errors="coerce")
    if values.isna().all():
        return None
    row = values.idxmax() if higher_is_better(monitor) else values.idxmin()
    if monitor in MEASURED and "loss" in history.columns:
        row = pd.to_numeric(history["loss"], errors="coerce")[values == values[row]].idxmin()
    return int(history.loc[row, "epoch"])


def run_monitor(run_dir: str | Path, history: pd.DataFrame) -> str:
    """The quantity the run monitored: config.json's `train.monitor` if usable, else a fallback.

    Like training, a `val_` monitor without validation columns falls back to its training twin;
    without a readable config.json it is val_loss when present, else loss.
    """
    try:
        monitor = read_json(Path(run_dir) / CONFIG)["train"]["monitor"]
    except (ChatbotError, KeyError, TypeError):
        monitor = None
    if isinstance(monitor, str) and monitor in history.columns:
        return monitor
    if isinstance(monitor, str) and monitor.startswith("val_") and monitor[4:] in history.columns:
        return monitor[4:]
    return "val_loss" if "val_loss" in history.columns else "loss"


def plot_runs(run_dirs: Sequence[str | Path], out_path: str | Path) -> Path:
    """Draw loss and masked accuracy of every run side by side; save a PNG atomically."""
    if not run_dirs:
        raise ChatbotError("no run directories to plot; name at least one, e.g. models/default")
    runs = [(Path(run_dir), load_history(run_dir)) for run_dir in run_dirs]
    figure = Figure(figsize=(12, 4.8), layout="constrained")
    axes = figure.subplots(1, len(PANELS))
    for index, (run_dir, history) in enumerate(runs):
        colour = f"C{index % 10}"
        name = run_dir.resolve().name or str(run_dir)
        monitor = run_monitor(run_dir, history)
        best = best_epoch(history, monitor)
        label = name if best is None else f"{name} (best epoch {best + 1})"
        epochs = history["epoch"] + 1
        for ax, (column, _) in zip(axes, PANELS, strict=True):
            ax.plot(epochs, history[column], color=colour, linestyle="-", label=label)
            if f"val_{column}" in history.columns:
                ax.plot(epochs, history[f"val_{column}"], color=colour, linestyle="--",
                        label=f"{name} validation")
            if best is not None:
                # Mark the curve the monitor came from: validation if it monitored val_*.
                marked = f"val_{column}" if monitor.startswith("val_") else column
                marked = marked if marked in history.columns else column
                row = history.index[history["epoch"] == best][0]
                ax.plot(best + 1, history.loc[row, marked], color=colour, marker="o",
                        markersize=8, markeredgecolor="black", linestyle="none")
    for ax, (_, title) in zip(axes, PANELS, strict=True):
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.set_ylabel(title)
        ax.grid(True, alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.legend(fontsize="small")
    names = ", ".join(run_dir.resolve().name for run_dir, _ in runs)
    figure.suptitle(f"training curves: {names} (solid: train, dashed: validation, o: best epoch)")
    return _save_png(figure, Path(out_path))


def _save_png(figure: Figure, out_path: Path) -> Path:
    """Save through a temporary file renamed into place, so no reader sees half a PNG."""
    atomic_write(out_path, lambda tmp: figure.savefig(tmp, format="png", dpi=120))
    return out_path


# Families known to carry CJK glyphs, checked in this order (the first installed one wins).
_CJK_FAMILIES = ("Noto Sans CJK SC", "Noto Sans CJK JP", "Source Han Sans SC",
                 "WenQuanYi Micro Hei", "WenQuanYi Zen Hei", "Droid Sans Fallback",
                 "AR PL UMing CN", "SimHei", "Microsoft YaHei", "PingFang SC", "Heiti SC",
                 "Arial Unicode MS")
_CJK_FILE_HINTS = ("cjk", "wqy", "droid", "sourcehan", "uming", "ukai", "simhei", "yahei",
                   "pingfang")


@functools.cache
def cjk_font() -> str | None:
    """The name of an installed font that has Chinese glyphs, or None."""
    from matplotlib import font_manager

    manager = font_manager.fontManager
    found = next((f for f in _CJK_FAMILIES if f in {font.name for font in manager.ttflist}), None)
    if found is None:
        # matplotlib caches its font list; a CJK font installed after that cache was written is
        # not in it yet, so look for likely files and add them.
        for path in font_manager.findSystemFonts():
            if any(key in path.lower() for key in _CJK_FILE_HINTS):
                try:
                    manager.addfont(path)
                except (OSError, RuntimeError, ValueError):
                    continue
        found = next((f for f in _CJK_FAMILIES if f in {font.name for font in manager.ttflist}),
                     None)
    return found


def plot_attention(
    weights, prompt_tokens: Sequence[str], reply_tokens: Sequence[str], out_path: str | Path
) -> Path:
    """Heatmap of attention weights: one row per reply token, one column per prompt token.

    Tick labels are the tokens themselves; Chinese characters are drawn with an installed CJK
    font (see `cjk_font`), falling back glyph by glyph from the default font.
    """
    rows, cols = len(reply_tokens), len(prompt_tokens)
    if getattr(weights, "shape", None) != (rows, cols):
        raise ChatbotError(f"attention weights of shape {getattr(weights, 'shape', None)} do "
                           f"not match {rows} reply tokens x {cols} prompt tokens")
    families = label_fonts()
    figure = Figure(figsize=(max(4, 0.5 * cols + 2), max(3, 0.4 * rows + 1.5)),
                    layout="constrained")
    ax = figure.subplots()
    image = ax.imshow(weights, cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
    ax.set_xticks(range(cols), list(prompt_tokens), rotation=90, fontfamily=families)
    ax.set_yticks(range(rows), list(reply_tokens), fontfamily=families)
    ax.set_xlabel("prompt token")
    ax.set_ylabel("reply token")
    figure.colorbar(image, ax=ax, label="attention weight")
    return _save_png(figure, Path(out_path))


def plot_self_attention(weights, tokens: Sequence[str], out_path: str | Path) -> Path:
    """A grid of heatmaps, one per layer (rows of the grid) and head (columns): every head's
    weights (layers, heads, len(tokens), len(tokens)), a row per query token and a column per
    key token, on one colour scale. Above the diagonal is left blank: a causal model's
    queries never see later tokens. Tick labels (the tokens, CJK included, as in
    `plot_attention`) sit on the left column and the bottom row, which every panel lines up with."""
    count = len(tokens)
    shape = getattr(weights, "shape", None)
    if shape is None or len(shape) != 4 or shape[2:] != (count, count) or 0 in shape[:2]:
        raise ChatbotError(f"self-attention weights of shape {shape} do not match (layers, "
                           f"heads, {count}, {count}) for {count} tokens")
    layers, heads = shape[:2]
    families = label_fonts()
    # Small labels, ~0.09 in a token, so a panel of 40 tokens stays legible at 120 dpi; the
    # figure (in inches) leaves room for titles, labels and the colour bar around panels that
    # fill their cells ("auto" aspect: square ones would leave gaps) and come out near square.
    side = max(1.6, 0.09 * count + 0.5)
    figure = Figure(figsize=(heads * side + 2.0, layers * (side + 0.3) + 1.2),
                    layout="constrained")
    axes = figure.subplots(layers, heads, squeeze=False)
    future = np.triu(np.ones((count, count), bool), k=1)
    for layer in range(layers):
        for head in range(heads):
            ax = axes[layer, head]
            # Masked cells are not drawn, so the upper triangle shows the white background.
            image = ax.imshow(np.ma.masked_array(weights[layer, head], future), cmap="viridis",
                              vmin=0.0, vmax=1.0, aspect="auto", interpolation="nearest")
            ax.set_title(f"layer {layer + 1}, head {head + 1}", fontsize="small")
            ax.tick_params(labelsize=6, length=2)
            # The panels line up, so only the outer ones need ticks (which are slow to lay
            # out by the thousand) and labels.
            if layer == layers - 1:
                ax.set_xticks(range(count), list(tokens), rotation=90, fontfamily=families)
            else:
                ax.set_xticks([])
            if head == 0:
                ax.set_yticks(range(count), list(tokens), fontfamily=families)
            else:
                ax.set_yticks([])
    figure.supxlabel("key token (looked at)", fontsize="small")
    figure.supylabel("query token (looking)", fontsize="small")
    figure.suptitle(r"self-attention of every layer and head: softmax($QK^T/\sqrt{d_k}$)")
    # The bar's share of the grid's width: Matplotlib's 0.15, or about 0.6 in in a wide grid.
    figure.colorbar(image, ax=axes, label="attention weight",
                    fraction=min(0.15, 0.6 / (heads * side)))
    return _save_png(figure, Path(out_path))


def plot_attention_map(amap: AttentionMap, out_path: str | Path) -> Path:
    """The picture of a `chatbot.decoding.bot.AttentionMap`: the grid of every head's self-attention
    (transformer), or the one heatmap of reply over prompt tokens (attention)."""
    if amap.tokens:
        return plot_self_attention(amap.weights, amap.tokens, out_path)
    return plot_attention(amap.weights, amap.prompt, amap.reply, out_path)


def label_fonts() -> list[str]:
    """Font families for token labels: the default, then a CJK font for Chinese glyphs."""
    font = cjk_font()
    return ["DejaVu Sans"] + ([font] if font else [])
