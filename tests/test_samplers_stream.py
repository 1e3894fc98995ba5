"""The samplers' step hook (`on_step`), which `chatbot serve` streams tokens through."""

from __future__ import annotations

import numpy as np
import pytest

from chatbot.decoding.samplers import BeamSampler, GreedySampler, RandomSampler
from tests.helpers import EOS, VOCAB, A, B, C, MarkovEngine, ScriptedEngine


def test_on_step_sees_every_token_as_it_comes_and_changes_nothing():
    script = [[A, B, EOS], [C, EOS]]  # row 1 ends a step before row 0
    seen: list[tuple[list[int], list[int]]] = []
    found = GreedySampler(max_len=5)(
        ScriptedEngine(script), [[A], [B]], VOCAB,
        on_step=lambda rows, tokens: seen.append((rows.tolist(), tokens.tolist())))
    assert seen == [([0, 1], [A, C]), ([0, 1], [B, EOS]), ([0], [EOS])]  # finished rows leave
    assert [c[0].tokens for c in found] == [[A, B], [C]]
    assert found == GreedySampler(max_len=5)(ScriptedEngine(script), [[A], [B]], VOCAB)


def test_sampled_tokens_stream_as_the_search_returns_them():
    matrix = np.random.default_rng(0).normal(size=(len(VOCAB), len(VOCAB)))
    streamed: dict[int, list[int]] = {0: [], 1: []}

    def hook(rows, tokens):
        for row, token in zip(rows, tokens):
            if token != EOS:
                streamed[int(row)].append(int(token))

    sampler = RandomSampler(max_len=8, seed=3)
    found = sampler(MarkovEngine(matrix), [[A], [B]], VOCAB, on_step=hook)
    assert [c[0].tokens for c in found] == [streamed[0], streamed[1]]
    assert found == sampler(MarkovEngine(matrix), [[A], [B]], VOCAB)  # the hook draws nothing


def test_a_hook_that_raises_stops_the_search():
    engine = ScriptedEngine([[A, A, A, A, A]])

    class Gone(Exception):
        pass

    def hook(rows, tokens):
        raise Gone

    with pytest.raises(Gone):
        GreedySampler(max_len=5)(engine, [[A]], VOCAB, on_step=hook)
    assert engine.fed == []  # stopped after the first step, before feeding it back


def test_beam_search_refuses_a_hook():
    with pytest.raises(ValueError, match="cannot stream"):
        BeamSampler(width=2)(ScriptedEngine([[A, EOS]]), [[A]], VOCAB,
                             on_step=lambda rows, tokens: None)
