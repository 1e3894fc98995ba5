"""chatbot.data.dialogue and the chat JSONL path of read_pairs, split_pairs and `chatbot data
check`: every bad line named FILE:LINE (error mode) or counted (skip mode), the tolerated quirks of
real files (BOM, CRLF, blank lines), exchanges turned into pairs exactly, writing that round-trips
and is atomic, and splits that keep a conversation's pairs together."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chatbot.cli import main
from chatbot.data.dialogue import (
    Message,
    exchanges,
    is_conversation_file,
    parse_line,
    read_conversations,
    to_json_line,
    write_conversations,
)
from chatbot.data.pairs import Pair, read_pairs, split_pairs
from chatbot.errors import ChatbotError

HINT = "(fix the line, or pass --on-bad-lines skip to skip bad lines)"
NOTHING_TO_LEARN = "a conversation with no assistant turn after another turn: nothing to learn"
NO_MESSAGES = 'expected an object with a "messages" list'
NOT_A_LIST = '"messages" must be a list of {"role": ..., "content": ...} objects'
ROLES_ARE = "roles are 'system', 'user', 'assistant'"


def line(*turns: tuple[str, str]) -> str:
    """One conversation as JSONL text, written by hand (not by the module under test)."""
    return json.dumps({"messages": [{"role": r, "content": c} for r, c in turns]})


def write(tmp_path: Path, content: str | bytes, name: str = "chats.jsonl") -> Path:
    path = tmp_path / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def triples(report) -> list[tuple[tuple[str, ...], str, str, int]]:
    return [(p.context, p.prompt, p.reply, p.line) for p in report.pairs]


GOOD = line(("user", "hello"), ("assistant", "hi there"))
GOOD_TOO = line(("user", "你好"), ("assistant", "你好！"))

# (the line's bytes, the reason reported for it)
BAD_LINES = {
    "bad JSON": (b'{"messages": [', "bad JSON (Expecting value at column 15)"),
    "not JSON at all": (b"hello\tthere", "bad JSON (Expecting value at column 1)"),
    "trailing garbage": (GOOD.encode() + b" x",
                         f"bad JSON (Extra data at column {len(GOOD) + 2})"),
    "a number": (b"42", NO_MESSAGES + ", found a number"),
    "a string": (b'"hello"', NO_MESSAGES + ", found a string"),
    "null": (b"null", NO_MESSAGES + ", found null"),
    "a boolean": (b"true", NO_MESSAGES + ", found true or false"),
    "missing messages": (b'{"conversation": []}', NO_MESSAGES),
    "messages not a list": (b'{"messages": {"role": "user", "content": "hi"}}', NOT_A_LIST),
    "messages null": (b'{"messages": null}', NOT_A_LIST),
    "empty messages": (b'{"messages": []}', '"messages" is empty'),
    "empty top-level list": (b"[]", '"messages" is empty'),
    "message not an object": (b'{"messages": ["hi", "there"]}',
                              "message 1 is not an object with a role and a content"),
    "unknown role": (line(("user", "hi"), ("bot", "hello")).encode(),
                     f"message 2 has the role 'bot'; {ROLES_ARE}"),
    "role in capitals": (line(("User", "hi"), ("assistant", "hello")).encode(),
                         f"message 1 has the role 'User'; {ROLES_ARE}"),
    "missing role": (b'{"messages": [{"content": "hi"}]}',
                     f"message 1 has the role None; {ROLES_ARE}"),
    "number content": (b'{"messages": [{"role": "user", "content": 42}]}',
                       "message 1 (user) has no text content"),
    "null content": (b'{"messages": [{"role": "user", "content": null}]}',
                     "message 1 (user) has no text content"),
    "list content": (b'{"messages": [{"role": "user", "content": [{"type": "text"}]}]}',
                     "message 1 (user) has no text content"),
    "missing content": (b'{"messages": [{"role": "user"}]}',
                        "message 1 (user) has no text content"),
    "empty content": (line(("user", "hi"), ("assistant", "")).encode(),
                      "message 2 (assistant) has empty content"),
    "whitespace content": (line(("user", " \t\n\u3000 "), ("assistant", "hi")).encode(),
                           "message 1 (user) has empty content"),
    "lone surrogate": (b'{"messages": [{"role": "user", "content": "a\\ud800"}, '
                       b'{"role": "assistant", "content": "b"}]}',
                       "message 1 (user) holds a lone surrogate (\\ud800), not a character"),
    "a 5000-digit number": (b'{"messages": ' + b"1" * 5000 + b"}",
                            "bad JSON (a number too long to read)"),
    "nested too deeply": (b"[" * 100_000, "bad JSON (nested too deeply)"),
    "no assistant turn": (line(("user", "hi"), ("user", "anyone?")).encode(), NOTHING_TO_LEARN),
    "one user turn": (line(("user", "hi")).encode(), NOTHING_TO_LEARN),
    "assistant only": (line(("assistant", "hello")).encode(), NOTHING_TO_LEARN),
    "system and assistant only": (line(("system", "be kind"), ("assistant", "hello")).encode(),
                                  NOTHING_TO_LEARN),
    "system only": (line(("system", "be kind")).encode(), NOTHING_TO_LEARN),
    "invalid UTF-8": (b'{"messages": [{"role": "user", "content": "caf\xe9"}]}',
                      "not valid UTF-8 (byte 0xe9 at column 47); save the file with UTF-8 "
                      "encoding"),
    "UTF-16": (("\ufeff" + GOOD).encode("utf-16-le"),
               "not valid UTF-8 (byte 0xff at column 1); save the file with UTF-8 encoding"),
}
# The lines that are UTF-8, whose reason parse_line gives (the reader gives the others').
PARSED = {k: v for k, v in BAD_LINES.items() if k not in ("invalid UTF-8", "UTF-16")}


@pytest.mark.parametrize("bad, reason", BAD_LINES.values(), ids=BAD_LINES)
def test_a_bad_line_is_named_file_and_line_in_error_mode(tmp_path, bad, reason):
    path = write(tmp_path, GOOD.encode() + b"\n" + bad + b"\n" + GOOD_TOO.encode() + b"\n")
    with pytest.raises(ChatbotError) as read_error:
        read_pairs(path)
    assert str(read_error.value) == f"{path}:2: {reason} {HINT}"
    with pytest.raises(ChatbotError) as stream_error:
        list(read_conversations(path))
    assert str(stream_error.value) == str(read_error.value)


@pytest.mark.parametrize("bad, reason", BAD_LINES.values(), ids=BAD_LINES)
def test_a_bad_line_is_counted_in_skip_mode(tmp_path, bad, reason):
    path = write(tmp_path, GOOD.encode() + b"\n" + bad + b"\n" + GOOD_TOO.encode() + b"\n")
    report = read_pairs(path, on_bad_lines="skip")
    assert report.bad_lines == [(2, reason)]
    assert report.conversations == 2
    assert triples(report) == [((), "hello", "hi there", 1), ((), "你好", "你好！", 3)]
    bad_lines: list = []
    lines = [c.line for c in read_conversations(path, "skip", bad_lines)]
    assert (lines, bad_lines) == ([1, 3], [(2, reason)])


@pytest.mark.parametrize("bad, reason", PARSED.values(), ids=PARSED)
def test_parse_line_gives_the_reason(bad, reason):
    assert parse_line(bad.decode("utf-8")) == reason


def test_every_bad_line_is_counted_with_its_number(tmp_path):
    path = write(tmp_path, "\n".join([GOOD, "{", "", "[]", GOOD_TOO, "42", ""]) + "\n")
    report = read_pairs(path, on_bad_lines="skip")
    assert [n for n, _ in report.bad_lines] == [2, 4, 6]
    assert report.blank_lines == 2  # lines 3 and 7
    assert [p.line for p in report.pairs] == [1, 5]


def test_error_mode_stops_at_the_first_bad_line(tmp_path):
    path = write(tmp_path, "\n".join([GOOD, "", "{", "[]"]) + "\n")
    with pytest.raises(ChatbotError, match=rf"^{path}:3: bad JSON"):
        read_pairs(path)


def test_a_file_without_good_conversations_is_an_error(tmp_path):
    path = write(tmp_path, "{\n[]\n\n")
    with pytest.raises(ChatbotError) as error:
        read_pairs(path, on_bad_lines="skip")
    message = str(error.value)
    assert message.startswith(f"{path}: no conversations found (2 bad lines skipped); ")
    assert '{"messages": [{"role": "user"' in message


def test_an_empty_file_is_an_error(tmp_path):
    path = write(tmp_path, b"")
    with pytest.raises(ChatbotError, match="no conversations found;"):
        read_pairs(path)


def test_a_missing_file_or_a_directory_is_an_error(tmp_path):
    with pytest.raises(ChatbotError, match=r"nope\.jsonl: no such file$"):
        read_pairs(tmp_path / "nope.jsonl")
    (tmp_path / "dir.jsonl").mkdir()
    with pytest.raises(ChatbotError, match="is a directory, expected a .jsonl file"):
        read_pairs(tmp_path / "dir.jsonl")


# --- what real files hold -------------------------------------------------------------------


def test_a_bom_on_the_first_line_is_not_part_of_the_json(tmp_path):
    plain = read_pairs(write(tmp_path, f"{GOOD}\n{GOOD_TOO}\n", "plain.jsonl"))
    bom = read_pairs(write(tmp_path, b"\xef\xbb\xbf" + f"{GOOD}\n{GOOD_TOO}\n".encode()))
    assert bom.pairs == plain.pairs
    assert bom.bad_lines == []


def test_a_bom_where_two_files_were_concatenated_is_accepted(tmp_path):
    report = read_pairs(write(tmp_path, f"{GOOD}\n\ufeff{GOOD_TOO}\n"))
    assert [p.prompt for p in report.pairs] == ["hello", "你好"]


def test_crlf_line_ends(tmp_path):
    report = read_pairs(write(tmp_path, f"{GOOD}\r\n\r\n{GOOD_TOO}\r\n"))
    assert triples(report) == [((), "hello", "hi there", 1), ((), "你好", "你好！", 3)]
    assert report.blank_lines == 1
    assert report.bad_lines == []


def test_blank_lines_are_counted_not_bad_and_keep_the_line_numbers(tmp_path):
    path = write(tmp_path, f"\n  \n{GOOD}\n\t\n\n{GOOD_TOO}\n\n")
    report = read_pairs(path)  # error mode: blank lines are no error
    assert [p.line for p in report.pairs] == [3, 6]
    assert report.blank_lines == 5
    blank: list[int] = []
    assert [c.line for c in read_conversations(path, blank_lines=blank)] == [3, 6]
    assert blank == [1, 2, 4, 5, 7]


def test_the_last_line_needs_no_newline(tmp_path):
    report = read_pairs(write(tmp_path, f"{GOOD}\n{GOOD_TOO}"))
    assert [p.line for p in report.pairs] == [1, 2]


def test_content_is_one_line_of_single_spaces():
    text = line(("user", "  how\nare\t you?  "), ("assistant", "fine\r\n\r\nthanks"))
    assert parse_line(text) == (Message("user", "how are you?"),
                                Message("assistant", "fine thanks"))


def test_a_bare_list_of_messages_is_a_conversation():
    text = json.dumps([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}])
    assert parse_line(text) == (Message("user", "hi"), Message("assistant", "yo"))


def test_blank_text_is_no_conversation():
    assert parse_line("") is None
    assert parse_line(" \t") is None
    assert parse_line("\ufeff") is None


@pytest.mark.parametrize("name, expected", [
    ("a.jsonl", True), ("a.ndjson", True), ("A.JSONL", True), ("dir.x/a.jsonl", True),
    ("a.tsv", False), ("a.json", False), ("jsonl", False), ("a.jsonl.tsv", False),
])
def test_which_files_are_conversations(name, expected):
    assert is_conversation_file(name) is expected


def test_an_ndjson_file_is_read_as_conversations(tmp_path):
    report = read_pairs(write(tmp_path, GOOD + "\n", "chats.NDJSON"))
    assert triples(report) == [((), "hello", "hi there", 1)]
    assert report.conversations == 1


# --- exchanges and pairs --------------------------------------------------------------------


def msgs(*turns: tuple[str, str]) -> list[Message]:
    return [Message(r, c) for r, c in turns]


def test_exchanges_of_a_five_turn_conversation():
    five = msgs(("user", "u1"), ("assistant", "a1"), ("user", "u2"), ("assistant", "a2"),
                ("user", "u3"))  # the last turn has no reply: no pair
    assert list(exchanges(five)) == [([], "u1", "a1"), (["u1", "a1"], "u2", "a2")]


def test_exchanges_of_a_five_turn_conversation_opened_by_the_assistant():
    five = msgs(("assistant", "a0"), ("user", "u1"), ("assistant", "a1"), ("user", "u2"),
                ("assistant", "a2"))
    assert list(exchanges(five)) == [(["a0"], "u1", "a1"), (["a0", "u1", "a1"], "u2", "a2")]


def test_exchanges_leave_system_turns_out():
    turns = msgs(("system", "be kind"), ("user", "u1"), ("assistant", "a1"),
                 ("system", "be brief"), ("user", "u2"), ("system", "really"),
                 ("assistant", "a2"))
    assert list(exchanges(turns)) == [([], "u1", "a1"), (["u1", "a1"], "u2", "a2")]


def test_every_assistant_turn_after_another_turn_is_a_pair():
    turns = msgs(("user", "u1"), ("assistant", "a1"), ("assistant", "a2"))
    assert list(exchanges(turns)) == [([], "u1", "a1"), (["u1"], "a1", "a2")]


def test_exchanges_of_no_pair():
    assert list(exchanges([])) == []
    assert list(exchanges(msgs(("assistant", "a")))) == []
    assert list(exchanges(msgs(("system", "s"), ("assistant", "a")))) == []


def test_read_pairs_keeps_each_pair_in_its_context(tmp_path):
    five = line(("system", "you are a bot"), ("user", "I have a dog."),
                ("assistant", "What is its name?"), ("user", "Rex."),
                ("assistant", "Rex is a good name."), ("user", "Thanks!"))
    path = write(tmp_path, f"{GOOD}\n{five}\n")
    report = read_pairs(path)
    assert report.pairs == [
        Pair("hello", "hi there", 1),
        Pair("I have a dog.", "What is its name?", 2, ()),
        Pair("Rex.", "Rex is a good name.", 2, ("I have a dog.", "What is its name?")),
    ]
    assert report.conversations == 2


def test_duplicates_are_counted_and_dropped(tmp_path):
    chat = line(("user", "u1"), ("assistant", "a1"), ("user", "u2"), ("assistant", "a2"))
    same_start = line(("user", "u1"), ("assistant", "a1"), ("user", "other"), ("assistant", "a2"))
    other_context = line(("user", "x"), ("assistant", "y"), ("user", "u2"), ("assistant", "a2"))
    path = write(tmp_path, "\n".join([chat, chat, same_start, other_context, GOOD, GOOD]))
    report = read_pairs(path)
    assert report.duplicates == 2 + 1 + 1  # chat again; (u1, a1) again; GOOD again
    assert report.conversations == 6
    assert triples(report) == [
        ((), "u1", "a1", 1), (("u1", "a1"), "u2", "a2", 1),
        (("u1", "a1"), "other", "a2", 3),
        ((), "x", "y", 4), (("x", "y"), "u2", "a2", 4),  # same prompt and reply, new context
        ((), "hello", "hi there", 5),
    ]


# --- writing --------------------------------------------------------------------------------


CHINESE = [
    [("system", "你是一个友好的助手。"), ("user", "你好"), ("assistant", "你好！很高兴认识你。")],
    [Message("user", "再见"), Message("assistant", "再见，明天见。"),
     Message("user", "do you like tea? 我喜欢茶")],
]


def test_write_conversations_round_trips_chinese_as_characters(tmp_path):
    path = tmp_path / "out" / "chats.jsonl"
    assert write_conversations(path, iter(CHINESE)) == 2  # a generator is enough
    raw = path.read_bytes()
    assert "你好！很高兴认识你。".encode() in raw
    assert b"\\u" not in raw  # ensure_ascii=False: the characters, not escapes
    assert raw.count(b"\n") == 2 and raw.endswith(b"\n") and b"\r" not in raw
    read = list(read_conversations(path))
    expected = [tuple(Message(*m) if isinstance(m, tuple) else m for m in c) for c in CHINESE]
    assert [c.messages for c in read] == expected
    assert [c.line for c in read] == [1, 2]


def test_a_line_break_in_content_stays_inside_its_line(tmp_path):
    path = tmp_path / "chats.jsonl"
    write_conversations(path, [[("user", "one\ntwo\r\nthree\u2028four"), ("assistant", "ok")]])
    assert path.read_bytes().count(b"\n") == 1
    [conversation] = read_conversations(path)
    assert conversation.messages[0].content == "one two three four"


def test_to_json_line_is_what_parse_line_reads():
    turns = [("user", 'quotes " and \\ and {"braces": []}'), ("assistant", "中文")]
    assert parse_line(to_json_line(turns)) == tuple(Message(*t) for t in turns)
    assert json.loads(to_json_line(turns)) == json.loads(line(*turns))


def test_write_conversations_is_atomic(tmp_path):
    path = tmp_path / "chats.jsonl"
    write_conversations(path, CHINESE)
    before = path.read_bytes()

    def failing():
        yield [("user", "new"), ("assistant", "file")]
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError, match="disk on fire"):
        write_conversations(path, failing())
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["chats.jsonl"]  # no temporary file


def test_write_conversations_of_nothing_writes_an_empty_file(tmp_path):
    path = tmp_path / "chats.jsonl"
    assert write_conversations(path, []) == 0
    assert path.read_bytes() == b""


content = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=12).filter(
    lambda s: s.strip())
turn = st.tuples(st.sampled_from(["system", "user", "assistant"]), content)


@settings(max_examples=150, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.lists(turn, min_size=1, max_size=6), min_size=1, max_size=5))
def test_written_conversations_give_the_pairs_of_exchanges(tmp_path, conversations):
    path = tmp_path / "fuzz.jsonl"
    write_conversations(path, conversations)
    report_or_error: object
    try:
        report_or_error = read_pairs(path, on_bad_lines="skip")
    except ChatbotError as exc:
        report_or_error = exc
    expected, seen, learnable = [], set(), 0
    for number, turns in enumerate(conversations, start=1):
        messages = [Message(r, " ".join(c.split())) for r, c in turns]
        found = list(exchanges(messages))
        learnable += bool(found)
        for context, prompt, reply in found:
            if (*context, prompt, reply) not in seen:
                seen.add((*context, prompt, reply))
                expected.append(Pair(prompt, reply, number, tuple(context)))
    if not expected:
        assert isinstance(report_or_error, ChatbotError)
        return
    assert report_or_error.pairs == expected
    assert report_or_error.conversations == learnable
    assert len(report_or_error.bad_lines) == len(conversations) - learnable  # nothing to learn


# --- split_pairs ----------------------------------------------------------------------------


def old_split(pairs, val_fraction, seed):
    """split_pairs as it was before conversations: each pair on its own."""
    order = list(range(len(pairs)))
    random.Random(seed).shuffle(order)
    val_idx = set(order[: int(len(pairs) * val_fraction)])
    return ([p for i, p in enumerate(pairs) if i not in val_idx],
            [p for i, p in enumerate(pairs) if i in val_idx])


@pytest.fixture(scope="module")
def tsv_pairs(tmp_path_factory):
    # Blank, bad and duplicate lines, so that line numbers are not the pairs' indices.
    lines = []
    for i in range(53):
        lines.append(f"prompt {i}\treply {i}")
        if i % 7 == 0:
            lines += ["", "no tab here", f"prompt {i}\treply {i}"]
    path = tmp_path_factory.mktemp("split") / "pairs.tsv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return read_pairs(path, on_bad_lines="skip").pairs


@pytest.mark.parametrize("val_fraction", [0.0, 0.1, 0.25, 0.5, 0.9])
@pytest.mark.parametrize("seed", [0, 1, 7, 1234])
def test_a_tsv_is_split_exactly_as_before(tsv_pairs, val_fraction, seed):
    assert len(tsv_pairs) == 53
    assert split_pairs(tsv_pairs, val_fraction, seed) == old_split(tsv_pairs, val_fraction, seed)


@pytest.fixture(scope="module")
def conversation_pairs(tmp_path_factory):
    rng = random.Random(3)
    lines = []
    for c in range(40):
        turns = [("user" if t % 2 == 0 else "assistant", f"c{c} t{t}")
                 for t in range(rng.randint(2, 9))]
        lines.append(line(*turns))
        if c % 9 == 0:
            lines.append("")
    path = tmp_path_factory.mktemp("split") / "chats.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return read_pairs(path).pairs


@pytest.mark.parametrize("val_fraction", [0.0, 0.1, 0.3, 0.5, 0.95])
@pytest.mark.parametrize("seed", [0, 1, 42])
def test_a_conversation_is_never_split(conversation_pairs, val_fraction, seed):
    train, val = split_pairs(conversation_pairs, val_fraction, seed)
    train_lines, val_lines = {p.line for p in train}, {p.line for p in val}
    assert not train_lines & val_lines
    assert len(val_lines) == int(40 * val_fraction)  # the fraction counts conversations
    # Nothing lost, nothing added, file order kept on both sides.
    assert sorted(train + val, key=conversation_pairs.index) == conversation_pairs
    assert train == [p for p in conversation_pairs if p.line in train_lines]
    assert val == [p for p in conversation_pairs if p.line in val_lines]
    assert split_pairs(conversation_pairs, val_fraction, seed) == (train, val)


def test_different_seeds_give_different_conversation_splits(conversation_pairs):
    splits = {tuple(p.line for p in split_pairs(conversation_pairs, 0.25, s)[1])
              for s in range(5)}
    assert len(splits) > 1


# --- `chatbot data check` (its figures: tests/test_summary.py) -----------------------------


CHATS = "\n".join([
    line(("user", "hello"), ("assistant", "hi there")),  # 1: 2 turns, 1 pair
    line(("system", "be kind"), ("user", "how are you"), ("assistant", "fine"),
         ("user", "and you?"), ("assistant", "me too")),  # 2: 4 turns, 2 pairs
    "",  # 3: blank
    line(("user", "a b c d e"), ("assistant", "f g h i j"), ("user", "k"), ("assistant", "l"),
         ("user", "m"), ("assistant", "n")),  # 4: 6 turns, 3 pairs
]) + "\n"


def test_check_a_clean_conversation_file(tmp_path, capsys):
    path = write(tmp_path, CHATS)
    assert main(["data", "check", str(path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "conversations   3" in out
    assert "turns           p50 4  p90 6  max 6 per conversation (system turns left out)" in out
    assert "with context    50.0% of pairs (earlier turns before the prompt)" in out
    assert "bad lines       0" in out
    assert "blank lines     1" in out


def test_check_a_conversation_file_with_bad_lines(tmp_path, capsys):
    path = write(tmp_path, CHATS + '{"messages": []}\n' + line(("user", "hi")) + "\n{\n")
    assert main(["data", "check", str(path)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert "bad lines       3" in out
    assert "conversations   3" in out
    assert out[-3:] == [
        f'  {path}:5: "messages" is empty',
        f"  {path}:6: {NOTHING_TO_LEARN}",
        f"  {path}:7: bad JSON (Expecting property name enclosed in double quotes at column 2)",
    ]


def test_check_in_error_mode_names_the_first_bad_line(tmp_path, capsys):
    path = write(tmp_path, CHATS + "[]\n")
    assert main(["data", "check", "--on-bad-lines", "error", str(path)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == f'chatbot: error: {path}:5: "messages" is empty {HINT}\n'


def test_check_a_tsv_reports_no_conversations(tmp_path, capsys):
    path = write(tmp_path, "hello\thi\n", "pairs.tsv")
    assert main(["data", "check", str(path)]) == 0
    out = capsys.readouterr().out
    assert "pairs           1 (1 distinct prompts)" in out
    assert "conversations" not in out and "with context" not in out
