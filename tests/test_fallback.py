"""What the bot says when it does not know: the prompt's language, the phrasing, fallback.txt."""

from __future__ import annotations

import re

import pytest

from chatbot.decoding.fallback import (
    DEFAULT,
    DEFAULTS,
    FALLBACK,
    LANGUAGES,
    MAX_PHRASING,
    Fallback,
    language,
)
from chatbot.errors import ChatbotError

ENGLISH = [f"tell me about thing number {i}" for i in range(50)]
CHINESE = ["你好", "再见", "你是谁？", "今天天气怎么样", "我喜欢茶", "你叫什么名字", "你几岁了",
           "谢谢你", "晚安", "早上好", "你住在哪里？", "明天见"]


@pytest.mark.parametrize("text, expected", [
    ("hello", "en"),
    ("What is your name?", "en"),
    ("你好", "zh"),
    ("你叫什么名字？", "zh"),
    ("do you like tea? 我喜欢茶", "en"),  # more Latin letters than Chinese characters
    ("你好吗 ok", "zh"),  # more Chinese characters
    ("你好 ok", "zh"),  # as many: Chinese
    ("", "en"),
    ("   ", "en"),
    ("123 ?!", "en"),  # no letters at all
])
def test_language(text, expected):
    assert language(text) == expected


def test_the_defaults_are_in_their_own_language():
    assert set(DEFAULTS) == set(LANGUAGES)
    for lang, phrasings in DEFAULTS.items():
        assert len(phrasings) > 1
        assert all(language(p) == lang for p in phrasings)
    assert DEFAULT.phrasings == DEFAULTS


def test_say_is_the_same_for_the_same_prompt():
    for prompt in ENGLISH + CHINESE:
        assert DEFAULT.say(prompt) == DEFAULT.say(prompt)
    # What the memory ignores, the phrasing ignores too: case and spacing.
    assert DEFAULT.say("Tell me   about THING number 7 ") == DEFAULT.say(ENGLISH[7])


def test_different_prompts_get_different_phrasings():
    said = [DEFAULT.say(p) for p in ENGLISH]
    assert set(said) <= set(DEFAULTS["en"])
    assert len(set(said)) >= 3  # of 4, over 50 prompts
    assert max(said.count(s) for s in set(said)) < 25  # none takes half


def test_chinese_prompts_get_chinese_phrasings():
    said = [DEFAULT.say(p) for p in CHINESE]
    assert set(said) <= set(DEFAULTS["zh"])
    assert len(set(said)) >= 2
    assert all(language(s) == "zh" for s in said)


def test_english_prompts_never_get_chinese_phrasings():
    assert not {DEFAULT.say(p) for p in ENGLISH} & set(DEFAULTS["zh"])


# --- fallback.txt ----------------------------------------------------------------------------


def test_load_reads_the_runs_phrasings_per_language(tmp_path):
    (tmp_path / FALLBACK).write_text(
        "Hmm, no idea.\n\n  Ask me something else.  \n我不知道。\n", encoding="utf-8")
    fallback = Fallback.load(tmp_path)
    assert fallback.phrasings == {"en": ("Hmm, no idea.", "Ask me something else."),
                                  "zh": ("我不知道。",)}
    assert fallback.say("qwzxv blorfing") in {"Hmm, no idea.", "Ask me something else."}
    assert fallback.say("你是谁的朋友？") == "我不知道。"


def test_a_language_without_phrasings_gets_the_defaults(tmp_path):
    (tmp_path / FALLBACK).write_text("No idea, sorry.\n", encoding="utf-8")
    fallback = Fallback.load(tmp_path)
    assert fallback.phrasings == {"en": ("No idea, sorry.",), "zh": DEFAULTS["zh"]}
    (tmp_path / FALLBACK).write_text("我不知道。\n", encoding="utf-8")
    assert Fallback.load(tmp_path).phrasings == {"en": DEFAULTS["en"], "zh": ("我不知道。",)}
    (tmp_path / FALLBACK).write_text("\n  \n", encoding="utf-8")
    assert Fallback.load(tmp_path).phrasings == DEFAULTS


def test_a_run_without_fallback_txt_gets_the_defaults(tmp_path):
    assert Fallback.load(tmp_path) is DEFAULT


def test_a_phrasing_too_long_is_refused_naming_file_and_line(tmp_path):
    path = tmp_path / FALLBACK
    path.write_text("fine\n\n" + "x" * MAX_PHRASING + "\n" + "y" * (MAX_PHRASING + 1) + "\n",
                    encoding="utf-8")
    with pytest.raises(ChatbotError, match=re.escape(f"{path}, line 4")) as caught:
        Fallback.load(tmp_path)
    assert str(MAX_PHRASING) in str(caught.value)
    # The limit itself is allowed.
    path.write_text("x" * MAX_PHRASING + "\n", encoding="utf-8")
    assert Fallback.load(tmp_path).phrasings["en"] == ("x" * MAX_PHRASING,)


def test_a_fallback_txt_that_is_not_utf8_is_refused_naming_it(tmp_path):
    (tmp_path / FALLBACK).write_bytes(b"caf\xe9\n")
    with pytest.raises(ChatbotError, match=re.escape(str(tmp_path / FALLBACK))):
        Fallback.load(tmp_path)


def test_of_names_where_the_lines_came_from():
    with pytest.raises(ChatbotError, match="--fallback x.txt, line 1"):
        Fallback.of(["z" * (MAX_PHRASING + 1)], "--fallback x.txt")
