"""The few NumPy kernels inference needs, written to match Keras' own math exactly."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (np.tanh(0.5 * x) + 1.0)  # numerically safe form of 1 / (1 + exp(-x))


# OpenBLAS (numpy's BLAS) multiplies small matrices with an unpacked kernel, when rows * inner *
# columns is at most 100**3 (its sgemm_small_kernel_permit). Past that, a product of a few rows
# first copies the whole weight matrix into packed panels: with the 384 x 1536 recurrent kernel
# here, 2 rows took 0.35 ms where 1 row (a matrix-vector product, never packed) took 0.08 ms.
SMALL_PRODUCT = 100**3
BLOCKED_ROWS = range(2, 13)  # past 12 rows, packing pays for itself (bench/small_products.py)


def matmul(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """x @ w for x (..., inner) and a weight matrix w (inner, columns). With 2 to 12 rows (a
    decoding step of a small batch), in blocks of columns small enough for the small-matrix
    kernel: 2 rows by 384 x 1536 took 0.11 ms, not 0.35 ms. Elsewhere, plain x @ w."""
    rows = x.size // x.shape[-1] if x.shape[-1] else 0
    inner, columns = w.shape
    if rows not in BLOCKED_ROWS or rows * inner * columns <= SMALL_PRODUCT:
        return x @ w
    width = max(16, SMALL_PRODUCT // (rows * inner) // 16 * 16)  # (whole vectors of 16 floats)
    flat = x.reshape(rows, inner)
    out = np.empty((rows, columns), dtype=np.result_type(x, w))
    for start in range(0, columns, width):
        np.matmul(flat, w[:, start:start + width], out=out[:, start:start + width])
    return out.reshape(*x.shape[:-1], columns)


def lstm_step(
    x_proj: np.ndarray, h: np.ndarray, c: np.ndarray, recurrent: np.ndarray, bias: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """One step of a Keras LSTM cell (gates i, f, c, o; sigmoid and tanh).

    x_proj is the input already multiplied by the cell's kernel, (batch, 4 * units), so a whole
    prompt's projections can be computed in one matmul before the loop over time.
    """
    z = x_proj + matmul(h, recurrent) + bias  # (batch, 4 * units)
    units = z.shape[-1] // 4  # (slices, not np.split: a step is small, and split's overhead shows)
    i, f, g, o = z[:, :units], z[:, units: 2 * units], z[:, 2 * units: 3 * units], z[:, 3 * units:]
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
    x: np.ndarray, real: np.ndarray, layers, hidden: int,
    initial: Sequence[tuple[np.ndarray, np.ndarray]] | None = None,
) -> tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray]]]:
    """Stacked Keras LSTMs over a post-padded batch, as Keras runs them with a mask.

    x: (batch, time, in) inputs; real: (batch, time) True at real tokens (padding steps carry
    the state, as Keras' mask does); layers: [(kernel, recurrent, bias), ...]; initial: every
    layer's (h, c) to start from, (batch, hidden) each (None: zeros).
    Returns the top layer's outputs (batch, time, hidden) and every layer's final (h, c).
    """
    batch, length = real.shape
    lengths = real.sum(axis=1)
    if not (real == (np.arange(length) < lengths[:, None])).all():
        raise ValueError("lstm_layers takes post-padded rows: real tokens first, then padding")
    # Longest rows first, so that the rows still running at step t are the first few: a step
    # computes those only (a matmul over fewer rows, down to one row's cheaper product).
    order = np.argsort(-lengths, kind="stable")
    running = (lengths[order][None, :] > np.arange(length)[:, None]).sum(axis=1)  # (time,)
    x = x[order]
    finals = []
    for layer, (kernel, recurrent, bias) in enumerate(layers):
        if initial is None:
            h = np.zeros((batch, hidden), dtype=np.float32)
            c = np.zeros_like(h)
        else:
            h, c = (np.array(s[order], dtype=np.float32) for s in initial[layer])
        xk = x @ kernel  # all input projections at once: (batch, time, 4 * hidden)
        outputs = np.empty((batch, length, hidden), dtype=np.float32)
        for t in range(length):
            n = running[t]
            h[:n], c[:n] = lstm_step(xk[:n, t], h[:n], c[:n], recurrent, bias)
            outputs[:, t] = h
        finals.append((h, c))
        x = outputs
    back = np.argsort(order)  # the rows in their given order again
    return x[back], [(h[back], c[back]) for h, c in finals]


def log_softmax(logits: np.ndarray, top: np.ndarray | None = None) -> np.ndarray:
    """Log-softmax over the last axis; `top`, if the caller has it, is the logits' max over
    that axis (keepdims)."""
    shifted = logits - (logits.max(axis=-1, keepdims=True) if top is None else top)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


SCORED_CHUNK = 512  # positions whose logits target_scores holds at once


def target_scores(hidden: np.ndarray, starts: Sequence[int],
                  targets: Sequence[Sequence[int]], logits: Callable[[np.ndarray], np.ndarray],
                  never: Sequence[int] = ()) -> tuple[np.ndarray, np.ndarray]:
    """Per row of a teacher-forced pass, the summed log-probability of its targets and how
    many were the arg-max, (rows,) each: what feeding the targets token by token gives.

    hidden: (rows, time, width), the model's outputs over each row's whole sequence; row i's
    output at time starts[i] + j predicts targets[i][j]. `logits` maps (n, width) outputs to
    (n, vocab): the output layer runs at the scored positions only, in one matmul. Tokens in
    `never` (ids a search never writes) do not count as the arg-max.
    """
    lengths = [len(t) for t in targets]
    rows = np.repeat(np.arange(len(targets)), lengths)
    cols = np.concatenate([np.arange(s, s + n) for s, n in zip(starts, lengths)])
    wanted = np.concatenate([np.asarray(t, dtype=np.int64) for t in targets])
    picked = np.empty(len(wanted))
    best = np.empty(len(wanted), dtype=np.int64)
    # In chunks of positions: (positions, vocab) logits of a whole batch would be hundreds of
    # MiB, and a server's memory keeps what its largest batch once needed.
    for start in range(0, len(wanted), SCORED_CHUNK):
        part = slice(start, start + SCORED_CHUNK)
        scores = logits(hidden[rows[part], cols[part]])  # (positions, vocab), float32
        # Only each position's own target needs its log-probability: its logit minus the
        # log-sum-exp of its row, the exponentials in float32 (a float64 log-softmax of every
        # row cost more than the output layer itself), summed in float64.
        top = scores.max(axis=-1, keepdims=True)
        log_sum = np.log(np.exp(scores - top).sum(axis=-1, dtype=np.float64)) + top[:, 0]
        picked[part] = scores[np.arange(len(scores)), wanted[part]] - log_sum
        if len(never):
            scores[:, never] = -np.inf  # (after the log-sum-exp: they keep their mass)
        best[part] = scores.argmax(axis=-1)
    total = np.bincount(rows, weights=picked, minlength=len(targets))
    hits = np.bincount(rows, weights=best == wanted, minlength=len(targets)).astype(np.int64)
    return total, hits


def softmax(scores: np.ndarray) -> np.ndarray:
    """Softmax over the last axis; -inf scores get exactly 0 (Keras adds -1e9 to masked scores,
    whose exp underflows to the same 0 in float32)."""
    weights = np.exp(scores - scores.max(axis=-1, keepdims=True))
    return weights / weights.sum(axis=-1, keepdims=True)


def standardize(x: np.ndarray, epsilon: float) -> np.ndarray:
    """(x - mean) / sqrt(variance + epsilon) over the last axis (population variance): what
    keras.layers.LayerNormalization computes before its gain and offset, which the transformer
    folds into the Dense that follows (chatbot.models.transformer.fold).

    The means are sums divided by the width, what ndarray.mean computes, without its Python
    wrapper: a decoding step normalizes a row at a time, where the wrapper was a third of the
    cost."""
    width = x.shape[-1]
    centered = x - np.add.reduce(x, axis=-1, keepdims=True) / width
    variance = np.add.reduce(np.square(centered), axis=-1, keepdims=True) / width
    return centered / np.sqrt(variance + epsilon)
