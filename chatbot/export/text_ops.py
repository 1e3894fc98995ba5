"""The word tokenizer and detokenizer of `chatbot.text.words`, as core TensorFlow string ops.

An exported model's `reply_text` signature (chatbot.export.saved_model) reads and writes text inside
the graph, so TF Serving, which carries core TF ops only (no TF Text, no sentencepiece), can serve
it. The Python tokenizer is a regular expression run by `re.finditer`; here the same
expression runs in RE2 (`tf.strings.regex_replace`), which finds the same tokens (both take
the leftmost match and the first alternative that matches), once two things Python's `re`
has and RE2 lacks are spelled out:

- character classes: Python's `\\w`, `\\d`, `\\s` cover all of Unicode, RE2's only ASCII. Each
  class is listed here as the ranges of code points that the Python class matches, found by
  running it over every code point, so the two agree on every character by construction;
- the backreference `([.!?`*=~#-])\\1+` (a run of one punctuation mark) becomes one
  alternative per mark.

Two steps of the Python tokenizer have no exact core-TF equivalent, so text is read the same
way except for:

- Unicode normalization: Python reads text in NFC; TF has no NFC op, so the graph expects
  NFC text (what keyboards and browsers send). A decomposed accent (e + U+0301) is read as
  a different word than the composed é;
- lowercasing: `tf.strings.lower` (ICU) agrees with `str.lower`, final sigma included, except
  on the few dozen letters Unicode added after the ICU in TensorFlow (Vithkuqi, some Latin
  and Glagolitic letters of Unicode 14).

`tests/test_export.py` checks both directions against `chatbot.text.words.Tokenizer` on English,
Chinese, emoji, numbers and random strings.
"""

from __future__ import annotations

import re
from functools import cache

import numpy as np
import tensorflow as tf

from chatbot.text import words  # mirrored here; its patterns are the source of truth
from chatbot.text.vocab import Vocabulary

_SURROGATES = range(0xD800, 0xE000)  # not characters; never in UTF-8 text


@cache
def _code_points() -> str:
    return "".join(chr(c) for c in range(0x110000) if c not in _SURROGATES)


def _char_class(pattern: str) -> str:
    """The RE2 class of every code point that the one-character Python `pattern` matches."""
    ranges = []
    for match in re.finditer(f"(?:{pattern})+", _code_points()):
        first, last = ord(match.group()[0]), ord(match.group()[-1])
        if first < _SURROGATES.start and last >= _SURROGATES.stop:  # a run across the gap
            ranges += [(first, _SURROGATES.start - 1), (_SURROGATES.stop, last)]
        else:
            ranges.append((first, last))
    return "[" + "".join(f"\\x{{{a:x}}}" + (f"-\\x{{{b:x}}}" if b > a else "")
                         for a, b in ranges) + "]"


@cache
def token_pattern() -> str:
    """`chatbot.text.words._TOKEN` in RE2 syntax: the same alternatives, in the same order."""
    cjk = _char_class(f"[{words._CJK}]")
    digit = _char_class(r"\d")
    letter = _char_class(words._LETTER)
    tail = _char_class(f"[{words._EMOJI_TAIL}]")
    symbol = _char_class(rf"[^\w\s{words._EMOJI_TAIL}\u200d]")
    visible = _char_class(r"\S")
    runs = "|".join(f"{re.escape(mark)}{{2,}}" for mark in ".!?`*=~#-")  # ([.!?`*=~#-])\1+
    return "|".join([
        cjk,
        rf"{digit}+(?:[.,:]{digit}+)+",
        rf"{letter}+(?:['’\-]{letter}+)*",
        runs,
        rf"{symbol}{tail}*(?:\x{{200d}}{visible}{tail}*)*",
    ])


def tokenize(texts: tf.Tensor, lowercase: bool) -> tf.RaggedTensor:
    """Tokens of every text, (batch,) strings -> (batch, (tokens)) strings, as
    `chatbot.text.words.Tokenizer(lowercase).tokenize` gives them for NFC text."""
    if lowercase:
        # ICU stops at a NUL character, so the text between NULs is lowered piece by piece,
        # and the NULs put back (reduce_join's separator cannot be one: it is cut at a NUL).
        pieces = tf.strings.split(texts, sep="\x00")
        joined = tf.strings.reduce_join(tf.strings.lower(pieces, encoding="utf-8") + "\x00",
                                        axis=-1)
        length = tf.strings.length(joined)
        texts = tf.strings.substr(joined, tf.zeros_like(length), length - 1)  # the last NUL
    # Every token gets a space after it and every character outside a token becomes a space,
    # as finditer skips it. No token holds an ASCII space character (they are \s in Python
    # and so never inside a token), so splitting on them gives back exactly the tokens.
    spaced = tf.strings.regex_replace(texts, f"({token_pattern()})|(?s:.)", r"\1 ")
    return tf.strings.split(spaced)


# Per-token facts the detokenizer's spacing rules read, one bit each (see `_features`).
_QUOTE, _LEFT, _RIGHT, _RUN, _CJK_LIKE, _CJK, _ASCII_PUNCT = (1 << i for i in range(7))


def _features(token: str) -> int:
    """The bits of `token` that `chatbot.text.words.Tokenizer.detokenize` decides spacing by."""
    facts = [
        (_QUOTE, token == '"'),
        (_LEFT, token in words._ATTACH_LEFT),
        (_RIGHT, token in words._ATTACH_RIGHT),
        (_RUN, len(token) > 1 and token[0] in ".!?" and token == token[0] * len(token)),
        (_CJK_LIKE, words.is_cjk(token) or token in words._CJK_PUNCT),
        (_CJK, words.is_cjk(token)),
        (_ASCII_PUNCT, token in ",.!?;:"),
    ]
    return sum(bit for bit, holds in facts if holds)


def feature_table(vocab: Vocabulary) -> np.ndarray:
    """`_features` of every vocabulary token, by id: (vocab,) int32."""
    return np.array([_features(t) for t in vocab.tokens], dtype=np.int32)


def detokenize(ids: tf.Tensor, tokens: tf.Tensor, features: tf.Tensor) -> tf.Tensor:
    """Reply text from reply ids, as `Tokenizer.detokenize(vocab.decode(ids))`.

    ids: (batch, time) int32, each row's reply then 0s (no <EOS>, and no <PAD>, <SOS> or
    <SEP>, which greedy decoding never emits; a <TURN> is left out as `vocab.decode` does,
    by the caller); tokens: (vocab,) strings; features: (vocab,) `feature_table`.
    Returns (batch,) strings.
    """
    has = lambda bits, bit: tf.not_equal(tf.bitwise.bitwise_and(bits, bit), 0)  # noqa: E731
    real = ids > 0
    tok = tf.gather(features, ids)  # (batch, time); id 0 has no features: like "" in Python
    # The token before each token, and the one before that ("" at the start: no features).
    width = tf.shape(ids)[1]
    prev = tf.pad(tok, [[0, 0], [1, 0]])[:, :width]
    before = tf.pad(tok, [[0, 0], [2, 0]])[:, :width]
    # A straight " opens a quotation and the next closes it: open if an odd number came before.
    quote_open = tf.math.floormod(tf.cumsum(tf.cast(has(tok, _QUOTE), tf.int32), axis=1,
                                            exclusive=True), 2) == 1
    plain = (has(tok, _LEFT) | has(prev, _RIGHT) | has(tok, _RUN)  # words._joins
             | (has(prev, _CJK_LIKE) & has(tok, _CJK_LIKE)))
    joins = tf.where(
        has(tok, _QUOTE),
        quote_open | has(prev, _RIGHT),
        plain | (has(prev, _QUOTE) & quote_open)
        | (has(prev, _ASCII_PUNCT) & has(before, _CJK) & has(tok, _CJK)))
    first = tf.range(width)[None, :] == 0
    space = tf.where(real & ~joins & ~first, " ", "")
    words = tf.where(real, tf.gather(tokens, ids), "")
    return tf.strings.reduce_join(space + words, axis=1)
