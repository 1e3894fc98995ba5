"""read_pairs under fuzzing: every outcome is a LoadReport or one ChatbotError naming the file
(and the line, for a bad line); no good pair is ever lost, and none is invented.

Two families of input. Random bytes check the outcome's shape against the raw lines. Files built
line by line from known kinds (good pairs, one column, empty sides, NUL, invalid UTF-8,
Latin-1, UTF-16, whitespace, tabs, 10^5-character lines, CRLF, a leading BOM) are checked against
what each line should become: in skip mode every good pair, stripped, first occurrence kept, in
order, with its line number; in error mode the first bad line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chatbot.data.pairs import LoadReport, read_pairs
from chatbot.errors import ChatbotError

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
