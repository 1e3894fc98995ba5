"""The output layer's starting bias: each token's log frequency among the training targets."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from chatbot.models.base import DENSE, OUTPUT_LAYER, arrays
from chatbot.models.common import frequency_bias
from chatbot.models.weights import read_keras_weights
from chatbot.rundir import MODEL
from chatbot.training.prepare import prepare_data
from chatbot.training.train import train
from tests.conftest import tiny_config


def test_the_bias_is_the_log_of_add_one_shares_of_scored_tokens():
    # Token 2 scored three times, 3 once; 0 is "not scored"; 9 is outside a vocabulary of 5.
    bias = frequency_bias([[0, 0, 2, 3], [2, 2], [9]], vocab_size=5)
    counts = np.array([1, 1, 4, 2, 1])  # one more than seen, 0 and 1 included
    assert bias.dtype == np.float32 and bias.shape == (5,)
    np.testing.assert_allclose(bias, np.log(counts / counts.sum()), rtol=1e-6)
    # So the untrained model's softmax (its kernel's products aside) is those shares.
    shares = np.exp(bias) / np.exp(bias).sum()
    np.testing.assert_allclose(shares, counts / counts.sum(), rtol=1e-6)
    assert math.isclose(float(frequency_bias([], 3)[0]), math.log(1 / 3), rel_tol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("on", [True, False])
def test_a_fresh_run_starts_from_the_frequency_bias_unless_it_is_off(tmp_path, tiny_tsv, on):
    config = tiny_config(epochs=1, run_eagerly=True)
    config.train.learning_rate = 0.0  # one epoch that changes nothing: the weights it began with
    config.train.frequency_bias = on
    train(tiny_tsv, tmp_path / "run", config, log=lambda _: None, verbose=0)
    data = prepare_data(config, tiny_tsv)
    _, bias = arrays(read_keras_weights(tmp_path / "run" / MODEL), OUTPUT_LAYER, DENSE)
    expected = frequency_bias(data.targets(config.data.max_len), len(data.vocab))
    if on:
        np.testing.assert_allclose(bias, expected, rtol=1e-6)
        # The reply tokens' bias is above that of tokens only prompts hold.
        reply_ids = {t for _, target in data.train_examples for t in target if t}
        prompt_only = set(range(len(data.vocab))) - reply_ids
        assert min(bias[sorted(reply_ids)]) > max(bias[sorted(prompt_only)])
    else:
        assert not bias.any()


def test_without_examples_in_memory_the_targets_are_the_replies_and_eos(tiny_tsv):
    # Prepared data streams its examples from shards: its targets come from the replies of its
    # measured sample, which hold the same scored tokens as the examples of those pairs.
    config = tiny_config()
    data = prepare_data(config, tiny_tsv)
    streamed = dataclasses.replace(data, train_examples=[])
    scored = [[t for t in target if t] for target in data.targets(config.data.max_len)]
    assert list(streamed.targets(config.data.max_len)) == scored
    assert all(target[-1] == data.vocab.eos_id for target in scored)
