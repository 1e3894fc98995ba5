"""The most frequent prompts of a stream, with one reply each, in bounded memory.

A bot that answers known prompts from memory (chatbot.data.memory) cannot hold every prompt of
a corpus of millions; it keeps the `cap` most frequent, which are the ones people ask. Counts
are exact while the distinct prompts fit in twice the cap; past that, the least frequent half
is dropped whenever the table fills, so a prompt's count restarts if it comes back later
(the "frequent items" approximation: a prompt asked more often than once in every `cap`
pairs is never dropped).
"""

from __future__ import annotations

import numpy as np

from chatbot.data.pairs import Pair


class FrequentPrompts:
    def __init__(self, cap: int):
        if cap < 1:
            raise ValueError(f"cap must be at least 1, received {cap}")
        self.cap = cap
        self.table: dict[str, list] = {}  # prompt -> [count, its first pair, trained on]
        self.pruned = 0  # times the least frequent half was dropped

    def add(self, pair: Pair, trained: bool = True) -> None:
        """Counts `pair`'s prompt; `trained`: the pair is on the training side (a run learns
        the prompts of that side only)."""
        entry = self.table.get(pair.prompt)
        if entry is None:
            self.table[pair.prompt] = [1, pair, trained]
            if len(self.table) >= 2 * self.cap:
                self._prune()
        else:
            entry[0] += 1
            entry[2] = entry[2] or trained

    def _prune(self) -> None:
        """Keeps the `cap` most frequent prompts, the most frequent first (ties: in the
        table's order); NumPy's stable sort, as `sorted` would, a few times faster."""
        items = list(self.table.items())
        counts = np.fromiter((entry[0] for _, entry in items), dtype=np.int64, count=len(items))
        kept = np.argsort(-counts, kind="stable")[: self.cap]
        self.table = dict(items[i] for i in kept.tolist())
        self.pruned += 1

    def pairs(self) -> list[Pair]:
        """The (at most `cap`) most frequent prompts' pairs, the most frequent first (ties:
        first seen first)."""
        return [entry[1] for entry in self._ordered()]

    def untrained(self) -> list[int]:
        """The places (from 0) in `pairs()` of the prompts never seen on the training side."""
        return [i for i, entry in enumerate(self._ordered()) if not entry[2]]

    def _ordered(self) -> list[list]:
        return sorted(self.table.values(), key=lambda entry: -entry[0])[: self.cap]

    @property
    def exact(self) -> bool:
        """Whether every distinct prompt was counted exactly (none was dropped)."""
        return not self.pruned
