"""The run directory: the one module that reads and writes it.

    config.json   settings (chatbot.config)            vocab.json    the vocabulary
    model.keras   the best epoch's model               history.csv   one row per finished epoch
    metrics.json  figures measured at the end          status.json   "training" or "finished"
    memory.json   the training pairs by prompt, for retrieval (runs from before it have none)
    tokenizer.model  the sentencepiece model of a `--tokenizer sentencepiece` run
                  (chatbot.text.subword)
    runs/         TensorBoard logs (chatbot.training.tensorboard; train.tensorboard may move
                  them out of the run or turn them off)
    .backup/      while training: the last finished epoch (weights with optimizer state, and
                  the callbacks' state), so that a killed run continues where it was

Every file is written to a temporary name beside it and renamed into place (`atomic_write`), so
a kill at any moment leaves the old file or the new one, never half of one. `status.json` says
"training" from the moment a run starts until everything else is written, then "finished":
anything that loads a run can tell a finished one from one that was stopped half way.

No TensorFlow here (pandas only when history is read): `chatbot chat` loads through this module.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chatbot.errors import ChatbotError

try:  # a lock that the system drops when its process dies, even by kill -9
    import fcntl
except ImportError:  # Windows: no lock; two trainers of one directory are not detected
    fcntl = None

CONFIG = "config.json"
VOCAB = "vocab.json"
MODEL = "model.keras"
HISTORY = "history.csv"
METRICS = "metrics.json"
STATUS = "status.json"
MEMORY = "memory.json"  # the training pairs, for retrieval (chatbot.data.memory); optional
MEMORY_INDEX = "memory.npz"  # a large memory's index (chatbot.data.memory.INDEX_SUFFIX); optional
TOKENIZER = "tokenizer.model"  # the sentencepiece model (chatbot.text.subword); word runs have none
CALIBRATION = "calibration.json"  # evidence -> confidence (chatbot.decoding.confidence); optional
TAUGHT = "taught.jsonl"  # pairs taught in chats (chatbot.data.taught): the user's, never removed
FALLBACK = "fallback.txt"  # what the bot says when it does not know (chatbot.decoding.fallback)
TENSORBOARD = "runs"  # TensorBoard logs, by default (train.tensorboard)
BACKUP = ".backup"  # the last finished epoch while training runs; removed when it ends
_POINTER = "epoch.json"  # in BACKUP: which weights file holds the last finished epoch
_LOCK = "lock"  # in BACKUP: held by the process that trains the run

TRAINING, FINISHED = "training", "finished"


# --- writing and reading files ------------------------------------------------------------------


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> None:
    """Calls `write(temporary_path)`, then renames the temporary file to `path`.

    The temporary file sits beside `path` and ends like it (Keras wants `.keras`,
    `.weights.h5`). A crash at any moment leaves either the old file or the new one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.",
                                suffix=".tmp" + "".join(path.suffixes))
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        with open(tmp, "rb+") as f:  # on disk before the rename makes it visible
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it private; give it the usual mode
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    """Writes UTF-8 text with LF line ends through `atomic_write`."""
    def write(tmp: Path) -> None:
        with open(tmp, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
    atomic_write(path, write)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Writes `data` through `atomic_write`."""
    atomic_write(path, lambda tmp: tmp.write_bytes(data))


def write_json(path: str | Path, value: Any) -> None:
    atomic_write_text(path, json.dumps(value, indent=2, ensure_ascii=False) + "\n")


def read_json(path: str | Path) -> Any:
    """A run directory's JSON file; ChatbotError names the file and what to do."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ChatbotError(f"{path}: missing; the run directory is incomplete") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ChatbotError(f"{path}: not valid JSON ({exc}); retrain the model") from None
    except OSError as exc:
        raise ChatbotError(f"{path}: cannot read ({exc.strerror})") from None


def update_metrics(run_dir: str | Path, sections: dict[str, Any],
                   path: str | Path | None = None, replace: bool = False) -> Path:
    """Adds `sections` to the run's metrics.json (or to `path`), keeping what is there (a
    section that is an object keeps its other entries: `{"eval": {FILE: ...}}` adds one
    evaluation; with `replace`, each of `sections` replaces its whole section, so that a
    measure taken again leaves none of the old one's figures); returns the file written. A
    damaged file is refused rather than replaced: it may be all that is left of what training
    measured."""
    path = Path(path) if path is not None else Path(run_dir) / METRICS
    try:
        document = read_json(path) if path.exists() else {}
    except ChatbotError:
        document = None
    if not isinstance(document, dict):
        raise ChatbotError(f"{path}: not valid JSON or not a JSON object; move it away, or "
                           "write this evaluation elsewhere with -o FILE")
    for name, value in sections.items():
        kept = document.get(name)
        merge = not replace and isinstance(kept, dict) and isinstance(value, dict)
        document[name] = {**kept, **value} if merge else value
    write_json(path, document)
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def read_history(run_dir: str | Path):
    """history.csv of a run as a pandas DataFrame, one row per finished epoch (none if the
    file is missing or empty); ChatbotError if it cannot be read as CSV."""
    import pandas as pd

    path = Path(run_dir) / HISTORY
    try:
        return pd.read_csv(path)
    except (FileNotFoundError, pd.errors.EmptyDataError):
        return pd.DataFrame()
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise ChatbotError(f"{path}: not a readable CSV file ({exc})") from None


def write_history(run_dir: str | Path, rows: list[dict[str, float]]) -> None:
    """Rewrites history.csv whole (epoch, then the logs), so a kill never leaves half a row."""
    import pandas as pd

    atomic_write_text(Path(run_dir) / HISTORY, pd.DataFrame(rows).to_csv(index=False))


# --- whether training finished -------------------------------------------------------------------


@dataclass(frozen=True)
class RunState:
    path: Path
    state: str | None  # None (no run here), TRAINING (started, not finished) or FINISHED
    epochs_done: int = 0  # while training: epochs finished and backed up
    epochs_planned: int | None = None  # while training: the run's train.epochs
    resumable: bool = False  # config.json and vocab.json are there: `--resume` can continue it
    busy: bool = False  # another process is training it right now
    finished: dict = field(default_factory=dict)  # the finished status (epochs, best_epoch)

    def resume_hint(self) -> str:
        hint = f"'chatbot train --resume {self.path}'"
        return hint + (" (or 'make train')" if self.path.name == "default" else "")


def run_state(path: str | Path) -> RunState:
    """What `path` holds: no run, a run that has not finished training, or a finished one.

    Run directories written before status.json existed count as training while `.backup/`
    exists and as finished when they hold a model without it.
    """
    path = Path(path)
    try:
        status = read_json(path / STATUS) if (path / STATUS).is_file() else {}
    except ChatbotError:
        status = {}  # an atomic write is never half done: a damaged file is read as absent
    state = status.get("state") if isinstance(status, dict) else None
    if state not in (TRAINING, FINISHED):
        state = TRAINING if (path / BACKUP).is_dir() else FINISHED if (path / MODEL).is_file() \
            else None
    if state != TRAINING:
        return RunState(path, state, finished=status if state == FINISHED else {})
    backup = _read_pointer(path)
    try:
        planned = int(read_json(path / CONFIG)["train"]["epochs"])
    except (ChatbotError, KeyError, TypeError, ValueError):
        planned = None
    return RunState(path, TRAINING, epochs_done=backup.epoch if backup else 0,
                    epochs_planned=planned,
                    resumable=(path / CONFIG).is_file() and (path / VOCAB).is_file(),
                    busy=is_training_now(path))


def create_run(out: str | Path, overwrite: bool) -> None:
    """Makes `out` ready for a new run: refuses to replace a run unless `overwrite`, then
    removes the old run's files."""
    import shutil

    out = Path(out)
    state = run_state(out)
    if state.busy:
        raise ChatbotError(f"{out}: another process is training it right now; wait for it to "
                           "finish, or stop it first")
    if state.state is not None:
        if not overwrite:
            what = "a trained model" if state.state == FINISHED else "an interrupted run"
            raise ChatbotError(
                f"{out}: already holds {what}; pass --resume to continue an interrupted run, "
                "--overwrite to replace it, or choose another --out directory"
            )
        # The status goes first and the model before the new vocabulary lands, so that the
        # directory never pairs a new vocab.json with an old model.keras (which would reload
        # into gibberish), whenever the removal is interrupted.
        (out / STATUS).unlink(missing_ok=True)
        shutil.rmtree(out / BACKUP, ignore_errors=True)
        shutil.rmtree(out / TENSORBOARD, ignore_errors=True)
        for name in (MODEL, HISTORY, METRICS, MEMORY, MEMORY_INDEX, TOKENIZER, CALIBRATION):
            (out / name).unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)


def created(run_dir: str | Path) -> int | None:
    """When the run's settings were written (Unix time), as the API reports a model's
    `created`; None for a directory without them."""
    try:
        return int((Path(run_dir) / CONFIG).stat().st_mtime)
    except OSError:
        return None


def start_run(run_dir: str | Path) -> None:
    """Marks `run_dir` as training, before any other file of the run is written."""
    run_dir = Path(run_dir)
    (run_dir / BACKUP).mkdir(parents=True, exist_ok=True)
    write_json(run_dir / STATUS, {"state": TRAINING})


def finish_run(run_dir: str | Path, **summary: Any) -> None:
    """Marks `run_dir` as finished (once its model and metrics are written); drops the backup."""
    import shutil

    run_dir = Path(run_dir)
    write_json(run_dir / STATUS, {"state": FINISHED, **summary})
    # After the status: a kill half way through the removal leaves a finished run, whose
    # leftover backup nothing reads (and the next --overwrite removes).
    shutil.rmtree(run_dir / BACKUP, ignore_errors=True)
    for stale in run_dir.glob(".*.tmp*"):  # temporary files of writes a kill -9 cut short
        stale.unlink(missing_ok=True)


def check_resumable(path: str | Path) -> RunState:
    """The state of a run that `--resume` can continue; else ChatbotError says why not."""
    state = run_state(path)
    if state.state == FINISHED:
        raise ChatbotError(f"{path}: training already finished, there is nothing to resume; "
                           f"to train it further use --init-from {path} --out NEW_DIR")
    if state.state is None:
        raise ChatbotError(f"{path}: no interrupted run to resume (no {STATUS} or {BACKUP}/ "
                           f"saying it was training)")
    if not state.resumable:
        raise ChatbotError(f"{path}: the run was stopped before its settings were written "
                           f"(no {CONFIG} or {VOCAB}); start it again with --overwrite")
    return state


def unfinished_warning(path: str | Path) -> str | None:
    """For chat, reply and eval: a warning if the run's training has not finished, else None."""
    state = run_state(path)
    if state.state != TRAINING:
        return None
    planned = f" of {state.epochs_planned}" if state.epochs_planned else ""
    doing = "is training right now" if state.busy else "was interrupted"
    return (f"{state.path}: training {doing} after {state.epochs_done}{planned} epochs; "
            f"this is its best model so far. To finish it: {state.resume_hint()}")


def check_run_dir(path: str | Path) -> Path:
    """Returns the path if it holds a model to load; else says what is missing and what to do."""
    path = Path(path)
    if not path.is_dir():
        hint = "run 'make train'" if path.name == "default" else (
            f"train one with 'chatbot train --data FILE --out {path}'")
        raise ChatbotError(f"{path}: no such model directory; {hint}")
    missing = [name for name in (CONFIG, VOCAB, MODEL) if not (path / name).is_file()]
    state = run_state(path)
    if missing and state.state == TRAINING and state.resumable:
        raise ChatbotError(
            f"{path}: training was interrupted before its first epoch finished (missing "
            f"{', '.join(missing)}); continue it with {state.resume_hint()}"
        )
    if missing:
        raise ChatbotError(
            f"{path}: incomplete run directory, missing {', '.join(missing)}; training may not "
            f"have finished its first epoch. Train again with 'chatbot train --out {path}'"
        )
    return path


# --- the backup of the last finished epoch -------------------------------------------------------


@dataclass(frozen=True)
class Backup:
    epoch: int  # epochs finished
    weights: Path  # the model's weights and optimizer state after that epoch
    states: dict[str, dict]  # each stateful callback's state after that epoch, by name


def write_backup(run_dir: str | Path, epoch: int, save_weights: Callable[[Path], None],
                 states: dict[str, dict]) -> None:
    """Backs up finished epoch `epoch` (1-based): weights to a file of their own, then the
    pointer to it (atomically: this is the moment the epoch counts as done), then the older
    weights file is removed. The pointer always names a complete file."""
    directory = Path(run_dir) / BACKUP
    directory.mkdir(parents=True, exist_ok=True)
    name = f"epoch-{epoch}.weights.h5"
    save_weights(directory / name)
    write_json(directory / _POINTER, {"epoch": epoch, "weights": name, "states": states})
    for old in directory.glob("epoch-*.weights.h5"):
        if old.name != name:
            old.unlink()


def read_backup(run_dir: str | Path) -> Backup | None:
    """The last finished epoch's backup; None if no epoch had finished."""
    backup = _read_pointer(Path(run_dir))
    if backup is not None and not backup.weights.is_file():
        raise ChatbotError(f"{backup.weights}: missing, though {BACKUP}/{_POINTER} names it; the "
                           f"backup is damaged: start over with --overwrite")
    return backup


def _read_pointer(run_dir: Path) -> Backup | None:
    pointer = run_dir / BACKUP / _POINTER
    if not pointer.is_file():
        return None  # killed before the first epoch finished
    raw = read_json(pointer)
    try:
        return Backup(int(raw["epoch"]), run_dir / BACKUP / str(raw["weights"]),
                      dict(raw.get("states", {})))
    except (KeyError, TypeError, ValueError):
        raise ChatbotError(f"{pointer}: not a backup pointer ({raw!r}); start over with "
                           "--overwrite") from None


# --- one trainer at a time -----------------------------------------------------------------------


@contextlib.contextmanager
def training_lock(run_dir: str | Path) -> Iterator[None]:
    """Held while this process trains `run_dir`; ChatbotError if another process holds it."""
    directory = Path(run_dir) / BACKUP
    directory.mkdir(parents=True, exist_ok=True)
    if fcntl is None:
        yield
        return
    with open(directory / _LOCK, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ChatbotError(f"{run_dir}: another process is training it right now; wait "
                               "for it to finish, or stop it first") from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def is_training_now(run_dir: str | Path) -> bool:
    """Whether another process holds `run_dir`'s training lock."""
    lock = Path(run_dir) / BACKUP / _LOCK
    if fcntl is None or not lock.is_file():
        return False
    with open(lock, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
        return False
