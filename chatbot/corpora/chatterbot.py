"""Import the ``chatterbot-corpus`` package as ``prompt<TAB>reply`` pairs or chat JSONL.

The package has one folder per language under its ``data/`` directory, each holding YAML files
whose ``conversations`` key is a list of conversations, each a list of turns. As TSV,
consecutive turns become (prompt, reply) pairs; as chat JSONL (chatbot.data.dialogue), each
conversation keeps its turns, with alternating roles user, assistant, user, ... A turn that
can't be used (null, blank, a list) cuts its conversation in two, so that no reply ever
follows a turn it did not answer: both formats hold the same consecutive turns (though JSONL
training learns only the assistant's). The corpora that users download themselves (Cornell,
DailyDialog, ...) are in chatbot.corpora.importers.

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

from chatbot.data.dialogue import Message, is_conversation_file, write_conversations
from chatbot.data.pairs import read_pairs
from chatbot.errors import ChatbotError
from chatbot.rundir import atomic_write

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

__all__ = [
    "FORMATS",
    "ImportReport",
    "as_messages",
    "chatterbot_conversations",
    "chatterbot_languages",
    "chatterbot_pairs",
    "clean_turn",
    "import_chatterbot",
    "pairs_from_yaml",
    "runs_from_yaml",
    "write_tsv",
]

FORMATS = ("tsv", "jsonl")  # what import_chatterbot writes: pairs, or conversations

_PACKAGE = "chatterbot_corpus"
_INSTALL_HINT = "pip install chatterbot-corpus (or make install)"
_WHITESPACE = re.compile(r"\s+")
# YAML scalars that safe_load can produce and that have a sensible text form.
# (bool is a subclass of int; datetime.datetime of datetime.date.)
_SCALARS = (str, int, float, datetime.date)

Pair = tuple[str, str]
Run = tuple[str, ...]  # consecutive usable turns of one conversation, 2 or more


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


def as_messages(turns: Sequence[str]) -> tuple[Message, ...]:
    """The turns of a two-party conversation as messages: user, assistant, user, ...

    The first speaker is the user, whoever it was in the source; a chatbot learns to answer
    every turn of the other speaker.
    """
    return tuple(Message("user" if i % 2 == 0 else "assistant", text)
                 for i, text in enumerate(turns))


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
    rows: int = 0  # pairs written (TSV)
    conversations: int = 0  # conversations written (chat JSONL)
    turns: int = 0  # turns in the conversations written (chat JSONL)
    duplicate_conversations: int = 0  # conversations dropped as repeats (JSONL; the first kept)
    added: int = 0  # pairs of the `add` files written after the corpus's (repeats left out)

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
        if self.duplicate_conversations:
            repeats = _plural(self.duplicate_conversations, "duplicate conversation")
            lines.append(f"dropped {repeats} (the first of each is kept)")
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
        if self.added:
            lines.append(f"added {_plural(self.added, 'pair')} of our own files")
        if self.as_text:
            lines.append(f"converted {_plural(self.as_text, 'turn')} that YAML read as numbers, "
                         "booleans or dates to text (an unquoted yes becomes True)")
        return "\n".join(lines)


def _usable_runs(turns: list[object], where: str, report: ImportReport) -> list[Run]:
    """The runs of 2 or more consecutive usable turns: the conversation cut at every unusable
    turn. Their pairs (t[0], t[1]), (t[1], t[2]), ... are the conversation's pairs with no
    unusable side."""
    if len(turns) < 2:
        report.skipped_conversations.append(
            f"{where}: {_plural(len(turns), 'turn')}, so no (prompt, reply) pair")
        return []
    cleaned = [clean_turn(turn) for turn in turns]
    for turn, text in zip(turns, cleaned):
        if text is not None:
            report.note_turn(turn, text)
    runs: list[Run] = []
    run: list[str] = []
    for text in [*cleaned, None]:  # the None ends the last run
        if text is not None:
            run.append(text)
            continue
        if len(run) >= 2:
            runs.append(tuple(run))
        run = []
    lost = len(turns) - 1 - sum(len(run) - 1 for run in runs)
    if lost:
        report.pairs_dropped += lost
        why = ", ".join(f"turn {number} is {_unusable(turn)}"
                        for number, (turn, text) in enumerate(zip(turns, cleaned), start=1)
                        if text is None)
        of = _plural(len(turns) - 1, "pair")
        report.unusable_turns.append(f"{where}: {why}; {lost} of {of} dropped")
    return runs


def _pairs(runs: Iterable[Run]) -> list[Pair]:
    return [pair for run in runs for pair in zip(run, run[1:])]


def pairs_from_yaml(
    path: str | os.PathLike[str] | Traversable, report: ImportReport | None = None
) -> list[Pair]:
    """All (prompt, reply) pairs of one chatterbot-corpus YAML file, in file order.

    Duplicates are kept; :func:`chatterbot_pairs` removes them across files. A conversation
    that is not a list (a few real files have a stray string there) is skipped. What was
    skipped or changed is added to ``report``. Raises ChatbotError naming the file if it can't
    be read, isn't valid YAML, or has no ``conversations`` list.
    """
    return _pairs(runs_from_yaml(path, report))


def runs_from_yaml(
    path: str | os.PathLike[str] | Traversable, report: ImportReport | None = None
) -> list[Run]:
    """The conversations of one chatterbot-corpus YAML file, in file order, each cut at its
    unusable turns into runs of 2 or more usable turns (see :func:`pairs_from_yaml`)."""
    report = report if report is not None else ImportReport()
    source: Path | Traversable = Path(path) if isinstance(path, (str, os.PathLike)) else path
    try:
        document = yaml.safe_load(source.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ChatbotError(f"cannot read corpus file {source}: {exc}") from exc
    if not isinstance(document, dict) or not isinstance(document.get("conversations"), list):
        raise ChatbotError(f"corpus file {source} has no 'conversations' list")
    report.files += 1
    runs: list[Run] = []
    for number, conversation in enumerate(document["conversations"], start=1):
        where = f"{source}: conversation {number}"
        if isinstance(conversation, list):
            runs.extend(_usable_runs(conversation, where, report))
        else:
            report.skipped_conversations.append(
                f"{where}: {_kind(conversation)}, not a list of turns")
    report.pairs_read += sum(len(run) - 1 for run in runs)
    return runs


def _unique(items: Iterable[tuple[str, ...]]) -> list[tuple[str, ...]]:
    """The pairs (or conversations) without repeats, keeping each one's first occurrence."""
    return list(dict.fromkeys(items))


def _language_runs(languages: Sequence[str], report: ImportReport) -> list[Run]:
    """The runs of every ``*.yml`` file of ``languages``, languages in the given order and each
    one's files in name order. Raises ChatbotError, listing the available languages, if a
    language is unknown."""
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
    runs: list[Run] = []
    for language in languages:
        files = sorted(
            (entry for entry in (data / language).iterdir() if entry.name.endswith(".yml")),
            key=lambda entry: entry.name,
        )
        for file in files:
            runs.extend(runs_from_yaml(file, report))
    return runs


def chatterbot_pairs(
    languages: Sequence[str], report: ImportReport | None = None
) -> list[Pair]:
    """Unique (prompt, reply) pairs from the given chatterbot-corpus languages.

    Languages are read in the given order and each one's ``*.yml`` files in name order; the
    first occurrence of a repeated pair is kept. What was dropped or changed is added to
    ``report``. Raises ChatbotError, listing the available languages, if a language is unknown.
    """
    report = report if report is not None else ImportReport()
    pairs = _pairs(_language_runs(languages, report))
    unique = _unique(pairs)
    report.duplicates += len(pairs) - len(unique)
    return unique


def chatterbot_conversations(
    languages: Sequence[str], report: ImportReport | None = None
) -> list[Run]:
    """Unique conversations (tuples of 2 or more turns) from the given chatterbot-corpus
    languages, read as :func:`chatterbot_pairs` reads them; a conversation is cut at each
    unusable turn, and the first occurrence of a repeated conversation is kept."""
    report = report if report is not None else ImportReport()
    runs = _language_runs(languages, report)
    unique = _unique(runs)
    report.duplicate_conversations += len(runs) - len(unique)
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


def output_format(out_path: str | os.PathLike[str], out_format: str | None = None) -> str:
    """The format to write ``out_path`` in: ``out_format``, or "jsonl" for a ``.jsonl`` or
    ``.ndjson`` path and "tsv" for any other. Training data is read by its suffix
    (chatbot.data.pairs.read_pairs), so a format that its suffix would not read back is refused."""
    inferred = "jsonl" if is_conversation_file(out_path) else "tsv"
    if out_format is None:
        return inferred
    if out_format not in FORMATS:
        raise ValueError(f"out_format must be one of {', '.join(FORMATS)}, "
                         f"received {out_format!r}")
    if out_format != inferred:
        suffix = ".jsonl" if out_format == "jsonl" else ".tsv"
        raise ChatbotError(
            f"{out_path}: --format {out_format} needs a file name ending in {suffix}, since "
            "training reads .jsonl and .ndjson files as conversations and any other file as "
            f"TSV pairs; name it {Path(out_path).with_suffix(suffix)}")
    return out_format


def import_chatterbot(
    languages: Sequence[str], out_path: str | os.PathLike[str], out_format: str | None = None,
    add: Sequence[str | os.PathLike[str]] = (),
) -> ImportReport:
    """Write the chatterbot-corpus conversations of ``languages`` to ``out_path``.

    As TSV (the default, or ``out_format="tsv"``) they are unique (prompt, reply) pairs, and
    ``rows`` counts them; as chat JSONL (``out_format="jsonl"``, or an ``out_path`` ending in
    ``.jsonl``) unique conversations, each with its turns as user, assistant, user, ..., and
    ``conversations`` and ``turns`` count them. Returns the report of what was read, dropped,
    changed and written. The pairs of the `add` files (TSV or chat JSONL, such as the project's
    own corpus/about.tsv) follow the corpus's, repeats of a pair left out.
    """
    out_format = output_format(out_path, out_format)
    report = ImportReport()
    added = [(p.prompt, p.reply) for path in add for p in read_pairs(path).pairs]
    if out_format == "tsv":
        pairs = chatterbot_pairs(languages, report)
        unique = _unique([*pairs, *added])
        report.added = len(unique) - len(pairs)
        report.rows = write_tsv(unique, out_path)
        return report
    conversations = chatterbot_conversations(languages, report)
    unique = _unique([*conversations, *added])
    report.added = len(unique) - len(conversations)
    conversations = unique
    report.conversations = write_conversations(out_path, map(as_messages, conversations))
    report.turns = sum(map(len, conversations))
    return report
