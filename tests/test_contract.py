"""The architecture contract (chatbot.models.base), checked once for every registered architecture.

A new architecture is added to `chatbot.models.ARCHS` and must pass this file before anything
else: its layers are named, its weights have the shapes it declares and survive a save and a
reload, its NumPy engine computes what its Keras model computes (batched, reordered by
`select_state`, and through the samplers), padding changes nothing, it trains on batches of
different lengths and learns, and weights that do not fit its config are refused.
"""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
import pytest

from chatbot.config import ModelConfig, RunConfig, TrainConfig
from chatbot.decoding.bot import Bot
from chatbot.decoding.policy import ReplyPolicy
from chatbot.decoding.samplers import get_sampler
from chatbot.errors import ChatbotError
from chatbot.models import ARCHS, arch_module, base
from chatbot.models.base import (
    EMBEDDING_LAYER,
    OUTPUT_LAYER,
    check_weights,
    select_state,
    token_embeddings,
)
from chatbot.models.common import compile_model
from chatbot.models.weights import model_weights, read_keras_weights
from chatbot.text.vocab import SPECIALS, Vocabulary
from chatbot.training.batches import Batches
from chatbot.training.loop import Loop
from tests.conftest import assert_bounded_candidates
from tests.helpers import engine_logits

VOCAB = Vocabulary(list(SPECIALS) + [f"w{i}" for i in range(25)])
EOS = VOCAB.eos_id
# (prompt, reply) ids; the empty prompt is legal for every architecture.
EXAMPLES = [([7, 8, 9, 10], [11, 12, 13]), ([], [14, 15]), ([16], [17])]

pytestmark = pytest.mark.parametrize("arch", sorted(ARCHS))


def make_model(arch: str, num_layers: int = 1, seed: int = 0, **overrides):
    keras.utils.set_random_seed(seed)
    overrides = {"max_positions": 16, **overrides}  # the transformer's; the others ignore it
    config = ModelConfig(arch=arch, embedding_dim=8, hidden_dim=16, num_layers=num_layers,
                         vocab_size=len(VOCAB), **overrides)
    model = arch_module(arch).build(config)
    if arch == "attention":  # a sharper score than the initial 1, so attention is peaked
        model.get_layer("attention").scale.assign(3.0)
    return model, config


def batch(rows: list[tuple[tuple[list[int], ...], list[int]]]):
    """(inputs, target) arrays of encoded examples, as Batches.collate gives them."""
    return next(iter(Batches(rows, batch_size=len(rows), shuffle=False, bucket_by_length=False)))


def keras_logits(arch: str, model, prompt: list[int], reply: list[int]) -> np.ndarray:
    """The Keras model's logits at the scored positions of one pair: (len(reply) + 1, vocab),
    the rows that predict each reply token and the final <EOS>, in order."""
    inputs, target = batch([arch_module(arch).encode_example(prompt, reply, VOCAB)])
    return np.asarray(model(inputs))[0][np.flatnonzero(target[0])]


def engine_of(arch: str, model, config: ModelConfig):
    return arch_module(arch).Engine(model_weights(model), config, VOCAB)


# --- the module and its model --------------------------------------------------------------


def test_module_provides_the_contract(arch):
    module = arch_module(arch)
    for name in ("build", "encode_example", "weight_shapes", "Engine"):
        assert callable(getattr(module, name, None)), f"{arch} lacks {name}"
    # An Engine subclass: start and step of its own, the optional members inherited or not.
    assert issubclass(module.Engine, base.Engine), f"{arch}.Engine is not a models.base.Engine"
    for name in ("start", "step"):
        assert getattr(module.Engine, name) is not getattr(base.Engine, name), \
            f"{arch}.Engine lacks {name}"
    graph = ARCHS[arch].graph_engine()  # the TF twin (test_export checks it decodes the same)
    for name in ("start", "step"):
        assert callable(getattr(graph, name, None)), f"{arch}'s GraphEngine lacks {name}"


def test_every_layer_is_named_and_the_output_layer_is_last(arch):
    # Keras numbers the layers it names itself (dense, dense_1, ...), so a second build in the
    # same process would rename them; layers we named keep their names.
    first, _ = make_model(arch, num_layers=2, dropout=0.1)
    second, _ = make_model(arch, num_layers=2, dropout=0.1)
    assert [layer.name for layer in first.layers] == [layer.name for layer in second.layers]
    assert first.layers[-1].name == OUTPUT_LAYER
    assert first.get_layer(EMBEDDING_LAYER).mask_zero


def test_token_embeddings_are_the_table_input_tokens_are_looked_up_in(arch):
    """`token_embeddings` (the map of what the model learned about words, chatbot.embeddings)
    reads the Embedding layer's (vocab, embedding_dim) table, and the model reads the input
    tokens through it: changing a token's row changes the logits of a pair that has the token,
    and of no other."""
    model, config = make_model(arch)
    layer = model.get_layer(EMBEDDING_LAYER)
    table = token_embeddings(model_weights(model))
    assert isinstance(layer, keras.layers.Embedding)
    assert table.shape == (len(VOCAB), config.embedding_dim)
    np.testing.assert_array_equal(table, keras.ops.convert_to_numpy(layer.embeddings))
    prompt, reply = EXAMPLES[2]  # ([16], [17])
    before = keras_logits(arch, model, prompt, reply)
    # (A random change: a LayerNormalization would undo one that adds the same to every unit.)
    change = np.random.default_rng(0).normal(size=config.embedding_dim).astype(np.float32)
    layer.embeddings.assign(table + np.outer(np.arange(len(VOCAB)) == 29, change))  # unread
    np.testing.assert_array_equal(keras_logits(arch, model, prompt, reply), before)
    layer.embeddings.assign(table + np.outer(np.arange(len(VOCAB)) == prompt[0], change))
    assert np.max(np.abs(keras_logits(arch, model, prompt, reply) - before)) > 1e-3


def test_weight_shapes_are_exactly_the_built_models(arch):
    model, config = make_model(arch, num_layers=2, dropout=0.1)
    found = {(layer, path): array.shape
             for layer, group in model_weights(model).items() for path, array in group.items()}
    assert found == arch_module(arch).weight_shapes(config)


def test_logits_have_one_row_per_decoder_position(arch):
    inputs, target = batch([arch_module(arch).encode_example(p, r, VOCAB) for p, r in EXAMPLES])
    model, _ = make_model(arch)
    assert tuple(model(inputs).shape) == (*target.shape, len(VOCAB))


# --- weights on disk -------------------------------------------------------------------------


def test_save_and_reload_keep_every_array_and_the_outputs(arch, tmp_path):
    model, config = make_model(arch, num_layers=2, dropout=0.1)
    model.save(tmp_path / "model.keras")
    from_file, in_memory = read_keras_weights(tmp_path / "model.keras"), model_weights(model)
    assert from_file.keys() == in_memory.keys()
    for layer, group in in_memory.items():
        assert from_file[layer].keys() == group.keys()
        for path, array in group.items():
            np.testing.assert_array_equal(from_file[layer][path], array)
    reloaded = keras.saving.load_model(tmp_path / "model.keras")  # safe mode, no custom objects
    prompt, reply = EXAMPLES[0]
    np.testing.assert_allclose(keras_logits(arch, reloaded, prompt, reply),
                               keras_logits(arch, model, prompt, reply), atol=1e-6)
    np.testing.assert_array_equal(
        engine_logits(arch_module(arch).Engine(from_file, config, VOCAB), prompt, reply),
        engine_logits(arch_module(arch).Engine(in_memory, config, VOCAB), prompt, reply))


def test_mismatched_weights_are_refused_with_a_message(arch):
    model, config = make_model(arch)
    weights = model_weights(model)
    check_weights(config, VOCAB, weights)  # the matching ones pass

    wider = dataclasses.replace(config, hidden_dim=32)
    with pytest.raises(ChatbotError, match="hidden_dim 32.*different runs"):
        check_weights(wider, VOCAB, weights)
    deeper = dataclasses.replace(config, num_layers=2)
    with pytest.raises(ChatbotError, match="2 layer.*model.keras has no"):
        check_weights(deeper, VOCAB, weights)
    two_layer_weights = model_weights(make_model(arch, num_layers=2)[0])
    with pytest.raises(ChatbotError, match="model.keras has also"):
        check_weights(config, VOCAB, two_layer_weights)
    bigger = Vocabulary([*VOCAB.tokens, "extra"])
    with pytest.raises(ChatbotError, match="vocab.json has 31 tokens"):
        check_weights(config, bigger, weights)
    with pytest.raises(ChatbotError, match=r"should hold .* \(31, 8\)"):
        check_weights(dataclasses.replace(config, vocab_size=0), bigger, weights)
    other = next(name for name in sorted(ARCHS) if name != arch)
    with pytest.raises(ChatbotError, match=f"a '{other}' model"):
        check_weights(dataclasses.replace(config, arch=other), VOCAB, weights)


def test_bot_refuses_mismatched_weights_before_replying(arch):
    model, config = make_model(arch)
    run = RunConfig(model=dataclasses.replace(config, hidden_dim=32))
    with pytest.raises(ChatbotError, match="retrain"):
        Bot(run, VOCAB, model_weights(model))


# --- the NumPy engine ------------------------------------------------------------------------


@pytest.mark.parametrize("num_layers", [1, 2])
def test_numpy_engine_matches_keras_forward_pass(arch, num_layers):
    model, config = make_model(arch, num_layers)
    engine = engine_of(arch, model, config)
    for prompt, reply in EXAMPLES:
        got, expected = engine_logits(engine, prompt, reply), keras_logits(arch, model, prompt,
                                                                           reply)
        assert np.max(np.abs(got - expected)) < 1e-4, (prompt, reply)


# kernels.matmul multiplies 2 to 12 rows in blocks of columns past SMALL_PRODUCT; at 1, every
# such product of these tiny models is blocked.
BLOCKED = pytest.mark.parametrize("small_product", [None, 1])


def block_products(monkeypatch, small_product: int | None) -> None:
    from chatbot.models import kernels

    if small_product is not None:
        monkeypatch.setattr(kernels, "SMALL_PRODUCT", small_product)


@BLOCKED
def test_batched_start_with_padding_equals_one_by_one(arch, small_product, monkeypatch):
    block_products(monkeypatch, small_product)
    model, config = make_model(arch, num_layers=2)
    engine = engine_of(arch, model, config)
    prompts = [[7], [8, 9, 10, 11], [], [12, 13]]
    tokens = np.array([14, 15, 16, 17])
    batched, state = engine.start(prompts)
    batched_next, _ = engine.step(tokens, state)
    for row, prompt in enumerate(prompts):
        single, single_state = engine.start([prompt])
        single_next, _ = engine.step(tokens[row: row + 1], single_state)
        assert np.max(np.abs(batched[row] - single[0])) < 1e-5
        assert np.max(np.abs(batched_next[row] - single_next[0])) < 1e-5


def test_select_state_reorders_the_rows(arch):
    model, config = make_model(arch, num_layers=2)
    engine = engine_of(arch, model, config)
    prompts = [[7], [8, 9, 10], [11, 12]]
    rows = np.array([2, 0, 0])
    tokens = np.array([13, 14, 15])
    _, state = engine.start(prompts)
    got, _ = engine.step(tokens, select_state(state, rows))
    expected, _ = engine.step(tokens, engine.start([prompts[r] for r in rows])[1])
    np.testing.assert_allclose(got, expected, atol=1e-5)


@BLOCKED
@pytest.mark.parametrize("chunk", [2, 512])  # positions scored at once (kernels)
def test_scoring_whole_replies_equals_stepping_through_them(arch, chunk, small_product,
                                                            monkeypatch):
    """`rerank.teacher_forced_rows` (what reranking and evaluation score replies with) gives,
    batched, each row's summed log-probability and arg-max hits of stepping through it alone;
    through the engine's one-pass `teacher_forced` when it has one, else token by token."""
    from chatbot.decoding.rerank import teacher_forced_rows
    from chatbot.models import kernels
    from chatbot.models.kernels import log_softmax

    monkeypatch.setattr(kernels, "SCORED_CHUNK", chunk)
    block_products(monkeypatch, small_product)
    model, config = make_model(arch, num_layers=2)
    engine = engine_of(arch, model, config)
    rng = np.random.default_rng(3)
    prompts = [[*map(int, rng.integers(7, len(VOCAB), size=n))] for n in (0, 1, 4, 6, 3)]
    targets = [[*map(int, rng.integers(7, len(VOCAB), size=n)), EOS] for n in (3, 0, 5, 1, 2)]
    total, hits = teacher_forced_rows(engine, prompts, targets)
    for row, (prompt, target) in enumerate(zip(prompts, targets)):
        logprobs = log_softmax(engine_logits(engine, prompt, target[:-1]).astype(np.float64))
        picked = logprobs[np.arange(len(target)), target]
        assert total[row] == pytest.approx(picked.sum(), rel=1e-5)
        assert hits[row] == (logprobs.argmax(axis=-1) == target).sum()


# Architectures with one space for every token, whose engines give `states` (chatbot.embeddings).
DECODER_ONLY = {"lstm", "transformer"}


def test_states_are_what_the_output_layer_reads_after_each_token(arch):
    model, config = make_model(arch, 2)
    engine = engine_of(arch, model, config)
    long = (list(range(6, 26)), [11, 12])  # 25 tokens with the specials; max_positions is 16
    states = engine.states(*zip(*EXAMPLES, long))
    if arch not in DECODER_ONLY:
        assert states is None
        return
    reads = keras.Model(model.inputs, model.get_layer(OUTPUT_LAYER).input)
    for (prompt, reply), got in zip([*EXAMPLES, long], states):
        tokens = [VOCAB.sos_id, *prompt, VOCAB.sep_id, *reply]
        if arch == "transformer":  # it reads the first max_positions tokens, all of the prompt's
            tokens = tokens[: config.max_positions]
        read = np.asarray(reads([np.array([tokens])]))[0]
        expected = np.concatenate([read[1: len(prompt) + 1], read[len(prompt) + 2:]])
        wanted = len(tokens) - 2 if len(tokens) > len(prompt) + 1 else len(tokens) - 1
        assert got.shape == expected.shape and len(got) == wanted, (prompt, reply)
        np.testing.assert_allclose(got, expected, atol=1e-4, err_msg=str((prompt, reply)))


def test_greedy_equals_a_beam_of_width_one(arch):
    model, config = make_model(arch, seed=3)
    engine = engine_of(arch, model, config)
    prompts = [p for p, _ in EXAMPLES if p]
    greedy = get_sampler("greedy", max_len=8)(engine, prompts, VOCAB, nbest=1)
    # Ranked by logprob alone (length_penalty 0): with a length penalty, a beam of one may
    # rightly prefer a longer reply whose mean logprob is higher after greedy's <EOS>.
    beam = get_sampler("beam", width=1, length_penalty=0.0, max_len=8)(engine, prompts, VOCAB,
                                                                       nbest=1)
    assert [c[0].tokens for c in greedy] == [c[0].tokens for c in beam]
    assert [c[0].logprob for c in greedy] == pytest.approx([c[0].logprob for c in beam],
                                                           abs=1e-4)
    assert any(c[0].tokens for c in greedy)  # something was generated, not just <EOS>


def searches(monkeypatch) -> list[int]:
    """The prompts of each greedy search from now on."""
    from chatbot.decoding.samplers import GreedySampler

    calls: list[int] = []
    search = GreedySampler.search

    def counted(self, engine, prompts, *args, **kwargs):
        calls.append(len(prompts))
        return search(self, engine, prompts, *args, **kwargs)

    monkeypatch.setattr(GreedySampler, "search", counted)
    return calls


def test_known_replies_the_model_would_write_skip_the_search(arch, monkeypatch):
    """Speculative decoding and bounds (ReplyPolicy._drafts): a known reply that is the model's own
    greedy reply is taken as it is, and a prompt whose best known reply beats anything the
    model could write is not searched; replies, sources and scores are the search's."""
    from chatbot.data.memory import Memory

    prompts = ["w7 w8 w9 w10", "w16", "w20 w21", "w11 w12 w13", "w5 w6"]
    for seed in range(3, 13):  # random weights whose greedy replies end somewhere
        model, config = make_model(arch, seed=seed)
        run = RunConfig(model=config)
        run.decode.max_reply_len = 12
        run.decode.fallback = False  # random weights know nothing: every reply would be it
        own = Bot(run, VOCAB, model_weights(model)).reply_batch(prompts)  # the model alone
        # A reply cut at max_len is no draft: whether <EOS> came next is not what greedy asks.
        ended = [r.text for r in own[:4] if len(r.tokens) < run.decode.max_reply_len]
        if ended:  # (something to take as a known reply)
            break
    assert ended, "no seed gave a reply that ends"
    memory = Memory(prompts, [[r.text, "w14 w15"] if r.text in ended else ["w17 w18"]
                              for r in own[:4]] + [["w14 w15"]])  # (the last: no draft)
    for weight in (0.0, 50.0):  # no bonus: only drafts skip searches; a bonus no log p offsets
        run.decode.retrieval_weight = weight
        bot = Bot(run, VOCAB, model_weights(model), memory)
        calls = searches(monkeypatch)
        drafted = bot.reply_batch(prompts)
        searched_rows = sum(calls)
        # The reference: a search for every prompt, and reranking's own scoring pass.
        with monkeypatch.context() as plain_path:
            plain_path.setattr(ReplyPolicy, "_drafts", lambda *args: ({}, {}))
            searched = bot.reply_batch(prompts)
        assert_bounded_candidates(drafted, searched)
        # Searched: a prompt none of whose known replies is its own greedy reply, unless one
        # of them scores above 0, which nothing else the model writes can (mean log p <= 0).
        drafts = [any(r.text in m.replies for m in bot.matches([p])) for p, r in zip(prompts, own)]
        beaten = [any(c.source == "memory" and c.score > 0 for c in r.candidates)
                  for r in searched]
        assert searched_rows == sum(not d and not b for d, b in zip(drafts, beaten))
        assert any(drafts)
        if weight:
            assert any(b and not d for d, b in zip(drafts, beaten))  # the bound skipped one
        else:
            assert not any(beaten)


# --- training --------------------------------------------------------------------------------


def test_padding_changes_neither_loss_nor_accuracy(arch):
    model, _ = make_model(arch)
    compile_model(model, TrainConfig())
    inputs, target = batch([arch_module(arch).encode_example(p, r, VOCAB) for p, r in EXAMPLES])
    pad = ((0, 0), (0, 6))
    padded = (tuple(np.pad(x, pad) for x in inputs) if isinstance(inputs, tuple)
              else np.pad(inputs, pad))
    short = model.evaluate(inputs, target, verbose=0, return_dict=True)
    long = model.evaluate(padded, np.pad(target, pad), verbose=0, return_dict=True)
    assert short["loss"] == pytest.approx(long["loss"], rel=1e-5)
    assert short["masked_accuracy"] == pytest.approx(long["masked_accuracy"], rel=1e-6)


PAIRS = [  # prompts share tokens, replies differ in length: the model must tell them apart
    ([7, 8], [9, 10, 11]),
    ([8, 7], [12]),
    ([7, 13, 14], [15, 9]),
    ([16], [17, 18, 19, 20]),
    ([7], [9]),
    ([21, 22, 23, 24, 7], [10, 11, 12, 13, 14]),
]


@pytest.mark.slow
def test_loop_trains_on_batches_of_different_lengths_and_learns(arch):
    import tensorflow as tf

    keras.utils.set_random_seed(1)
    config = ModelConfig(arch=arch, embedding_dim=16, hidden_dim=32, vocab_size=len(VOCAB),
                         max_positions=16)
    model = arch_module(arch).build(config)
    compile_model(model, TrainConfig(learning_rate=1e-2))
    data = Batches([arch_module(arch).encode_example(p, r, VOCAB) for p, r in PAIRS],
                   batch_size=2, seed=0)
    assert len({batch[1].shape[1] for batch in data}) >= 2  # batches of different lengths
    history = Loop(model, tf.distribute.get_strategy()).fit(
        data.dataset(repeat=True), epochs=100, steps=data.steps(), verbose=0)
    assert history[-1]["loss"] < history[0]["loss"] / 10
    found = get_sampler("greedy", max_len=8)(engine_of(arch, model, config),
                                             [p for p, _ in PAIRS], VOCAB, nbest=1)
    assert [c[0].tokens for c in found] == [r for _, r in PAIRS]
