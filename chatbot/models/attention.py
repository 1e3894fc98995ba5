"""Seq2seq with Luong-style (dot-product) attention over the prompt.

The encoder and decoder are those of `chatbot.models.seq2seq`. At every reply step, the top
decoder output h_t scores each encoder output h_s of the top layer by s = scale * h_t . h_s
(padding scored -1e9, so its weight is exactly 0); the softmax of the scores weights the encoder
outputs into a context c_t, and Luong's attentional state tanh(W_c [c_t; h_t] + b_c) predicts the
next token. keras.layers.Attention does the scoring with `use_scale=True`: one learned scalar,
starting at 1 (Luong's plain dot score), with which the model can sharpen or soften its
alignments; LSTM outputs lie in (-1, 1), so unscaled dot scores are bounded by `hidden_dim`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from chatbot.config import ModelConfig
from chatbot.models.base import (
    DENSE,
    OUTPUT_LAYER,
    Attention,
    LazyModule,
    Shapes,
    Weights,
    arrays,
    dense_shapes,
    step_attention,
)
from chatbot.models.kernels import matmul
from chatbot.models.seq2seq import Engine as Seq2seqEngine
from chatbot.models.seq2seq import GraphEngine as Seq2seqGraphEngine
from chatbot.models.seq2seq import encode_example, encoder_decoder, encoder_decoder_shapes
from chatbot.text.vocab import Vocabulary

__all__ = ["Engine", "GraphEngine", "build", "encode_example", "weight_shapes"]

tf = LazyModule("tensorflow")  # GraphEngine only: `chatbot export`
ops = LazyModule("chatbot.models.graph_ops")

MASKED_SCORE = 1.0e9  # keras.layers.Attention subtracts this from padding scores (float32)


def build(config: ModelConfig):
    """The trainable Keras model: (prompt, decoder input) -> logits (batch, tgt, vocab)."""
    import keras  # imported here: chat decodes with NumPy and never needs TensorFlow

    layers = keras.layers
    inputs, encoder_outputs, decoder_outputs = encoder_decoder(config)
    # Both padding masks reach the layer with its inputs: the encoder's (value) mask keeps padding
    # out of the softmax; the decoder's (query) mask zeroes the context at padded reply steps.
    context = layers.Attention(use_scale=True, name="attention")(
        [decoder_outputs, encoder_outputs]
    )  # (batch, tgt, hidden)
    combined = layers.Concatenate(name="attention_concat")([context, decoder_outputs])
    attentional = layers.Dense(config.hidden_dim, activation="tanh",
                               name="attention_combine")(combined)  # Luong's W_c
    if config.dropout:
        attentional = layers.Dropout(config.dropout, name="attention_dropout")(attentional)
    # A Dense on (batch, tgt, hidden): TimeDistributed(Dense)'s computation (see models/lstm.py).
    logits = layers.Dense(config.vocab_size, name=OUTPUT_LAYER)(attentional)
    return keras.Model(inputs, logits, name="attention_chatbot")


def weight_shapes(config: ModelConfig) -> Shapes:
    """Every array model.keras holds for `config`: {(layer, path): shape}."""
    hidden = config.hidden_dim
    return (encoder_decoder_shapes(config)
            | {("attention", "vars/0"): ()}  # the learned scale of the scores
            | dense_shapes("attention_combine", 2 * hidden, hidden)
            | dense_shapes(OUTPUT_LAYER, hidden, config.vocab_size))


def attend(
    query: np.ndarray, values: np.ndarray, mask: np.ndarray, scale: float
) -> tuple[np.ndarray, np.ndarray]:
    """keras.layers.Attention's math for one query per row: context and weights.

    query (batch, hidden), values (batch, src, hidden), mask (batch, src) True at real positions;
    returns the context (batch, hidden) and the attention weights (batch, src).
    """
    scores = np.einsum("bh,bsh->bs", query, values) * scale
    scores = np.where(mask, scores, scores - np.float32(MASKED_SCORE))
    scores = scores - scores.max(axis=-1, keepdims=True)
    weights = np.exp(scores)
    weights /= weights.sum(axis=-1, keepdims=True)
    return np.einsum("bs,bsh->bh", weights, values), weights


def luong(engine, top: np.ndarray, state: dict) -> tuple[np.ndarray, np.ndarray]:
    """One Luong step of an engine with `scale`, `combine_*` and `out_*` arrays, from the top
    decoder output (batch, hidden) and a state holding the encoder's outputs and mask: the
    next-token logits (batch, vocab) and the attention weights (batch, src)."""
    context, weights = attend(top, state["encoder_outputs"], state["encoder_mask"], engine.scale)
    attentional = np.tanh(matmul(np.concatenate([context, top], axis=-1), engine.combine_kernel)
                          + engine.combine_bias)
    return matmul(attentional, engine.out_kernel) + engine.out_bias, weights


class Engine(Seq2seqEngine):
    """NumPy inference: seq2seq's encoder and decoder, plus attention at every step.

    State is a dict of arrays with batch on axis 0: "layers", the decoder's (h, c) per layer;
    "encoder_outputs" (batch, src, hidden) and "encoder_mask" (batch, src), read by every step;
    and "attention" (batch, src), the weights of the latest step (0 on padding), for heatmaps.
    """

    def __init__(self, weights: Weights, config: ModelConfig, vocab: Vocabulary):
        super().__init__(weights, config, vocab)
        (scale,) = arrays(weights, "attention", ["vars/0"])
        self.scale = float(scale)
        self.combine_kernel, self.combine_bias = arrays(weights, "attention_combine", DENSE)

    def start(self, prompts: Sequence[Sequence[int]]) -> tuple[np.ndarray, dict]:
        """Encodes the prompts, feeds <SOS>; returns first-token logits (batch, vocab) and state."""
        outputs, mask, states = self.encode(prompts)
        state = {"layers": states, "encoder_outputs": outputs, "encoder_mask": mask}
        return self.step(np.full(len(prompts), self.vocab.sos_id), state)

    def step(self, tokens: np.ndarray, state: dict) -> tuple[np.ndarray, dict]:
        """Feeds one token per row; returns next-token logits (batch, vocab) and the new state."""
        top, layers = self.decode(tokens, state["layers"])
        logits, weights = luong(self, top, state)
        return logits, {**state, "layers": layers, "attention": weights}

    def attention(self, prompt: Sequence[int], reply: Sequence[int]) -> Attention:
        """Each reply token's (and <EOS>'s) weights over the prompt, from the state."""
        return step_attention(self, prompt, reply)

# --- the TensorFlow twin, for `chatbot export` (chatbot.export.graph) -----------------------------


class GraphEngine(Seq2seqGraphEngine):
    """chatbot.models.attention.Engine: seq2seq plus Luong attention at every step; state:
    {"layers": (h, c) per layer, "encoder_outputs", "encoder_mask"}."""

    def __init__(self, engine, vocab: Vocabulary):
        super().__init__(engine, vocab)
        self.scale = tf.Variable(np.float32(engine.scale), trainable=False, name="attention")
        self.combine_kernel, self.combine_bias = ops.variables(
            [engine.combine_kernel, engine.combine_bias], "attention_combine")

    def start(self, ids):
        outputs, mask, states = self.encode(ids)
        state = {"layers": states, "encoder_outputs": outputs, "encoder_mask": mask}
        return self.step(self.sos_tokens(ids), state)

    def step(self, tokens, state):
        top, layers = self.decode(tokens, state["layers"])
        return graph_luong(self, top, state), {**state, "layers": layers}


def graph_luong(engine, top, state):
    """`luong` in TF ops: the next-token logits (the weights are not kept)."""
    values, mask = state["encoder_outputs"], state["encoder_mask"]
    scores = tf.einsum("bh,bsh->bs", top, values) * engine.scale  # attend
    scores = tf.where(mask, scores, scores - MASKED_SCORE)
    context = tf.einsum("bs,bsh->bh", ops.softmax(scores), values)
    attentional = tf.tanh(tf.matmul(tf.concat([context, top], -1), engine.combine_kernel)
                          + engine.combine_bias)
    return tf.matmul(attentional, engine.out_kernel) + engine.out_bias
