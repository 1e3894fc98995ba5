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


def log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
