"""Import ready-made dialog corpora as ``prompt<TAB>reply`` training pairs.

The only source so far is the ``chatterbot-corpus`` package: one folder per language under its
``data/`` directory, each holding YAML files whose ``conversations`` key is a list of
conversations, each a list of turns. Consecutive turns become (prompt, reply) pairs.

This module needs only the standard library and PyYAML; it never imports TensorFlow.
"""

from __future__ import annotations

import datetime
import importlib.resources
import os
import re
import secrets
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from chatbot.errors import ChatbotError

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

__all__ = [
    "chatterbot_languages",
    "chatterbot_pairs",
    "clean_turn",
    "import_chatterbot",
    "pairs_from_yaml",
    "write_tsv",
]

_PACKAGE = "chatterbot_corpus"
_INSTALL_HINT = "pip install chatterbot-corpus (or make install)"
_WHITESPACE = re.compile(r"\s+")
# YAML scalars that safe_load can produce and that have a sensible text form.
# (bool is a subclass of int; datetime.datetime of datetime.date.)
_SCALARS = (str, int, float, datetime.date)

Pair = tuple[str, str]


def _data_dir() -> Traversable:
    """The installed chatterbot-corpus ``data/`` directory."""
    try:
        root = importlib.resources.files(_PACKAGE)
    except ModuleNotFoundError:
        raise ChatbotError(
            f"the chatterbot-corpus package is not installed; {_INSTALL_HINT}"
        ) from None
    data = root / "data"
    if not data.is_dir():
        raise ChatbotError(
            f"the installed chatterbot-corpus package has no data directory ({data}); "
            f"reinstall it: {_INSTALL_HINT}"
        )
    return data


def chatterbot_languages() -> list[str]:
    """Sorted names of the languages in the installed chatterbot-corpus package."""
    return sorted(entry.name for entry in _data_dir().iterdir() if entry.is_dir())


def clean_turn(turn: object) -> str | None:
    """One conversation turn as a single line of text, or None if it can't be used.

    Scalars (strings, numbers, booleans, dates) are converted with ``str()``; every run of
    whitespace (tabs, CR, LF, spaces, ...) becomes one space and the ends are stripped.
    None, lists, mappings and turns that end up empty give None.
    """
    if turn is None or not isinstance(turn, _SCALARS):
        return None
    text = _WHITESPACE.sub(" ", str(turn)).strip()
    return text or None


def _conversation_pairs(turns: Sequence[object]) -> list[Pair]:
    """(t[0], t[1]), (t[1], t[2]), ... skipping any pair with an unusable side."""
    cleaned = [clean_turn(turn) for turn in turns]
    return [
        (prompt, reply)
        for prompt, reply in zip(cleaned, cleaned[1:], strict=False)
        if prompt is not None and reply is not None
    ]


def pairs_from_yaml(path: str | os.PathLike[str] | Traversable) -> list[Pair]:
    """All (prompt, reply) pairs of one chatterbot-corpus YAML file, in file order.

    Duplicates are kept; :func:`chatterbot_pairs` removes them across files. A conversation
    that is not a list (a few real files have a stray string there) is skipped. Raises
    ChatbotError naming the file if it can't be read, isn't valid YAML, or has no
    ``conversations`` list.
    """
    source: Path | Traversable = Path(path) if isinstance(path, (str, os.PathLike)) else path
    try:
        document = yaml.safe_load(source.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ChatbotError(f"cannot read corpus file {source}: {exc}") from exc
    if not isinstance(document, dict) or not isinstance(document.get("conversations"), list):
        raise ChatbotError(f"corpus file {source} has no 'conversations' list")
    pairs: list[Pair] = []
    for conversation in document["conversations"]:
        if isinstance(conversation, list):
            pairs.extend(_conversation_pairs(conversation))
    return pairs


def _unique(pairs: Iterable[Pair]) -> list[Pair]:
    """The pairs without repeats, keeping each one's first occurrence."""
    return list(dict.fromkeys(pairs))


def chatterbot_pairs(languages: Sequence[str]) -> list[Pair]:
    """Unique (prompt, reply) pairs from the given chatterbot-corpus languages.

    Languages are read in the given order and each one's ``*.yml`` files in name order; the
    first occurrence of a repeated pair is kept. Raises ChatbotError, listing the available
    languages, if a language is unknown.
    """
    if isinstance(languages, str):  # a lone "english" would otherwise iterate by letter
        languages = [languages]
    if not languages:
        raise ChatbotError(
            "no chatterbot-corpus language given; available: " + ", ".join(chatterbot_languages())
        )
    data = _data_dir()
    available = chatterbot_languages()
    for language in languages:
        if language not in available:
            raise ChatbotError(
                f"unknown chatterbot-corpus language {language!r}; "
                f"available: {', '.join(available)}"
            )
    pairs: list[Pair] = []
    for language in languages:
        files = sorted(
            (entry for entry in (data / language).iterdir() if entry.name.endswith(".yml")),
            key=lambda entry: entry.name,
        )
        for file in files:
            pairs.extend(pairs_from_yaml(file))
    return _unique(pairs)


def write_tsv(pairs: Iterable[Pair], path: str | os.PathLike[str]) -> int:
    """Write ``prompt<TAB>reply`` lines (UTF-8, LF) to ``path``; return the number of rows.

    Parent directories are created. The rows go to a temporary file in the same directory
    that is then moved into place, so an interrupted run never leaves a half-written file.
    A prompt or reply containing a tab or line break would corrupt the file, so it raises
    ValueError (pairs from this module never do).
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    # Not mkstemp: its 0600 mode would carry over to the result; "x" keeps the usual umask.
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    rows = 0
    try:
        with open(tmp, "x", encoding="utf-8", newline="\n") as out:
            for prompt, reply in pairs:
                for text in (prompt, reply):
                    if any(char in text for char in "\t\r\n"):
                        raise ValueError(f"tab or line break inside a TSV field: {text!r}")
                out.write(f"{prompt}\t{reply}\n")
                rows += 1
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return rows


def import_chatterbot(languages: Sequence[str], out_path: str | os.PathLike[str]) -> int:
    """Write the chatterbot-corpus pairs of ``languages`` to ``out_path`` as TSV; return rows."""
    return write_tsv(chatterbot_pairs(languages), out_path)
