"""Import ready-made dialog corpora as ``prompt<TAB>reply`` training pairs.

The only source so far is the ``chatterbot-corpus`` package: one folder per language under its
``data/`` directory, each holding YAML files whose ``conversations`` key is a list of
conversations, each a list of turns. Consecutive turns become (prompt, reply) pairs.

Nothing is dropped or changed silently: an :class:`ImportReport` counts the duplicates removed,
names each conversation or turn that could not be used (``FILE: conversation N: reason``) and
counts the turns whose text changed on the way to a single-line TSV field.

This module needs only the standard library and PyYAML; it never imports TensorFlow.
"""

from __future__ import annotations

import datetime
import importlib.resources
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from chatbot.errors import ChatbotError
from chatbot.rundir import atomic_write

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

__all__ = [
    "ImportReport",
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


def _kind(value: object) -> str:
    """What YAML made of a value, for the report: "null", "a string ('two little ducks')"."""
    if value is None:
        return "null"
    kinds = {str: "a string", list: "a list", dict: "a mapping", bool: "a boolean",
             int: "a number", float: "a number"}
    text = _WHITESPACE.sub(" ", str(value)).strip()
    shown = text if len(text) <= 40 else text[:37] + "..."
    return f"{kinds.get(type(value), f'a {type(value).__name__}')} ({shown!r})"


def _unusable(turn: object) -> str:
    """Why clean_turn() gave None for ``turn``: "null", "blank" or "a list (...), not text"."""
    if turn is None:
        return "null"
    return "blank" if isinstance(turn, str) else f"{_kind(turn)}, not text"


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


@dataclass
class ImportReport:
    """What an import read, and every pair it dropped or turn whose text it changed."""

    files: int = 0  # YAML files read
    pairs_read: int = 0  # usable pairs found, duplicates included
    duplicates: int = 0  # pairs dropped as repeats of an earlier one (the first is kept)
    skipped_conversations: list[str] = field(default_factory=list)  # "FILE: conversation N: why"
    # "FILE: conversation N: turn K is blank; 2 of 3 pairs dropped", one per conversation
    unusable_turns: list[str] = field(default_factory=list)
    pairs_dropped: int = 0  # pairs lost because one side was an unusable turn
    joined: int = 0  # multi-line turns joined into one line
    respaced: int = 0  # single-line turns whose spaces or tabs were trimmed or collapsed
    as_text: int = 0  # turns YAML read as numbers, booleans or dates, written with str()
    rows: int = 0  # pairs written

    def note_turn(self, turn: object, text: str) -> None:
        """Counts how clean_turn() changed a usable ``turn`` into ``text``."""
        if not isinstance(turn, str):
            self.as_text += 1
        elif len(turn.strip().splitlines()) > 1:
            self.joined += 1
        elif text != turn:
            self.respaced += 1

    def format(self) -> str:
        """The report as lines for a terminal; categories with nothing to say are left out."""
        lines = [f"read {_plural(self.pairs_read, 'pair')} from {_plural(self.files, 'file')}"]
        if self.duplicates:
            lines.append(f"dropped {_plural(self.duplicates, 'duplicate pair')} "
                         "(the first of each is kept)")
        if self.skipped_conversations:
            lines.append(f"skipped {_plural(len(self.skipped_conversations), 'conversation')}:")
            lines += [f"  {where}" for where in self.skipped_conversations]
        if self.unusable_turns:
            lines.append(f"dropped {_plural(self.pairs_dropped, 'pair')} with an unusable turn:")
            lines += [f"  {where}" for where in self.unusable_turns]
        if self.joined:
            lines.append(f"joined {_plural(self.joined, 'multi-line turn')} into one line")
        if self.respaced:
            lines.append(f"trimmed or collapsed spaces in {_plural(self.respaced, 'turn')}")
        if self.as_text:
            lines.append(f"converted {_plural(self.as_text, 'turn')} that YAML read as numbers, "
                         "booleans or dates to text (an unquoted yes becomes True)")
        return "\n".join(lines)


def _conversation_pairs(turns: list[object], where: str, report: ImportReport) -> list[Pair]:
    """(t[0], t[1]), (t[1], t[2]), ... skipping any pair with an unusable side."""
    if len(turns) < 2:
        report.skipped_conversations.append(
            f"{where}: {_plural(len(turns), 'turn')}, so no (prompt, reply) pair")
        return []
    cleaned = [clean_turn(turn) for turn in turns]
    for turn, text in zip(turns, cleaned):
        if text is not None:
            report.note_turn(turn, text)
    pairs = [
        (prompt, reply)
        for prompt, reply in zip(cleaned, cleaned[1:], strict=False)
        if prompt is not None and reply is not None
    ]
    lost = len(turns) - 1 - len(pairs)
    if lost:
        report.pairs_dropped += lost
        why = ", ".join(f"turn {number} is {_unusable(turn)}"
                        for number, (turn, text) in enumerate(zip(turns, cleaned), start=1)
                        if text is None)
        of = _plural(len(turns) - 1, "pair")
        report.unusable_turns.append(f"{where}: {why}; {lost} of {of} dropped")
    return pairs


def pairs_from_yaml(
    path: str | os.PathLike[str] | Traversable, report: ImportReport | None = None
) -> list[Pair]:
    """All (prompt, reply) pairs of one chatterbot-corpus YAML file, in file order.

    Duplicates are kept; :func:`chatterbot_pairs` removes them across files. A conversation
    that is not a list (a few real files have a stray string there) is skipped. What was
    skipped or changed is added to ``report``. Raises ChatbotError naming the file if it can't
    be read, isn't valid YAML, or has no ``conversations`` list.
    """
    report = report if report is not None else ImportReport()
    source: Path | Traversable = Path(path) if isinstance(path, (str, os.PathLike)) else path
    try:
        document = yaml.safe_load(source.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ChatbotError(f"cannot read corpus file {source}: {exc}") from exc
    if not isinstance(document, dict) or not isinstance(document.get("conversations"), list):
        raise ChatbotError(f"corpus file {source} has no 'conversations' list")
    report.files += 1
    pairs: list[Pair] = []
    for number, conversation in enumerate(document["conversations"], start=1):
        where = f"{source}: conversation {number}"
        if isinstance(conversation, list):
            pairs.extend(_conversation_pairs(conversation, where, report))
        else:
            report.skipped_conversations.append(
                f"{where}: {_kind(conversation)}, not a list of turns")
    report.pairs_read += len(pairs)
    return pairs


def _unique(pairs: Iterable[Pair]) -> list[Pair]:
    """The pairs without repeats, keeping each one's first occurrence."""
    return list(dict.fromkeys(pairs))


def chatterbot_pairs(
    languages: Sequence[str], report: ImportReport | None = None
) -> list[Pair]:
    """Unique (prompt, reply) pairs from the given chatterbot-corpus languages.

    Languages are read in the given order and each one's ``*.yml`` files in name order; the
    first occurrence of a repeated pair is kept. What was dropped or changed is added to
    ``report``. Raises ChatbotError, listing the available languages, if a language is unknown.
    """
    report = report if report is not None else ImportReport()
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
            pairs.extend(pairs_from_yaml(file, report))
    unique = _unique(pairs)
    report.duplicates += len(pairs) - len(unique)
    return unique


def write_tsv(pairs: Iterable[Pair], path: str | os.PathLike[str]) -> int:
    """Write ``prompt<TAB>reply`` lines (UTF-8, LF) to ``path``; return the number of rows.

    Parent directories are created. The rows go to a temporary file in the same directory
    that is then moved into place, so an interrupted run never leaves a half-written file.
    A prompt or reply containing a tab or line break would corrupt the file, so it raises
    ValueError (pairs from this module never do).
    """
    rows = 0

    def write(tmp: Path) -> None:
        nonlocal rows
        with open(tmp, "w", encoding="utf-8", newline="\n") as out:
            for prompt, reply in pairs:
                for text in (prompt, reply):
                    if any(char in text for char in "\t\r\n"):
                        raise ValueError(f"tab or line break inside a TSV field: {text!r}")
                out.write(f"{prompt}\t{reply}\n")
                rows += 1

    atomic_write(path, write)
    return rows


def import_chatterbot(
    languages: Sequence[str], out_path: str | os.PathLike[str]
) -> ImportReport:
    """Write the chatterbot-corpus pairs of ``languages`` to ``out_path`` as TSV.

    Returns the report of what was read, dropped, changed and written (``rows``).
    """
    report = ImportReport()
    report.rows = write_tsv(chatterbot_pairs(languages, report), out_path)
    return report
