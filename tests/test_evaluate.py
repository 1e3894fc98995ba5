"""Evaluation: metric functions on hand-made replies, teacher forcing on a fake engine with a
known answer, and the tiny trained model against Keras' own numbers."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

from chatbot.data.pairs import Pair
from chatbot.decoding.bot import Bot, Reply
from chatbot.errors import ChatbotError
from chatbot.evaluate import (
    answer_rate,
    bleu_chrf,
    distinct_n,
    empty_reply_share,
    evaluate,
    format_metrics,
    most_common_reply,
    quality_flags,
    same_reply_share,
    teacher_forced,
    unk_rate,
)
from chatbot.models.base import Engine
from chatbot.text.vocab import SPECIALS, Vocabulary
from chatbot.text.words import Tokenizer
from tests.conftest import TINY_PAIRS

# -- pure metrics -----------------------------------------------------------------------------


def test_distinct_n_counts_ngrams_within_each_reply():
    replies = [["a", "b"], ["a", "c"]]
    assert distinct_n(replies, 1) == 3 / 4
    assert distinct_n(replies, 2) == 2 / 2
    assert distinct_n([["a", "a", "a"]], 2) == 1 / 2
    assert distinct_n([["a"], ["a"]], 2) == 0.0  # no bigram spans two replies
    assert distinct_n([], 1) == 0.0


def test_same_reply_share_and_most_common_reply():
    assert same_reply_share(["ok", "ok", "ok"]) == 1.0
    assert same_reply_share(["ok", "no", "ok"]) == 2 / 3
    assert most_common_reply(["no", "ok", "ok"]) == "ok"
    assert most_common_reply(["no", "ok"]) == "no"  # a tie: the first seen
    assert same_reply_share(["a", "b", "c", "d"]) == 1 / 4
    assert same_reply_share([]) == 0.0 and most_common_reply([]) == ""


def test_unk_rate_and_empty_reply_share():
    assert unk_rate([["a", "<UNK>"], ["b"], []]) == 1 / 3
    assert unk_rate([[], []]) == 0.0
    assert empty_reply_share(["", "hi", "", "yo"]) == 1 / 2


def test_bleu_and_chrf_of_an_identical_reply_are_100():
    bleu, chrf = bleu_chrf(["hi there, how are you?"], [["hi there, how are you?"]])
    assert bleu == pytest.approx(100.0) and chrf == pytest.approx(100.0)
    # Short replies (no 4-gram in the whole corpus) still score 100, not 0.
    assert bleu_chrf(["hi there!"], [["hi there!"]]) == pytest.approx((100.0, 100.0))


def test_bleu_and_chrf_of_a_completely_wrong_reply_are_0():
    bleu, chrf = bleu_chrf(["zzz qqq"], [["hello, my friend!"]])  # no shared character
    assert bleu == 0.0 and chrf == 0.0


def test_bleu_brevity_penalty_by_hand():
    # Every n-gram matches, but the hypothesis is half the reference: BP = exp(1 - 8/4).
    bleu, _ = bleu_chrf(["a b c d"], [["a b c d e f g h"]])
    assert bleu == pytest.approx(100 * math.exp(-1), abs=1e-6)


def test_bleu_splits_chinese_into_characters():
    # One character wrong of four: whole-string tokenization would score 0.
    bleu, _ = bleu_chrf(["你好朋友"], [["你好朋有"]])
    assert 0 < bleu < 100


def test_every_reference_of_a_prompt_counts_even_with_unequal_counts():
    hypotheses = ["hi there", "good bye now friend"]
    both = [["hello there friend", "hi there"], ["good bye now friend"]]
    assert bleu_chrf(hypotheses, both) == pytest.approx((100.0, 100.0))
    swapped = [["hi there", "hello there friend"], ["good bye now friend"]]
    assert bleu_chrf(hypotheses, swapped) == pytest.approx((100.0, 100.0))
    first_only = [["hello there friend"], ["good bye now friend"]]
    assert bleu_chrf(hypotheses, first_only)[0] < 100


def test_bleu_chrf_rejects_mismatched_inputs():
    with pytest.raises(ValueError, match="2 hypotheses but 1 reference"):
        bleu_chrf(["a", "b"], [["a"]])
    with pytest.raises(ValueError, match="at least one reference"):
        bleu_chrf(["a"], [[]])


def _metrics(**changes) -> dict:
    base = dict(prompts=10, same_reply_share=0.1, most_common_reply="hi", empty_reply_share=0.0,
                unk_rate=0.0)
    return {**base, **changes}


def test_quality_flags():
    assert quality_flags(_metrics()) == []
    [flag] = quality_flags(_metrics(same_reply_share=1.0, most_common_reply="i don't know."))
    assert flag.startswith("same reply for every input: \"i don't know.\"")
    [flag] = quality_flags(_metrics(same_reply_share=0.6))
    assert "same reply for 60% of 10 inputs" in flag
    assert quality_flags(_metrics(prompts=4, same_reply_share=1.0)) == []  # too few to tell
    assert "empty" in quality_flags(_metrics(empty_reply_share=0.5))[0]
    assert "<UNK>" in quality_flags(_metrics(unk_rate=0.2))[0]
    low = {"prompts": 10, "answered": 2, "answer_rate": 0.2, "missed_examples": []}
    assert "underfits" in quality_flags(_metrics(answer_rate=low))[0]


def test_format_metrics_aligns_values_and_lists_flags():
    metrics = {"pairs": 7, "masked_accuracy": 0.5, "bleu": 12.345, "most_common_reply": "hi",
               "answer_rate": {"prompts": 4, "answered": 3, "answer_rate": 0.75,
                               "missed_examples": [{"prompt": "yo", "reply": "hi"}]},
               "flags": ["something is off"]}
    assert format_metrics(metrics).splitlines() == [
        "pairs              7",
        "masked_accuracy    50.00%",
        "bleu               12.35",
        "most_common_reply  'hi'",
        "answer_rate        75.0% (3 of 4 training prompts)",
        "  missed           'yo' -> 'hi'",
        "flag               something is off",
    ]


# -- teacher forcing on a fake engine ---------------------------------------------------------

VOCAB = Vocabulary([*SPECIALS, "a", "b", "x"])
A, B, X = 5, 6, 7
EOS, UNK_ID = VOCAB.eos_id, VOCAB.unk_id


def _row(**probs: float) -> np.ndarray:
    """Logits whose softmax is exactly `probs` (token name -> probability; others 0)."""
    ids = {"a": A, "b": B, "eos": EOS, "unk": UNK_ID}
    row = np.full(len(VOCAB), -1e9)
    for name, p in probs.items():
        row[ids[name]] = math.log(p)
    return row


class FakeEngine(Engine):
    """Next-token distribution given only the previous token (the prompt for the first one)."""

    first = _row(a=0.5, b=0.25, eos=0.15, unk=0.1)
    after = {A: _row(b=0.6, eos=0.4), B: _row(eos=0.75, a=0.25)}
    default = _row(eos=1.0)

    def __init__(self):
        self.prompts: list[list[int]] = []

    def start(self, prompts):
        self.prompts += [list(p) for p in prompts]
        return np.stack([self.first] * len(prompts)), {"steps": np.zeros(len(prompts))}

    def step(self, tokens, state):
        logits = np.stack([self.after.get(int(t), self.default) for t in tokens])
        return logits, {"steps": state["steps"] + 1}


def _fake_bot(max_len: int = 40):
    return SimpleNamespace(engine=FakeEngine(), vocab=VOCAB, tokenizer=Tokenizer(),
                           config=SimpleNamespace(data=SimpleNamespace(max_len=max_len)),
                           context_turns=1)


FAKE_PAIRS = [
    Pair("x", "a b", 1),  # a (p .5, right), b (.6, right), <EOS> (.75, right)
    Pair("x", "b", 2),  # b (.25, wrong: a is likelier), <EOS> (.75, right)
    Pair("x", "a", 3),  # a (.5, right), <EOS> (.4, wrong: b is likelier)
    Pair("x", "zzz", 4),  # <UNK> (.1, wrong), <EOS> (1, right)
]


@pytest.mark.parametrize("batch_size", [1, 2, 256])
def test_teacher_forced_on_a_fake_engine_by_hand(batch_size):
    result = teacher_forced(_fake_bot(), FAKE_PAIRS, batch_size=batch_size)
    assert result["tokens"] == 9
    assert result["masked_accuracy"] == pytest.approx(6 / 9)
    probs = [0.5, 0.6, 0.75, 0.25, 0.75, 0.5, 0.4, 0.1, 1.0]
    assert result["perplexity"] == pytest.approx(math.prod(probs) ** (-1 / 9), rel=1e-9)


def test_teacher_forced_truncates_prompt_and_reply_to_max_len():
    bot = _fake_bot(max_len=1)
    result = teacher_forced(bot, [Pair("x a b", "a b a", 1)])
    assert bot.engine.prompts == [[X]]
    # reply "a" then <EOS>: a is right (.5); after a, b (.6) beats <EOS> (.4).
    assert result == {"masked_accuracy": 0.5, "perplexity": pytest.approx((0.5 * 0.4) ** -0.5),
                      "tokens": 2}


def test_teacher_forced_rejects_no_pairs():
    with pytest.raises(ChatbotError, match="no pairs"):
        teacher_forced(_fake_bot(), [])


# -- the tiny trained model -------------------------------------------------------------------

TINY = [Pair(p, r, i) for i, (p, r) in enumerate(TINY_PAIRS, start=1)]
# The tiny prompts with one another's replies, an unknown word and an overlong reply: a model
# that is partly wrong, so agreement with Keras is not just 1.0 == 1.0.
SHUFFLED = [Pair(p.prompt, q.reply, p.line) for p, q in zip(TINY, TINY[1:] + TINY[:1])] + [
    Pair("hello", "zebra hi there!", 7),
    Pair("你好", "thanks " * 45, 8),
]


@pytest.mark.slow
def test_teacher_forced_on_the_tiny_model_it_learned(tiny_run):
    result = teacher_forced(Bot.load(tiny_run), TINY)
    assert result["masked_accuracy"] == 1.0
    assert 1.0 <= result["perplexity"] < 1.5
    assert result["tokens"] == sum(len(Tokenizer().tokenize(r)) + 1 for _, r in TINY_PAIRS)


@pytest.mark.slow
@pytest.mark.parametrize("pairs", [TINY, SHUFFLED], ids=["learned", "shuffled"])
def test_teacher_forced_agrees_with_keras_evaluate(tiny_run, pairs):
    import keras

    import chatbot.models.common  # noqa: F401  (registers MaskedAccuracy for load_model)
    from chatbot.models import lstm
    from chatbot.training.batches import Batches, encode_pairs

    bot = Bot.load(tiny_run)
    model = keras.saving.load_model(tiny_run / "model.keras")
    examples, _, _ = encode_pairs(pairs, bot.tokenizer, bot.vocab, bot.config.data.max_len,
                               lstm.encode_example)
    # One batch: Keras' loss is then the mean cross-entropy over all scored tokens.
    data = Batches(examples, batch_size=len(examples), shuffle=False).dataset()
    keras_result = model.evaluate(data, verbose=0, return_dict=True)
    ours = teacher_forced(bot, pairs, batch_size=3)
    assert ours["masked_accuracy"] == pytest.approx(keras_result["masked_accuracy"], abs=1e-6)
    assert ours["perplexity"] == pytest.approx(math.exp(keras_result["loss"]), rel=1e-4)
    if pairs is SHUFFLED:
        assert ours["masked_accuracy"] < 0.9 and ours["perplexity"] > 2


@pytest.mark.slow
def test_evaluate_on_the_tiny_model_it_learned(tiny_run):
    bot = Bot.load(tiny_run)
    metrics = evaluate(bot, TINY, training_pairs=True)
    assert metrics["pairs"] == metrics["prompts"] == len(TINY)
    assert metrics["masked_accuracy"] == 1.0 and metrics["perplexity"] < 1.5
    assert metrics["answer_rate"] == answer_rate(bot, TINY)
    assert metrics["answer_rate"]["answer_rate"] == 1.0
    assert metrics["bleu"] > 99 and metrics["chrf"] > 99
    assert metrics["same_reply_share"] == 1 / len(TINY)
    assert metrics["unk_rate"] == 0.0 and metrics["empty_reply_share"] == 0.0
    assert 0.5 < metrics["distinct_1"] <= 1.0 and 0.5 < metrics["distinct_2"] <= 1.0
    assert metrics["flags"] == []
    assert "answer_rate" not in evaluate(bot, TINY)
    table = format_metrics(metrics)
    assert "bleu" in table and "flags" in table and "none" in table


@pytest.mark.slow
def test_evaluate_groups_references_by_prompt(tiny_run):
    bot = Bot.load(tiny_run)
    pairs = [*TINY, Pair("hello", "hey, nice to see you.", 7)]  # a second reply to "hello"
    metrics = evaluate(bot, pairs, training_pairs=True)
    assert (metrics["pairs"], metrics["prompts"]) == (7, 6)
    assert metrics["bleu"] > 99  # "hi there!" matches one of the two references
    assert metrics["answer_rate"]["answer_rate"] == 1.0
    assert metrics["masked_accuracy"] < 1.0  # the model never learned the second reply


@pytest.mark.slow
def test_evaluate_flags_a_model_that_always_says_the_same(tiny_run, monkeypatch):
    bot = Bot.load(tiny_run)
    same = Reply("i don't know.", ["i", "don't", "know", "."], [], [])
    monkeypatch.setattr(bot, "reply_batch", lambda texts: [same] * len(texts))
    metrics = evaluate(bot, TINY, training_pairs=True)
    assert metrics["same_reply_share"] == 1.0
    assert metrics["most_common_reply"] == "i don't know."
    assert metrics["answer_rate"]["answer_rate"] == 0.0
    assert any(f.startswith("same reply for every input") for f in metrics["flags"])
    assert metrics["bleu"] < 5
    assert metrics["distinct_1"] == 4 / (4 * len(TINY))
