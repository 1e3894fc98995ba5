"""Greedy decoding as a TensorFlow graph, for every architecture: what `chatbot.export.saved_model`
saves.

Each architecture has a TF twin of its NumPy `Engine`, its `GraphEngine` (named by its line in
chatbot.models.ARCHS): built from that engine's own arrays (so the fused transformer
projections and the LSTM gates are the same numbers), it computes the same thing, op for op,
with the same `start`/`step` protocol. (The float32 results can differ in their last bits, TF's
matmuls and tanh not being NumPy's: a greedy reply could differ only where two tokens' logits
tie to within that, and tests/test_export.py checks that the replies are equal.) Decoding keeps
state from step to step, as the NumPy engines do: nothing is recomputed.

`greedy` is `chatbot.decoding.samplers.GreedySampler.search` in a `tf.while_loop`: the same banned
tokens, min_len and max_len, without no_repeat_ngram and loop_guard (see
chatbot.export.saved_model).

Prompt ids come in as the NumPy engines take them, without specials, (batch, time) int32
post-padded with <PAD> = 0; every tensor below has the batch on axis 0."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from chatbot.config import DecodeConfig, ModelConfig
from chatbot.models import arch, arch_module
from chatbot.models.base import Weights
from chatbot.models.graph_ops import lengths_of
from chatbot.text.vocab import Vocabulary


def graph_engine(weights: Weights, config: ModelConfig, vocab: Vocabulary):
    """The TF twin of an architecture's engine (its registry line names it), built from the
    NumPy engine of the same weights."""
    engine = arch_module(config.arch).Engine(weights, config, vocab)
    return arch(config.arch).graph_engine()(engine, vocab)


# --- greedy decoding ----------------------------------------------------------------------------


def greedy(engine, ids: tf.Tensor, vocab: Vocabulary, decode: DecodeConfig):
    """GreedySampler.search: the most probable allowed token per row per step until every row
    has emitted <EOS> or max_reply_len tokens are out. Rows whose prompt is empty are not
    answered (Bot.reply_batch gives them an empty reply).

    ids (batch, time) int32; returns reply ids (batch, max_reply_len) int32, each row's reply
    then 0s (<EOS> is not included), and the replies' lengths (batch,) int32.
    """
    max_len = decode.max_reply_len
    banned = [vocab.pad_id, vocab.sos_id, vocab.sep_id] + ([] if decode.allow_unk
                                                           else [vocab.unk_id])
    logits, state = engine.start(ids)
    vocab_ids = tf.range(tf.shape(logits)[1])
    is_banned = tf.reduce_any(vocab_ids[:, None] == tf.constant(banned)[None, :], axis=1)
    is_eos = vocab_ids == vocab.eos_id

    def pick(logits, lengths):
        """Sampler.log_probs, then the arg-max. The log-softmax and the temperature do not
        change which token is largest, so the arg-max is taken over the constrained logits."""
        logits = tf.where(is_banned[None, :], -np.inf, logits)
        logits = tf.where((lengths < decode.min_len)[:, None] & is_eos[None, :], -np.inf, logits)
        # With a tiny vocabulary everything can be banned: the reply ends there.
        stuck = tf.reduce_all(tf.math.is_inf(logits) & (logits < 0), axis=1)
        logits = tf.where(stuck[:, None] & is_eos[None, :], 0.0, logits)
        return tf.argmax(logits, axis=1, output_type=tf.int32)

    def body(t, logits, state, done, lengths, replies):
        tokens = tf.where(done, vocab.eos_id, pick(logits, lengths))
        emitted = ~done & (tokens != vocab.eos_id)
        # Column t of the replies, 0 for rows that ended.
        replies += tf.where(emitted, tokens, 0)[:, None] * tf.one_hot(t, max_len, dtype=tf.int32)
        lengths += tf.cast(emitted, tf.int32)
        done |= tokens == vocab.eos_id
        # One step more than the NumPy loop takes at the very end: its logits go unused.
        logits, state = engine.step(tokens, state)
        return t + 1, logits, state, done, lengths, replies

    batch = tf.shape(ids)[0]
    *_, lengths, replies = tf.while_loop(
        lambda t, logits, state, done, *_: (t < max_len) & ~tf.reduce_all(done),
        body,
        (0, logits, state, lengths_of(ids) == 0, tf.zeros([batch], tf.int32),
         tf.zeros([batch, max_len], tf.int32)))
    return replies, lengths
