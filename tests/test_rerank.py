"""Whole replies scored by the model, and the Bot's reranking of generated and known replies."""

from __future__ import annotations

import numpy as np
import pytest

from chatbot.chat import explain
from chatbot.config import RunConfig
from chatbot.data.memory import Memory
from chatbot.data.pairs import read_pairs
from chatbot.decoding.bot import Bot
from chatbot.decoding.policy import ReplyPolicy
from chatbot.decoding.rerank import mmi_scores, reply_logprobs, token_logprobs
from chatbot.models.kernels import log_softmax
from chatbot.models.weights import read_keras_weights
from chatbot.rundir import CONFIG, MODEL, VOCAB
from chatbot.text.vocab import Vocabulary
from tests.conftest import TINY_PAIRS, assert_bounded_candidates

pytestmark = pytest.mark.slow  # the tiny run trains once per session


def step_by_step(engine, prompt, reply, eos) -> float:
    logits, state = engine.start([prompt])
    total = 0.0
    for token in [*reply, eos]:
        total += float(log_softmax(np.asarray(logits, dtype=np.float64))[0, token])
        logits, state = engine.step(np.array([token]), state)
    return total


@pytest.fixture(scope="module")
def bot(tiny_run, tiny_tsv) -> Bot:
    """The tiny run with a memory of its pairs (as training writes memory.json)."""
    bot = Bot(RunConfig.load(tiny_run / CONFIG), Vocabulary.load(tiny_run / VOCAB),
              read_keras_weights(tiny_run / MODEL), Memory.build(read_pairs(tiny_tsv).pairs))
    # What these tests look at is which candidate wins, and its tokens as the model has them.
    # (closest_first off: the model's scores choose among every known prompt's replies.)
    bot.configure(fallback=False, truecase=False, closest_first=False)
    return bot


def test_reply_logprobs_are_the_step_by_step_sums(bot):
    vocab, engine = bot.vocab, bot.engine
    prompt = vocab.encode(bot.prompt_tokens("how are you?"))
    replies = [vocab.encode(bot.tokenizer.tokenize(t)) for t in
               ("i am fine, thanks.", "hi there!", "再见，明天见。", "")]
    got = reply_logprobs(engine, [prompt] * len(replies), replies, vocab.eos_id, batch_size=3)
    expected = [step_by_step(engine, prompt, r, vocab.eos_id) for r in replies]
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)  # float32, batched
    sums, means = mmi_scores(engine, [prompt] * 4, replies, vocab.eos_id, weight=0.0)
    np.testing.assert_allclose(sums, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(means, np.array(expected) / [len(r) + 1 for r in replies],
                               rtol=1e-5, atol=1e-5)
    # The anti-language model subtracts what the reply scores after an empty prompt.
    _, mmi = mmi_scores(engine, [prompt] * 4, replies, vocab.eos_id, weight=0.5)
    empty = [step_by_step(engine, [], r, vocab.eos_id) / (len(r) + 1) for r in replies]
    np.testing.assert_allclose(mmi, means - 0.5 * np.array(empty), rtol=1e-5, atol=1e-5)



def test_token_logprobs_of_replies_together_are_each_ones_step_by_step(bot):
    vocab, engine = bot.vocab, bot.engine
    prompt = vocab.encode(bot.prompt_tokens("how are you?"))
    replies = [[*vocab.encode(bot.tokenizer.tokenize(t)), vocab.eos_id] for t in
               ("i am fine, thanks.", "hi there!", "再见，明天见。")] + [[]]
    together = token_logprobs(engine, prompt, replies, top=4)
    assert [len(rows) for rows in together] == [len(r) for r in replies]
    for reply, rows in zip(replies, together):
        logits, state = engine.start([prompt])
        for token, (logprob, best) in zip(reply, rows):
            expected = log_softmax(np.asarray(logits, dtype=np.float64))[0]
            assert logprob == pytest.approx(expected[token], abs=1e-5)
            order = np.argsort(-expected, kind="stable")[:4]  # best first, ties in id order
            assert [i for i, _ in best] == order.tolist()
            np.testing.assert_allclose([p for _, p in best], expected[order], atol=1e-5)
            logits, state = engine.step(np.array([token]), state)

def test_the_model_alone_misses_a_variant_that_the_memory_answers(bot):
    bot.configure(retrieval=False)
    alone = bot.reply_batch(["hey, how are you", "DO YOU LIKE TEA", "你好吗"])
    bot.configure(retrieval=True)
    hybrid = bot.reply_batch(["hey, how are you", "DO YOU LIKE TEA", "你好吗"])
    assert [r.text for r in hybrid] == [
        "i am fine, thanks.", "yes, 我喜欢茶.", "你好！很高兴认识你。"]
    assert [r.text for r in alone] != [r.text for r in hybrid]  # the model alone misses one
    assert not any(r.matches for r in alone)
    assert hybrid[0].matches[0].prompt == "how are you?" and hybrid[0].source == "memory"


def test_an_unknown_prompt_is_answered_by_generation_alone(bot):
    reply = bot.reply("purple elephants dance quietly")
    assert reply.matches == [] and reply.source == "model"
    assert len(reply.candidates) == 1


def test_why_names_the_known_prompt_and_the_candidates(bot):
    reply = bot.reply("hey, how are you")
    lines = explain(reply, bot)
    assert "how are you?" in lines[0] and "similarity" in lines[0]
    assert any(line.startswith("  known: 'how are you?'") for line in lines)
    assert len([line for line in lines if line.startswith("  1. ")]) == 1


def test_rerank_settings_are_checked(bot):
    from chatbot.errors import ChatbotError

    for name, value in [("mmi", -1.0), ("retrieval_min_similarity", 1.5),
                        ("retrieval_weight", -0.1), ("retrieval_k", 0)]:
        with pytest.raises(ChatbotError, match=name):
            bot.configure(**{name: value})
    bot.set("similarity", "0.9")
    assert bot.decode.retrieval_min_similarity == 0.9
    bot.set("retrieval", "off")
    assert not bot.decode.retrieval
    bot.configure(retrieval=True, retrieval_min_similarity=0.5)


@pytest.mark.parametrize("settings", [{}, {"no_repeat_ngram": 1}, {"min_len": 4},
                                      {"max_reply_len": 3}, {"loop_guard": 1}, {"allow_unk": True}])
def test_known_replies_taken_as_drafts_change_no_reply(bot, monkeypatch, settings):
    """Speculative decoding and bounds (ReplyPolicy._drafts): with the search's rules on or off, the
    replies and the scores of the candidates kept are what a search gives, and those left out
    could not have won; known replies that the model writes itself, with nothing against
    them, are taken without one."""
    from chatbot.decoding.samplers import GreedySampler

    prompts = [p for p, _ in TINY_PAIRS] + ["hey, how are you", "DO YOU LIKE TEA", "你好吗",
                                            "what is your nme", "purple elephants"]
    searched: list[int] = []
    search = GreedySampler.search
    monkeypatch.setattr(GreedySampler, "search", lambda self, engine, rows, *args, **kwargs:
                        searched.append(len(rows)) or search(self, engine, rows, *args, **kwargs))
    bot.configure(**settings)
    try:
        drafted = bot.reply_batch(prompts)
        skipped = len(prompts) - sum(searched)
        # The reference: a search for every prompt, and reranking's own scoring pass.
        monkeypatch.setattr(ReplyPolicy, "_drafts", lambda *args: ({}, {}))
        plain = bot.reply_batch(prompts)
    finally:
        bot.configure(**{k: getattr(bot.config.decode, k) for k in settings})
    assert_bounded_candidates(drafted, plain)
    if not settings or "loop_guard" in settings or "allow_unk" in settings:
        assert skipped >= 6  # each training prompt's own reply (these rules ban none of it)


def test_a_known_reply_one_token_short_of_the_models_is_no_draft(bot, tiny_run, monkeypatch):
    """Each training reply without its last token: the model agrees with every token but
    the <EOS> that would come too soon, so each prompt is still searched."""
    from chatbot.decoding.samplers import GreedySampler

    short = [[bot.tokenizer.detokenize(bot.tokenizer.tokenize(r)[:-1])] for _, r in TINY_PAIRS]
    memory = Memory([p for p, _ in TINY_PAIRS], short)
    shortened = Bot(bot.config, bot.vocab, read_keras_weights(tiny_run / MODEL), memory)
    # No bonus: no known reply could beat what a search writes (see ReplyPolicy._drafts), so only a
    # draft could skip the search.
    shortened.configure(retrieval_weight=0.0, fallback=False, truecase=False)
    searched: list[int] = []
    search = GreedySampler.search
    monkeypatch.setattr(GreedySampler, "search", lambda self, engine, rows, *args, **kwargs:
                        searched.append(len(rows)) or search(self, engine, rows, *args, **kwargs))
    prompts = [p for p, _ in TINY_PAIRS]
    replies = shortened.reply_batch(prompts)
    assert sum(searched) == len(prompts)
    for reply, (_, whole) in zip(replies, TINY_PAIRS):  # the search wrote the whole reply
        assert [c.text for c in reply.candidates if c.source == "model"] == [whole]


def test_a_known_reply_that_beats_anything_the_model_could_write_needs_no_search(bot,
                                                                                monkeypatch):
    """A prompt whose known reply, with its similarity bonus, scores above 0, when the model's
    own reply could score at most 0 (a mean log p): the search is skipped (ReplyPolicy._drafts), and
    the reply is the one a search and every score would have given. /why says what was not
    scored."""
    from chatbot.decoding.samplers import GreedySampler

    searched: list[int] = []
    search = GreedySampler.search
    monkeypatch.setattr(GreedySampler, "search", lambda self, engine, rows, *args, **kwargs:
                        searched.append(len(rows)) or search(self, engine, rows, *args, **kwargs))
    prompts = ["hey, how are you"]  # the tiny model does not write "i am fine, thanks." to it
    bot.configure(retrieval_weight=20.0)  # (its log p is low: a bonus that outweighs it)
    try:
        bounded = bot.reply_batch(prompts)
        assert searched == []
        monkeypatch.setattr(ReplyPolicy, "_drafts", lambda *args: ({}, {}))
        plain = bot.reply_batch(prompts)
    finally:
        bot.configure(retrieval_weight=bot.config.decode.retrieval_weight)
    assert sum(searched) == len(prompts)
    assert bounded[0].text == "i am fine, thanks." and bounded[0].source == "memory"
    assert bounded[0].candidates[0].score > 0
    assert_bounded_candidates(bounded, plain)
    assert "the model's own reply is not among them" in "\n".join(explain(bounded[0], bot))


def test_a_less_similar_known_prompt_whose_reply_the_model_prefers_still_wins(bot, tiny_run,
                                                                              monkeypatch):
    """ReplyPolicy._drafts scores the most similar known prompt's replies first, then the others
    that could still win: here the less similar one's reply, which the model finds far more
    likely, wins as it does when every candidate is scored."""
    memory = Memory(["how are you?", "how are you doing?"],
                    [["再见，明天见。"], ["i am fine, thanks."]])
    two = Bot(bot.config, bot.vocab, read_keras_weights(tiny_run / MODEL), memory)
    # A bonus under which the first reply scores above 0 (no search would be needed) and yet
    # below the second: the mean log p of "再见，明天见。" here is about -7, the similarity of
    # "how are you doing?" about 0.55.
    # (A prompt the memory does not hold exactly: one it holds always gets its own reply.)
    two.configure(retrieval_weight=10.0, fallback=False, closest_first=False)
    bounded = two.reply_batch(["how are you"])
    assert [m.prompt for m in bounded[0].matches] == ["how are you?", "how are you doing?"]
    assert bounded[0].text == "i am fine, thanks."
    assert [c.text for c in bounded[0].candidates] == ["i am fine, thanks.", "再见，明天见。"]
    assert bounded[0].candidates[1].score > 0
    monkeypatch.setattr(ReplyPolicy, "_drafts", lambda *args: ({}, {}))
    assert_bounded_candidates(bounded, two.reply_batch(["how are you"]))
