"""Bot-level API: decoding settings parsed from text, attention maps, batch replies."""

from __future__ import annotations

import numpy as np
import pytest

from chatbot.config import DecodeConfig
from chatbot.decoding.bot import Bot, make_sampler, parse_setting
from chatbot.decoding.samplers import (
    BeamSampler,
    GreedySampler,
    RandomSampler,
    TopKSampler,
    TopPSampler,
)
from chatbot.errors import ChatbotError


@pytest.mark.parametrize("name, value, expected", [
    ("beam", "5", {"beam_width": 5, "strategy": "beam"}),
    ("beam", "1", {"beam_width": 1, "strategy": "greedy"}),
    ("temperature", "0.7", {"temperature": 0.7, "strategy": "random"}),
    ("top_p", "0.9", {"top_p": 0.9, "strategy": "top_p"}),
    ("top-k", "4", {"top_k": 4, "strategy": "top_k"}),
    ("nbest", "3", {"nbest": 3, "strategy": "beam", "beam_width": 5}),
    ("seed", "none", {"seed": None}),
    ("allow_unk", "on", {"allow_unk": True}),
    ("max_len", "12", {"max_reply_len": 12}),
])
def test_parse_setting(name, value, expected):
    assert parse_setting(name, value, DecodeConfig()) == expected


@pytest.mark.parametrize("value", ["0", "-2"])
def test_a_beam_below_one_is_refused(value):
    with pytest.raises(ChatbotError, match="beam must be a whole number from 1 to 256"):
        parse_setting("beam", value, DecodeConfig())


def test_temperature_keeps_a_sampling_strategy():
    assert parse_setting("temperature", "2", DecodeConfig(strategy="top_p")) == {"temperature": 2.0}


@pytest.mark.parametrize("strategy, cls", [
    ("greedy", GreedySampler), ("beam", BeamSampler), ("random", RandomSampler),
    ("top_k", TopKSampler), ("top_p", TopPSampler),
])
def test_make_sampler_picks_the_strategy(strategy, cls):
    assert type(make_sampler(DecodeConfig(strategy=strategy))) is cls


def test_invalid_decode_settings_are_refused():
    with pytest.raises(ChatbotError, match="nbest"):
        make_sampler(DecodeConfig(strategy="beam", beam_width=2, nbest=3))
    with pytest.raises(ChatbotError, match="strategy"):
        make_sampler(DecodeConfig(strategy="fastest"))


@pytest.mark.slow
def test_configure_is_all_or_nothing(tiny_run):
    bot = Bot.load(tiny_run)
    with pytest.raises(ChatbotError):
        bot.configure(strategy="top_p", top_p=0.0)
    assert bot.decode.strategy == "greedy" and bot.decode.top_p == 0.9


@pytest.mark.slow
def test_seeded_sampling_is_reproducible(tiny_run):
    bot = Bot.load(tiny_run)
    # (the fallback off: it would say most hot samples are unlikely to be right)
    bot.configure(strategy="random", temperature=3.0, seed=11, fallback=False)
    first = [bot.reply("hello").text for _ in range(3)]
    assert len(set(first)) == 1  # the same seed gives the same sample every call
    bot.configure(seed=None)
    assert len({bot.reply("hello").text for _ in range(20)}) > 1  # hot and unseeded: varies


@pytest.mark.slow
def test_reply_batch_matches_one_by_one(tiny_run):
    bot = Bot.load(tiny_run)
    prompts = ["hello", "", "你好", "what is your name?", "   ", "zebra"]
    assert [r.text for r in bot.reply_batch(prompts)] == [bot.reply(p).text for p in prompts]
    assert bot.reply("").text == "" and bot.reply("").candidates == []


@pytest.mark.slow
def test_attention_map_rows_are_distributions_over_the_prompt(tiny_runs):
    bot = Bot.load(tiny_runs["attention"])
    reply = bot.reply("what is your name?")
    amap = bot.attention("what is your name?", reply.tokens)
    assert amap.prompt == ["what", "is", "your", "name", "?"]
    assert amap.reply == [*reply.tokens, "<EOS>"]
    assert amap.weights.shape == (len(amap.reply), len(amap.prompt))
    assert np.all(amap.weights >= 0)
    np.testing.assert_allclose(amap.weights.sum(axis=1), 1.0, atol=1e-5)
