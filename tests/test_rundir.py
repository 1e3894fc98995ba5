"""The run directory: atomic writes, the history reader, whether training finished, the backup
pointer and the lock that keeps a second trainer out. No TensorFlow needed."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time

import pytest

from chatbot import rundir
from chatbot.errors import ChatbotError
from chatbot.rundir import atomic_write, atomic_write_text


def names(directory) -> list[str]:
    return sorted(p.name for p in directory.iterdir())



def test_atomic_write_creates_the_file_and_leaves_no_temporary_files(tmp_path):
    path = tmp_path / "out.json"
    atomic_write_text(path, "héllo 你好\n")
    assert path.read_bytes() == "héllo 你好\n".encode()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]


def test_atomic_write_replaces_an_existing_file(tmp_path):
    path = tmp_path / "out.txt"
    path.write_text("old content that is longer than the new one\n", encoding="utf-8")
    atomic_write_text(path, "new\n")
    assert path.read_text(encoding="utf-8") == "new\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_atomic_write_writes_lf_line_ends(tmp_path):
    path = tmp_path / "out.txt"
    atomic_write_text(str(path), "a\nb\n")
    assert path.read_bytes() == b"a\nb\n"


def test_atomic_write_creates_parent_directories(tmp_path):
    path = tmp_path / "a" / "b" / "out.txt"
    atomic_write_text(path, "x")
    assert path.read_text(encoding="utf-8") == "x"
    assert sorted(p.name for p in path.parent.iterdir()) == ["out.txt"]


def test_failed_atomic_write_keeps_old_file_and_removes_temporary(tmp_path):
    path = tmp_path / "out.txt"
    path.write_text("old\n", encoding="utf-8")
    with pytest.raises(UnicodeEncodeError):
        atomic_write_text(path, "lone surrogate \ud800")
    assert path.read_text(encoding="utf-8") == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_atomic_write_new_file_respects_umask(tmp_path):
    path = tmp_path / "config.json"
    atomic_write_text(path, "{}\n")
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~_umask()


def test_atomic_write_keeps_mode_of_replaced_file(tmp_path):
    path = tmp_path / "config.json"
    path.write_text("{}\n", encoding="utf-8")
    os.chmod(path, 0o644)
    atomic_write_text(path, '{"a": 1}\n')
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_atomic_write_gives_the_writer_a_temporary_file_ending_like_the_target(tmp_path):
    seen = []

    def write(tmp):  # Keras refuses to save to a name that does not end in .weights.h5
        seen.append(tmp)
        tmp.write_bytes(b"weights")

    atomic_write(tmp_path / "epoch-3.weights.h5", write)
    assert seen[0].name.endswith(".weights.h5") and seen[0].parent == tmp_path
    assert names(tmp_path) == ["epoch-3.weights.h5"]


def test_a_writer_that_fails_leaves_the_old_file_and_no_temporary(tmp_path):
    (tmp_path / "model.keras").write_bytes(b"old")

    def write(tmp):
        tmp.write_bytes(b"half")
        raise KeyboardInterrupt  # Ctrl-C in the middle of a save

    with pytest.raises(KeyboardInterrupt):
        atomic_write(tmp_path / "model.keras", write)
    assert (tmp_path / "model.keras").read_bytes() == b"old"
    assert names(tmp_path) == ["model.keras"]


# --- history.csv -----------------------------------------------------------------------------


def test_history_round_trip_and_missing_or_empty_history_has_no_rows(tmp_path):
    assert rundir.read_history(tmp_path).empty
    (tmp_path / "history.csv").write_text("", encoding="utf-8")
    assert rundir.read_history(tmp_path).empty
    rows = [{"epoch": 0, "loss": 2.5}, {"epoch": 1, "loss": 1.25}]
    rundir.write_history(tmp_path, rows)
    assert rundir.read_history(tmp_path).to_dict("records") == rows


def test_unreadable_history_names_the_file(tmp_path):
    (tmp_path / "history.csv").write_bytes(b"epoch,loss\n\xff\xfe,1\n")
    with pytest.raises(ChatbotError, match=r"history\.csv: not a readable CSV file"):
        rundir.read_history(tmp_path)


# --- whether training finished ---------------------------------------------------------------


def start(run, epochs_planned: int = 30):
    """What train() writes before the first epoch."""
    rundir.start_run(run)
    (run / "config.json").write_text(json.dumps({"train": {"epochs": epochs_planned}}))
    (run / "vocab.json").write_text("{}")


def back_up(run, epoch: int, states=None) -> None:
    rundir.write_backup(run, epoch, lambda path: path.write_bytes(b"w%d" % epoch),
                        states or {})


def test_a_run_goes_from_nothing_to_training_to_finished(tmp_path):
    run = tmp_path / "run"
    assert rundir.run_state(run).state is None
    rundir.start_run(run)
    assert rundir.run_state(run) == rundir.RunState(run, "training")  # not resumable yet
    start(run)
    assert rundir.run_state(run) == rundir.RunState(run, "training", 0, 30, resumable=True)
    back_up(run, 1)
    back_up(run, 2)
    assert rundir.run_state(run).epochs_done == 2
    (run / "model.keras").write_bytes(b"model")  # a model is not the end of training
    assert rundir.run_state(run).state == "training"
    rundir.finish_run(run, epochs=2, best_epoch=2)
    state = rundir.run_state(run)
    assert (state.state, state.finished) == ("finished", {"state": "finished", "epochs": 2,
                                                          "best_epoch": 2})
    assert names(run) == ["config.json", "model.keras", "status.json", "vocab.json"]


def test_runs_written_before_the_status_file_existed(tmp_path):
    (tmp_path / "model.keras").write_bytes(b"model")
    assert rundir.run_state(tmp_path).state == "finished"
    (tmp_path / ".backup").mkdir()
    assert rundir.run_state(tmp_path).state == "training"


@pytest.mark.parametrize("content", [b"{half", b"[1, 2]", b'{"state": "paused"}'])
def test_a_damaged_status_file_falls_back_to_what_the_directory_holds(tmp_path, content):
    (tmp_path / "status.json").write_bytes(content)
    assert rundir.run_state(tmp_path).state is None
    (tmp_path / "model.keras").write_bytes(b"model")
    assert rundir.run_state(tmp_path).state == "finished"
    (tmp_path / ".backup").mkdir()
    assert rundir.run_state(tmp_path).state == "training"


def test_the_status_decides_over_a_leftover_backup(tmp_path):
    start(tmp_path)
    back_up(tmp_path, 3)
    rundir.write_json(tmp_path / "status.json", {"state": "finished"})  # killed while cleaning
    assert rundir.run_state(tmp_path).state == "finished"


def test_unfinished_runs_get_a_warning_that_says_how_to_finish_them(tmp_path):
    run = tmp_path / "default"
    start(run, epochs_planned=30)
    back_up(run, 4)
    assert rundir.unfinished_warning(run) == (
        f"{run}: training was interrupted after 4 of 30 epochs; this is its best model so "
        f"far. To finish it: 'chatbot train --resume {run}' (or 'make train')")
    rundir.finish_run(run)
    assert rundir.unfinished_warning(run) is None


def test_what_can_be_resumed(tmp_path):
    with pytest.raises(ChatbotError, match="no interrupted run to resume"):
        rundir.check_resumable(tmp_path)
    rundir.start_run(tmp_path)
    with pytest.raises(ChatbotError, match="before its settings were written.*--overwrite"):
        rundir.check_resumable(tmp_path)
    start(tmp_path)
    assert rundir.check_resumable(tmp_path).resumable
    rundir.finish_run(tmp_path)
    with pytest.raises(ChatbotError, match="already finished.*--init-from"):
        rundir.check_resumable(tmp_path)


def test_a_run_stopped_before_its_first_epoch_says_how_to_resume(tmp_path):
    start(tmp_path)
    with pytest.raises(ChatbotError, match=r"interrupted before its first epoch finished "
                       r"\(missing model\.keras\); continue it with 'chatbot train --resume"):
        rundir.check_run_dir(tmp_path)


# --- the backup of the last finished epoch ---------------------------------------------------


def test_the_backup_keeps_the_last_epoch_and_its_states(tmp_path):
    assert rundir.read_backup(tmp_path) is None
    back_up(tmp_path, 1, {"checkpoint": {"best": 2.0}})
    back_up(tmp_path, 2, {"checkpoint": {"best": 1.0}})
    backup = rundir.read_backup(tmp_path)
    assert (backup.epoch, backup.states) == (2, {"checkpoint": {"best": 1.0}})
    assert backup.weights.read_bytes() == b"w2"
    assert names(tmp_path / ".backup") == ["epoch-2.weights.h5", "epoch.json"]


def test_a_backup_whose_weights_are_gone_is_refused(tmp_path):
    back_up(tmp_path, 1)
    (tmp_path / ".backup" / "epoch-1.weights.h5").unlink()
    with pytest.raises(ChatbotError, match="epoch-1.weights.h5: missing.*--overwrite"):
        rundir.read_backup(tmp_path)


# --- one trainer at a time -------------------------------------------------------------------


def test_a_second_trainer_is_refused_while_the_first_holds_the_lock(tmp_path):
    assert not rundir.is_training_now(tmp_path)
    with rundir.training_lock(tmp_path):
        assert rundir.is_training_now(tmp_path)
        with pytest.raises(ChatbotError, match="another process is training it right now"):
            with rundir.training_lock(tmp_path):
                pass
    assert not rundir.is_training_now(tmp_path)


HOLD = """
import sys, time
from chatbot.rundir import training_lock
with training_lock(sys.argv[1]):
    print("locked", flush=True)
    time.sleep(120)
"""


@pytest.mark.slow
def test_the_lock_dies_with_its_process_even_by_kill_9(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path)],
                              stdout=subprocess.PIPE)
    try:
        assert holder.stdout.readline() == b"locked\n"
        assert rundir.is_training_now(tmp_path)
        start(tmp_path)
        assert rundir.run_state(tmp_path).busy
        assert "is training right now" in rundir.unfinished_warning(tmp_path)
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
    deadline = time.monotonic() + 10
    while rundir.is_training_now(tmp_path):  # the kernel drops it as the process ends
        assert time.monotonic() < deadline
        time.sleep(0.05)
