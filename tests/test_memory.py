"""The memory of training pairs: character n-gram TF-IDF search, saved as memory.json."""

from __future__ import annotations

import pytest

import chatbot.data.memory as memory_module
from chatbot.data.memory import Memory, normalize
from chatbot.data.pairs import Pair
from chatbot.errors import ChatbotError

PAIRS = [Pair(p, r, line) for line, (p, r) in enumerate([
    ("How are you?", "I am doing well."), ("How are you?", "Fine, thanks."),
    ("What is your name?", "I am a bot."), ("Tell me a joke", "Why not."),
    ("你好吗？", "我很好。"), ("How old are you?", "Young.")], start=1)]


@pytest.fixture(scope="module")
def memory() -> Memory:
    return Memory.build(PAIRS)


def test_one_entry_per_prompt_with_its_replies_in_order(memory):
    assert memory.prompts == ["How are you?", "What is your name?", "Tell me a joke", "你好吗？",
                              "How old are you?"]
    assert memory.replies[0] == ("I am doing well.", "Fine, thanks.")


def test_a_known_prompt_finds_itself_with_similarity_one(memory):
    for prompt in memory.prompts:
        best = memory.search(prompt, k=1)[0]
        assert best.prompt == prompt and best.similarity == pytest.approx(1.0)


@pytest.mark.parametrize("typed, known", [
    ("how are you", "How are you?"), ("HOW ARE YOU!", "How are you?"),
    ("hey, how are you?", "How are you?"), ("how aer you?", "How are you?"),
    ("what's your name", "What is your name?"), ("你好吗?", "你好吗？"), ("你好吗", "你好吗？"),
    ("tell me a joke please", "Tell me a joke"),
])
def test_typing_variants_find_their_prompt_first(memory, typed, known):
    best = memory.search(typed, k=3)
    assert best[0].prompt == known
    assert best[0].similarity > 0.5
    assert [m.similarity for m in best] == sorted((m.similarity for m in best), reverse=True)


def test_unknown_text_is_far_from_everything(memory):
    assert memory.search("purple elephants dance quietly", k=3, min_similarity=0.3) == []
    assert memory.search("", k=3) == []


def test_normalize_folds_width_case_and_spaces():
    assert normalize("  How   ARE\tyou？") == " how are you? "


def test_memory_json_round_trip(memory, tmp_path):
    (tmp_path / "memory.json").write_text(memory.to_json(), encoding="utf-8")
    loaded = Memory.load(tmp_path / "memory.json")
    assert loaded.prompts == memory.prompts and loaded.replies == memory.replies
    assert loaded.search("how are you", 1) == memory.search("how are you", 1)


@pytest.mark.parametrize("content", ["", "[1, 2]", '{"entries": [{"prompt": "a"}]}'])
def test_a_damaged_memory_json_is_named(tmp_path, content):
    (tmp_path / "memory.json").write_text(content, encoding="utf-8")
    with pytest.raises(ChatbotError, match="memory.json: not a readable memory"):
        Memory.load(tmp_path / "memory.json")


def test_similarity_is_the_cosine_of_the_tf_idf_vectors(memory):
    """The inverted index (built with array operations) gives what the definition gives: each
    known prompt's TF-IDF weights, (1 + log count) * smoothed IDF of each n-gram, at unit
    length, dotted with the query's; every prompt that shares an n-gram is found."""
    import math

    from chatbot.data.memory import ngrams

    documents = [ngrams(p) for p in memory.prompts]

    def vector(counts):
        idf = {g: math.log((1 + len(documents)) / (1 + sum(g in d for d in documents))) + 1
               for g in counts}
        weights = {g: (1 + math.log(n)) * idf[g] for g, n in counts.items()}
        norm = math.sqrt(sum(w * w for w in weights.values()))
        return {g: w / norm for g, w in weights.items()}

    for text in ["how r u", "What is your name", "你好吗", "DO YOU LIKE TEA?", "xyz"]:
        query = memory.vector(ngrams(text))  # (its unseen n-grams: see Memory.vector)
        direct = {prompt: sum(w * vector(d).get(g, 0.0) for g, w in query.items())
                  for prompt, d in zip(memory.prompts, documents)}
        found = memory.search(text, k=len(memory.prompts))
        assert {m.prompt for m in found} == {p for p, value in direct.items() if value > 0}
        for match in found:
            assert match.similarity == pytest.approx(min(1.0, direct[match.prompt]), abs=1e-12)


# --- a large memory's index on disk ------------------------------------------------------------


def test_a_large_memory_is_saved_with_its_index_and_loads_to_the_same_searches(tmp_path,
                                                                             monkeypatch):
    monkeypatch.setattr(memory_module, "INDEXED_FROM", 3)
    prompts = ["how are you?", "what is your name?", "你好", "tell me a joke", "bye now"]
    built = Memory(prompts, [[f"reply {i}"] for i in range(len(prompts))])
    built.save(tmp_path / "memory.json")
    assert (tmp_path / "memory.npz").is_file()
    loaded = Memory.load(tmp_path / "memory.json")
    assert loaded.index == built.index and loaded.idf == built.idf  # read, not built again
    for query in ("how r u", "whats ur name", "你好吗", "a joke please", "zzz"):
        assert loaded.search(query, k=3) == built.search(query, k=3)


def test_an_index_of_another_or_a_damaged_memory_is_never_used(tmp_path, monkeypatch):
    monkeypatch.setattr(memory_module, "INDEXED_FROM", 2)
    Memory(["hello there", "good night"], [["hi"], ["sleep well"]]).save(tmp_path / "a.json")
    Memory(["what time is it", "hello there"], [["noon"], ["hi"]]).save(tmp_path / "b.json")
    (tmp_path / "b.npz").replace(tmp_path / "a.npz")  # a.json with b's index beside it
    loaded = Memory.load(tmp_path / "a.json")
    own = Memory(["hello there", "good night"], [["hi"], ["sleep well"]])
    assert loaded.index == own.index and loaded.idf == own.idf  # built again, not b's
    (tmp_path / "a.npz").write_bytes(b"not an npz")
    assert Memory.load(tmp_path / "a.json").search("good nite", k=1)[0].prompt == "good night"
    Memory(["only one"], [["x"]]).save(tmp_path / "a.json")  # small: no index, the old one gone
    assert not (tmp_path / "a.npz").exists()
