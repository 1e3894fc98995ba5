"""Tokenizer and detokenizer: exact token lists, scripts, case, and round trips."""

from __future__ import annotations

import pytest

from chatbot.text.words import Tokenizer, clip, is_cjk

LOWER = Tokenizer()
KEEP_CASE = Tokenizer(lowercase=False)


# --- tokenize -------------------------------------------------------------------------------


def test_english_sentence_with_punctuation():
    assert LOWER.tokenize("Hello, world! How are you?") == [
        "hello", ",", "world", "!", "how", "are", "you", "?",
    ]


def test_chinese_is_one_token_per_character_with_full_width_punctuation_kept():
    tokens = LOWER.tokenize("你好，你叫什么名字？")
    assert tokens == ["你", "好", "，", "你", "叫", "什", "么", "名", "字", "？"]
    # Full-width punctuation is kept as is, not folded to ASCII "," and "?" (no NFKC).
    assert "," not in tokens and "?" not in tokens


def test_japanese_kana_and_kanji_are_one_token_per_character():
    assert LOWER.tokenize("かわいい猫") == ["か", "わ", "い", "い", "猫"]
    assert LOWER.tokenize("カタカナ") == ["カ", "タ", "カ", "ナ"]


def test_mixed_english_chinese_and_emoji():
    assert LOWER.tokenize("I love 北京! 😀 Yes，好的") == [
        "i", "love", "北", "京", "!", "😀", "yes", "，", "好", "的",
    ]


def test_chinese_directly_after_latin_word_is_split_from_it():
    assert LOWER.tokenize("Python很好") == ["python", "很", "好"]


def test_emoji_are_each_their_own_token():
    assert LOWER.tokenize("ok😀😀") == ["ok", "😀", "😀"]


def test_lowercase_on_folds_case():
    assert LOWER.tokenize("Hello WORLD Привет") == ["hello", "world", "привет"]


def test_lowercase_off_keeps_case():
    assert KEEP_CASE.tokenize("Hello WORLD Привет") == ["Hello", "WORLD", "Привет"]


def test_default_tokenizer_lowercases():
    assert Tokenizer().lowercase is True


def test_contractions_stay_one_token():
    assert LOWER.tokenize("I don't know, it's Bob's.") == [
        "i", "don't", "know", ",", "it's", "bob's", ".",
    ]


def test_curly_apostrophe_contraction_stays_one_token():
    assert LOWER.tokenize("Don’t") == ["don’t"]


def test_trailing_apostrophe_is_not_part_of_the_word():
    assert LOWER.tokenize("the students' books") == ["the", "students", "'", "books"]


def test_numbers_with_separators_stay_whole():
    assert LOWER.tokenize("It costs 3.5 dollars, or 1,000 yen at 10:30.") == [
        "it", "costs", "3.5", "dollars", ",", "or", "1,000", "yen", "at", "10:30", ".",
    ]


def test_number_at_end_of_sentence_does_not_swallow_the_full_stop():
    assert LOWER.tokenize("I have 3.") == ["i", "have", "3", "."]
    assert LOWER.tokenize("Count: 1,000,000!") == ["count", ":", "1,000,000", "!"]


def test_accented_and_cyrillic_words_stay_whole():
    assert LOWER.tokenize("Café naïve Straße Привет, мир! ¿Qué tal?") == [
        "café", "naïve", "straße", "привет", ",", "мир", "!", "¿", "qué", "tal", "?",
    ]


def test_decomposed_accent_is_normalized_to_one_spelling():
    # "e" + COMBINING ACUTE ACCENT (NFD) tokenizes like the precomposed "é".
    decomposed = "cafe\u0301"
    assert LOWER.tokenize(decomposed) == ["caf\u00e9"]
    assert LOWER.tokenize(decomposed) == LOWER.tokenize("caf\u00e9")


def test_whitespace_of_all_kinds_separates_tokens_and_is_dropped():
    assert LOWER.tokenize("  a\tb\nc \u3000 d  ") == ["a", "b", "c", "d"]


def test_empty_and_blank_text_give_no_tokens():
    assert LOWER.tokenize("") == []
    assert LOWER.tokenize("   \t\n") == []


def test_symbols_are_single_tokens():
    assert LOWER.tokenize("50% off! $3.50?") == ["50", "%", "off", "!", "$", "3.50", "?"]


def test_is_cjk():
    assert is_cjk("你") and is_cjk("か")
    assert not is_cjk("한")  # Korean is written with spaces: words, not characters
    assert not is_cjk("a") and not is_cjk("，") and not is_cjk("你好") and not is_cjk("")


# --- detokenize -----------------------------------------------------------------------------


def test_detokenize_attaches_punctuation():
    tokens = ["hello", ",", "world", "!", "(", "really", ")", "?"]
    assert LOWER.detokenize(tokens) == "hello, world! (really)?"


def test_detokenize_joins_cjk_without_spaces():
    assert LOWER.detokenize(["你", "好", "，", "世", "界", "。"]) == "你好，世界。"


def test_detokenize_spaces_between_latin_words_and_cjk():
    assert LOWER.detokenize(["i", "love", "北", "京", "!"]) == "i love 北京!"


def test_detokenize_of_nothing_is_empty():
    assert LOWER.detokenize([]) == ""



@pytest.mark.parametrize("tokens", [["hello", ",", "world", "!"], ["he", "said", '"', "hi", '"'],
                                    ["i", "love", "北", "京", "!"], []])
def test_token_texts_are_what_each_token_adds(tokens):
    pieces = LOWER.token_texts(tokens)
    assert "".join(pieces) == LOWER.detokenize(tokens)
    for end in range(len(tokens)):
        assert "".join(pieces[: end + 1]) == LOWER.detokenize(tokens[: end + 1])

ROUND_TRIP = [
    "Hello, world! How are you?",
    "你好，你叫什么名字？",
    "I don't know... maybe (later).",
    "It costs 3.5 dollars, or 1,000 yen at 10:30.",
    "Café naïve? Привет, мир!",
    "“Hi,” she said.",
    "Yes, 我喜欢茶。",
    "我喜欢《红楼梦》。",
    "你好。再见！",
    "50% off! $3.50?",
    "¿Qué tal?",
    "Wait: what; why?",
    "Hi [there] {x}",
    "かわいい猫です。",
]


@pytest.mark.parametrize("sentence", ROUND_TRIP)
def test_round_trip_lowercase(sentence):
    assert LOWER.detokenize(LOWER.tokenize(sentence)) == sentence.lower()


@pytest.mark.parametrize("sentence", ROUND_TRIP)
def test_round_trip_keep_case(sentence):
    assert KEEP_CASE.detokenize(KEEP_CASE.tokenize(sentence)) == sentence


# --- bugs found: each test states the expected behaviour ------------------------------------


@pytest.mark.parametrize("sentence", ["他说：“你好。”", "我说“好”。", "“你好，”他说。"])
def test_chinese_quotation_marks_round_trip(sentence):
    assert LOWER.detokenize(LOWER.tokenize(sentence)) == sentence


def test_chinese_ellipsis_round_trip():
    assert LOWER.detokenize(LOWER.tokenize("等一下……好吗？")) == "等一下……好吗？"


def test_straight_double_quotes_round_trip():
    sentence = 'She said "hi" to me.'
    assert LOWER.detokenize(LOWER.tokenize(sentence)) == sentence.lower()


def test_hyphenated_word_round_trip():
    sentence = "It's a well-known fact."
    assert LOWER.detokenize(LOWER.tokenize(sentence)) == sentence.lower()


def test_korean_round_trip_keeps_word_spaces():
    assert LOWER.detokenize(LOWER.tokenize("안녕하세요 친구")) == "안녕하세요 친구"


def test_devanagari_word_stays_whole():
    assert LOWER.tokenize("नमस्ते दोस्त") == ["नमस्ते", "दोस्त"]


def test_turkish_dotted_capital_i_lowercased_stays_one_word():
    tokens = LOWER.tokenize("İstanbul")
    assert len(tokens) == 1
    assert tokens == ["i\u0307stanbul"]


@pytest.mark.parametrize("emoji", ["\u2764\ufe0f", "\U0001f44d\U0001f3fd"])
def test_emoji_sequence_stays_one_token(emoji):
    sentence = f"i {emoji} you"
    assert LOWER.tokenize(sentence) == ["i", emoji, "you"]
    assert LOWER.detokenize(LOWER.tokenize(sentence)) == sentence


def test_ascii_punctuation_inside_chinese_text_gets_no_space():
    tok = Tokenizer()
    assert tok.detokenize(tok.tokenize("人工智能是工程和科学的分支,致力于构建机器。")) == (
        "人工智能是工程和科学的分支,致力于构建机器。")
    assert tok.detokenize(tok.tokenize("ok, 好")) == "ok, 好"  # after Latin text, a space stays


# --- what a model reads of a long text ------------------------------------------------------


def test_a_limit_stops_the_tokenizer_after_that_many_tokens():
    assert LOWER.tokenize("Hello, how are you?", limit=3) == ["hello", ",", "how"]
    assert LOWER.tokenize("你好吗", limit=2) == ["你", "好"]
    assert LOWER.tokenize("hi", limit=5) == ["hi"]


@pytest.mark.parametrize("text", [
    "hello, how are you?",
    "a" * 100,  # one word longer than any known one
    "你好" * 300,  # no spaces at all: every character a token
    "x" * 50 + " hello " + "y" * 3000 + " there",
    "tab\tand\nnew lines   and  spaces " * 40,
])
def test_clip_keeps_the_first_tokens_the_model_reads(text):
    longest = 10  # the longest token of some vocabulary
    tokens = LOWER.tokenize(text)[:20]
    clipped = LOWER.tokenize(clip(text, 20, longest))[:20]
    # The same tokens, but a word longer than any known one may be cut: it stays longer than
    # any known word (unknown either way).
    assert len(clipped) == len(tokens)
    for a, b in zip(tokens, clipped):
        assert a == b or (len(a) > longest + 1 and len(b) > longest + 1 and a.startswith(b))


def test_clip_from_the_end_keeps_the_last_tokens():
    text = "z" * 5000 + " one two three"
    assert LOWER.tokenize(clip(text, 3, 10, end=True)) == ["one", "two", "three"]


def test_clip_bounds_what_any_text_leaves():
    for text in ["b" * 1_000_000, "word " * 200_000, "你" * 1_000_000, " " * 1_000_000 + "x"]:
        assert len(clip(text, 40, 15)) <= 40 * 40 * (15 + 2)
    assert clip("short text", 40, 15) == "short text"  # nothing to cut: the text itself
