"""Tests for chatbot.corpora.importers (Cornell, DailyDialog, turns text) and the chat JSONL output
of the chatterbot-corpus import, each on small files written in the corpus's own format."""

from __future__ import annotations

from pathlib import Path

import pytest

from chatbot.cli import main
from chatbot.corpora import chatterbot
from chatbot.corpora.chatterbot import ImportReport, import_chatterbot
from chatbot.corpora.importers import (
    ConversationReport,
    check_output,
    cornell_conversations,
    cornell_lines,
    import_cornell,
    import_dailydialog,
    import_turns,
)
from chatbot.data.dialogue import read_conversations
from chatbot.data.pairs import read_pairs
from chatbot.errors import ChatbotError


def turns_of(path: Path) -> list[list[tuple[str, str]]]:
    """Every conversation of a chat JSONL file as [(role, content), ...]."""
    return [[(m.role, m.content) for m in c.messages] for c in read_conversations(path)]


def pairs_of(path: Path) -> list[tuple[tuple[str, ...], str, str]]:
    """(context, prompt, reply) of every training pair that chatbot.data.pairs reads from `path`."""
    return [(p.context, p.prompt, p.reply) for p in read_pairs(path).pairs]


def chat(*turns: str) -> list[tuple[str, str]]:
    return [("user" if i % 2 == 0 else "assistant", t) for i, t in enumerate(turns)]


def only_files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


# --- Cornell Movie-Dialogs --------------------------------------------------------------------

CORNELL_LINES = [
    "L1045 +++$+++ u0 +++$+++ m0 +++$+++ BIANCA +++$+++ They do not!",
    "L1044 +++$+++ u2 +++$+++ m0 +++$+++ CAMERON +++$+++ They do to!",
    "L985 +++$+++ u0 +++$+++ m0 +++$+++ BIANCA +++$+++ I hope so.",
    "L984 +++$+++ u2 +++$+++ m0 +++$+++ CAMERON +++$+++ She okay?",
    "L872 +++$+++ u0 +++$+++ m0 +++$+++ BIANCA +++$+++ Okay -- you're gonna need to learn how "
    "to lie.",
    "L871 +++$+++ u2 +++$+++ m0 +++$+++ CAMERON +++$+++ No",
    "L870 +++$+++ u0 +++$+++ m0 +++$+++ BIANCA +++$+++ I'm kidding.  You know how sometimes "
    'you just become this "persona"?\tAnd you don\'t know how to quit?',
    "L869 +++$+++ u0 +++$+++ m0 +++$+++ BIANCA +++$+++ Like my fear of wearing pastels?",
    "L300 +++$+++ u0 +++$+++ BIANCA +++$+++ a field is missing",  # line 9: bad
    "",  # a blank line is passed over
    "L200 +++$+++ u5 +++$+++ m1 +++$+++ MARIE +++$+++ Un café, s'il vous plaît.",
    "L201 +++$+++ u6 +++$+++ m1 +++$+++ PIERRE +++$+++ Tout de suite.",
    "L474 +++$+++ u5 +++$+++ m1 +++$+++ MARIE +++$+++ ",  # empty text, as in the real corpus
    "L1045 +++$+++ u0 +++$+++ m0 +++$+++ BIANCA +++$+++ a repeated id",  # line 14: bad
    "1045 +++$+++ u0 +++$+++ m0 +++$+++ BIANCA +++$+++ no L",  # line 15: bad
]
CORNELL_CONVERSATIONS = [
    "u0 +++$+++ u2 +++$+++ m0 +++$+++ ['L1044', 'L1045']",
    "u0 +++$+++ u2 +++$+++ m0 +++$+++ ['L869', 'L870', 'L871', 'L872']",
    "u5 +++$+++ u6 +++$+++ m1 +++$+++ ['L200', 'L201']",
    # line 4: an unknown id in the middle: a bad line, and the conversation is cut there
    "u0 +++$+++ u2 +++$+++ m0 +++$+++ ['L984', 'L985', 'L999', 'L1044', 'L1045']",
    "u5 +++$+++ u6 +++$+++ m1 +++$+++ ['L474', 'L200', 'L201']",  # line 5: empty first turn
    "u5 +++$+++ u6 +++$+++ m1 +++$+++ ['L201', 'L998', 'L997']",  # line 6: 1 usable turn
    "u0 +++$+++ u2 +++$+++ m0 +++$+++ ['L984']",  # line 7: one turn
    "u0 +++$+++ u2 +++$+++ m0 +++$+++ L984, L985",  # line 8: not a list
    "u0 +++$+++ m0 +++$+++ ['L984', 'L985']",  # line 9: a field is missing
    "u0 +++$+++ u2 +++$+++ m0 +++$+++ [\"L985\", \"L984\"]",  # double quotes are fine
]


@pytest.fixture
def cornell(tmp_path: Path) -> Path:
    folder = tmp_path / "cornell movie-dialogs corpus"
    folder.mkdir()
    for name, lines in (("movie_lines.txt", CORNELL_LINES),
                        ("movie_conversations.txt", CORNELL_CONVERSATIONS)):
        (folder / name).write_bytes("".join(f"{line}\n" for line in lines).encode("latin-1"))
    assert b"caf\xe9" in (folder / "movie_lines.txt").read_bytes()  # é is one latin-1 byte
    return folder


def test_cornell_conversations_roles_and_text(cornell: Path, tmp_path: Path) -> None:
    out = tmp_path / "out" / "cornell.jsonl"
    report = import_cornell(cornell, out)
    assert turns_of(out) == [
        chat("They do to!", "They do not!"),
        chat("Like my fear of wearing pastels?",
             "I'm kidding. You know how sometimes you just become this \"persona\"? And you "
             "don't know how to quit?",
             "No",
             "Okay -- you're gonna need to learn how to lie."),
        chat("Un café, s'il vous plaît.", "Tout de suite."),
        chat("She okay?", "I hope so."),  # line 4, before the unknown L999
        chat("They do to!", "They do not!"),  # line 4, after it
        chat("Un café, s'il vous plaît.", "Tout de suite."),  # line 5, after the empty L474
        chat("I hope so.", "She okay?"),
    ]
    lines, conversations = cornell / "movie_lines.txt", cornell / "movie_conversations.txt"
    assert report == ConversationReport(
        source=str(cornell), read=8, conversations=7, turns=16, bad_lines=7, skipped=2, cut=2,
        examples={
            "bad_lines": [
                f"{lines}:9: expected 5 fields separated by ' +++$+++ ', found 4",
                f"{lines}:14: repeats the line id L1045; the first is kept",
                f"{lines}:15: expected a line id such as L1045 first, found '1045'",
                f"{conversations}:4: line id L999 not in movie_lines.txt",
                f"{conversations}:6: line ids L998, L997 not in movie_lines.txt",
            ],
            "skipped": [
                f"{conversations}:6: 1 of 3 turns usable, no 2 in a row",
                f"{conversations}:7: 1 turn; a conversation needs 2",
            ],
            "cut": [
                f"{conversations}:4: turn 3 of 5 empty or unreadable; kept turns 1-2, 4-5",
                f"{conversations}:5: turn 1 of 3 empty or unreadable; kept turns 2-3",
            ],
        })
    assert report.format().splitlines() == [
        f"read 8 conversations from {cornell}",
        "skipped 7 bad lines:",
        *(f"  {e}" for e in report.examples["bad_lines"]),
        "  ... and 2 more",  # only the first 5 are named; lines 8 and 9 are counted
        "skipped 2 conversations without 2 usable turns in a row:",
        *(f"  {e}" for e in report.examples["skipped"]),
        "cut 2 conversations at unusable turns (no reply follows a turn it did not answer):",
        *(f"  {e}" for e in report.examples["cut"]),
    ]
    assert only_files(out.parent) == ["cornell.jsonl"]  # no temporary file left


def test_cornell_pairs_keep_their_context(cornell: Path, tmp_path: Path) -> None:
    out = tmp_path / "cornell.jsonl"
    import_cornell(cornell, out)
    # Only assistant turns are replies; a repeated exchange (line 4's second part, line 5) is
    # dropped by the loader, which counts it.
    assert pairs_of(out) == [
        ((), "They do to!", "They do not!"),
        ((), "Like my fear of wearing pastels?",
         "I'm kidding. You know how sometimes you just become this \"persona\"? And you don't "
         "know how to quit?"),
        (("Like my fear of wearing pastels?",
          "I'm kidding. You know how sometimes you just become this \"persona\"? And you don't "
          "know how to quit?"),
         "No", "Okay -- you're gonna need to learn how to lie."),
        ((), "Un café, s'il vous plaît.", "Tout de suite."),
        ((), "She okay?", "I hope so."),
        ((), "I hope so.", "She okay?"),
    ]
    loaded = read_pairs(out)
    assert (loaded.conversations, loaded.duplicates, loaded.bad_lines) == (7, 2, [])
    assert [pair.line for pair in loaded.pairs] == [1, 2, 2, 3, 4, 7]  # lines of the JSONL


def test_cornell_lines_are_held_once_and_conversations_streamed(cornell: Path) -> None:
    report = ConversationReport(str(cornell))
    lines = cornell_lines(cornell / "movie_lines.txt", report)
    assert lines["L200"] == "Un café, s'il vous plaît."
    assert lines["L474"] == ""  # known, but empty: a turn that cuts its conversation
    assert lines["L1045"] == "They do not!"  # the first of a repeated id
    assert len(lines) == 11
    conversations = cornell_conversations(cornell / "movie_conversations.txt", lines, report)
    assert iter(conversations) is conversations  # a generator, not a list
    assert next(conversations) == (f"{cornell / 'movie_conversations.txt'}:1",
                                   ["They do to!", "They do not!"])


def test_cornell_folder_errors_say_what_to_pass(cornell: Path, tmp_path: Path) -> None:
    out = tmp_path / "c.jsonl"
    with pytest.raises(ChatbotError, match=r"no such folder; download the Cornell Movie-Dialogs "
                                           r"corpus \(cornell_movie_dialogs_corpus.zip\)"):
        import_cornell(tmp_path / "missing", out)
    # The folder the zip unpacks into is one level down: named.
    with pytest.raises(ChatbotError) as info:
        import_cornell(tmp_path, out)
    assert str(info.value) == (f"{tmp_path}: no movie_lines.txt or movie_conversations.txt "
                               f"here; they are in {cornell}: pass that folder")
    (cornell / "movie_conversations.txt").unlink()
    with pytest.raises(ChatbotError, match=r"no movie_conversations.txt here; download the "
                                           r"Cornell .* pass the folder that holds "
                                           r"movie_lines.txt and movie_conversations.txt"):
        import_cornell(cornell, out)
    with pytest.raises(ChatbotError, match="not a folder"):
        import_cornell(cornell / "movie_lines.txt", out)
    assert not out.exists()


# --- DailyDialog ------------------------------------------------------------------------------

DAILYDIALOG = (
    "The kitchen stinks . __eou__ I'll throw out the garbage . __eou__\n"
    "\n"  # an empty line
    "Can you do push-ups ? __eou__ Of course I can . It's a piece of cake ! Believe it or not "
    ", I can do 30 push-ups a minute . __eou__ Really ? I think that's impossible ! __eou__ "
    "You mean 30 push-ups ? __eou__ Yeah ! __eou__\n"
    "Say , Jim , how about going for a few beers after dinner ? __eou__\n"  # line 4: one turn
    "What ' s   the matter ? __eou__ \t __eou__ Nothing . __eou__ Really ? __eou__\n"  # line 5
    "no trailing end of turn __eou__ is fine\n"  # line 6
)


def test_dailydialog(tmp_path: Path) -> None:
    path = tmp_path / "ijcnlp_dailydialog" / "dialogues_text.txt"
    path.parent.mkdir()
    path.write_bytes(DAILYDIALOG.encode("utf-8") + b"caf\xe9 __eou__ ok __eou__\n")
    out = tmp_path / "daily.jsonl"
    report = import_dailydialog(path.parent, out)  # the folder is fine too
    assert turns_of(out) == [
        chat("The kitchen stinks .", "I'll throw out the garbage ."),
        chat("Can you do push-ups ?",
             "Of course I can . It's a piece of cake ! Believe it or not , I can do 30 "
             "push-ups a minute .",
             "Really ? I think that's impossible !", "You mean 30 push-ups ?", "Yeah !"),
        chat("Nothing .", "Really ?"),  # line 5, after its blank turn
        chat("no trailing end of turn", "is fine"),
    ]
    assert report == ConversationReport(
        source=str(path), read=5, conversations=4, turns=11, bad_lines=1, skipped=1, cut=1,
        examples={
            "bad_lines": [f"{path}:7: not valid UTF-8 (byte 0xe9 at column 4); save the file "
                          "with UTF-8 encoding"],
            "skipped": [f"{path}:4: 1 turn; a conversation needs 2"],
            "cut": [f"{path}:5: turn 2 of 4 empty or unreadable; kept turns 3-4"],
        })


def test_dailydialog_text_is_kept_as_tokenized(tmp_path: Path) -> None:
    path = tmp_path / "dialogues_text.txt"
    path.write_text("What ' s   the matter ? __eou__ I can ' t find my key . __eou__\n",
                    encoding="utf-8")
    import_dailydialog(path, tmp_path / "daily.jsonl")
    assert turns_of(tmp_path / "daily.jsonl") == [
        chat("What ' s the matter ?", "I can ' t find my key .")]


def test_dailydialog_cut_and_pairs(tmp_path: Path) -> None:
    path = tmp_path / "dialogues_text.txt"
    path.write_text("Hi . __eou__ Hello . __eou__ __eou__ A . __eou__ B . __eou__ C . __eou__\n",
                    encoding="utf-8")
    out = tmp_path / "daily.ndjson"
    report = import_dailydialog(path, out)
    assert turns_of(out) == [chat("Hi .", "Hello ."), chat("A .", "B .", "C .")]
    assert (report.cut, report.examples["cut"]) == (
        1, [f"{path}:1: turn 3 of 6 empty or unreadable; kept turns 1-2, 4-6"])
    assert pairs_of(out) == [((), "Hi .", "Hello ."), ((), "A .", "B .")]


# --- turns text -------------------------------------------------------------------------------

def test_turns_text_with_bom_crlf_and_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "turns.txt"
    path.write_bytes(
        b"\xef\xbb\xbf\r\n"  # a BOM on a blank first line
        b"hello\r\n"  # line 2
        b"hi there!  how are you?\r\n"
        b"\xe6\x88\x91\xe5\xbe\x88\xe5\xa5\xbd\r\n"  # 我很好
        b"\r\n \t \r\n\r\n"  # several blank lines, one of spaces and a tab
        b"lonely\r\n"  # line 8: a conversation of one turn
        b"\r\n"
        b"bad \xff byte\r\n"  # line 10: not UTF-8
        b"a\r\n"
        b"b\r\n"
        b"\r\n"
        b"last\r\n"  # line 14
        b"one")  # no line end at the end
    out = tmp_path / "turns.jsonl"
    report = import_turns(path, out)
    assert turns_of(out) == [chat("hello", "hi there! how are you?", "我很好"),
                             chat("a", "b"), chat("last", "one")]
    assert report == ConversationReport(
        source=str(path), read=4, conversations=3, turns=7, bad_lines=1, skipped=1, cut=1,
        examples={
            "bad_lines": [f"{path}:10: not valid UTF-8 (byte 0xff at column 5); save the file "
                          "with UTF-8 encoding"],
            "skipped": [f"{path}:8: 1 turn; a conversation needs 2"],
            "cut": [f"{path}:10: turn 1 of 3 empty or unreadable; kept turns 2-3"],
        })
    assert pairs_of(out) == [((), "hello", "hi there! how are you?"), ((), "a", "b"),
                             ((), "last", "one")]
    assert report.format() == "\n".join([
        f"read 4 conversations from {path}",
        "skipped 1 bad line:",
        f"  {path}:10: not valid UTF-8 (byte 0xff at column 5); save the file with UTF-8 "
        "encoding",
        "skipped 1 conversation without 2 usable turns in a row:",
        f"  {path}:8: 1 turn; a conversation needs 2",
        "cut 1 conversation at unusable turns (no reply follows a turn it did not answer):",
        f"  {path}:10: turn 1 of 3 empty or unreadable; kept turns 2-3",
    ])


def test_nothing_usable_is_an_error_and_keeps_the_old_output(tmp_path: Path) -> None:
    path = tmp_path / "turns.txt"
    path.write_text("one\n\ntwo\n\n\n", encoding="utf-8")
    out = tmp_path / "turns.jsonl"
    out.write_text("old\n", encoding="utf-8")
    with pytest.raises(ChatbotError) as info:
        import_turns(path, out)
    assert str(info.value) == (
        f"{path}: no conversation with 2 usable turns in a row (2 conversations read, 0 bad "
        f"lines); the first problem: {path}:1: 1 turn; a conversation needs 2; is it the right "
        "file?")
    assert out.read_text(encoding="utf-8") == "old\n"
    assert only_files(tmp_path) == ["turns.jsonl", "turns.txt"]


def test_output_must_be_read_back_as_conversations(tmp_path: Path) -> None:
    assert check_output(tmp_path / "a.jsonl") == tmp_path / "a.jsonl"
    assert check_output(tmp_path / "a.NDJSON") == tmp_path / "a.NDJSON"
    with pytest.raises(ChatbotError) as info:
        check_output(tmp_path / "pairs.tsv")
    assert str(info.value) == (
        f"{tmp_path / 'pairs.tsv'}: importers write chat JSONL, which training reads from "
        "files ending in .jsonl or .ndjson (any other file is read as TSV pairs); name it "
        f"{tmp_path / 'pairs.jsonl'}")
    (tmp_path / "dir.jsonl").mkdir()
    with pytest.raises(ChatbotError, match="is a directory; name the .jsonl file to write"):
        check_output(tmp_path / "dir.jsonl")
    with pytest.raises(ChatbotError, match="no such file; pass a UTF-8 text file"):
        import_turns(tmp_path / "missing.txt", tmp_path / "out.jsonl")
    with pytest.raises(ChatbotError, match=r"no such file; download DailyDialog "
                                           r"\(ijcnlp_dailydialog.zip\)"):
        import_dailydialog(tmp_path / "missing.txt", tmp_path / "out.jsonl")


# --- chatterbot-corpus as conversations -------------------------------------------------------

def fake_chatterbot(root: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A chatterbot-corpus with one language, "aa", installed in place of the real one."""
    data = root / "data" / "aa"
    data.mkdir(parents=True)
    (data / "1.yml").write_text(
        "conversations:\n"
        "- [hi, hello, how are you, fine]\n"
        "- [hi, hello]\n"
        "- - |\n    two\n    lines\n  - ok\n"
        "- [a, null, b, c, d]\n"  # cut at the null: [b, c, d]
        "- [solo]\n", encoding="utf-8")
    (data / "2.yml").write_text("conversations:\n- [hi, hello]\n- [yes, 42]\n", encoding="utf-8")
    monkeypatch.setattr(chatterbot.importlib.resources, "files", lambda package: root)
    return data


def test_chatterbot_jsonl_keeps_each_conversation(tmp_path, monkeypatch) -> None:
    data = fake_chatterbot(tmp_path / "corpus", monkeypatch)
    out = tmp_path / "chatterbot.jsonl"
    report = import_chatterbot(["aa"], out)  # the suffix says jsonl
    assert turns_of(out) == [chat("hi", "hello", "how are you", "fine"), chat("hi", "hello"),
                             chat("two lines", "ok"), chat("b", "c", "d"),
                             chat("True", "42")]
    assert report == ImportReport(
        files=2, pairs_read=9, duplicate_conversations=1,
        skipped_conversations=[f"{data / '1.yml'}: conversation 5: 1 turn, so no (prompt, "
                               "reply) pair"],
        unusable_turns=[f"{data / '1.yml'}: conversation 4: turn 2 is null; 2 of 4 pairs "
                        "dropped"],
        pairs_dropped=2, joined=1, as_text=2, conversations=5, turns=13)
    assert report.format().splitlines()[:2] == [
        "read 9 pairs from 2 files",
        "dropped 1 duplicate conversation (the first of each is kept)"]
    assert pairs_of(out) == [
        ((), "hi", "hello"), (("hi", "hello"), "how are you", "fine"), ((), "two lines", "ok"),
        ((), "b", "c"), ((), "True", "42")]
    # The TSV holds the same exchanges, as pairs, each once.
    tsv = tmp_path / "chatterbot.tsv"
    assert import_chatterbot(["aa"], tsv, "tsv").rows == 7
    assert tsv.read_text(encoding="utf-8").splitlines() == [
        "hi\thello", "hello\thow are you", "how are you\tfine", "two lines\tok", "b\tc",
        "c\td", "True\t42"]


def test_chatterbot_format_must_match_the_suffix(tmp_path, monkeypatch) -> None:
    fake_chatterbot(tmp_path / "corpus", monkeypatch)
    with pytest.raises(ChatbotError) as info:
        import_chatterbot(["aa"], tmp_path / "x.tsv", "jsonl")
    assert str(info.value) == (
        f"{tmp_path / 'x.tsv'}: --format jsonl needs a file name ending in .jsonl, since "
        "training reads .jsonl and .ndjson files as conversations and any other file as TSV "
        f"pairs; name it {tmp_path / 'x.jsonl'}")
    with pytest.raises(ChatbotError, match=r"--format tsv needs a file name ending in \.tsv"):
        import_chatterbot(["aa"], tmp_path / "x.jsonl", "tsv")
    with pytest.raises(ValueError, match="out_format must be one of tsv, jsonl, received 'csv'"):
        import_chatterbot(["aa"], tmp_path / "x.csv", "csv")
    assert only_files(tmp_path) == ["corpus"]


# --- the command line -------------------------------------------------------------------------

def test_cli_import_cornell(cornell: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "cornell.jsonl"
    # docs: chatbot data import-cornell "cornell movie-dialogs corpus" -o data/cornell.jsonl
    assert main(["data", "import-cornell", str(cornell), "-o", str(out)]) == 0
    printed = capsys.readouterr()
    lines = printed.out.splitlines()
    assert lines[0] == f"read 8 conversations from {cornell}"
    assert lines[-1] == f"wrote 7 conversations (16 turns) to {out}"
    assert printed.err == ""
    assert len(turns_of(out)) == 7

    assert main(["data", "import-cornell", str(cornell), "-o", str(tmp_path / "c.tsv")]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"chatbot: error: {tmp_path / 'c.tsv'}: importers write chat JSONL")
    assert "Traceback" not in err
    assert main(["data", "import-cornell", str(tmp_path / "nowhere"), "-o", str(out)]) == 1
    assert capsys.readouterr().err == (
        f"chatbot: error: {tmp_path / 'nowhere'}: no such folder; download the Cornell "
        "Movie-Dialogs corpus (cornell_movie_dialogs_corpus.zip), unzip it and pass the folder "
        "that holds movie_lines.txt and movie_conversations.txt\n")


def test_cli_import_dailydialog_and_turns(tmp_path: Path, capsys) -> None:
    daily = tmp_path / "dialogues_text.txt"
    daily.write_text("Hi . __eou__ Hello . __eou__\n", encoding="utf-8")
    out = tmp_path / "daily.jsonl"
    # docs: chatbot data import-dailydialog ijcnlp_dailydialog/dialogues_text.txt -o \
    #       data/dailydialog.jsonl
    assert main(["data", "import-dailydialog", str(daily), "-o", str(out)]) == 0
    assert capsys.readouterr().out == (f"read 1 conversation from {daily}\n"
                                       f"wrote 1 conversation (2 turns) to {out}\n")
    assert turns_of(out) == [chat("Hi .", "Hello .")]

    text = tmp_path / "turns.txt"
    text.write_text("hello\nhi\n\nbye\nsee you\n", encoding="utf-8")
    out = tmp_path / "turns.jsonl"
    # docs: chatbot data import-turns chats.txt -o data/chats.jsonl
    assert main(["data", "import-turns", str(text), "-o", str(out)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == f"wrote 2 conversations (4 turns) to {out}"
    assert turns_of(out) == [chat("hello", "hi"), chat("bye", "see you")]
    with pytest.raises(SystemExit) as exited:  # import-turns has no default output
        main(["data", "import-turns", str(text)])
    assert exited.value.code == 2
    assert "the following arguments are required: -o/--out" in capsys.readouterr().err


def test_cli_import_chatterbot_format(tmp_path, monkeypatch, capsys) -> None:
    fake_chatterbot(tmp_path / "corpus", monkeypatch)
    out = tmp_path / "c.jsonl"
    # docs: chatbot data import-chatterbot --lang english -o data/chatterbot.jsonl
    assert main(["data", "import-chatterbot", "--lang", "aa", "-o", str(out)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == (
        f"wrote 5 conversations, 13 turns (aa) to {out}")
    assert len(turns_of(out)) == 5
    tsv = tmp_path / "c.tsv"
    assert main(["data", "import-chatterbot", "--lang", "aa", "-o", str(tsv),
                 "--format", "tsv"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == f"wrote 7 pairs (aa) to {tsv}"
    assert main(["data", "import-chatterbot", "--lang", "aa", "-o", str(tsv),
                 "--format", "jsonl"]) == 1
    assert "--format jsonl needs a file name ending in .jsonl" in capsys.readouterr().err
