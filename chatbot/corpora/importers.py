"""Import public dialogue corpora, downloaded by the user, as chat JSONL conversations.

Nothing is downloaded here: each importer reads the files of a corpus as its authors publish
them and writes chat JSONL (chatbot.data.dialogue), one conversation a line, streaming, through an
atomic rename. Turns alternate user, assistant, user, ... whoever spoke first (corpora.as_messages),
and every run of whitespace in a turn becomes one space; the text is otherwise kept as it is.

- Cornell Movie-Dialogs (`import_cornell`): a folder holding `movie_lines.txt`

      L1045 +++$+++ u0 +++$+++ m0 +++$+++ BIANCA +++$+++ They do not!

  and `movie_conversations.txt`, whose last field lists a conversation's lines in order:

      u0 +++$+++ u2 +++$+++ m0 +++$+++ ['L194', 'L195', 'L196', 'L197']

  Both are ISO-8859-1 (latin-1) as published, and are decoded as such. The lines are held in
  memory, {line id: text}, as the conversations need them in any order; the conversations
  are read and written one at a time.
- DailyDialog (`import_dailydialog`): `dialogues_text.txt`, UTF-8, one dialogue a line, each
  turn ended by `__eou__`. Its text is tokenized ("It ' s fine .") and is kept that way.
- Turns text (`import_turns`): UTF-8, one turn a line, blank lines between conversations.

Every UTF-8 file may start with a BOM and end its lines with CRLF. Nothing stops an import: a
line that can't be read is counted and named (`FILE:LINE: reason`), a turn that can't be used
(missing, empty, unreadable) cuts its conversation there, so that no reply ever follows a turn
it did not answer, and a conversation left without 2 usable turns in a row is skipped. A
`ConversationReport` counts all of it and names the first few of each.

Pure Python; never imports TensorFlow.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from chatbot.corpora.chatterbot import as_messages, clean_turn
from chatbot.data.dialogue import SUFFIXES, Message, is_conversation_file, write_conversations
from chatbot.errors import ChatbotError

__all__ = [
    "ConversationReport",
    "check_output",
    "cornell_conversations",
    "cornell_lines",
    "dailydialog_conversations",
    "import_cornell",
    "import_dailydialog",
    "import_turns",
    "turns_conversations",
]

MAX_EXAMPLES = 5  # problems of each kind that a report names; all of them are counted

CORNELL_LINES = "movie_lines.txt"
CORNELL_CONVERSATIONS = "movie_conversations.txt"
CORNELL_SEPARATOR = "+++$+++"  # fields are separated by " +++$+++ "
CORNELL_ENCODING = "latin-1"  # as published (cornell_movie_dialogs_corpus.zip)
CORNELL_HINT = ("download the Cornell Movie-Dialogs corpus (cornell_movie_dialogs_corpus.zip), "
                f"unzip it and pass the folder that holds {CORNELL_LINES} and "
                f"{CORNELL_CONVERSATIONS}")
DAILYDIALOG_FILE = "dialogues_text.txt"
DAILYDIALOG_HINT = (f"download DailyDialog (ijcnlp_dailydialog.zip), unzip it and pass its "
                    f"{DAILYDIALOG_FILE} (or the folder that holds it)")
END_OF_TURN = "__eou__"

_LINE_ID = re.compile(r"L\d+")
_ID_LIST = re.compile(r"\[\s*(?:(['\"])L\d+\1\s*(?:,\s*(['\"])L\d+\2\s*)*)?\]")

Source = tuple[str, list[str | None]]  # ("FILE:LINE", turns): None for a turn that can't be used


@dataclass
class ConversationReport:
    """What an importer read, wrote and left out."""

    source: str  # the file or folder read
    read: int = 0  # conversations found in the source
    conversations: int = 0  # conversations written (a cut one may give several)
    turns: int = 0  # turns written
    bad_lines: int = 0  # lines that could not be read, skipped
    skipped: int = 0  # conversations without 2 usable turns in a row, not written
    cut: int = 0  # conversations cut at an unusable turn; their parts of 2+ turns are written
    # the first MAX_EXAMPLES of each kind above, as "FILE:LINE: reason"
    examples: dict[str, list[str]] = field(
        default_factory=lambda: {"bad_lines": [], "skipped": [], "cut": []})

    def note(self, kind: str, where: str, reason: str) -> None:
        """Counts one problem of `kind` ("bad_lines", "skipped" or "cut") at `where`."""
        setattr(self, kind, getattr(self, kind) + 1)
        if len(self.examples[kind]) < MAX_EXAMPLES:
            self.examples[kind].append(f"{where}: {reason}")

    def written(self) -> str:
        """What was written: "7 conversations (16 turns)"."""
        return f"{_plural(self.conversations, 'conversation')} ({_plural(self.turns, 'turn')})"

    def format(self) -> str:
        """The report as lines for a terminal; kinds of problem that did not occur are left out."""
        lines = [f"read {_plural(self.read, 'conversation')} from {self.source}"]
        headings = {
            "bad_lines": f"skipped {_plural(self.bad_lines, 'bad line')}:",
            "skipped": f"skipped {_plural(self.skipped, 'conversation')} without 2 usable "
                       "turns in a row:",
            "cut": f"cut {_plural(self.cut, 'conversation')} at unusable turns (no reply "
                   "follows a turn it did not answer):",
        }
        for kind, heading in headings.items():
            count = getattr(self, kind)
            if count:
                lines.append(heading)
                lines += [f"  {example}" for example in self.examples[kind]]
                if count > len(self.examples[kind]):
                    lines.append(f"  ... and {count - len(self.examples[kind])} more")
        return "\n".join(lines)


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


# --- the importers ----------------------------------------------------------------------------

def import_cornell(directory: str | os.PathLike[str],
                   out_path: str | os.PathLike[str]) -> ConversationReport:
    """Writes the Cornell Movie-Dialogs conversations in `directory` to `out_path` (chat JSONL)."""
    check_output(out_path)
    lines_path, conversations_path = _cornell_files(Path(directory))
    report = ConversationReport(str(directory))
    lines = cornell_lines(lines_path, report)
    sources = cornell_conversations(conversations_path, lines, report)
    _write(out_path, sources, report)
    return report


def import_dailydialog(path: str | os.PathLike[str],
                       out_path: str | os.PathLike[str]) -> ConversationReport:
    """Writes the DailyDialog dialogues of `path` (dialogues_text.txt, or its folder) to
    `out_path` (chat JSONL)."""
    check_output(out_path)
    path = Path(path)
    if path.is_dir() and (path / DAILYDIALOG_FILE).is_file():
        path = path / DAILYDIALOG_FILE
    _check_input(path, DAILYDIALOG_HINT)
    report = ConversationReport(str(path))
    _write(out_path, dailydialog_conversations(path, report), report)
    return report


def import_turns(path: str | os.PathLike[str],
                 out_path: str | os.PathLike[str]) -> ConversationReport:
    """Writes the conversations of a turns text (one turn a line, a blank line between
    conversations) to `out_path` (chat JSONL)."""
    check_output(out_path)
    path = Path(path)
    _check_input(path, "pass a UTF-8 text file with one turn a line and a blank line between "
                       "conversations")
    report = ConversationReport(str(path))
    _write(out_path, turns_conversations(path, report), report)
    return report


def check_output(path: str | os.PathLike[str]) -> Path:
    """`path`, if chat JSONL can be written there: training reads a file as conversations by
    its suffix (.jsonl, .ndjson) and any other as TSV pairs, so any other suffix is refused."""
    path = Path(path)
    if not is_conversation_file(path):
        raise ChatbotError(
            f"{path}: importers write chat JSONL, which training reads from files ending in "
            f"{' or '.join(SUFFIXES)} (any other file is read as TSV pairs); name it "
            f"{path.with_suffix('.jsonl')}")
    if path.is_dir():
        raise ChatbotError(f"{path}: is a directory; name the .jsonl file to write")
    return path


def _write(out_path: str | os.PathLike[str], sources: Iterable[Source],
           report: ConversationReport) -> None:
    """Streams the usable conversations of `sources` into `out_path`. An import that finds
    none raises ChatbotError (from _conversations, inside the write), leaving any old
    `out_path` as it was."""
    write_conversations(out_path, _conversations(sources, report))


def _conversations(sources: Iterable[Source],
                   report: ConversationReport) -> Iterator[tuple[Message, ...]]:
    """The conversations of `sources` as messages, each cut at its unusable turns into runs
    of 2 or more turns; what was cut or skipped is noted in `report`."""
    for where, turns in sources:
        report.read += 1
        runs = _runs(turns)
        kept = [(start, run) for start, run in runs if len(run) >= 2]
        unusable = [i + 1 for i, turn in enumerate(turns) if turn is None]
        if not kept:
            usable = sum(len(run) for _, run in runs)
            reason = (f"{_plural(len(turns), 'turn')}; a conversation needs 2" if not unusable
                      else f"{usable} of {len(turns)} turns usable, no 2 in a row")
            report.note("skipped", where, reason)
            continue
        if len(kept) > 1 or len(kept[0][1]) < len(turns):
            numbers = ", ".join(map(str, unusable))
            parts = ", ".join(f"{start + 1}-{start + len(run)}" for start, run in kept)
            report.note("cut", where, f"{'turns' if len(unusable) > 1 else 'turn'} {numbers} "
                                      f"of {len(turns)} empty or unreadable; kept turns {parts}")
        for _, run in kept:
            report.conversations += 1
            report.turns += len(run)
            yield as_messages(run)
    if not report.conversations:
        problems = [e for kind in ("bad_lines", "skipped") for e in report.examples[kind]]
        first = f"; the first problem: {problems[0]}" if problems else ""
        raise ChatbotError(
            f"{report.source}: no conversation with 2 usable turns in a row "
            f"({_plural(report.read, 'conversation')} read, "
            f"{_plural(report.bad_lines, 'bad line')}){first}; is it the right file?")


def _runs(turns: list[str | None]) -> list[tuple[int, list[str]]]:
    """(index of its first turn, turns) of every run of consecutive usable turns."""
    runs: list[tuple[int, list[str]]] = []
    for i, turn in enumerate(turns):
        if turn is None:
            continue
        if i > 0 and turns[i - 1] is not None:
            runs[-1][1].append(turn)
        else:
            runs.append((i, [turn]))
    return runs


# --- reading files ----------------------------------------------------------------------------

def _check_input(path: Path, hint: str) -> None:
    if not path.exists():
        raise ChatbotError(f"{path}: no such file; {hint}")
    if not path.is_file():
        raise ChatbotError(f"{path}: not a file; {hint}")


def _read_lines(path: Path, encoding: str) -> Iterator[tuple[int, str | None, str | None]]:
    """(line number, text without BOM and line end, or None with the reason it can't be
    decoded) of every line of `path`, streamed."""
    try:
        f = open(path, "rb")
    except OSError as exc:
        raise ChatbotError(f"{path}: cannot read ({exc.strerror})") from None
    with f:
        for number, raw in enumerate(f, start=1):
            raw = raw.rstrip(b"\r\n")
            try:
                yield number, raw.decode(encoding).removeprefix("\ufeff"), None
            except UnicodeDecodeError as exc:
                yield number, None, (f"not valid UTF-8 (byte 0x{raw[exc.start]:02x} at column "
                                     f"{exc.start + 1}); save the file with UTF-8 encoding")


# --- Cornell Movie-Dialogs --------------------------------------------------------------------

def _cornell_files(directory: Path) -> tuple[Path, Path]:
    """The two files of the corpus in `directory`; ChatbotError saying what to pass if not."""
    if not directory.is_dir():
        what = "no such folder" if not directory.exists() else "not a folder"
        raise ChatbotError(f"{directory}: {what}; {CORNELL_HINT}")
    files = (directory / CORNELL_LINES, directory / CORNELL_CONVERSATIONS)
    missing = [file.name for file in files if not file.is_file()]
    if missing:
        # The zip unpacks into "cornell movie-dialogs corpus/": name it if that is where they are.
        below = sorted(p.parent for p in directory.glob(f"*/{CORNELL_LINES}"))
        there = f"; they are in {below[0]}: pass that folder" if below else f"; {CORNELL_HINT}"
        raise ChatbotError(f"{directory}: no {' or '.join(missing)} here{there}")
    return files


def cornell_lines(path: Path, report: ConversationReport) -> dict[str, str]:
    """movie_lines.txt as {line id: text}, its text one line ("" if empty); bad lines and
    repeated ids (the first is kept) are noted in `report`."""
    lines: dict[str, str] = {}
    for number, text, _ in _read_lines(path, CORNELL_ENCODING):  # latin-1 decodes any byte
        if not text.strip():
            continue
        fields = text.split(CORNELL_SEPARATOR, 4)  # the text, last, may hold anything
        line_id = fields[0].strip()
        if len(fields) != 5:
            reason = (f"expected 5 fields separated by ' {CORNELL_SEPARATOR} ', found "
                      f"{len(fields)}")
        elif not _LINE_ID.fullmatch(line_id):
            reason = f"expected a line id such as L1045 first, found {line_id[:20]!r}"
        elif line_id in lines:
            reason = f"repeats the line id {line_id}; the first is kept"
        else:
            lines[line_id] = clean_turn(fields[4]) or ""
            continue
        report.note("bad_lines", f"{path}:{number}", reason)
    return lines


def cornell_conversations(path: Path, lines: dict[str, str],
                          report: ConversationReport) -> Iterator[Source]:
    """The conversations of movie_conversations.txt, streamed, with their turns looked up in
    `lines` (None for an unknown id or an empty line); bad lines are noted in `report`."""
    for number, text, _ in _read_lines(path, CORNELL_ENCODING):
        if not text.strip():
            continue
        where = f"{path}:{number}"
        fields = text.split(CORNELL_SEPARATOR)
        if len(fields) != 4:
            report.note("bad_lines", where, f"expected 4 fields separated by "
                                            f"' {CORNELL_SEPARATOR} ', found {len(fields)}")
            continue
        listed = fields[3].strip()
        if not _ID_LIST.fullmatch(listed):
            shown = listed if len(listed) <= 40 else listed[:37] + "..."
            report.note("bad_lines", where, f"expected a list of line ids such as "
                                            f"['L194', 'L195'], found {shown!r}")
            continue
        ids = _LINE_ID.findall(listed)
        unknown = [line_id for line_id in ids if line_id not in lines]
        if unknown:
            report.note("bad_lines", where, f"{'line ids' if len(unknown) > 1 else 'line id'} "
                                            f"{', '.join(unknown)} not in {CORNELL_LINES}")
        yield where, [lines.get(line_id) or None for line_id in ids]


# --- DailyDialog and turns text ---------------------------------------------------------------

def dailydialog_conversations(path: Path, report: ConversationReport) -> Iterator[Source]:
    """The dialogues of dialogues_text.txt, one a line, turns ended by __eou__; a line that
    is not UTF-8 is noted in `report`, blank lines are passed over."""
    for number, text, problem in _read_lines(path, "utf-8"):
        if problem is not None:
            report.note("bad_lines", f"{path}:{number}", problem)
            continue
        if not text.strip():
            continue
        turns = text.split(END_OF_TURN)
        if not turns[-1].strip():
            turns.pop()  # what follows the last __eou__
        yield f"{path}:{number}", [clean_turn(turn) for turn in turns]


def turns_conversations(path: Path, report: ConversationReport) -> Iterator[Source]:
    """The conversations of a turns text: one turn a line, one or more blank lines between
    conversations. A line that is not UTF-8 is noted in `report` and is an unusable turn."""
    where, turns = "", []
    for number, text, problem in _read_lines(path, "utf-8"):
        if text is not None and not text.strip():
            if turns:
                yield where, turns
            turns = []
            continue
        if problem is not None:
            report.note("bad_lines", f"{path}:{number}", problem)
        if not turns:
            where = f"{path}:{number}"
        turns.append(None if text is None else clean_turn(text))
    if turns:
        yield where, turns
