"""The transformer's self-attention, as `Bot.attention`, `chatbot attention` and `/attention`
show it: every layer's and head's weights over `<SOS> prompt <SEP> reply`, checked against
Keras' own MultiHeadAttention scores, and drawn as a grid of heatmaps."""

from __future__ import annotations

import keras
import matplotlib.image
import numpy as np
import pytest

from chatbot.config import ModelConfig, RunConfig
from chatbot.decoding.bot import AttentionMap, Bot
from chatbot.errors import ChatbotError
from chatbot.models import lstm, transformer
from chatbot.models.weights import model_weights
from chatbot.plot import plot_attention_map
from chatbot.text.vocab import SPECIALS, Vocabulary
from tests.helpers import drive

VOCAB = Vocabulary([*SPECIALS, "hello", "你", "好", "hi", "!", "there"])
LAYERS, HEADS = 2, 2


def tiny_bot(arch: str = "transformer") -> tuple[Bot, keras.Model]:
    """An untrained model's Bot: attention needs weights, not learning."""
    keras.utils.set_random_seed(0)
    config = ModelConfig(arch=arch, embedding_dim=8, hidden_dim=16, num_layers=LAYERS,
                         num_heads=HEADS, max_positions=32, vocab_size=len(VOCAB))
    model = (transformer if arch == "transformer" else lstm).build(config)
    return Bot(RunConfig(model=config), VOCAB, model_weights(model)), model


def keras_scores(model: keras.Model, ids: list[int]) -> np.ndarray:
    """Keras' own attention scores of every block: (layers, heads, time, time)."""
    probe = keras.Model(model.inputs, [model.get_layer(f"block_{i}_norm_1").output
                                       for i in range(1, LAYERS + 1)])
    normed = probe([np.array([ids])])
    return np.stack([np.asarray(model.get_layer(f"block_{i}_attention")(
        h, h, use_causal_mask=True, return_attention_scores=True)[1])[0]
        for i, h in enumerate(normed, start=1)])


def test_the_map_is_every_heads_self_attention_over_prompt_and_reply():
    bot, model = tiny_bot()
    amap = bot.attention("你好 hello", ["hi", "there", "!"])
    assert amap.tokens == ["<SOS>", "你", "好", "hello", "<SEP>", "hi", "there", "!"]
    assert amap.prompt == ["你", "好", "hello"]
    assert amap.reply == ["hi", "there", "!", "<EOS>"]
    count = len(amap.tokens)
    assert amap.weights.shape == (LAYERS, HEADS, count, count)
    np.testing.assert_allclose(amap.weights.sum(axis=-1), 1.0, atol=1e-5)
    later = np.triu(np.ones((count, count), bool), k=1)  # keys after the query
    assert np.all(amap.weights[..., later] == 0)
    ids = [VOCAB.index[t] for t in amap.tokens]
    np.testing.assert_allclose(amap.weights, keras_scores(model, ids), atol=1e-5)


def test_a_reply_that_filled_max_positions_keeps_the_tokens_the_model_read():
    bot, _ = tiny_bot()
    reply = ["hi"] * 40  # the engine ends a reply at max_positions (32)
    amap = bot.attention("hello", reply)
    assert len(amap.tokens) == 32 and amap.tokens[:4] == ["<SOS>", "hello", "<SEP>", "hi"]
    assert amap.weights.shape == (LAYERS, HEADS, 32, 32)


def test_architectures_without_attention_name_the_two_that_have_it():
    bot, _ = tiny_bot("lstm")
    with pytest.raises(ChatbotError, match="no attention.*--arch attention.*--arch transformer"):
        bot.attention("hello", ["hi"])


def test_the_grid_is_drawn_one_panel_per_layer_and_head(tmp_path):
    bot, _ = tiny_bot()
    amap = bot.attention("你好 hello", ["hi", "!"])
    out = plot_attention_map(amap, tmp_path / "grid.png")
    six_heads = np.concatenate([amap.weights] * 3, axis=1)
    wide = plot_attention_map(AttentionMap(amap.prompt, amap.reply, six_heads, amap.tokens),
                              tmp_path / "wide.png")
    small, large = matplotlib.image.imread(out), matplotlib.image.imread(wide)
    assert small.shape[0] == large.shape[0] > 0  # as many layers: as tall
    assert large.shape[1] > 1.8 * small.shape[1]  # three times the heads: about twice as wide


# --- chatbot attention and /attention on a trained run ------------------------------------------


@pytest.fixture(scope="module")
def transformer_run(tmp_path_factory, tiny_tsv):
    """A tiny transformer trained for a few epochs through the CLI (a few seconds): attention
    pictures need a run directory, not a model that learned."""
    from chatbot.cli import main

    out = tmp_path_factory.mktemp("runs") / "transformer"
    assert main(["train", "--data", str(tiny_tsv), "--out", str(out), "--preset", "tiny",
                 "--arch", "transformer", "--embedding-dim", "16", "--hidden-dim", "32",
                 "--num-layers", "2", "--num-heads", "2", "--epochs", "2",
                 "--val-fraction", "0"]) == 0
    return out


@pytest.mark.slow
def test_the_attention_command_draws_the_grid(transformer_run, tmp_path, capsys):
    from chatbot.cli import main

    out = tmp_path / "attn.png"
    capsys.readouterr()
    assert main(["attention", "--model", str(transformer_run), "你好", "-o", str(out)]) == 0
    reply = Bot.load(transformer_run).reply("你好").text
    assert capsys.readouterr().out == f"reply: {reply}\nwrote {out}\n"
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    height, width, _ = matplotlib.image.imread(out).shape
    assert width > 400 and height > 300  # two layers of two heads, not one small heatmap


@pytest.mark.slow
def test_the_repl_draws_the_grid_of_the_last_reply(transformer_run, tmp_path):
    out = tmp_path / "attn.png"
    lines = drive(Bot.load(transformer_run), f"hello\r/attention {out}\r/quit\r")
    assert lines[1].startswith("bot> ")
    assert lines[2] == f"saved {out}"
    assert matplotlib.image.imread(out).size > 0
