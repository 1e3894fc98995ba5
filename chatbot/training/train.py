"""Fit a model on a TSV of pairs and write a self-describing run directory.

Three ways to start, one way to train:

    fresh      a new run: settings from `config`, a tokenizer (sentencepiece learns its pieces)
               and a vocabulary made from the training pairs
    resume     an interrupted run continues from its last finished epoch, exactly as if it had
               not stopped (same batches, optimizer state, early-stopping counters, best model)
    init_from  fine-tune another run's model on new data: its tokenizer, its vocabulary and the
               shape of its model are kept, everything else comes from `config`

The run directory (chatbot.rundir) says "training" from the start and "finished" once the
model, history and metrics are all written; in between, `.backup/` holds the last finished
epoch, so a run killed at any moment loses at most the epoch it was in.

Training knows nothing of replies. What a caller wants to watch or measure comes in through
`callbacks`: functions of the `Run` that return a Keras callback (`chatbot train` passes
chatbot.decoding.probes.ProbeReplies, which prints a few replies after every epoch, and
chatbot.decoding.quality.AnswerRates, which adds the answer rates the default stop rule
watches: chatbot.training.stopping), and the measurement of the finished model is the
caller's too (chatbot.evaluate.evaluate_training).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import keras

from chatbot import rundir
from chatbot.config import RunConfig
from chatbot.data.memory import Memory
from chatbot.data.pairs import LoadReport
from chatbot.errors import ChatbotError
from chatbot.models import arch, arch_module
from chatbot.models.base import OUTPUT_LAYER
from chatbot.models.common import compile_model, frequency_bias
from chatbot.models.weights import read_keras_weights
from chatbot.rundir import (
    CONFIG,
    MEMORY,
    MODEL,
    TOKENIZER,
    VOCAB,
    check_run_dir,
)
from chatbot.text.subword import SubwordTokenizer
from chatbot.text.tokenizer import load_tokenizer
from chatbot.text.vocab import Vocabulary
from chatbot.text.words import TextTokenizer
from chatbot.training.batches import Batches
from chatbot.training.callbacks import (
    AtomicCheckpoint,
    EarlyStopping,
    EpochBackup,
    EpochReport,
    HistoryCSV,
    Monitor,
    TimeBudget,
)
from chatbot.training.distribute import is_chief, make_strategy, refuse_together
from chatbot.training.loop import Loop
from chatbot.training.prepare import Prepared
from chatbot.training.run_data import run_batches, run_data, taught_files
from chatbot.training.shards import is_prepared
from chatbot.training.stopping import Stopped, measured_by, monitor_of, stopped_by
from chatbot.training.tensorboard import Table, TensorBoardLogs, log_dir, logs_of, no_table

Log = Callable[[str], None]


@dataclass
class Run:
    """What a callback of `train` may read about the run it watches."""

    out: Path  # the run directory
    config: RunConfig  # the run's settings, vocab_size filled in
    data: Prepared  # the vocabulary, the tokenizer, the split pairs and their examples
    probes: list[str]  # the first `config.train.probes` distinct training prompts
    log: Log
    table: Table = no_table  # to the TensorBoard logs, during an epoch (a no-op without them)


# A function of the run that returns a Keras callback (or None); the chief alone calls it.
CallbackFactory = Callable[[Run], "keras.callbacks.Callback | None"]


@dataclass
class TrainResult:
    run_dir: Path
    epochs: int  # epochs finished, counting those before a resume
    best_epoch: int  # 1-based epoch whose weights are in model.keras
    seconds: float
    metrics: dict  # what training measured: the best epoch, its monitored value, the time
    data: Prepared | None = None  # the split pairs, for the caller to measure (chief only)


def train(
    data_path: str | Path | None, out_dir: str | Path, config: RunConfig | None = None, *,
    overwrite: bool = False, resume: bool = False, init_from: str | Path | None = None,
    epochs: int | None = None, strategy: str | None = None, log: Log = print,
    verbose: int | str = "auto", callbacks: Sequence[CallbackFactory] = (),
    read: LoadReport | list[str] | None = None,
) -> TrainResult:
    """Trains a model and writes its run directory `out_dir`; `config` is not changed.

    resume: continue the interrupted run in `out_dir` with its own settings and vocabulary;
        `data_path` defaults to the recorded one; `epochs` and `strategy` may change.
    init_from: fine-tune the model of another run directory on `data_path` (see module doc).
    callbacks: functions of the `Run` that return Keras callbacks, called after every epoch
        right after the throughput report (the chief's only, with several workers).
    read: the data as the caller read it already, to report a bad line before TensorFlow
        loads (`chatbot train`): `data_path`'s pairs (read_pairs, with the config's
        on_bad_lines), or for pretraining the passages of its text (read_text); None: read here.
    """
    started = time.perf_counter()
    out = Path(out_dir)
    config, vocab, tokenizer, source = _settings(out, data_path, config, resume, init_from, log)
    if epochs is not None:
        config.train.epochs = epochs
    if strategy is not None:  # a resumed run may continue on other devices
        config.train.strategy = strategy
    if config.train.max_minutes and config.train.strategy == "multiworker":
        raise ChatbotError("--max-minutes cannot stop several workers at the same epoch (each "
                           "has its own clock); use --epochs with --strategy multiworker")
    # First TensorFlow work of the run: a strategy must be made before devices initialize.
    distribution = make_strategy(config.train.strategy)
    data = run_data(config, vocab, tokenizer, source, log, taught_files(out, init_from), read)
    chief = _devices(distribution, out, config, log)
    board = logs_of(out, config, data.vocab) if chief else None  # TensorBoard's, if any
    # The caller's callbacks, made on the chief alone (the other workers keep in step)
    run = Run(out, config, data, _probes(data, config), log, board.table if board else no_table)
    made = _callers(callbacks, run) if chief else []
    monitor = monitor_of(config, has_val=bool(data.val_pairs), measured=measured_by(made), log=log)
    lock = contextlib.ExitStack()  # the chief's hold on the run directory while it trains

    def claim() -> None:
        if not resume:
            rundir.create_run(out, overwrite)
        lock.enter_context(rundir.training_lock(out))  # refuses a second trainer

    # On every worker: the chief checks and claims --out, and its refusal stops them all.
    refuse_together(distribution, claim)
    with lock:
        if not resume and chief:
            _start_run_dir(out, config, data)
        model = _build_model(config, distribution, init_from, None if resume else data)
        checkpoint, done, stopped = _epochs(model, distribution, out, config, data, monitor,
                                            resume, chief, made, board, log, verbose)
    if not chief:
        return TrainResult(out, stopped.epoch, 0, time.perf_counter() - started, {})
    return _finish(out, data, checkpoint, started, log, stopped)


def _settings(out: Path, data_path, config: RunConfig | None, resume: bool,
              init_from: str | Path | None, log: Log):
    """The run's (config, vocabulary, tokenizer, where they came from), by the way it starts."""
    if resume:
        return _resumed(out, data_path, log)
    if init_from is not None:
        return _fine_tuned(Path(init_from), config, data_path, log)
    return _fresh(config, data_path)


def _devices(distribution, out: Path, config: RunConfig, log: Log) -> bool:
    """Whether this process is the chief, which alone writes the run directory (the other
    workers keep in step); says so, and how many devices train."""
    chief = is_chief(distribution)
    if not chief:
        log(f"worker {distribution.cluster_resolver.task_id}: training with the chief, which "
            f"writes {out}")
    if distribution.num_replicas_in_sync > 1:
        log(f"training on {distribution.num_replicas_in_sync} devices ({config.train.strategy});"
            f" each takes batches of {config.train.batch_size}")
    return chief


def _epochs(model: keras.Model, distribution, out: Path, config: RunConfig, data: Prepared,
            monitor: Monitor, resume: bool, chief: bool, made: list,
            board: TensorBoardLogs | None, log: Log,
            verbose: int | str) -> tuple[AtomicCheckpoint, int, Stopped]:
    """Trains the epochs left, with the callbacks that checkpoint, back up, stop and report
    (`made`: the caller's, run after the throughput report, then `board`'s logs); returns the
    checkpoint, the epochs done before and why training stopped."""
    checkpoint = AtomicCheckpoint(out / MODEL, monitor)
    target = config.train.stop_at if config.train.stop_at and monitor.mode == "max" else None
    early_stop = EarlyStopping(monitor, config.train.patience, target)
    budget = [TimeBudget(config.train.max_minutes)] if config.train.max_minutes else []
    backup = EpochBackup(out, stateful=[checkpoint, early_stop], then=[checkpoint.commit])
    with distribution.scope():  # optimizer variables, if restored, live on every device
        done = backup.restore(model) if resume else 0
    if resume and chief:
        log(f"resuming {out} after epoch {done} of {config.train.epochs}")
        if checkpoint.best_epoch == done > 0:
            # The kill may have landed after the backup of the best epoch, before its model
            # was written: write it now from the same, restored, weights.
            checkpoint.write(model)
    train_data, val_data = run_batches(config, data, done)
    # On every worker alike (reducing the norm is a collective op), for the chief's logs
    loop = Loop(model, distribution, gradient_norm=log_dir(out, config) is not None,
                run_eagerly=config.train.run_eagerly)
    if board:
        board.follow(loop, done)
    unit = "windows" if config.data.text else "pairs"  # pretraining reads windows
    every_epoch = [
        EpochReport(train_data.scored_tokens, train_data.rows_per_epoch, log, unit),
        *made,
        *([board] if board else []),  # before the backup: see TensorBoardLogs
        HistoryCSV(out, keep=done),
        early_stop,
        *budget,
        checkpoint,
        backup,  # last: it backs the epoch up, then lets the checkpoint write the model
    ] if chief else [early_stop]  # the same logs on every worker: all stop together
    # A run that early stopping had already stopped (killed before it finished) trains no more.
    last = done if early_stop.stopped_epoch else config.train.epochs
    history = _fit(loop, distribution, train_data, val_data, done, last, every_epoch,
                   verbose if chief else 0)
    stopped = stopped_by(early_stop, budget[0] if budget else None, done + len(history), config)
    log(stopped.why)
    return checkpoint, done, stopped


# How a fine-tuning run's log names the settings that shape its model (chatbot.models.Arch).
_SHAPE = {"embedding_dim": "embedding {}", "hidden_dim": "hidden {}", "num_layers": "{} layer(s)",
          "num_heads": "{} heads"}


# --- the three ways to start: each returns (config, vocabulary, tokenizer, where they came
# from), the vocabulary and tokenizer None for a fresh run: prepare_data makes them -----------


def _fresh(config: RunConfig | None, data_path) -> tuple[RunConfig, None, None, None]:
    if config is None:
        raise ChatbotError("train() needs a config unless resuming")
    config = copy.deepcopy(config)
    if config.data.text:  # pretraining reads the text files it names
        return config, None, None, None
    if not data_path:
        raise ChatbotError("no training data: pass --data FILE")
    config.data.path = str(data_path)
    return config, None, None, None


def _resumed(out: Path, data_path, log: Log) -> tuple[RunConfig, Vocabulary, TextTokenizer, str]:
    rundir.check_resumable(out)
    config = RunConfig.load(out / CONFIG)
    if config.data.text:
        if data_path:
            raise ChatbotError(f"{out} is a pretraining run on {', '.join(config.data.text)}; "
                               "it resumes on that text: drop --data")
        return config, Vocabulary.load(out / VOCAB), load_tokenizer(config.text, out), f"of {out}"
    if data_path and Path(data_path).resolve() != Path(config.data.path).resolve():
        log(f"resuming on {data_path}; the run started on {config.data.path}")
    config.data.path = str(data_path or config.data.path)
    return config, Vocabulary.load(out / VOCAB), load_tokenizer(config.text, out), f"of {out}"


def _fine_tuned(source: Path, config: RunConfig | None, data_path,
                log: Log) -> tuple[RunConfig, Vocabulary, TextTokenizer, str]:
    """The old run's tokenizer and vocabulary (and the settings that shape them: text,
    min_count, max_vocab) and model shape (all of `model` but dropout); everything else from
    `config`."""
    check_run_dir(source)
    if data_path and is_prepared(data_path):
        raise ChatbotError(f"{data_path} is prepared data; fine-tuning keeps the vocabulary of "
                           f"{source}, so it reads a TSV or JSONL file: pass that file")
    read_keras_weights(source / MODEL)  # refuses hostile or damaged files before Keras sees them
    if not data_path:
        raise ChatbotError("no training data: pass --data FILE")
    old = RunConfig.load(source / CONFIG)
    new = copy.deepcopy(config if config is not None else old)
    new.text = old.text
    new.data.min_count, new.data.max_vocab = old.data.min_count, old.data.max_vocab
    new.model = dataclasses.replace(old.model, dropout=new.model.dropout)
    new.data.path = str(data_path)
    new.data.text = []  # a pretrained model is fine-tuned on pairs
    m = new.model
    shape = ", ".join(_SHAPE[name].format(getattr(m, name)) for name in arch(m.arch).settings)
    log(f"fine-tuning {source}: keeping its vocabulary and its model ({m.arch}, {shape})")
    return (new, Vocabulary.load(source / VOCAB), load_tokenizer(old.text, source),
            f"of {source}")


# --- the run directory ---------------------------------------------------------------------------


def _start_run_dir(out: Path, config: RunConfig, data: Prepared) -> None:
    rundir.start_run(out)  # from now on the run counts as unfinished until it finishes
    config.save(out / CONFIG)
    if isinstance(data.tokenizer, SubwordTokenizer):  # before vocab.json, which makes the
        data.tokenizer.save(out / TOKENIZER)  # run resumable (rundir.run_state)
    data.vocab.save(out / VOCAB)
    if data.train_pairs:  # every pair of the data by prompt, for retrieval (chatbot.data.memory):
        # the validation pairs too, so that the bot knows all of its data; an evaluation that
        # needs pairs the bot has not seen leaves them out explicitly (evaluate_training).
        # Prepared data: its most frequent prompts (chatbot.training.from_shards).
        known = data.memory_pairs if data.memory_pairs is not None else [
            *data.train_pairs, *data.val_pairs]
        memory = Memory.build(known, config.data.context_turns)
        memory.save(out / MEMORY)  # (with its index, if it is large)


def _finish(out: Path, data: Prepared, checkpoint: AtomicCheckpoint, started: float,
            log: Log, stopped: Stopped) -> TrainResult:
    """Writes what training measured, and why it stopped, to metrics.json and marks the run
    finished."""
    if not (out / MODEL).exists():
        raise ChatbotError(f"{out}: no epoch improved {checkpoint.monitor.name}; nothing was "
                           "saved")
    seconds = time.perf_counter() - started
    metrics = {"best_epoch": checkpoint.best_epoch, "monitor": checkpoint.monitor.name,
               "best_value": checkpoint.best, "train_seconds": round(seconds, 1),
               "stopped": dataclasses.asdict(stopped)}
    rundir.update_metrics(out, metrics)
    epochs = len(rundir.read_history(out))
    rundir.finish_run(out, epochs=epochs, best_epoch=checkpoint.best_epoch)
    log(f"best epoch {checkpoint.best_epoch} ({checkpoint.monitor.name} {checkpoint.best:.4f}); "
        f"{seconds:.0f} s")
    return TrainResult(out, epochs, checkpoint.best_epoch, seconds, metrics, data)


# --- the model and the loop ----------------------------------------------------------------------


def _build_model(config: RunConfig, distribution, init_from: str | Path | None,
                 data: Prepared | None) -> keras.Model:
    """The run's compiled model: fine-tuned from `init_from`'s weights, or fresh, its output
    bias from the training targets of `data` (unless config.train.frequency_bias is off).
    `data` None: a resumed run, which restores its weights over these (EpochBackup.restore)."""
    keras.utils.set_random_seed(config.train.seed)
    with distribution.scope():  # variables on every device of the strategy
        model = arch_module(config.model.arch).build(config.model)
        if init_from is not None:
            model.load_weights(Path(init_from) / MODEL)
        elif data is not None and config.train.frequency_bias:
            model.get_layer(OUTPUT_LAYER).bias.assign(
                frequency_bias(data.targets(config.data.max_len), config.model.vocab_size))
        compile_model(model, config.train, distribution.num_replicas_in_sync)
    return model




def _fit(loop: Loop, distribution, train_data: Batches, val_data: Batches | None,
         done: int, last: int, callbacks: list, verbose: int | str) -> list[dict[str, float]]:
    """Trains epochs done+1 .. last with `loop`; returns their logs."""
    devices = distribution.num_replicas_in_sync

    def endless(batches: Batches):
        """`batches` repeated without end: the loop keeps one iterator for the whole run."""
        if devices > 1:
            return batches.distributed(distribution, repeat=True)
        return batches.dataset(repeat=True)

    if verbose == "auto":
        verbose = 1 if sys.stdout.isatty() else 2
    return loop.fit(
        endless(train_data), epochs=last, initial_epoch=done, steps=train_data.steps(devices),
        validation=endless(val_data) if val_data else None,
        validation_steps=val_data.steps(devices) if val_data else None,
        callbacks=callbacks, verbose=verbose)


def _callers(factories: Sequence[CallbackFactory], run: Run) -> list:
    """The Keras callbacks the caller's factories make for `run`."""
    return [made for factory in factories if (made := factory(run)) is not None]


def _probes(data: Prepared, config: RunConfig) -> list[str]:
    """The first distinct training prompts, whose replies EpochReport prints."""
    return list(dict.fromkeys(p.prompt for p in data.train_pairs))[: config.train.probes]
