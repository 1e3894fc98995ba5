"""A GPT-style decoder-only Transformer on the same `<SOS> prompt <SEP> reply <EOS>` sequences
as `lstm`, with the loss on reply tokens only (see `chatbot.models.lstm.encode_example`).

    tokens -> embedding + position_embedding
           -> block_1 .. block_N, each (pre-LayerNorm):
                  x = x + attention(norm_1(x))      causal multi-head self-attention
                  x = x + ff_2(relu(ff_1(norm_2(x))))
           -> final_norm -> output_dense (logits)

Self-attention is the article's: for each head, Q = X·W_Q, K = X·W_K, V = X·W_V and
softmax(QKᵀ/√d_k)·V, where the causal mask lets each position look only at itself and the
positions before it, so the model can be trained on whole sequences and still generate one
token at a time. keras.layers.MultiHeadAttention does the math; its weights are read by path
(see chatbot.models.base.Weights).

Settings (ModelConfig): `num_layers` blocks, `num_heads` heads, `embedding_dim` the model width
(d_model; each head has embedding_dim / num_heads dimensions), `hidden_dim` the feed-forward
width, `dropout`, and `max_positions` the longest sequence (filled in when training starts
with what the longest training sequence needs: 2 * max_len + 2 for single turns).

The NumPy `Engine` reads the prompt once, filling a key/value cache of every layer, then costs
one position per generated token. Past `max_positions` it can only end the reply (see `step`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from chatbot.config import ModelConfig, RunConfig
from chatbot.errors import ChatbotError
from chatbot.models.base import (
    DENSE,
    EMBEDDING,
    OUTPUT_LAYER,
    Attention,
    Shapes,
    Weights,
    arrays,
    dense_shapes,
    embedding_shapes,
    sequence_states,
)
from chatbot.models.base import (
    Engine as EngineBase,
)
from chatbot.models.kernels import matmul, pad_batch, softmax, standardize, target_scores
from chatbot.models.lstm import encode_example, encode_text
from chatbot.text.context import longest_sequence
from chatbot.text.vocab import Vocabulary

__all__ = ["Engine", "build", "encode_example", "encode_text", "fit_to_data", "weight_shapes"]
# Its GraphEngine, the TF twin for `chatbot export`, is chatbot.models.transformer_graph.

EPSILON = 1e-5  # LayerNormalization's epsilon (GPT-2's; Keras' default is 1e-3)
NORM = ("vars/0", "vars/1")  # LayerNormalization: gamma, beta (width,)
# MultiHeadAttention's sublayers, each with a kernel and a bias (see base.Weights on order).
PROJECTIONS = ("query_dense", "key_dense", "value_dense", "output_dense")


def _check(config: ModelConfig) -> None:
    if config.embedding_dim % config.num_heads:
        raise ChatbotError(
            f"the transformer's width (embedding_dim {config.embedding_dim}) must be a multiple "
            f"of num_heads ({config.num_heads}): each head takes an equal share of it")
    if config.max_positions < 3:
        raise ChatbotError(f"max_positions must be at least 3 (<SOS>, <SEP> and one reply "
                           f"token), found {config.max_positions}")


def fit_to_data(config: RunConfig) -> None:
    """Fills in max_positions for the data when it is 0, or refuses one too small for the
    longest training sequence: <SOS>, the prompt (with its context: chatbot.text.context), <SEP>,
    max_len reply tokens; 2 * max_len + 2 for single turns."""
    data = config.data
    needed = longest_sequence(data.max_len, data.context_turns)
    if not config.model.max_positions:
        config.model.max_positions = needed
    elif config.model.max_positions < needed:
        raise ChatbotError(
            f"max_positions {config.model.max_positions} cannot hold a training sequence of "
            f"max_len {data.max_len} tokens a side and {data.context_turns} context turn(s) "
            f"({needed} positions); raise --max-positions or lower --max-len")


def build(config: ModelConfig):
    """The trainable Keras model: tokens (batch, time) -> next-token logits (batch, time, vocab)."""
    import keras  # imported here: chat decodes with NumPy and never needs TensorFlow

    from chatbot.models.layers import PositionEmbedding

    _check(config)
    layers = keras.layers
    width, heads = config.embedding_dim, config.num_heads
    tokens = keras.Input(shape=(None,), dtype="int32", name="tokens")
    # mask_zero: attention never looks at <PAD>, and padded positions are never scored.
    x = layers.Embedding(config.vocab_size, width, mask_zero=True, name="embedding")(tokens)
    x = PositionEmbedding(config.max_positions, width, name="position_embedding")(x)
    if config.dropout:
        x = layers.Dropout(config.dropout, name="embedding_dropout")(x)
    for i in range(1, config.num_layers + 1):
        block = f"block_{i}"
        h = layers.LayerNormalization(epsilon=EPSILON, name=f"{block}_norm_1")(x)
        h = layers.MultiHeadAttention(heads, width // heads, dropout=config.dropout,
                                      name=f"{block}_attention")(h, h, use_causal_mask=True)
        if config.dropout:
            h = layers.Dropout(config.dropout, name=f"{block}_attention_dropout")(h)
        x = layers.Add(name=f"{block}_attention_residual")([x, h])
        h = layers.LayerNormalization(epsilon=EPSILON, name=f"{block}_norm_2")(x)
        h = layers.Dense(config.hidden_dim, activation="relu", name=f"{block}_ff_1")(h)
        h = layers.Dense(width, name=f"{block}_ff_2")(h)
        if config.dropout:
            h = layers.Dropout(config.dropout, name=f"{block}_ff_dropout")(h)
        x = layers.Add(name=f"{block}_ff_residual")([x, h])
    x = layers.LayerNormalization(epsilon=EPSILON, name="final_norm")(x)
    # A Dense on (batch, time, width): TimeDistributed(Dense)'s computation (see models/lstm.py).
    logits = layers.Dense(config.vocab_size, name=OUTPUT_LAYER)(x)  # (batch, time, vocab)
    return keras.Model(tokens, logits, name="transformer_chatbot")


def weight_shapes(config: ModelConfig) -> Shapes:
    """Every array model.keras holds for `config`: {(layer, path): shape}."""
    _check(config)
    width, heads = config.embedding_dim, config.num_heads
    head = width // heads
    shapes = (embedding_shapes("embedding", config.vocab_size, width)
              | {("position_embedding", "vars/0"): (config.max_positions, width)})
    for i in range(1, config.num_layers + 1):
        block = f"block_{i}"
        for norm in ("norm_1", "norm_2"):
            shapes |= {(f"{block}_{norm}", path): (width,) for path in NORM}
        for name in PROJECTIONS[:3]:
            shapes |= {(f"{block}_attention", f"{name}/vars/0"): (width, heads, head),
                       (f"{block}_attention", f"{name}/vars/1"): (heads, head)}
        shapes |= {(f"{block}_attention", "output_dense/vars/0"): (heads, head, width),
                   (f"{block}_attention", "output_dense/vars/1"): (width,)}
        shapes |= dense_shapes(f"{block}_ff_1", width, config.hidden_dim)
        shapes |= dense_shapes(f"{block}_ff_2", config.hidden_dim, width)
    shapes |= {("final_norm", path): (width,) for path in NORM}
    return shapes | dense_shapes(OUTPUT_LAYER, width, config.vocab_size)


def fold(norm: Sequence[np.ndarray], kernel: np.ndarray, bias: np.ndarray,
         scale: np.ndarray | float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """A LayerNormalization's gain γ and offset β folded into the Dense that reads it, and an
    optional scale of that Dense's outputs: with z the standardized input,

        ((z·γ + β)·W + b)·s = z·(γ ⊙ W ⊙ s) + (β·W + b)·s

    so inference standardizes (kernels.standardize) and skips two passes over every row,
    in every norm of every step. Computed in float64 and rounded once: the result differs
    from Keras's order of operations by float32 rounding only."""
    gamma, beta = (np.asarray(a, np.float64) for a in norm)
    kernel64 = np.asarray(kernel, np.float64)
    folded = gamma[:, None] * kernel64 * scale
    shifted = (beta @ kernel64 + bias) * scale
    return folded.astype(np.float32), shifted.astype(np.float32)


class Block:
    """One block's weights, arranged for inference: the attention projections fused into one
    (width, 3 * width) matmul, norm_1 folded into it and norm_2 into ff_1 (see `fold`), and
    the queries' 1/√head, which Keras applies after their projection, folded into the query
    columns."""

    def __init__(self, weights: Weights, name: str, heads: int):
        attention = weights[f"{name}_attention"]
        q, k, v = (attention[f"{p}/vars/0"] for p in PROJECTIONS[:3])  # (width, heads, head)
        width = q.shape[0]
        self.heads, self.head = heads, q.shape[2]
        kernel = np.concatenate([w.reshape(width, -1) for w in (q, k, v)], axis=1)
        bias = np.concatenate([attention[f"{p}/vars/1"].reshape(-1) for p in PROJECTIONS[:3]])
        scale = np.ones(3 * width)
        scale[:width] = 1.0 / math.sqrt(self.head)  # the queries'
        self.qkv_kernel, self.qkv_bias = fold(arrays(weights, f"{name}_norm_1", NORM), kernel,
                                              bias, scale)
        self.out_kernel = attention["output_dense/vars/0"].reshape(-1, width)  # (width, width)
        self.out_bias = attention["output_dense/vars/1"]
        self.ff_1 = fold(arrays(weights, f"{name}_norm_2", NORM),
                         *arrays(weights, f"{name}_ff_1", DENSE))
        self.ff_2 = arrays(weights, f"{name}_ff_2", DENSE)

    def qkv(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Queries (scaled by 1/√head, as Keras scales them), keys and values of x (...,
        width), each (..., heads, head)."""
        qkv = matmul(standardize(x, EPSILON), self.qkv_kernel) + self.qkv_bias
        # (slices, not np.split: a step is small, and split's overhead shows)
        width = self.heads * self.head
        shape = (*x.shape[:-1], self.heads, self.head)
        return (qkv[..., :width].reshape(shape), qkv[..., width:2 * width].reshape(shape),
                qkv[..., 2 * width:].reshape(shape))

    def finish(self, x: np.ndarray, attended: np.ndarray) -> np.ndarray:
        """The rest of the block, given the heads' outputs (..., heads, head)."""
        x = x + matmul(attended.reshape(*x.shape), self.out_kernel) + self.out_bias
        (k1, b1), (k2, b2) = self.ff_1, self.ff_2
        h = np.maximum(matmul(standardize(x, EPSILON), k1) + b1, 0)
        return x + matmul(h, k2) + b2


class Engine(EngineBase):
    """NumPy inference with a key/value cache (nanochat's engine, keras-hub's call_with_cache).

    State is a dict with the batch on axis 0: "keys" and "values", one array per block of
    (batch, heads, max_positions, head), filled up to each row's position; and "position"
    (batch,), where each row's next token goes. `step` writes into the cache it is given, so a
    state is used once (samplers pass each state on; beam search's `select_state` copies).
    """

    def __init__(self, weights: Weights, config: ModelConfig, vocab: Vocabulary):
        _check(config)
        self.vocab = vocab
        self.max_positions = config.max_positions
        (self.embedding,) = arrays(weights, "embedding", EMBEDDING)
        (self.positions,) = arrays(weights, "position_embedding", EMBEDDING)
        self.blocks = [Block(weights, f"block_{i}", config.num_heads)
                       for i in range(1, config.num_layers + 1)]
        # final_norm folded into the output layer (see `fold`); kept for `states`
        self.final_norm = arrays(weights, "final_norm", NORM)
        self.out_kernel, self.out_bias = fold(self.final_norm,
                                              *arrays(weights, OUTPUT_LAYER, DENSE))

    def sequences(self, prompts: Sequence[Sequence[int]]) -> list[list[int]]:
        """`<SOS> prompt <SEP>` per prompt. A prompt that leaves no room for a reply token
        within max_positions keeps its last max_positions - 3 tokens (the end of a prompt is
        nearest its reply); `Bot` truncates prompts to data.max_len first, which always fits."""
        keep = self.max_positions - 3
        return [[self.vocab.sos_id, *(list(p)[-keep:] if len(p) > keep else p),
                 self.vocab.sep_id] for p in prompts]

    def start(self, prompts: Sequence[Sequence[int]]) -> tuple[np.ndarray, dict]:
        """Reads `<SOS> prompt <SEP>` of every prompt at once, filling the cache; returns the
        logits of the first reply token (batch, vocab) and the state."""
        seqs = self.sequences(prompts)
        ids = pad_batch(seqs)  # (batch, time), post-padded
        lengths = np.array([len(s) for s in seqs])
        batch, length = ids.shape
        cache = [np.zeros((batch, b.heads, self.max_positions, b.head), np.float32)
                 for b in self.blocks for _ in "kv"]
        hidden, _ = self.forward(ids, cache)
        last = hidden[np.arange(batch), lengths - 1]  # each row's <SEP>: (batch, width)
        state = {"keys": cache[0::2], "values": cache[1::2], "position": lengths}
        return self._logits(last), state

    def step(self, tokens: np.ndarray, state: dict) -> tuple[np.ndarray, dict]:
        """Feeds one token per row at its row's position; returns the next-token logits
        (batch, vocab) and the new state. A row already at max_positions has no room left:
        its logits allow only <EOS>, so the reply ends there."""
        tokens = np.asarray(tokens)
        position = state["position"]
        full = position >= self.max_positions
        at = np.minimum(position, self.max_positions - 1)
        x = self.embedding[tokens] + self.positions[at]  # (batch, width)
        span = int(at.max()) + 1
        if not full[0] and (position == position[0]).all():
            # Every row at one position, with room (a single prompt, or beam search's
            # hypotheses of one): every cached key up to it is visible, and plain slices
            # write the new ones. The same numbers as the general case, with fewer passes.
            rows, where, visible = slice(None), (slice(None), slice(None), span - 1), None
        else:
            # A full row's token is not written: its logits allow only <EOS> (below).
            rows = ~full
            where = (np.flatnonzero(rows), slice(None), at[rows])
            visible = np.arange(span)[None, None, :] <= at[:, None, None]
        for block, keys, values in zip(self.blocks, state["keys"], state["values"]):
            q, k, v = block.qkv(x)  # (batch, heads, head)
            keys[where], values[where] = k[rows], v[rows]
            # (batched matmuls, not einsum: a step is small, and einsum's overhead shows)
            scores = (q[:, :, None, :] @ keys[:, :, :span].transpose(0, 1, 3, 2))[:, :, 0]
            if visible is not None:
                scores = np.where(visible, scores, -np.inf)
            weights = softmax(scores)  # (batch, heads, span)
            x = block.finish(x, (weights[:, :, None, :] @ values[:, :, :span])[:, :, 0])
        logits = self._logits(x)
        if full.any():
            logits[full] = -np.inf
            logits[full, self.vocab.eos_id] = 0.0
        return logits, {**state, "position": position + 1}

    def forward(self, ids: np.ndarray, cache: list | None = None,
                record: bool = False) -> tuple[np.ndarray, list[np.ndarray]]:
        """The whole model over post-padded ids (batch, time) at once, as Keras computes it:
        the top hidden states (batch, time, width) before the final norm, and with `record`
        every block's attention weights (batch, heads, time, time). With `cache` (keys and
        values of every block, alternating), their keys and values are written into it."""
        batch, length = ids.shape
        if length > self.max_positions:
            raise ChatbotError(f"a sequence of {length} tokens is longer than this model's "
                               f"max_positions ({self.max_positions})")
        x = self.embedding[ids] + self.positions[:length]
        # Causal, and never a padded key: (batch, 1, time, time).
        visible = (np.tril(np.ones((length, length), bool))[None]
                   & (ids != 0)[:, None, :])[:, None]
        attentions = []
        for i, block in enumerate(self.blocks):
            q, k, v = (a.transpose(0, 2, 1, 3) for a in block.qkv(x))  # (batch, heads, time, head)
            if cache is not None:
                cache[2 * i][:, :, :length], cache[2 * i + 1][:, :, :length] = k, v
            scores = np.einsum("bhqd,bhkd->bhqk", q, k)
            # A padded query sees no key at all; it gets uniform weights (never read).
            weights = softmax(np.where(visible, scores, np.where(visible.any(-1, keepdims=True),
                                                                 -np.inf, 0.0)))
            if record:
                attentions.append(weights)
            attended = np.einsum("bhqk,bhkd->bqhd", weights, v)
            x = block.finish(x, attended)
        return x, attentions

    def attention(self, prompt: Sequence[int], reply: Sequence[int]) -> Attention:
        """Every block's and head's self-attention over `<SOS> prompt <SEP> reply`, in one
        pass; a reply that reached max_positions ended there (its last token was never read)."""
        (read,) = self.sequences([prompt])  # <SOS> prompt <SEP>, the prompt cut to fit
        ids = [*read, *reply][: self.max_positions]
        _, attentions = self.forward(np.array([ids]), record=True)
        weights = np.stack([a[0] for a in attentions])  # (layers, heads, time, time)
        return Attention(weights, kept=len(read) - 2, over_sequence=True)

    def teacher_forced(self, prompts: Sequence[Sequence[int]], targets: Sequence[Sequence[int]],
                       never: Sequence[int] = ()) -> tuple[np.ndarray, np.ndarray] | None:
        """What `chatbot.decoding.rerank.teacher_forced_rows` computes token by token, in one pass
        over every whole sequence `<SOS> prompt <SEP> target[:-1]`: per row, the summed
        log-probability of its targets and how many were the arg-max. The output layer runs at
        the target positions only. None when a sequence does not fit in max_positions: the
        token-by-token walk then scores it as generation would (only <EOS> past the end)."""
        heads = self.sequences(prompts)
        seqs = [[*h, *t[:-1]] for h, t in zip(heads, targets)]
        if max(map(len, seqs)) > self.max_positions:
            return None
        hidden, _ = self.forward(pad_batch(seqs))
        return target_scores(hidden, [len(h) - 1 for h in heads], targets, self._logits,
                             never)

    def states(self, prompts: Sequence[Sequence[int]],
               replies: Sequence[Sequence[int]]) -> list[np.ndarray]:
        """The final norm's output, which the output layer reads, at each prompt and reply
        token of `<SOS> prompt <SEP> reply` (cut at max_positions), in one pass."""
        gamma, beta = self.final_norm

        def top(ids: np.ndarray) -> np.ndarray:
            return standardize(self.forward(ids)[0], EPSILON) * gamma + beta

        return sequence_states(top, self.vocab, prompts, replies, self.max_positions)

    def logits(self, ids: np.ndarray) -> np.ndarray:
        """Next-token logits at every position of post-padded ids: (batch, time, vocab)."""
        hidden, _ = self.forward(ids)
        return self._logits(hidden)

    def _logits(self, hidden: np.ndarray) -> np.ndarray:
        return matmul(standardize(hidden, EPSILON), self.out_kernel) + self.out_bias


class UncachedEngine(Engine):
    """The same model without the cache: every step runs the whole sequence so far again.
    For tests (cached decoding must give exactly these replies) and the decoding benchmark."""

    def start(self, prompts: Sequence[Sequence[int]]) -> tuple[np.ndarray, dict]:
        seqs = self.sequences(prompts)
        return self._last(seqs), {"sequences": _packed(seqs)}

    def step(self, tokens: np.ndarray, state: dict) -> tuple[np.ndarray, dict]:
        seqs = [[*s, int(t)] for s, t in zip(state["sequences"], tokens)]
        full = np.array([len(s) > self.max_positions for s in seqs])
        logits = self._last([s[: self.max_positions] for s in seqs])
        if full.any():
            logits[full] = -np.inf
            logits[full, self.vocab.eos_id] = 0.0
        return logits, {"sequences": _packed(seqs)}

    def _last(self, seqs: list[list[int]]) -> np.ndarray:
        hidden, _ = self.forward(pad_batch(seqs))
        return self._logits(hidden[np.arange(len(seqs)), [len(s) - 1 for s in seqs]])


def _packed(seqs: list[list[int]]) -> np.ndarray:
    """Lists of different lengths as a (batch,) object array, which `select_state` reorders."""
    packed = np.empty(len(seqs), dtype=object)
    packed[:] = seqs
    return packed
