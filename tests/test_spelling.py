"""The speller: unknown words read as the known word one typo away."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chatbot.data.variants import typing_variants
from chatbot.decoding.spelling import MIN_LENGTH, Speller, distance, is_word

# Most frequent first, as Vocabulary.build orders words.
WORDS = ["<PAD>", "<SOS>", "<EOS>", "<UNK>", "<SEP>", "?", "the", "is", "what", "your", "name",
         "you", "are", "how", "don't", "hello", "help", "hell", "weather", "whether", "好"]


@pytest.fixture(scope="module")
def speller() -> Speller:
    return Speller(WORDS)


@pytest.mark.parametrize("typed, meant", [
    ("waht", "what"),  # neighbours swapped
    ("wether", "weather"),  # a letter dropped ("whether" is as close, and less frequent)
    ("naame", "name"),  # a letter doubled
    ("nane", "name"),  # a letter mistyped
    ("dont", "don't"),  # the apostrophe left out
])
def test_one_slip_is_corrected(speller, typed, meant):
    assert speller.suggest(typed) == meant


def test_the_most_frequent_of_equally_close_words_wins(speller):
    # "helo" is one slip from "hello", "help" and "hell": "hello" comes first in the vocabulary.
    assert speller.suggest("helo") == "hello"
    assert Speller([w for w in WORDS if w != "hello"]).suggest("helo") == "help"


@pytest.mark.parametrize("typed", [
    "what",  # known words stay
    "wxyz",  # nothing close
    "waeht",  # two slips away
    "yo", "hey", "teh",  # too short to guess: "hey" is a word, not a slip from "key"
    "3.5", "?!", "<UNK>", "好吗",  # not words of letters
])
def test_what_is_left_alone(speller, typed):
    assert speller.suggest(typed) is None


def test_words_longer_than_any_known_word_plus_one_are_left_alone(speller):
    # "weather" and "whether" (7 letters) are the longest words: 8 letters may be one slip
    # from them, 9 cannot.
    assert speller.suggest("wheather") == "weather"  # (the more frequent of the two)
    assert speller.suggest("wheeather") is None
    # A pasted word is never taken apart letter by letter: a million letters cost a length check.
    assert speller.suggest("w" * 1_000_000) is None


def test_correct_reports_each_change(speller):
    tokens, changed = speller.correct(["waht", "is", "yuor", "nmae", "?", "zzzz", "hey"])
    assert tokens == ["what", "is", "your", "name", "?", "zzzz", "hey"]
    assert changed == [("waht", "what"), ("yuor", "your"), ("nmae", "name")]


def test_specials_are_never_suggested():
    assert Speller(["<PAD>", "<SOS>", "<EOS>", "<UNK>", "<SEP>", "<TURN>"]).suggest("turn") is None


@given(st.text(alphabet="abcdef'", max_size=6), st.text(alphabet="abcdef'", max_size=6))
def test_distance_is_a_symmetric_edit_count(a, b):
    d = distance(a, b)
    assert d == distance(b, a)
    assert (d == 0) == (a == b)
    assert abs(len(a) - len(b)) <= d <= max(len(a), len(b))


def test_distance_counts_a_swap_of_neighbours_once():
    assert distance("waht", "what") == 1
    assert distance("abc", "bca") == 2  # the symmetric-delete index proposes it; distance refuses


def test_the_evaluations_typos_are_mostly_undone():
    """Every typo the evaluation makes (chatbot.data.variants, seeded) is one slip in one word of at
    least 4 letters; over a vocabulary of the prompts' own words, the speller restores nearly
    every one that leaves MIN_LENGTH letters (the rest turn one word into another known word,
    which only the model can judge), and leaves the shorter ones as they are."""
    prompts = ["what is your name?", "how are you doing today?", "tell me about the weather.",
               "do you know any jokes?", "what programming languages do you know?",
               "who created you?", "are you a robot?", "what is your favourite colour?"]
    vocab = ["<PAD>", "<SOS>", "<EOS>", "<UNK>", "<SEP>",
             *dict.fromkeys(w for p in prompts for w in p.rstrip("?.").split())]
    speller = Speller(vocab)
    restored, total, short = 0, 0, 0
    for seed in range(20):
        for prompt in prompts:
            typo = typing_variants(prompt, random.Random(seed)).get("typo")
            if typo is None:
                continue
            meant, typed = prompt.rstrip("?.").split(), typo.rstrip("?.").split()
            (slip,) = [w for w, m in zip(typed, meant) if w != m]
            if len(slip) < MIN_LENGTH:
                short += 1
                assert speller.suggest(slip) is None
                continue
            total += 1
            restored += speller.correct(typed)[0] == meant
    assert total >= 100 and short > 0
    assert restored / total >= 0.95


def test_is_word():
    assert is_word("don't") and is_word("well-known") and is_word("café")
    assert not is_word("a1") and not is_word("snake_case") and not is_word("-x")


def test_the_bot_reads_a_typo_as_the_word_and_says_so(tiny_run):
    from chatbot.decoding.bot import Bot

    bot = Bot.load(tiny_run)
    # The model alone: the memory would forgive the typo too (and the fallback refuse it).
    bot.configure(retrieval=False, fallback=False)
    reply = bot.reply("waht is your nmae?")
    assert reply.corrected == [("waht", "what"), ("nmae", "name")]
    assert reply.read == ["what", "is", "your", "name", "?"] and reply.unknown == []
    assert reply.text == "my name is bot."  # (a known reply, generated: as the data wrote it)
    bot.set("spelling", "off")
    reply = bot.reply("waht is your nmae?")
    assert reply.corrected == [] and reply.unknown == ["waht", "nmae"]

