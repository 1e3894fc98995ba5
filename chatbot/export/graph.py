"""Greedy decoding as a TensorFlow graph, for every architecture: what `chatbot.export.saved_model`
saves.

Each class here is the TF twin of an architecture's NumPy `Engine` (chatbot.models.*): it is
built from that engine's own arrays (so the fused transformer projections and the LSTM gates
are the same numbers) and computes the same thing, op for op, with the same `start`/`step`
protocol. (The float32 results can differ in their last bits, TF's matmuls and tanh not being
NumPy's: a greedy reply could differ only where two tokens' logits tie to within that, and
tests/test_export.py checks that the replies are equal.) Decoding keeps state from step to
step, as the NumPy engines do: the LSTM's (h, c) per layer, the encoder outputs for
attention, and for the transformer a key/value cache of fixed shape (batch, max_positions,
heads, head) per block, filled by the prompt and then one position per generated token;
nothing is recomputed.

`greedy` is `chatbot.decoding.samplers.GreedySampler.search` in a `tf.while_loop`: the same banned
tokens, min_len and max_len, without no_repeat_ngram and loop_guard (see
chatbot.export.saved_model).

Prompt ids come in as the NumPy engines take them, without specials, (batch, time) int32
post-padded with <PAD> = 0; every tensor below has the batch on axis 0.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from chatbot.config import DecodeConfig, ModelConfig
from chatbot.errors import ChatbotError
from chatbot.models import arch_module
from chatbot.models.attention import MASKED_SCORE
from chatbot.models.base import Weights
from chatbot.models.transformer import EPSILON
from chatbot.text.vocab import Vocabulary

# --- the kernels of chatbot.models.kernels
# ------------------------------------------------------------


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


# --- the engines ------------------------------------------------------------------------------


class LstmEngine(tf.Module):
    """chatbot.models.lstm.Engine: reads `<SOS> prompt <SEP>`; state: (h, c) per layer."""

    def __init__(self, engine, vocab: Vocabulary):
        super().__init__(name="lstm")
        self.sos, self.sep, self.hidden = vocab.sos_id, vocab.sep_id, engine.hidden
        (self.embedding,) = variables([engine.embedding], "embedding")
        self.lstms = [variables(layer, f"lstm_{i}") for i, layer in enumerate(engine.lstms, 1)]
        self.out_kernel, self.out_bias = variables([engine.out_kernel, engine.out_bias],
                                                   "output_dense")

    def start(self, ids):
        batch = tf.shape(ids)[0]
        # <SOS> p1 .. pn <SEP> 0 ..: <SEP> goes at each row's own length + 1.
        seqs = tf.concat([tf.fill([batch, 1], self.sos), ids, tf.zeros([batch, 1], tf.int32)], 1)
        seqs += tf.one_hot(lengths_of(ids) + 1, tf.shape(seqs)[1], dtype=tf.int32) * self.sep
        _, state = lstm_layers(tf.gather(self.embedding, seqs), seqs != 0, self.lstms,
                               self.hidden)
        return self.logits(state), state

    def step(self, tokens, state):
        x = tf.gather(self.embedding, tokens)
        new_state = []
        for (kernel, recurrent, bias), (h, c) in zip(self.lstms, state):
            h, c = lstm_step(tf.matmul(x, kernel), h, c, recurrent, bias)
            new_state.append((h, c))
            x = h
        return self.logits(new_state), new_state

    def logits(self, state):
        return tf.matmul(state[-1][0], self.out_kernel) + self.out_bias  # (batch, vocab)


class Seq2seqEngine(tf.Module):
    """chatbot.models.seq2seq.Engine: encodes the prompt, then feeds <SOS>; state: the
    decoder's (h, c) per layer."""

    def __init__(self, engine, vocab: Vocabulary, name: str = "seq2seq"):
        super().__init__(name=name)
        self.sos, self.sep, self.hidden = vocab.sos_id, vocab.sep_id, engine.hidden
        (self.embedding,) = variables([engine.embedding], "embedding")
        self.encoder = [variables(layer, f"encoder_lstm_{i}")
                        for i, layer in enumerate(engine.encoder, 1)]
        self.decoder = [variables(layer, f"decoder_lstm_{i}")
                        for i, layer in enumerate(engine.decoder, 1)]
        self.out_kernel, self.out_bias = variables([engine.out_kernel, engine.out_bias],
                                                   "output_dense")

    def encode(self, ids):
        """Top encoder outputs (batch, src, hidden), the real positions (batch, src) and the
        final (h, c) per layer. An empty prompt reads <SEP> (seq2seq.encoder_tokens); one
        column of padding is added so that a batch of empty prompts still has a step."""
        batch = tf.shape(ids)[0]
        ids = tf.concat([ids, tf.zeros([batch, 1], tf.int32)], 1)
        empty = tf.cast(lengths_of(ids) == 0, tf.int32)[:, None]
        ids += tf.one_hot(tf.zeros([batch], tf.int32), tf.shape(ids)[1], dtype=tf.int32) \
            * self.sep * empty
        mask = ids != 0
        outputs, states = lstm_layers(tf.gather(self.embedding, ids), mask, self.encoder,
                                      self.hidden)
        return outputs, mask, states

    def start(self, ids):
        _, _, states = self.encode(ids)
        return self.step(self.sos_tokens(ids), states)

    def sos_tokens(self, ids):
        return tf.fill([tf.shape(ids)[0]], self.sos)

    def decode(self, tokens, states):
        x = tf.gather(self.embedding, tokens)
        new_states = []
        for (kernel, recurrent, bias), (h, c) in zip(self.decoder, states):
            h, c = lstm_step(tf.matmul(x, kernel), h, c, recurrent, bias)
            new_states.append((h, c))
            x = h
        return x, new_states

    def step(self, tokens, state):
        top, state = self.decode(tokens, state)
        return tf.matmul(top, self.out_kernel) + self.out_bias, state


class AttentionEngine(Seq2seqEngine):
    """chatbot.models.attention.Engine: seq2seq plus Luong attention at every step; state:
    {"layers": (h, c) per layer, "encoder_outputs", "encoder_mask"}."""

    def __init__(self, engine, vocab: Vocabulary):
        super().__init__(engine, vocab, name="attention")
        self.scale = tf.Variable(np.float32(engine.scale), trainable=False, name="attention")
        self.combine_kernel, self.combine_bias = variables(
            [engine.combine_kernel, engine.combine_bias], "attention_combine")

    def start(self, ids):
        outputs, mask, states = self.encode(ids)
        state = {"layers": states, "encoder_outputs": outputs, "encoder_mask": mask}
        return self.step(self.sos_tokens(ids), state)

    def step(self, tokens, state):
        top, layers = self.decode(tokens, state["layers"])
        values, mask = state["encoder_outputs"], state["encoder_mask"]
        scores = tf.einsum("bh,bsh->bs", top, values) * self.scale  # attention.attend
        scores = tf.where(mask, scores, scores - MASKED_SCORE)
        context = tf.einsum("bs,bsh->bh", softmax(scores), values)
        attentional = tf.tanh(tf.matmul(tf.concat([context, top], -1), self.combine_kernel)
                              + self.combine_bias)
        logits = tf.matmul(attentional, self.out_kernel) + self.out_bias
        return logits, {**state, "layers": layers}


class TransformerEngine(tf.Module):
    """chatbot.models.transformer.Engine with its key/value cache; state: {"keys", "values":
    per block (batch, max_positions, heads, head), "position": (batch,) where the next token
    goes}. (The NumPy cache puts heads before positions; here positions come first, so that
    one token's keys are written with a scatter at [row, position].)"""

    def __init__(self, engine, vocab: Vocabulary):
        super().__init__(name="transformer")
        self.sos, self.sep, self.eos = vocab.sos_id, vocab.sep_id, vocab.eos_id
        self.max_positions = engine.max_positions
        self.embedding, self.positions = variables([engine.embedding, engine.positions],
                                                   "embedding")
        self.blocks = []
        for i, b in enumerate(engine.blocks, 1):
            names = ("qkv_kernel", "qkv_bias", "out_kernel", "out_bias")
            arrays = [getattr(b, n) for n in names] + [*b.ff_1, *b.ff_2]
            self.blocks.append(variables(arrays, f"block_{i}"))
        self.heads, self.head = engine.blocks[0].heads, engine.blocks[0].head
        self.out_kernel, self.out_bias = variables([engine.out_kernel, engine.out_bias],
                                                   "output_dense")

    def qkv(self, block, x):
        """Block.qkv: queries (scaled by 1/sqrt(head): the folded kernel does it), keys and
        values, each (..., heads, head)."""
        qkv_kernel, qkv_bias = block[:2]
        q, k, v = tf.split(tf.matmul(standardize(x, EPSILON), qkv_kernel) + qkv_bias, 3, axis=-1)
        shape = tf.concat([tf.shape(x)[:-1], [self.heads, self.head]], 0)
        return tf.reshape(q, shape), tf.reshape(k, shape), tf.reshape(v, shape)

    def finish(self, block, x, attended):
        """Block.finish: the rest of the block, given the heads' outputs (..., heads, head)."""
        _, _, out_kernel, out_bias, k1, b1, k2, b2 = block
        x = x + tf.matmul(tf.reshape(attended, tf.shape(x)), out_kernel) + out_bias
        h = tf.maximum(tf.matmul(standardize(x, EPSILON), k1) + b1, 0.0)
        return x + tf.matmul(h, k2) + b2

    def start(self, ids):
        """Engine.start: `<SOS> prompt <SEP>` of every row at once (Engine.forward), writing
        every block's keys and values into the cache. chatbot.export.saved_model has checked that
        every prompt it passes fits, so Engine.sequences never has to cut one here."""
        batch = tf.shape(ids)[0]
        lengths = lengths_of(ids) + 2
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
            weights = softmax(tf.where(visible, scores, unseen))
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
            weights = softmax(tf.where(visible, scores, -np.inf))
            x = self.finish(block, x, tf.einsum("bht,bthd->bhd", weights, cached_v))
        logits = self.logits(x)
        only_eos = tf.where(tf.range(tf.shape(logits)[1]) == self.eos, 0.0, -np.inf)
        logits = tf.where(full[:, None], only_eos[None, :], logits)
        return logits, {"keys": keys, "values": values, "position": position + 1}

    def logits(self, hidden):
        """Engine._logits: final_norm is folded into the output layer."""
        return tf.matmul(standardize(hidden, EPSILON), self.out_kernel) + self.out_bias


ENGINES = {"lstm": LstmEngine, "seq2seq": Seq2seqEngine, "attention": AttentionEngine,
           "transformer": TransformerEngine}


def graph_engine(weights: Weights, config: ModelConfig, vocab: Vocabulary) -> tf.Module:
    """The TF engine of an architecture, from the NumPy engine of the same weights."""
    if config.arch not in ENGINES:
        raise ChatbotError(f"the {config.arch!r} architecture cannot be exported yet (export "
                           f"knows {', '.join(ENGINES)})")
    engine = arch_module(config.arch).Engine(weights, config, vocab)
    return ENGINES[config.arch](engine, vocab)


# --- greedy decoding ----------------------------------------------------------------------------


def greedy(engine: tf.Module, ids: tf.Tensor, vocab: Vocabulary, decode: DecodeConfig):
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
