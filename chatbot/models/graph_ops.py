"""The TensorFlow twins of chatbot.models.kernels: what every architecture's GraphEngine (its
Engine in TF ops, for `chatbot export`) is made of. Imported only when a model is exported.

Prompt ids come in as the NumPy engines take them, without specials, (batch, time) int32
post-padded with <PAD> = 0; every tensor has the batch on axis 0.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf


def sigmoid(x: tf.Tensor) -> tf.Tensor:
    return 0.5 * (tf.tanh(0.5 * x) + 1.0)  # kernels.sigmoid's form, not tf.sigmoid's


def lstm_step(x_proj, h, c, recurrent, bias):
    """kernels.lstm_step: one Keras LSTM cell step, x_proj = x @ kernel (batch, 4 * units)."""
    z = x_proj + tf.matmul(h, recurrent) + bias
    i, f, g, o = tf.split(z, 4, axis=-1)
    c = sigmoid(f) * c + sigmoid(i) * tf.tanh(g)
    h = sigmoid(o) * tf.tanh(c)
    return h, c


def lstm_layers(x, real, layers, hidden: int):
    """kernels.lstm_layers: stacked LSTMs over a post-padded batch, padding steps carrying
    the state. x (batch, time, in), real (batch, time) bool; returns the top layer's outputs
    (batch, time, hidden) and every layer's final (h, c)."""
    zeros = tf.zeros([tf.shape(x)[0], hidden])
    keep = tf.transpose(real)[..., None]  # (time, batch, 1): tf.scan walks axis 0
    finals = []
    for kernel, recurrent, bias in layers:
        xk = tf.transpose(tf.einsum("btd,dk->btk", x, kernel), [1, 0, 2])  # (time, batch, 4u)

        def cell(carry, step, recurrent=recurrent, bias=bias):
            h, c = carry
            x_proj, kept = step
            h_new, c_new = lstm_step(x_proj, h, c, recurrent, bias)
            return tf.where(kept, h_new, h), tf.where(kept, c_new, c)

        hs, cs = tf.scan(cell, (xk, keep), initializer=(zeros, zeros))  # (time, batch, hidden)
        finals.append((hs[-1], cs[-1]))
        x = tf.transpose(hs, [1, 0, 2])
    return x, finals


def standardize(x, epsilon: float):
    """kernels.standardize: a LayerNormalization without its gain and offset, which the
    engine folds into the Dense that follows (chatbot.models.transformer.fold)."""
    mean = tf.reduce_mean(x, axis=-1, keepdims=True)
    variance = tf.reduce_mean(tf.square(x - mean), axis=-1, keepdims=True)
    return (x - mean) / tf.sqrt(variance + epsilon)


def softmax(scores):
    weights = tf.exp(scores - tf.reduce_max(scores, axis=-1, keepdims=True))
    return weights / tf.reduce_sum(weights, axis=-1, keepdims=True)


def lengths_of(ids) -> tf.Tensor:
    return tf.reduce_sum(tf.cast(ids != 0, tf.int32), axis=1)  # (batch,)


def variables(arrays, name: str) -> list[tf.Variable]:
    return [tf.Variable(np.asarray(a, np.float32), trainable=False, name=name) for a in arrays]


def encoder_ids(ids, sep: int):
    """What an encoder reads, as chatbot.models.seq2seq.encoder_tokens makes it: an empty prompt
    reads <SEP>. One column of padding is added, so that a batch of empty prompts still has a
    step. (batch, time) -> (batch, time + 1) int32."""
    batch = tf.shape(ids)[0]
    ids = tf.concat([ids, tf.zeros([batch, 1], tf.int32)], 1)
    empty = tf.cast(lengths_of(ids) == 0, tf.int32)[:, None]
    first = tf.one_hot(tf.zeros([batch], tf.int32), tf.shape(ids)[1], dtype=tf.int32)
    return ids + first * sep * empty


def variables_of(engine) -> list[tf.Variable]:
    """Every variable a GraphEngine holds, however nested: what a SavedModel must track."""
    return [v for v in tf.nest.flatten(list(vars(engine).values()))
            if isinstance(v, tf.Variable)]
