"""TensorBoard logs of a training run: `tensorboard --logdir RUN/runs` (or `make tensorboard`, for
every run in models/) shows it learn.

    runs/             the run's settings (config.json) as HParams, so that runs compare side
                      by side
    runs/train/       per epoch (epoch_...): loss, masked accuracy and the answer rates of the
                      logs, the learning rate, scored tokens per second (training steps only)
                      and the mean gradient norm; every `every` steps (batch_..., at the
                      optimizer's step) the same figures of the steps since the last point;
                      the tables a callback adds (`table`: chatbot train's probe replies); the
                      embedding projector: the embedding matrix, the vocabulary as metadata
    runs/validation/  per epoch: validation loss and masked accuracy, named like the training
                      ones (epoch_loss), so that TensorBoard draws each pair in one chart

Where: train.tensorboard (chatbot.config), a folder inside the run directory or an absolute
path; "off" writes nothing.

A resumed run appends to the same logs without showing a step twice. The killed run wrote the
steps of the epoch it was in, and maybe that epoch's figures, and the resumed run trains that
epoch again; rather than rely on each reader to drop them (a SessionLog.START marker), the
files themselves are cut when training begins: the event files keep only what finished epochs
wrote (`purge`), and the settings are written anew. (So a new run, which has no finished
epoch, starts its logs afresh: give each run a folder of its own.)
"""

from __future__ import annotations

import copy
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import keras
import tensorflow as tf
from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
from tensorboard.compat.proto.event_pb2 import Event
from tensorboard.plugins import projector
from tensorboard.plugins.hparams import api as hp
from tensorboard.summary.writer.record_writer import RecordWriter

from chatbot import rundir
from chatbot.config import TENSORBOARD_OFF, RunConfig
from chatbot.errors import ChatbotError
from chatbot.text.vocab import Vocabulary
from chatbot.training.loop import Loop, Totals

TRAIN, VALIDATION = "train", "validation"  # the runs TensorBoard lists under the log folder
STEP = "batch_"  # figures of the last steps, at the optimizer's step; "epoch_": at the epoch
METADATA = "metadata.tsv"  # the projector's labels: one token per row of the embedding
EMBEDDING = "embedding"  # the checkpoint's name for the embedding matrix
EVENTS = "tfevents"  # TensorBoard reads every file whose name has it, so temporaries must not
PURGING = ".purging-"  # the temporary file of `purge`


# Adds a table of text (rows of cells) under a tag to the epoch's logs (chatbot.training.train's
# Run.table: chatbot train's probe replies).
Table = Callable[[str, Sequence[Sequence[str]]], None]


def no_table(tag: str, rows: Sequence[Sequence[str]]) -> None:
    """Where tables go when a run writes no TensorBoard logs."""


def logs_of(out: Path, config: RunConfig, vocab: Vocabulary) -> TensorBoardLogs | None:
    """The TensorBoard logs of the run in `out` (None when train.tensorboard is off)."""
    where = log_dir(out, config)
    return None if where is None else TensorBoardLogs(where, config, vocab,
                                                      config.train.tensorboard_steps)


def log_dir(out: Path, config: RunConfig) -> Path | None:
    """Where the run's logs go (None: nowhere): train.tensorboard, inside the run directory
    `out` unless absolute."""
    where = config.train.tensorboard
    if where == TENSORBOARD_OFF:
        return None
    if not where.strip():
        raise ChatbotError(f"train.tensorboard is {where!r}; expected a folder (inside the run "
                           f"directory, or absolute) or {TENSORBOARD_OFF!r} for no logs")
    return Path(out) / where


def hparams(config: RunConfig) -> dict[str, bool | int | float | str]:
    """config.json flattened for the HParams dashboard: `section.setting` -> value (a list
    becomes its items joined by commas; unset values are left out)."""
    flat = {}
    for section, values in config.to_dict().items():
        if not isinstance(values, dict):
            continue  # format_version
        for name, value in values.items():
            if isinstance(value, list):
                value = ", ".join(map(str, value))
            if value is not None:
                flat[f"{section}.{name}"] = value
    return flat


class TensorBoardLogs(keras.callbacks.Callback):
    """Writes the logs of the module doc into `directory`. Before training, `follow` hands it
    the loop whose running sums it reads; a callback made before that may call `table` during
    an epoch. Runs after the callbacks whose logs it writes (the answer rates), and before the
    epoch's backup, so that a kill never loses a finished epoch's figures."""

    def __init__(self, directory: str | Path, config: RunConfig, vocab: Vocabulary,
                 every: int = 0):
        super().__init__()
        if not isinstance(every, int) or isinstance(every, bool) or every < 0:
            raise ValueError(f"every must be a whole number of steps >= 0 (0: per epoch only); "
                             f"received {every!r}")
        self.directory, self.every = Path(directory), every
        self.hparams, self.tokens = hparams(config), vocab.tokens
        self.loop: Loop | None = None
        self.done = 0  # epochs finished before this process trains
        self.writers: dict[str, Any] = {}
        self.epoch = self.step = 0

    def follow(self, loop: Loop, done: int) -> None:
        """Reads the step figures from `loop`, which trains on after `done` finished epochs."""
        if not loop.gradient_norm:
            raise ValueError("the TensorBoard logs need a Loop(..., gradient_norm=True)")
        self.loop, self.done = loop, done

    # --- the run's start: what finished epochs wrote stays, the rest goes -------------------

    def on_train_begin(self, logs=None) -> None:
        if self.loop is None:
            raise ValueError("call follow(loop, done) before training")
        steps = int(self.model.optimizer.iterations.numpy())  # the finished epochs' steps
        for name in (TRAIN, VALIDATION):
            purge(self.directory / name, lambda event: finished(event, self.done, steps))
        purge(self.directory, lambda event: False)  # the settings, written anew
        self.step, self.writers = steps, {}
        settings = tf.summary.create_file_writer(str(self.directory))
        with settings.as_default():
            hp.hparams(self.hparams)
        settings.close()
        self._projector_config()

    def _projector_config(self) -> None:
        """The projector's labels and config, beside the embedding checkpoints in train/."""
        where = self.directory / TRAIN
        where.mkdir(parents=True, exist_ok=True)
        escaped = (t.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")
                   .replace("\r", "\\r") for t in self.tokens)
        rundir.atomic_write_text(where / METADATA, "".join(f"{t}\n" for t in escaped))
        config = projector.ProjectorConfig()
        embedding = config.embeddings.add()
        # The name tf.train.Checkpoint gives the variable it saves as `embedding`.
        embedding.tensor_name = f"{EMBEDDING}/.ATTRIBUTES/VARIABLE_VALUE"
        embedding.metadata_path = METADATA
        projector.visualize_embeddings(str(where), config)
        matrix = self._embeddings()  # (vocab, embedding_dim)
        self.embedding = tf.Variable(tf.zeros(matrix.shape, matrix.dtype), trainable=False)
        self.checkpoints = tf.train.CheckpointManager(
            tf.train.Checkpoint(embedding=self.embedding), str(where), max_to_keep=1,
            checkpoint_name=EMBEDDING)

    # --- during training ----------------------------------------------------------------------

    def on_epoch_begin(self, epoch: int, logs=None) -> None:
        self.epoch = epoch
        self.ended = self.started = time.perf_counter()
        self.epoch_mark = self.mark = (Totals(), self.started)

    def on_train_batch_end(self, batch: int, logs=None) -> None:
        self.step += 1
        self.ended = time.perf_counter()
        if self.every and self.step % self.every == 0:
            self._scalars(TRAIN, STEP, self._since(self.mark), self.step)
            self.mark = (copy.copy(self.loop.totals), self.ended)

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        logs = {k: float(v) for k, v in (logs or {}).items()}
        train = {k: v for k, v in logs.items() if not k.startswith("val_")}
        self._scalars(TRAIN, "epoch_", {**self._since(self.epoch_mark), **train}, epoch)
        self._scalars(VALIDATION, "epoch_", {k.removeprefix("val_"): v for k, v in logs.items()
                                             if k.startswith("val_")}, epoch)
        self._embedding(epoch)
        for writer in self.writers.values():
            writer.flush()

    def on_train_end(self, logs=None) -> None:
        for writer in self.writers.values():
            writer.close()

    def table(self, tag: str, rows: Sequence[Sequence[str]]) -> None:
        """Adds a table of text (rows of cells) to this epoch's logs, under `tag`."""
        with self._writer(TRAIN).as_default():
            tf.summary.text(tag, tf.constant([list(row) for row in rows]), step=self.epoch)

    def _writer(self, run: str):
        """The writer of `run` (train, validation): made when first needed, so that a run
        without validation pairs has no validation run."""
        if run not in self.writers:
            self.writers[run] = tf.summary.create_file_writer(str(self.directory / run))
        return self.writers[run]

    def _since(self, mark: tuple[Totals, float]) -> dict[str, float]:
        """The figures of the steps since `mark` (the loop's sums then, and the time)."""
        then, started = mark
        now = self.loop.totals
        tokens, steps = now.count - then.count, now.steps - then.steps
        return {"loss": (now.loss - then.loss) / max(tokens, 1.0),
                "masked_accuracy": (now.hits - then.hits) / max(tokens, 1.0),
                "gradient_norm": (now.norm - then.norm) / max(steps, 1),
                "scored_tokens_per_second": tokens / max(self.ended - started, 1e-9),
                # (.numpy(): on several devices the variable is a MirroredVariable)
                "learning_rate": float(keras.ops.convert_to_numpy(
                    self.model.optimizer.learning_rate))}

    def _scalars(self, run: str, prefix: str, figures: dict[str, float], step: int) -> None:
        if figures:
            with self._writer(run).as_default():
                for name, value in figures.items():
                    tf.summary.scalar(prefix + name, value, step=step)

    def _embeddings(self):
        """The input tokens' embedding table: the one keras Embedding layer of every
        architecture (shared by encoder and decoder where there are two)."""
        (layer,) = [x for x in self.model.layers if isinstance(x, keras.layers.Embedding)]
        return layer.embeddings

    def _embedding(self, epoch: int) -> None:
        """The embedding matrix after `epoch`, where the projector reads it."""
        self.embedding.assign(self._embeddings())
        self.checkpoints.save(checkpoint_number=epoch + 1)


# --- cutting the event files ---------------------------------------------------------------------


def finished(event: Event, epochs: int, steps: int) -> bool:
    """Whether `event` was written by the first `epochs` epochs, of `steps` steps in all."""
    tags = [value.tag for value in event.summary.value]
    if tags and all(tag.startswith(STEP) for tag in tags):
        return event.step <= steps  # after the step (1-based, as the optimizer counts)
    return event.step < epochs  # at the epoch (0-based, as history.csv counts)


def purge(directory: Path, keep: Callable[[Event], bool]) -> None:
    """Leaves in `directory` one event file of the summaries that `keep` keeps, each once, in
    the order written (none if none is kept).

    The kept ones are written to a temporary file, renamed onto the first event file, then the
    other files are removed: a kill in between leaves copies that the next purge drops."""
    for stale in directory.glob(f"{PURGING}*"):  # of a purge that a kill cut short
        stale.unlink()
    files = sorted(p for p in directory.glob(f"*{EVENTS}*") if p.is_file())
    if not files:
        return
    kept, seen, dropped = [], set(), 0
    for path in files:
        for event in EventFileLoader(str(path)).Load():
            if not event.HasField("summary"):
                continue  # the file's version: the new file has its own
            key = (event.step, tuple(value.tag for value in event.summary.value))
            if key in seen or not keep(event):
                dropped += 1
                continue
            seen.add(key)
            kept.append(event)
    if len(files) == 1 and not dropped:
        return
    if kept:
        _write_events(files[0], kept)
    else:
        files[0].unlink()
    for path in files[1:]:
        path.unlink()


def _write_events(path: Path, events: list[Event]) -> None:
    """`events` as an event file at `path`, through a temporary name TensorBoard ignores."""
    temporary = path.with_name(f"{PURGING}{os.getpid()}")
    with open(temporary, "wb") as handle:
        writer = RecordWriter(handle)
        writer.write(Event(wall_time=events[0].wall_time,
                           file_version="brain.Event:2").SerializeToString())
        for event in events:
            writer.write(event.SerializeToString())
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
