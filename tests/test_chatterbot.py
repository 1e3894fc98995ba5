"""Tests for chatbot.corpora.chatterbot: chatterbot-corpus import and TSV writing."""

from __future__ import annotations

import importlib.resources
import re
from pathlib import Path

import pytest

from chatbot.corpora import chatterbot
from chatbot.corpora.chatterbot import (
    ImportReport,
    chatterbot_languages,
    chatterbot_pairs,
    clean_turn,
    import_chatterbot,
    pairs_from_yaml,
    write_tsv,
)
from chatbot.errors import ChatbotError

CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


@pytest.fixture(scope="module")
def english_import() -> tuple[list[tuple[str, str]], ImportReport]:
    report = ImportReport()
    return chatterbot_pairs(["english"], report), report


@pytest.fixture(scope="module")
def english(english_import) -> list[tuple[str, str]]:
    return english_import[0]


@pytest.fixture(scope="module")
def chinese() -> list[tuple[str, str]]:
    return chatterbot_pairs(["chinese"])


def assert_clean(pairs: list[tuple[str, str]]) -> None:
    for pair in pairs:
        for text in pair:
            assert isinstance(text, str)
            assert text, pair
            assert text == text.strip(), pair
            assert not re.search(r"[\t\r\n]|\s\s", text), pair
    assert len(set(pairs)) == len(pairs), "duplicate pairs"


# --- the real installed chatterbot-corpus package -------------------------------------------


def test_languages_lists_the_installed_folders() -> None:
    languages = chatterbot_languages()
    assert languages == sorted(languages)
    assert {"english", "chinese", "spanish"} <= set(languages)
    assert len(languages) >= 20  # chatterbot-corpus 1.3.3 ships 28
    assert all("." not in name for name in languages)


def test_english_pairs(english: list[tuple[str, str]]) -> None:
    # 1176 unique pairs in chatterbot-corpus 1.3.3 (2306 before removing duplicates).
    assert len(english) > 1000
    assert_clean(english)
    # From english/greetings.yml.
    assert ("Hello", "Hi") in english
    assert ("Hi, How is it going?", "Good") in english
    assert ("How are you doing?", "Very well, thanks.") in english
    # A quoted number in trivia.yml stays text.
    assert ("In what year were the first Air Jordan sneakers released?", "1984") in english


def test_english_multiline_reply_is_flattened(english: list[tuple[str, str]]) -> None:
    # english/coding.yml has block-literal replies with code; they become one line.
    replies = [reply for prompt, reply in english if prompt == "can you write a sorting algorithm?"]
    assert len(replies) == 1
    assert replies[0].startswith(
        "Sure. Here's quicksort in Python: ``` def quicksort(arr): if len(arr) <= 1: return arr"
    )


def test_duplicates_are_removed_keeping_the_first(english_import) -> None:
    english, report = english_import
    # english/tech_support.yml repeats 10 pairs 1050 times.
    pair = ("My system is overheating.", "Ensure air vents aren't blocked and clean any dust.")
    assert english.count(pair) == 1
    assert report.duplicates == report.pairs_read - len(english) >= 1050
    data = importlib.resources.files("chatterbot_corpus") / "data" / "english"
    raw = pairs_from_yaml(data / "tech_support.yml")
    assert raw.count(pair) > 1
    # The first occurrences keep the order in which the files and pairs were read.
    first_ai = pairs_from_yaml(data / "ai.yml")
    assert english[: len(first_ai)] == first_ai


def test_stray_string_conversation_is_skipped_and_named(english_import) -> None:
    english, report = english_import
    # english/trivia.yml has one conversation that YAML reads as a plain string (a missing
    # "- "); it must not be split into characters or turned into a pair, and the report names it.
    trivia = importlib.resources.files("chatterbot_corpus") / "data" / "english" / "trivia.yml"
    assert report.skipped_conversations == [
        f"{trivia}: conversation 14: a string ('In a game of bingo, which number is r...'), "
        "not a list of turns"
    ]
    assert not any(
        "two little ducks" in prompt or "two little ducks" in reply for prompt, reply in english
    )
    assert not any(len(prompt) == 1 and len(reply) == 1 for prompt, reply in english)


def test_chinese_pairs(chinese: list[tuple[str, str]]) -> None:
    # 550 unique pairs in chatterbot-corpus 1.3.3.
    assert len(chinese) > 450
    assert_clean(chinese)
    with_cjk = [pair for pair in chinese if CJK.search(pair[0]) and CJK.search(pair[1])]
    assert len(with_cjk) > len(chinese) * 0.8


def test_languages_concatenate_in_order_without_repeats(
    english: list[tuple[str, str]], chinese: list[tuple[str, str]]
) -> None:
    both = chatterbot_pairs(["english", "chinese"])
    assert len(both) > 1500  # 1726 in chatterbot-corpus 1.3.3
    expected = english + [pair for pair in chinese if pair not in set(english)]
    assert both == expected
    assert chatterbot_pairs(["chinese", "english"])[: len(chinese)] == chinese
    assert chatterbot_pairs(["english", "english"]) == english
    assert_clean(both)


def test_lone_string_is_one_language(english: list[tuple[str, str]]) -> None:
    assert chatterbot_pairs("english") == english  # type: ignore[arg-type]


def test_unknown_language_lists_available() -> None:
    with pytest.raises(ChatbotError) as info:
        chatterbot_pairs(["english", "klingon"])
    message = str(info.value)
    assert message.startswith("unknown chatterbot-corpus language 'klingon'; available: ")
    assert message.endswith(", ".join(chatterbot_languages()))
    assert "english" in message and "chinese" in message


def test_no_language_is_an_error() -> None:
    with pytest.raises(ChatbotError, match="no chatterbot-corpus language given; available: "):
        chatterbot_pairs([])


def test_missing_package_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(name: str) -> None:
        raise ModuleNotFoundError(f"No module named {name!r}", name=name)

    monkeypatch.setattr(chatterbot.importlib.resources, "files", missing)
    with pytest.raises(ChatbotError, match=r"pip install chatterbot-corpus \(or make install\)"):
        chatterbot_languages()
    with pytest.raises(ChatbotError, match="pip install chatterbot-corpus"):
        chatterbot_pairs(["english"])


# --- turn-to-pair logic on a small fake corpus ----------------------------------------------

FAKE_YAML = """\
categories:
- test
conversations:
- - Hello
  - 42
  - "  spaced\\tout\\r\\n  text  "
- - 3.5
  - null
  - after none
  - ok
- - [nested, list]
  - reply to nested
  - final
- - {key: value}
  - mapping reply
- - solo
- - "   "
  - blank prompt
- just a stray string
- - one
  - two
  - three
- - " one  "
  - two
- []
- - yes
  - sure
"""


def test_pairs_from_yaml(tmp_path: Path) -> None:
    path = tmp_path / "fake.yml"
    path.write_text(FAKE_YAML, encoding="utf-8")
    report = ImportReport()
    assert pairs_from_yaml(path, report) == [
        ("Hello", "42"),
        ("42", "spaced out text"),
        ("after none", "ok"),
        ("reply to nested", "final"),
        ("one", "two"),
        ("two", "three"),
        ("one", "two"),  # duplicates are removed later, by chatterbot_pairs
        ("True", "sure"),  # YAML reads an unquoted yes as a boolean
    ]
    assert pairs_from_yaml(str(path)) == pairs_from_yaml(path)
    assert report == ImportReport(
        files=1,
        pairs_read=8,
        skipped_conversations=[
            f"{path}: conversation 5: 1 turn, so no (prompt, reply) pair",
            f"{path}: conversation 7: a string ('just a stray string'), not a list of turns",
            f"{path}: conversation 10: 0 turns, so no (prompt, reply) pair",
        ],
        unusable_turns=[
            f"{path}: conversation 2: turn 2 is null; 2 of 3 pairs dropped",
            f"{path}: conversation 3: turn 1 is a list (\"['nested', 'list']\"), not text; "
            "1 of 2 pairs dropped",
            f"{path}: conversation 4: turn 1 is a mapping (\"{{'key': 'value'}}\"), not text; "
            "1 of 1 pair dropped",
            f"{path}: conversation 6: turn 1 is blank; 1 of 1 pair dropped",
        ],
        pairs_dropped=5,
        joined=1,  # the turn with a CR LF in it
        respaced=1,  # " one  "
        as_text=3,  # 42, 3.5 and yes
    )


def test_pairs_from_yaml_no_conversations(tmp_path: Path) -> None:
    path = tmp_path / "empty.yml"
    path.write_text("categories:\n- test\nconversations: []\n", encoding="utf-8")
    assert pairs_from_yaml(path) == []


@pytest.mark.parametrize(
    "text",
    [
        "conversations:\n- - a\n  - [unclosed\n",  # invalid YAML
        "- just\n- a list\n",  # not a mapping
        "categories:\n- test\n",  # no conversations key
        "conversations: hello\n",  # conversations is not a list
        "",  # empty file
    ],
)
def test_bad_yaml_file_names_the_file(tmp_path: Path, text: str) -> None:
    path = tmp_path / "broken.yml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ChatbotError, match=re.escape(str(path))):
        pairs_from_yaml(path)


def test_unreadable_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yml"
    path.write_bytes("conversations:\n- - caf\xe9\n  - ok\n".encode("latin-1"))
    with pytest.raises(ChatbotError, match=re.escape(str(path))):
        pairs_from_yaml(path)
    with pytest.raises(ChatbotError, match="missing.yml"):
        pairs_from_yaml(tmp_path / "missing.yml")


@pytest.mark.parametrize(
    ("turn", "expected"),
    [
        ("  Hi\tthere \r\n you  ", "Hi there you"),
        ("\u3000你好\u3000", "你好"),
        (7, "7"),
        (2.5, "2.5"),
        (True, "True"),
        ("", None),
        (" \t\n", None),
        (None, None),
        (["a", "b"], None),
        ({"a": "b"}, None),
    ],
)
def test_clean_turn(turn: object, expected: str | None) -> None:
    assert clean_turn(turn) == expected


# --- writing TSV ----------------------------------------------------------------------------


def test_write_tsv_round_trip(tmp_path: Path) -> None:
    pairs = [("Hello", "Hi"), ("你好", "你好！"), ("What's 2+2?", "4"), ("café", "naïve")]
    out = tmp_path / "nested" / "dir" / "pairs.tsv"
    assert write_tsv(pairs, out) == len(pairs)
    raw = out.read_bytes()
    assert b"\r" not in raw
    assert raw.endswith(b"\n")
    lines = raw.decode("utf-8").split("\n")
    assert lines[-1] == ""
    assert [tuple(line.split("\t")) for line in lines[:-1]] == pairs
    assert sorted(p.name for p in out.parent.iterdir()) == ["pairs.tsv"]


def test_write_tsv_replaces_existing_and_accepts_generators(tmp_path: Path) -> None:
    out = tmp_path / "pairs.tsv"
    out.write_text("old\tcontent\nmore\tlines\n", encoding="utf-8")
    assert write_tsv((pair for pair in [("a", "b")]), out) == 1
    assert out.read_text(encoding="utf-8") == "a\tb\n"
    assert write_tsv([], out) == 0
    assert out.read_text(encoding="utf-8") == ""
    assert [p.name for p in tmp_path.iterdir()] == ["pairs.tsv"]


def test_write_tsv_failure_keeps_old_file_and_no_temp(tmp_path: Path) -> None:
    out = tmp_path / "pairs.tsv"
    out.write_text("old\tcontent\n", encoding="utf-8")
    with pytest.raises(ValueError, match="tab or line break"):
        write_tsv([("fine", "ok"), ("bad\tprompt", "reply")], out)
    assert out.read_text(encoding="utf-8") == "old\tcontent\n"
    assert [p.name for p in tmp_path.iterdir()] == ["pairs.tsv"]


def test_import_chatterbot(tmp_path: Path, chinese: list[tuple[str, str]]) -> None:
    out = tmp_path / "data" / "chatterbot.tsv"
    report = import_chatterbot(["chinese"], out)
    assert report.rows == len(chinese) == report.pairs_read - report.duplicates
    data = importlib.resources.files("chatterbot_corpus") / "data" / "chinese"
    assert report.files == len([f for f in data.iterdir() if f.name.endswith(".yml")])
    lines = out.read_text(encoding="utf-8").splitlines()
    assert [tuple(line.split("\t")) for line in lines] == chinese
    assert [p.name for p in out.parent.iterdir()] == ["chatterbot.tsv"]


def test_import_chatterbot_adds_our_own_pairs_after_the_corpus(
        tmp_path: Path, chinese: list[tuple[str, str]]) -> None:
    ours = tmp_path / "about.tsv"
    ours.write_text("What is your name?\tI'm chatbot.\n"
                    f"{chinese[0][0]}\t{chinese[0][1]}\n", encoding="utf-8")  # (a repeat)
    out = tmp_path / "chatterbot.tsv"
    report = import_chatterbot(["chinese"], out, add=[ours])
    lines = [tuple(line.split("\t")) for line in out.read_text(encoding="utf-8").splitlines()]
    assert lines == [*chinese, ("What is your name?", "I'm chatbot.")]
    assert report.added == 1 and "added 1 pair of our own files" in report.format()
    jsonl = tmp_path / "chatterbot.jsonl"
    report = import_chatterbot(["chinese"], jsonl, add=[ours])
    assert report.added == 1
    assert '"content": "I\'m chatbot."' in jsonl.read_text(encoding="utf-8").splitlines()[-1]


def test_write_tsv_uses_normal_file_permissions(tmp_path: Path) -> None:
    reference = tmp_path / "reference.txt"
    reference.write_text("x", encoding="utf-8")
    out = tmp_path / "pairs.tsv"
    write_tsv([("a", "b")], out)
    assert out.stat().st_mode == reference.stat().st_mode


# --- the import report, on a small fake corpus installed in place of the real one ------------


def install_fake_corpus(root: Path, monkeypatch: pytest.MonkeyPatch, files: dict[str, str]) -> Path:
    """Writes ``files`` ({"LANGUAGE/NAME.yml": YAML}) under ``root``/data, makes it the corpus."""
    for name, text in files.items():
        path = root / "data" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    monkeypatch.setattr(chatterbot.importlib.resources, "files", lambda package: root)
    return root / "data"


def test_import_report_counts_everything_dropped_or_changed(tmp_path, monkeypatch) -> None:
    data = install_fake_corpus(tmp_path / "corpus", monkeypatch, {
        "aa/1.yml": "conversations:\n- [hi, hello, how are you]\n- [hi, hello]\n",
        "aa/2.yml": ("conversations:\n- [hi, hello]\n- stray text\n"
                     "- - |\n    two\n    lines\n  - ok\n"),
        "aa/notes.txt": "not a corpus file",
        "bb/3.yml": "conversations:\n- [你好, 你好！]\n- [hello, how are you]\n- [null, x]\n",
    })
    out = tmp_path / "pairs.tsv"
    report = import_chatterbot(["aa", "bb"], out)
    assert out.read_text(encoding="utf-8").splitlines() == [
        "hi\thello", "hello\thow are you", "two lines\tok", "你好\t你好！"]
    assert report == ImportReport(
        files=3,
        pairs_read=7,
        duplicates=3,  # "hi hello" in the same file and the next, "hello how are you" in bb
        skipped_conversations=[f"{data / 'aa/2.yml'}: conversation 2: a string ('stray text'), "
                               "not a list of turns"],
        unusable_turns=[f"{data / 'bb/3.yml'}: conversation 3: turn 1 is null; "
                        "1 of 1 pair dropped"],
        pairs_dropped=1,
        joined=1,
        rows=4,
    )
    assert report.format().splitlines() == [
        "read 7 pairs from 3 files",
        "dropped 3 duplicate pairs (the first of each is kept)",
        "skipped 1 conversation:",
        f"  {data / 'aa/2.yml'}: conversation 2: a string ('stray text'), not a list of turns",
        "dropped 1 pair with an unusable turn:",
        f"  {data / 'bb/3.yml'}: conversation 3: turn 1 is null; 1 of 1 pair dropped",
        "joined 1 multi-line turn into one line",
    ]


def test_import_report_of_a_clean_corpus_says_only_what_was_read(tmp_path, monkeypatch) -> None:
    install_fake_corpus(tmp_path / "corpus", monkeypatch,
                        {"aa/1.yml": "conversations:\n- [hi, hello, how are you]\n"})
    report = import_chatterbot(["aa"], tmp_path / "pairs.tsv")
    assert report == ImportReport(files=1, pairs_read=2, rows=2)
    assert report.format() == "read 2 pairs from 1 file"
