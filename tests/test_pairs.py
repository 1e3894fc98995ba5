"""read_pairs and split_pairs on hand-written files. (What `chatbot data check` reports from them:
tests/test_summary.py.)"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chatbot.data.pairs import LoadReport, Pair, read_pairs, split_pairs
from chatbot.errors import ChatbotError

ONE_COLUMN = "expected 2 tab-separated columns (prompt<TAB>reply), found 1"
EMPTY_PROMPT = "the prompt (first column) is empty"
EMPTY_REPLY = "the reply (second column) is empty"
NUL = "contains a NUL byte; is this a binary or UTF-16 file? save it as UTF-8 text"


def write(tmp_path: Path, content: bytes, name: str = "pairs.tsv") -> Path:
    path = tmp_path / name
    path.write_bytes(content)
    return path


def as_tuples(report: LoadReport) -> list[tuple[str, str, int]]:
    return [(p.prompt, p.reply, p.line) for p in report.pairs]


# --- good files -----------------------------------------------------------------------------


def test_good_file_gives_exact_pairs_with_line_numbers(tmp_path):
    path = write(
        tmp_path,
        "Hello\tHi there!\nHow are you?\tFine, thanks.\n你好\t你好！很高兴认识你。\n".encode(),
    )
    report = read_pairs(path)
    assert report.pairs == [
        Pair("Hello", "Hi there!", 1),
        Pair("How are you?", "Fine, thanks.", 2),
        Pair("你好", "你好！很高兴认识你。", 3),
    ]
    assert report.path == str(path)
    assert report.bad_lines == []
    assert report.blank_lines == 0
    assert report.duplicates == 0


def test_accepts_a_string_path(tmp_path):
    path = write(tmp_path, b"a\tb\n")
    assert as_tuples(read_pairs(str(path))) == [("a", "b", 1)]


def test_third_and_further_columns_are_ignored(tmp_path):
    path = write(tmp_path, b"hi\thello\tsource: film\textra\nbye\tsee you\n")
    assert as_tuples(read_pairs(path)) == [("hi", "hello", 1), ("bye", "see you", 2)]


def test_columns_are_stripped_of_surrounding_spaces(tmp_path):
    path = write(tmp_path, b"  hi  \t  hello there \n")
    assert as_tuples(read_pairs(path)) == [("hi", "hello there", 1)]


def test_bom_at_start_is_tolerated(tmp_path):
    path = write(tmp_path, b"\xef\xbb\xbfhello\thi\nbye\tciao\n")
    report = read_pairs(path)
    assert as_tuples(report) == [("hello", "hi", 1), ("bye", "ciao", 2)]
    assert "\ufeff" not in report.pairs[0].prompt
    assert report.pairs[0].prompt == "hello"


def test_crlf_line_ends_are_tolerated(tmp_path):
    path = write(tmp_path, b"hello\thi\r\n\r\nbye\tciao\r\nlast\tone\r\n")
    report = read_pairs(path)
    assert as_tuples(report) == [("hello", "hi", 1), ("bye", "ciao", 3), ("last", "one", 4)]
    assert all("\r" not in p.reply and "\r" not in p.prompt for p in report.pairs)
    assert report.blank_lines == 1


def test_bom_and_crlf_together(tmp_path):
    path = write(tmp_path, "\ufeff你好\t你好！\r\n再见\t再见。\r\n".encode())
    assert as_tuples(read_pairs(path)) == [("你好", "你好！", 1), ("再见", "再见。", 2)]


def test_blank_and_whitespace_only_lines_are_skipped_and_counted(tmp_path):
    content = b"\na\tb\n   \n\t\n \t \n\nc\td\n"
    report = read_pairs(write(tmp_path, content))
    assert as_tuples(report) == [("a", "b", 2), ("c", "d", 7)]
    assert report.blank_lines == 5
    assert report.bad_lines == []


def test_blank_lines_at_the_end_are_counted(tmp_path):
    report = read_pairs(write(tmp_path, b"a\tb\n\n\n"))
    assert as_tuples(report) == [("a", "b", 1)]
    assert report.blank_lines == 2


def test_last_line_without_trailing_newline_is_read(tmp_path):
    report = read_pairs(write(tmp_path, b"a\tb\nc\td"))
    assert as_tuples(report) == [("a", "b", 1), ("c", "d", 2)]
    assert report.blank_lines == 0


def test_last_line_without_newline_but_with_cr_is_read(tmp_path):
    assert as_tuples(read_pairs(write(tmp_path, b"a\tb\r\nc\td\r"))) == [
        ("a", "b", 1), ("c", "d", 2),
    ]


def test_duplicates_are_dropped_and_counted(tmp_path):
    content = b"hi\thello\nhi\thello\nhi\tyo\n  hi \t hello \nbye\tciao\nhi\thello\n"
    report = read_pairs(write(tmp_path, content))
    # Only exact (prompt, reply) repeats are dropped; the same prompt with another reply stays.
    assert as_tuples(report) == [("hi", "hello", 1), ("hi", "yo", 3), ("bye", "ciao", 5)]
    assert report.duplicates == 3


# --- bad lines: error mode ------------------------------------------------------------------


BAD_LINES = [
    pytest.param(b"just one column", ONE_COLUMN, id="one-column"),
    pytest.param(b"\treply without prompt", EMPTY_PROMPT, id="empty-prompt"),
    pytest.param(b"   \treply", EMPTY_PROMPT, id="blank-prompt"),
    pytest.param(b"prompt without reply\t", EMPTY_REPLY, id="empty-reply"),
    pytest.param(b"prompt\t  \tthird", EMPTY_REPLY, id="blank-reply"),
    pytest.param(
        b"caf\xe9\tlatin-1 text",
        "not valid UTF-8 (byte 0xe9 at column 4); save the file with UTF-8 encoding",
        id="invalid-utf8",
    ),
    pytest.param(b"a\x00b\tc", NUL, id="nul-byte"),
]


@pytest.mark.parametrize("bad, reason", BAD_LINES)
def test_bad_line_in_error_mode_names_file_and_line(tmp_path, bad, reason):
    path = write(tmp_path, b"good\tline\n\n" + bad + b"\nafter\tit\n")
    with pytest.raises(ChatbotError) as info:
        read_pairs(path, on_bad_lines="error")
    message = str(info.value)
    assert message.startswith(f"{path}:3: {reason}")
    assert "--on-bad-lines skip" in message


def test_error_is_the_default_mode(tmp_path):
    path = write(tmp_path, b"good\tline\nbad\n")
    with pytest.raises(ChatbotError) as info:
        read_pairs(path)
    assert str(info.value).startswith(f"{path}:2: ")


def test_one_column_message_mentions_two_tab_separated_columns(tmp_path):
    path = write(tmp_path, b"a\tb\nno tab here\n")
    with pytest.raises(ChatbotError) as info:
        read_pairs(path)
    message = str(info.value)
    assert message.startswith(f"{path}:2:")
    assert "2 tab-separated columns" in message


def test_invalid_utf8_message_names_line_and_mentions_utf8(tmp_path):
    path = write(tmp_path, "ok\tfine\nbad \xff\tx\n".encode("latin-1"))
    with pytest.raises(ChatbotError) as info:
        read_pairs(path)
    message = str(info.value)
    assert message.startswith(f"{path}:2: not valid UTF-8 (byte 0xff at column 5)")
    assert "UTF-8" in message


def test_utf16_file_is_reported_at_line_one(tmp_path):
    path = write(tmp_path, "hi\thello\n".encode("utf-16"))
    with pytest.raises(ChatbotError) as info:
        read_pairs(path)
    assert str(info.value).startswith(f"{path}:1: not valid UTF-8 (byte 0xff at column 1)")


def test_first_bad_line_is_the_one_reported(tmp_path):
    path = write(tmp_path, b"a\tb\nfirst bad\n\tsecond bad\n")
    with pytest.raises(ChatbotError) as info:
        read_pairs(path)
    assert str(info.value).startswith(f"{path}:2: {ONE_COLUMN}")


# --- bad lines: skip mode -------------------------------------------------------------------


@pytest.mark.parametrize("bad, reason", BAD_LINES)
def test_bad_line_in_skip_mode_is_counted_and_good_pairs_kept(tmp_path, bad, reason):
    path = write(tmp_path, b"good\tline\n\n" + bad + b"\nafter\tit\nlast\tone")
    report = read_pairs(path, on_bad_lines="skip")
    assert report.bad_lines == [(3, reason)]
    assert as_tuples(report) == [("good", "line", 1), ("after", "it", 4), ("last", "one", 5)]
    assert report.blank_lines == 1


def test_skip_mode_with_every_kind_of_bad_line(tmp_path):
    content = (
        b"p1\tr1\n"  # 1
        b"one column\n"  # 2
        b"p3\tr3\n"  # 3
        b"\tr4\n"  # 4
        b"p5\t\n"  # 5
        b"\xff\xfe\tr6\n"  # 6
        b"p7\x00\tr7\n"  # 7
        b"p8\tr8\r\n"  # 8
        b"p1\tr1\n"  # 9: duplicate of line 1
        b"\n"  # 10: blank
        b"p11\tr11"  # 11, no newline
    )
    report = read_pairs(write(tmp_path, content), on_bad_lines="skip")
    assert as_tuples(report) == [
        ("p1", "r1", 1), ("p3", "r3", 3), ("p8", "r8", 8), ("p11", "r11", 11),
    ]
    assert report.bad_lines == [
        (2, ONE_COLUMN),
        (4, EMPTY_PROMPT),
        (5, EMPTY_REPLY),
        (6, "not valid UTF-8 (byte 0xff at column 1); save the file with UTF-8 encoding"),
        (7, NUL),
    ]
    assert report.duplicates == 1
    assert report.blank_lines == 1


# --- no pairs, missing file, bad argument ---------------------------------------------------


@pytest.mark.parametrize(
    "content", [b"", b"\n", b"\n   \n\t\n", b"\xef\xbb\xbf", b"\r\n\r\n"],
    ids=["empty", "newline", "blank-lines", "bom-only", "crlf-blank"],
)
def test_file_with_no_pairs_raises(tmp_path, content):
    path = write(tmp_path, content)
    with pytest.raises(ChatbotError) as info:
        read_pairs(path)
    message = str(info.value)
    assert message.startswith(f"{path}: no prompt<TAB>reply pairs found; ")
    assert "tab character" in message


def test_file_with_only_bad_lines_in_skip_mode_raises_and_counts_them(tmp_path):
    path = write(tmp_path, b"no tab\n\tno prompt\n")
    with pytest.raises(ChatbotError) as info:
        read_pairs(path, on_bad_lines="skip")
    assert str(info.value).startswith(
        f"{path}: no prompt<TAB>reply pairs found (2 bad lines skipped);"
    )


def test_missing_file_names_the_path(tmp_path):
    path = tmp_path / "does-not-exist.tsv"
    with pytest.raises(ChatbotError) as info:
        read_pairs(path)
    assert str(info.value) == f"{path}: no such file"


def test_directory_instead_of_file(tmp_path):
    with pytest.raises(ChatbotError) as info:
        read_pairs(tmp_path)
    assert str(info.value) == f"{tmp_path}: is a directory, expected a .tsv file"


@pytest.mark.parametrize("value", ["ignore", "", "Skip", "ERROR", None])
def test_invalid_on_bad_lines_raises(tmp_path, value):
    path = write(tmp_path, b"a\tb\n")
    with pytest.raises(ChatbotError) as info:
        read_pairs(path, on_bad_lines=value)
    assert str(info.value) == f"on_bad_lines must be one of error, skip, received {value!r}"


def test_invalid_on_bad_lines_is_checked_before_the_file(tmp_path):
    with pytest.raises(ChatbotError, match="on_bad_lines must be one of"):
        read_pairs(tmp_path / "missing.tsv", on_bad_lines="warn")


# --- split_pairs ----------------------------------------------------------------------------


PAIRS = [Pair(f"p{i}", f"r{i}", i + 1) for i in range(20)]


def test_split_is_deterministic_for_the_same_seed():
    assert split_pairs(PAIRS, 0.25, seed=7) == split_pairs(PAIRS, 0.25, seed=7)


def test_split_differs_for_another_seed():
    _, val_a = split_pairs(PAIRS, 0.25, seed=7)
    _, val_b = split_pairs(PAIRS, 0.25, seed=8)
    assert val_a != val_b


@pytest.mark.parametrize("seed", [0, 1, 1234])
def test_split_partitions_the_pairs_in_original_order(seed):
    train, val = split_pairs(PAIRS, 0.25, seed=seed)
    assert len(val) == 5 and len(train) == 15
    assert set(train).isdisjoint(val)
    assert sorted(train + val, key=lambda p: p.line) == PAIRS
    # Both parts keep the file order.
    assert train == [p for p in PAIRS if p in train]
    assert val == [p for p in PAIRS if p in val]


@pytest.mark.parametrize(
    "n, fraction, expected",
    [(20, 0.25, 5), (20, 0.05, 1), (19, 0.05, 0), (7, 0.5, 3), (10, 0.3, 3), (3, 0.99, 2),
     (1, 0.5, 0)],
)
def test_validation_size_is_int_of_n_times_fraction(n, fraction, expected):
    train, val = split_pairs(PAIRS[:n], fraction, seed=1)
    assert len(val) == expected
    assert len(train) == n - expected


def test_fraction_zero_gives_empty_validation():
    train, val = split_pairs(PAIRS, 0.0, seed=3)
    assert val == []
    assert train == PAIRS


def test_split_of_no_pairs():
    assert split_pairs([], 0.5, seed=1) == ([], [])


@pytest.mark.parametrize("fraction", [1.0, 1.5, -0.1])
def test_split_rejects_fraction_outside_zero_one(fraction):
    with pytest.raises(ChatbotError) as info:
        split_pairs(PAIRS, fraction, seed=1)
    assert str(info.value) == f"val_fraction must be in [0, 1), received {fraction}"


# === read_pairs under fuzzing ==================================================================
# read_pairs under fuzzing: every outcome is a LoadReport or one ChatbotError naming the file
# (and the line, for a bad line); no good pair is ever lost, and none is invented.
#
# Two families of input. Random bytes check the outcome's shape against the raw lines. Files built
# line by line from known kinds (good pairs, one column, empty sides, NUL, invalid UTF-8,
# Latin-1, UTF-16, whitespace, tabs, 10^5-character lines, CRLF, a leading BOM) are checked against
# what each line should become: in skip mode every good pair, stripped, first occurrence kept, in
# order, with its line number; in error mode the first bad line.

MODES = ("skip", "error")
BOM = b"\xef\xbb\xbf"
FUZZ = settings(max_examples=600, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@pytest.fixture(scope="module")
def tsv(tmp_path_factory) -> Path:
    """One file, rewritten by every example (hypothesis and function-scoped tmp_path don't mix)."""
    return tmp_path_factory.mktemp("fuzz") / "pairs.tsv"


def load(path: Path, content: bytes, mode: str) -> LoadReport | ChatbotError:
    """The loader's outcome; any exception other than ChatbotError fails the test."""
    path.write_bytes(content)
    try:
        return read_pairs(path, on_bad_lines=mode)
    except ChatbotError as exc:
        return exc


# --- random bytes -----------------------------------------------------------------------------

# Lines of fragments meet the parser's edge cases far more often than uniform bytes do; most
# are shaped like pairs and three in four fragments are harmless, so that many lines are pairs.
HARMLESS = [b"\t", b"\t", b" ", b"a", b"hello", "你好".encode(), "\u3000".encode(), b"\r"]
HOSTILE = [b"\x00", b"\xff", b"\xfe", b"\xc3", b"\xa9", b"\xe4\xbd", BOM, b"\x0b",
           "\u2028".encode(), b"\x1b[0m", b"\r\n"]
fragment = st.one_of(*[st.sampled_from(HARMLESS)] * 3, st.sampled_from(HOSTILE))
side_bytes = st.lists(fragment, min_size=1, max_size=4).map(b"".join)
soup_line = st.one_of(
    st.tuples(side_bytes, side_bytes).map(b"\t".join),  # most often prompt<TAB>reply-like
    st.tuples(side_bytes, side_bytes).map(b"\t".join),
    st.lists(fragment, max_size=8).map(b"".join),
)
random_bytes = st.one_of(
    st.binary(max_size=400),
    st.lists(soup_line, max_size=20).map(b"\n".join),
)


def raw_lines(content: bytes) -> list[bytes]:
    """The file's lines as read_pairs defines them: LF, CRLF or CR ends a line; a BOM at the
    start of the file (or of a line, where files were concatenated) is not content."""
    lines = re.split(rb"\r\n|\r|\n", content.removeprefix(BOM))
    if lines[-1] == b"":
        lines.pop()
    return [line.removeprefix(BOM) for line in lines]


@FUZZ
@given(content=random_bytes)
def test_random_bytes_give_a_report_or_one_clear_error(tsv, content):
    lines = raw_lines(content)
    skip = load(tsv, content, "skip")
    error = load(tsv, content, "error")
    if isinstance(skip, ChatbotError):
        assert str(skip).startswith(f"{tsv}: no prompt<TAB>reply pairs found")
        assert isinstance(error, ChatbotError)
        if "bad lines skipped" in str(skip):  # error mode stops at one of them
            number = re.match(rf"{re.escape(str(tsv))}:(\d+): ", str(error))
            assert number and 1 <= int(number[1]) <= len(lines), str(error)
        else:
            assert str(error) == str(skip)
        return
    # Every line is accounted for, once: a pair, a bad line, a blank line or a duplicate.
    assert len(skip.pairs) + len(skip.bad_lines) + skip.blank_lines + skip.duplicates == len(lines)
    numbers = [p.line for p in skip.pairs] + [n for n, _ in skip.bad_lines]
    assert len(set(numbers)) == len(numbers) and all(1 <= n <= len(lines) for n in numbers)
    assert [p.line for p in skip.pairs] == sorted(p.line for p in skip.pairs)
    for pair in skip.pairs:  # each pair is what its line says, at the line it names
        columns = lines[pair.line - 1].decode("utf-8").split("\t")
        assert (pair.prompt, pair.reply) == (columns[0].strip(), columns[1].strip())
        assert pair.prompt and pair.reply and "\x00" not in pair.prompt + pair.reply
    if skip.bad_lines:  # error mode stops at the first line skip mode skipped, same reason
        number, reason = skip.bad_lines[0]
        assert isinstance(error, ChatbotError)
        assert str(error).startswith(f"{tsv}:{number}: {reason} ")
        assert "--on-bad-lines skip" in str(error)
    else:
        assert error == skip


# --- files built from known kinds of line -----------------------------------------------------


@dataclass(frozen=True)
class Line:
    raw: bytes  # the line's bytes, without its line end
    kind: str  # "good", "bad" or "blank"
    pair: tuple[str, str] | None = None  # good: the pair the loader must return
    reason: str = ""  # bad: a word its reason must contain


SPACE = " \u3000\xa0"  # surrounding spaces the loader strips
WHITESPACE = " \t\u3000\xa0\x0b\x0c\x1c\x1f\x85\u2028"  # str.strip() removes all of these
side = st.one_of(
    # A small pool, so that duplicates (also with different padding) are common.
    st.sampled_from(["hello", "hi there!", "你好", "再见，明天见。", "ok", "İstanbul", "🙂"]),
    st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\t\n\r\x00\ufeff"),
            min_size=1, max_size=20).filter(str.strip),
)
padding = st.text(SPACE, max_size=2)
extra_column = st.text(st.characters(blacklist_categories=("Cs",),
                                     blacklist_characters="\n\r\x00\ufeff"), max_size=10)


@st.composite
def good_text(draw) -> tuple[str, tuple[str, str]]:
    prompt, reply = draw(side), draw(side)
    text = draw(padding) + prompt + draw(padding) + "\t" + draw(padding) + reply + draw(padding)
    if draw(st.booleans()):
        text += "\t" + draw(extra_column)  # third and further columns are ignored
    return text, (prompt.strip(), reply.strip())


@st.composite
def good_line(draw) -> Line:
    text, pair = draw(good_text())
    return Line(text.encode(), "good", pair)


@st.composite
def long_line(draw) -> Line:
    big = draw(st.sampled_from("x你")) * 100_000
    if draw(st.booleans()):
        return Line(f"{big}\tok".encode(), "good", (big, "ok"))
    return Line(big.encode(), "bad", "2 tab-separated columns")


@st.composite
def nul_line(draw) -> Line:
    text, _ = draw(good_text())
    at = draw(st.integers(0, len(text)))
    return Line((text[:at] + "\x00" + text[at:]).encode(), "bad", "NUL")


INVALID_UTF8 = [b"\xff", b"\xfe", b"\x80", b"\xc0\xaf", b"\xc3", b"\xe4\xbd", b"\xed\xa0\x80",
                b"\xf8\x88\x80\x80\x80"]


@st.composite
def invalid_utf8_line(draw) -> Line:
    text, _ = draw(good_text())
    at = draw(st.integers(0, len(text)))  # at a character boundary: the bytes stay invalid
    raw = text[:at].encode() + draw(st.sampled_from(INVALID_UTF8)) + text[at:].encode()
    return Line(raw, "bad", "UTF-8")


ascii_word = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7e), max_size=8)


@st.composite
def latin1_line(draw) -> Line:
    # An accented letter followed by ASCII is never valid UTF-8 ("ß°" alone would be).
    text = (draw(ascii_word) + draw(st.sampled_from("éàüñçß°")) + draw(ascii_word) + "!\t"
            + draw(ascii_word) + "é")
    return Line(text.encode("latin-1"), "bad", "UTF-8")


@st.composite
def utf16_line(draw) -> Line:
    text = draw(st.text("abc 你好再见", max_size=6)) + "\t" + draw(st.text("xyz 谢谢", max_size=6))
    raw = text.encode(draw(st.sampled_from(["utf-16", "utf-16-le", "utf-16-be"])))
    # The tab's encoding always holds a zero byte, so the line is bad either way; which reason
    # comes first depends on whether the bytes happen to be valid UTF-8.
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return Line(raw, "bad", "UTF-8")
    return Line(raw, "bad", "NUL")


def text_line(kind: str, reason: str = ""):
    return lambda text: Line(text.encode(), kind, reason=reason)


line = st.one_of(
    good_line(), good_line(), good_line(),  # about a third of the lines are good
    long_line(),
    side.filter(lambda s: "\t" not in s).map(text_line("bad", "2 tab-separated columns")),
    st.text("\t ", min_size=1, max_size=4).map(text_line("blank")),  # tabs only
    st.text(WHITESPACE, max_size=4).map(text_line("blank")),
    st.tuples(padding, side).map(lambda t: Line(f"{t[0]}\t{t[1]}".encode(), "bad", "prompt")),
    st.tuples(side, padding, extra_column).map(
        lambda t: Line(f"{t[0]}\t{t[1]}{chr(9) + t[2] if t[2] else ''}".encode(), "bad", "reply")
    ),
    nul_line(), invalid_utf8_line(), latin1_line(), utf16_line(),
)


@st.composite
def tsv_file(draw) -> tuple[bytes, list[Line]]:
    lines = draw(st.lists(line, min_size=1, max_size=25))
    crlf = [draw(st.booleans()) for _ in lines]
    raws = [ln.raw + (b"\r" if cr else b"") for ln, cr in zip(lines, crlf)]
    trailing = draw(st.booleans())
    bom = BOM if draw(st.booleans()) else b""
    content = bom + b"\n".join(raws) + (b"\n" if trailing else b"")
    if not trailing and raws[-1] == b"":
        lines.pop()  # "...\n" + an empty last line is just a final newline
    return content, lines


def expected(lines: list[Line]) -> tuple[list[tuple[str, str, int]], list[int], int, int]:
    """(pairs with line numbers, bad line numbers, blank lines, duplicates)."""
    pairs, bad, blank, seen = [], [], 0, set()
    for number, ln in enumerate(lines, start=1):
        if ln.kind == "blank":
            blank += 1
        elif ln.kind == "bad":
            bad.append(number)
        elif ln.pair not in seen:
            seen.add(ln.pair)
            pairs.append((*ln.pair, number))
    duplicates = sum(ln.kind == "good" for ln in lines) - len(pairs)
    return pairs, bad, blank, duplicates


@FUZZ
@given(file=tsv_file())
def test_skip_mode_keeps_every_good_pair_and_counts_every_bad_line(tsv, file):
    content, lines = file
    pairs, bad, blank, duplicates = expected(lines)
    outcome = load(tsv, content, "skip")
    if not pairs:
        assert isinstance(outcome, ChatbotError)
        assert str(outcome).startswith(f"{tsv}: no prompt<TAB>reply pairs found")
        if bad:
            assert f"({len(bad)} bad lines skipped)" in str(outcome)
        return
    assert isinstance(outcome, LoadReport), outcome
    assert [(p.prompt, p.reply, p.line) for p in outcome.pairs] == pairs
    assert [n for n, _ in outcome.bad_lines] == bad
    for number, reason in outcome.bad_lines:
        assert lines[number - 1].reason in reason
    assert outcome.blank_lines == blank
    assert outcome.duplicates == duplicates


@FUZZ
@given(file=tsv_file())
def test_error_mode_names_the_first_bad_line(tsv, file):
    content, lines = file
    pairs, bad, blank, duplicates = expected(lines)
    outcome = load(tsv, content, "error")
    if bad:
        assert isinstance(outcome, ChatbotError)
        message = str(outcome)
        assert message.startswith(f"{tsv}:{bad[0]}: ")
        assert lines[bad[0] - 1].reason in message
        assert "--on-bad-lines skip" in message
    elif not pairs:
        assert isinstance(outcome, ChatbotError)
        assert str(outcome).startswith(f"{tsv}: no prompt<TAB>reply pairs found; ")
    else:
        assert isinstance(outcome, LoadReport), outcome
        assert [(p.prompt, p.reply, p.line) for p in outcome.pairs] == pairs
        assert (outcome.bad_lines, outcome.blank_lines, outcome.duplicates) == (
            [], blank, duplicates)


# --- line ends and BOMs, spelled out --------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_cr_only_line_ends_lose_no_pair(tmp_path, mode):
    outcome = load(tmp_path / "mac.tsv", b"hello\thi\rbye\tsee you\r", mode)
    assert isinstance(outcome, LoadReport), outcome
    assert [(p.prompt, p.reply, p.line) for p in outcome.pairs] == [
        ("hello", "hi", 1), ("bye", "see you", 2)]
    assert (outcome.bad_lines, outcome.blank_lines, outcome.duplicates) == ([], 0, 0)


@pytest.mark.parametrize("mode", MODES)
def test_bom_of_a_concatenated_file_is_not_kept_in_the_prompt(tmp_path, mode):
    outcome = load(tmp_path / "both.tsv", BOM + b"hello\thi\n" + BOM + b"bye\tsee you\n", mode)
    assert isinstance(outcome, LoadReport), outcome
    assert [(p.prompt, p.reply, p.line) for p in outcome.pairs] == [
        ("hello", "hi", 1), ("bye", "see you", 2)]
    assert (outcome.bad_lines, outcome.blank_lines, outcome.duplicates) == ([], 0, 0)
