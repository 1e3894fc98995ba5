"""The encoder-decoder: layer names, NumPy inference parity, masking, saving, learning."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from chatbot.batches import Batches
from chatbot.config import ModelConfig, TrainConfig
from chatbot.models import arch_module, seq2seq
from chatbot.models.common import compile_model
from chatbot.samplers import select_state
from chatbot.vocab import SPECIALS, Vocabulary
from chatbot.weights import model_weights, read_keras_weights

VOCAB = Vocabulary(list(SPECIALS) + [f"w{i}" for i in range(25)])
SOS, EOS, SEP = VOCAB.sos_id, VOCAB.eos_id, VOCAB.sep_id


def make_model(num_layers: int = 1, seed: int = 0, **overrides) -> tuple[keras.Model, ModelConfig]:
    keras.utils.set_random_seed(seed)
    config = ModelConfig(arch="seq2seq", embedding_dim=8, hidden_dim=16, num_layers=num_layers,
                         vocab_size=len(VOCAB), **overrides)
    return seq2seq.build(config), config


def teacher_forced(model, prompt, reply) -> np.ndarray:
    """The Keras model's logits (tgt, vocab) for one pair, decoder reading <SOS> + reply."""
    (enc, dec), _ = seq2seq.encode_example(prompt, reply, VOCAB)
    return np.asarray(model((np.array([enc]), np.array([dec]))))[0]


def engine_logits(engine, prompt, reply) -> np.ndarray:
    """The NumPy engine's logits (tgt, vocab) for the same pair, one step at a time."""
    logits, state = engine.start([prompt])
    got = [logits[0]]
    for token in reply:
        logits, state = engine.step(np.array([token]), state)
        got.append(logits[0])
    return np.stack(got)


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
    assert arch_module("seq2seq") is seq2seq


def test_every_layer_is_named():
    model, _ = make_model(num_layers=2)
    assert [layer.name for layer in model.layers] == [
        "decoder_tokens", "encoder_tokens", "embedding", "encoder_lstm_1", "decoder_lstm_1",
        "encoder_lstm_2", "decoder_lstm_2", "time_distributed_dense",
    ]
    # Inputs in the order encode_example returns them, whatever the layer list's order.
    assert [t.name for t in model.inputs] == ["encoder_tokens", "decoder_tokens"]
    assert model.get_layer("embedding").mask_zero
    assert model.get_layer("embedding").input_dim == len(VOCAB)


def test_dropout_layers_are_named():
    model, _ = make_model(num_layers=2, dropout=0.1)
    dropouts = [layer.name for layer in model.layers if isinstance(layer, keras.layers.Dropout)]
    assert sorted(dropouts) == [
        "decoder_embedding_dropout", "decoder_lstm_1_dropout", "decoder_lstm_2_dropout",
        "encoder_embedding_dropout", "encoder_lstm_1_dropout",
    ]


def test_output_is_one_logit_vector_per_reply_step():
    model, _ = make_model()
    logits = model((np.array([[7, 8, 9], [7, 0, 0]]), np.array([[1, 9, 10, 11], [1, 9, 0, 0]])))
    assert tuple(logits.shape) == (2, 4, len(VOCAB))


def test_encode_example_shifts_the_reply_by_one():
    (enc, dec), target = seq2seq.encode_example([7, 8], [9, 10], VOCAB)
    assert enc == [7, 8]
    assert dec == [SOS, 9, 10]
    assert target == [9, 10, EOS]


def test_encode_example_reads_an_empty_prompt_as_sep():
    (enc, dec), target = seq2seq.encode_example([], [9], VOCAB)
    assert enc == [SEP]
    assert dec == [SOS, 9]
    assert target == [9, EOS]


@pytest.mark.parametrize("num_layers", [1, 2])
def test_numpy_engine_matches_keras_forward_pass(num_layers):
    model, config = make_model(num_layers)
    engine = seq2seq.Engine(model_weights(model), config, VOCAB)
    for prompt, reply in [([7, 8, 9], [10, 11, 12]), ([], [13, 14])]:
        expected = teacher_forced(model, prompt, reply)
        # start() predicts from <SOS>; each step() from the reply token just fed.
        assert np.max(np.abs(engine_logits(engine, prompt, reply) - expected)) < 1e-4


def test_batched_start_with_padding_equals_one_by_one():
    model, config = make_model(num_layers=2)
    engine = seq2seq.Engine(model_weights(model), config, VOCAB)
    prompts = [[7], [8, 9, 10, 11], [], [12, 13]]
    batched, state = engine.start(prompts)
    tokens = np.array([14, 15, 16, 17])
    batched_next, _ = engine.step(tokens, state)
    for row, prompt in enumerate(prompts):
        single, single_state = engine.start([prompt])
        single_next, _ = engine.step(tokens[row: row + 1], single_state)
        assert np.max(np.abs(batched[row] - single[0])) < 1e-5
        assert np.max(np.abs(batched_next[row] - single_next[0])) < 1e-5


def test_select_reorders_the_state_like_the_prompts():
    model, config = make_model(num_layers=2)
    engine = seq2seq.Engine(model_weights(model), config, VOCAB)
    prompts = [[7], [8, 9, 10], [11, 12]]
    _, state = engine.start(prompts)
    rows = np.array([2, 0, 0])
    picked = select_state(state, rows)
    _, expected = engine.start([prompts[r] for r in rows])
    assert type(picked) is type(state)
    for (h, c), (eh, ec) in zip(picked, expected):
        np.testing.assert_allclose(h, eh, atol=1e-6)
        np.testing.assert_allclose(c, ec, atol=1e-6)


def test_weights_read_from_keras_file_equal_the_models(tmp_path):
    model, config = make_model(num_layers=2, dropout=0.1)
    model.save(tmp_path / "model.keras")
    from_file = read_keras_weights(tmp_path / "model.keras")
    in_memory = model_weights(model)
    assert from_file.keys() == in_memory.keys()
    for name, arrays in in_memory.items():
        assert len(from_file[name]) == len(arrays)
        for a, b in zip(from_file[name], arrays):
            np.testing.assert_array_equal(a, b)
    prompt, reply = [7, 8], [9, 10]
    np.testing.assert_array_equal(
        engine_logits(seq2seq.Engine(from_file, config, VOCAB), prompt, reply),
        engine_logits(seq2seq.Engine(in_memory, config, VOCAB), prompt, reply),
    )
    reloaded = keras.saving.load_model(tmp_path / "model.keras")
    np.testing.assert_allclose(teacher_forced(reloaded, prompt, reply),
                               teacher_forced(model, prompt, reply), atol=1e-6)


def test_padding_and_the_padding_embedding_do_not_change_logits():
    model, _ = make_model(num_layers=2)
    enc, dec = np.array([[7, 8, 9]]), np.array([[1, 10, 11]])
    expected = np.asarray(model((enc, dec)))
    padded = np.asarray(model((np.pad(enc, ((0, 0), (0, 5))), dec)))
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
    examples = [seq2seq.encode_example([7] * n, [8 + n % 5] * (n % 4 + 1), VOCAB)
                for n in range(1, 13)]
    batches = Batches(examples, batch_size=3, seed=0)
    shapes = {(x[0].shape[1], x[1].shape[1]) for x, _ in batches}
    assert len(shapes) >= 3
    history = model.fit(batches.dataset(), epochs=3, verbose=0)
    losses = history.history["loss"]
    assert all(np.isfinite(losses)) and losses[-1] < losses[0]


PAIRS = [  # prompts share tokens, replies differ in length: the encoder must tell them apart
    ([7, 8], [9, 10, 11]),
    ([8, 7], [12]),
    ([7, 13, 14], [15, 9]),
    ([16], [17, 18, 19, 20]),
    ([], [21, 9]),
]


@pytest.mark.slow
def test_learns_the_training_replies():
    keras.utils.set_random_seed(1)
    config = ModelConfig(arch="seq2seq", embedding_dim=16, hidden_dim=32, vocab_size=len(VOCAB))
    model = seq2seq.build(config)
    compile_model(model, TrainConfig(learning_rate=1e-2))
    examples = [seq2seq.encode_example(p, r, VOCAB) for p, r in PAIRS]
    model.fit(Batches(examples, batch_size=2, seed=0).dataset(), epochs=120, verbose=0)
    engine = seq2seq.Engine(model_weights(model), config, VOCAB)
    assert greedy(engine, [p for p, _ in PAIRS]) == [r for _, r in PAIRS]
