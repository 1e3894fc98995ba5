"""Keras pieces every architecture shares: the masked loss and accuracy, and compiling.

Target index 0 means "not scored": it marks padding, and in the `lstm` architecture also the
prompt positions, so loss and accuracy count reply tokens (and <EOS>) only.
"""

from __future__ import annotations

import keras
from keras import ops

from chatbot.config import OPTIMIZERS, TrainConfig
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


def compile_model(model: keras.Model, train: TrainConfig) -> None:
    optimizers = {"adam": keras.optimizers.Adam, "rmsprop": keras.optimizers.RMSprop}
    assert tuple(optimizers) == OPTIMIZERS, "config.OPTIMIZERS names the optimizers built here"
    if train.optimizer not in optimizers:
        raise ChatbotError(
            f"unknown optimizer {train.optimizer!r}; choose one of: {', '.join(optimizers)}"
        )
    optimizer = optimizers[train.optimizer](
        learning_rate=train.learning_rate, clipnorm=train.clipnorm or None
    )
    model.compile(optimizer=optimizer, loss=masked_loss(), metrics=[MaskedAccuracy()])
