"""One module per architecture, each keeping the contract of `chatbot.models.base`.

`ARCHS` maps the `arch` name saved in config.json to its module, so a run directory of any
architecture reloads with no extra step.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from chatbot.errors import ChatbotError

ARCHS = {
    "lstm": "chatbot.models.lstm",
    "seq2seq": "chatbot.models.seq2seq",
    "attention": "chatbot.models.attention",
    "transformer": "chatbot.models.transformer",
}


def arch_module(name: str) -> ModuleType:
    if name not in ARCHS:
        raise ChatbotError(f"unknown architecture {name!r}; choose one of: {', '.join(ARCHS)}")
    return importlib.import_module(ARCHS[name])
