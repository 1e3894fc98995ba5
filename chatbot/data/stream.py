"""Pairs streamed from any number of files, with memory that does not grow with the corpus.

    stream_pairs(paths) -> (file index, Pair) one at a time, from TSV (prompt<TAB>reply) and
                           chat JSONL (.jsonl) files, each plain or gzip-compressed (.gz)

`chatbot data check` and `chatbot data prepare` read corpora larger than memory this way. A
line is read at most MAX_LINE_BYTES at a time, so one enormous line (a file with no line ends)
costs that much memory, and is reported as a bad line rather than read whole. Every line is
parsed as chatbot.data.pairs and chatbot.data.dialogue parse it, with the same messages.

`Seen` finds exact repeats among millions of pairs in 8 bytes each; `split_of` puts a pair on
the training or the validation side by a hash of its prompt (a conversation's: of its line),
so that the split needs no pass over the whole corpus and never changes with its order.
"""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from chatbot.data.dialogue import exchanges, is_conversation_file, parse_line
from chatbot.data.pairs import BAD_LINE_CHOICES, Pair, parse_tsv_line
from chatbot.errors import ChatbotError

MAX_LINE_BYTES = 1 << 24  # 16 MiB: a longer line is a bad line, read no further
BAD_LINES_KEPT = 100  # the first bad lines are kept to show; the rest are only counted


@dataclass
class StreamReport:
    """What streaming the files met, besides the pairs: kept bounded."""

    paths: list[str]
    lines: int = 0
    blank_lines: int = 0
    bad_count: int = 0
    bad_lines: list[tuple[str, int, str]] = field(default_factory=list)  # (file, line, reason)
    conversations: int = 0  # chat JSONL files: the conversations read
    turns: dict[int, int] = field(default_factory=dict)  # non-system turns -> conversations

    def bad(self, path: str, number: int, reason: str) -> None:
        self.bad_count += 1
        if len(self.bad_lines) < BAD_LINES_KEPT:
            self.bad_lines.append((path, number, reason))


def stream_pairs(paths: Sequence[str | Path], on_bad_lines: str = "error",
                 report: StreamReport | None = None) -> Iterator[tuple[int, Pair]]:
    """(index of the file in `paths`, pair) for every pair of every file, in order. Bad lines
    raise ChatbotError naming FILE:LINE with on_bad_lines="error"; with "skip" they are counted
    in `report`. Exact repeats are not dropped here (see `Seen`)."""
    if on_bad_lines not in BAD_LINE_CHOICES:
        raise ChatbotError(f"on_bad_lines must be one of {', '.join(BAD_LINE_CHOICES)}, "
                           f"received {on_bad_lines!r}")
    report = report if report is not None else StreamReport([str(p) for p in paths])
    for path in map(Path, paths):  # a file that cannot be read fails before any pair is read
        _open(path).close()
    for index, path in enumerate(map(Path, paths)):
        conversations = is_conversation_file(str(path).removesuffix(".gz"))
        for number, raw in numbered_lines(path):
            parsed = _parse(raw, conversations)
            report.lines += 1
            if parsed is None:
                report.blank_lines += 1
                continue
            if isinstance(parsed, str):
                if on_bad_lines == "error":
                    raise ChatbotError(f"{path}:{number}: {parsed} (fix the line, or pass "
                                       "--on-bad-lines skip to skip bad lines)")
                report.bad(str(path), number, parsed)
                continue
            if not conversations:
                yield index, Pair(parsed[0], parsed[1], number)
                continue
            report.conversations += 1
            turns = sum(m.role != "system" for m in parsed)
            report.turns[turns] = report.turns.get(turns, 0) + 1
            for context, prompt, reply in exchanges(parsed):
                yield index, Pair(prompt, reply, number, tuple(context))


def _parse(raw: bytes | str, conversations: bool):
    """A pair or conversation, a reason the line is bad, or None for a blank line."""
    if isinstance(raw, str):  # the reason a line could not be read
        return raw
    if not conversations:
        return parse_tsv_line(raw)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return (f"not valid UTF-8 (byte 0x{raw[exc.start]:02x} at column {exc.start + 1}); "
                "save the file with UTF-8 encoding")
    return parse_line(text)


def numbered_lines(path: Path) -> Iterator[tuple[int, bytes | str]]:
    """(1-based line number, its bytes without the line end) of a file, plain or gzip, one
    at a time. LF, CRLF and CR all end a line, as chatbot.data.pairs reads them. A line longer
    than MAX_LINE_BYTES comes as a string: the reason it was not read."""
    number = 0
    with _open(path) as f:
        first = True
        while raw := f.readline(MAX_LINE_BYTES):
            if first and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            first = False
            if not raw.endswith(b"\n") and len(raw) == MAX_LINE_BYTES:
                number += 1
                yield number, (f"longer than {MAX_LINE_BYTES >> 20} MiB with no line end; is "
                               "this a text file of one pair or conversation per line?")
                while (rest := f.readline(MAX_LINE_BYTES)) and not rest.endswith(b"\n"):
                    pass  # the rest of the line, skipped a piece at a time
                continue
            raw = raw.removesuffix(b"\n").removesuffix(b"\r")
            for part in raw.split(b"\r"):  # old Mac line ends inside
                number += 1
                yield number, part


def _open(path: Path):
    try:
        if path.suffix == ".gz":
            f = gzip.open(path, "rb")
            f.peek(1)  # a file that is not gzip fails here, not in the middle of the stream
            return f
        return open(path, "rb")
    except FileNotFoundError:
        raise ChatbotError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ChatbotError(f"{path}: is a directory, expected a .tsv or .jsonl file") from None
    except gzip.BadGzipFile:
        raise ChatbotError(f"{path}: not a gzip file; name it without .gz if it is plain "
                           "text") from None
    except OSError as exc:
        raise ChatbotError(f"{path}: cannot read ({exc.strerror or exc})") from None


def digest(*parts: str) -> int:
    """A 64-bit hash of the texts, the same in every process and on every machine."""
    data = ("\x00".join(parts) + "\x00").encode("utf-8", "surrogatepass")  # each part, then 0
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little")


def pair_key(pair: Pair) -> int:
    """What makes two pairs the same pair: their context, prompt and reply."""
    return digest(*pair.context, pair.prompt, pair.reply)


def split_of(pair: Pair, val_fraction: float, seed: int, file: int = 0) -> str:
    """"train" or "validation", by a hash of the pair's prompt (of a conversation's file and
    line, so that its pairs stay on one side): the same pair always falls on the same side."""
    if not 0.0 <= val_fraction < 1.0:
        raise ChatbotError(f"val_fraction must be in [0, 1), received {val_fraction}")
    what = f"{file}:{pair.line}" if pair.context or pair.line < 0 else pair.prompt
    share = digest(str(seed), what) / 2.0 ** 64
    return "validation" if share < val_fraction else "train"


class Seen:
    """A set of 64-bit keys in 8 bytes each: a sorted NumPy array, and the keys added since it
    was last merged (a Python set, merged once it holds `pending` keys)."""

    def __init__(self, pending: int = 1 << 18):
        self.sorted = np.zeros(0, dtype=np.uint64)
        self.recent: set[int] = set()
        self.pending = pending

    def add(self, key: int) -> bool:
        """Adds `key`; whether it was there already."""
        if key in self.recent:
            return True
        at = int(np.searchsorted(self.sorted, np.uint64(key)))
        if at < len(self.sorted) and int(self.sorted[at]) == key:
            return True
        self.recent.add(key)
        if len(self.recent) >= self.pending:
            self._merge()
        return False

    def add_many(self, keys: Sequence[int]) -> list[bool]:
        """Adds `keys` in order; for each, whether it was there already (or came earlier in
        `keys`). The same as add() for each, in one NumPy search instead of one per key."""
        if not keys:
            return []
        array = np.fromiter(keys, dtype=np.uint64, count=len(keys))
        at = np.searchsorted(self.sorted, array)
        inside = at < len(self.sorted)
        found = np.zeros(len(array), dtype=bool)
        found[inside] = self.sorted[at[inside]] == array[inside]
        out = found.tolist()
        recent = self.recent
        for i, key in enumerate(keys):
            if not out[i]:
                out[i] = key in recent
                recent.add(key)
        if len(recent) >= self.pending:
            self._merge()
        return out

    def _merge(self) -> None:
        recent = np.sort(np.fromiter(self.recent, dtype=np.uint64, count=len(self.recent)))
        merged = np.concatenate([self.sorted, recent])
        merged.sort(kind="stable")  # two sorted runs: timsort merges them in linear time
        self.sorted, self.recent = merged, set()

    def __len__(self) -> int:
        return len(self.sorted) + len(self.recent)
