"""Pairs taught in chats: searched like the memory, appended to taught.jsonl, read back as
training data. Pure Python, no model."""

from __future__ import annotations

import json
import re

import pytest

from chatbot.data.memory import Memory
from chatbot.data.pairs import Pair, read_pairs
from chatbot.data.taught import MAX_TEXT, TAUGHT, Taught
from chatbot.data.variants import prompt_rng, typing_variants
from chatbot.errors import ChatbotError

KNOWN = [("how are you?", "I am fine."), ("what is your name?", "My name is bot."),
         ("你好", "你好！"), ("tell me a joke", "Not today.")]
TAUGHT_PAIRS = [("whats ur name", "I'm chatbot."), ("where do you live?", "In a run directory."),
                ("你喜欢什么颜色？", "蓝色。"), ("do you like tea?", "Yes, green tea.")]


@pytest.fixture(scope="module")
def memory() -> Memory:
    return Memory.build([Pair(p, r, line) for line, (p, r) in enumerate(KNOWN, 1)])


@pytest.fixture
def taught(tmp_path, memory) -> Taught:
    taught = Taught.load(tmp_path / TAUGHT, memory)
    for prompt, reply in TAUGHT_PAIRS:
        taught.add(prompt, reply)
    return taught


def lines(path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def found(taught: Taught, text: str) -> tuple[str, str] | None:
    match = taught.search(text)
    return (match.prompt, match.replies[0]) if match else None


# --- search ---------------------------------------------------------------------------------


def test_a_taught_prompt_finds_itself(taught):
    assert len(taught) == len(TAUGHT_PAIRS)
    for prompt, reply in TAUGHT_PAIRS:
        match = taught.search(prompt)
        assert (match.prompt, match.replies) == (prompt, (reply,))
        assert match.similarity == pytest.approx(1.0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_typing_variants_of_a_taught_prompt_find_it(taught, seed):
    tried = 0
    for prompt, reply in TAUGHT_PAIRS:
        for kind, variant in typing_variants(prompt, prompt_rng(prompt, seed)).items():
            match = taught.search(variant)
            assert (match.prompt, match.replies[0]) == (prompt, reply), (kind, variant)
            assert match.similarity > 0.5, (kind, variant)
            tried += 1
    assert tried >= 4 * len(TAUGHT_PAIRS) - 1  # every kind that applies, in both languages


def test_search_respects_the_minimum_similarity(taught):
    assert taught.search("whats ur naame", min_similarity=0.99) is None
    assert taught.search("whats ur naame", min_similarity=0.5).prompt == "whats ur name"
    assert taught.search("zzzz qqqq") is None  # no n-gram in common


def test_nothing_taught_finds_nothing(tmp_path, memory):
    assert Taught.load(tmp_path / TAUGHT, memory).search("whats ur name") is None
    assert not (tmp_path / TAUGHT).exists()  # loading writes nothing


def test_without_a_memory_every_ngram_weighs_the_same():
    taught = Taught()
    taught.add("whats ur name", "I'm chatbot.")
    taught.add("where do you live?", "Here.")
    assert taught.search("WHATS UR NAME?").prompt == "whats ur name"
    assert taught.search("whats ur name").similarity == pytest.approx(1.0)


# --- forget and teach again -----------------------------------------------------------------


def test_forget_drops_the_pair_from_search_and_file(taught, memory):
    assert taught.forget("WHATS   UR NAME") == 1  # compared as the memory normalizes it
    assert len(taught) == len(TAUGHT_PAIRS) - 1
    assert found(taught, "whats ur name") != ("whats ur name", "I'm chatbot.")
    assert taught.forget("whats ur name") == 0
    assert len(lines(taught.path)) == len(TAUGHT_PAIRS) - 1
    reloaded = Taught.load(taught.path, memory)
    assert reloaded.pairs == taught.pairs
    # Forgetting a prompt never taught leaves the file as it was.
    before = taught.path.read_bytes()
    assert taught.forget("never taught") == 0
    assert taught.path.read_bytes() == before


def test_forgetting_everything_removes_the_file_and_nothing_is_taught(taught, memory):
    for prompt, _ in TAUGHT_PAIRS:
        assert taught.forget(prompt) == 1
    assert not taught.path.exists()  # an empty file would be no training data
    assert len(Taught.load(taught.path, memory)) == 0


def test_a_prompt_taught_again_replaces_its_reply(taught, memory):
    taught.add("Whats  UR name", "Call me Bot.")  # the same prompt, as the memory folds it
    assert len(taught) == len(TAUGHT_PAIRS)
    assert found(taught, "whats ur name") == ("Whats  UR name", "Call me Bot.")
    reloaded = Taught.load(taught.path, memory)
    assert reloaded.pairs == taught.pairs
    assert found(reloaded, "whats ur name") == ("Whats  UR name", "Call me Bot.")


def test_a_reply_taught_again_is_the_only_one_training_reads(taught):
    """taught.jsonl is training data: a reply replaced must not be learned any more."""
    taught.add("whats ur name", "Call me Bot.")
    pairs = {(p.prompt, p.reply) for p in read_pairs(taught.path).pairs}
    assert ("whats ur name", "Call me Bot.") in pairs
    assert ("whats ur name", "I'm chatbot.") not in pairs


# --- the file ---------------------------------------------------------------------------------


def test_the_file_is_chat_jsonl_that_training_reads(taught):
    assert [json.loads(line) for line in lines(taught.path)][0] == {"messages": [
        {"role": "user", "content": "whats ur name"},
        {"role": "assistant", "content": "I'm chatbot."}]}
    assert "你喜欢什么颜色？" in taught.path.read_text(encoding="utf-8")  # not \u-escaped
    report = read_pairs(taught.path)
    assert [(p.prompt, p.reply, p.context) for p in report.pairs] == [
        (p, r, ()) for p, r in TAUGHT_PAIRS]


def test_reloading_gives_the_same_pairs_and_search(taught, memory):
    reloaded = Taught.load(taught.path, memory)
    assert reloaded.pairs == taught.pairs
    for text in ["whats ur naame", "so, where do you live?", "你喜欢什么颜色", "DO YOU LIKE TEA"]:
        assert reloaded.search(text) == taught.search(text)


def test_texts_are_stripped_and_kept_otherwise(tmp_path):
    taught = Taught(tmp_path / TAUGHT)
    taught.add("  Hello   there \n", "  Hi!\n  How are   you?  ")
    assert list(taught.pairs.values()) == [("Hello   there", "Hi!\n  How are   you?")]
    assert Taught.load(taught.path).pairs == taught.pairs
    assert len(lines(taught.path)) == 1  # the line break is escaped inside the JSON


@pytest.mark.parametrize("prompt, reply, message", [
    ("", "hi", "prompt must be non-empty"),
    ("   \n", "hi", "prompt must be non-empty"),
    ("hello", "", "reply must be non-empty"),
    (None, "hi", "prompt must be non-empty"),
    ("hello", 42, "reply must be non-empty"),
    ("x" * (MAX_TEXT + 1), "hi", f"under {MAX_TEXT}"),
    ("hello", "x" * (MAX_TEXT + 1), f"under {MAX_TEXT}"),
    ("hel\x00lo", "hi", "NUL"),
    ("hello", "h\x00i", "NUL"),
])
def test_bad_texts_are_refused_and_nothing_is_written(tmp_path, prompt, reply, message):
    taught = Taught(tmp_path / TAUGHT)
    with pytest.raises(ChatbotError, match=message):
        taught.add(prompt, reply)
    assert len(taught) == 0 and not taught.path.exists()


def test_the_longest_text_allowed_is_taught(tmp_path):
    taught = Taught(tmp_path / TAUGHT)
    taught.add("x" * MAX_TEXT, "y" * MAX_TEXT)
    assert len(Taught.load(taught.path)) == 1


def test_a_torn_last_line_is_skipped_and_cut_off_by_the_next_append(tmp_path, memory):
    path = tmp_path / TAUGHT
    Taught(path, memory).add("whats ur name", "I'm chatbot.")
    whole = path.read_text(encoding="utf-8")
    with open(path, "a", encoding="utf-8") as f:  # a kill half way through an append
        f.write('{"messages": [{"role": "user", "content": "where do')
    taught = Taught.load(path, memory)
    assert list(taught.pairs.values()) == [("whats ur name", "I'm chatbot.")]
    taught.add("where do you live?", "In a run directory.")
    reloaded = Taught.load(path, memory)
    assert list(reloaded.pairs.values()) == [("whats ur name", "I'm chatbot."),
                                             ("where do you live?", "In a run directory.")]
    assert [(p.prompt, p.reply) for p in read_pairs(path).pairs] == list(
        reloaded.pairs.values())
    assert path.read_text(encoding="utf-8") == whole + lines(path)[-1] + "\n"  # cut off


def test_a_torn_only_line_is_skipped(tmp_path):
    path = tmp_path / TAUGHT
    path.write_text('{"messages": [{"role": "us', encoding="utf-8")
    assert len(Taught.load(path)) == 0


def test_a_malformed_line_before_the_last_names_file_and_line(tmp_path, memory):
    path = tmp_path / TAUGHT
    taught = Taught(path, memory)
    taught.add("whats ur name", "I'm chatbot.")
    with open(path, "a", encoding="utf-8") as f:
        f.write('{"messages": [{"role": "user", "content": "hello"}]}\n')  # no reply
    taught.add("where do you live?", "In a run directory.")
    with pytest.raises(ChatbotError, match=re.escape(f"{path}, line 2")):
        Taught.load(path, memory)
    # A complete last line (it ends with a newline) is no torn one: it is reported too.
    path.write_text('{"messages": []}\n', encoding="utf-8")
    with pytest.raises(ChatbotError, match=re.escape(f"{path}, line 1")):
        Taught.load(path, memory)


def test_a_thousand_pairs_taught_one_by_one(tmp_path, memory):
    """Each teach appends one line (its cost is measured by the benchmarks, not here)."""
    path = tmp_path / TAUGHT
    taught = Taught(path, memory)
    for i in range(1000):
        taught.add(f"question number {i}", f"answer {i}")
    assert len(lines(path)) == 1000
    reloaded = Taught.load(path, memory)
    assert len(reloaded) == 1000
    assert found(reloaded, "question number 617") == ("question number 617", "answer 617")
    assert len(read_pairs(path).pairs) == 1000
