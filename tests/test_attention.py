"""What only seq2seq with attention has: its layers, the attention weights (NumPy against Keras,
a distribution over real prompt positions, batched and reordered), and the prompt mask. Everything
every architecture must do is in tests/test_contract.py."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from chatbot.config import ModelConfig
from chatbot.decoding.samplers import select_state
from chatbot.models import attention
from chatbot.models.base import OUTPUT_LAYER
from chatbot.models.weights import model_weights, read_keras_weights
from chatbot.text.vocab import SPECIALS, Vocabulary

VOCAB = Vocabulary(list(SPECIALS) + [f"w{i}" for i in range(25)])
SOS, EOS, SEP = VOCAB.sos_id, VOCAB.eos_id, VOCAB.sep_id


def make_model(num_layers: int = 1, seed: int = 0, **overrides) -> tuple[keras.Model, ModelConfig]:
    keras.utils.set_random_seed(seed)
    config = ModelConfig(arch="attention", embedding_dim=8, hidden_dim=16, num_layers=num_layers,
                         vocab_size=len(VOCAB), **overrides)
    model = attention.build(config)
    # A sharper score than the initial scale of 1, so the parity tests see peaked attention.
    model.get_layer("attention").scale.assign(3.0)
    return model, config


def teacher_forced(model, prompt, reply) -> np.ndarray:
    """The Keras model's logits (tgt, vocab) for one pair, decoder reading <SOS> + reply."""
    (enc, dec), _ = attention.encode_example(prompt, reply, VOCAB)
    return np.asarray(model((np.array([enc]), np.array([dec]))))[0]


def engine_run(engine, prompt, reply) -> tuple[np.ndarray, np.ndarray]:
    """The NumPy engine's logits (tgt, vocab) and attention weights (tgt, src), step by step."""
    logits, state = engine.start([prompt])
    got, weights = [logits[0]], [state["attention"][0]]
    for token in reply:
        logits, state = engine.step(np.array([token]), state)
        got.append(logits[0])
        weights.append(state["attention"][0])
    return np.stack(got), np.stack(weights)


def keras_attention_weights(model, config, prompt, reply) -> np.ndarray:
    """keras.layers.Attention's own weights (tgt, src), from the model's intermediate outputs."""
    top = config.num_layers
    probe = keras.Model(model.inputs, [model.get_layer(f"decoder_lstm_{top}").output,
                                       model.get_layer(f"encoder_lstm_{top}").output[0]])
    (enc, dec), _ = attention.encode_example(prompt, reply, VOCAB)
    enc, dec = np.array([enc]), np.array([dec])
    query, value = probe((enc, dec))
    _, weights = model.get_layer("attention")(
        [query, value], mask=[dec != 0, enc != 0], return_attention_scores=True
    )
    return np.asarray(weights)[0]


def test_layers_and_inputs():
    model, _ = make_model(num_layers=2)
    assert [layer.name for layer in model.layers] == [
        "decoder_tokens", "encoder_tokens", "embedding", "encoder_lstm_1", "decoder_lstm_1",
        "encoder_lstm_2", "decoder_lstm_2", "attention", "attention_concat", "attention_combine",
        OUTPUT_LAYER,
    ]
    assert [t.name for t in model.inputs] == ["encoder_tokens", "decoder_tokens"]
    assert model.get_layer("embedding").mask_zero
    assert model.get_layer("attention").use_scale
    assert model.get_layer("attention").score_mode == "dot"


def test_dropout_layers_are_named():
    model, _ = make_model(num_layers=2, dropout=0.1)
    dropouts = [layer.name for layer in model.layers if isinstance(layer, keras.layers.Dropout)]
    assert sorted(dropouts) == [
        "attention_dropout", "decoder_embedding_dropout", "decoder_lstm_1_dropout",
        "decoder_lstm_2_dropout", "encoder_embedding_dropout", "encoder_lstm_1_dropout",
    ]


def test_encode_example_is_seq2seqs():
    assert attention.encode_example([7, 8], [9], VOCAB) == (([7, 8], [SOS, 9]), [9, EOS])
    assert attention.encode_example([], [9], VOCAB) == (([SEP], [SOS, 9]), [9, EOS])


@pytest.mark.parametrize("num_layers", [1, 2])
def test_numpy_engine_matches_keras_forward_pass(num_layers):
    model, config = make_model(num_layers)
    engine = attention.Engine(model_weights(model), config, VOCAB)
    for prompt, reply in [([7, 8, 9, 10], [11, 12, 13]), ([], [14, 15])]:
        logits, weights = engine_run(engine, prompt, reply)
        assert np.max(np.abs(logits - teacher_forced(model, prompt, reply))) < 1e-4
        expected = keras_attention_weights(model, config, prompt, reply)
        assert np.max(np.abs(weights - expected)) < 1e-5


def test_attention_weights_are_a_distribution_over_real_prompt_positions():
    model, config = make_model()
    engine = attention.Engine(model_weights(model), config, VOCAB)
    prompts = [[7], [8, 9, 10, 11], [], [12, 13]]
    _, state = engine.start(prompts)
    for _ in range(2):
        weights = state["attention"]  # (batch, src)
        assert weights.shape == (4, 4)
        assert np.all(weights >= 0)
        for row, prompt in enumerate(prompts):
            real = max(len(prompt), 1)  # an empty prompt is read as <SEP>
            assert weights[row, :real].sum() == pytest.approx(1.0, abs=1e-6)
            assert np.all(weights[row, real:] == 0)
        _, state = engine.step(np.array([14, 15, 16, 17]), state)


def test_batched_start_with_padding_equals_one_by_one():
    model, config = make_model(num_layers=2)
    engine = attention.Engine(model_weights(model), config, VOCAB)
    prompts = [[7], [8, 9, 10, 11], [], [12, 13]]
    batched, state = engine.start(prompts)
    tokens = np.array([14, 15, 16, 17])
    batched_next, next_state = engine.step(tokens, state)
    for row, prompt in enumerate(prompts):
        single, single_state = engine.start([prompt])
        single_next, single_next_state = engine.step(tokens[row: row + 1], single_state)
        src = single_state["attention"].shape[1]
        assert np.max(np.abs(batched[row] - single[0])) < 1e-5
        assert np.max(np.abs(batched_next[row] - single_next[0])) < 1e-5
        np.testing.assert_allclose(next_state["attention"][row, :src],
                                   single_next_state["attention"][0], atol=1e-6)


def test_select_reorders_every_array_of_the_state():
    model, config = make_model(num_layers=2)
    engine = attention.Engine(model_weights(model), config, VOCAB)
    prompts = [[7], [8, 9, 10], [11, 12]]
    _, state = engine.start(prompts)
    rows = np.array([2, 0, 0])
    tokens = np.array([13, 14, 15])
    logits, _ = engine.step(tokens, select_state(state, rows))
    expected, _ = engine.step(tokens, engine.start([prompts[r] for r in rows])[1])
    np.testing.assert_allclose(logits, expected, atol=1e-5)
    np.testing.assert_array_equal(select_state(state, rows)["encoder_mask"],
                                  state["encoder_mask"][rows])


def test_the_learned_scale_is_read_from_the_keras_file(tmp_path):
    model, config = make_model(num_layers=2, dropout=0.1)
    model.save(tmp_path / "model.keras")
    from_file = read_keras_weights(tmp_path / "model.keras")
    assert from_file["attention"]["vars/0"] == pytest.approx(3.0)  # set by make_model
    assert attention.Engine(from_file, config, VOCAB).scale == pytest.approx(3.0)


def test_padding_and_the_padding_embedding_do_not_change_logits():
    # The encoder's final state ignores padding either way; only the attention layer's value
    # mask keeps the padded encoder outputs out of the softmax, so this checks the mask arrives.
    model, _ = make_model(num_layers=2)
    enc, dec = np.array([[7, 8, 9]]), np.array([[1, 10, 11]])
    expected = np.asarray(model((enc, dec)))
    for extra in (1, 5):
        padded = np.asarray(model((np.pad(enc, ((0, 0), (0, extra))), dec)))
        assert np.max(np.abs(padded - expected)) < 1e-6
    embedding = model.get_layer("embedding").embeddings
    embedding.assign(np.concatenate([np.full((1, 8), 5.0), embedding.numpy()[1:]]))
    moved = np.asarray(model((np.pad(enc, ((0, 0), (0, 5))), dec)))
    assert np.max(np.abs(moved - expected)) < 1e-6
