"""Tokenizer and detokenizer: words, punctuation, and one token per CJK character.

No ASCII-only regexes: letters of every script are word characters, so "café", "naïve" and
"Привет" stay whole, while each Chinese/Japanese/Korean ideograph is its own token, which is how
`你好` becomes `你 好` without a word segmenter.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

# Ideographs and syllabaries written without spaces: each character is a token.
_CJK = (
    "\u3040-\u30ff"  # Hiragana, Katakana
    "\u3400-\u4dbf"  # CJK Extension A
    "\u4e00-\u9fff"  # CJK Unified Ideographs
    "\uac00-\ud7af"  # Hangul syllables
    "\uf900-\ufaff"  # CJK Compatibility Ideographs
    "\U00020000-\U0002fa1f"  # CJK Extensions B-F and supplement
)
_TOKEN = re.compile(
    rf"[{_CJK}]"  # one CJK character
    r"|\d+(?:[.,:]\d+)+"  # a number with separators: 3.5, 1,000, 10:30
    rf"|(?:(?![{_CJK}])[^\W_])+(?:['’](?:(?![{_CJK}])[^\W_])+)*"  # a word, with inner apostrophes
    r"|[^\w\s]|_",  # any other visible character (punctuation, symbols, emoji) on its own
)
_CJK_CHAR = re.compile(rf"^[{_CJK}]$")

# Punctuation that sticks to the token before it, or to the token after it.
_ATTACH_LEFT = set(".,!?;:%)]}…'’\"”»") | set("，。！？；：、）》」』】")
_ATTACH_RIGHT = set("([{¿¡$#@“«") | set("（《「『【")


@dataclass(frozen=True)
class Tokenizer:
    """Turns text into tokens and back. Its settings are saved with every model."""

    lowercase: bool = True

    def tokenize(self, text: str) -> list[str]:
        # NFC joins a letter and its combining accent, so "café" has one spelling. (Not NFKC:
        # that would turn Chinese full-width punctuation "，" into ASCII ",".)
        text = unicodedata.normalize("NFC", text)
        if self.lowercase:
            text = text.lower()
        return _TOKEN.findall(text)

    def detokenize(self, tokens: Sequence[str]) -> str:
        out: list[str] = []
        prev = ""
        for tok in tokens:
            if out and not _joins(prev, tok):
                out.append(" ")
            out.append(tok)
            prev = tok
        return "".join(out)


def is_cjk(token: str) -> bool:
    return bool(_CJK_CHAR.match(token))


def _is_cjk_punct(token: str) -> bool:
    return len(token) == 1 and "\u3000" <= token <= "\u303f" or token in "，！？；：（）"


def _joins(prev: str, tok: str) -> bool:
    """True when `tok` is written straight after `prev`, without a space."""
    if tok in _ATTACH_LEFT or prev in _ATTACH_RIGHT:
        return True
    if (is_cjk(prev) or _is_cjk_punct(prev)) and (is_cjk(tok) or _is_cjk_punct(tok)):
        return True
    return False
