"""The run directory: atomic writes, the history reader, whether training finished, the backup
pointer and the lock that keeps a second trainer out. No TensorFlow needed."""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import stat
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from chatbot import rundir
from chatbot.decoding.bot import Bot
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


# === a run directory is checked before use =====================================================
# A run directory is checked before use: damaged, mismatched or hostile files give one
# ChatbotError that says what is wrong and what to do, from `Bot.load` and from the CLI (exit code
# 1, the message on stderr, no traceback). Nothing in the package unpickles or disables Keras'
# safe mode.

PACKAGE = Path(__file__).resolve().parents[1] / "chatbot"
ACTIONS = ("retrain", "chatbot train", "upgrade", "choose one of")  # a message says what to do


@pytest.fixture
def run(tiny_run, tmp_path) -> Path:
    """A copy of the tiny run, to damage."""
    return Path(shutil.copytree(tiny_run, tmp_path / "run"))


def load_error(run_dir: Path) -> str:
    """The message of the ChatbotError Bot.load raises (any other outcome fails the test)."""
    with pytest.raises(ChatbotError) as info:
        Bot.load(run_dir)
    return str(info.value)


def cli_reply(run_dir: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "chatbot.cli", "reply", "--model", str(run_dir),
                           "hi"], capture_output=True, timeout=120)


def assert_refused(run_dir: Path, *words: str) -> None:
    """Bot.load and `chatbot reply` both refuse run_dir with a message holding `words`."""
    message = load_error(run_dir)
    for word in words:
        assert word in message, message
    assert any(action in message for action in ACTIONS), f"says not what to do: {message}"
    result = cli_reply(run_dir)
    err = result.stderr.decode()
    assert result.returncode == 1, err
    assert "Traceback" not in err
    assert err.startswith("chatbot: error: ") and message in err
    assert result.stdout == b""


# --- damage -----------------------------------------------------------------------------------


def remove(name: str) -> Callable[[Path], None]:
    return lambda d: (d / name).unlink()


def write(name: str, content: bytes) -> Callable[[Path], None]:
    return lambda d: (d / name).write_bytes(content)


def truncate(name: str) -> Callable[[Path], None]:
    def damage(d: Path) -> None:
        raw = (d / name).read_bytes()
        (d / name).write_bytes(raw[: len(raw) // 2])
    return damage


def scramble(name: str) -> Callable[[Path], None]:
    def damage(d: Path) -> None:
        size = (d / name).stat().st_size
        (d / name).write_bytes(random.Random(7).randbytes(size))
    return damage


def edit_json(name: str, change: Callable[[dict], None]) -> Callable[[Path], None]:
    def damage(d: Path) -> None:
        raw = json.loads((d / name).read_text(encoding="utf-8"))
        change(raw)
        (d / name).write_text(json.dumps(raw), encoding="utf-8")
    return damage


def set_model(**values) -> Callable[[Path], None]:
    return edit_json("config.json", lambda raw: raw["model"].update(values))


DAMAGE = [
    pytest.param(remove("config.json"), ["missing config.json"], id="no-config"),
    pytest.param(remove("vocab.json"), ["missing vocab.json"], id="no-vocab"),
    pytest.param(remove("model.keras"), ["missing model.keras"], id="no-model"),
    pytest.param(truncate("config.json"), ["config.json", "not valid JSON"], id="config-truncated"),
    pytest.param(write("config.json", b"lstm, 64 units"), ["config.json", "not valid JSON"],
                 id="config-not-json"),
    pytest.param(write("config.json", b"\xff\xfe{\x00"), ["config.json", "not valid JSON"],
                 id="config-utf16"),
    pytest.param(write("vocab.json", b'{"tokens": ["<PAD>", '), ["vocab.json", "not valid JSON"],
                 id="vocab-not-json"),
    pytest.param(truncate("model.keras"), ["model.keras", "damaged"], id="model-half"),
    pytest.param(write("model.keras", b""), ["model.keras", "damaged"], id="model-empty"),
    pytest.param(scramble("model.keras"), ["model.keras", "damaged"], id="model-random"),
    pytest.param(edit_json("vocab.json", lambda raw: raw["tokens"].pop()),
                 ["vocab.json", "model.keras", "different runs"], id="vocab-one-less"),
    pytest.param(edit_json("vocab.json", lambda raw: raw["tokens"].append("zebra_extra")),
                 ["vocab.json", "model.keras", "different runs"], id="vocab-one-more"),
    pytest.param(edit_json("config.json", lambda raw: raw.update(format_version=999)),
                 ["config.json", "format_version 999", "newer"], id="format-999"),
    pytest.param(set_model(arch="seq2seq"), ["config.json", "'seq2seq'"], id="arch-seq2seq"),
    pytest.param(set_model(arch="attention"), ["config.json", "'attention'"], id="arch-attention"),
    pytest.param(set_model(num_layers=2), ["config.json", "2 layer(s)"], id="two-layers"),
]


@pytest.mark.slow
@pytest.mark.parametrize("damage, words", DAMAGE)
def test_damaged_run_is_refused_with_one_clear_error(run, damage, words):
    damage(run)
    assert_refused(run, *words)


def test_missing_directory_says_to_train(tmp_path):
    assert_refused(tmp_path / "nowhere", "no such model directory", "chatbot train --data")


# Damage the checks miss. Each test states what a fixed loader must do.

XFAIL_DAMAGE = [
    pytest.param(write("vocab.json", b'{"words": ["<PAD>", "<SOS>"]}'),
                 ["vocab.json", '"tokens"'], id="vocab-wrong-structure"),
    pytest.param(write("config.json", b"[1, 2]"), ["config.json", "object"],
                 id="config-is-a-list"),
    pytest.param(set_model(arch="mamba"), ["config.json", "'mamba'"], id="arch-unknown"),
    pytest.param(set_model(arch="transformer"), ["config.json", "max_positions"],
                 id="arch-of-another-run"),
    pytest.param(edit_json("config.json", lambda raw: raw.update(format_version="1")),
                 ["config.json", "format_version"], id="format-version-string"),
]


@pytest.mark.slow
@pytest.mark.parametrize("damage, words", XFAIL_DAMAGE)
def test_damaged_run_message_names_the_file_and_the_fix(run, damage, words):
    damage(run)
    assert_refused(run, *words)
    if "format_version" in words:
        assert "newer" not in load_error(run)


def load_and_reply(run_dir: Path) -> str | None:
    """The ChatbotError message of Bot.load, or None if the bot loads and replies."""
    try:
        bot = Bot.load(run_dir)
    except ChatbotError as exc:
        return str(exc)
    bot.reply("hello")  # any exception here is the bug
    return None


@pytest.mark.slow
@pytest.mark.parametrize("section, name, value", [
    ("model", "num_layers", 0),  # IndexError in the sampler
    ("model", "hidden_dim", 65),  # ValueError: matmul size 64 is different from 65
    ("data", "max_len", "forty"),  # TypeError: slice indices must be integers
])
def test_settings_that_contradict_the_model_are_refused_at_load(run, section, name, value):
    edit_json("config.json", lambda raw: raw[section].update({name: value}))(run)
    message = load_and_reply(run)
    if message is not None:  # refusing is right; replying without a crash would be too
        assert "config.json" in message and name in message
    assert b"Traceback" not in cli_reply(run).stderr


# --- model.keras archives that are zips but not models ----------------------------------------


def rewrite_archive(path: Path, change: Callable[[dict[str, bytes]], None]) -> None:
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    change(members)
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)


def set_member(name: str, data: bytes) -> Callable[[dict[str, bytes]], None]:
    return lambda members: members.update({name: data})


@pytest.mark.slow
@pytest.mark.parametrize("change", [
    pytest.param(lambda m: m.pop("model.weights.h5"), id="no-weights"),
    pytest.param(lambda m: m.pop("config.json"), id="no-config"),
    pytest.param(set_member("config.json", b"{nope"), id="config-not-json"),
    pytest.param(set_member("config.json", b"{}"), id="no-layers"),
])
def test_archive_without_a_model_is_refused(run, change):
    rewrite_archive(run / "model.keras", change)
    assert_refused(run, "model.keras")


@pytest.mark.slow
@pytest.mark.parametrize("change", [
    pytest.param(lambda m: m.update({"model.weights.h5": m["model.weights.h5"][:1000]}),
                 id="weights-truncated"),
    pytest.param(set_member("model.weights.h5", random.Random(3).randbytes(4000)),
                 id="weights-random"),
    pytest.param(set_member("config.json", b"\xff\xfe{"), id="config-not-utf8"),
    pytest.param(set_member("config.json", b'{"config": {"layers": [1, 2]}}'),
                 id="layers-not-objects"),
    pytest.param(set_member("config.json", b'{"config": ["layers"]}'), id="config-a-list"),
])
def test_archive_with_damaged_members_is_refused(run, change):
    rewrite_archive(run / "model.keras", change)
    assert_refused(run, "model.keras")


# --- hostile models ---------------------------------------------------------------------------


def save_model_with_lambda(path: Path) -> None:
    """A functional model whose Lambda layer creates the file $HOSTILE_MARKER when it runs."""
    import keras

    # A Python lambda is saved as bytecode, which a loader would run (a named function is saved
    # by name only). Creating a file stands in for arbitrary code.
    payload = lambda x: (  # noqa: E731
        open(__import__("os").environ["HOSTILE_MARKER"], "w").close(), x)[1]
    prompt = keras.Input(shape=(None,), dtype="int32", name="prompt")
    x = keras.layers.Embedding(47, 8, name="embedding")(prompt)
    x = keras.layers.Lambda(payload, name="payload")(x)
    keras.Model(prompt, keras.layers.Dense(47, name="output")(x)).save(path)


@pytest.mark.slow
def test_model_with_a_lambda_layer_is_refused_and_its_code_never_runs(
        run, tmp_path, monkeypatch):
    import keras

    marker = tmp_path / "code-ran"
    monkeypatch.setenv("HOSTILE_MARKER", str(marker))
    save_model_with_lambda(run / "model.keras")
    marker.unlink()  # building the model ran it once
    assert_refused(run, "'payload'", "Lambda", "chatbot train")
    assert not marker.exists()
    # Keras' own loader refuses it too: safe_mode is on by default and nothing here turns it off.
    with pytest.raises(ValueError, match="safe_mode"):
        keras.saving.load_model(run / "model.keras")
    assert not marker.exists()
    keras.saving.load_model(run / "model.keras", safe_mode=False)  # proof the file is hostile
    assert marker.exists()


@pytest.mark.slow
@pytest.mark.parametrize("module, class_name", [
    ("evil.payload", "Backdoor"), ("keras.layers", "Lambda"), ("keras", "Sequential"),
    ("builtins", "eval"),
])
def test_layer_class_outside_the_allow_list_is_refused(run, module, class_name):
    def smuggle(members: dict[str, bytes]) -> None:
        config = json.loads(members["config.json"])
        layer = config["config"]["layers"][-1]  # the output Dense layer
        layer.update(module=module, class_name=class_name)
        members["config.json"] = json.dumps(config).encode()

    rewrite_archive(run / "model.keras", smuggle)
    assert_refused(run, "refused", class_name, module)


UNSAFE = {
    "imports pickle": r"^\s*(import|from)\s+(c?pickle|dill|cloudpickle|joblib|marshal|shelve)\b",
    "unpickles": r"\b(pickle|dill|joblib)\.loads?\(",
    "np.load with allow_pickle=True": r"allow_pickle\s*=\s*True",
    "turns off Keras' safe_mode": r"safe_mode\s*=\s*False|enable_unsafe_deserialization",
    "evaluates text": r"(?<![\w.])(eval|exec)\(",
}


def test_no_module_unpickles_or_disables_safe_mode():
    sources = sorted(PACKAGE.rglob("*.py"))
    assert len(sources) > 10  # the scan really reads the package
    found = [
        f"{path.relative_to(PACKAGE.parent)}:{number}: {what}: {line.strip()}"
        for path in sources
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
        for what, pattern in UNSAFE.items()
        if re.search(pattern, line)
    ]
    assert found == []
