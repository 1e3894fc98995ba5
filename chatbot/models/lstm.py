"""The card's model: Embedding -> LSTM -> TimeDistributed(Dense), as a conditional language model.

The card's TimeDistributed(Dense) is a Dense applied to the LSTM's (batch, time, hidden) output,
named OUTPUT_LAYER: it computes the same thing (see `build`).

Each pair becomes one sequence, `<SOS> prompt <SEP> reply <EOS>`. The model predicts every next
token; only reply tokens and the final <EOS> are scored (prompt targets are 0, like padding). To
reply, the model reads `<SOS> prompt <SEP>` and then generates one token at a time until <EOS>.
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
    sequence_states,
)
from chatbot.models.base import (
    Engine as EngineBase,
)
from chatbot.models.kernels import lstm_layers, lstm_step, matmul, pad_batch, target_scores
from chatbot.text.vocab import Vocabulary

tf = LazyModule("tensorflow")  # GraphEngine only: `chatbot export`
ops = LazyModule("chatbot.models.graph_ops")


def encode_example(
    prompt: Sequence[int], reply: Sequence[int], vocab: Vocabulary
) -> tuple[tuple[list[int], ...], list[int]]:
    """(inputs, target) for one pair; the target is 0 where nothing is scored.

    tokens: <SOS> p1 .. pn <SEP> r1 .. rm
    target:  0   0 ..  0  r1   r2 .. <EOS>
    """
    tokens = [vocab.sos_id, *prompt, vocab.sep_id, *reply]
    target = [0] * (len(prompt) + 1) + [*reply, vocab.eos_id]
    return (tokens,), target


def encode_text(ids: Sequence[int], vocab: Vocabulary) -> tuple[tuple[list[int], ...], list[int]]:
    """(inputs, target) for a window of plain text (chatbot.training.pretrain_data): every token
    scored.

    tokens: <SOS> t1 .. tn
    target:  t1   t2 .. <EOS>
    """
    return ([vocab.sos_id, *ids],), [*ids, vocab.eos_id]


def build(config: ModelConfig):
    """The trainable Keras model: tokens (batch, time) -> next-token logits (batch, time, vocab)."""
    import keras  # imported here: chat decodes with NumPy and never needs TensorFlow

    layers = keras.layers
    tokens = keras.Input(shape=(None,), dtype="int32", name="tokens")
    # mask_zero: <PAD>=0 positions are skipped by the LSTM and never scored.
    x = layers.Embedding(config.vocab_size, config.embedding_dim, mask_zero=True,
                         name="embedding")(tokens)
    if config.dropout:
        x = layers.Dropout(config.dropout, name="embedding_dropout")(x)
    for i in range(1, config.num_layers + 1):
        x = layers.LSTM(config.hidden_dim, return_sequences=True, name=f"lstm_{i}")(x)
        if config.dropout:
            x = layers.Dropout(config.dropout, name=f"lstm_{i}_dropout")(x)
    # The card's TimeDistributed(Dense): a Dense layer applied to a 3-D tensor acts on every
    # time step independently, as one matmul, which is exactly what TimeDistributed computes.
    # keras.layers.TimeDistributed itself fails in graph mode (Keras 3.15) once batches have
    # different lengths, as they do with bucketing, so the Dense is used directly.
    logits = layers.Dense(config.vocab_size, name=OUTPUT_LAYER)(x)  # (batch, time, vocab)
    return keras.Model(tokens, logits, name="lstm_chatbot")


def weight_shapes(config: ModelConfig) -> Shapes:
    """Every array model.keras holds for `config`: {(layer, path): shape}."""
    shapes = embedding_shapes("embedding", config.vocab_size, config.embedding_dim)
    inputs = config.embedding_dim
    for i in range(1, config.num_layers + 1):
        shapes |= lstm_shapes(f"lstm_{i}", inputs, config.hidden_dim)
        inputs = config.hidden_dim
    return shapes | dense_shapes(OUTPUT_LAYER, config.hidden_dim, config.vocab_size)


class Engine(EngineBase):
    """NumPy inference from the trained weights: read the prompt once, then one step per token.

    State is a list of (h, c) per LSTM layer, each (batch, hidden).
    """

    def __init__(self, weights: Weights, config: ModelConfig, vocab: Vocabulary):
        self.vocab = vocab
        (self.embedding,) = arrays(weights, "embedding", EMBEDDING)
        self.lstms = [arrays(weights, f"lstm_{i}", LSTM) for i in range(1, config.num_layers + 1)]
        self.out_kernel, self.out_bias = arrays(weights, OUTPUT_LAYER, DENSE)
        self.hidden = config.hidden_dim

    def start(self, prompts: Sequence[Sequence[int]]) -> tuple[np.ndarray, list]:
        """Reads `<SOS> prompt <SEP>` for each prompt; returns first-token logits and state."""
        state = self._read(prompts)
        return self._logits(state), state

    def _read(self, prompts: Sequence[Sequence[int]]) -> list:
        ids = pad_batch([[self.vocab.sos_id, *p, self.vocab.sep_id] for p in prompts])
        return lstm_layers(self.embedding[ids], ids != 0, self.lstms, self.hidden)[1]

    def step(self, tokens: np.ndarray, state: list) -> tuple[np.ndarray, list]:
        """Feeds one token per row; returns next-token logits (batch, vocab) and the new state."""
        x = self.embedding[np.asarray(tokens)]
        new_state = []
        for (kernel, recurrent, bias), (h, c) in zip(self.lstms, state):
            h, c = lstm_step(matmul(x, kernel), h, c, recurrent, bias)
            new_state.append((h, c))
            x = h
        return self._logits(new_state), new_state

    def teacher_forced(self, prompts: Sequence[Sequence[int]], targets: Sequence[Sequence[int]],
                       never: Sequence[int] = ()) -> tuple[np.ndarray, np.ndarray]:
        """What `chatbot.decoding.rerank.teacher_forced_rows` computes token by token, with the
        output layer run once, at the target positions only (one large matmul instead of one per
        step). Each distinct prompt is read once (reranking scores many replies to one
        prompt); its rows then go on from its state over `target[:-1]` together."""
        distinct: dict[tuple[int, ...], int] = {}
        which = [distinct.setdefault(tuple(p), len(distinct)) for p in prompts]
        state = [(h[which], c[which]) for h, c in self._read(list(distinct))]  # (rows, hidden)
        first = state[-1][0][:, None]  # the <SEP> outputs, which predict target[0]
        ids = pad_batch([t[:-1] for t in targets])  # (rows, longest - 1); () if all are 1
        if ids.shape[1]:
            rest, _ = lstm_layers(self.embedding[ids], ids != 0, self.lstms, self.hidden, state)
            hidden = np.concatenate([first, rest], axis=1)  # (rows, longest, hidden)
        else:
            hidden = first
        return target_scores(hidden, [0] * len(targets), targets,
                             lambda h: matmul(h, self.out_kernel) + self.out_bias, never)

    def states(self, prompts: Sequence[Sequence[int]],
               replies: Sequence[Sequence[int]]) -> list[np.ndarray]:
        """The top LSTM layer's output at each prompt and reply token of `<SOS> prompt <SEP>
        reply`, in one pass over the batch."""
        def top(ids: np.ndarray) -> np.ndarray:
            return lstm_layers(self.embedding[ids], ids != 0, self.lstms, self.hidden)[0]

        return sequence_states(top, self.vocab, prompts, replies)

    def _logits(self, state: list) -> np.ndarray:
        return matmul(state[-1][0], self.out_kernel) + self.out_bias  # (batch, vocab)

# --- the TensorFlow twin, for `chatbot export` (chatbot.export.graph) -----------------------------


class GraphEngine:
    """chatbot.models.lstm.Engine: reads `<SOS> prompt <SEP>`; state: (h, c) per layer."""

    def __init__(self, engine, vocab: Vocabulary):
        self.sos, self.sep, self.hidden = vocab.sos_id, vocab.sep_id, engine.hidden
        (self.embedding,) = ops.variables([engine.embedding], "embedding")
        self.lstms = [ops.variables(layer, f"lstm_{i}") for i, layer in enumerate(engine.lstms, 1)]
        self.out_kernel, self.out_bias = ops.variables([engine.out_kernel, engine.out_bias],
                                                       "output_dense")

    def start(self, ids):
        batch = tf.shape(ids)[0]
        # <SOS> p1 .. pn <SEP> 0 ..: <SEP> goes at each row's own length + 1.
        seqs = tf.concat([tf.fill([batch, 1], self.sos), ids, tf.zeros([batch, 1], tf.int32)], 1)
        seqs += tf.one_hot(ops.lengths_of(ids) + 1, tf.shape(seqs)[1], dtype=tf.int32) * self.sep
        _, state = ops.lstm_layers(tf.gather(self.embedding, seqs), seqs != 0, self.lstms,
                                   self.hidden)
        return self.logits(state), state

    def step(self, tokens, state):
        x = tf.gather(self.embedding, tokens)
        new_state = []
        for (kernel, recurrent, bias), (h, c) in zip(self.lstms, state):
            h, c = ops.lstm_step(tf.matmul(x, kernel), h, c, recurrent, bias)
            new_state.append((h, c))
            x = h
        return self.logits(new_state), new_state

    def logits(self, state):
        return tf.matmul(state[-1][0], self.out_kernel) + self.out_bias  # (batch, vocab)
