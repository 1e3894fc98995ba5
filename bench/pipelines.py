"""The training pipelines that bench/train.py compares, each run as one job of the harness.

Every job trains the `lstm` architecture at the size its `Setup` gives, from the same starting
weights, on pairs prepared with `chatbot train`'s own steps (read_pairs, split_pairs, Tokenizer,
Vocabulary.build, encode_pairs, Batches), from a seeded sample of each side of the split, and is
scored with `chatbot train`'s validation loss (`Loop.evaluate`: masked mean cross-entropy per
scored token, on bucketed batches). The pipelines (`PIPELINES`) differ only in how the batches
are made and how the model is fitted to them.

"padded" was called "plain" in bench/train.json up to the one committed with 8faa3b6 (keys such
as `pipelines.plain` and `speedup_samples_per_s_ours_over_plain`), but it is not literally the
tutorials' pipeline: like them it pads every row to the longest and one-hot encodes the targets,
but where they score every position (padding included), it weights the loss by a 0/1 sample
weight, so that its loss is ours (the mean over scored tokens) and the comparison is one of
speed and memory, not of what is learned.

TensorFlow is imported inside the functions that train: bench/train.py imports this module for
`Setup` and `FitJob` without loading it.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from harness import EpochClock, JobError, rss_mib

from chatbot.config import DataConfig, ModelConfig, TextConfig, TrainConfig
from chatbot.data.pairs import Pair, read_pairs, split_pairs
from chatbot.text.vocab import Vocabulary
from chatbot.text.words import Tokenizer

if TYPE_CHECKING:
    import keras

    from chatbot.training.batches import Batches, Example

VAL_FRACTION = 0.1  # held out before sampling, so training pairs never leak into validation
TOKENIZER = Tokenizer(lowercase=TextConfig().lowercase)

PIPELINES = {
    "ours": "what `chatbot train` runs: Batches(...).dataset() with length buckets and sparse "
            "targets, trained by chatbot.training.loop.Loop, which computes the output layer at "
            "scored positions only",
    "ours_fit": "our batches, but Keras fit() with the output layer at every position",
    "padded": "padded one-hot fit, masked by sample weights: every row padded to the longest "
              "training row, one-hot float32 targets (to_categorical), CategoricalCrossentropy("
              "from_logits, mean_with_sample_weight) weighted by target != 0, fit(x, y, "
              "shuffle=True); formerly called 'plain'",
}


@dataclass(frozen=True)
class Setup:
    """What every job of one comparison shares: the data, the model's size, the batch size."""

    data: str  # a TSV of prompt<TAB>reply pairs
    train_pairs: int | None = 10000  # sampled from the training split; None: all of them
    val_pairs: int | None = 1000  # sampled from the validation split; None: all of them
    embedding: int = 64  # embedding_dim
    hidden: int = 128  # LSTM units
    max_len: int = 20  # tokens kept per side
    batch: int = 64  # pairs per batch
    min_count: int = 2  # tokens seen fewer times become <UNK>; sets the vocabulary size
    seed: int = 1234  # the split, the samples, the shuffling and the initial weights

    @classmethod
    def default_corpus(cls, data: str, seed: int, train_pairs: int | None = None) -> Setup:
        """The settings of `make train`: the default corpus, every pair (unless `train_pairs`
        says fewer), the defaults of ModelConfig, DataConfig and TrainConfig."""
        model, data_config, train = ModelConfig(), DataConfig(), TrainConfig()
        return cls(data=data, train_pairs=train_pairs, val_pairs=None, seed=seed,
                   embedding=model.embedding_dim, hidden=model.hidden_dim,
                   max_len=data_config.max_len, batch=train.batch_size,
                   min_count=data_config.min_count)


@dataclass(frozen=True)
class FitJob:
    """One training run of one pipeline, measured epoch by epoch."""

    setup: Setup
    pipeline: str  # a key of PIPELINES
    epochs: int
    pairs: int | None = None  # training pairs; past the real ones, recombined; None: all
    validate: bool = False  # score every epoch on the validation pairs (outside its time)
    jit: bool = False  # compile fit()'s training step with XLA (not for ours)
    pad_multiple: int = 1  # round each batch's length up to a multiple of this (not for padded)
    name: str = ""  # shown in the progress lines

    def __post_init__(self):
        if self.pipeline not in PIPELINES:
            raise ValueError(f"unknown pipeline {self.pipeline!r}; choose one of: "
                             f"{', '.join(PIPELINES)}")
        if self.epochs < 1 or self.pad_multiple < 1:
            raise ValueError(f"epochs and pad_multiple must be at least 1, received "
                             f"{self.epochs} and {self.pad_multiple}")
        if self.jit and self.pipeline == "ours":  # the loop's tf.function ignores jit_compile
            raise ValueError("jit applies to the fit() pipelines (ours_fit, padded), not ours")
        if self.pad_multiple != 1 and self.pipeline == "padded":  # padded to the longest row
            raise ValueError("pad_multiple applies to our batches (ours, ours_fit), not padded")

    def run(self) -> dict[str, Any]:
        return train_and_measure(self)


# --- data: the same pairs and vocabulary in every subprocess ---------------------------------

def sample_pairs(setup: Setup) -> tuple[list[Pair], list[Pair]]:
    """(training, validation) pairs sampled from setup.data (all of them if the counts are None),
    in random order (fra-eng is sorted roughly by length: its first lines are not a fair
    sample)."""
    train, val = split_pairs(read_pairs(setup.data).pairs, VAL_FRACTION, setup.seed)
    n_train, n_val = setup.train_pairs or len(train), setup.val_pairs or len(val)
    if n_train > len(train) or n_val > len(val):
        raise JobError(f"{setup.data}: {len(train)} training and {len(val)} validation pairs; "
                       f"asked for {n_train} and {n_val}: lower --train-pairs, --val-pairs or "
                       f"--default-pairs")
    rng = random.Random(setup.seed)
    return rng.sample(train, n_train), rng.sample(val, n_val)


def recombined(pairs: list[Pair], n: int, max_len: int, seed: int) -> list[Pair]:
    """n distinct pairs "A B<TAB>A' B'" joining two different pairs, each side <= max_len tokens."""
    sizes = [(len(TOKENIZER.tokenize(p.prompt)), len(TOKENIZER.tokenize(p.reply))) for p in pairs]
    rng, seen, out = random.Random(seed), set(), []
    while len(out) < n:
        i, j = rng.randrange(len(pairs)), rng.randrange(len(pairs))
        if i == j or max(sizes[i][0] + sizes[j][0], sizes[i][1] + sizes[j][1]) > max_len:
            continue
        pair = (f"{pairs[i].prompt} {pairs[j].prompt}", f"{pairs[i].reply} {pairs[j].reply}")
        if pair not in seen:
            seen.add(pair)
            out.append(Pair(*pair, line=0))
    return out


def scaled_pairs(train: list[Pair], n: int, setup: Setup) -> list[Pair]:
    """The first n training pairs; past the real ones, recombinations of them fill up to n."""
    if n <= len(train):
        return train[:n]
    return train + recombined(train, n - len(train), setup.max_len, setup.seed)


def encode(pairs: list[Pair], vocab: Vocabulary, max_len: int) -> list[Example]:
    """The lstm architecture's examples of `pairs`, as `chatbot train` encodes them."""
    from chatbot.models import lstm
    from chatbot.training.batches import encode_pairs

    return encode_pairs(pairs, TOKENIZER, vocab, max_len, lstm.encode_example)[0]


def prepare(setup: Setup, pairs: int | None) -> tuple[Vocabulary, list[Example], list[Pair]]:
    """The vocabulary of the setup's training pairs, `pairs` training examples (all the training
    pairs if None), and the validation pairs."""
    train, val = sample_pairs(setup)
    vocab = Vocabulary.build((TOKENIZER.tokenize(text) for p in train
                              for text in (p.prompt, p.reply)), min_count=setup.min_count)
    return vocab, encode(scaled_pairs(train, pairs or len(train), setup), vocab,
                         setup.max_len), val


# --- the pipelines -------------------------------------------------------------------------------

def bucketed_inputs(examples: list[Example], setup: Setup,
                    pad_multiple: int) -> tuple[Batches, dict[str, Any]]:
    """Our batches, and the fit() arguments that train on them (ours and ours_fit)."""
    from chatbot.training.batches import Batches

    batches = Batches(examples, setup.batch, seed=setup.seed, pad_multiple=pad_multiple)
    # Endless, reshuffled every epoch: one iterator for the whole run, as in chatbot train.
    return batches, dict(x=batches.dataset(repeat=True), steps_per_epoch=len(batches),
                         shuffle=False)


def padded_inputs(model: keras.Model, examples: list[Example], vocab_size: int,
                  batch_size: int) -> tuple[Batches, dict[str, Any]]:
    """Every example padded to the longest one as a single batch, and the fit() arguments of
    the padded one-hot pipeline (masked by sample weights); recompiles `model` for it."""
    import keras

    from chatbot.training.batches import Batches

    rows = Batches(examples, len(examples), bucket_by_length=False, shuffle=False)
    longest = max(len(target) for _, target in examples)
    x, target = rows.collate(range(len(examples)), [longest] * (rows.n_inputs + 1))
    # (pairs, longest, vocab) one-hot, float32 as the tutorials build it; to_categorical returns
    # float64, so it is filled in slices to spare a transient twice as large.
    y = np.empty((*target.shape, vocab_size), dtype="float32")
    for start in range(0, len(target), 1000):
        y[start: start + 1000] = keras.utils.to_categorical(target[start: start + 1000],
                                                            vocab_size)
    # The same optimizer as compile_model's; the loss is averaged over scored tokens, as ours
    # is; "accuracy", as the tutorials write it, stands in for our MaskedAccuracy.
    model.compile(optimizer=model.optimizer, metrics=["accuracy"],
                  loss=keras.losses.CategoricalCrossentropy(
                      from_logits=True, reduction="mean_with_sample_weight"))
    weights = (target != 0).astype("float32")  # (pairs, longest): 1 where a token is scored
    return rows, dict(x=x, y=y, sample_weight=weights, batch_size=batch_size, shuffle=True)


class ValidationLoss:
    """`chatbot train`'s val_loss (Loop.evaluate: masked mean cross-entropy per scored token)
    of `model` on fixed bucketed batches of `examples`, whichever pipeline trains the model."""

    def __init__(self, model: keras.Model, examples: list[Example], batch_size: int):
        from chatbot.training.batches import Batches

        self.model, self.loop = model, None
        self.batches = Batches(examples, batch_size, shuffle=False)

    def __call__(self) -> float:
        import tensorflow as tf

        from chatbot.training.loop import Loop

        if self.loop is None:  # at the first call, after epoch 1: outside fit's setup time
            self.loop = Loop(self.model, tf.distribute.get_strategy())
        return self.loop.evaluate(self.batches)["loss"]


def positions(batches: Batches) -> int:
    """Token positions an epoch of `batches` computes, padding included."""
    return sum(len(rows) * lengths[-1] for rows, lengths in batches.layout())


def train_and_measure(job: FitJob) -> dict[str, Any]:
    """Trains one model as `job` says; returns per-epoch times, losses and peak RSS."""
    import keras
    import tensorflow as tf

    from chatbot.models import lstm
    from chatbot.models.common import compile_model
    from chatbot.training.loop import Loop

    started, setup = time.perf_counter(), job.setup
    vocab, examples, val_pairs = prepare(setup, job.pairs)
    keras.utils.set_random_seed(setup.seed)  # the same initial weights in every subprocess
    model = lstm.build(ModelConfig(arch="lstm", embedding_dim=setup.embedding,
                                   hidden_dim=setup.hidden, vocab_size=len(vocab)))
    init_checksum = float(sum(np.abs(w).sum() for w in model.get_weights()))
    compile_model(model, TrainConfig(batch_size=setup.batch, seed=setup.seed))
    if job.pipeline == "padded":
        batches, fit_args = padded_inputs(model, examples, len(vocab), setup.batch)
    else:
        batches, fit_args = bucketed_inputs(examples, setup, job.pad_multiple)
    if job.jit:
        model.jit_compile = True  # read back below: Keras falls back to False if unsupported
    rss_before = rss_mib()
    prepare_s = time.perf_counter() - started

    validation = None
    if job.validate:
        validation = ValidationLoss(model, encode(val_pairs, vocab, setup.max_len), setup.batch)
    clock = EpochClock(job.name, validation)
    callbacks = [clock.callback()]
    fit_called = time.perf_counter()
    if job.pipeline == "ours":  # chatbot train's loop
        Loop(model, tf.distribute.get_strategy()).fit(
            fit_args["x"], epochs=job.epochs, steps=fit_args["steps_per_epoch"],
            callbacks=callbacks, verbose=0)
    else:
        model.fit(**fit_args, epochs=job.epochs, callbacks=callbacks, verbose=0)
    peak_rss = rss_mib()["peak"]
    lengths = [len(target) for _, target in examples]
    return {
        "pipeline": job.pipeline, "pairs": len(examples), "vocab": len(vocab),
        "jit_compile": bool(model.jit_compile), "pad_multiple": job.pad_multiple,
        "init_weights_abs_sum": round(init_checksum, 4),
        "prepare_s": round(prepare_s, 2), "fit_setup_s": round(clock.began - fit_called, 2),
        "epoch_s": [round(s, 3) for s in clock.seconds],
        "other_cores_busy": [None if v is None else round(v, 2) for v in clock.others],
        "train_loss": [round(v, 4) for v in clock.train_loss],
        "val_loss": [round(v, 4) for v in clock.val_loss],
        # Counted after the measurements: one more epoch's layout of the same batches.
        "tokens_processed_per_epoch": positions(batches), "tokens_real": sum(lengths),
        "tokens_scored": batches.scored_tokens, "longest_tokens": max(lengths),
        "rss_mib_before_fit": rss_before, "peak_rss_mib": peak_rss,
    }
