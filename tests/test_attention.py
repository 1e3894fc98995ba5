"""Seq2seq with attention: layer names, NumPy parity (logits and weights), masking, learning."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from chatbot.batches import Batches
from chatbot.config import ModelConfig, TrainConfig
from chatbot.models import arch_module, attention
from chatbot.models.common import compile_model
from chatbot.samplers import select_state
from chatbot.vocab import SPECIALS, Vocabulary
from chatbot.weights import model_weights, read_keras_weights

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


def greedy(engine, prompts, max_len: int = 12) -> list[list[int]]:
    """Arg-max decoding that never emits <PAD>, <SOS>, <SEP> or <UNK> and stops at <EOS>."""
    banned = [VOCAB.pad_id, SOS, SEP, VOCAB.unk_id]
    logits, state = engine.start(prompts)
    replies, done = [[] for _ in prompts], np.zeros(len(prompts), dtype=bool)
    for _ in range(max_len):
        logits = logits.copy()
        logits[:, banned] = -np.inf
        tokens = logits.argmax(-1)
        for row in np.flatnonzero(~done):
            done[row] = tokens[row] == EOS
            if not done[row]:
                replies[row].append(int(tokens[row]))
        if done.all():
            break
        logits, state = engine.step(tokens, state)
    return replies


def test_arch_is_registered():
    assert arch_module("attention") is attention


def test_every_layer_is_named():
    model, _ = make_model(num_layers=2)
    assert [layer.name for layer in model.layers] == [
        "decoder_tokens", "encoder_tokens", "embedding", "encoder_lstm_1", "decoder_lstm_1",
        "encoder_lstm_2", "decoder_lstm_2", "attention", "attention_concat", "attention_combine",
        "time_distributed_dense",
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


def test_output_is_one_logit_vector_per_reply_step():
    model, _ = make_model()
    logits = model((np.array([[7, 8, 9], [7, 0, 0]]), np.array([[1, 9, 10, 11], [1, 9, 0, 0]])))
    assert tuple(logits.shape) == (2, 4, len(VOCAB))


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


def test_weights_read_from_keras_file_equal_the_models(tmp_path):
    model, config = make_model(num_layers=2, dropout=0.1)
    model.save(tmp_path / "model.keras")
    from_file = read_keras_weights(tmp_path / "model.keras")
    in_memory = model_weights(model)
    assert from_file.keys() == in_memory.keys()
    assert from_file["attention"][0] == pytest.approx(3.0)  # the learned score scale
    for name, arrays in in_memory.items():
        assert len(from_file[name]) == len(arrays)
        for a, b in zip(from_file[name], arrays):
            np.testing.assert_array_equal(a, b)
    prompt, reply = [7, 8], [9, 10]
    for got, expected in zip(engine_run(attention.Engine(from_file, config, VOCAB), prompt, reply),
                             engine_run(attention.Engine(in_memory, config, VOCAB), prompt, reply)):
        np.testing.assert_array_equal(got, expected)
    reloaded = keras.saving.load_model(tmp_path / "model.keras")
    np.testing.assert_allclose(teacher_forced(reloaded, prompt, reply),
                               teacher_forced(model, prompt, reply), atol=1e-6)


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


def test_padding_changes_neither_loss_nor_accuracy():
    model, _ = make_model()
    compile_model(model, TrainConfig())
    enc = np.array([[7, 8, 9], [7, 0, 0]], dtype="int32")
    dec = np.array([[1, 10, 11, 12], [1, 13, 0, 0]], dtype="int32")
    y = np.array([[10, 11, 12, 2], [13, 2, 0, 0]], dtype="int32")
    short = model.evaluate((enc, dec), y, verbose=0, return_dict=True)
    pad = ((0, 0), (0, 6))
    long = model.evaluate((np.pad(enc, pad), np.pad(dec, pad)), np.pad(y, pad), verbose=0,
                          return_dict=True)
    assert short["loss"] == pytest.approx(long["loss"], rel=1e-5)
    assert short["masked_accuracy"] == pytest.approx(long["masked_accuracy"], rel=1e-6)


def test_trains_on_batches_of_different_lengths():
    model, _ = make_model()
    compile_model(model, TrainConfig(learning_rate=1e-2))
    examples = [attention.encode_example([7] * n, [8 + n % 5] * (n % 4 + 1), VOCAB)
                for n in range(1, 13)]
    batches = Batches(examples, batch_size=3, seed=0)
    shapes = {(x[0].shape[1], x[1].shape[1]) for x, _ in batches}
    assert len(shapes) >= 3
    history = model.fit(batches.dataset(), epochs=3, verbose=0)
    losses = history.history["loss"]
    assert all(np.isfinite(losses)) and losses[-1] < losses[0]


PAIRS = [  # prompts share tokens, replies differ in length: the model must read the prompt
    ([7, 8], [9, 10, 11]),
    ([8, 7], [12]),
    ([7, 13, 14], [15, 9]),
    ([16], [17, 18, 19, 20]),
    ([], [21, 9]),
]


@pytest.mark.slow
def test_learns_the_training_replies():
    keras.utils.set_random_seed(1)
    config = ModelConfig(arch="attention", embedding_dim=16, hidden_dim=32,
                         vocab_size=len(VOCAB))
    model = attention.build(config)
    compile_model(model, TrainConfig(learning_rate=1e-2))
    examples = [attention.encode_example(p, r, VOCAB) for p, r in PAIRS]
    model.fit(Batches(examples, batch_size=2, seed=0).dataset(), epochs=120, verbose=0)
    engine = attention.Engine(model_weights(model), config, VOCAB)
    assert greedy(engine, [p for p, _ in PAIRS]) == [r for _, r in PAIRS]
