"""`make train`, `make plot` (and `make chat`, which depends on `train` the same way) on a run
that was killed or interrupted: they resume it and finish it, never restart it, never take it for
finished, and once it has finished they leave it alone.

Each test drives the real Makefile with a tiny run (MODEL, DATA and TRAIN_FLAGS are make
variables) and this virtual environment (BIN; `-o` keeps make from reinstalling it)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from chatbot.rundir import read_backup, run_state
from tests.helpers import rows, synthetic_tsv, wait_for

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("make") is None, reason="GNU make is not installed"),
]
ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
EPOCHS = 6  # a kill after epoch 1 or a Ctrl-C after epoch 2 leaves some to resume
FLAGS = f"--preset tiny --epochs {EPOCHS} --val-fraction 0.1 --patience 100"


def make(target: str, run: Path, flags: str = FLAGS) -> list[str]:
    data = run.parent / "pairs.tsv"
    if not data.exists():
        synthetic_tsv(data)
    return ["make", "--no-print-directory", "-C", str(ROOT), target, f"BIN={BIN}",
            f"MODEL={run}", f"DATA={data}", f"TRAIN_FLAGS={flags}", "-o", f"{BIN}/chatbot"]


def start(target: str, run: Path) -> subprocess.Popen:
    """`make target` in a process group of its own, as a terminal runs a command."""
    return subprocess.Popen(make(target, run), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)


def finish(target: str, run: Path, flags: str = FLAGS) -> subprocess.CompletedProcess:
    return subprocess.run(make(target, run, flags), capture_output=True, timeout=600)


def assert_finished_once(run: Path) -> None:
    history = pd.read_csv(run / "history.csv")
    assert list(history["epoch"]) == list(range(EPOCHS))  # every epoch once: none redone
    assert run_state(run).state == "finished"
    assert not (run / ".backup").exists()


def test_make_train_killed_then_make_plot_resumes_finishes_and_plots(tmp_path):
    run = tmp_path / "run"
    proc = start("train", run)
    wait_for(lambda: rows(run) >= 1 and (run / "model.keras").exists())
    os.killpg(proc.pid, signal.SIGKILL)  # make, the shell and chatbot: all at once
    proc.wait()
    assert run_state(run).state == "training"
    done = read_backup(run).epoch

    result = finish("plot", run)  # what `make chat` does first too
    out = result.stdout.decode()
    assert result.returncode == 0, result.stderr.decode()[-3000:]
    assert f"resuming {run} after epoch {done} of {EPOCHS}" in out
    assert (run / "curves.png").read_bytes()[:4] == b"\x89PNG"
    assert_finished_once(run)


def test_make_train_after_ctrl_c_resumes_and_then_has_nothing_to_do(tmp_path):
    run = tmp_path / "run"
    # docs: chatbot train --if-needed --data my_pairs.tsv --out models/mine
    proc = start("train", run)
    wait_for(lambda: rows(run) >= 2)
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C in the terminal: the whole foreground group
    _, err = proc.communicate(timeout=120)
    assert proc.returncode != 0 and rows(run) < EPOCHS
    assert f"chatbot train --resume {run}" in err.decode() and "Traceback" not in err.decode()
    assert (run / "model.keras").exists() and (run / ".backup").is_dir()  # make deleted nothing

    result = finish("train", run)
    assert result.returncode == 0, result.stderr.decode()[-3000:]
    assert b"resuming" in result.stdout
    assert_finished_once(run)
    model = (run / "model.keras").read_bytes()

    again = finish("train", run)
    assert again.returncode == 0, again.stderr.decode()
    assert f"{run}: training finished ({EPOCHS} epochs".encode() in again.stdout
    assert (run / "model.keras").read_bytes() == model
    # Other settings than the finished run's are refused by name, not silently ignored.
    changed = finish("train", run, FLAGS + " --hidden-dim 32")
    assert changed.returncode != 0
    assert b"--hidden-dim 32 (the run has 64)" in changed.stderr
    assert (run / "model.keras").read_bytes() == model
