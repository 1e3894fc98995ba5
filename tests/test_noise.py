"""Training noise: reproducible, one or two small changes, never the evaluation's own kinds."""

from __future__ import annotations

import random

import pytest

from chatbot.data.noise import LEAD_WORDS, ZH_LEAD_WORDS, final_forms, noisy, noisy_copies
from chatbot.data.pairs import Pair
from chatbot.data.variants import FILLERS, ZH_FILLERS

PAIRS = [Pair(p, r, i) for i, (p, r) in enumerate([
    ("How are you?", "I am fine."), ("What is your name?", "Bot."), ("你好吗？", "我很好。"),
    ("Tell me a joke", "No."), ("hi", "hello")], start=1)]
WORDS = ["apple", "river", "blue"]


def test_copies_are_reproducible_and_keep_reply_and_line():
    first = noisy_copies(PAIRS, 3, seed=1, words=WORDS)
    assert first == noisy_copies(PAIRS, 3, seed=1, words=WORDS)
    assert first != noisy_copies(PAIRS, 3, seed=2, words=WORDS)
    assert len(first) == 3 * len(PAIRS)
    for i, pair in enumerate(PAIRS):
        for copy in first[3 * i: 3 * i + 3]:
            assert (copy.reply, copy.line) == (pair.reply, pair.line)
    assert noisy_copies(PAIRS, 0, seed=1) == []
    with pytest.raises(ValueError, match="copies"):
        noisy_copies(PAIRS, -1, seed=1)


def test_most_copies_differ_from_their_prompt_and_stay_close():
    copies = noisy_copies(PAIRS * 20, 1, seed=0, words=WORDS)
    changed = [c for c, p in zip(copies, PAIRS * 20) if c.prompt != p.prompt]
    assert len(changed) > 0.8 * len(copies)
    for copy, pair in zip(copies, PAIRS * 20):
        assert copy.prompt.strip()
        assert abs(len(copy.prompt) - len(pair.prompt)) <= len(max(WORDS, key=len)) + 1 + 12


def test_chinese_keeps_its_characters():
    rng = random.Random(0)
    for _ in range(50):
        assert {"你", "好"} <= set(noisy("你好吗？", rng, WORDS))


def test_the_evaluations_fillers_are_never_put_first():
    # The evaluation's `filler` kind ("hey, how are you?") asks words that training never put
    # before a prompt; training puts other words there (LEAD_WORDS).
    rng = random.Random(0)
    leads = 0
    for _ in range(300):
        for prompt in ("What is your name?", "I am here", "How are you?", "你好吗？"):
            out = noisy(prompt, rng, WORDS).lower()
            assert not any(out.startswith((f"{f} ", f"{f},")) for f in FILLERS)
            assert not out.startswith(ZH_FILLERS)
            leads += out.startswith(tuple(LEAD_WORDS) + ZH_LEAD_WORDS)
    assert leads > 50  # they do get other lead words
    assert not set(LEAD_WORDS) & set(FILLERS) and not set(ZH_LEAD_WORDS) & set(ZH_FILLERS)


def ending(text: str) -> str:
    body = text.rstrip().rstrip("?.!？。！")
    return text.rstrip()[len(body):]


@pytest.mark.parametrize("prompt, endings", [
    ("How are you?", {"?", "", ".", "!"}),  # as written, dropped, or another mark
    ("Tell me a joke", {"", "?", ".", "!"}),
    ("你好吗？", {"？", "", "。", "！", "?", ".", "!"}),  # full-width marks too
])
def test_the_copies_of_a_prompt_cover_its_final_punctuation(prompt, endings):
    assert {f if f is not None else ending(prompt) for f in final_forms(prompt)} == endings
    width = str.maketrans("？。！", "?.!")  # the `chinese` change may flip a mark's width
    for seed in range(5):
        copies = noisy_copies([Pair(prompt, "r", 1)], len(endings), seed=seed, words=WORDS)
        assert {ending(c.prompt).translate(width) for c in copies} == \
            {e.translate(width) for e in endings}


def test_most_copies_get_another_change_than_their_final_punctuation():
    copies = noisy_copies([PAIRS[0]] * 400, 1, seed=3, words=WORDS)
    other = sum(c.prompt.rstrip("?.!") != PAIRS[0].prompt.rstrip("?") for c in copies)
    assert 0.7 < other / len(copies) < 0.95


def test_short_prompts_keep_all_their_words():
    rng = random.Random(0)
    for _ in range(200):
        out = noisy("are you sapient", rng, WORDS).lower()
        assert len(out.split()) >= 3
