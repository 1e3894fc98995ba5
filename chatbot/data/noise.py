"""Typing noise for training: copies of the training prompts as people might type them.

A model that has only seen "How are you?" reads "how are you" as a different sentence. Trained
on a few noisy copies of every prompt, each paired with the prompt's own reply, it learns that
such changes do not change the answer. The copies of a prompt end in each of its final
punctuation forms in turn (the change people make most), and most copies get one of the
other changes too:

    final punctuation   as written, dropped, or another mark (ASCII, or full-width too)
    case                the whole prompt lower- or upper-cased
    typo                one letter of a longer word dropped, doubled, swapped or mistyped
    word dropped        one word of four or more left out
    word inserted       a word of the training prompts put in at a random place
    contraction         one contraction expanded, or one expanded form contracted
    Chinese             punctuation in the other width; 吗/呢 dropped from a question

    lead word           a discourse word first ("oh, ", "and ", "请告诉我"): LEAD_WORDS

The evaluation (`chatbot eval --variants`, chatbot/data/variants.py) asks other variants, drawn with
other seeds. Its `filler` kind puts a greeting or filler word first (variants.FILLERS: "hey, ",
"so, ", "嗯，"); the noise's lead words are other words, never those, so that kind measures
whether the model learned to read past a word before the question, not a list of words.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence

from chatbot.data.pairs import Pair
from chatbot.data.variants import FINAL_MARKS, NEIGHBOURS, ZH_FINAL_MARKS, ZH_PARTICLES, ZH_WIDTH
from chatbot.data.variants import contraction as contract_or_expand
from chatbot.text.words import has_cjk

NOISE_SEED_OFFSET = 7919  # noise seeds are train.seed + this, never the evaluation's variant seeds
FINAL_ONLY = 0.25  # of the copies whose final punctuation changed, the share left at that
TYPO_LETTERS = 4  # the letters of a word a typo may hit, at least
DROP_WORDS = 4  # the words of a prompt one may be dropped from, at least
# Words people put before what they ask; none is one of the evaluation's variants.FILLERS.
LEAD_WORDS = ("oh", "and", "but", "yo", "please", "say", "now", "right", "look", "alright",
              "excuse me", "tell me", "one question")
ZH_LEAD_WORDS = ("喂，", "好吧，", "对了，", "请告诉我", "我想知道")


def noisy_copies(pairs: Sequence[Pair], copies: int, seed: int,
                 words: Sequence[str] = ()) -> list[Pair]:
    """`copies` noisy versions of every pair's prompt, each with the pair's reply.

    The copies of a prompt take its final-punctuation forms in turn (`final_forms`, in an
    order shuffled per prompt), so that a few copies cover them all: four copies of "How are
    you?" end in "?", nothing, "." and "!", one each. Independent draws would give one prompt
    "!" twice and another never, and a model that never saw "How are you!" can only guess.
    `words` are the words the insertion may use (e.g. the training prompts' words). A copy that
    comes out equal to its prompt (nothing applied) is kept: it weighs the original a little
    more, which does no harm.
    """
    if copies < 0:
        raise ValueError(f"copies must be at least 0, received {copies}")
    rng = random.Random(seed + NOISE_SEED_OFFSET)
    pool = list(dict.fromkeys(words)) or ["the"]
    out = []
    for pair in pairs:
        forms = final_forms(pair.prompt)
        rng.shuffle(forms)
        out += [Pair(noisy(pair.prompt, rng, pool, forms[i % len(forms)]), pair.reply,
                     pair.line, pair.context) for i in range(copies)]
    return out


def final_forms(text: str) -> list[str | None]:
    """The ways `text` can end: None (as written), "" (its final marks dropped, if it has
    any), or another final mark (Chinese text: the full-width ones too)."""
    body, current = split_final(text)
    marks = ZH_FINAL_MARKS + FINAL_MARKS if has_cjk(body) else FINAL_MARKS
    return [None, *([""] if current else []), *(m for m in marks if m != current)]


def split_final(text: str) -> tuple[str, str]:
    """(`text` without its final marks, those marks): "How are you?" -> ("How are you", "?")."""
    stripped = text.rstrip()
    body = stripped.rstrip("".join(FINAL_MARKS + ZH_FINAL_MARKS))
    return body, stripped[len(body):]


def noisy(text: str, rng: random.Random, words: Sequence[str],
          final: str | None | bool = True) -> str:
    """`text` ending in `final` (one of `final_forms`; True: one drawn at random) and, unless
    that alone changed it and one time in four, one of the other changes that alter it."""
    if final is True:
        final = rng.choice(final_forms(text))
    body = split_final(text)[0]
    if final is not None and body.strip():
        changed = body + final
        if changed != text and rng.random() < FINAL_ONLY:
            return changed  # the final punctuation alone
        text = changed
    for change in rng.sample(CHANGES, k=len(CHANGES)):
        changed = change(text, rng, words) if (words or change is not insert_word) else None
        if changed and changed.strip() and changed != text:
            return changed
    return text


def case(text: str, rng: random.Random, words: Sequence[str]) -> str | None:
    return text.upper() if rng.random() < 0.3 else text.lower()


def typo(text: str, rng: random.Random, words: Sequence[str]) -> str | None:
    found = list(re.finditer(rf"[A-Za-z]{{{TYPO_LETTERS},}}", text))
    if not found:
        return None
    word = rng.choice(found)
    i = rng.randrange(word.start() + 1, word.end() - 1)
    slip = rng.choice(("drop", "double", "swap", "neighbour"))
    if slip == "drop":
        return text[:i] + text[i + 1:]
    if slip == "double":
        return text[:i] + text[i] + text[i:]
    if slip == "swap":
        return text[:i - 1] + text[i] + text[i - 1] + text[i + 1:]
    near = NEIGHBOURS.get(text[i].lower())
    return text[:i] + rng.choice(near) + text[i + 1:] if near else None


def drop_word(text: str, rng: random.Random, words: Sequence[str]) -> str | None:
    tokens = text.split()
    if len(tokens) < DROP_WORDS:  # "are you sapient" without "sapient" asks something else
        return None
    del tokens[rng.randrange(len(tokens))]
    return " ".join(tokens)


def insert_word(text: str, rng: random.Random, words: Sequence[str]) -> str | None:
    if has_cjk(text):
        return None
    tokens = text.split()
    # Before a word, never after the last: the prompt keeps its final punctuation.
    tokens.insert(rng.randrange(len(tokens)), rng.choice(words))
    return " ".join(tokens)


def lead_word(text: str, rng: random.Random, words: Sequence[str]) -> str | None:
    if has_cjk(text):
        return rng.choice(ZH_LEAD_WORDS) + text
    word = rng.choice(LEAD_WORDS)
    return f"{word}{rng.choice((', ', ' '))}{text}"


def contraction(text: str, rng: random.Random, words: Sequence[str]) -> str | None:
    return contract_or_expand(text, rng)


def chinese(text: str, rng: random.Random, words: Sequence[str]) -> str | None:
    if not has_cjk(text):
        return None
    body = text.rstrip("".join(FINAL_MARKS + ZH_FINAL_MARKS))
    if body.endswith(ZH_PARTICLES) and rng.random() < 0.5:
        return body[:-1] + text[len(body):]
    half = {v: k for k, v in ZH_WIDTH.items()}
    return "".join(ZH_WIDTH.get(ch) or half.get(ch, ch) for ch in text)


# The changes besides the final punctuation; a copy gets at most one of them.
CHANGES: tuple[Callable[[str, random.Random, Sequence[str]], str | None], ...] = (
    case, typo, drop_word, insert_word, lead_word, contraction, chinese)
