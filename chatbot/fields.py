"""A setting's one declaration: a dataclass field that carries its help, its range or its
choices, and whether `chatbot train` offers it as a flag.

    epochs: int = setting(30, "maximum epochs", low=1, flag=True)

chatbot.config checks config.json against these (`check_field`) and chatbot.cli makes
`chatbot train`'s flags from them; chatbot.decoding.settings builds the table of decoding
settings from the same metadata (there, `name` is what `/set`, the API and the flags call it,
and `order` is when a change applies). Standard library only.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import field
from typing import Any


def setting(default: Any, help: str, *, flag: bool = False, low: float | None = None,
            high: float | None = None, low_open: bool = False, high_open: bool = False,
            choices: tuple = (), name: str | None = None, order: int = 1,
            openai: tuple[str, ...] = ()) -> Any:
    """A dataclass field with its entry in the settings tables: `help` for users, the range
    [low, high] (`low_open`, `high_open`: that end excluded), the `choices` of a word,
    `flag`: `chatbot train --field-name VALUE` sets it, and `openai`: the OpenAI request
    fields that set it too (a decoding setting)."""
    extra = ({"default_factory": lambda: list(default)} if isinstance(default, list)
             else {"default": default})
    return field(**extra, metadata=dict(
        help=help, flag=flag, low=low, high=high, low_open=low_open, high_open=high_open,
        choices=choices, name=name, order=order, openai=openai))


# The Python type of each annotation a setting may have (list[str] aside).
TYPES = {"int": int, "float": float, "bool": bool, "str": str}


def kind_of(annotation: str) -> tuple[str, bool]:
    """The base type name of an annotation ("int", "float", "bool", "str", "list[str]") and
    whether None is allowed."""
    optional = annotation.endswith("| None")
    return annotation.removesuffix("| None").strip(), optional


_CHECKS = {"int": lambda v: isinstance(v, int) and not isinstance(v, bool),
           "bool": lambda v: isinstance(v, bool), "str": lambda v: isinstance(v, str),
           "list[str]": lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v)}
_CHECKS["float"] = lambda v: _CHECKS["int"](v) or (isinstance(v, float) and math.isfinite(v))
_EXPECTED = {"int": "a whole number", "float": "a number", "bool": "true or false",
             "str": "a string", "list[str]": "a list of strings"}


def expected(f: dataclasses.Field) -> str:
    """What a valid value of field `f` looks like, for error messages."""
    kind, _ = kind_of(f.type)
    meta = f.metadata
    low, high = meta.get("low"), meta.get("high")
    what = _EXPECTED[kind]
    if low is not None and high is not None:
        ends = [f"{low:g}" + (" excluded" if meta["low_open"] else ""),
                f"{high:g}" + (" excluded" if meta["high_open"] else "")]
        what += f" from {ends[0]} to {ends[1]}"
    elif low is not None:
        what += f" above {low:g}" if meta["low_open"] else f" of at least {low:g}"
    return what


def valid(f: dataclasses.Field, value: Any) -> bool:
    """Whether `value` is of field `f`'s type and within its range and choices."""
    kind, optional = kind_of(f.type)
    if optional and value is None:
        return True
    if not _CHECKS[kind](value):
        return False
    meta = f.metadata
    low, high = meta.get("low"), meta.get("high")
    if low is not None and not (value > low if meta["low_open"] else value >= low):
        return False
    if high is not None and not (value < high if meta["high_open"] else value <= high):
        return False
    return not meta.get("choices") or value in meta["choices"]
