"""What only the card's model has: the conditional language model's example format, its layer
list, and Keras' fit() on batches of different lengths. Everything every architecture must do
is in tests/test_contract.py."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from chatbot.config import ModelConfig, TrainConfig
from chatbot.models import lstm
from chatbot.models.base import OUTPUT_LAYER
from chatbot.models.common import compile_model
from chatbot.text.vocab import SPECIALS, Vocabulary
from chatbot.training.batches import Batches

VOCAB = Vocabulary(list(SPECIALS) + [f"w{i}" for i in range(25)])


def make_model(num_layers: int = 1, seed: int = 0) -> tuple[keras.Model, ModelConfig]:
    keras.utils.set_random_seed(seed)
    config = ModelConfig(embedding_dim=8, hidden_dim=16, num_layers=num_layers,
                         vocab_size=len(VOCAB))
    return lstm.build(config), config


def test_layers_are_the_cards():
    model, _ = make_model(num_layers=2)
    names = [layer.name for layer in model.layers]
    assert names == ["tokens", "embedding", "lstm_1", "lstm_2", OUTPUT_LAYER]
    # The card's TimeDistributed(Dense) is a Dense on the 3-D LSTM output (see models/lstm.py).
    assert isinstance(model.get_layer(OUTPUT_LAYER), keras.layers.Dense)


def test_encode_example_scores_reply_and_eos_only():
    (tokens,), target = lstm.encode_example([7, 8], [9, 10], VOCAB)
    assert tokens == [VOCAB.sos_id, 7, 8, VOCAB.sep_id, 9, 10]
    assert target == [0, 0, 0, 9, 10, VOCAB.eos_id]


def test_loss_is_mean_cross_entropy_over_scored_tokens():
    model, _ = make_model()
    compile_model(model, TrainConfig())
    x = np.array([[1, 7, 8, 4, 9, 10], [1, 7, 4, 9, 0, 0]], dtype="int32")
    y = np.array([[0, 0, 0, 9, 10, 2], [0, 0, 9, 2, 0, 0]], dtype="int32")
    logits = np.asarray(model(x), dtype=np.float64)
    logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    scored = np.argwhere(y != 0)
    expected = -np.mean([logp[b, t, y[b, t]] for b, t in scored])
    predicted = logits.argmax(-1)
    accuracy = np.mean([predicted[b, t] == y[b, t] for b, t in scored])
    result = model.evaluate(x, y, verbose=0, return_dict=True)
    assert result["loss"] == pytest.approx(expected, rel=1e-4)
    assert result["masked_accuracy"] == pytest.approx(accuracy)


def test_keras_fit_trains_on_batches_of_different_lengths():
    # keras.layers.TimeDistributed fails here in graph mode (Keras 3.15); the Dense must not.
    model, _ = make_model()
    compile_model(model, TrainConfig(learning_rate=1e-2))
    examples = [lstm.encode_example([7] * n, [8 + n % 5] * (n % 3 + 1), VOCAB)
                for n in range(1, 13)]
    batches = Batches(examples, batch_size=3, seed=0)
    lengths = {batch[0].shape[1] for batch in batches}
    assert len(lengths) >= 3
    history = model.fit(batches.dataset(), epochs=3, verbose=0)
    losses = history.history["loss"]
    assert all(np.isfinite(losses)) and losses[-1] < losses[0]
