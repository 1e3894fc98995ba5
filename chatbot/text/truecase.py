"""Case for what a model writes in lower case: each word as the data most often wrote it, and a
capital at the start of each sentence (a truecaser, as in Moses).

    truecase = Truecaser.learn(["I live in Paris.", "Paris is big.", "i think so"])
    truecase(["i", "like", "paris", ".", "it", "is", "big", "."])
    # ["I", "like", "Paris", ".", "It", "is", "big", "."]

A word's form is learned from where case tells something: not at the start of a sentence, where
every word is capitalized. A word the data never wrote elsewhere keeps its lower case. The word
tokenizer lowercases what it reads (its `lowercase` setting), so the model's vocabulary has one
token for "Paris" and "paris"; a bot learns the forms from its known replies when it loads.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence

from chatbot.text.words import Tokenizer

SENTENCE_END = {".", "!", "?", "…", "。", "！", "？"}


def _starts(tokens: Sequence[str]) -> list[bool]:
    """Whether each token starts a sentence: the first word, and the first after an end mark."""
    starts, start = [], True
    for token in tokens:
        starts.append(start and token[:1].isalpha())
        if token[:1].isalpha():
            start = False
        if token in SENTENCE_END or (len(token) > 1 and token[0] in ".!?" and
                                     token == token[0] * len(token)):
            start = True
    return starts


class Truecaser:
    def __init__(self, forms: dict[str, str]):
        self.forms = forms  # lower-case token -> the form the data wrote most often

    @classmethod
    def learn(cls, texts: Iterable[str]) -> Truecaser:
        counts: dict[str, Counter] = defaultdict(Counter)
        cased = Tokenizer(lowercase=False)
        for text in texts:
            tokens = cased.tokenize(text)
            for token, start in zip(tokens, _starts(tokens)):
                if not start and token.lower() != token.upper():  # has case, and tells it
                    counts[token.lower()][token] += 1
        return cls({lower: forms.most_common(1)[0][0] for lower, forms in counts.items()
                    if forms.most_common(1)[0][0] != lower})

    def __call__(self, tokens: Sequence[str]) -> list[str]:
        out = []
        for token, start in zip(tokens, _starts(tokens)):
            token = self.forms.get(token, token)
            out.append(token[:1].upper() + token[1:] if start else token)
        return out
