"""A GRU encoder-decoder with Luong attention: the model of the PyTorch chatbot tutorial.

As in that tutorial, one embedding serves both sides; a GRU reads the prompt; a GRU decoder
starts from the encoder's final state of the same depth; at every reply step Luong's global
attention scores the encoder's top outputs against the decoder's top output (dot score), and
the attentional state tanh(W_c [c_t; h_t] + b_c) predicts the next token. Two differences from
the tutorial: the encoder reads left to right only (the tutorial's is bidirectional, its two
directions summed), and the dot score has one learned scale, as in chatbot.models.attention.

A GRU cell has an update gate z, a reset gate r and no cell state (Keras' reset_after form):

    z = sigmoid(x W_z + b_z + h U_z + c_z)     r = sigmoid(x W_r + b_r + h U_r + c_r)
    n = tanh(x W_n + b_n + r * (h U_n + c_n))  h' = z * h + (1 - z) * n

three blocks of weights to an LSTM's four. Everything of this architecture is in this module:
the Keras model, its weight shapes, the NumPy engine and its TensorFlow twin.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from chatbot.config import ModelConfig
from chatbot.models.attention import graph_luong, luong
from chatbot.models.base import (
    DENSE,
    EMBEDDING,
    OUTPUT_LAYER,
    Attention,
    LazyModule,
    Shapes,
    Weights,
    arrays,
    dense_shapes,
    embedding_shapes,
    step_attention,
)
from chatbot.models.base import (
    Engine as EngineBase,
)
from chatbot.models.kernels import matmul, pad_batch, sigmoid
from chatbot.models.seq2seq import encode_example, encoder_tokens
from chatbot.text.vocab import Vocabulary

__all__ = ["Engine", "GraphEngine", "build", "encode_example", "weight_shapes"]

tf = LazyModule("tensorflow")  # GraphEngine only: `chatbot export`
ops = LazyModule("chatbot.models.graph_ops")

# A GRU layer's arrays: kernel (in, 3u), recurrent (u, 3u), and the input and recurrent
# biases (2, 3u) of Keras' reset_after form.
GRU = ("cell/vars/0", "cell/vars/1", "cell/vars/2")


def build(config: ModelConfig):
    """The trainable Keras model: (prompt, decoder input) -> logits (batch, tgt, vocab)."""
    import keras  # imported here: chat decodes with NumPy and never needs TensorFlow

    layers = keras.layers
    enc_tokens = keras.Input(shape=(None,), dtype="int32", name="encoder_tokens")
    dec_tokens = keras.Input(shape=(None,), dtype="int32", name="decoder_tokens")
    # One embedding for both sides; mask_zero: <PAD>=0 steps carry the GRU state unchanged.
    embedding = layers.Embedding(config.vocab_size, config.embedding_dim, mask_zero=True,
                                 name="embedding")
    enc, dec = embedding(enc_tokens), embedding(dec_tokens)
    if config.dropout:
        enc = layers.Dropout(config.dropout, name="encoder_embedding_dropout")(enc)
        dec = layers.Dropout(config.dropout, name="decoder_embedding_dropout")(dec)
    for i in range(1, config.num_layers + 1):
        enc, h = layers.GRU(config.hidden_dim, return_sequences=True, return_state=True,
                            name=f"encoder_gru_{i}")(enc)
        dec = layers.GRU(config.hidden_dim, return_sequences=True,
                         name=f"decoder_gru_{i}")(dec, initial_state=[h])
        if config.dropout:
            enc = layers.Dropout(config.dropout, name=f"encoder_gru_{i}_dropout")(enc)
            dec = layers.Dropout(config.dropout, name=f"decoder_gru_{i}_dropout")(dec)
    context = layers.Attention(use_scale=True, name="attention")([dec, enc])  # (batch, tgt, hidden)
    combined = layers.Concatenate(name="attention_concat")([context, dec])
    attentional = layers.Dense(config.hidden_dim, activation="tanh",
                               name="attention_combine")(combined)  # Luong's W_c
    if config.dropout:
        attentional = layers.Dropout(config.dropout, name="attention_dropout")(attentional)
    # A Dense on (batch, tgt, hidden): TimeDistributed(Dense)'s computation (see models/lstm.py).
    logits = layers.Dense(config.vocab_size, name=OUTPUT_LAYER)(attentional)
    return keras.Model((enc_tokens, dec_tokens), logits, name="gru_chatbot")


def weight_shapes(config: ModelConfig) -> Shapes:
    """Every array model.keras holds for `config`: {(layer, path): shape}."""
    hidden = config.hidden_dim
    shapes = embedding_shapes("embedding", config.vocab_size, config.embedding_dim)
    inputs = config.embedding_dim
    for i in range(1, config.num_layers + 1):
        for side in ("encoder", "decoder"):
            kernel, recurrent, bias = GRU
            name = f"{side}_gru_{i}"
            shapes |= {(name, kernel): (inputs, 3 * hidden),
                       (name, recurrent): (hidden, 3 * hidden), (name, bias): (2, 3 * hidden)}
        inputs = hidden
    return (shapes | {("attention", "vars/0"): ()}  # the learned scale of the scores
            | dense_shapes("attention_combine", 2 * hidden, hidden)
            | dense_shapes(OUTPUT_LAYER, hidden, config.vocab_size))


def gru_step(x_proj: np.ndarray, h: np.ndarray, recurrent: np.ndarray,
             recurrent_bias: np.ndarray) -> np.ndarray:
    """One step of a Keras GRU cell (reset_after); x_proj = x @ kernel + input bias
    (batch, 3 * units), computed for a whole prompt before the loop over time."""
    inner = matmul(h, recurrent) + recurrent_bias  # (batch, 3 * units)
    u = h.shape[-1]
    z = sigmoid(x_proj[:, :u] + inner[:, :u])
    r = sigmoid(x_proj[:, u: 2 * u] + inner[:, u: 2 * u])
    candidate = np.tanh(x_proj[:, 2 * u:] + r * inner[:, 2 * u:])
    return z * h + (1 - z) * candidate


class Engine(EngineBase):
    """NumPy inference: encode the prompts once, then one decoder step per token.

    State is a dict with batch on axis 0: "layers", the decoder's h per layer (batch, hidden);
    "encoder_outputs" (batch, src, hidden) and "encoder_mask" (batch, src), read by every step;
    and "attention" (batch, src), the weights of the latest step, for heatmaps.
    """

    def __init__(self, weights: Weights, config: ModelConfig, vocab: Vocabulary):
        self.vocab, self.hidden = vocab, config.hidden_dim
        (self.embedding,) = arrays(weights, "embedding", EMBEDDING)
        layers = range(1, config.num_layers + 1)
        self.encoder = [arrays(weights, f"encoder_gru_{i}", GRU) for i in layers]
        self.decoder = [arrays(weights, f"decoder_gru_{i}", GRU) for i in layers]
        (scale,) = arrays(weights, "attention", ["vars/0"])
        self.scale = float(scale)
        self.combine_kernel, self.combine_bias = arrays(weights, "attention_combine", DENSE)
        self.out_kernel, self.out_bias = arrays(weights, OUTPUT_LAYER, DENSE)

    def start(self, prompts: Sequence[Sequence[int]]) -> tuple[np.ndarray, dict]:
        """Encodes the prompts, feeds <SOS>; returns first-token logits (batch, vocab) and state."""
        ids = pad_batch([encoder_tokens(p, self.vocab) for p in prompts])
        mask = ids != 0  # (batch, src)
        x, finals = self.embedding[ids], []
        for kernel, recurrent, bias in self.encoder:  # padding steps carry the state, as in Keras
            projected = matmul(x, kernel) + bias[0]  # (batch, src, 3 * hidden)
            h = np.zeros((len(ids), self.hidden), np.float32)
            outputs = np.empty((*ids.shape, self.hidden), np.float32)
            for t in range(ids.shape[1]):
                h = np.where(mask[:, t, None], gru_step(projected[:, t], h, recurrent, bias[1]), h)
                outputs[:, t] = h
            finals.append(h)
            x = outputs
        state = {"layers": finals, "encoder_outputs": x, "encoder_mask": mask}
        return self.step(np.full(len(prompts), self.vocab.sos_id), state)

    def step(self, tokens: np.ndarray, state: dict) -> tuple[np.ndarray, dict]:
        """Feeds one token per row; returns next-token logits (batch, vocab) and the new state."""
        x, layers = self.embedding[np.asarray(tokens)], []
        for (kernel, recurrent, bias), h in zip(self.decoder, state["layers"]):
            x = gru_step(matmul(x, kernel) + bias[0], h, recurrent, bias[1])
            layers.append(x)
        logits, weights = luong(self, x, state)
        return logits, {**state, "layers": layers, "attention": weights}

    def attention(self, prompt: Sequence[int], reply: Sequence[int]) -> Attention:
        """Each reply token's (and <EOS>'s) weights over the prompt, from the state."""
        return step_attention(self, prompt, reply)


# --- the TensorFlow twin, for `chatbot export` (chatbot.export.graph) -----------------------------


class GraphEngine:
    """Engine in TF ops, from its arrays; the same state, "attention" aside."""

    def __init__(self, engine: Engine, vocab: Vocabulary):
        self.sos, self.sep, self.hidden = vocab.sos_id, vocab.sep_id, engine.hidden
        (self.embedding,) = ops.variables([engine.embedding], "embedding")
        self.encoder = [ops.variables(layer, f"encoder_gru_{i}")
                        for i, layer in enumerate(engine.encoder, 1)]
        self.decoder = [ops.variables(layer, f"decoder_gru_{i}")
                        for i, layer in enumerate(engine.decoder, 1)]
        self.scale = tf.Variable(np.float32(engine.scale), trainable=False, name="attention")
        self.combine_kernel, self.combine_bias = ops.variables(
            [engine.combine_kernel, engine.combine_bias], "attention_combine")
        self.out_kernel, self.out_bias = ops.variables([engine.out_kernel, engine.out_bias],
                                                       "output_dense")

    @staticmethod
    def gru_step(x_proj, h, recurrent, recurrent_bias):
        """gru_step in TF ops."""
        xz, xr, xn = tf.split(x_proj, 3, axis=-1)
        hz, hr, hn = tf.split(tf.matmul(h, recurrent) + recurrent_bias, 3, axis=-1)
        z = ops.sigmoid(xz + hz)
        candidate = tf.tanh(xn + ops.sigmoid(xr + hr) * hn)
        return z * h + (1 - z) * candidate

    def start(self, ids):
        ids = ops.encoder_ids(ids, self.sep)
        batch, mask = tf.shape(ids)[0], ids != 0
        x, keep, finals = tf.gather(self.embedding, ids), tf.transpose(mask)[..., None], []
        for kernel, recurrent, bias in self.encoder:
            projected = tf.transpose(tf.einsum("btd,dk->btk", x, kernel) + bias[0], [1, 0, 2])

            def cell(h, step, recurrent=recurrent, bias=bias):
                x_proj, kept = step
                return tf.where(kept, self.gru_step(x_proj, h, recurrent, bias[1]), h)

            hs = tf.scan(cell, (projected, keep), initializer=tf.zeros([batch, self.hidden]))
            finals.append(hs[-1])
            x = tf.transpose(hs, [1, 0, 2])  # (batch, src, hidden)
        state = {"layers": finals, "encoder_outputs": x, "encoder_mask": mask}
        return self.step(tf.fill([batch], self.sos), state)

    def step(self, tokens, state):
        x, layers = tf.gather(self.embedding, tokens), []
        for (kernel, recurrent, bias), h in zip(self.decoder, state["layers"]):
            x = self.gru_step(tf.matmul(x, kernel) + bias[0], h, recurrent, bias[1])
            layers.append(x)
        return graph_luong(self, x, state), {**state, "layers": layers}
