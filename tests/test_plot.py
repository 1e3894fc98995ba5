"""chatbot.plot: training curves from fake run directories (no TensorFlow needed)."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import matplotlib.image
import numpy as np
import pandas as pd
import pytest

from chatbot import plot
from chatbot.errors import ChatbotError

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def make_run(tmp_path: Path, name: str, *, val: bool = True, monitor: str | None = "val_loss",
             epochs: int = 5) -> Path:
    """A run directory like `chatbot train` leaves: history.csv and (optionally) config.json."""
    run = tmp_path / name
    run.mkdir()
    columns = {
        "epoch": list(range(epochs)),
        "learning_rate": [0.001] * epochs,
        "loss": [2.0 / (e + 1) for e in range(epochs)],  # keeps falling: best is the last
        "masked_accuracy": [0.1 * (e + 1) for e in range(epochs)],
    }
    if val:
        # Validation loss bottoms out at epoch index 2, then overfits.
        columns["val_loss"] = [3.0, 2.0, 1.0, 1.5, 2.5][:epochs]
        columns["val_masked_accuracy"] = [0.1, 0.3, 0.6, 0.5, 0.4][:epochs]
    pd.DataFrame(columns).to_csv(run / "history.csv", index=False)
    if monitor is not None:
        (run / "config.json").write_text(json.dumps({"train": {"monitor": monitor}}))
    return run


def assert_png(path: Path) -> None:
    assert path.is_file()
    assert path.read_bytes()[:8] == PNG_MAGIC
    image = matplotlib.image.imread(path)
    assert image.shape[0] > 0 and image.shape[1] > 0


def capture_figure(monkeypatch):
    """Intercept the figure plot_runs saves, to inspect what it drew."""
    captured = {}
    real_save = plot._save_png

    def save(figure, out_path):
        captured["figure"] = figure
        return real_save(figure, out_path)

    monkeypatch.setattr(plot, "_save_png", save)
    return captured


def legend_texts(ax) -> list[str]:
    return [text.get_text() for text in ax.get_legend().get_texts()]


def test_plot_one_run_writes_png(tmp_path, monkeypatch):
    captured = capture_figure(monkeypatch)
    run = make_run(tmp_path, "default")
    out = tmp_path / "plots" / "nested" / "curves.png"  # parents do not exist yet
    assert plot.plot_runs([run], out) == out
    assert_png(out)
    assert [p.name for p in out.parent.iterdir()] == ["curves.png"]  # no temp file left behind

    loss_ax, acc_ax = captured["figure"].axes
    assert loss_ax.get_title() == "loss" and acc_ax.get_title() == "masked accuracy"
    assert loss_ax.get_xlabel() == "epoch"
    # val_loss is lowest at epoch index 2, shown to humans as epoch 3.
    assert legend_texts(loss_ax) == ["default (best epoch 3)", "default validation"]
    train, val, marker = loss_ax.get_lines()
    assert list(train.get_xdata()) == [1, 2, 3, 4, 5]
    assert train.get_linestyle() == "-" and val.get_linestyle() == "--"
    assert train.get_color() == val.get_color() == marker.get_color()
    # The marker sits on the monitored (validation) curve at the best epoch.
    assert list(marker.get_xdata()) == [3] and list(marker.get_ydata()) == [1.0]
    assert list(acc_ax.get_lines()[2].get_ydata()) == [0.6]


def test_plot_two_runs_overlay_in_distinct_colours(tmp_path, monkeypatch):
    captured = capture_figure(monkeypatch)
    first = make_run(tmp_path, "default")
    second = make_run(tmp_path, "small", monitor="loss", epochs=4)
    out = plot.plot_runs([first, str(second)], tmp_path / "both.png")
    assert_png(out)

    loss_ax = captured["figure"].axes[0]
    assert legend_texts(loss_ax) == [
        "default (best epoch 3)", "default validation",
        "small (best epoch 4)", "small validation",
    ]
    lines = loss_ax.get_lines()
    assert len(lines) == 6
    assert lines[0].get_color() != lines[3].get_color()
    # "small" monitored training loss: its marker is on the training curve's last point.
    assert list(lines[5].get_xdata()) == [4] and list(lines[5].get_ydata()) == [0.5]


def test_plot_run_without_validation_or_config(tmp_path, monkeypatch):
    captured = capture_figure(monkeypatch)
    run = make_run(tmp_path, "noval", val=False, monitor=None)
    out = plot.plot_runs([run], tmp_path / "noval.png")
    assert_png(out)
    loss_ax = captured["figure"].axes[0]
    # No config.json and no val_loss: falls back to loss, which is lowest at the last epoch.
    assert legend_texts(loss_ax) == ["noval (best epoch 5)"]
    assert all(line.get_linestyle() != "--" for line in loss_ax.get_lines())


def test_val_monitor_without_val_columns_falls_back_to_training_twin(tmp_path):
    run = make_run(tmp_path, "r", val=False, monitor="val_masked_accuracy")
    assert plot.run_monitor(run, plot.load_history(run)) == "masked_accuracy"


def test_overwrites_existing_png(tmp_path):
    out = tmp_path / "curves.png"
    out.write_bytes(b"old")
    plot.plot_runs([make_run(tmp_path, "default")], out)
    assert_png(out)


def test_best_epoch_min_for_loss_max_for_accuracy():
    history = pd.DataFrame({
        "epoch": [0, 1, 2, 3],
        "loss": [3.0, 1.0, 2.0, 1.0],  # tie: the earliest wins, as in Keras checkpoints
        "val_loss": [3.0, 2.5, 0.5, 0.9],
        "val_masked_accuracy": [0.2, 0.9, 0.4, 0.1],
    })
    assert plot.best_epoch(history, "loss") == 1
    assert plot.best_epoch(history, "val_loss") == 2
    assert plot.best_epoch(history, "val_masked_accuracy") == 1
    assert plot.best_epoch(history, "masked_accuracy") is None
    # An answer rate: the highest, and among equal rates the lowest training loss, as the
    # run's checkpoint chooses (tests/test_callbacks.py)
    history["quality"] = [0.5, 0.5, 0.4, 0.5]
    assert plot.best_epoch(history, "quality") == 1  # losses 3.0, 1.0 and 1.0: the first 1.0
    history.loc[3, "loss"] = 0.5
    assert plot.best_epoch(history, "quality") == 3


def test_load_history_reads_columns(tmp_path):
    history = plot.load_history(make_run(tmp_path, "default"))
    assert list(history["epoch"]) == [0, 1, 2, 3, 4]
    assert {"loss", "masked_accuracy", "val_loss", "val_masked_accuracy"} <= set(history.columns)


def test_missing_run_dir(tmp_path):
    missing = tmp_path / "models" / "x"
    with pytest.raises(ChatbotError) as err:
        plot.load_history(missing)
    assert str(missing) in str(err.value)
    assert "no such run directory" in str(err.value) and "chatbot train" in str(err.value)
    with pytest.raises(ChatbotError, match="no such run directory"):
        plot.plot_runs([missing], tmp_path / "out.png")
    assert not (tmp_path / "out.png").exists()


def test_missing_history_csv(tmp_path):
    run = tmp_path / "fresh"
    run.mkdir()
    with pytest.raises(ChatbotError) as err:
        plot.load_history(run)
    assert str(run / "history.csv") in str(err.value)
    assert "not finished an epoch" in str(err.value)


@pytest.mark.parametrize("content", ["", "epoch,loss,masked_accuracy\n"])
def test_empty_history_csv(tmp_path, content):
    run = tmp_path / "fresh"
    run.mkdir()
    (run / "history.csv").write_text(content)
    with pytest.raises(ChatbotError) as err:
        plot.load_history(run)
    assert str(run / "history.csv") in str(err.value)
    assert "not finished an epoch" in str(err.value)


def test_missing_columns_are_named(tmp_path):
    run = tmp_path / "odd"
    run.mkdir()
    pd.DataFrame({"epoch": [0, 1], "loss": [1.0, 0.5]}).to_csv(run / "history.csv", index=False)
    with pytest.raises(ChatbotError) as err:
        plot.load_history(run)
    problem = str(err.value).split(";")[0]  # the part before the hint names what is missing
    assert str(run / "history.csv") in problem
    assert problem.endswith("missing column(s) masked_accuracy")


def test_no_runs_is_an_error(tmp_path):
    with pytest.raises(ChatbotError):
        plot.plot_runs([], tmp_path / "out.png")


def test_imports_neither_tensorflow_nor_pyplot():
    code = ("import sys, chatbot.plot; "
            "print(sorted(m for m in sys.modules "
            "if m.split('.')[0] in ('tensorflow', 'keras') or m == 'matplotlib.pyplot'))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "[]"


def heatmap(tokens: list[str], out: Path) -> None:
    plot.plot_attention(np.full((len(tokens), len(tokens)), 0.5), tokens, tokens, out)


def grid(tokens: list[str], out: Path) -> None:
    """Two layers of three heads of uniform causal self-attention."""
    causal = np.tril(np.ones((len(tokens), len(tokens))))
    weights = np.broadcast_to(causal / causal.sum(axis=1, keepdims=True), (2, 3, *causal.shape))
    plot.plot_self_attention(weights, tokens, out)


def glyphs_drawn_as_boxes(tokens: list[str], out: Path, draw=heatmap) -> list[str]:
    """The warnings about characters its fonts lack (matplotlib draws boxes) when `draw`
    labels a picture with `tokens`."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        draw(tokens, out)
    assert_png(out)
    return [str(w.message) for w in caught if "missing from font" in str(w.message)]


@pytest.mark.parametrize("draw", [heatmap, grid])
def test_attention_pictures_draw_chinese_with_a_cjk_font(tmp_path, monkeypatch, draw):
    if plot.cjk_font() is None:
        pytest.skip("no CJK font installed, so Chinese tick labels cannot be checked; "
                    "install one (Debian/Ubuntu: apt install fonts-wqy-microhei, as .ci/run does)")
    tokens = ["<SOS>", "你", "好", "hello", "<SEP>", "！"]
    assert glyphs_drawn_as_boxes(tokens, tmp_path / "with_font.png", draw) == []
    # The check can fail: without the CJK font the same labels are boxes, and matplotlib says so.
    monkeypatch.setattr(plot, "cjk_font", lambda: None)
    assert len(glyphs_drawn_as_boxes(tokens, tmp_path / "without.png", draw)) >= 3


def test_the_self_attention_grid_has_a_panel_per_layer_and_head(tmp_path, monkeypatch):
    captured = capture_figure(monkeypatch)
    tokens = ["<SOS>", "hi", "<SEP>", "yo"]
    grid(tokens, tmp_path / "grid.png")
    assert_png(tmp_path / "grid.png")
    panels = [ax for ax in captured["figure"].axes if ax.get_title()]  # the colour bar has no title
    assert [ax.get_title() for ax in panels] == [
        f"layer {layer}, head {head}" for layer in (1, 2) for head in (1, 2, 3)]
    # One colour scale; above the diagonal (later tokens) nothing is drawn.
    for ax in panels:
        image = ax.get_images()[0]
        assert image.get_clim() == (0.0, 1.0)
        assert image.get_array().mask[0, 1] and not image.get_array().mask[1, 0]
    # Token labels on the bottom row and the left column only.
    labels = [[t.get_text() for t in ax.get_xticklabels()] for ax in panels]
    assert labels[3:] == [tokens] * 3 and labels[:3] == [[]] * 3
    assert [[t.get_text() for t in ax.get_yticklabels()] for ax in panels[::3]] == [tokens] * 2


def test_self_attention_of_the_wrong_shape_is_refused(tmp_path):
    with pytest.raises(ChatbotError, match=r"\(layers, heads, 3, 3\) for 3 tokens"):
        plot.plot_self_attention(np.ones((2, 2, 4, 4)), ["a", "b", "c"], tmp_path / "x.png")
    with pytest.raises(ChatbotError, match="do not match"):
        plot.plot_self_attention(np.ones((3, 3)), ["a", "b", "c"], tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()
