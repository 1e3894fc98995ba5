"""Never lose work: kill training at any moment, resume it, fine-tune from an old run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from chatbot.bot import Bot
from chatbot.train import BACKUP, AtomicCheckpoint, train
from tests.conftest import tiny_config

pytestmark = pytest.mark.slow
EPOCHS = 12


def synthetic_tsv(path: Path, n: int = 160) -> Path:
    """Pairs with a learnable pattern and enough rows that an epoch takes a moment."""
    words = ["red", "green", "blue", "cat", "dog", "bird", "one", "two", "three", "sun"]
    rows = [f"{words[i % 10]} {words[i // 10 % 10]} {i}\t{words[(i + 3) % 10]} {i % 7}"
            for i in range(n)]
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def start_training(data: Path, out: Path, *extra: str, epochs: int = EPOCHS) -> subprocess.Popen:
    args = ["train", "--data", str(data), "--out", str(out), "--preset", "tiny", "--epochs",
            str(epochs), "--val-fraction", "0.1", "--patience", "100", *extra]
    return subprocess.Popen([sys.executable, "-m", "chatbot.cli", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def wait_for(condition, timeout: float = 240.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("training did not get there in time")
        time.sleep(0.05)


def rows(history: Path) -> int:
    try:
        return len(pd.read_csv(history))
    except (FileNotFoundError, pd.errors.EmptyDataError):
        return 0


def resume(out: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "chatbot.cli", "train", "--resume", str(out)],
                          capture_output=True, timeout=600)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("straight")
    data = synthetic_tsv(root / "pairs.tsv")
    proc = start_training(data, root / "run")
    proc.communicate(timeout=600)
    assert proc.returncode == 0
    return root / "run"


@pytest.mark.parametrize("kill_after_epochs", [1, 5])
def test_killed_run_resumes_to_the_same_result(tmp_path, uninterrupted, kill_after_epochs):
    data = synthetic_tsv(tmp_path / "pairs.tsv")
    out = tmp_path / "run"
    proc = start_training(data, out)
    wait_for(lambda: rows(out / "history.csv") >= kill_after_epochs)
    proc.send_signal(signal.SIGKILL)  # kill -9: no cleanup at all
    proc.wait()
    assert (out / BACKUP).is_dir()
    Bot.load(out).reply("red green 1")  # the best model so far loads and answers right away

    result = resume(out)
    assert result.returncode == 0, result.stderr.decode()[-3000:]
    assert b"resuming" in result.stdout
    history = pd.read_csv(out / "history.csv")
    assert list(history["epoch"]) == list(range(EPOCHS))  # every epoch once, none lost
    straight = pd.read_csv(uninterrupted / "history.csv")
    assert history["loss"].iloc[-1] == pytest.approx(straight["loss"].iloc[-1], rel=0.25)
    assert not (out / BACKUP).exists()  # cleaned up once finished
    Bot.load(out).reply("red green 1")  # the finished run loads and answers


def test_ctrl_c_stops_cleanly_and_says_how_to_resume(tmp_path):
    data = synthetic_tsv(tmp_path / "pairs.tsv")
    out = tmp_path / "run"
    # Many epochs: an epoch takes a fraction of a second, and the run must still be going
    # when the signal lands.
    proc = start_training(data, out, epochs=5 * EPOCHS)
    wait_for(lambda: rows(out / "history.csv") >= 2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, (rows(out / "history.csv"), err.decode()[-2000:])
    assert f"chatbot train --resume {out}" in err.decode()
    assert b"Traceback" not in err
    Bot.load(out)  # the best model so far is complete and loads
    assert resume(out).returncode == 0
    assert len(pd.read_csv(out / "history.csv")) == 5 * EPOCHS


# A kill while the best model is being written: the previous model.keras must survive whole.
SLOW_SAVE = """
import sys, time, keras
from pathlib import Path
from chatbot.cli import main
marker = Path(sys.argv[1])
original = keras.Model.save
saves = []
def slow_save(self, path, *args, **kwargs):
    saves.append(path)
    if len(saves) == 3:  # the third checkpoint: two complete ones exist before it
        marker.write_text("{when}")
        if "{when}" == "before":
            time.sleep(600)
        original(self, path, *args, **kwargs)
        time.sleep(600)  # written to the temporary name, not yet renamed
    original(self, path, *args, **kwargs)
keras.Model.save = slow_save
sys.exit(main(sys.argv[2:]))
"""


@pytest.mark.parametrize("when", ["before", "after"])
def test_kill_during_a_checkpoint_write_keeps_the_previous_model(tmp_path, when):
    data = synthetic_tsv(tmp_path / "pairs.tsv")
    out, marker = tmp_path / "run", tmp_path / "saving"
    proc = subprocess.Popen(
        [sys.executable, "-c", SLOW_SAVE.replace("{when}", when), str(marker), "train",
         "--data", str(data), "--out", str(out), "--preset", "tiny", "--epochs", str(EPOCHS),
         "--val-fraction", "0", "--patience", "100"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(marker.exists)
    before = (out / "model.keras").read_bytes()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert (out / "model.keras").read_bytes() == before  # untouched, complete
    bot = Bot.load(out)
    assert isinstance(bot.reply("red green 1").text, str)
    assert resume(out).returncode == 0
    assert len(pd.read_csv(out / "history.csv")) == EPOCHS


def test_resume_never_replaces_the_best_model_with_a_worse_one(tmp_path):
    history = tmp_path / "history.csv"
    pd.DataFrame({"epoch": [0, 1, 2], "loss": [3.0, 1.5, 2.0]}).to_csv(history, index=False)
    checkpoint = AtomicCheckpoint(tmp_path / "model.keras", monitor="loss", mode="min")
    checkpoint.restore_best(history)
    assert (checkpoint.best, checkpoint.best_epoch) == (1.5, 2)
    assert not checkpoint.better(1.7) and checkpoint.better(1.4)


def test_resume_of_a_finished_run_explains(tiny_run):
    result = resume(tiny_run)
    assert result.returncode == 1
    assert "already finished" in result.stderr.decode() and b"Traceback" not in result.stderr


def test_init_from_fine_tunes_with_the_old_vocabulary(tiny_run, tmp_path):
    new = tmp_path / "new.tsv"
    new.write_text("hello\thi there!\nhello zebra\tmy name is bot.\n", encoding="utf-8")
    lines: list[str] = []
    config = tiny_config(epochs=30)
    train(new, tmp_path / "tuned", config, init_from=tiny_run, log=lines.append, verbose=0)
    old_vocab = json.loads((tiny_run / "vocab.json").read_text())
    assert json.loads((tmp_path / "tuned" / "vocab.json").read_text()) == old_vocab
    # 1 of 11 tokens ("zebra") is new: the rate is reported before training starts.
    assert lines[0].startswith("9.1% of the new data's tokens are not in the vocabulary")
    bot = Bot.load(tmp_path / "tuned")
    assert bot.reply("hello zebra").text == "my name is bot."
    assert bot.reply("hello").text == "hi there!"
