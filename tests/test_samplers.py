"""Samplers, pinned with a fake engine: no trained model needed."""

from __future__ import annotations

import numpy as np
import pytest

from chatbot.errors import ChatbotError
from chatbot.samplers import GreedySampler, get_sampler
from chatbot.vocab import SPECIALS, Vocabulary

VOCAB = Vocabulary(list(SPECIALS) + ["a", "b", "c"])  # a=5, b=6, c=7


class ScriptedEngine:
    """Next-token logits from a table: row r, step t -> the scripted favourite gets logit 5."""

    def __init__(self, script: list[list[int]], runner_up: int | None = None):
        self.script = script
        self.runner_up = runner_up
        self.fed: list[list[int]] = []

    def _logits(self, t: int) -> np.ndarray:
        logits = np.zeros((len(self.script), len(VOCAB)))
        for row, tokens in enumerate(self.script):
            logits[row, tokens[min(t, len(tokens) - 1)]] = 5.0
            if self.runner_up is not None:
                logits[row, self.runner_up] = 4.0
        return logits

    def start(self, prompts):
        return self._logits(0), 0

    def step(self, tokens, t):
        self.fed.append([int(x) for x in tokens])
        return self._logits(t + 1), t + 1


def test_greedy_follows_the_favourite_until_eos():
    engine = ScriptedEngine([[5, 6, 2], [7, 2]])
    assert GreedySampler()(engine, [[5], [6]], VOCAB) == [[5, 6], [7]]


def test_greedy_stops_at_max_len():
    engine = ScriptedEngine([[5]])  # never says <EOS>
    assert GreedySampler(max_len=4)(engine, [[5]], VOCAB) == [[5, 5, 5, 5]]


@pytest.mark.parametrize("special", ["<UNK>", "<PAD>", "<SOS>", "<SEP>"])
def test_special_tokens_are_never_emitted(special):
    banned = VOCAB.index[special]
    engine = ScriptedEngine([[banned, 2]], runner_up=6)
    assert GreedySampler()(engine, [[5]], VOCAB) == [[6]]


def test_unk_allowed_when_asked():
    engine = ScriptedEngine([[VOCAB.unk_id, 2]])
    assert GreedySampler(allow_unk=True)(engine, [[5]], VOCAB) == [[VOCAB.unk_id]]


def test_min_len_holds_back_eos():
    engine = ScriptedEngine([[2]], runner_up=7)
    assert GreedySampler(min_len=2)(engine, [[5]], VOCAB) == [[7, 7]]


def test_bad_settings_are_rejected_with_a_message():
    with pytest.raises(ChatbotError, match="max_len"):
        GreedySampler(max_len=0)
    with pytest.raises(ChatbotError, match="min_len"):
        GreedySampler(max_len=3, min_len=4)
    with pytest.raises(ChatbotError, match="greedy"):
        get_sampler("nonsense")
