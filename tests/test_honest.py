"""Honest replies with a trained tiny model (chatbot.decoding.policy.decide): known replies as
the data wrote them, the fallback when the bot does not know, taught replies first, and a
confidence for every reply."""

from __future__ import annotations

import dataclasses
import shutil

import pytest

from chatbot.config import RunConfig
from chatbot.data.memory import Memory
from chatbot.data.pairs import Pair, read_pairs
from chatbot.data.taught import TAUGHT
from chatbot.decoding.bot import Bot
from chatbot.decoding.calibrate import calibrate, reliability
from chatbot.decoding.confidence import Calibration
from chatbot.decoding.fallback import DEFAULTS
from chatbot.models.weights import read_keras_weights
from chatbot.rundir import CONFIG, MODEL, VOCAB
from chatbot.text.vocab import Vocabulary
from tests.conftest import TINY_PAIRS

pytestmark = pytest.mark.slow  # the tiny run trains once per session

UNKNOWN_EN = "qwzxv blorfing"  # no word the tiny run knows
UNKNOWN_ZH = "谁的朋友？"  # no character it knows either
RARE = "Zyzzyva quokka!"  # a reply of tokens the model has never seen
PROMPTS = [p for p, _ in TINY_PAIRS] + ["hey, how are you", "DO YOU LIKE TEA", "你好吗",
                                        "what is", "purple elephants dance quietly",
                                        "你是谁的朋友？", UNKNOWN_EN, UNKNOWN_ZH]


def with_memory(run, pairs) -> Bot:
    """The tiny run's model with a memory of `pairs` (prompt, reply), uncalibrated."""
    memory = Memory.build([Pair(p, r, line) for line, (p, r) in enumerate(pairs, 1)])
    return Bot(RunConfig.load(run / CONFIG), Vocabulary.load(run / VOCAB),
               read_keras_weights(run / MODEL), memory)


@pytest.fixture(scope="module")
def bot(tiny_run) -> Bot:
    """The tiny run as `chatbot chat` loads it: its memory, its calibration (fitted when it was
    trained), the default fallback. Tests that change a setting set it back."""
    return Bot.load(tiny_run)


@pytest.fixture
def run_copy(tiny_run, tmp_path):
    """A copy of the tiny run to teach (the shared one is never written to)."""
    return shutil.copytree(tiny_run, tmp_path / "run")


@pytest.fixture
def settings(bot):
    """Sets the module's bot back to the run's decoding settings after the test."""
    yield bot
    bot.decode = dataclasses.replace(bot.config.decode)
    bot.configure()


def test_the_run_is_calibrated_and_answers_what_it_knows(bot):
    assert bot.calibration.calibrated
    assert bot.decode.fallback  # on by default
    for prompt, reply in TINY_PAIRS:
        got = bot.reply(prompt)
        assert got.text == reply and got.source in ("model", "memory"), prompt


# --- known replies as written ------------------------------------------------------------


def test_a_known_reply_is_said_whole_and_as_written(tiny_run):
    """Its case, spacing and line breaks, and past max_reply_len: the data's text, not the
    tokens the model scored."""
    written = "Hi   There!\nI am FINE,  thanks.  Are you?"
    agreed = "I am   FINE,\nthanks. And YOU?"  # the model's own reply, cut at 5 tokens
    bot = with_memory(tiny_run, [("hello", written), ("how are you?", agreed)])
    bot.configure(max_reply_len=5)
    assert len(bot.tokenizer.tokenize(written)) > 5
    reply = bot.reply("hello")
    assert reply.text == written
    assert reply.source == "memory" and reply.match.prompt == "hello"
    assert reply.candidates[0].text == written
    # A known reply the model writes itself is written as the data has it too.
    reply = bot.reply("how are you?")
    assert reply.text == agreed and reply.match.prompt == "how are you?"


def test_a_known_prompt_of_words_outside_the_vocabulary_gets_its_known_reply(tiny_run):
    """The memory knows the prompt exactly (a prompt whose words min_count or max_vocab left
    out of the vocabulary): the bot knows it, so the no-known-word rule does not apply."""
    bot = with_memory(tiny_run, [(UNKNOWN_EN, "hi there!"), ("how are you?", "i am fine, thanks.")])
    bot.configure(min_confidence=0.0)  # the no-known-word rule alone
    reply = bot.reply(UNKNOWN_EN)
    assert reply.unknown == UNKNOWN_EN.split()
    assert reply.text == "hi there!" and reply.source != "fallback"


# --- the fallback -------------------------------------------------------------------------


@pytest.mark.parametrize("prompt, language", [(UNKNOWN_EN, "en"), (UNKNOWN_ZH, "zh")])
def test_a_prompt_of_unknown_words_gets_the_fallback_in_its_language(bot, settings, prompt,
                                                                       language):
    bot.configure(min_confidence=0.0)
    reply = bot.reply(prompt)
    assert reply.source == "fallback" and reply.match is None
    assert reply.text in DEFAULTS[language]
    assert reply.candidates[1].source != "fallback"  # what the model would have said follows
    bot.configure(fallback=False)
    reply = bot.reply(prompt)
    assert reply.source != "fallback"
    assert reply.text not in DEFAULTS["en"] + DEFAULTS["zh"]


def test_min_confidence_one_makes_every_reply_a_fallback_and_zero_none(bot, settings):
    bot.configure(min_confidence=1.0)
    everything = bot.reply_batch(PROMPTS)
    assert [r.source for r in everything] == ["fallback"] * len(PROMPTS)
    assert all(r.confidence < 1.0 for r in everything)
    bot.configure(min_confidence=0.0)
    nothing = bot.reply_batch(PROMPTS)
    unknown = {UNKNOWN_EN, UNKNOWN_ZH, "purple elephants dance quietly"}
    assert [r.source == "fallback" for r in nothing] == [p in unknown for p in PROMPTS]


def test_a_fallback_in_chinese_for_a_chinese_prompt_below_the_confidence(bot, settings):
    """你是谁的朋友？ has one known character: no all-unknown rule, only the confidence."""
    bot.configure(min_confidence=0.0)
    reply = bot.reply("你是谁的朋友？")
    assert reply.source == "model"
    bot.configure(min_confidence=min(1.0, reply.confidence + 0.01))
    reply = bot.reply("你是谁的朋友？")
    assert reply.source == "fallback" and reply.text in DEFAULTS["zh"]


def test_the_fallback_is_the_same_for_the_same_prompt(bot, settings):
    bot.configure(min_confidence=1.0)
    assert len({bot.reply("hello").text for _ in range(3)}) == 1
    assert bot.reply("hello").text == bot.reply("HELLO").text  # case is no other prompt


def test_two_known_prompts_as_close_with_different_replies_are_ambiguous(tiny_run):
    bot = with_memory(tiny_run, [("how are you?", "i am fine, thanks."),
                                 ("how are you!", "hi there!"), ("hello", "hi there!")])
    bot.configure(min_confidence=0.0, ambiguity=0.02)  # the ambiguity rule alone (off by default)
    policy = bot.policy()
    closest = policy.closest(["how are you"])
    assert closest[0].similarity == pytest.approx(closest[1].similarity)
    assert policy.ambiguous(closest) and not policy.ambiguous(policy.closest(["how are you?"]))
    assert bot.reply("how are you").source == "fallback"
    assert bot.reply("HOW ARE YOU").source == "fallback"
    exact = bot.reply("how are you?")  # a known prompt is no guess, however close a rival
    assert exact.source != "fallback" and exact.text == "i am fine, thanks."
    bot.configure(fallback=False)
    assert bot.reply("how are you").source != "fallback"
    bot.configure(fallback=True, ambiguity=0.0)  # within 0 of each other: never
    assert bot.reply("how are you").source != "fallback"


def test_known_prompts_with_the_same_reply_are_no_ambiguity(tiny_run):
    bot = with_memory(tiny_run, [("how are you?", "i am fine, thanks."),
                                 ("how are you!", "i am fine, thanks.")])
    bot.configure(min_confidence=0.0)
    assert not bot.policy().ambiguous(bot.policy().closest(["how are you"]))
    assert bot.reply("how are you").text == "i am fine, thanks."


# --- teaching ---------------------------------------------------------------------------------


def test_a_taught_reply_wins_for_its_prompt_and_its_typing_variants(run_copy):
    bot = Bot.load(run_copy)
    before = {p: bot.reply(p).text for p in ("how are you?", "how are you", "HOW ARE YOU?")}
    assert set(before.values()) == {"i am fine, thanks."}
    vocab = bot.vocab
    # The model finds the taught reply all but impossible: its words are not even in the vocabulary.
    assert vocab.unknown(bot.tokenizer.tokenize(RARE))
    bot.teach("how are you?", RARE)
    for prompt in before:
        reply = bot.reply(prompt)
        assert (reply.text, reply.source) == (RARE, "taught"), prompt
        assert reply.match.prompt == "how are you?" and 0 < reply.confidence <= 1
    # A new prompt, and its variants; a known prompt closer than it keeps its own reply.
    bot.teach("whats ur name", "I'm Quokka.")
    for prompt in ("whats ur name", "WHATS UR NAME?", "so, whats ur name"):
        assert bot.reply(prompt).text == "I'm Quokka.", prompt
    assert bot.reply("what is your name?").text == "my name is bot."
    # The fallback never overrides what was taught.
    bot.configure(min_confidence=1.0)
    assert bot.reply("how are you").source == "taught"


def test_taught_replies_survive_a_restart_and_forget_restores_the_reply(run_copy):
    bot = Bot.load(run_copy)
    before = bot.reply("how are you?").text
    bot.teach("how are you?", RARE)
    assert (run_copy / TAUGHT).exists()
    restarted = Bot.load(run_copy)
    assert restarted.reply("how are you").text == RARE
    assert restarted.forget("HOW ARE YOU?") == 1
    reply = restarted.reply("how are you?")
    assert reply.text == before and reply.source != "taught"
    assert Bot.load(run_copy).reply("how are you?").text == before
    assert restarted.forget("how are you?") == 0


def test_a_bot_not_loaded_from_a_run_saves_nothing(tiny_run, tmp_path):
    bot = with_memory(tiny_run, TINY_PAIRS)
    bot.teach("how are you?", RARE)
    assert bot.reply("how are you?").text == RARE
    assert bot.taught.path is None
    assert not (tiny_run / TAUGHT).exists()


def test_the_taught_file_is_training_data(run_copy):
    bot = Bot.load(run_copy)
    bot.teach("whats ur name", "I'm Quokka.")
    bot.teach("你喜欢什么？", "我喜欢茶。")
    assert [(p.prompt, p.reply) for p in read_pairs(run_copy / TAUGHT).pairs] == [
        ("whats ur name", "I'm Quokka."), ("你喜欢什么？", "我喜欢茶。")]


def test_training_folds_in_what_the_bot_says_now(run_copy, tiny_tsv):
    """What `chatbot train` reads of taught.jsonl (chatbot.training.train folds in an existing
    file) after teaching, teaching again and forgetting: the replies the bot says now."""
    from chatbot.training.prepare import prepare_data

    def folded() -> set[tuple[str, str]]:
        taught = [path for path in [run_copy / TAUGHT] if path.is_file()]
        data = prepare_data(RunConfig.load(run_copy / CONFIG), tiny_tsv, taught=taught)
        return {(p.prompt, p.reply) for p in data.train_pairs} - set(TINY_PAIRS)

    bot = Bot.load(run_copy)
    bot.teach("whats ur name", "I'm Quokka.")
    bot.teach("whats ur name", "Call me Bot.")  # replaces the reply
    assert bot.reply("whats ur name").text == "Call me Bot."
    assert folded() == {("whats ur name", "Call me Bot.")}
    bot.forget("whats ur name")  # nothing taught any more
    assert folded() == set()


# --- confidence ---------------------------------------------------------------------------


@pytest.mark.parametrize("changes", [{}, {"fallback": False}, {"retrieval": False},
                                     {"strategy": "beam"}, {"min_confidence": 1.0}])
def test_every_reply_has_a_confidence_between_0_and_1(bot, settings, changes):
    bot.configure(**changes)
    replies = bot.reply_batch([*PROMPTS, ""])
    assert all(0.0 <= r.confidence <= 1.0 for r in replies)
    assert replies[-1].text == "" and replies[-1].confidence == 0.0
    assert all(r.evidence is not None for r in replies[:-1])


def test_the_uncalibrated_confidence_is_between_0_and_1_too(tiny_run):
    bot = with_memory(tiny_run, TINY_PAIRS)
    assert not bot.calibration.calibrated
    assert all(0.0 <= r.confidence <= 1.0 for r in bot.reply_batch(PROMPTS))


def test_known_prompts_are_more_confident_than_unknown_ones(bot):
    known = [bot.reply(p).confidence for p, _ in TINY_PAIRS]
    assert min(known) > bot.reply("purple elephants dance quietly").confidence


def test_calibrate_fits_on_the_tiny_pairs_and_restores_the_settings(tiny_run, tiny_tsv):
    bot = with_memory(tiny_run, TINY_PAIRS)
    bot.configure(min_confidence=0.3)
    pairs = read_pairs(tiny_tsv).pairs
    calibration, report = calibrate(bot, pairs[:4], pairs[4:])
    assert isinstance(calibration, Calibration) and calibration.calibrated
    assert calibration.examples > 0 and 0 <= calibration.right <= calibration.examples
    assert report["fitted_on"]["replies"] == calibration.examples
    assert report["held_out"]["replies"] > 0
    # Cross-fitted on what reliability() asks of the same pairs: every one of those replies.
    asked = reliability(bot, pairs[4:])
    assert report["validation"]["replies"] == asked["replies"] > 0
    assert report["validation"]["right"] == asked["right"]
    assert bot.decode.fallback and bot.decode.min_confidence == 0.3
    assert len(bot.memory) == len(TINY_PAIRS)  # the memory without the validation, put back
    assert not bot.calibration.calibrated  # fitting returns it; the caller decides to use it


def test_reliability_on_held_out_pairs(tiny_run, tiny_tsv):
    bot = with_memory(tiny_run, TINY_PAIRS)
    pairs = read_pairs(tiny_tsv).pairs
    held = {p.prompt for p in pairs[:3]}
    without = bot.memory.without(held)
    assert sorted(without.prompts) == sorted(p for p, _ in TINY_PAIRS[3:])
    assert without.replies == bot.memory.replies[3:]
    report = reliability(bot, pairs[:3])
    assert report["replies"] > 0 and 0 <= report["right"] <= report["replies"]
    assert 0.0 <= report["ece"] <= 1.0
    assert not report["calibrated"]
    assert len(bot.memory) == len(TINY_PAIRS)
