"""Keras pieces every architecture shares: the masked loss and accuracy, and compiling.

Target index 0 means "not scored": it marks padding, and in the `lstm` architecture also the
prompt positions, so loss and accuracy count reply tokens (and <EOS>) only.
"""

from __future__ import annotations

import keras
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
