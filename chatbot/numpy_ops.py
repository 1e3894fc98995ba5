"""The few NumPy kernels inference needs, written to match Keras' own math exactly."""

from __future__ import annotations

import numpy as np


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (np.tanh(0.5 * x) + 1.0)  # numerically safe form of 1 / (1 + exp(-x))


def lstm_step(
    x_proj: np.ndarray, h: np.ndarray, c: np.ndarray, recurrent: np.ndarray, bias: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """One step of a Keras LSTM cell (gates i, f, c, o; sigmoid and tanh).

    x_proj is the input already multiplied by the cell's kernel, (batch, 4 * units), so a whole
    prompt's projections can be computed in one matmul before the loop over time.
    """
    z = x_proj + h @ recurrent + bias  # (batch, 4 * units)
    i, f, g, o = np.split(z, 4, axis=-1)
    c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
    h = sigmoid(o) * np.tanh(c)
    return h, c


def pad_batch(seqs) -> np.ndarray:
    """Post-padded (batch, longest) int ids; 0 is <PAD>."""
    ids = np.zeros((len(seqs), max(len(s) for s in seqs)), dtype=np.int64)
    for row, s in enumerate(seqs):
        ids[row, : len(s)] = s
    return ids


def lstm_layers(
    x: np.ndarray, real: np.ndarray, layers, hidden: int
) -> tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray]]]:
    """Stacked Keras LSTMs over a post-padded batch, as Keras runs them with a mask.

    x: (batch, time, in) inputs; real: (batch, time) True at real tokens (padding steps carry
    the state, as Keras' mask does); layers: [(kernel, recurrent, bias), ...].
    Returns the top layer's outputs (batch, time, hidden) and every layer's final (h, c).
    """
    batch, length = real.shape
    keep = real[..., None]  # (batch, time, 1)
    finals = []
    for kernel, recurrent, bias in layers:
        h = np.zeros((batch, hidden), dtype=np.float32)
        c = np.zeros_like(h)
        xk = x @ kernel  # all input projections at once: (batch, time, 4 * hidden)
        outputs = np.empty((batch, length, hidden), dtype=np.float32)
        for t in range(length):
            h_new, c_new = lstm_step(xk[:, t], h, c, recurrent, bias)
            h = np.where(keep[:, t], h_new, h)
            c = np.where(keep[:, t], c_new, c)
            outputs[:, t] = h
        finals.append((h, c))
        x = outputs
    return x, finals


def log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def softmax(scores: np.ndarray) -> np.ndarray:
    """Softmax over the last axis; -inf scores get exactly 0 (Keras adds -1e9 to masked scores,
    whose exp underflows to the same 0 in float32)."""
    weights = np.exp(scores - scores.max(axis=-1, keepdims=True))
    return weights / weights.sum(axis=-1, keepdims=True)


def layer_norm(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, epsilon: float) -> np.ndarray:
    """keras.layers.LayerNormalization over the last axis (population variance)."""
    mean = x.mean(axis=-1, keepdims=True)
    variance = np.square(x - mean).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(variance + epsilon) * gamma + beta
