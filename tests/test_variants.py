"""Typing variants: each kind makes its one change, reproducibly, and only where it applies."""

from __future__ import annotations

import random

import pytest

from chatbot.data.variants import (
    CONTRACTIONS,
    KINDS,
    contraction,
    filler,
    prompt_rng,
    punct_added,
    punct_changed,
    punct_dropped,
    typing_variants,
    typo,
    zh_particle,
    zh_width,
)
from chatbot.text.words import Tokenizer

PROMPTS = ["How are you?", "What is your name?", "hello", "I'm fine. What's up?", "你好吗？",
           "你叫什么名字?", "Tell me a joke", "what is AI?", "再见", "Do you like tea?"]


def rngs(n: int = 20):
    return (random.Random(i) for i in range(n))


def test_variants_are_reproducible_and_depend_on_the_seed():
    first = [typing_variants(p, prompt_rng(p, 0)) for p in PROMPTS]
    again = [typing_variants(p, prompt_rng(p, 0)) for p in PROMPTS]
    other = [typing_variants(p, prompt_rng(p, 1)) for p in PROMPTS]
    assert first == again
    assert first != other


def test_every_variant_differs_from_its_prompt_and_every_kind_occurs():
    seen = set()
    for prompt in PROMPTS:
        for kind, variant in typing_variants(prompt, prompt_rng(prompt, 0)).items():
            assert kind in KINDS and variant != prompt and variant.strip()
            seen.add(kind)
    assert seen == set(KINDS)


def test_final_punctuation():
    assert punct_dropped("How are you?", random.Random(0)) == "How are you"
    assert punct_dropped("你好吗？", random.Random(0)) == "你好吗"
    assert punct_dropped("Wait... what?!", random.Random(0)) == "Wait... what"
    assert punct_dropped("hello", random.Random(0)) is None
    assert {punct_added("hello", r) for r in rngs()} == {"hello?", "hello.", "hello!"}
    assert {punct_added("再见", r) for r in rngs()} == {"再见？", "再见。", "再见！"}
    assert punct_added("hello!", random.Random(0)) is None
    assert {punct_changed("How are you?", r) for r in rngs()} == {"How are you.", "How are you!"}
    assert {punct_changed("你好。", r) for r in rngs()} == {"你好？", "你好！"}


def test_contractions_go_both_ways_and_keep_a_capital():
    assert contraction("What is your name?", random.Random(0)) == "What's your name?"
    assert contraction("I'm fine", random.Random(0)) == "I am fine"
    assert contraction("whatever is mine", random.Random(0)) is None  # whole words only
    assert contraction("hello", random.Random(0)) is None
    for short, long in CONTRACTIONS.items():
        assert contraction(long, random.Random(0)) == short
        assert contraction(short, random.Random(0)) == long


def test_filler_comes_first_and_keeps_i_and_acronyms():
    assert filler("How are you?", random.Random(0)).endswith(", how are you?")
    assert filler("I like tea", random.Random(0)).endswith(", I like tea")
    assert filler("AI is fun", random.Random(0)).endswith(", AI is fun")
    assert filler("你好", random.Random(0)).endswith("你好")


def test_typo_is_one_slip_inside_a_long_word():
    prompt = "What is your name?"
    for r in rngs(50):
        variant = typo(prompt, r)
        assert abs(len(variant) - len(prompt)) <= 1
        changed = [(w, v) for w, v in zip(prompt.split(), variant.split()) if w != v]
        assert len(changed) == 1  # one word, of four letters or more, first and last kept
        word, slipped = changed[0]
        assert len(word) >= 4 and (word[0], word[-1]) == (slipped[0], slipped[-1])
    assert typo("hi, ok", random.Random(0)) is None  # no word of four letters


def test_chinese_punctuation_width_and_particles():
    assert zh_width("你好吗？", random.Random(0)) == "你好吗?"
    assert zh_width("你叫什么名字?", random.Random(0)) == "你叫什么名字？"
    assert zh_width("hello?", random.Random(0)) is None
    assert {zh_particle("你好吗？", r) for r in rngs()} == {"你好？", "你好呢？"}
    assert zh_particle("你是机器人?", random.Random(0)) == "你是机器人吗?"
    assert zh_particle("你叫什么名字？", random.Random(0)) == "你叫什么名字呢？"
    assert zh_particle("再见", random.Random(0)) is None


@pytest.mark.parametrize("prompt", PROMPTS)
def test_variants_of_a_known_prompt_keep_its_chinese(prompt):
    tokens = set(Tokenizer().tokenize(prompt))
    cjk = {t for t in tokens if "\u4e00" <= t <= "\u9fff"}
    for variant in typing_variants(prompt, prompt_rng(prompt, 0)).values():
        assert cjk <= set(Tokenizer().tokenize(variant)) | {"吗", "呢"}


@pytest.mark.slow
def test_eval_reports_each_kind_and_case_costs_a_lowercasing_model_nothing(tiny_run, tiny_tsv):
    from chatbot.data.pairs import read_pairs
    from chatbot.decoding.bot import Bot
    from chatbot.evaluate import format_metrics, variant_answer_rates

    bot = Bot.load(tiny_run)
    pairs = read_pairs(tiny_tsv).pairs
    report = variant_answer_rates(bot, pairs)
    assert report == variant_answer_rates(bot, pairs)  # reproducible
    kinds = [k for k in KINDS if k in report]
    assert {"punct_dropped", "punct_added", "case", "filler"} <= set(kinds)
    assert report["all"]["prompts"] == sum(report[k]["prompts"] for k in kinds)
    assert report["all"]["answered"] == sum(report[k]["answered"] for k in kinds)
    # The tokenizer lower-cases, so a case variant reads as its prompt, which the tiny model
    # has learned: every one is answered.
    assert report["case"]["answer_rate"] == 1.0
    table = format_metrics({"variants": report})
    assert "punct_dropped" in table and f"seed {report['seed']}" in table
