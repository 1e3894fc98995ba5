"""Encoder-decoder: an LSTM reads the prompt; its final states start the LSTM that writes the reply.

The encoder and decoder share one embedding (prompt and reply use the same vocabulary). Each
decoder layer starts from the final (h, c) of the encoder layer of the same depth. Training uses
teacher forcing: the decoder reads `<SOS> r1 .. rm` and predicts `r1 .. rm <EOS>`, so every
target position is scored and padding (0) is not. To reply, the engine reads the prompt once,
feeds <SOS>, and then one generated token per step.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from chatbot.config import ModelConfig
from chatbot.models.base import (
    DENSE,
    EMBEDDING,
    LSTM,
    OUTPUT_LAYER,
    LazyModule,
    Shapes,
    Weights,
    arrays,
    dense_shapes,
    embedding_shapes,
    lstm_shapes,
)
from chatbot.models.base import (
    Engine as EngineBase,
)
from chatbot.models.kernels import lstm_layers, lstm_step, matmul, pad_batch
from chatbot.text.vocab import Vocabulary

tf = LazyModule("tensorflow")  # GraphEngine only: `chatbot export`
ops = LazyModule("chatbot.models.graph_ops")


def encode_example(
    prompt: Sequence[int], reply: Sequence[int], vocab: Vocabulary
) -> tuple[tuple[list[int], ...], list[int]]:
    """((encoder tokens, decoder tokens), target) for one pair.

    encoder: p1 .. pn             (just <SEP> if the prompt is empty: a sequence of only
                                   padding would be fully masked, and the LSTM needs one step)
    decoder: <SOS> r1 .. rm
    target:  r1 .. rm <EOS>
    """
    return (encoder_tokens(prompt, vocab), [vocab.sos_id, *reply]), [*reply, vocab.eos_id]


def encoder_tokens(prompt: Sequence[int], vocab: Vocabulary) -> list[int]:
    """What the encoder reads for a prompt; training and inference must agree on it."""
    return list(prompt) if len(prompt) else [vocab.sep_id]


def build(config: ModelConfig):
    """The trainable Keras model: (prompt, decoder input) -> logits (batch, tgt, vocab)."""
    import keras  # imported here: chat decodes with NumPy and never needs TensorFlow

    inputs, _, decoder_outputs = encoder_decoder(config)
    # A Dense on (batch, tgt, hidden): TimeDistributed(Dense)'s computation (see models/lstm.py).
    logits = keras.layers.Dense(config.vocab_size, name=OUTPUT_LAYER)(decoder_outputs)
    return keras.Model(inputs, logits, name="seq2seq_chatbot")


def encoder_decoder(config: ModelConfig):
    """The layers seq2seq and attention share.

    Returns ((encoder_tokens, decoder_tokens), encoder outputs (batch, src, hidden) of the top
    layer, decoder outputs (batch, tgt, hidden) of the top layer); both outputs carry the
    padding masks of their token inputs.
    """
    import keras

    layers = keras.layers
    enc_tokens = keras.Input(shape=(None,), dtype="int32", name="encoder_tokens")
    dec_tokens = keras.Input(shape=(None,), dtype="int32", name="decoder_tokens")
    # One embedding for both sides; mask_zero: <PAD>=0 steps carry the LSTM state unchanged.
    embedding = layers.Embedding(config.vocab_size, config.embedding_dim, mask_zero=True,
                                 name="embedding")
    enc, dec = embedding(enc_tokens), embedding(dec_tokens)
    if config.dropout:
        enc = layers.Dropout(config.dropout, name="encoder_embedding_dropout")(enc)
        dec = layers.Dropout(config.dropout, name="decoder_embedding_dropout")(dec)
    for i in range(1, config.num_layers + 1):
        enc, h, c = layers.LSTM(config.hidden_dim, return_sequences=True, return_state=True,
                                name=f"encoder_lstm_{i}")(enc)
        dec = layers.LSTM(config.hidden_dim, return_sequences=True,
                          name=f"decoder_lstm_{i}")(dec, initial_state=[h, c])
        if config.dropout:
            if i < config.num_layers:  # the top encoder sequence feeds no layer in seq2seq
                enc = layers.Dropout(config.dropout, name=f"encoder_lstm_{i}_dropout")(enc)
            dec = layers.Dropout(config.dropout, name=f"decoder_lstm_{i}_dropout")(dec)
    return (enc_tokens, dec_tokens), enc, dec


def weight_shapes(config: ModelConfig) -> Shapes:
    """Every array model.keras holds for `config`: {(layer, path): shape}."""
    return encoder_decoder_shapes(config) | dense_shapes(OUTPUT_LAYER, config.hidden_dim,
                                                         config.vocab_size)


def encoder_decoder_shapes(config: ModelConfig) -> Shapes:
    """The arrays of `encoder_decoder`'s layers."""
    shapes = embedding_shapes("embedding", config.vocab_size, config.embedding_dim)
    inputs = config.embedding_dim
    for i in range(1, config.num_layers + 1):
        shapes |= lstm_shapes(f"encoder_lstm_{i}", inputs, config.hidden_dim)
        shapes |= lstm_shapes(f"decoder_lstm_{i}", inputs, config.hidden_dim)
        inputs = config.hidden_dim
    return shapes


class Engine(EngineBase):
    """NumPy inference from the trained weights: encode the prompts once, then one step per token.

    State is the decoder's list of (h, c) per LSTM layer, each (batch, hidden).
    """

    def __init__(self, weights: Weights, config: ModelConfig, vocab: Vocabulary):
        self.vocab = vocab
        (self.embedding,) = arrays(weights, "embedding", EMBEDDING)
        layers = range(1, config.num_layers + 1)
        self.encoder = [arrays(weights, f"encoder_lstm_{i}", LSTM) for i in layers]
        self.decoder = [arrays(weights, f"decoder_lstm_{i}", LSTM) for i in layers]
        self.out_kernel, self.out_bias = arrays(weights, OUTPUT_LAYER, DENSE)
        self.hidden = config.hidden_dim

    def start(self, prompts: Sequence[Sequence[int]]) -> tuple[np.ndarray, list]:
        """Encodes the prompts, feeds <SOS>; returns first-token logits (batch, vocab) and state."""
        _, _, states = self.encode(prompts)
        return self.step(np.full(len(prompts), self.vocab.sos_id), states)

    def encode(self, prompts: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray, list]:
        """Top-layer encoder outputs (batch, src, hidden), the mask of real (not padding)
        positions (batch, src), and each layer's final (h, c).

        Prompts are post-padded to the longest; padding steps carry the state, as Keras' mask does.
        """
        ids = pad_batch([encoder_tokens(p, self.vocab) for p in prompts])
        mask = ids != 0  # (batch, src)
        outputs, states = lstm_layers(self.embedding[ids], mask, self.encoder, self.hidden)
        return outputs, mask, states

    def decode(self, tokens: np.ndarray, states: list) -> tuple[np.ndarray, list]:
        """One decoder step: top-layer output (batch, hidden) and the new (h, c) per layer."""
        x = self.embedding[np.asarray(tokens)]
        new_states = []
        for (kernel, recurrent, bias), (h, c) in zip(self.decoder, states):
            h, c = lstm_step(matmul(x, kernel), h, c, recurrent, bias)
            new_states.append((h, c))
            x = h
        return x, new_states

    def step(self, tokens: np.ndarray, state: list) -> tuple[np.ndarray, list]:
        """Feeds one token per row; returns next-token logits (batch, vocab) and the new state."""
        top, state = self.decode(tokens, state)
        return matmul(top, self.out_kernel) + self.out_bias, state

# --- the TensorFlow twin, for `chatbot export` (chatbot.export.graph) -----------------------------


class GraphEngine:
    """chatbot.models.seq2seq.Engine: encodes the prompt, then feeds <SOS>; state: the
    decoder's (h, c) per layer."""

    def __init__(self, engine, vocab: Vocabulary):
        self.sos, self.sep, self.hidden = vocab.sos_id, vocab.sep_id, engine.hidden
        (self.embedding,) = ops.variables([engine.embedding], "embedding")
        self.encoder = [ops.variables(layer, f"encoder_lstm_{i}")
                        for i, layer in enumerate(engine.encoder, 1)]
        self.decoder = [ops.variables(layer, f"decoder_lstm_{i}")
                        for i, layer in enumerate(engine.decoder, 1)]
        self.out_kernel, self.out_bias = ops.variables([engine.out_kernel, engine.out_bias],
                                                       "output_dense")

    def encode(self, ids):
        """Top encoder outputs (batch, src, hidden), the real positions (batch, src) and the
        final (h, c) per layer. An empty prompt reads <SEP> (seq2seq.encoder_tokens); one
        column of padding is added so that a batch of empty prompts still has a step."""
        ids = ops.encoder_ids(ids, self.sep)
        mask = ids != 0
        outputs, states = ops.lstm_layers(tf.gather(self.embedding, ids), mask, self.encoder,
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
            h, c = ops.lstm_step(tf.matmul(x, kernel), h, c, recurrent, bias)
            new_states.append((h, c))
            x = h
        return x, new_states

    def step(self, tokens, state):
        top, state = self.decode(tokens, state)
        return tf.matmul(top, self.out_kernel) + self.out_bias, state
