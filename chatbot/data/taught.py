"""Pairs a user taught the bot (`/teach`, `bot.teach`): a file, and a memory searched before the
known pairs.

    taught = Taught.load("models/default/taught.jsonl", memory)
    taught.add("whats ur name", "I'm chatbot.")     # appended to the file, searchable at once
    taught.search("what's ur name?")   # Match("whats ur name", 0.83, ("I'm chatbot.",))
    taught.forget("whats ur name")                   # 1: the pairs taught for it are gone

The file is chat JSONL, one two-turn conversation a line, so `chatbot train` reads it like any
data file (it folds it into the next training). Teaching appends one line with one write and an
fsync: a kill leaves at most a torn last line, which loading skips and the next append cuts
off. Forgetting rewrites the file atomically (chatbot.rundir.atomic_write).

Prompts are compared as the memory of known pairs compares them (chatbot.data.memory: character
n-grams, TF-IDF with the known pairs' IDF, cosine), through an index that grows one prompt at a
time: teaching costs microseconds, not a rebuild. A prompt taught again replaces what was taught
for it before.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from pathlib import Path

from chatbot.data.memory import Match, Memory, ngrams, normalize
from chatbot.errors import ChatbotError
from chatbot.rundir import TAUGHT, atomic_write_text  # noqa: F401 (TAUGHT: its home)

MAX_TEXT = 20_000  # characters of a taught prompt or reply


def _line(prompt: str, reply: str) -> str:
    return json.dumps({"messages": [{"role": "user", "content": prompt},
                                    {"role": "assistant", "content": reply}]},
                      ensure_ascii=False) + "\n"


def check_text(text: object, what: str) -> str:
    if not isinstance(text, str) or not text.strip():
        raise ChatbotError(f"a taught {what} must be non-empty text")
    if len(text) > MAX_TEXT:
        raise ChatbotError(f"a taught {what} of {len(text)} characters is too long; keep it "
                           f"under {MAX_TEXT}")
    if "\x00" in text:
        raise ChatbotError(f"a taught {what} cannot contain NUL characters")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: what a terminal could not decode
        raise ChatbotError(f"a taught {what} must be valid text; it holds bytes that are not "
                           "UTF-8") from None
    return text.strip()


class Taught:
    """The taught pairs of one run, in memory and (with a path) on disk."""

    def __init__(self, path: str | Path | None = None, memory: Memory | None = None):
        self.path = Path(path) if path is not None else None
        self.memory = memory  # for its IDF weights; None: every n-gram weighs the same
        self.pairs: dict[str, tuple[str, str]] = {}  # normalized prompt -> (prompt, reply)
        self._index: dict[str, dict[str, float]] = defaultdict(dict)  # gram -> {key: weight}

    @classmethod
    def load(cls, path: str | Path, memory: Memory | None = None) -> Taught:
        taught = cls(path, memory)
        if not taught.path.exists():
            return taught
        try:
            lines = taught.path.read_bytes().split(b"\n")
        except OSError as exc:
            raise ChatbotError(f"{taught.path}: not readable ({exc})") from None
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                messages = json.loads(line.decode("utf-8"))["messages"]
                prompt, reply = (check_text(messages[0]["content"], "prompt"),
                                 check_text(messages[1]["content"], "reply"))
            except (ValueError, KeyError, IndexError, TypeError, ChatbotError) as exc:
                if number == len(lines):  # a torn last line: a kill while appending
                    continue
                raise ChatbotError(
                    f"{taught.path}, line {number}: not a taught pair ({exc}); each line is "
                    '{"messages": [{"role": "user", "content": PROMPT}, {"role": "assistant", '
                    '"content": REPLY}]}; fix or delete the line') from None
            taught._put(prompt, reply)
        return taught

    def __len__(self) -> int:
        return len(self.pairs)

    def _vector(self, prompt: str) -> dict[str, float]:
        if self.memory is not None and len(self.memory):
            return self.memory.vector(ngrams(prompt))
        counts = ngrams(prompt)
        norm = sum(n * n for n in counts.values()) ** 0.5 or 1.0
        return {g: n / norm for g, n in counts.items()}

    def _put(self, prompt: str, reply: str) -> None:
        key = normalize(prompt)
        self._drop(key)
        self.pairs[key] = (prompt, reply)
        for gram, weight in self._vector(prompt).items():
            self._index[gram][key] = weight

    def _drop(self, key: str) -> bool:
        if key not in self.pairs:
            return False
        for gram in self._vector(self.pairs.pop(key)[0]):
            self._index[gram].pop(key, None)
        return True

    def add(self, prompt: str, reply: str) -> None:
        """Teaches `reply` for `prompt`: on disk first, then searchable. A new prompt is one
        appended line; a prompt taught before is replaced in a rewritten file, so that training
        (which reads the file) learns only what the bot says now."""
        prompt, reply = check_text(prompt, "prompt"), check_text(reply, "reply")
        key = normalize(prompt)
        if self.path is not None:
            try:
                if key in self.pairs:
                    kept = [pair for k, pair in self.pairs.items() if k != key]
                    atomic_write_text(self.path, "".join(_line(p, r) for p, r in
                                                         [*kept, (prompt, reply)]))
                else:
                    self._append(_line(prompt, reply))
            except OSError as exc:
                raise ChatbotError(f"{self.path}: cannot save the taught pair "
                                   f"({exc.strerror or exc}); nothing was taught") from None
        self._put(prompt, reply)

    def _append(self, line: str) -> None:
        """One line at the end of the file with one write and an fsync; a torn last line (a
        kill while appending) is cut off first."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o666)
        try:
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                os.ftruncate(fd, os.pread(fd, size, 0).rfind(b"\n") + 1)
            os.write(fd, line.encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)

    def forget(self, prompt: str) -> int:
        """Drops what was taught for `prompt` (compared as the memory normalizes it); the
        number of pairs dropped, 0 or 1."""
        key = normalize(prompt)
        if key not in self.pairs:
            return 0
        if self.path is not None:
            kept = [pair for k, pair in self.pairs.items() if k != key]
            try:
                if kept:
                    atomic_write_text(self.path, "".join(_line(p, r) for p, r in kept))
                else:  # nothing left: no file (an empty one is no training data)
                    self.path.unlink(missing_ok=True)
            except OSError as exc:
                raise ChatbotError(f"{self.path}: cannot save what is left "
                                   f"({exc.strerror or exc}); nothing was forgotten") from None
        self._drop(key)
        return 1

    def search(self, text: str, min_similarity: float = 0.0) -> Match | None:
        """The taught prompt most similar to `text`, at or above the minimum, or None."""
        if not self.pairs:
            return None
        scores: dict[str, float] = defaultdict(float)
        for gram, weight in self._vector(text).items():
            for key, w in self._index.get(gram, {}).items():
                scores[key] += weight * w
        if not scores:
            return None
        key = max(scores, key=scores.__getitem__)
        similarity = min(1.0, scores[key])
        if similarity < min_similarity:
            return None
        prompt, reply = self.pairs[key]
        return Match(prompt, similarity, (reply,))
