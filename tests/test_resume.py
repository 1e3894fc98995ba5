"""Never lose work: kill training at any moment and resume it, and the result is the run that
was never interrupted (same batches, optimizer state, early stopping and best model); fine-tune
from an old run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest

import chatbot.training.train
from chatbot.cli import main
from chatbot.decoding.bot import Bot
from chatbot.errors import ChatbotError
from chatbot.rundir import BACKUP, read_backup, run_state
from chatbot.training.batches import Batches
from chatbot.training.callbacks import EpochBackup
from chatbot.training.train import train
from tests.conftest import shared, tiny_config
from tests.helpers import rows, synthetic_tsv, wait_for

pytestmark = pytest.mark.slow
EPOCHS = 8  # a kill after epoch 5 leaves some to resume
STEPS = 5  # 144 training pairs (160, 10% held out) in batches of 32
RTOL = 1e-4  # CPU, same seeds: resumed epochs compute what the uninterrupted ones did


TRAIN_ARGS = ["--preset", "tiny", "--epochs", str(EPOCHS), "--val-fraction", "0.1",
              "--monitor", "loss", "--patience", "100", "--batch-size", "32"]


def start_training(data: Path, out: Path, *extra: str) -> subprocess.Popen:
    """`chatbot train` in a process of its own, to kill or interrupt."""
    args = ["train", "--data", str(data), "--out", str(out), *TRAIN_ARGS, *extra]
    return subprocess.Popen([sys.executable, "-m", "chatbot.cli", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def resume(capsys, out: Path, *extra: str) -> tuple[int, str, str]:
    """`chatbot train --resume OUT` run here, as the command runs it (what is resumed is the
    killed process's run; this process has TensorFlow loaded already): the exit code, the
    standard output and the standard error."""
    capsys.readouterr()
    # docs: chatbot train --resume models/mine
    status = main(["train", "--resume", str(out), *extra])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def saved_model(run: Path) -> keras.Model:
    return keras.saving.load_model(run / "model.keras")


def model_epoch(run: Path) -> int:
    """The epoch model.keras was saved after, from its optimizer's step count."""
    iterations = int(saved_model(run).optimizer.iterations)
    assert iterations % STEPS == 0
    return iterations // STEPS


def assert_same_run(run: Path, straight: Path) -> None:
    """`run` (interrupted and resumed) ended where the uninterrupted `straight` run did."""
    history, expected = pd.read_csv(run / "history.csv"), pd.read_csv(straight / "history.csv")
    assert list(history["epoch"]) == list(range(EPOCHS))  # every epoch once, none lost
    for column in expected.columns:
        np.testing.assert_allclose(history[column], expected[column], rtol=RTOL, err_msg=column)
    a, b = saved_model(run), saved_model(straight)
    assert int(a.optimizer.iterations) == int(b.optimizer.iterations)
    for x, y in zip(a.weights + a.optimizer.variables, b.weights + b.optimizer.variables):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=RTOL, atol=1e-6)
    assert not (run / BACKUP).exists()  # cleaned up once finished
    assert run_state(run).state == "finished"
    assert sorted(p.name for p in run.iterdir()) == sorted(p.name for p in straight.iterdir())


@pytest.fixture(scope="module")
def straight(tmp_path_factory) -> Path:
    def build(root):
        root.mkdir()
        args = ["train", "--data", str(synthetic_tsv(root / "pairs.tsv")), "--out",
                str(root / "run"), *TRAIN_ARGS]
        assert main(args) == 0  # the command, run here: the same run as in its own process

    run = shared(tmp_path_factory, "straight", {"synthetic": build})["synthetic"] / "run"
    # The monitor (training loss) improves every epoch here, so the model is the last epoch's.
    assert model_epoch(run) == EPOCHS
    return run


def test_each_epoch_shuffles_by_seed_and_epoch_alone():
    examples = [((list(range(k % 7 + 1)),), [k + 1] * (k % 5 + 1)) for k in range(50)]
    first = Batches(examples, batch_size=4, seed=3)
    orders = [first.plan() for _ in range(4)]
    assert Batches(examples, batch_size=4, seed=3, epoch=3).plan() == orders[3]
    assert orders[2] != orders[3]


@pytest.mark.parametrize("kill_after_epochs", [1, 5])
def test_killed_run_resumes_to_exactly_the_uninterrupted_run(tmp_path, straight, capsys,
                                                             kill_after_epochs):
    out = tmp_path / "run"
    proc = start_training(synthetic_tsv(tmp_path / "pairs.tsv"), out)
    # Each epoch writes its history row, then its backup, then (if it was the best so far) the
    # model: wait for the first model, so that there is one to load after the kill.
    wait_for(lambda: rows(out) >= kill_after_epochs and (out / "model.keras").exists())
    proc.send_signal(signal.SIGKILL)  # kill -9: no cleanup at all
    proc.wait()
    assert (out / BACKUP).is_dir() and run_state(out).state == "training"
    done = read_backup(out).epoch if read_backup(out) else 0
    assert done <= rows(out) and model_epoch(out) <= rows(out)  # history lists the model's epoch
    Bot.load(out).reply("red green 1")  # the best model so far loads and answers right away

    status, printed, err = resume(capsys, out)
    assert status == 0, err[-3000:]
    assert f"resuming {out} after epoch {done} of {EPOCHS}" in printed
    assert_same_run(out, straight)


def test_ctrl_c_stops_cleanly_and_says_how_to_resume(tmp_path, straight, capsys):
    out = tmp_path / "run"
    proc = start_training(synthetic_tsv(tmp_path / "pairs.tsv"), out)
    wait_for(lambda: rows(out) >= 2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, (rows(out), err.decode()[-2000:])
    assert f"chatbot train --resume {out}" in err.decode()
    assert b"Traceback" not in err
    Bot.load(out)  # the best model so far is complete and loads
    assert resume(capsys, out)[0] == 0
    assert_same_run(out, straight)


# A kill while the best model is being written, after its epoch was backed up.
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
def test_kill_during_a_checkpoint_write_keeps_the_previous_model(tmp_path, straight, capsys,
                                                                 when):
    out, marker = tmp_path / "run", tmp_path / "saving"
    proc = subprocess.Popen(
        [sys.executable, "-c", SLOW_SAVE.replace("{when}", when), str(marker), "train",
         "--data", str(synthetic_tsv(tmp_path / "pairs.tsv")), "--out", str(out), *TRAIN_ARGS],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(marker.exists)
    before = (out / "model.keras").read_bytes()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert (out / "model.keras").read_bytes() == before  # untouched, complete
    # Epoch 3 is backed up and in the history; the model is epoch 2's until the resume.
    assert read_backup(out).epoch == rows(out) == 3 and model_epoch(out) == 2
    assert isinstance(Bot.load(out).reply("red green 1").text, str)
    # Resumed with --epochs 3, it has nothing left to train: the model it ends with is the one
    # it writes from the backup of epoch 3, the best epoch, whose model the kill cut short.
    status, _, err = resume(capsys, out, "--epochs", "3")
    assert status == 0, err[-3000:]
    assert model_epoch(out) == rows(out) == 3 and run_state(out).state == "finished"
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in straight.iterdir())


def test_a_run_stopped_early_then_killed_while_measuring_trains_no_more(tmp_path, monkeypatch):
    data = synthetic_tsv(tmp_path / "pairs.tsv", n=40)
    config = tiny_config(epochs=60)
    config.train.patience, config.train.monitor, config.data.val_fraction = 1, "val_loss", 0.3
    finish = chatbot.training.train._finish

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(chatbot.training.train, "_finish", killed)
    with pytest.raises(KeyboardInterrupt):
        train(data, tmp_path / "run", config, log=lambda _: None, verbose=0)
    stopped = rows(tmp_path / "run")
    assert stopped < 60 and run_state(tmp_path / "run").state == "training"
    monkeypatch.setattr(chatbot.training.train, "_finish", finish)
    lines: list[str] = []
    result = train(None, tmp_path / "run", resume=True, log=lines.append, verbose=0)
    assert result.epochs == rows(tmp_path / "run") == stopped  # no epoch more
    assert f"stopped early after epoch {stopped}: val_loss has not improved for 1 epochs" in lines
    assert run_state(tmp_path / "run").state == "finished"


@pytest.mark.parametrize("arch", ["lstm", "transformer"])  # transformer: attention dropout too
def test_a_resumed_run_with_dropout_draws_the_masks_the_uninterrupted_run_drew(tmp_path,
                                                                             monkeypatch, arch):
    data = synthetic_tsv(tmp_path / "pairs.tsv", n=40)
    config = tiny_config(epochs=4, arch=arch)
    config.model.dropout, config.data.val_fraction = 0.3, 0.2
    train(data, tmp_path / "straight", config, log=lambda _: None, verbose=0)
    back_up = EpochBackup.on_epoch_end

    def killed_after_epoch_2(self, epoch, logs=None):
        back_up(self, epoch, logs)
        if epoch == 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(EpochBackup, "on_epoch_end", killed_after_epoch_2)
    with pytest.raises(KeyboardInterrupt):
        train(data, tmp_path / "run", config, log=lambda _: None, verbose=0)
    monkeypatch.undo()
    assert read_backup(tmp_path / "run").epoch == 2
    train(None, tmp_path / "run", resume=True, log=lambda _: None, verbose=0)
    resumed, straight = (pd.read_csv(tmp_path / name / "history.csv") for name in ("run",
                                                                                "straight"))
    assert list(resumed["epoch"]) == [0, 1, 2, 3]
    for column in straight.columns:
        np.testing.assert_allclose(resumed[column], straight[column], rtol=RTOL, err_msg=column)


def test_resume_of_a_finished_run_explains(tiny_run):
    result = subprocess.run([sys.executable, "-m", "chatbot.cli", "train", "--resume",
                             str(tiny_run)], capture_output=True, timeout=600)
    assert result.returncode == 1
    assert "already finished" in result.stderr.decode() and b"Traceback" not in result.stderr


def test_a_second_trainer_of_the_same_run_is_refused(tmp_path, capsys):
    out = tmp_path / "run"
    proc = start_training(synthetic_tsv(tmp_path / "pairs.tsv"), out, "--epochs", "500")
    try:
        wait_for(lambda: rows(out) >= 1)
        status, _, err = resume(capsys, out)  # the second trainer: this process
        assert status == 1, err[-2000:]
        assert "another process is training it right now" in err
        assert proc.poll() is None  # the first one trains on
    finally:
        proc.kill()
        proc.wait()


def test_init_from_fine_tunes_with_the_old_vocabulary_and_shape(tiny_run, tmp_path):
    new = tmp_path / "new.tsv"
    new.write_text("hello\thi there!\nhello zebra\tmy name is bot.\n", encoding="utf-8")
    lines: list[str] = []
    config = tiny_config(epochs=30)
    config.model.hidden_dim = 999  # the shape is the old run's: not applied
    config.data.min_count = 3  # shapes the vocabulary: not applied
    config.data.max_len = 20  # applied: truncation of the new data
    config.model.dropout = 0.05  # applied: no weights of its own
    train(new, tmp_path / "tuned", config, init_from=tiny_run, log=lines.append, verbose=0)
    old_vocab = json.loads((tiny_run / "vocab.json").read_text())
    assert json.loads((tmp_path / "tuned" / "vocab.json").read_text()) == old_vocab
    assert lines[0] == (f"fine-tuning {tiny_run}: keeping its vocabulary and its model (lstm, "
                        "embedding 32, hidden 64, 1 layer(s))")
    # 1 of 11 tokens ("zebra") is new: reported before training starts.
    assert (f"read as <UNK>: 1 of 11 training tokens (9.1%), not in the vocabulary of "
            f"{tiny_run}") in lines
    tuned = json.loads((tmp_path / "tuned" / "config.json").read_text())
    assert (tuned["model"]["hidden_dim"], tuned["data"]["min_count"]) == (64, 1)
    assert (tuned["model"]["dropout"], tuned["data"]["max_len"]) == (0.05, 20)
    bot = Bot.load(tmp_path / "tuned")
    assert bot.reply("hello zebra").text == "my name is bot."
    assert bot.reply("hello").text == "hi there!"


def test_init_from_needs_data(tiny_run, tmp_path):
    with pytest.raises(ChatbotError, match="no training data"):
        train(None, tmp_path / "tuned", tiny_config(), init_from=tiny_run, log=print)
