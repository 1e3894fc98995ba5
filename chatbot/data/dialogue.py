"""Conversations in the chat JSONL format: read and checked, written, and turned into pairs.

One conversation per line, as chat models are fine-tuned on:

    {"messages": [{"role": "user", "content": "I have a dog."},
                  {"role": "assistant", "content": "What is its name?"}, ...]}

Roles are "system", "user" and "assistant". Every assistant turn that follows another turn is a
training pair: the turn before it is the prompt, the turns before that its context (oldest
first), and `--context-turns N` decides how many of them the model reads (chatbot.training.batches).
System turns are kept in the file and skipped by the model: a small chatbot learns no
instructions. A TSV of pairs is a set of one-turn conversations.

Pure Python (no TensorFlow). Every problem is reported as `FILE:LINE: what is wrong`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from chatbot.errors import ChatbotError
from chatbot.rundir import atomic_write

ROLES = ("system", "user", "assistant")
SUFFIXES = (".jsonl", ".ndjson")  # files read as conversations; anything else is a TSV
_JSON_KINDS = {str: "a string", int: "a number", float: "a number", bool: "true or false",
               type(None): "null"}  # what json.loads gives besides objects and lists


@dataclass(frozen=True)
class Message:
    role: str  # one of ROLES
    content: str


@dataclass(frozen=True)
class Conversation:
    messages: tuple[Message, ...]
    line: int  # 1-based line in the source file


def is_conversation_file(path: str | Path) -> bool:
    return Path(path).suffix.lower() in SUFFIXES


def parse_messages(value: object) -> tuple[Message, ...] | str:
    """Messages from a decoded JSON value ({"messages": [...]}, or the list itself), or the
    reason they cannot be used."""
    if not isinstance(value, (dict, list)):
        return f'expected an object with a "messages" list, found {_JSON_KINDS[type(value)]}'
    messages = value.get("messages") if isinstance(value, dict) else value
    if isinstance(value, dict) and "messages" not in value:
        return 'expected an object with a "messages" list'
    if not isinstance(messages, list):
        return '"messages" must be a list of {"role": ..., "content": ...} objects'
    if not messages:
        return '"messages" is empty'
    out = []
    for i, m in enumerate(messages, start=1):
        if not isinstance(m, dict):
            return f"message {i} is not an object with a role and a content"
        role, content = m.get("role"), m.get("content")
        if role not in ROLES:
            return (f"message {i} has the role {role!r}; roles are "
                    f"{', '.join(map(repr, ROLES))}")
        if not isinstance(content, str):
            return f"message {i} ({role}) has no text content"
        content = " ".join(content.split())  # one line, as a TSV field is
        if not content:
            return f"message {i} ({role}) has empty content"
        try:  # JSON can escape what UTF-8 cannot hold; every file we write is UTF-8
            content.encode("utf-8")
        except UnicodeEncodeError as exc:
            code = ord(content[exc.start])
            return f"message {i} ({role}) holds a lone surrogate (\\u{code:04x}), not a character"
        out.append(Message(role, content))
    return tuple(out)


def parse_line(text: str) -> tuple[Message, ...] | str | None:
    """A conversation, a reason the line is bad, or None for a blank line."""
    text = text.removeprefix("\ufeff")
    if not text.strip():
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        return f"bad JSON ({exc.msg} at column {exc.colno})"
    except ValueError:  # an integer of more digits than Python converts (4300)
        return "bad JSON (a number too long to read)"
    except RecursionError:
        return "bad JSON (nested too deeply)"
    messages = parse_messages(value)
    if isinstance(messages, str):
        return messages
    turns = [m for m in messages if m.role != "system"]  # as `exchanges` sees them
    if not any(m.role == "assistant" for m in turns[1:]):
        return "a conversation with no assistant turn after another turn: nothing to learn"
    return messages


def iter_lines(path: Path) -> Iterator[tuple[int, str | None, str | None]]:
    """(line number, text, or None with the reason it is not UTF-8) of a file, streamed."""
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        raise ChatbotError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ChatbotError(f"{path}: is a directory, expected a .jsonl file") from None
    except OSError as exc:
        raise ChatbotError(f"{path}: cannot read ({exc.strerror})") from None
    with f:
        for number, raw in enumerate(f, start=1):
            raw = raw.rstrip(b"\r\n")
            try:
                yield number, raw.decode("utf-8"), None
            except UnicodeDecodeError as exc:
                yield number, None, (f"not valid UTF-8 (byte 0x{raw[exc.start]:02x} at column "
                                     f"{exc.start + 1}); save the file with UTF-8 encoding")


def read_conversations(path: str | Path, on_bad_lines: str = "error",
                       bad_lines: list | None = None,
                       blank_lines: list | None = None) -> Iterator[Conversation]:
    """The conversations of a chat JSONL file, streamed. With on_bad_lines="error" the first
    bad line raises ChatbotError naming FILE:LINE; with "skip" each is appended to `bad_lines`
    as (line, reason). The numbers of blank lines are appended to `blank_lines`."""
    path = Path(path)
    for number, text, problem in iter_lines(path):
        parsed = parse_line(text) if problem is None else problem
        if parsed is None:
            if blank_lines is not None:
                blank_lines.append(number)
            continue
        if isinstance(parsed, str):
            if on_bad_lines == "error":
                raise ChatbotError(f"{path}:{number}: {parsed} (fix the line, or pass "
                                   "--on-bad-lines skip to skip bad lines)")
            if bad_lines is not None:
                bad_lines.append((number, parsed))
            continue
        yield Conversation(parsed, number)


def exchanges(messages: Sequence[Message]) -> Iterator[tuple[list[str], str, str]]:
    """(context, prompt, reply) for every assistant turn that follows another turn, system
    turns left out: the prompt is the turn before the reply, the context all turns before
    the prompt, oldest first."""
    turns = [m for m in messages if m.role != "system"]
    for i in range(1, len(turns)):
        if turns[i].role == "assistant":
            yield [t.content for t in turns[: i - 1]], turns[i - 1].content, turns[i].content


def to_json_line(messages: Iterable[Message | tuple[str, str]]) -> str:
    """One conversation as a line of chat JSONL (without the newline)."""
    pairs = ((m.role, m.content) if isinstance(m, Message) else m for m in messages)
    return json.dumps({"messages": [{"role": r, "content": c} for r, c in pairs]},
                      ensure_ascii=False)


def write_conversations(path: str | Path,
                        conversations: Iterable[Iterable[Message | tuple[str, str]]]) -> int:
    """Writes conversations (each messages, or (role, content) pairs) as chat JSONL, one line
    each, streaming, through an atomic rename: a crash leaves the old file or the new one.
    Returns how many were written."""
    count = 0

    def write(tmp: Path) -> None:
        nonlocal count
        with open(tmp, "w", encoding="utf-8", newline="\n") as f:
            for messages in conversations:
                f.write(to_json_line(messages) + "\n")
                count += 1

    atomic_write(path, write)
    return count
