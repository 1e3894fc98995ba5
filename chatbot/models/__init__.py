"""The architectures, one registry line each, every one keeping the contract of
`chatbot.models.base` (tests/test_contract.py runs it over every line of `ARCHS`).

`ARCHS` maps the `arch` name saved in config.json to where the architecture's parts are, so a
run directory of any architecture reloads with no extra step. Parts are imported when first
asked for: the chat reads the NumPy engine and never loads Keras or TensorFlow.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType

from chatbot.errors import ChatbotError


@dataclass(frozen=True)
class Arch:
    """Where one architecture's parts are: its module holds the Keras `build`, the NumPy
    `Engine` and the rest of the contract; `graph` names its TF twin (module:class) when
    that is not the module's own GraphEngine."""

    module: str
    summary: str  # one line for --help and the README
    graph: str = ""
    # The ModelConfig settings that shape it (dropout aside), as a run's log reports them.
    settings: tuple[str, ...] = ("embedding_dim", "hidden_dim", "num_layers")
    # keras.layers classes it builds with beyond those every architecture may use
    # (chatbot.models.weights refuses a model file with any other layer).
    layers: tuple[str, ...] = ()

    def graph_engine(self) -> type:
        module, name = (self.graph or f"{self.module}:GraphEngine").split(":")
        return getattr(importlib.import_module(module), name)


ARCHS = {
    "lstm": Arch("chatbot.models.lstm", "the card's Embedding -> LSTM -> Dense"),
    "seq2seq": Arch("chatbot.models.seq2seq", "an LSTM encoder-decoder"),
    "attention": Arch("chatbot.models.attention", "the encoder-decoder with Luong attention"),
    "gru": Arch("chatbot.models.gru", "a GRU encoder-decoder with Luong attention",
                layers=("GRU",)),
    "transformer": Arch("chatbot.models.transformer", "a small decoder-only Transformer",
                        graph="chatbot.models.transformer_graph:GraphEngine",
                        settings=("embedding_dim", "hidden_dim", "num_layers", "num_heads")),
}


def arch(name: str) -> Arch:
    if name not in ARCHS:
        raise ChatbotError(f"unknown architecture {name!r}; choose one of: {', '.join(ARCHS)}")
    return ARCHS[name]


def arch_module(name: str) -> ModuleType:
    """The module of architecture `name`: build, Engine, weight_shapes, encode_example, ..."""
    return importlib.import_module(arch(name).module)
