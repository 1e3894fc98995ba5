"""What only the encoder-decoder has: its example format, its layers and inputs, and padding
in the prompt. Everything every architecture must do is in tests/test_contract.py."""

from __future__ import annotations

import keras
import numpy as np

from chatbot.config import ModelConfig
from chatbot.models import seq2seq
from chatbot.models.base import OUTPUT_LAYER
from chatbot.text.vocab import SPECIALS, Vocabulary

VOCAB = Vocabulary(list(SPECIALS) + [f"w{i}" for i in range(25)])
SOS, EOS, SEP = VOCAB.sos_id, VOCAB.eos_id, VOCAB.sep_id


def make_model(num_layers: int = 1, seed: int = 0, **overrides) -> tuple[keras.Model, ModelConfig]:
    keras.utils.set_random_seed(seed)
    config = ModelConfig(arch="seq2seq", embedding_dim=8, hidden_dim=16, num_layers=num_layers,
                         vocab_size=len(VOCAB), **overrides)
    return seq2seq.build(config), config


def test_layers_and_inputs():
    model, _ = make_model(num_layers=2)
    assert [layer.name for layer in model.layers] == [
        "decoder_tokens", "encoder_tokens", "embedding", "encoder_lstm_1", "decoder_lstm_1",
        "encoder_lstm_2", "decoder_lstm_2", OUTPUT_LAYER,
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
