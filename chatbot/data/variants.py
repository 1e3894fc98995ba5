"""Typing variants of a prompt: the small changes people make when they type what a bot knows.

    >>> import random
    >>> typing_variants("How are you?", random.Random(0))["punct_dropped"]
    'How are you'

Each kind is one small change, applied alone so that a report can say which kind of change a
model does not survive:

    punct_dropped    the final punctuation left off: "how are you?" -> "how are you"
    punct_added      a final mark where there was none: "hello" -> "hello!"
    punct_changed    another final mark: "how are you?" -> "how are you."
    case             other capitals: "What is AI?" -> "what is ai?" or "WHAT IS AI?"
    contraction      contracted or expanded: "what is" <-> "what's", "i am" <-> "i'm"
    filler           a greeting or filler word first: "so, how are you?"
    typo             one character swapped, dropped, doubled or mistyped in a longer word
    zh_width         Chinese punctuation in the other width: "你好？" <-> "你好?"
    zh_particle      the question particle dropped, added or changed: "你好吗？" -> "你好？",
                     "你叫什么名字？" -> "你叫什么名字呢？" (吗 only where the grammar takes it)

Variants are reproducible: the random choices for a prompt come from `seed` and the prompt's
text alone (a CRC, not Python's salted `hash`). Whoever trains on noise must use other seeds
than whoever reports on variants, so that a check never tunes on what it reports.
"""

from __future__ import annotations

import random
import re
import zlib
from collections.abc import Callable, Sequence

from chatbot.text.words import has_cjk

FINAL_MARKS = ("?", ".", "!")
ZH_FINAL_MARKS = ("？", "。", "！")
# Full-width Chinese punctuation and the ASCII a hurried typist uses instead.
ZH_WIDTH = {"？": "?", "！": "!", "，": ",", "。": ".", "：": ":", "；": ";"}
ZH_PARTICLES = ("吗", "呢")
# A question with one of these asks "what/who/where/how/why/how many" and takes 呢, never 吗.
ZH_QUESTION_WORDS = ("什么", "谁", "哪", "怎么", "为什么", "几", "多少")
FILLERS = ("hi", "hey", "hello", "so", "well", "ok", "um")
ZH_FILLERS = ("嗯，", "那么，", "请问")
# Contracted and expanded forms, each written once; both directions are derived from it.
CONTRACTIONS = {
    "i'm": "i am", "you're": "you are", "we're": "we are", "they're": "they are",
    "it's": "it is", "that's": "that is", "what's": "what is", "who's": "who is",
    "where's": "where is", "how's": "how is", "there's": "there is", "he's": "he is",
    "she's": "she is", "don't": "do not", "doesn't": "does not", "didn't": "did not",
    "can't": "cannot", "won't": "will not", "isn't": "is not", "aren't": "are not",
    "wasn't": "was not", "i've": "i have", "you've": "you have", "i'll": "i will",
    "you'll": "you will", "i'd": "i would", "you'd": "you would", "let's": "let us",
}
# Each way to rewrite (a form as a whole word, its other form), in the order they are offered;
# and one pattern for them all, which finds whether any applies at once.
_REWRITES = [(re.compile(rf"(?<![\w']){re.escape(a)}(?![\w'])", re.IGNORECASE), b)
             for short, long in CONTRACTIONS.items() for a, b in ((short, long), (long, short))]
_ANY_REWRITE = re.compile("|".join(f"(?:{pattern.pattern})" for pattern, _ in _REWRITES),
                          re.IGNORECASE)
# QWERTY neighbours, for typos that a finger slipping would make.
_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")
NEIGHBOURS = {
    ch: "".join(row[j] for j in (i - 1, i + 1) if 0 <= j < len(row))
    for row in _ROWS for i, ch in enumerate(row)
}


def typing_variants(text: str, rng: random.Random) -> dict[str, str]:
    """{kind: variant} for every kind that applies to `text` and changes it."""
    found = {}
    for kind, make in KINDS.items():
        variant = make(text, rng)
        if variant is not None and variant.strip() and variant != text:
            found[kind] = variant
    return found


def one_variant_each(prompts: Sequence[str], seed: int) -> list[tuple[str, str]]:
    """One typing variant of each prompt, of a kind picked by `seed` and the prompt, as
    (variant, prompt); prompts that no kind changes are left out."""
    asked = []
    for prompt in prompts:
        rng = prompt_rng(prompt, seed)
        found = typing_variants(prompt, rng)
        if found:
            asked.append((found[rng.choice(sorted(found))], prompt))
    return asked


def prompt_rng(text: str, seed: int) -> random.Random:
    """The random choices for one prompt: the same on every run, machine and Python."""
    return random.Random(zlib.crc32(text.encode("utf-8")) ^ (seed * 0x9E3779B1 & 0xFFFFFFFF))


# --- the kinds -------------------------------------------------------------------------------


def _split_final(text: str) -> tuple[str, str]:
    """(text without its final punctuation and spaces, that punctuation)."""
    stripped = text.rstrip()
    body = stripped.rstrip("".join(FINAL_MARKS + ZH_FINAL_MARKS))
    return body.rstrip(), stripped[len(body):]


def punct_dropped(text: str, rng: random.Random) -> str | None:
    body, final = _split_final(text)
    return body if final else None


def punct_added(text: str, rng: random.Random) -> str | None:
    body, final = _split_final(text)
    if final:
        return None
    return body + rng.choice(ZH_FINAL_MARKS if has_cjk(body) else FINAL_MARKS)


def punct_changed(text: str, rng: random.Random) -> str | None:
    body, final = _split_final(text)
    if not final:
        return None
    marks = ZH_FINAL_MARKS if final[-1] in ZH_FINAL_MARKS else FINAL_MARKS
    return body + rng.choice([m for m in marks if m != final[-1]])


def case(text: str, rng: random.Random) -> str | None:
    choices = {text.lower(), text.upper(), text[:1].upper() + text[1:].lower()} - {text}
    return rng.choice(sorted(choices)) if choices else None


def contraction(text: str, rng: random.Random) -> str | None:
    """One contraction expanded, or one expanded form contracted (case kept at the start)."""
    if not _ANY_REWRITE.search(text):
        return None
    options = []
    for pattern, b in _REWRITES:
        for match in pattern.finditer(text):
            replacement = b[0].upper() + b[1:] if match.group(0)[0].isupper() else b
            options.append(text[: match.start()] + replacement + text[match.end():])
    return rng.choice(options) if options else None


def filler(text: str, rng: random.Random) -> str | None:
    if has_cjk(text):
        return rng.choice(ZH_FILLERS) + text
    word = rng.choice(FILLERS)
    first = text.split(" ", 1)[0]
    keep = first == "I" or first.startswith("I'") or first.isupper()  # "I", "I'm", "AI"
    rest = text if keep else text[:1].lower() + text[1:]
    return f"{word.capitalize() if text[:1].isupper() else word}, {rest}"


def typo(text: str, rng: random.Random) -> str | None:
    """One slip of the finger inside a word of at least four letters."""
    words = list(re.finditer(r"[A-Za-z]{4,}", text))
    if not words:
        return None
    word = rng.choice(words)
    kind = rng.choice(("swap", "drop", "double", "neighbour"))
    # The first and last letters are kept: a swap takes letters i and i + 1 < the last.
    i = rng.randrange(word.start() + 1, word.end() - (2 if kind == "swap" else 1))
    if kind == "swap" and text[i] != text[i + 1]:
        return text[:i] + text[i + 1] + text[i] + text[i + 2:]
    if kind == "drop":
        return text[:i] + text[i + 1:]
    if kind == "double":
        return text[:i] + text[i] + text[i:]
    near = NEIGHBOURS.get(text[i].lower())
    return text[:i] + rng.choice(near) + text[i + 1:] if near else text[:i] + text[i + 1:]


def zh_width(text: str, rng: random.Random) -> str | None:
    if not has_cjk(text):
        return None
    if any(ch in ZH_WIDTH for ch in text):
        return "".join(ZH_WIDTH.get(ch, ch) for ch in text)
    half = {v: k for k, v in ZH_WIDTH.items()}
    changed = "".join(half.get(ch, ch) for ch in text)
    return changed if changed != text else None


def zh_particle(text: str, rng: random.Random) -> str | None:
    if not has_cjk(text):
        return None
    body, final = _split_final(text)
    if body.endswith(ZH_PARTICLES):
        other = [p for p in ZH_PARTICLES if p != body[-1]]
        return rng.choice([body[:-1], body[:-1] + other[0]]) + final
    if final in ("?", "？"):
        return body + ("呢" if any(w in body for w in ZH_QUESTION_WORDS) else "吗") + final
    return None


KINDS: dict[str, Callable[[str, random.Random], str | None]] = {
    "punct_dropped": punct_dropped,
    "punct_added": punct_added,
    "punct_changed": punct_changed,
    "case": case,
    "contraction": contraction,
    "filler": filler,
    "typo": typo,
    "zh_width": zh_width,
    "zh_particle": zh_particle,
}
