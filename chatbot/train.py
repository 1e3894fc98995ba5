"""Fit a model on a TSV of pairs and write a self-describing run directory.

The run directory gets `config.json` and `vocab.json` first, then `model.keras` each time the
monitored quantity improves (written to a temporary file and renamed, so a crash never leaves a
half-written model), `history.csv` after every epoch, and `metrics.json` at the end.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from chatbot.batches import Batches, encode_pairs
from chatbot.bot import Bot
from chatbot.config import RunConfig, atomic_write_text
from chatbot.data import read_pairs, split_pairs
from chatbot.errors import ChatbotError
from chatbot.evaluate import answer_rate
from chatbot.models import arch_module
from chatbot.models.common import compile_model
from chatbot.rundir import CONFIG, HISTORY, METRICS, MODEL, VOCAB
from chatbot.text import Tokenizer
from chatbot.vocab import Vocabulary
from chatbot.weights import model_weights

Log = Callable[[str], None]


@dataclass
class TrainResult:
    run_dir: Path
    epochs: int  # epochs run
    best_epoch: int  # 1-based epoch whose weights are in model.keras
    seconds: float
    metrics: dict


def train(
    data_path: str | Path, out_dir: str | Path, config: RunConfig, overwrite: bool = False,
    log: Log = print, verbose: int | str = "auto",
) -> TrainResult:
    started = time.perf_counter()
    out = Path(out_dir)
    report = read_pairs(data_path, config.data.on_bad_lines)
    if report.bad_lines:
        log(f"skipped {len(report.bad_lines)} bad lines of {data_path} "
            f"(first: line {report.bad_lines[0][0]}: {report.bad_lines[0][1]})")
    train_pairs, val_pairs = split_pairs(report.pairs, config.data.val_fraction, config.train.seed)

    tokenizer = Tokenizer(lowercase=config.text.lowercase)
    vocab = Vocabulary.build(
        (tokenizer.tokenize(text) for p in train_pairs for text in (p.prompt, p.reply)),
        min_count=config.data.min_count, max_size=config.data.max_vocab,
    )
    config.model.vocab_size = len(vocab)
    monitor = _monitor(config, has_val=bool(val_pairs), log=log)

    arch = arch_module(config.model.arch)
    encode = lambda pairs: encode_pairs(  # noqa: E731
        pairs, tokenizer, vocab, config.data.max_len, arch.encode_example)
    train_examples, truncated = encode(train_pairs)
    val_examples, _ = encode(val_pairs)
    log(f"{len(train_pairs)} training pairs, {len(val_pairs)} validation pairs, "
        f"vocabulary {len(vocab)} tokens, {truncated} sides truncated to {config.data.max_len}")

    _prepare_run_dir(out, overwrite)
    config.save(out / CONFIG)
    vocab.save(out / VOCAB)

    keras.utils.set_random_seed(config.train.seed)
    model = arch.build(config.model)
    compile_model(model, config.train)
    batches = dict(batch_size=config.train.batch_size,
                   bucket_by_length=config.train.bucket_by_length, seed=config.train.seed)
    train_data = Batches(train_examples, **batches)
    val_data = Batches(val_examples, shuffle=False, **batches).dataset() if val_examples else None

    mode = "max" if "accuracy" in monitor else "min"
    checkpoint = AtomicCheckpoint(out / MODEL, monitor=monitor, mode=mode)
    probes = list(dict.fromkeys(p.prompt for p in train_pairs))[: config.train.probes]
    callbacks = [
        checkpoint,
        keras.callbacks.CSVLogger(str(out / HISTORY)),
        keras.callbacks.EarlyStopping(monitor=monitor, mode=mode, patience=config.train.patience,
                                      restore_best_weights=True),
        EpochReport(config, vocab, probes, train_data.scored_tokens, len(train_examples), log),
    ]
    if verbose == "auto":
        verbose = 1 if sys.stdout.isatty() else 2
    history = model.fit(train_data.dataset(), validation_data=val_data, epochs=config.train.epochs,
                        callbacks=callbacks, verbose=verbose, shuffle=False)

    bot = Bot.load(out)  # exactly what `chatbot chat` will load
    metrics = {"train": answer_rate(bot, train_pairs), "best_epoch": checkpoint.best_epoch,
               "monitor": monitor, "best_value": checkpoint.best}
    if val_pairs:
        metrics["validation"] = answer_rate(bot, val_pairs)
    seconds = time.perf_counter() - started
    metrics["train_seconds"] = round(seconds, 1)
    atomic_write_text(out / METRICS, json.dumps(metrics, indent=2, ensure_ascii=False) + "\n")
    log(f"best epoch {checkpoint.best_epoch} ({monitor} {checkpoint.best:.4f}); answers "
        f"{metrics['train']['answer_rate']:.1%} of {metrics['train']['prompts']} training prompts "
        f"with one of their replies; {seconds:.0f} s")
    return TrainResult(out, len(history.history.get("loss", [])), checkpoint.best_epoch, seconds,
                       metrics)


def _monitor(config: RunConfig, has_val: bool, log: Log) -> str:
    monitor = config.train.monitor
    allowed = ("loss", "masked_accuracy", "val_loss", "val_masked_accuracy")
    if monitor not in allowed:
        raise ChatbotError(f"unknown monitor {monitor!r}; choose one of: {', '.join(allowed)}")
    if monitor.startswith("val_") and not has_val:
        log(f"no validation pairs (val_fraction={config.data.val_fraction}): monitoring "
            f"{monitor[4:]} instead of {monitor}")
        monitor = monitor[4:]
    return monitor


def _prepare_run_dir(out: Path, overwrite: bool) -> None:
    if (out / MODEL).exists():
        if not overwrite:
            raise ChatbotError(
                f"{out}: already holds a trained model; pass --overwrite to replace it, "
                "or choose another --out directory"
            )
        # Remove the old model before the new vocabulary lands, so the directory never pairs a
        # new vocab.json with an old model.keras (which would reload into gibberish).
        for name in (MODEL, HISTORY, METRICS):
            (out / name).unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)


class AtomicCheckpoint(keras.callbacks.Callback):
    """Saves the model whenever `monitor` improves: to a temporary file, then renamed into place."""

    def __init__(self, path: Path, monitor: str, mode: str):
        super().__init__()
        self.path, self.monitor, self.mode = Path(path), monitor, mode
        self.best = np.inf if mode == "min" else -np.inf
        self.best_epoch = 0

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        value = (logs or {}).get(self.monitor)
        if value is None:
            return
        if (value < self.best) if self.mode == "min" else (value > self.best):
            self.best, self.best_epoch = float(value), epoch + 1
            tmp = self.path.with_name(f".{self.path.stem}.partial.keras")
            self.model.save(tmp)
            tmp.replace(self.path)


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
