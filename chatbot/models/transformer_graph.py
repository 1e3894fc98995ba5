"""The transformer's TensorFlow twin, for `chatbot export` (chatbot.export.graph): its Engine
(chatbot.models.transformer) in TF ops, built from that engine's own arrays (the fused
projections included), with a key/value cache of fixed shape. A module of its own, so that
transformer.py stays a readable size; registered beside the architecture in chatbot.models.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from chatbot.models import graph_ops as ops
from chatbot.models.transformer import EPSILON
from chatbot.text.vocab import Vocabulary


class GraphEngine:
    """chatbot.models.transformer.Engine with its key/value cache; state: {"keys", "values":
    per block (batch, max_positions, heads, head), "position": (batch,) where the next token
    goes}. (The NumPy cache puts heads before positions; here positions come first, so that
    one token's keys are written with a scatter at [row, position].)"""

    def __init__(self, engine, vocab: Vocabulary):
        self.sos, self.sep, self.eos = vocab.sos_id, vocab.sep_id, vocab.eos_id
        self.max_positions = engine.max_positions
        self.embedding, self.positions = ops.variables([engine.embedding, engine.positions],
                                                       "embedding")
        self.blocks = []
        for i, b in enumerate(engine.blocks, 1):
            names = ("qkv_kernel", "qkv_bias", "out_kernel", "out_bias")
            arrays = [getattr(b, n) for n in names] + [*b.ff_1, *b.ff_2]
            self.blocks.append(ops.variables(arrays, f"block_{i}"))
        self.heads, self.head = engine.blocks[0].heads, engine.blocks[0].head
        self.out_kernel, self.out_bias = ops.variables([engine.out_kernel, engine.out_bias],
                                                       "output_dense")

    def qkv(self, block, x):
        """Block.qkv: queries (scaled by 1/sqrt(head): the folded kernel does it), keys and
        values, each (..., heads, head)."""
        qkv_kernel, qkv_bias = block[:2]
        projected = tf.matmul(ops.standardize(x, EPSILON), qkv_kernel) + qkv_bias
        q, k, v = tf.split(projected, 3, axis=-1)
        shape = tf.concat([tf.shape(x)[:-1], [self.heads, self.head]], 0)
        return tf.reshape(q, shape), tf.reshape(k, shape), tf.reshape(v, shape)

    def finish(self, block, x, attended):
        """Block.finish: the rest of the block, given the heads' outputs (..., heads, head)."""
        _, _, out_kernel, out_bias, k1, b1, k2, b2 = block
        x = x + tf.matmul(tf.reshape(attended, tf.shape(x)), out_kernel) + out_bias
        h = tf.maximum(tf.matmul(ops.standardize(x, EPSILON), k1) + b1, 0.0)
        return x + tf.matmul(h, k2) + b2

    def start(self, ids):
        """Engine.start: `<SOS> prompt <SEP>` of every row at once (Engine.forward), writing
        every block's keys and values into the cache. chatbot.export.saved_model has checked that
        every prompt it passes fits, so Engine.sequences never has to cut one here."""
        batch = tf.shape(ids)[0]
        lengths = ops.lengths_of(ids) + 2
        seqs = tf.concat([tf.fill([batch, 1], self.sos), ids, tf.zeros([batch, 1], tf.int32)], 1)
        seqs += tf.one_hot(lengths - 1, tf.shape(seqs)[1], dtype=tf.int32) * self.sep
        length = tf.shape(seqs)[1]
        x = tf.gather(self.embedding, seqs) + self.positions[:length]
        # Causal, and never a padded key: (batch, 1, time, time).
        causal = tf.linalg.band_part(tf.ones([length, length], tf.bool), -1, 0)
        visible = (causal[None] & (seqs != 0)[:, None, :])[:, None]
        # A padded query sees no key at all; it gets uniform weights (never read).
        unseen = tf.where(tf.reduce_any(visible, -1, keepdims=True), -np.inf, 0.0)
        keys, values = [], []
        for block in self.blocks:
            q, k, v = self.qkv(block, x)  # (batch, time, heads, head)
            pad = [[0, 0], [0, self.max_positions - length], [0, 0], [0, 0]]
            keys.append(tf.pad(k, pad))
            values.append(tf.pad(v, pad))
            scores = tf.einsum("bqhd,bkhd->bhqk", q, k)
            weights = ops.softmax(tf.where(visible, scores, unseen))
            x = self.finish(block, x, tf.einsum("bhqk,bkhd->bqhd", weights, v))
        last = tf.gather(x, lengths - 1, batch_dims=1)  # each row's <SEP>: (batch, width)
        return self.logits(last), {"keys": keys, "values": values, "position": lengths}

    def step(self, tokens, state):
        """Engine.step: one token per row at its position; a row already at max_positions
        can only end (its logits allow <EOS> alone)."""
        position = state["position"]
        full = position >= self.max_positions
        at = tf.minimum(position, self.max_positions - 1)
        where = tf.stack([tf.range(tf.shape(tokens)[0]), at], axis=1)  # (batch, 2): [row, at]
        x = tf.gather(self.embedding, tokens) + tf.gather(self.positions, at)
        visible = (tf.range(self.max_positions)[None, :] <= at[:, None])[:, None, :]
        keys, values = [], []
        for block, cached_k, cached_v in zip(self.blocks, state["keys"], state["values"]):
            q, k, v = self.qkv(block, x)  # (batch, heads, head)
            kept = full[:, None, None]
            cached_k = tf.tensor_scatter_nd_update(
                cached_k, where, tf.where(kept, tf.gather_nd(cached_k, where), k))
            cached_v = tf.tensor_scatter_nd_update(
                cached_v, where, tf.where(kept, tf.gather_nd(cached_v, where), v))
            keys.append(cached_k)
            values.append(cached_v)
            scores = tf.einsum("bhd,bthd->bht", q, cached_k)  # (batch, heads, max_positions)
            weights = ops.softmax(tf.where(visible, scores, -np.inf))
            x = self.finish(block, x, tf.einsum("bht,bthd->bhd", weights, cached_v))
        logits = self.logits(x)
        only_eos = tf.where(tf.range(tf.shape(logits)[1]) == self.eos, 0.0, -np.inf)
        logits = tf.where(full[:, None], only_eos[None, :], logits)
        return logits, {"keys": keys, "values": values, "position": position + 1}

    def logits(self, hidden):
        """Engine._logits: final_norm is folded into the output layer."""
        return tf.matmul(ops.standardize(hidden, EPSILON), self.out_kernel) + self.out_bias
