"""Keras layers of our own, for the architectures that need one (imported by `build` only).

Each is registered with Keras under the package "chatbot", keeps its `__init__` arguments as
attributes and returns them from `get_config`, so a `.keras` file that uses it reloads in Keras'
safe mode, and `chatbot.models.weights` admits it by that registered name and nothing else.
"""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="chatbot")
class PositionEmbedding(keras.layers.Layer):
    """Adds a learned vector for each position to a (batch, time, width) sequence: GPT's
    position embeddings. Sequences may be shorter than `max_positions`, never longer."""

    def __init__(self, max_positions: int, width: int, **kwargs):
        super().__init__(**kwargs)
        self.max_positions = max_positions
        self.width = width
        self.supports_masking = True  # the token embedding's padding mask passes through

    def build(self, input_shape):
        self.embeddings = self.add_weight(
            shape=(self.max_positions, self.width), name="embeddings",
            initializer=keras.initializers.RandomNormal(stddev=0.02))  # GPT-2's initial scale

    def call(self, x):
        length = ops.shape(x)[1]
        return x + ops.expand_dims(self.embeddings[:length], 0)  # (batch, time, width)

    def get_config(self) -> dict:
        return {**super().get_config(), "max_positions": self.max_positions, "width": self.width}
