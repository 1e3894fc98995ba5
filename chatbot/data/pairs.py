"""Read and check training pairs, from a TSV of `prompt<TAB>reply` or chat JSONL
conversations (chatbot.data.dialogue); split them. (`chatbot data check` streams them instead,
chatbot.data.summary.)

Pure Python (no TensorFlow). Every problem is reported
as `FILE:LINE: what is wrong` so that the user can open the file at that line and fix it.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from chatbot.data.dialogue import exchanges, is_conversation_file, read_conversations
from chatbot.errors import ChatbotError

BAD_LINE_CHOICES = ("error", "skip")
_LINE_END = re.compile(rb"\r\n|\r|\n")


@dataclass(frozen=True)
class Pair:
    prompt: str
    reply: str
    line: int  # 1-based line number in the source file (a conversation's line)
    context: tuple[str, ...] = ()  # the conversation's turns before the prompt, oldest first

    def query(self, turns: int) -> str | tuple[str, ...]:
        """What a bot that reads `turns` turns is asked for this pair: its prompt, or (a
        conversation's) its last turns, oldest first."""
        if turns == 1 or not self.context:
            return self.prompt
        return (*self.context[-(turns - 1):], self.prompt)


@dataclass
class LoadReport:
    path: str
    pairs: list[Pair] = field(default_factory=list)
    bad_lines: list[tuple[int, str]] = field(default_factory=list)  # (line, reason)
    blank_lines: int = 0
    duplicates: int = 0  # exact repeats of an earlier (prompt, reply), dropped
    conversations: int = 0  # chat JSONL: the conversations the pairs come from


def read_pairs(path: str | Path, on_bad_lines: str = "error") -> LoadReport:
    """Reads a UTF-8 TSV of prompt<TAB>reply pairs (a third column and beyond are ignored), or
    a chat JSONL file (`.jsonl`: see chatbot.data.dialogue), whose pairs keep their context.

    A BOM, CRLF line ends and blank lines are accepted. With on_bad_lines="error" the first bad
    line raises ChatbotError naming FILE:LINE; with "skip" bad lines are counted and reported.
    """
    if on_bad_lines not in BAD_LINE_CHOICES:
        raise ChatbotError(
            f"on_bad_lines must be one of {', '.join(BAD_LINE_CHOICES)}, received {on_bad_lines!r}"
        )
    if is_conversation_file(path):
        return _read_conversation_pairs(Path(path), on_bad_lines)
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ChatbotError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ChatbotError(f"{path}: is a directory, expected a .tsv file") from None
    except OSError as exc:
        raise ChatbotError(f"{path}: cannot read ({exc.strerror})") from None
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]

    report = LoadReport(path=str(path))
    seen: set[tuple[str, str]] = set()
    # Unix (LF), Windows (CRLF) and old Mac (CR) line ends all end a line.
    lines = _LINE_END.split(raw)
    if lines and lines[-1] == b"":
        lines.pop()  # the newline that ends the last line does not start a new one
    for number, line_bytes in enumerate(lines, start=1):
        parsed = parse_tsv_line(line_bytes)
        if parsed is None:
            report.blank_lines += 1
            continue
        if isinstance(parsed, str):
            if on_bad_lines == "error":
                raise ChatbotError(
                    f"{path}:{number}: {parsed} "
                    "(fix the line, or pass --on-bad-lines skip to skip bad lines)"
                )
            report.bad_lines.append((number, parsed))
            continue
        if parsed in seen:
            report.duplicates += 1
            continue
        seen.add(parsed)
        report.pairs.append(Pair(parsed[0], parsed[1], number))
    if not report.pairs:
        raise ChatbotError(nothing_found(str(path), len(report.bad_lines), conversations=False))
    return report


def _read_conversation_pairs(path: Path, on_bad_lines: str) -> LoadReport:
    report = LoadReport(path=str(path))
    seen: set[tuple] = set()
    blank: list[int] = []
    for conversation in read_conversations(path, on_bad_lines, report.bad_lines, blank):
        report.conversations += 1
        for context, prompt, reply in exchanges(conversation.messages):
            key = (*context, prompt, reply)
            if key in seen:
                report.duplicates += 1
                continue
            seen.add(key)
            report.pairs.append(Pair(prompt, reply, conversation.line, tuple(context)))
    report.blank_lines = len(blank)
    if not report.pairs:
        raise ChatbotError(nothing_found(str(path), len(report.bad_lines), conversations=True))
    return report


def nothing_found(path: str, bad_lines: int, conversations: bool | None) -> str:
    """Why `path` (a TSV, chat JSONL with `conversations`, or several files of either kind with
    None) gave no pairs, and what a line should hold."""
    skipped = f" ({bad_lines} bad lines skipped)" if bad_lines else ""
    if conversations is None:
        return (f"{path}: no pairs found{skipped}; a TSV line should hold a prompt, a tab "
                "character, and its reply; a .jsonl line, a conversation")
    if conversations:
        return (f"{path}: no conversations found{skipped}; each line should hold "
                '{"messages": [{"role": "user", "content": ...}, {"role": "assistant", ...}]}')
    return (f"{path}: no prompt<TAB>reply pairs found{skipped}; each line should hold a prompt, "
            "a tab character, and its reply")


def parse_tsv_line(line: bytes) -> tuple[str, str] | str | None:
    """A (prompt, reply) pair, a reason the line is bad, or None for a blank line."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        return (
            f"not valid UTF-8 (byte 0x{line[exc.start]:02x} at column {exc.start + 1}); "
            "save the file with UTF-8 encoding"
        )
    text = text.removeprefix("\ufeff")  # a BOM left where two files were concatenated
    if "\x00" in text:
        return "contains a NUL byte; is this a binary or UTF-16 file? save it as UTF-8 text"
    if not text.strip():
        return None
    columns = text.split("\t")
    if len(columns) < 2:
        if text.lstrip().startswith("{"):
            return ("expected 2 tab-separated columns (prompt<TAB>reply), found a JSON object; "
                    "name a chat JSONL file *.jsonl to read it as conversations")
        return "expected 2 tab-separated columns (prompt<TAB>reply), found 1"
    prompt, reply = columns[0].strip(), columns[1].strip()
    if not prompt:
        return "the prompt (first column) is empty"
    if not reply:
        return "the reply (second column) is empty"
    return prompt, reply


def split_pairs(
    pairs: Sequence[Pair], val_fraction: float, seed: int
) -> tuple[list[Pair], list[Pair]]:
    """A deterministic (train, validation) split: the same seed gives the same split. Pairs of
    one conversation (one source line) stay on the same side: validation turns are never
    seen in training as another turn's context. A TSV line is its own conversation."""
    if not 0.0 <= val_fraction < 1.0:
        raise ChatbotError(f"val_fraction must be in [0, 1), received {val_fraction}")
    groups = list(dict.fromkeys(p.line for p in pairs))
    order = list(range(len(groups)))
    random.Random(seed).shuffle(order)
    n_val = int(len(groups) * val_fraction)
    val_lines = {groups[i] for i in order[:n_val]}
    train = [p for p in pairs if p.line not in val_lines]
    val = [p for p in pairs if p.line in val_lines]
    return train, val
