"""Typos read as the words they were meant to be: an unknown word becomes the known word one
slip away.

A word tokenizer reads a word it never saw as <UNK>: "waht is your name" loses its question
word, and the model has to guess the rest. Most typos are one slip from the word meant (a letter
dropped, doubled, swapped with its neighbour or mistyped), so an unknown word is read as the
vocabulary word at Damerau-Levenshtein distance 1 (optimal string alignment), the most
frequent one when several are: the vocabulary lists words by descending frequency, as
Norvig's spelling corrector ranks them.

    speller = Speller(vocab.tokens)
    speller.correct(["waht", "is", "your", "name", "?"])
    # (["what", "is", "your", "name", "?"], [("waht", "what")])

Only words of letters (inner apostrophes and hyphens allowed) at least MIN_LENGTH long are
corrected: a short word one slip from a known one is as often a word of its own that the
training pairs lack ("hey" is one letter from "key", "thx" from "the"). Nor are words more
than one letter longer than the longest known word: no slip makes a known word of them, and
the deletions of a word of L letters are L strings of L - 1 letters, work that must not grow
with the square of whatever is pasted. The lookup is
a symmetric-delete index (each known word under itself and its one-letter deletions, as
SymSpell does), so a correction costs a few dictionary lookups, not a pass over the vocabulary.

The sentencepiece tokenizer needs none of this: it has no unknown words (a typo becomes other
pieces), so `Bot` builds a speller for the word tokenizer only.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

MIN_LENGTH = 4  # shorter unknown words are left as they are
_WORD = re.compile(r"^[^\W\d_]+(?:['’\-][^\W\d_]+)*$")  # letters, inner ' and - (don't)


def is_word(token: str) -> bool:
    return bool(_WORD.match(token))


def _deletes(word: str) -> set[str]:
    return {word[:i] + word[i + 1:] for i in range(len(word))}


def distance(a: str, b: str) -> int:
    """Optimal string alignment distance: insertions, deletions, substitutions and swaps of
    neighbouring characters, each costing 1 (a character is edited at most once)."""
    rows = [list(range(len(b) + 1))]
    for i in range(1, len(a) + 1):
        row = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            row[j] = min(rows[-1][j] + 1, row[j - 1] + 1,
                         rows[-1][j - 1] + (a[i - 1] != b[j - 1]))
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                row[j] = min(row[j], rows[-2][j - 2] + 1)
        rows.append(row)
    return rows[-1][-1]


class Speller:
    """Corrects unknown words against the words of a vocabulary (`tokens`, most frequent first)."""

    def __init__(self, tokens: Sequence[str]):
        self.known = set(tokens)
        self.rank: dict[str, int] = {}  # word -> frequency rank (lower: more frequent)
        self.index: dict[str, list[str]] = {}  # a word or one of its deletions -> words
        self.longest = 0  # letters of the longest word indexed
        for token in tokens:
            if token in self.rank or not is_word(token) or len(token) < MIN_LENGTH - 1:
                continue
            self.rank[token] = len(self.rank)
            self.longest = max(self.longest, len(token))
            for key in {token, *_deletes(token)}:
                self.index.setdefault(key, []).append(token)

    def suggest(self, word: str) -> str | None:
        """The known word one slip from `word`, the most frequent if several; None when `word`
        is known, too short or too long, not a word, or has no known word that close."""
        if (word in self.known or not MIN_LENGTH <= len(word) <= self.longest + 1
                or not is_word(word)):
            return None
        found = {w for key in (word, *_deletes(word)) for w in self.index.get(key, ())}
        close = [w for w in found if distance(word, w) == 1]
        return min(close, key=self.rank.__getitem__) if close else None

    def correct(self, tokens: Sequence[str]) -> tuple[list[str], list[tuple[str, str]]]:
        """`tokens` with each correctable unknown word replaced, and the (typed, read as) pairs."""
        out, changed = [], []
        for token in tokens:
            suggestion = self.suggest(token)
            if suggestion is not None:
                changed.append((token, suggestion))
            out.append(suggestion or token)
        return out, changed
