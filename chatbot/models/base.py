"""The contract between an architecture and the rest of the chatbot, written down once.

An architecture is one module, registered by one line in `chatbot.models.ARCHS`, that provides:

    encode_example(prompt_ids, reply_ids, vocab) -> (inputs, target)
        one training row: a tuple of input id lists and the target ids, 0 where nothing is
        scored (padding, and whatever the architecture does not predict);
    build(config: ModelConfig) -> keras.Model
        the trainable model; every layer is named, the layer that produces the logits is
        called OUTPUT_LAYER (the training loop computes it at scored positions only), and the
        Embedding that turns input token ids into vectors is called EMBEDDING_LAYER (the two
        are read by `token_embeddings` and `output_embeddings`, for the map of what the model
        learned about words);
    weight_shapes(config: ModelConfig) -> {(layer, path): shape}
        every array its `model.keras` must hold (see `Weights`), so that a run directory whose
        files disagree is refused with a message before any reply;
    Engine(weights, config, vocab)
        NumPy inference: a subclass of `Engine` below, with its `start`/`step` protocol;
    GraphEngine(engine, vocab)
        the Engine's TensorFlow twin, built from that engine's arrays, for `chatbot export`
        (chatbot.export.graph): the same `start`/`step` in TF ops (chatbot.models.graph_ops),
        TensorFlow loaded only when it is used (`LazyModule`);

and may provide

    encode_text(ids, vocab) -> (inputs, target)
        a decoder-only architecture's row of plain text, every token scored
        (chatbot.training.pretrain_data);

    fit_to_data(config: RunConfig)
        called when training starts, once the vocabulary is built: fills in or checks the
        model settings that follow from the data (the transformer's max_positions).

and its Engine may override the optional members of `Engine`: `max_positions` (a limit on
the sequence it reads), `attention` (where it looked, for heatmaps), `teacher_forced` (scoring
whole replies in one pass) and `states` (what it made of each token, for word vectors;
`sequence_states` computes them for a decoder-only engine).

`tests/test_contract.py` runs one suite over every registered architecture: build, save and
reload, NumPy parity with Keras, batching, `select_state`, greedy = beam of width 1, and the
refusal of mismatched weights. A new architecture passes it before anything else.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from chatbot.config import ModelConfig
from chatbot.errors import ChatbotError
from chatbot.models.kernels import pad_batch
from chatbot.text.vocab import Vocabulary

# The layer that turns hidden states into next-token logits, in every architecture: a Dense
# applied to a (batch, time, hidden) tensor, which computes what TimeDistributed(Dense) would
# (see models/lstm.py for why it is not wrapped in keras.layers.TimeDistributed).
OUTPUT_LAYER = "output_dense"
# The keras.layers.Embedding of the input tokens, in every architecture (one table that the
# encoder and the decoder share, where there are two): its vocab x embedding_dim table is what
# the model learned about each token (`token_embeddings`; chatbot.embeddings).
EMBEDDING_LAYER = "embedding"
# Names earlier versions gave a layer, read as today's name so that older runs still load.
LEGACY_LAYER_NAMES = {"time_distributed_dense": OUTPUT_LAYER}

# A model's weights, read from a `.keras` file or from a model in memory (chatbot.models.weights):
# {layer name: {path: array}}, the path being where Keras stores the array inside the layer's
# group of the weights file: "vars/0" for a layer's own first variable, "cell/vars/1" for an
# LSTM cell's recurrent kernel, "query_dense/vars/0" for a MultiHeadAttention's query kernel.
# Arrays are looked up by these paths, never by position: Keras writes a layer's sublayers in
# the order of their attribute names, which for MultiHeadAttention is key, output, query,
# value, so a positional list would swap the query and key projections.
Weights = dict[str, dict[str, np.ndarray]]
Shapes = dict[tuple[str, str], tuple[int, ...]]

# The paths of the layers our architectures use, in the order their engines want them.
EMBEDDING = ("vars/0",)  # embeddings (vocab, dim)
DENSE = ("vars/0", "vars/1")  # kernel (in, out), bias (out,)
LSTM = ("cell/vars/0", "cell/vars/1", "cell/vars/2")  # kernel (in, 4u), recurrent (u, 4u), bias

# A decoding state: a nest of dicts, lists and tuples whose arrays have the batch on axis 0
# (scalars and 0-d arrays are shared by every row).
State = Any


class Engine:
    """NumPy inference: read the prompts once, then one step per generated token.

    Samplers (chatbot.decoding.samplers) drive every engine the same way and reorder its state
    with `select_state` (beam search keeps the rows of the surviving hypotheses), so an
    engine's state must be a `State`: nothing in it may depend on the batch order except along
    axis 0. The members after `step` are optional capabilities, with the defaults of an
    engine that lacks them.
    """

    # The longest sequence the engine reads, specials included; None: no limit.
    max_positions: int | None = None

    def start(self, prompts: Sequence[Sequence[int]]) -> tuple[np.ndarray, State]:
        """Reads the prompts (token ids, no specials); returns the logits of the first reply
        token (batch, vocab) and the state."""
        raise NotImplementedError

    def step(self, tokens: np.ndarray, state: State) -> tuple[np.ndarray, State]:
        """Feeds one token per row (batch,); returns the next-token logits and the new state."""
        raise NotImplementedError

    def attention(self, prompt: Sequence[int], reply: Sequence[int]) -> Attention | None:
        """Where the model looked while it wrote `reply` for `prompt`; None: it has no
        attention to show."""
        return None

    def teacher_forced(self, prompts: Sequence[Sequence[int]], targets: Sequence[Sequence[int]],
                       never: Sequence[int] = ()) -> tuple[np.ndarray, np.ndarray] | None:
        """What `chatbot.decoding.rerank.teacher_forced_rows` computes by feeding the targets
        token by token, in one pass: per row, the summed log-probability of its targets and how
        many were the arg-max. None hands the rows back to the token-by-token walk."""
        return None

    def states(self, prompts: Sequence[Sequence[int]],
               replies: Sequence[Sequence[int]]) -> list[np.ndarray] | None:
        """Per pair, the vector the output layer reads after each token of the prompt, then of
        the reply (len(prompt) + len(reply), width): what the model made of each token in its
        place, in one space for every token (chatbot.embeddings averages a word's). A sequence
        longer than the engine reads gets vectors for the tokens it reads, the first ones.
        None: the engine has no one such space (an encoder-decoder reads the prompt with
        another network than the one that writes the reply)."""
        return None


def gives_states(engine: Engine) -> bool:
    """Whether `engine` has states (its architecture overrides the optional `Engine.states`),
    known without reading anything."""
    return type(engine).states is not Engine.states


@dataclass
class Attention:
    """Where an engine looked while it wrote a reply (`Engine.attention`)."""

    # over_sequence False: the decoder's attention over the prompt, (len(reply) + 1, kept), a
    # row per reply token and <EOS>. True: self-attention (layers, heads, time, time) over
    # `<SOS> prompt <SEP> reply`, cut at max_positions.
    weights: np.ndarray
    kept: int  # prompt tokens the engine read: the last `kept` of the prompt
    over_sequence: bool = False


def sequence_states(top: Callable[[np.ndarray], np.ndarray], vocab: Vocabulary,
                    prompts: Sequence[Sequence[int]], replies: Sequence[Sequence[int]],
                    limit: int | None = None) -> list[np.ndarray]:
    """`Engine.states` of a decoder-only engine whose `top` maps post-padded ids (batch, time)
    to the vectors its output layer reads (batch, time, width): one pass over every
    `<SOS> prompt <SEP> reply`, each cut to its first `limit` tokens (None: whole), and per
    pair the rows at its prompt's and reply's tokens that were read."""
    seqs = [[vocab.sos_id, *p, vocab.sep_id, *r][:limit] for p, r in zip(prompts, replies)]
    hidden = top(pad_batch(seqs))
    return [np.concatenate([hidden[i, 1:min(len(p) + 1, len(s))], hidden[i, len(p) + 2:len(s)]])
            for i, (p, s) in enumerate(zip(prompts, seqs))]


def step_attention(engine: Engine, prompt: Sequence[int], reply: Sequence[int]) -> Attention:
    """`Engine.attention` of an engine whose state holds the latest step's weights over the
    prompt as "attention" (batch, prompt): start, then one step per reply token."""
    _, state = engine.start([list(prompt)])
    rows = [state["attention"][0, : len(prompt)]]
    for token in reply:
        _, state = engine.step(np.array([token]), state)
        rows.append(state["attention"][0, : len(prompt)])
    return Attention(np.stack(rows), len(prompt))


class LazyModule:
    """A module imported on first use: an architecture's GraphEngine reads TensorFlow through
    one, so that the chat, which never exports, does not load TensorFlow."""

    def __init__(self, name: str):
        self._name = name

    def __getattr__(self, attr: str) -> Any:
        import importlib

        return getattr(importlib.import_module(self._name), attr)


def select_state(state: State, rows: np.ndarray) -> State:
    """The state of the given batch rows, in that order (beam search's reordering)."""
    if isinstance(state, np.ndarray):
        return state[rows] if state.ndim else state
    if isinstance(state, dict):
        return {key: select_state(value, rows) for key, value in state.items()}
    if isinstance(state, tuple) and hasattr(state, "_fields"):  # a namedtuple
        return type(state)(*(select_state(value, rows) for value in state))
    if isinstance(state, (list, tuple)):
        return type(state)(select_state(value, rows) for value in state)
    return state


def arrays(weights: Weights, layer: str, paths: Sequence[str]) -> list[np.ndarray]:
    """The arrays of `layer` at `paths`, in that order. `check_weights` has run before, so a
    missing one is a bug of the architecture (a KeyError), not a damaged file."""
    return [weights[layer][path] for path in paths]


def token_embeddings(weights: Weights) -> np.ndarray:
    """The input-token embedding table (vocab, embedding_dim) of any architecture's weights,
    row i the vector of token id i."""
    (table,) = arrays(weights, EMBEDDING_LAYER, EMBEDDING)
    return table


def output_embeddings(weights: Weights) -> np.ndarray:
    """The output-token embedding table (vocab, hidden) of any architecture's weights: row i is
    the column of OUTPUT_LAYER's kernel whose dot product with a hidden state is token i's
    logit (its bias left out), so tokens the model predicts in the same places point alike."""
    kernel, _ = arrays(weights, OUTPUT_LAYER, DENSE)  # (hidden, vocab)
    return kernel.T


# --- weight shapes -------------------------------------------------------------------------------

def embedding_shapes(name: str, vocab_size: int, dim: int) -> Shapes:
    return {(name, EMBEDDING[0]): (vocab_size, dim)}


def dense_shapes(name: str, inputs: int, units: int) -> Shapes:
    kernel, bias = DENSE
    return {(name, kernel): (inputs, units), (name, bias): (units,)}


def lstm_shapes(name: str, inputs: int, units: int) -> Shapes:
    kernel, recurrent, bias = LSTM
    return {(name, kernel): (inputs, 4 * units), (name, recurrent): (units, 4 * units),
            (name, bias): (4 * units,)}


def check_weights(config: ModelConfig, vocab: Vocabulary,
                  weights: Mapping[str, Mapping[str, np.ndarray]]) -> None:
    """Refuses weights that are not exactly those the architecture's `weight_shapes` gives for
    `config` and `vocab`: nothing missing, nothing extra, every shape equal. Past this check, an
    engine finds every array it needs, so an error there is a bug, not a damaged run."""
    from chatbot.models import arch_module

    arch = config.arch
    retrain = "the run directory mixes files from different runs; retrain the model"
    try:
        shapes = arch_module(arch).weight_shapes(dataclasses.replace(config, vocab_size=len(vocab)))
    except ChatbotError as exc:  # settings that describe no model of this architecture
        raise ChatbotError(f"config.json: {exc}; {retrain}") from None
    if config.vocab_size and config.vocab_size != len(vocab):
        raise ChatbotError(
            f"vocab.json has {len(vocab)} tokens but config.json says the model.keras it was "
            f"trained with has {config.vocab_size}: {retrain}")
    described = (f"config.json describes a {arch!r} model with {config.num_layers} layer(s), "
                 f"embedding_dim {config.embedding_dim}, hidden_dim {config.hidden_dim} and "
                 f"{len(vocab)} tokens in vocab.json")
    found = {(layer, path): tuple(array.shape)
             for layer, group in weights.items() for path, array in group.items()}
    missing = sorted(set(shapes) - set(found))
    extra = sorted(set(found) - set(shapes))
    if missing or extra:
        what = []
        if missing:
            what.append("no " + ", ".join(f"{layer}/{path}" for layer, path in missing[:3]))
        if extra:
            what.append("also " + ", ".join(f"{layer}/{path}" for layer, path in extra[:3]))
        raise ChatbotError(f"{described}, but model.keras has {'; '.join(what)}: {retrain}")
    for key, expected in shapes.items():
        if found[key] != tuple(expected):
            raise ChatbotError(
                f"{described}, so model.keras should hold {key[0]}/{key[1]} of shape "
                f"{tuple(expected)}, but it has {found[key]}: {retrain}")
