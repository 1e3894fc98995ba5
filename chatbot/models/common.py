"""Keras pieces every architecture shares: the masked loss and accuracy, compiling, and the
output layer's starting bias.

Target index 0 means "not scored": it marks padding, and in the `lstm` architecture also the
prompt positions, so loss and accuracy count reply tokens (and <EOS>) only.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence

import keras
import numpy as np
from keras import ops

from chatbot.config import DECAY_PAIRS, LR_FLOOR, OPTIMIZERS, TrainConfig
from chatbot.errors import ChatbotError


def masked_loss() -> keras.losses.Loss:
    # ignore_class=0 attaches a mask to the per-token losses, and Keras then averages over the
    # unmasked tokens only: mean cross-entropy per scored token, whatever the padding.
    return keras.losses.SparseCategoricalCrossentropy(
        from_logits=True, ignore_class=0, name="masked_sparse_ce"
    )


@keras.saving.register_keras_serializable(package="chatbot")
class MaskedAccuracy(keras.metrics.Metric):
    """Share of scored target tokens (index != 0) whose arg-max prediction is right."""

    def __init__(self, name: str = "masked_accuracy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.correct = self.add_variable(shape=(), initializer="zeros", name="correct")
        self.count = self.add_variable(shape=(), initializer="zeros", name="count")

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true = ops.cast(y_true, "int32")  # (batch, time)
        scored = ops.cast(ops.not_equal(y_true, 0), "float32")
        hits = ops.cast(ops.equal(ops.argmax(y_pred, axis=-1), y_true), "float32") * scored
        self.correct.assign_add(ops.sum(hits))
        self.count.assign_add(ops.sum(scored))

    def result(self):
        return ops.divide_no_nan(self.correct, self.count)

    def reset_state(self):
        self.correct.assign(0.0)
        self.count.assign(0.0)


@keras.saving.register_keras_serializable(package="chatbot")
class Decay(keras.optimizers.schedules.LearningRateSchedule):
    """A learning rate multiplied by `decay` over every `steps` steps, smoothly step by step,
    and never below `floor`: fast early steps, fine late ones."""

    def __init__(self, rate: float, steps: float, decay: float, floor: float):
        self.rate, self.steps, self.decay, self.floor = rate, steps, decay, floor

    def __call__(self, step):
        periods = ops.cast(step, "float32") / self.steps
        return ops.maximum(self.rate * ops.power(self.decay, periods), self.floor)

    def get_config(self) -> dict:
        return {"rate": self.rate, "steps": self.steps, "decay": self.decay, "floor": self.floor}


def compile_model(model: keras.Model, train: TrainConfig, devices: int | None = None) -> None:
    """Compiles `model` with the optimizer of `train`. Given the `devices` that each step
    trains on (a batch each), its learning rate falls by train.lr_decay over every
    DECAY_PAIRS pairs, smoothly, down to LR_FLOOR of train.learning_rate (Decay); without
    them it stays train.learning_rate."""
    optimizers = {"adam": keras.optimizers.Adam, "rmsprop": keras.optimizers.RMSprop}
    assert tuple(optimizers) == OPTIMIZERS, "config.OPTIMIZERS names the optimizers built here"
    if train.optimizer not in optimizers:
        raise ChatbotError(
            f"unknown optimizer {train.optimizer!r}; choose one of: {', '.join(optimizers)}"
        )
    rate = train.learning_rate
    if train.lr_decay != 1 and devices:
        rate = Decay(rate, DECAY_PAIRS / (train.batch_size * devices), train.lr_decay,
                     LR_FLOOR * rate)
    optimizer = optimizers[train.optimizer](learning_rate=rate, clipnorm=train.clipnorm or None)
    model.compile(optimizer=optimizer, loss=masked_loss(), metrics=[MaskedAccuracy()])


def frequency_bias(targets: Iterable[Sequence[int]], vocab_size: int) -> np.ndarray:
    """The log of each token's share of the scored target tokens of `targets` (id lists, 0
    where nothing is scored), every count one more than seen (add-one), as float32.

    Given to the output layer's bias before training, the untrained model predicts tokens at
    the rate replies use them, the best it can do before it reads anything, instead of all
    5,000 alike: the first epochs no longer spend their steps learning that, nor that tokens
    only prompts use are never written. (Selected on seeds 7 and 11 of the default corpus:
    bench/candidates.json.)
    """
    ids = np.fromiter(itertools.chain.from_iterable(targets), dtype=np.int64)
    counts = 1.0 + np.bincount(ids[(ids > 0) & (ids < vocab_size)], minlength=vocab_size)
    return np.log(counts / counts.sum()).astype(np.float32)
