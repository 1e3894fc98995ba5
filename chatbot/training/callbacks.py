"""The callbacks of a training run, called after every epoch in this order:

    EpochReport       throughput
    (the caller's)    what `train(callbacks=...)` adds: chatbot train prints a few replies
    HistoryCSV        the epoch's row in history.csv
    EarlyStopping     stops once the monitored quantity has not improved for `patience` epochs
    AtomicCheckpoint  notes whether the epoch improved on the best so far
    EpochBackup       backs the epoch up (weights, optimizer state, the callbacks' state): from
                      that moment the epoch counts as finished; then the checkpoint writes
                      model.keras if the epoch was the best

So a kill at any moment leaves a model.keras of an epoch that history.csv lists, and a resumed
run starts from exactly the state the killed one had at its last finished epoch. Early stopping
and the checkpoint judge "better" by one rule, `Monitor.better`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import keras
import numpy as np

from chatbot import rundir
from chatbot.config import MEASURED, MONITORS, higher_is_better

Log = Callable[[str], None]


class Monitor:
    """A quantity of the epoch logs, and what counts as an improvement of it: losses improve by
    falling, accuracies and rates by rising; NaN or a missing value never improves.

    An answer rate (MEASURED) moves in steps, and stays at 0 for the first epochs: an epoch
    that equals the best rate improves on it if its training loss (`then`) is lower, so that a
    run neither stops nor keeps its first epoch while the model is still learning."""

    def __init__(self, name: str):
        if name not in MONITORS:
            raise ValueError(f"monitor must be one of {', '.join(MONITORS)}; received {name!r}")
        self.name = name
        self.mode = "max" if higher_is_better(name) else "min"
        self.then = Monitor("loss") if name in MEASURED else None

    def improves(self, logs: dict[str, Any] | None, best: float | None,
                 best_then: float | None) -> bool:
        """Whether the epoch of `logs` improves on the best so far: its value (`best`), and
        for ties the value of `then` at that epoch (`best_then`)."""
        value = self.value(logs)
        if self.better(value, best):
            return True
        if self.then is None or value is None or value != best:
            return False
        return self.then.better(self.then.value(logs), best_then)

    def better(self, value: float | None, best: float | None) -> bool:
        """Whether `value` improves on `best` (None: nothing yet, so any real value does)."""
        if value is None or math.isnan(value):
            return False
        if best is None:
            return True
        return value > best if self.mode == "max" else value < best

    def value(self, logs: dict[str, Any] | None) -> float | None:
        value = (logs or {}).get(self.name)
        return None if value is None else float(value)

    def __repr__(self) -> str:
        return f"Monitor({self.name!r})"


class Stateful(Protocol):
    """A callback whose state EpochBackup saves with each epoch and restores on resume."""

    name: str

    def state(self) -> dict[str, Any]: ...

    def restore(self, state: dict[str, Any]) -> None: ...


def _then(monitor: Monitor, logs: dict[str, Any] | None) -> float | None:
    return monitor.then.value(logs) if monitor.then is not None else None


def _monitor(monitor: Monitor | str) -> Monitor:
    return monitor if isinstance(monitor, Monitor) else Monitor(monitor)


class EarlyStopping(keras.callbacks.Callback):
    """Stops training once `monitor` has not improved for `patience` epochs in a row, or once
    it reaches `target` (a quantity that rises; None: no target). `reached` says which.

    keras.callbacks.EarlyStopping does the same, but resets its counters in on_train_begin, so
    a resumed run would wait `patience` epochs anew. It also keeps no best weights here: the
    best model is model.keras (AtomicCheckpoint), which is what everything loads.
    """

    name = "early_stopping"

    def __init__(self, monitor: Monitor | str, patience: int, target: float | None = None):
        super().__init__()
        if not isinstance(patience, int) or isinstance(patience, bool) or patience < 0:
            raise ValueError(f"patience must be a whole number of epochs >= 0; received "
                             f"{patience!r}")
        self.monitor, self.patience = _monitor(monitor), patience
        if target is not None and self.monitor.mode != "max":
            raise ValueError(f"a target needs a quantity that rises; {self.monitor.name} falls")
        self.target = target
        self.best: float | None = None
        self.best_then: float | None = None  # the tie-breaking quantity at the best epoch
        self.best_epoch = 0  # 1-based; 0 before any improvement
        self.wait = 0  # epochs since the last improvement
        self.stopped_epoch = 0  # 1-based epoch after which it stopped training; 0 if it did not
        self.reached = False  # it stopped because the target was reached

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        if self.monitor.improves(logs, self.best, self.best_then):
            value = self.best = self.monitor.value(logs)
            self.best_then = _then(self.monitor, logs)
            self.best_epoch, self.wait = epoch + 1, 0
            if self.target is not None and value is not None and value >= self.target:
                self.reached = True
                self._stop(epoch)
            return
        self.wait += 1
        if self.wait >= self.patience:
            self._stop(epoch)

    def _stop(self, epoch: int) -> None:
        self.stopped_epoch = epoch + 1
        self.model.stop_training = True

    def state(self) -> dict[str, Any]:
        return {"best": self.best, "best_then": self.best_then, "best_epoch": self.best_epoch,
                "wait": self.wait, "stopped_epoch": self.stopped_epoch, "reached": self.reached}

    def restore(self, state: dict[str, Any]) -> None:
        self.best, self.best_epoch = state["best"], int(state["best_epoch"])
        self.wait, self.stopped_epoch = int(state["wait"]), int(state["stopped_epoch"])
        # (backups of older code have neither)
        self.best_then, self.reached = state.get("best_then"), bool(state.get("reached", False))


class TimeBudget(keras.callbacks.Callback):
    """Stops training after the first epoch that ends `minutes` after this process began
    training: a run given the same budget on the same machine gets the same wall-clock time,
    whatever its architecture. A resumed run gets the budget anew."""

    name = "time_budget"

    def __init__(self, minutes: float):
        super().__init__()
        if not isinstance(minutes, (int, float)) or isinstance(minutes, bool) or minutes <= 0:
            raise ValueError(f"minutes must be a number above 0; received {minutes!r}")
        self.seconds = 60.0 * minutes
        self.started = 0.0
        self.stopped_epoch = 0  # 1-based epoch after which it stopped training; 0 if it did not

    def on_train_begin(self, logs=None) -> None:
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        if time.perf_counter() - self.started >= self.seconds:
            self.stopped_epoch = epoch + 1
            self.model.stop_training = True


class AtomicCheckpoint(keras.callbacks.Callback):
    """model.keras holds the model of the best epoch so far, never half a file.

    on_epoch_end only notes an improvement; `commit()` writes the model (to a temporary file,
    renamed into place). EpochBackup calls it once the epoch is backed up, so model.keras is
    never from an epoch that a resumed run would train again. With `deferred=False` it writes
    at once, in on_epoch_end.
    """

    name = "checkpoint"

    def __init__(self, path: str | Path, monitor: Monitor | str, deferred: bool = True):
        super().__init__()
        self.path = Path(path)
        if self.path.suffix != ".keras":
            raise ValueError(f"the checkpoint path must end in .keras (the format Keras saves "
                             f"whole models in); received {str(path)!r}")
        self.monitor, self.deferred = _monitor(monitor), deferred
        self.best: float | None = None
        self.best_then: float | None = None  # the tie-breaking quantity at the best epoch
        self.best_epoch = 0  # 1-based epoch whose weights are in model.keras; 0: none yet
        self.pending = False  # the last epoch improved and model.keras is not written yet

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        if self.monitor.improves(logs, self.best, self.best_then):
            self.best, self.best_then = self.monitor.value(logs), _then(self.monitor, logs)
            self.best_epoch, self.pending = epoch + 1, True
            if not self.deferred:
                self.commit()

    def commit(self) -> None:
        """Writes model.keras if the last epoch improved on the best so far."""
        if self.pending:
            self.write(self.model)
            self.pending = False

    def write(self, model: keras.Model) -> None:
        rundir.atomic_write(self.path, model.save)

    def state(self) -> dict[str, Any]:
        return {"best": self.best, "best_then": self.best_then, "best_epoch": self.best_epoch}

    def restore(self, state: dict[str, Any]) -> None:
        self.best, self.best_epoch = state["best"], int(state["best_epoch"])
        self.best_then = state.get("best_then")  # backups of older code lack it


class HistoryCSV(keras.callbacks.Callback):
    """history.csv as keras.callbacks.CSVLogger writes it (epoch, then the logs), but rewritten
    whole after every epoch through rundir, so a kill never leaves half a row.

    `keep` is the number of finished epochs whose rows stay (those of a resumed run's earlier
    epochs); rows after them, of an epoch killed before its backup, are dropped when training
    begins.
    """

    def __init__(self, run_dir: str | Path, keep: int = 0):
        super().__init__()
        if not isinstance(keep, int) or keep < 0:
            raise ValueError(f"keep must be a number of epochs >= 0; received {keep!r}")
        self.run_dir = Path(run_dir)
        self.rows = rundir.read_history(self.run_dir).to_dict("records")[:keep] if keep else []

    def on_train_begin(self, logs=None) -> None:
        rundir.write_history(self.run_dir, self.rows)

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        self.rows.append({"epoch": epoch, **{k: float(v) for k, v in (logs or {}).items()}})
        rundir.write_history(self.run_dir, self.rows)


class EpochBackup(keras.callbacks.Callback):
    """The last finished epoch in `.backup/`: weights with optimizer state, the epoch number,
    the random generators of the dropout layers, and the state of the `stateful` callbacks
    (early stopping's counters, the checkpoint's best); then each of `then` is called (the
    checkpoint's commit).

    Like keras.callbacks.BackupAndRestore, but a kill while writing cannot spoil it (see
    rundir.write_backup), and it restores the callbacks too, so that a resumed run continues
    exactly where the killed one was.
    """

    def __init__(self, run_dir: str | Path, stateful: Sequence[Stateful] = (),
                 then: Sequence[Callable[[], None]] = ()):
        super().__init__()
        names = [s.name for s in stateful]
        if len(set(names)) != len(names) or RANDOM in names:
            raise ValueError(f"stateful callbacks need distinct names other than {RANDOM!r}; "
                             f"received {names}")
        self.run_dir, self.stateful, self.then = Path(run_dir), list(stateful), list(then)

    def restore(self, model: keras.Model) -> int:
        """Loads the last finished epoch into `model` and the stateful callbacks; returns how
        many epochs are finished (0 if none)."""
        backup = rundir.read_backup(self.run_dir)
        if backup is None:
            return 0
        model.optimizer.build(model.trainable_variables)  # so its state can be loaded too
        model.load_weights(backup.weights)
        saved = backup.states.get(RANDOM, [])
        states = _random_states(model)
        if len(saved) == len(states):  # else a backup of older code: new masks from here
            for variable, value in zip(states, saved):
                variable.assign(np.asarray(value, variable.dtype))
        for callback in self.stateful:
            if callback.name in backup.states:
                callback.restore(backup.states[callback.name])
        return backup.epoch

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        states = {s.name: s.state() for s in self.stateful}
        states[RANDOM] = [np.asarray(v).tolist() for v in _random_states(self.model)]
        rundir.write_backup(self.run_dir, epoch + 1, self.model.save_weights, states)
        for step in self.then:
            step()


RANDOM = "random"  # the backup's entry for the dropout layers' random generators


def _random_states(model: keras.Model) -> list:
    """The states of the model's random generators (of its dropout and LSTM layers), so that a
    resumed run draws the dropout masks the uninterrupted run drew. Keras keeps them among
    `model.variables` but not among the `model.weights` that save_weights writes. In layer
    order: their names carry a process-wide counter, so they cannot be matched by name."""
    weights = {id(v) for v in model.weights}
    return [v for v in model.variables if id(v) not in weights]


class EpochReport(keras.callbacks.Callback):
    """After each epoch: its throughput, in examples (`unit`) and scored tokens per second."""

    def __init__(self, tokens_per_epoch: int, pairs_per_epoch: int, log: Log,
                 unit: str = "pairs"):
        super().__init__()
        if tokens_per_epoch < 1 or pairs_per_epoch < 1:
            raise ValueError(f"an epoch needs pairs and scored tokens; received "
                             f"{pairs_per_epoch} pairs and {tokens_per_epoch} tokens")
        self.tokens, self.pairs, self.log, self.unit = tokens_per_epoch, pairs_per_epoch, log, unit

    def on_epoch_begin(self, epoch: int, logs=None) -> None:
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        seconds = time.perf_counter() - self.started
        self.log(f"  {self.pairs / seconds:,.0f} {self.unit}/s, {self.tokens / seconds:,.0f} "
                 "scored tokens/s (validation included)")
