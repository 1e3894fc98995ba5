"""Vocabulary: specials, build order, limits, encode/decode, and the JSON file."""

from __future__ import annotations

import json

import pytest

from chatbot.errors import ChatbotError
from chatbot.text.vocab import EOS, PAD, SEP, SOS, SPECIALS, UNK, Vocabulary

SENTENCES = [
    ["b", "a", "c"],
    ["a", "d", "b"],
    ["a", "e"],
]
# counts: a=3, b=2, c=1, d=1, e=1; first seen: b, a, c, d, e


def test_specials_have_fixed_indices():
    assert SPECIALS == ("<PAD>", "<SOS>", "<EOS>", "<UNK>", "<SEP>")
    vocab = Vocabulary.build(SENTENCES)
    assert [vocab.index[s] for s in (PAD, SOS, EOS, UNK, SEP)] == [0, 1, 2, 3, 4]
    assert (vocab.pad_id, vocab.sos_id, vocab.eos_id, vocab.unk_id, vocab.sep_id) == (
        0, 1, 2, 3, 4,
    )
    assert vocab.tokens[:5] == list(SPECIALS)


def test_build_orders_by_frequency_with_first_seen_tiebreak():
    vocab = Vocabulary.build(SENTENCES)
    assert vocab.tokens == [*SPECIALS, "a", "b", "c", "d", "e"]
    assert len(vocab) == 10


def test_build_tiebreak_is_first_seen_not_alphabetical():
    vocab = Vocabulary.build([["zebra", "apple", "mango"]])
    assert vocab.tokens[5:] == ["zebra", "apple", "mango"]


def test_build_handles_chinese_tokens():
    vocab = Vocabulary.build([["你", "好"], ["你"]])
    assert vocab.tokens[5:] == ["你", "好"]


def test_build_from_nothing_has_only_specials():
    assert Vocabulary.build([]).tokens == list(SPECIALS)


def test_build_never_duplicates_a_special_seen_in_the_text():
    vocab = Vocabulary.build([["<UNK>", "x", "<PAD>", "<EOS>", "<EOS>"]])
    assert vocab.tokens == [*SPECIALS, "x"]


def test_min_count_drops_rare_tokens():
    vocab = Vocabulary.build(SENTENCES, min_count=2)
    assert vocab.tokens == [*SPECIALS, "a", "b"]
    assert Vocabulary.build(SENTENCES, min_count=3).tokens == [*SPECIALS, "a"]
    assert Vocabulary.build(SENTENCES, min_count=4).tokens == list(SPECIALS)


def test_max_size_includes_the_specials():
    vocab = Vocabulary.build(SENTENCES, max_size=7)
    assert len(vocab) == 7
    assert vocab.tokens == [*SPECIALS, "a", "b"]
    assert Vocabulary.build(SENTENCES, max_size=6).tokens == [*SPECIALS, "a"]


def test_max_size_larger_than_needed_keeps_everything():
    assert len(Vocabulary.build(SENTENCES, max_size=1000)) == 10


def test_min_count_and_max_size_together():
    # min_count=1 keeps 5 tokens; the cap of 8 (5 specials) keeps the 3 most frequent.
    vocab = Vocabulary.build(SENTENCES, min_count=1, max_size=8)
    assert vocab.tokens == [*SPECIALS, "a", "b", "c"]


@pytest.mark.parametrize("min_count", [0, -1])
def test_bad_min_count_raises(min_count):
    with pytest.raises(ChatbotError, match=f"min_count must be at least 1, received {min_count}"):
        Vocabulary.build(SENTENCES, min_count=min_count)


@pytest.mark.parametrize("max_size", [5, 4, 0, -3])
def test_bad_max_size_raises(max_size):
    with pytest.raises(ChatbotError, match=f"must exceed 5, received {max_size}"):
        Vocabulary.build(SENTENCES, max_size=max_size)


def test_contains():
    vocab = Vocabulary.build(SENTENCES)
    assert "a" in vocab and PAD in vocab
    assert "zzz" not in vocab


def test_encode_maps_known_tokens_to_their_index():
    vocab = Vocabulary.build(SENTENCES)
    assert vocab.encode(["a", "b", "e"]) == [5, 6, 9]


def test_encode_maps_unknown_tokens_to_unk_and_never_raises():
    vocab = Vocabulary.build(SENTENCES)
    assert vocab.encode(["a", "zzz", "你", "", "e"]) == [5, 3, 3, 3, 9]
    assert vocab.encode([]) == []


def test_encode_accepts_a_generator():
    vocab = Vocabulary.build(SENTENCES)
    assert vocab.encode(t for t in ["b", "q"]) == [6, 3]


def test_decode_stops_at_eos_and_skips_pad_sos_sep():
    vocab = Vocabulary.build(SENTENCES)
    assert vocab.decode([1, 5, 0, 4, 6, 3, 7, 2, 8, 9]) == ["a", "b", UNK, "c"]


def test_decode_without_eos_reads_to_the_end():
    vocab = Vocabulary.build(SENTENCES)
    assert vocab.decode([5, 6, 0, 0]) == ["a", "b"]


def test_decode_eos_first_gives_nothing():
    vocab = Vocabulary.build(SENTENCES)
    assert vocab.decode([2, 5, 6]) == []


def test_decode_out_of_range_ids_become_unk():
    vocab = Vocabulary.build(SENTENCES)
    assert vocab.decode([5, 10, 999, -1, 6]) == ["a", UNK, UNK, UNK, "b"]


def test_decode_accepts_numpy_like_integers():
    class FakeInt:
        def __init__(self, v):
            self.v = v

        def __int__(self):
            return self.v

    vocab = Vocabulary.build(SENTENCES)
    assert vocab.decode([FakeInt(5), FakeInt(2), FakeInt(6)]) == ["a"]


def test_encode_decode_round_trip_of_known_tokens():
    vocab = Vocabulary.build(SENTENCES)
    tokens = ["e", "a", "d", "b", "c"]
    assert vocab.decode(vocab.encode(tokens)) == tokens


def test_unknown_lists_distinct_unknown_tokens_in_order():
    vocab = Vocabulary.build(SENTENCES)
    assert vocab.unknown(["x", "a", "y", "x", "你", "b", "y"]) == ["x", "y", "你"]
    assert vocab.unknown(["a", "b"]) == []


def test_constructor_requires_specials_first():
    with pytest.raises(ChatbotError, match="must start with <PAD>, <SOS>, <EOS>, <UNK>, <SEP>"):
        Vocabulary(["<SOS>", "<PAD>", "<EOS>", "<UNK>", "<SEP>", "a"])


def test_constructor_rejects_duplicate_tokens():
    with pytest.raises(ChatbotError, match="must not list a token twice"):
        Vocabulary([*SPECIALS, "a", "b", "a"])


# --- the JSON file --------------------------------------------------------------------------


def test_save_load_round_trip(tmp_path):
    vocab = Vocabulary.build([["hello", "你", "好", "привет", "😀"], ["你"]])
    path = tmp_path / "vocab.json"
    vocab.save(path)
    loaded = Vocabulary.load(path)
    assert loaded.tokens == vocab.tokens
    assert loaded.index == vocab.index
    assert loaded.encode(["你", "nope"]) == [5, 3]


def test_save_writes_real_utf8_not_escapes(tmp_path):
    path = tmp_path / "vocab.json"
    Vocabulary.build([["你", "好"]]).save(path)
    text = path.read_bytes().decode("utf-8")
    assert "你" in text and "好" in text
    assert "\\u" not in text
    assert json.loads(text) == {"tokens": [*SPECIALS, "你", "好"]}
    assert text.endswith("\n")


def test_save_creates_missing_parent_directories(tmp_path):
    path = tmp_path / "run" / "sub" / "vocab.json"
    Vocabulary.build(SENTENCES).save(path)
    assert Vocabulary.load(path).tokens == [*SPECIALS, "a", "b", "c", "d", "e"]


def test_save_accepts_a_string_path(tmp_path):
    path = str(tmp_path / "vocab.json")
    Vocabulary.build(SENTENCES).save(path)
    assert len(Vocabulary.load(path)) == 10


def test_load_missing_file_names_the_path(tmp_path):
    path = tmp_path / "nope" / "vocab.json"
    with pytest.raises(ChatbotError) as info:
        Vocabulary.load(path)
    assert str(info.value).startswith(f"{path}: missing")


@pytest.mark.parametrize(
    "content",
    [b"", b"{not json", b'{"tokens": [', b"\xff\xfe\x00garbage"],
    ids=["empty", "broken", "truncated", "not-utf8"],
)
def test_load_invalid_json_names_the_path(tmp_path, content):
    path = tmp_path / "vocab.json"
    path.write_bytes(content)
    with pytest.raises(ChatbotError) as info:
        Vocabulary.load(path)
    assert str(info.value).startswith(f"{path}: not valid JSON")


@pytest.mark.parametrize(
    "raw",
    [
        [],
        ["<PAD>", "<SOS>", "<EOS>", "<UNK>", "<SEP>"],
        "tokens",
        42,
        None,
        {},
        {"words": list(SPECIALS)},
        {"tokens": "<PAD>"},
        {"tokens": [*SPECIALS, 7]},
        {"tokens": [*SPECIALS, None]},
    ],
    ids=[
        "empty-list", "bare-list", "string", "number", "null", "empty-object", "wrong-key",
        "tokens-not-list", "int-token", "null-token",
    ],
)
def test_load_wrong_structure_names_the_path(tmp_path, raw):
    path = tmp_path / "vocab.json"
    path.write_text(json.dumps(raw), encoding="utf-8")
    with pytest.raises(ChatbotError) as info:
        Vocabulary.load(path)
    assert str(info.value).startswith(f'{path}: expected {{"tokens": [...strings...]}}')


@pytest.mark.parametrize(
    "tokens",
    [[], ["a", "b"], ["<PAD>", "<SOS>", "<EOS>", "<UNK>"], ["<SOS>", "<PAD>", "<EOS>", "<UNK>",
                                                           "<SEP>"]],
    ids=["empty", "no-specials", "missing-sep", "wrong-order"],
)
def test_load_missing_specials_names_the_path(tmp_path, tokens):
    path = tmp_path / "vocab.json"
    path.write_text(json.dumps({"tokens": tokens}), encoding="utf-8")
    with pytest.raises(ChatbotError) as info:
        Vocabulary.load(path)
    message = str(info.value)
    assert message.startswith(f"{path}: a vocabulary must start with <PAD>")


def test_load_duplicate_tokens_names_the_path(tmp_path):
    path = tmp_path / "vocab.json"
    path.write_text(json.dumps({"tokens": [*SPECIALS, "a", "a"]}), encoding="utf-8")
    with pytest.raises(ChatbotError) as info:
        Vocabulary.load(path)
    assert str(info.value).startswith(f"{path}: a vocabulary must not list a token twice; ")


def test_load_of_a_directory_raises_chatbot_error(tmp_path):
    path = tmp_path / "vocab.json"
    path.mkdir()
    with pytest.raises(ChatbotError) as info:
        Vocabulary.load(path)
    assert str(path) in str(info.value)
