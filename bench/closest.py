"""The closest-match baseline: the reply of the known prompt that looks most like the text.

This is ChatterBot's selection with its LevenshteinDistance comparator (chatterbot/comparisons/
levenshtein_distance.py, 1.2.x): both texts lower-cased, `difflib.SequenceMatcher(None, text,
known).ratio()` rounded to two decimals, the highest wins. Here ties go to the first known
prompt, and the reply is the known prompt's first reply in the training data.

Exact, but faster than comparing with every known prompt in full: `real_quick_ratio()` and
`quick_ratio()` are upper bounds of `ratio()`, so a known prompt whose bound (rounded as the
ratio is) cannot beat the best so far is skipped (as `difflib.get_close_matches` does).
"""

from __future__ import annotations

from collections.abc import Sequence
from difflib import SequenceMatcher

from chatbot.data.pairs import Pair


class ClosestMatch:
    """Replies with the first reply of the most similar known prompt (difflib ratio)."""

    def __init__(self, pairs: Sequence[Pair]):
        first: dict[str, str] = {}
        for pair in pairs:
            first.setdefault(pair.prompt, pair.reply)
        if not first:
            raise ValueError("the closest-match baseline needs at least one known pair")
        self.prompts = list(first)
        self.replies = list(first.values())
        # One matcher per known prompt, which is its second sequence: SequenceMatcher caches
        # what it learns about the second sequence, so only the text changes per query.
        self._matchers = []
        for prompt in self.prompts:
            matcher = SequenceMatcher(None)  # autojunk on, as in ChatterBot
            matcher.set_seq2(prompt.lower())
            self._matchers.append(matcher)

    def closest(self, text: str) -> tuple[int, float]:
        """(index of the most similar known prompt, its ratio rounded to two decimals)."""
        best, best_ratio = 0, -1.0
        for index, matcher in enumerate(self._matchers):
            matcher.set_seq1(text.lower())
            if (round(matcher.real_quick_ratio(), 2) <= best_ratio
                    or round(matcher.quick_ratio(), 2) <= best_ratio):
                continue  # cannot beat the best so far; a tie keeps the earlier prompt
            ratio = round(matcher.ratio(), 2)
            if ratio > best_ratio:
                best, best_ratio = index, ratio
        return best, best_ratio

    def reply(self, text: str) -> str:
        return self.replies[self.closest(text)[0]]

    def reply_batch(self, texts: Sequence[str]) -> list[str]:
        return [self.reply(text) for text in texts]
