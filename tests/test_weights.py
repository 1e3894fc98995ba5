"""Weights read from a `.keras` file or a model in memory: keyed by layer name and path."""

from __future__ import annotations

import keras
import numpy as np

from chatbot.config import ModelConfig
from chatbot.models import lstm
from chatbot.models.base import DENSE, OUTPUT_LAYER
from chatbot.models.weights import model_weights, read_keras_weights


def test_sublayers_are_keyed_by_their_path_not_their_position():
    # Keras writes MultiHeadAttention's sublayers in name order (key, output, query, value):
    # a positional list would hand the key projection to whoever asks for the query.
    keras.utils.set_random_seed(0)
    tokens = keras.Input((None,), dtype="int32", name="tokens")
    x = keras.layers.Embedding(10, 8, name="embedding")(tokens)
    attention = keras.layers.MultiHeadAttention(2, 4, name="self_attention")
    model = keras.Model(tokens, attention(x, x), name="probe")
    found = model_weights(model)["self_attention"]
    for path, variable in [("query_dense/vars/0", attention.query_dense.kernel),
                           ("key_dense/vars/0", attention.key_dense.kernel),
                           ("value_dense/vars/1", attention.value_dense.bias),
                           ("output_dense/vars/0", attention.output_dense.kernel)]:
        np.testing.assert_array_equal(found[path], variable.numpy())
    assert len(found) == 8  # kernel and bias of four projections, nothing else


def test_a_run_saved_with_the_old_output_layer_name_still_loads(tmp_path, monkeypatch):
    # Before the architecture contract, the output layer was called "time_distributed_dense".
    monkeypatch.setattr(lstm, "OUTPUT_LAYER", "time_distributed_dense")
    keras.utils.set_random_seed(0)
    model = lstm.build(ModelConfig(embedding_dim=8, hidden_dim=16, vocab_size=12))
    assert model.layers[-1].name == "time_distributed_dense"
    model.save(tmp_path / "model.keras")
    weights = read_keras_weights(tmp_path / "model.keras")
    assert "time_distributed_dense" not in weights
    kernel, bias = (weights[OUTPUT_LAYER][path] for path in DENSE)
    np.testing.assert_array_equal(kernel, model.layers[-1].kernel.numpy())
    np.testing.assert_array_equal(bias, model.layers[-1].bias.numpy())
