"""Tokenizer and detokenizer: words, punctuation, and one token per CJK character.

No ASCII-only regexes: letters of every script are word characters, so "café", "naïve" and
"Привет" stay whole, while each Chinese/Japanese/Korean ideograph is its own token, which is how
`你好` becomes `你 好` without a word segmenter.

The other tokenizer, subword pieces learned from the training text, is in chatbot/text/subword.py;
chatbot/text/tokenizer.py picks the one a run names. Both keep the `TextTokenizer` contract below.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import islice
from typing import Protocol

# Scripts written without spaces between words: each character is a token.
_CJK = (
    "\u3040-\u30ff"  # Hiragana, Katakana
    "\u3400-\u4dbf"  # CJK Extension A
    "\u4e00-\u9fff"  # CJK Unified Ideographs
    "\uf900-\ufaff"  # CJK Compatibility Ideographs
    "\U00020000-\U0002fa1f"  # CJK Extensions B-F and supplement
)  # (Korean Hangul is written with spaces, so it is tokenized into words like Latin script.)
# Combining marks belong to the letter before them: Devanagari vowel signs, accents, the dot
# that "İ".lower() adds. Python's \w does not match them, so they are listed.
_MARKS = "\u0300-\u036f\u0483-\u0489\u0591-\u05c7\u0610-\u061a\u064b-\u065f\u0900-\u0dff" \
    "\u0e31-\u0e3a\u0e47-\u0e4e\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff"
_LETTER = rf"(?:(?![{_CJK}])\w|[{_MARKS}])"  # \w includes "_": snake_case, __init__
_WORD = rf"{_LETTER}+(?:['’\-]{_LETTER}+)*"  # inner apostrophes and hyphens: don't, well-known
# An emoji with its skin-tone modifiers and variation selectors, joined by zero-width joiners.
_EMOJI_TAIL = "\ufe0e\ufe0f\U0001f3fb-\U0001f3ff"
_SYMBOL = rf"[^\w\s{_EMOJI_TAIL}\u200d][{_EMOJI_TAIL}]*(?:\u200d\S[{_EMOJI_TAIL}]*)*"
_TOKEN = re.compile(
    rf"[{_CJK}]"  # one CJK character
    r"|\d+(?:[.,:]\d+)+"  # a number with separators: 3.5, 1,000, 10:30
    rf"|{_WORD}"
    r"|([.!?`*=~#-])\1+"  # a run of one punctuation mark: ..., ```, !!!, ---
    rf"|{_SYMBOL}",  # any other visible character (punctuation, symbols, emoji) on its own
)
_CJK_CHAR = re.compile(rf"^[{_CJK}]$")
_ANY_CJK = re.compile(rf"[{_CJK}]")

# Punctuation that sticks to the token before it, or to the token after it. Straight quotes
# (") open and close in turn, so they are handled apart.
_ATTACH_LEFT = set(".,!?;:%)]}…'’”»") | set("，。！？；：、）》」』】……")
_ATTACH_RIGHT = set("([{¿¡$#@“‘«") | set("（《「『【")
# Around Chinese text these are written without spaces on either side.
_CJK_PUNCT = set("，。！？；：、（）《》「」『』【】“”‘’…—")


class TextTokenizer(Protocol):
    """What every tokenizer offers: text to token strings and back."""

    lowercase: bool

    def tokenize(self, text: str, limit: int | None = None) -> list[str]:
        """The tokens of `text`; with `limit`, its first `limit` tokens."""
        ...

    def detokenize(self, tokens: Sequence[str]) -> str: ...

    def token_texts(self, tokens: Sequence[str]) -> list[str]:
        """The text each token adds to detokenize(tokens): they join to it."""
        ...


def normalize(text: str, lowercase: bool) -> str:
    """Text as every tokenizer reads it."""
    # NFC joins a letter and its combining accent, so "café" has one spelling. (Not NFKC: that
    # would turn Chinese full-width punctuation "，" into ASCII ",".)
    text = unicodedata.normalize("NFC", text)
    return text.lower() if lowercase else text


@dataclass(frozen=True)
class Tokenizer:
    """Turns text into tokens and back. Its settings are saved with every model."""

    lowercase: bool = True

    def tokenize(self, text: str, limit: int | None = None) -> list[str]:
        matches = _TOKEN.finditer(normalize(text, self.lowercase))
        # With a limit, the regex stops after that many tokens (the rest is never read).
        return [match.group(0) for match in islice(matches, limit)]

    def detokenize(self, tokens: Sequence[str]) -> str:
        return "".join(self.token_texts(tokens))

    def token_texts(self, tokens: Sequence[str]) -> list[str]:
        out: list[str] = []
        prev = before = ""
        quote_open = False  # a straight " opens a quotation, the next one closes it
        for tok in tokens:
            if tok == '"':
                joins = quote_open or prev in _ATTACH_RIGHT  # a closing " sticks to the left
                quote_open = not quote_open
            else:
                joins = (_joins(prev, tok) or (prev == '"' and quote_open)
                         # ASCII punctuation inside Chinese text: "分支,致力于"
                         or (prev in ",.!?;:" and is_cjk(before) and is_cjk(tok)))
            out.append(tok if joins or not out else " " + tok)
            prev, before = tok, prev
        return out


def clip(text: str, count: int, longest: int, end: bool = False) -> str:
    """The part of `text` that its first `count` tokens come from (its last, with `end`), so
    that no later step works on more than a prompt's model reads, however long the text.

    Tokens never span whitespace, and a token longer than `longest` (the longest in a
    vocabulary) is unknown at any length: so the first `count` runs of non-space characters,
    each cut to `count * (longest + 2)` characters, hold the first `count` tokens (a run cut
    there held an unknown word, still longer than any known one; the speller leaves it alone).
    Whitespace is collapsed, which no tokenizer reads. At most count² × (longest + 2)
    characters, in C-speed string operations: bounded work for any input.
    """
    width = count * (longest + 2)
    if len(text) <= width:
        return text
    if end:
        return " ".join(run[-width:] for run in text.rsplit(None, count)[-count:])
    return " ".join(run[:width] for run in text.split(None, count)[:count])


def is_cjk(token: str) -> bool:
    return bool(_CJK_CHAR.match(token))


def has_cjk(text: str) -> bool:
    """Whether any character of `text` is CJK (one search, not one match per character)."""
    return _ANY_CJK.search(text) is not None


def _joins(prev: str, tok: str) -> bool:
    """True when `tok` is written straight after `prev`, without a space."""
    if tok in _ATTACH_LEFT or prev in _ATTACH_RIGHT:
        return True
    if len(tok) > 1 and tok[0] in ".!?" and tok == tok[0] * len(tok):  # "...", "!!!"
        return True
    return (is_cjk(prev) or prev in _CJK_PUNCT) and (is_cjk(tok) or tok in _CJK_PUNCT)
