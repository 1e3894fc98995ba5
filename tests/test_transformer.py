"""The transformer's own promises, beyond the contract every architecture keeps
(tests/test_contract.py): its key/value cache changes no reply, long prompts and long replies
meet max_positions without an index error, and max_positions follows the data."""

from __future__ import annotations

import dataclasses

import keras
import matplotlib.image
import numpy as np
import pytest

from chatbot.config import ModelConfig, RunConfig
from chatbot.decoding.bot import AttentionMap, Bot
from chatbot.decoding.samplers import get_sampler
from chatbot.errors import ChatbotError
from chatbot.models import lstm, transformer
from chatbot.models.base import Engine
from chatbot.models.weights import model_weights
from chatbot.plot import plot_attention_map
from chatbot.text.vocab import SPECIALS, Vocabulary
from tests.helpers import drive, engine_logits

VOCAB = Vocabulary(list(SPECIALS) + [f"w{i}" for i in range(40)])
WORDS = range(len(SPECIALS), len(VOCAB))


def build(max_positions: int = 24, num_layers: int = 2, seed: int = 3):
    """A randomly initialized transformer of the tests' size: (Keras model, config)."""
    keras.utils.set_random_seed(seed)
    config = ModelConfig(arch="transformer", embedding_dim=16, hidden_dim=32,
                         num_layers=num_layers, num_heads=4, max_positions=max_positions,
                         vocab_size=len(VOCAB))
    return transformer.build(config), config


def engines(max_positions: int = 24, num_layers: int = 2, seed: int = 3):
    """(cached, uncached) engines of one randomly initialized transformer."""
    model, config = build(max_positions, num_layers, seed)
    weights = model_weights(model)
    # Larger weights than the initial ones, so that the logits are far from uniform and
    # replies differ from prompt to prompt.
    weights = {layer: {path: a * 3 for path, a in group.items()}
               for layer, group in weights.items()}
    return (transformer.Engine(weights, config, VOCAB),
            transformer.UncachedEngine(weights, config, VOCAB))


def prompts(n: int, seed: int = 0) -> list[list[int]]:
    rng = np.random.default_rng(seed)
    return [[int(t) for t in rng.choice(WORDS, size=rng.integers(0, 9))] for _ in range(n)]


@pytest.mark.parametrize("strategy, options", [
    ("greedy", {}), ("beam", {"width": 4}), ("top_k", {"k": 5, "seed": 11}),
])
def test_cached_decoding_gives_exactly_the_replies_of_uncached_decoding(strategy, options):
    cached, uncached = engines()
    sampler = get_sampler(strategy, max_len=15, **options)
    asked = prompts(12)
    found = {name: sampler(engine, asked, VOCAB, nbest=1)
             for name, engine in (("cached", cached), ("uncached", uncached))}
    replies = [[c.tokens for c in cands] for cands in found["cached"]]
    assert replies == [[c.tokens for c in cands] for cands in found["uncached"]]
    assert len({tuple(r[0]) for r in replies}) > 3, "replies should differ between prompts"


def test_folded_norms_match_keras_with_every_weight_random():
    # The engine folds each LayerNorm's gain and offset into the Dense after it, and the
    # queries' scale into their projection (transformer.fold). A freshly built model has
    # gains of 1 and offsets and biases of 0, under which a wrong fold would go unseen:
    # here every weight is random, and the engine must still compute Keras's logits.
    model, config = build(seed=5)
    rng = np.random.default_rng(0)
    for variable in model.weights:
        shape = tuple(variable.shape)
        variable.assign((1.0 if "gamma" in variable.path else 0.0)
                        + rng.normal(0, 0.5, shape).astype("float32"))
    engine = transformer.Engine(model_weights(model), config, VOCAB)
    ids = np.array([[VOCAB.sos_id, 7, 8, 9, VOCAB.sep_id, 12, 13, 14],
                    [VOCAB.sos_id, 20, VOCAB.sep_id, 21, 0, 0, 0, 0]])
    expected = np.asarray(model(ids))
    real = ids != 0
    np.testing.assert_allclose(engine.logits(ids)[real], expected[real], atol=1e-4)
    np.testing.assert_allclose(engine_logits(engine, [7, 8, 9], [12, 13, 14]), expected[0, 4:],
                               atol=1e-4)


def test_a_step_equals_the_whole_sequence_at_once():
    cached, _ = engines()
    prompt, reply = [7, 8, 9, 10, 11], [12, 13, 14, 15]
    logits, state = cached.start([prompt, [20]])  # a batch: the rows' positions differ
    rows = [logits[0]]
    for token in reply:
        logits, state = cached.step(np.array([token, 21]), state)
        rows.append(logits[0])
    ids = np.array([[VOCAB.sos_id, *prompt, VOCAB.sep_id, *reply]])
    whole = cached.logits(ids)[0, len(prompt) + 1:]
    np.testing.assert_allclose(np.stack(rows), whole, atol=1e-5)


def test_one_pass_scoring_equals_the_token_by_token_walk():
    from chatbot.decoding import rerank

    cached, _ = engines()
    asked = prompts(10, seed=4)
    rng = np.random.default_rng(5)
    targets = [[*map(int, rng.choice(WORDS, size=rng.integers(0, 7))), VOCAB.eos_id]
               for _ in asked]

    class Walk(Engine):  # the same engine without its one-pass scoring (the base's None)
        start, step = cached.start, cached.step

    one = rerank.teacher_forced_rows(cached, asked, targets)
    walked = rerank.teacher_forced_rows(Walk(), asked, targets)
    np.testing.assert_allclose(one[0], walked[0], rtol=1e-5)
    np.testing.assert_array_equal(one[1], walked[1])
    # A sequence past max_positions is handed back to the walk, which ends it with <EOS>.
    assert cached.teacher_forced([[7] * 20], [[8] * 10 + [VOCAB.eos_id]]) is None
    total, _ = rerank.teacher_forced_rows(cached, [[7] * 20], [[8] * 10 + [VOCAB.eos_id]])
    assert total[0] == -np.inf  # a reply that cannot fit is impossible, as in generation


def test_a_prompt_longer_than_max_positions_keeps_its_end():
    cached, uncached = engines(max_positions=10)
    long = list(range(5, 5 + 30))
    kept = cached.sequences([long])[0]
    assert kept == [VOCAB.sos_id, *long[-7:], VOCAB.sep_id] and len(kept) == 9
    logits, _ = cached.start([long])
    np.testing.assert_allclose(logits, cached.start([long[-7:]])[0])
    assert np.isfinite(logits).all()


def test_a_reply_ends_at_max_positions_without_an_index_error():
    cached, uncached = engines(max_positions=10)
    sampler = get_sampler("greedy", max_len=30, allow_unk=True)
    for engine in (cached, uncached):
        logits, state = engine.start([[5, 6, 7]])  # positions 0-4 used, 5-9 left
        for _ in range(5):
            logits, state = engine.step(np.array([9]), state)
            assert np.isfinite(logits).all()  # the token after position 9 is still predicted
        logits, state = engine.step(np.array([9]), state)  # but it has no position of its own
        assert logits.argmax(-1).tolist() == [VOCAB.eos_id]
        assert np.isneginf(np.delete(logits[0], VOCAB.eos_id)).all()
        (candidate,) = sampler(engine, [[5, 6, 7]], VOCAB, nbest=1)[0]
        assert len(candidate.tokens) <= 6  # at most 6 tokens, then <EOS>


def test_a_full_row_leaves_the_rest_of_its_batch_as_it_would_be_alone():
    """Rows reach max_positions at different steps: a full row's cache is left as it is,
    and the other rows' logits stay those of the uncached engine."""
    cached, uncached = engines(max_positions=10)
    prompts = [[5, 6, 7, 8, 9], [5]]  # positions 0-6 and 0-2 used
    (logits, state), (expected, walk) = cached.start(prompts), uncached.start(prompts)
    # (float32 sums in another order: logits of up to ~15 differ by up to 4e-4 on some CPUs;
    # a row that read the wrong cache differs by whole units)
    for _ in range(6):
        np.testing.assert_allclose(logits, expected, atol=1e-3)
        logits, state = cached.step(np.array([9, 9]), state)
        expected, walk = uncached.step(np.array([9, 9]), walk)
    assert logits[0].argmax() == VOCAB.eos_id and np.isfinite(logits[1]).all()  # row 0 full
    np.testing.assert_allclose(logits[1], expected[1], atol=1e-3)


def test_forward_refuses_a_sequence_longer_than_max_positions():
    cached, _ = engines(max_positions=10)
    with pytest.raises(ChatbotError, match="longer than this model's max_positions"):
        cached.forward(np.ones((1, 11), dtype=np.int64))


def test_attention_weights_are_causal_and_sum_to_one():
    cached, _ = engines()
    ids = np.array([[1, 7, 8, 4, 9, 0, 0]])  # padded at the end
    _, attentions = cached.forward(ids, record=True)
    assert len(attentions) == 2 and attentions[0].shape == (1, 4, 7, 7)
    for weights in attentions:
        np.testing.assert_allclose(weights.sum(-1), 1.0, rtol=1e-5)
        assert not np.triu(weights[0, :, :5, :5], k=1).any()  # nothing looks ahead
        assert not weights[0, :, :5, 5:].any()  # nor at padding


def test_max_positions_follows_max_len_or_is_refused_when_too_small():
    config = RunConfig()
    config.model.arch, config.data.max_len = "transformer", 20
    transformer.fit_to_data(config)
    assert config.model.max_positions == 42
    small = dataclasses.replace(config.model, max_positions=30)
    with pytest.raises(ChatbotError, match="max_positions 30 cannot hold.*max_len 20"):
        transformer.fit_to_data(dataclasses.replace(config, model=small))


def test_a_width_that_heads_cannot_share_is_refused():
    config = ModelConfig(arch="transformer", embedding_dim=10, num_heads=4, max_positions=8,
                         vocab_size=20)
    with pytest.raises(ChatbotError, match="multiple of num_heads"):
        transformer.build(config)


# === self-attention, as Bot.attention shows it =================================================
# The transformer's self-attention, as `Bot.attention`, `chatbot attention` and `/attention`
# show it: every layer's and head's weights over `<SOS> prompt <SEP> reply`, checked against
# Keras' own MultiHeadAttention scores, and drawn as a grid of heatmaps.

WORDS_VOCAB = Vocabulary([*SPECIALS, "hello", "你", "好", "hi", "!", "there"])
LAYERS, HEADS = 2, 2


def tiny_bot(arch: str = "transformer") -> tuple[Bot, keras.Model]:
    """An untrained model's Bot: attention needs weights, not learning."""
    keras.utils.set_random_seed(0)
    config = ModelConfig(arch=arch, embedding_dim=8, hidden_dim=16, num_layers=LAYERS,
                         num_heads=HEADS, max_positions=32, vocab_size=len(WORDS_VOCAB))
    model = (transformer if arch == "transformer" else lstm).build(config)
    return Bot(RunConfig(model=config), WORDS_VOCAB, model_weights(model)), model


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
    ids = [WORDS_VOCAB.index[t] for t in amap.tokens]
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
    # docs: chatbot train --preset transformer --data data/chatterbot.tsv --out models/transformer
    # docs: chatbot train --preset transformer --num-layers 4 --num-heads 8 --embedding-dim 256 \
    #       --data data/chatterbot.tsv --out models/wide
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
    # docs: chatbot attention --model models/transformer "hello" -o attention.png
    # docs: chatbot attention --model models/transformer "你好，你叫什么名字？" \
    #       -o self-attention.png
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
