"""Vocabulary: token <-> index, with <PAD>=0, <SOS>, <EOS>, <UNK>, <SEP>; saved as JSON.

A context model's vocabulary (`--context-turns` above 1) also holds <TURN>, right after the
specials: it separates the turns of a conversation in what the model reads (chatbot.text.context).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

from chatbot.errors import ChatbotError
from chatbot.rundir import atomic_write_text, read_json

PAD, SOS, EOS, UNK, SEP = "<PAD>", "<SOS>", "<EOS>", "<UNK>", "<SEP>"
SPECIALS = (PAD, SOS, EOS, UNK, SEP)  # PAD must stay 0: Embedding(mask_zero=True) relies on it
TURN = "<TURN>"  # between the turns of a context model's prompt; only in such a vocabulary


class Vocabulary:
    """An ordered list of tokens; a token's position is its index."""

    def __init__(self, tokens: Sequence[str]):
        if tuple(tokens[: len(SPECIALS)]) != SPECIALS:
            raise ChatbotError(
                f"a vocabulary must start with {', '.join(SPECIALS)}; found {list(tokens[:5])}"
            )
        self.tokens = list(tokens)
        self.index = {tok: i for i, tok in enumerate(self.tokens)}
        if len(self.index) != len(self.tokens):
            raise ChatbotError("a vocabulary must not list a token twice")
        self.pad_id, self.sos_id, self.eos_id, self.unk_id, self.sep_id = range(len(SPECIALS))
        self.turn_id = self.index.get(TURN)  # None: not a context model's vocabulary

    @classmethod
    def build(
        cls, sentences: Iterable[Sequence[str]], min_count: int = 1, max_size: int = 20000,
        reserved: Sequence[str] = (),
    ) -> Vocabulary:
        """Specials first, then `reserved` (<TURN> for a context model), then tokens by
        descending frequency (ties: first seen first)."""
        counts: Counter[str] = Counter()
        for tokens in sentences:
            counts.update(tokens)
        return cls.from_counts(counts, min_count, max_size, reserved)

    @classmethod
    def from_counts(cls, counts: Counter[str], min_count: int = 1, max_size: int = 20000,
                    reserved: Sequence[str] = ()) -> Vocabulary:
        """`build` from token counts already made (chatbot data prepare streams them)."""
        if min_count < 1:
            raise ChatbotError(f"min_count must be at least 1, received {min_count}")
        if max_size <= len(SPECIALS):
            raise ChatbotError(f"max_vocab must exceed {len(SPECIALS)}, received {max_size}")
        # Counter.most_common keeps insertion order among equal counts, so this is deterministic.
        head = [*SPECIALS, *reserved]
        kept = [t for t, c in counts.most_common() if c >= min_count and t not in head]
        return cls(head + kept[: max_size - len(head)])

    def __len__(self) -> int:
        return len(self.tokens)

    def __contains__(self, token: str) -> bool:
        return token in self.index

    def encode(self, tokens: Iterable[str]) -> list[int]:
        return [self.index.get(t, self.unk_id) for t in tokens]

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Token strings for ids, stopping at <EOS> and leaving out <PAD>, <SOS> and <SEP>."""
        out = []
        for i in ids:
            i = int(i)
            if i == self.eos_id:
                break
            if i in (self.pad_id, self.sos_id, self.sep_id, self.turn_id):
                continue
            out.append(self.tokens[i] if 0 <= i < len(self.tokens) else UNK)
        return out

    def unknown(self, tokens: Iterable[str]) -> list[str]:
        """The distinct tokens not in the vocabulary, in order of appearance."""
        return list(dict.fromkeys(t for t in tokens if t not in self.index))

    def save(self, path: str | Path) -> None:
        atomic_write_text(path, json.dumps({"tokens": self.tokens}, ensure_ascii=False) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> Vocabulary:
        path = Path(path)
        raw = read_json(path)
        tokens = raw.get("tokens") if isinstance(raw, dict) else None
        if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
            raise ChatbotError(f"{path}: expected {{\"tokens\": [...strings...]}}; the file is "
                               "damaged: retrain the model")
        try:
            return cls(tokens)
        except ChatbotError as exc:
            raise ChatbotError(f"{path}: {exc}; the file is damaged: retrain the model") from None
