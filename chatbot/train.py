"""Fit a model on a TSV of pairs and write a self-describing run directory.

The run directory gets `config.json` and `vocab.json` first, then `model.keras` each time the
monitored quantity improves (written to a temporary file and renamed, so a crash never leaves a
half-written model), `history.csv` after every epoch, and `metrics.json` at the end. While
training, `.backup/` holds the last finished epoch (weights, optimizer state, epoch number), so a
run killed at any moment continues with `resume=True` from where it was.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from chatbot.batches import Batches, encode_pairs
from chatbot.bot import Bot
from chatbot.config import RunConfig, atomic_write_text
from chatbot.data import Pair, read_pairs, split_pairs
from chatbot.distribute import is_chief, make_strategy
from chatbot.errors import ChatbotError
from chatbot.evaluate import evaluate
from chatbot.loop import Loop
from chatbot.models import arch_module
from chatbot.models.common import compile_model
from chatbot.rundir import BACKUP, CONFIG, HISTORY, METRICS, MODEL, VOCAB, check_run_dir
from chatbot.text import Tokenizer
from chatbot.vocab import Vocabulary
from chatbot.weights import model_weights, read_keras_weights

Log = Callable[[str], None]
MONITORS = ("loss", "masked_accuracy", "val_loss", "val_masked_accuracy")


@dataclass
class TrainResult:
    run_dir: Path
    epochs: int  # epochs finished, counting those before a resume
    best_epoch: int  # 1-based epoch whose weights are in model.keras
    seconds: float
    metrics: dict


def train(
    data_path: str | Path | None, out_dir: str | Path, config: RunConfig | None = None, *,
    overwrite: bool = False, resume: bool = False, init_from: str | Path | None = None,
    epochs: int | None = None, strategy: str | None = None, log: Log = print,
    verbose: int | str = "auto",
) -> TrainResult:
    """Trains a model and writes its run directory `out_dir`.

    resume: continue the interrupted run in `out_dir` (its config, vocabulary, optimizer state
        and history) from its last finished epoch; `data_path` defaults to the recorded one.
    init_from: fine-tune the model of another run directory on new data, keeping its
        vocabulary (words it has never seen stay <UNK>) and architecture.
    """
    started = time.perf_counter()
    out = Path(out_dir)
    if resume:
        config, vocab = _load_for_resume(out)
        data_path = data_path or config.data.path
    elif init_from is not None:
        config, vocab = _load_for_init(Path(init_from), config)
    elif config is None:
        raise ChatbotError("train() needs a config unless resuming")
    if epochs is not None:
        config.train.epochs = epochs
    if strategy is not None:  # a resumed run may continue on other devices
        config.train.strategy = strategy
    # First TensorFlow work of the run: a strategy must be made before devices initialize.
    distribution = make_strategy(config.train.strategy)
    if not data_path:
        raise ChatbotError("no training data: pass --data FILE")
    config.data.path = str(data_path)

    report = read_pairs(data_path, config.data.on_bad_lines)
    if report.bad_lines:
        log(f"skipped {len(report.bad_lines)} bad lines of {data_path} "
            f"(first: line {report.bad_lines[0][0]}: {report.bad_lines[0][1]})")
    train_pairs, val_pairs = split_pairs(report.pairs, config.data.val_fraction, config.train.seed)
    tokenizer = Tokenizer(lowercase=config.text.lowercase)
    if init_from is not None:
        log(f"{oov_rate(train_pairs, tokenizer, vocab):.1%} of the new data's tokens are not in "
            f"the vocabulary of {init_from} and will be read as <UNK>")
    elif not resume:
        vocab = Vocabulary.build(
            (tokenizer.tokenize(text) for p in train_pairs for text in (p.prompt, p.reply)),
            min_count=config.data.min_count, max_size=config.data.max_vocab,
        )
    config.model.vocab_size = len(vocab)
    monitor = _monitor(config, has_val=bool(val_pairs), log=log)

    arch = arch_module(config.model.arch)
    train_examples, truncated = encode_pairs(train_pairs, tokenizer, vocab, config.data.max_len,
                                             arch.encode_example)
    val_examples, _ = encode_pairs(val_pairs, tokenizer, vocab, config.data.max_len,
                                   arch.encode_example)
    log(f"{len(train_pairs)} training pairs, {len(val_pairs)} validation pairs, "
        f"vocabulary {len(vocab)} tokens, {truncated} sides truncated to {config.data.max_len}")

    # With several workers, the chief alone writes the run directory; the others keep in step.
    chief = is_chief(distribution)
    if not chief:
        log(f"worker {distribution.cluster_resolver.task_id}: training with the chief, which "
            f"writes {out}")
    if not resume and chief:
        _prepare_run_dir(out, overwrite)
        config.save(out / CONFIG)
        vocab.save(out / VOCAB)
        (out / BACKUP).mkdir()  # from now on the run counts as interrupted until it finishes

    keras.utils.set_random_seed(config.train.seed)
    with distribution.scope():  # variables on every device of the strategy
        model = arch.build(config.model)
        if init_from is not None:
            model.load_weights(Path(init_from) / MODEL)
        compile_model(model, config.train)
    options = dict(batch_size=config.train.batch_size,
                   bucket_by_length=config.train.bucket_by_length, seed=config.train.seed)
    train_data = Batches(train_examples, **options)
    val_data = Batches(val_examples, shuffle=False, **options) if val_examples else None
    devices = distribution.num_replicas_in_sync
    if devices > 1:
        log(f"training on {devices} devices ({config.train.strategy}); each takes batches of "
            f"{config.train.batch_size}")

    def endless(data: Batches):
        """`data` repeated without end: the loop keeps one iterator for the whole run."""
        if devices > 1:
            return data.distributed(distribution, repeat=True)
        return data.dataset(repeat=True)

    backup = EpochBackup(out / BACKUP)
    with distribution.scope():  # optimizer variables, if restored, live on every device
        done = backup.restore(model) if resume else 0
    if resume and chief:
        _trim_history(out / HISTORY, done)
        log(f"resuming {out} after epoch {done} of {config.train.epochs}")
    mode = "max" if "accuracy" in monitor else "min"
    checkpoint = AtomicCheckpoint(out / MODEL, monitor=monitor, mode=mode)
    if resume:
        checkpoint.restore_best(out / HISTORY)
    early_stop = keras.callbacks.EarlyStopping(monitor=monitor, mode=mode,
                                               patience=config.train.patience,
                                               restore_best_weights=True)
    probes = list(dict.fromkeys(p.prompt for p in train_pairs))[: config.train.probes]
    callbacks = [
        EpochReport(config, vocab, probes, train_data.scored_tokens, len(train_examples), log),
        checkpoint,  # before the history row: a row on disk means its checkpoint is too
        HistoryCSV(out / HISTORY),
        early_stop,
        backup,  # last: an epoch counts as finished once its row and checkpoint exist
    ] if chief else [early_stop]  # the same logs on every worker: all stop at the same epoch
    if verbose == "auto":
        verbose = 1 if sys.stdout.isatty() else 2
    history = Loop(model, distribution).fit(
        endless(train_data), epochs=config.train.epochs, initial_epoch=done,
        steps=train_data.steps(devices), validation=endless(val_data) if val_data else None,
        validation_steps=val_data.steps(devices) if val_data else None,
        callbacks=callbacks, verbose=verbose if chief else 0)
    if not chief:
        return TrainResult(out, done + len(history), 0, time.perf_counter() - started, {})
    shutil.rmtree(out / BACKUP, ignore_errors=True)
    if not (out / MODEL).exists():
        raise ChatbotError(f"{out}: no epoch improved {monitor}; nothing was saved")

    bot = Bot.load(out)  # exactly what `chatbot chat` will load
    metrics = {"best_epoch": checkpoint.best_epoch, "monitor": monitor,
               "best_value": checkpoint.best, "train": evaluate(bot, train_pairs, True)}
    if val_pairs:
        metrics["validation"] = evaluate(bot, val_pairs)
    seconds = time.perf_counter() - started
    metrics["train_seconds"] = round(seconds, 1)
    atomic_write_text(out / METRICS, json.dumps(metrics, indent=2, ensure_ascii=False) + "\n")
    answered = metrics["train"]["answer_rate"]
    log(f"best epoch {checkpoint.best_epoch} ({monitor} {checkpoint.best:.4f}); answers "
        f"{answered['answer_rate']:.1%} of {answered['prompts']} training prompts with one of "
        f"their replies; {seconds:.0f} s")
    epochs_done = len(pd.read_csv(out / HISTORY)) if (out / HISTORY).exists() else 0
    return TrainResult(out, epochs_done, checkpoint.best_epoch, seconds, metrics)


def oov_rate(pairs: list[Pair], tokenizer: Tokenizer, vocab: Vocabulary) -> float:
    """Share of the pairs' tokens (both sides) that the vocabulary does not have."""
    tokens = [t for p in pairs for text in (p.prompt, p.reply) for t in tokenizer.tokenize(text)]
    return sum(t not in vocab for t in tokens) / max(1, len(tokens))


def _load_for_resume(out: Path) -> tuple[RunConfig, Vocabulary]:
    if not (out / BACKUP).is_dir():
        if (out / MODEL).exists():
            raise ChatbotError(f"{out}: training already finished, there is nothing to resume; "
                               f"to train it further use --init-from {out} --out NEW_DIR")
        raise ChatbotError(f"{out}: no interrupted run to resume (no {BACKUP}/ directory)")
    return RunConfig.load(out / CONFIG), Vocabulary.load(out / VOCAB)


def _load_for_init(source: Path, overrides: RunConfig | None) -> tuple[RunConfig, Vocabulary]:
    check_run_dir(source)
    read_keras_weights(source / MODEL)  # refuses hostile or damaged files before Keras sees them
    config = RunConfig.load(source / CONFIG)
    if overrides is not None:  # training settings may change; the model's shape may not
        config.train = overrides.train
    return config, Vocabulary.load(source / VOCAB)


def _trim_history(path: Path, epochs: int) -> None:
    """Keeps the rows of finished epochs only (a kill may land after a row, before the backup)."""
    if path.exists():
        history = pd.read_csv(path)
        if len(history) > epochs:
            atomic_write_text(path, history.iloc[:epochs].to_csv(index=False))


def _monitor(config: RunConfig, has_val: bool, log: Log) -> str:
    monitor = config.train.monitor
    if monitor not in MONITORS:
        raise ChatbotError(f"unknown monitor {monitor!r}; choose one of: {', '.join(MONITORS)}")
    if monitor.startswith("val_") and not has_val:
        log(f"no validation pairs (val_fraction={config.data.val_fraction}): monitoring "
            f"{monitor[4:]} instead of {monitor}")
        monitor = monitor[4:]
    return monitor


def _prepare_run_dir(out: Path, overwrite: bool) -> None:
    if (out / MODEL).exists() or (out / BACKUP).exists():
        if not overwrite:
            what = "a trained model" if (out / MODEL).exists() else "an interrupted run"
            raise ChatbotError(
                f"{out}: already holds {what}; pass --resume to continue an interrupted run, "
                "--overwrite to replace it, or choose another --out directory"
            )
        # Remove the old model before the new vocabulary lands, so the directory never pairs a
        # new vocab.json with an old model.keras (which would reload into gibberish).
        for name in (MODEL, HISTORY, METRICS):
            (out / name).unlink(missing_ok=True)
        shutil.rmtree(out / BACKUP, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)


class AtomicCheckpoint(keras.callbacks.Callback):
    """Saves the model whenever `monitor` improves: to a temporary file, then renamed into place."""

    def __init__(self, path: Path, monitor: str, mode: str):
        super().__init__()
        self.path, self.monitor, self.mode = Path(path), monitor, mode
        self.best = np.inf if mode == "min" else -np.inf
        self.best_epoch = 0

    def better(self, value: float) -> bool:
        return value < self.best if self.mode == "min" else value > self.best

    def restore_best(self, history_csv: Path) -> None:
        """On resume: the best value so far, so a worse epoch never replaces the saved model."""
        if history_csv.exists():
            history = pd.read_csv(history_csv)
            if self.monitor in history and len(history):
                column = history[self.monitor]
                row = column.idxmin() if self.mode == "min" else column.idxmax()
                self.best, self.best_epoch = float(column[row]), int(history["epoch"][row]) + 1

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        value = (logs or {}).get(self.monitor)
        if value is not None and self.better(value):
            self.best, self.best_epoch = float(value), epoch + 1
            tmp = self.path.with_name(f".{self.path.stem}.partial.keras")
            self.model.save(tmp)
            tmp.replace(self.path)


class EpochBackup(keras.callbacks.Callback):
    """The last finished epoch: weights with optimizer state, and the epoch number.

    Like keras.callbacks.BackupAndRestore, but a kill or Ctrl-C while writing cannot spoil it:
    each epoch's weights go to a file of their own, then `epoch.json` (written atomically)
    points to it, then the older file is removed. The pointer always names a complete file.
    """

    def __init__(self, directory: Path):
        super().__init__()
        self.directory = Path(directory)
        self.pointer = self.directory / "epoch.json"

    def restore(self, model: keras.Model) -> int:
        """Loads the last finished epoch into `model`; returns how many epochs are done."""
        try:
            saved = json.loads(self.pointer.read_text())
            epoch, weights = int(saved["epoch"]), self.directory / saved["weights"]
        except (OSError, ValueError, KeyError, TypeError):
            return 0  # killed before the first epoch finished: start from the beginning
        model.optimizer.build(model.trainable_variables)  # so its state can be loaded too
        model.load_weights(weights)
        return epoch

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        name = f"epoch-{epoch + 1}.weights.h5"
        self.model.save_weights(self.directory / name)
        atomic_write_text(self.pointer, json.dumps({"epoch": epoch + 1, "weights": name}))
        for old in self.directory.glob("epoch-*.weights.h5"):
            if old.name != name:
                old.unlink()


class HistoryCSV(keras.callbacks.Callback):
    """history.csv as keras.callbacks.CSVLogger writes it (epoch, then the logs), but rewritten
    whole through a temporary file after every epoch, so a kill never leaves half a row."""

    def __init__(self, path: Path):
        super().__init__()
        self.path = Path(path)
        # On resume the finished epochs are already there (trimmed to the backup's epoch).
        self.rows = pd.read_csv(self.path).to_dict("records") if self.path.exists() else []

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        self.rows.append({"epoch": epoch, **{k: float(v) for k, v in (logs or {}).items()}})
        atomic_write_text(self.path, pd.DataFrame(self.rows).to_csv(index=False))


class EpochReport(keras.callbacks.Callback):
    """After each epoch: throughput, and the replies to a few training prompts."""

    def __init__(self, config: RunConfig, vocab: Vocabulary, probes: list[str],
                 tokens_per_epoch: int, pairs_per_epoch: int, log: Log):
        super().__init__()
        self.config, self.vocab, self.probes, self.log = config, vocab, probes, log
        self.tokens, self.pairs = tokens_per_epoch, pairs_per_epoch

    def on_epoch_begin(self, epoch: int, logs=None) -> None:
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        seconds = time.perf_counter() - self.started
        self.log(f"  {self.pairs / seconds:,.0f} pairs/s, {self.tokens / seconds:,.0f} "
                 "scored tokens/s (validation included)")
        if self.probes:
            bot = Bot(self.config, self.vocab, model_weights(self.model))
            for prompt, reply in zip(self.probes, bot.reply_batch(self.probes)):
                self.log(f"  {prompt!r} -> {reply.text!r}")
