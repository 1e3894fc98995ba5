"""chatbot.data.summary: the figures of `chatbot data check`, from one streamed pass over any
number of files, on hand-written files; equal to the same figures computed from every pair in
memory (read_pairs); several files, .gz among them; the capped token counter; the sample that
sentencepiece learns from."""

from __future__ import annotations

import gzip
import json
import random
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from chatbot.cli import main
from chatbot.config import TextConfig
from chatbot.data.dialogue import read_conversations
from chatbot.data.pairs import read_pairs
from chatbot.data.stream import Seen
from chatbot.data.summary import (
    Lengths,
    Reservoir,
    TokenCounter,
    format_summary,
    summarize,
)
from chatbot.errors import ChatbotError
from chatbot.text.words import Tokenizer
from tests.test_pairs import tsv_file

ONE_COLUMN = "expected 2 tab-separated columns (prompt<TAB>reply), found 1"


def write(tmp_path: Path, content: str | bytes, name: str = "pairs.tsv") -> Path:
    path = tmp_path / name
    raw = content.encode() if isinstance(content, str) else content
    path.write_bytes(gzip.compress(raw) if name.endswith(".gz") else raw)
    return path


def line(*turns: tuple[str, str]) -> str:
    """One conversation as JSONL text, written by hand."""
    return json.dumps({"messages": [{"role": r, "content": c} for r, c in turns]})


def figures(paths: list[Path], tokenizer: Tokenizer | None = None, max_len: int = 40,
            **kwargs) -> dict:
    return summarize(paths, tokenizer or Tokenizer(), max_len, **kwargs).figures()


SUMMARY_FILE = (
    b"Hello\tHi there!\n"  # 1: prompt 1 token, reply 3 (hi, there, !)
    b"How are you?\tFine, thanks.\n"  # 2: prompt 4, reply 4 -> longer than max_len 3
    b"\n"  # 3: blank
    + "你好\t你好！\n".encode()  # 4: prompt 2, reply 3 (你, 好, ！)
    + b"Hello\tHello\n"  # 5: prompt 1, reply 1
    b"Hello\tHi there!\n"  # 6: duplicate of line 1
    b"bad line\n"  # 7: one column
)

CHATS = "\n".join([
    line(("user", "hello"), ("assistant", "hi there")),  # 1: 2 turns, 1 pair
    line(("system", "be kind"), ("user", "how are you"), ("assistant", "fine"),
         ("user", "and you?"), ("assistant", "me too")),  # 2: 4 turns, 2 pairs
    "",  # 3: blank
    line(("user", "a b c d e"), ("assistant", "f g h i j"), ("user", "k"), ("assistant", "l"),
         ("user", "m"), ("assistant", "n")),  # 4: 6 turns, 3 pairs
]) + "\n"


# --- the figures of hand-written files ----------------------------------------------------


def test_summarize_a_hand_made_file(tmp_path):
    path = write(tmp_path, SUMMARY_FILE)
    s = figures([path], Tokenizer(lowercase=True), max_len=3)
    assert s == {
        "files": [str(path)],
        "pairs": 4,
        "distinct_prompts": 3,  # Hello, How are you?, 你好
        "bad_lines": 1,
        "first_bad_lines": [(str(path), 7, ONE_COLUMN)],
        "blank_lines": 1,
        "duplicates": 1,
        # prompt lengths 1, 4, 2, 1 -> sorted 1, 1, 2, 4; index int(q * 4)
        "prompt_tokens": {"p50": 2, "p90": 4, "p99": 4, "max": 4},
        # reply lengths 3, 4, 3, 1 -> sorted 1, 3, 3, 4
        "reply_tokens": {"p50": 3, "p90": 4, "p99": 4, "max": 4},
        # hello x3, 你 x2, 好 x2; hi there ! how are you ? fine , thanks . ！ once each
        "vocabulary": 15,
        "tokens_seen_once": 12,
        "vocabulary_approximate": False,
        "token_cap": 2_000_000,
        "max_len": 3,
        "fit_share": 0.75,
        "too_long_pairs": 1,
        "too_long_lines": [(str(path), 2)],
    }


def test_case_variants_are_counted_apart_without_lowercase(tmp_path):
    path = write(tmp_path, b"Hello\thello\n")
    folded, kept = figures([path], Tokenizer(lowercase=True)), figures([path], Tokenizer(False))
    assert (folded["vocabulary"], folded["tokens_seen_once"]) == (1, 0)
    assert (kept["vocabulary"], kept["tokens_seen_once"]) == (2, 2)


def test_percentiles_of_one_to_ten(tmp_path):
    # Prompt i has i tokens; every reply has 1.
    lines = [" ".join(["w"] * i) + f"\tr{i}\n" for i in range(1, 11)]
    path = write(tmp_path, "".join(lines))
    s = figures([path], max_len=7)
    # Index int(q * 10) into 1..10: p50 -> [5] = 6, p90 -> [9] = 10, p99 -> [9] = 10.
    assert s["prompt_tokens"] == {"p50": 6, "p90": 10, "p99": 10, "max": 10}
    assert s["reply_tokens"] == {"p50": 1, "p90": 1, "p99": 1, "max": 1}
    assert s["too_long_lines"] == [(str(path), 8), (str(path), 9), (str(path), 10)]
    assert s["too_long_pairs"] == 3
    assert s["fit_share"] == pytest.approx(0.7)
    assert s["vocabulary"] == 11  # w and r1..r10
    assert s["tokens_seen_once"] == 10


def test_all_fit(tmp_path):
    s = figures([write(tmp_path, b"a b\tc d\n")], max_len=2)
    assert (s["fit_share"], s["too_long_pairs"], s["too_long_lines"]) == (1.0, 0, [])


def test_a_too_long_reply_alone_does_not_fit(tmp_path):
    path = write(tmp_path, b"a\tb c d\ne\tf\n")
    s = figures([path], max_len=2)
    assert (s["too_long_lines"], s["fit_share"]) == ([(str(path), 1)], 0.5)


def test_summarize_a_conversation_file(tmp_path):
    s = figures([write(tmp_path, CHATS, "chats.jsonl")], max_len=3)
    assert s["conversations"] == 3
    assert s["turns"] == {"p50": 4, "p90": 6, "max": 6}  # 2, 4, 6 (system turn left out)
    assert s["context_share"] == pytest.approx(3 / 6)  # the later pairs of lines 2 and 4
    assert s["pairs"] == 6
    assert s["blank_lines"] == 1
    assert s["too_long_pairs"] == 1
    assert [line for _, line in s["too_long_lines"]] == [4]


def test_a_tsv_adds_no_conversation_figures(tmp_path):
    s = figures([write(tmp_path, "a\tb\n")], max_len=3)
    assert not {"conversations", "turns", "context_share"} & set(s)


def test_conversation_duplicates_need_the_same_context(tmp_path):
    chat = line(("user", "u1"), ("assistant", "a1"), ("user", "u2"), ("assistant", "a2"))
    same_start = line(("user", "u1"), ("assistant", "a1"), ("user", "other"), ("assistant", "a2"))
    other_context = line(("user", "x"), ("assistant", "y"), ("user", "u2"), ("assistant", "a2"))
    good = line(("user", "hello"), ("assistant", "hi there"))
    path = write(tmp_path, "\n".join([chat, chat, same_start, other_context, good, good]),
                 "chats.jsonl")
    summary = summarize([path], Tokenizer(), 40)
    s = summary.figures()
    assert s["duplicates"] == 2 + 1 + 1  # chat again; (u1, a1) again; good again
    assert (s["pairs"], s["distinct_prompts"], s["conversations"]) == (6, 5, 6)
    assert summary.report.turns == {4: 4, 2: 2}  # non-system turns -> conversations


# --- the report -----------------------------------------------------------------------------


def test_format_summary_contains_the_figures(tmp_path):
    path = write(tmp_path, SUMMARY_FILE)
    text = format_summary(figures([path], max_len=3))
    assert text.splitlines() == [
        f"file            {path}",
        "pairs           4 (3 distinct prompts)",
        "bad lines       1",
        "duplicates      1 (dropped)",
        "blank lines     1",
        "prompt tokens   p50 2  p90 4  p99 4  max 4",
        "reply tokens    p50 3  p90 4  p99 4  max 4",
        "vocabulary      15 distinct tokens (12 seen once)",
        "fit max_len=3   75.0% of pairs (1 truncated when training)",
        "  longer lines  2",
        f"  {path}:7: {ONE_COLUMN}",
    ]


def test_format_summary_without_long_or_bad_lines(tmp_path):
    path = write(tmp_path, b"a\tb\n")
    text = format_summary(figures([path], max_len=40))
    assert "fit max_len=40  100.0% of pairs" in text.splitlines()
    assert "truncated" not in text
    assert "longer lines" not in text
    assert f"{path}:" not in text


def test_format_summary_shows_at_most_ten_long_and_bad_lines(tmp_path):
    good = "".join(f"{'w ' * 5}{i}\tr\n" for i in range(12))  # 12 prompts of 6 tokens
    bad = "no tab\n" * 13
    path = write(tmp_path, good + bad)
    lines = format_summary(figures([path], max_len=5)).splitlines()
    assert "  longer lines  1, 2, 3, 4, 5, 6, 7, 8, 9, 10 ..." in lines
    assert "fit max_len=5   0.0% of pairs (12 truncated when training)" in lines
    shown = [ln for ln in lines if ln.startswith(f"  {path}:")]
    assert shown == [f"  {path}:{n}: {ONE_COLUMN}" for n in range(13, 23)]
    assert lines[-1] == "  ... and 3 more bad lines"


def test_format_summary_of_a_conversation_file(tmp_path):
    path = write(tmp_path, CHATS, "chats.jsonl")
    assert format_summary(figures([path], max_len=3)).splitlines()[:8] == [
        f"file            {path}",
        "pairs           6 (6 distinct prompts)",
        "conversations   3",
        "turns           p50 4  p90 6  max 6 per conversation (system turns left out)",
        "with context    50.0% of pairs (earlier turns before the prompt)",
        "bad lines       0",
        "duplicates      0 (dropped)",
        "blank lines     1",
    ]


def test_a_conversation_with_several_long_pairs_is_listed_once(tmp_path):
    path = write(tmp_path, line(("user", "a b c"), ("assistant", "d e f"), ("user", "g h i"),
                                ("assistant", "j k l")) + "\n" + line(("user", "hello"),
                                                                      ("assistant", "hi")) + "\n",
                 "chats.jsonl")
    lines = format_summary(figures([path], max_len=2)).splitlines()
    assert "fit max_len=2   33.3% of pairs (2 truncated when training)" in lines
    assert "  longer lines  1" in lines


# --- tokens per pair: words over every pair, sentencepiece on a sample ----------------------


def test_tokens_per_pair_under_each_tokenizer(tmp_path):
    path = write(tmp_path, "hello there\tgeneral kenobi\n你好\t你好！\n")
    summary = summarize([path], Tokenizer(), 40)
    counts = summary.tokens_per_pair(TextConfig())
    # Words: 4 and 5 tokens (你, 好, 你, 好, ！); the pieces of a model learned from two pairs.
    assert counts["word"] == {"mean": 4.5, "p50": 5, "p90": 5, "p99": 5, "max": 5}
    (name,) = set(counts) - {"word"}
    assert name.startswith("sentencepiece (unigram, ") and name.endswith(" pieces)")
    assert "sample" not in counts[name]  # every pair was learned from
    s = {**summary.figures(), "tokens_per_pair": counts}
    lines = format_summary(s).splitlines()
    assert f"tokens per pair word{' ' * (len(name) - 4)}  mean 4.5  p50 5  p90 5  p99 5  max 5" \
        in lines
    (pieces,) = [ln for ln in lines if ln.startswith(" " * 16 + name + "  mean ")]
    assert "sample" not in pieces


def test_tokens_per_pair_says_why_sentencepiece_could_not_learn(tmp_path):
    summary = summarize([write(tmp_path, b"hello\tthere\n")], Tokenizer(), 40)
    counts = summary.tokens_per_pair(TextConfig(subword_vocab=100))
    assert counts["sentencepiece"].startswith("subword_vocab 100 is too small for this text")
    s = {**summary.figures(), "tokens_per_pair": counts}
    assert f"{' ' * 16}sentencepiece  {counts['sentencepiece']}" in format_summary(s).splitlines()


def test_sentencepiece_learns_from_a_sample_when_the_data_is_larger(tmp_path):
    lines = [f"question {i} about {'topic ' * (i % 7)}\tanswer {i}\n" for i in range(60)]
    path = write(tmp_path, "".join(lines))
    summary = summarize([path], Tokenizer(), 40, sample_pairs=8, seed=3)
    assert len(summary.sample.items) == 8
    assert summary.sample.items == summarize([path], Tokenizer(), 40, sample_pairs=8,
                                             seed=3).sample.items  # seeded: the same sample
    counts = summary.tokens_per_pair(TextConfig(subword_vocab=300))
    assert counts["word"]["max"] == 3 + 6 + 2  # over every pair: question i about topic x6
    (name,) = set(counts) - {"word"}
    assert counts[name]["sample"] == (8, 60)
    s = {**summary.figures(), "tokens_per_pair": counts}
    (pieces,) = [ln for ln in format_summary(s).splitlines() if name in ln]
    assert pieces.endswith("  (learned from and measured on a sample of 8 of the 60 pairs)")


# --- several files, gzip -------------------------------------------------------------------


def test_several_files_read_as_one_corpus(tmp_path):
    tsv = write(tmp_path, b"hello\thi\nbroken\nlong long long\tx\n", "a.tsv")
    chats = write(tmp_path, line(("user", "hello"), ("assistant", "hi")) + "\n{\n" +
                  line(("user", "a"), ("assistant", "b"), ("user", "c d e"), ("assistant", "f"))
                  + "\n", "b.jsonl.gz")
    again = write(tmp_path, b"hello\thi\nnew\tone\n", "c.tsv.gz")
    s = figures([tsv, chats, again], max_len=2)
    assert s["files"] == [str(tsv), str(chats), str(again)]
    # hello/hi in a.tsv; again in b.jsonl.gz (no context: the same pair) and in c.tsv.gz.
    assert (s["pairs"], s["duplicates"], s["distinct_prompts"]) == (5, 2, 5)
    assert (s["conversations"], s["context_share"]) == (2, pytest.approx(1 / 5))
    assert s["first_bad_lines"] == [(str(tsv), 2, ONE_COLUMN),
                                    (str(chats), 2, "bad JSON (Expecting property name "
                                                    "enclosed in double quotes at column 2)")]
    assert s["too_long_lines"] == [(str(tsv), 3), (str(chats), 3)]
    lines = format_summary(s).splitlines()
    assert lines[0] == f"files           {tsv}, {chats}, {again}"
    assert f"  longer lines  {tsv}:3, {chats}:3" in lines
    assert f"  {chats}:2: bad JSON (Expecting property name enclosed in double quotes at " \
        "column 2)" in lines


def test_a_gzip_file_gives_the_figures_of_the_plain_one(tmp_path):
    plain = figures([write(tmp_path, SUMMARY_FILE)], max_len=3)
    packed = figures([write(tmp_path, SUMMARY_FILE, "pairs.tsv.gz")], max_len=3)
    strip = lambda s: {k: v for k, v in s.items()  # noqa: E731
                       if k not in ("files", "first_bad_lines", "too_long_lines")}
    assert strip(plain) == strip(packed)
    assert [n for _, n, _ in packed["first_bad_lines"]] == [7]


def test_error_mode_names_the_bad_line_of_a_later_file(tmp_path):
    good = write(tmp_path, b"a\tb\n", "a.tsv")
    bad = write(tmp_path, b"c\td\nno tab\n", "b.tsv.gz")
    with pytest.raises(ChatbotError) as info:
        summarize([good, bad], Tokenizer(), 40, on_bad_lines="error")
    assert str(info.value).startswith(f"{bad}:2: {ONE_COLUMN} (fix the line")


def test_a_missing_file_fails_before_any_pair_is_read(tmp_path):
    good = write(tmp_path, b"a\tb\n" + b"\xff\n", "a.tsv")
    with pytest.raises(ChatbotError) as info:  # error mode: the bad line 2 is never reached
        summarize([good, tmp_path / "typo.tsv"], Tokenizer(), 40, on_bad_lines="error")
    assert str(info.value) == f"{tmp_path / 'typo.tsv'}: no such file"


@pytest.mark.parametrize(("name", "content", "message"), [
    ("pairs.tsv", b"no tab\n", "no prompt<TAB>reply pairs found (1 bad lines skipped); each line"),
    ("chats.jsonl", b"\n", "no conversations found; each line should hold"),
    ("chats.jsonl.gz", b"{\n", "no conversations found (1 bad lines skipped); each line"),
])
def test_a_file_without_pairs_is_an_error_as_read_pairs_says(tmp_path, name, content, message):
    path = write(tmp_path, content, name)
    with pytest.raises(ChatbotError) as info:
        summarize([path], Tokenizer(), 40)
    assert str(info.value).startswith(f"{path}: {message}")
    if not name.endswith(".gz"):
        with pytest.raises(ChatbotError) as plain:
            read_pairs(path, "skip")
        assert str(plain.value) == str(info.value)


def test_several_files_without_pairs(tmp_path):
    a, b = write(tmp_path, b"\n", "a.tsv"), write(tmp_path, b"{\n", "b.jsonl")
    with pytest.raises(ChatbotError) as info:
        summarize([a, b], Tokenizer(), 40)
    assert str(info.value).startswith(f"{a}, {b}: no pairs found (1 bad lines skipped); ")


def test_check_takes_several_files(tmp_path, capsys):
    a = write(tmp_path, b"hello\thi\nbroken\n", "a.tsv")
    b = write(tmp_path, CHATS, "chats.jsonl.gz")
    # docs: chatbot data check my_pairs.tsv more_pairs.jsonl.gz
    # docs: chatbot data check pairs.tsv.gz chats.jsonl.gz
    assert main(["data", "check", str(a), str(b)]) == 1  # a bad line
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"files           {a}, {b}"
    assert "pairs           7 (6 distinct prompts)" in out  # "hello" in both files
    assert "conversations   3" in out
    assert out[-1] == f"  {a}:2: {ONE_COLUMN}"


# --- the streamed figures equal the figures of every pair in memory ------------------------


def in_memory(path: Path, tokenizer: Tokenizer, max_len: int) -> dict:
    """The figures from every pair of read_pairs held at once, with sorted lists: how `chatbot
    data check` computed them before it streamed."""
    report = read_pairs(path, "skip")
    pairs = report.pairs
    prompt = [len(tokenizer.tokenize(p.prompt)) for p in pairs]
    reply = [len(tokenizer.tokenize(p.reply)) for p in pairs]
    counts = Counter(t for p in pairs for text in (p.prompt, p.reply)
                     for t in tokenizer.tokenize(text))
    too_long = [p.line for p, a, b in zip(pairs, prompt, reply) if a > max_len or b > max_len]

    def percentiles(values: list[int]) -> dict[str, int]:
        ordered = sorted(values)
        pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
        return {"p50": pick(0.5), "p90": pick(0.9), "p99": pick(0.99), "max": ordered[-1]}

    out = {
        "pairs": len(pairs), "distinct_prompts": len({p.prompt for p in pairs}),
        "bad_lines": len(report.bad_lines),
        "first_bad_lines": [(str(path), n, why) for n, why in report.bad_lines[:10]],
        "blank_lines": report.blank_lines, "duplicates": report.duplicates,
        "prompt_tokens": percentiles(prompt), "reply_tokens": percentiles(reply),
        "vocabulary": len(counts), "tokens_seen_once": sum(c == 1 for c in counts.values()),
        "fit_share": 1 - len(too_long) / len(pairs), "too_long_pairs": len(too_long),
        "too_long_lines": [(str(path), n) for n in list(dict.fromkeys(too_long))[:11]],
    }
    if report.conversations:
        turns = percentiles([sum(m.role != "system" for m in c.messages)
                             for c in read_conversations(path, "skip", [])])
        out.update(conversations=report.conversations,
                   turns={k: turns[k] for k in ("p50", "p90", "max")},
                   context_share=sum(bool(p.context) for p in pairs) / len(pairs))
    return out


def streamed(path: Path, tokenizer: Tokenizer, max_len: int) -> dict:
    s = figures([path], tokenizer, max_len)
    assert (s["files"], s["max_len"], s["vocabulary_approximate"]) == ([str(path)], max_len, False)
    return {k: v for k, v in s.items()
            if k not in ("files", "max_len", "vocabulary_approximate", "token_cap")}


HAND_WRITTEN = {
    "pairs": ("pairs.tsv", SUMMARY_FILE),
    "CRLF, CR and a BOM": ("pairs.tsv", b"\xef\xbb\xbfa b\tc\r\nd\te f g\rh\ti\r\n\r\na b\tc\n"),
    "bad lines": ("pairs.tsv", b"a\tb\n\xff\tx\n\tx\ny\t\nnul\x00\tz\n{\"json\": 1}\nw\tv"),
    "eleven long, thirteen bad": (
        "pairs.tsv", ("".join(f"{'w ' * 5}{i}\tr\n" for i in range(12)) + "no\n" * 13).encode()),
    "conversations": ("chats.jsonl", CHATS.encode()),
    "conversations with bad lines": (
        "chats.jsonl",
        (CHATS + '{"messages": []}\n' + line(("user", "hi")) + "\n{\n\r\n").encode()),
}


@pytest.mark.parametrize("case", HAND_WRITTEN)
def test_streamed_figures_equal_those_of_every_pair_in_memory(tmp_path, case):
    name, content = HAND_WRITTEN[case]
    path = write(tmp_path, content, name)
    for max_len in (1, 3, 40):
        for lowercase in (True, False):
            tokenizer = Tokenizer(lowercase)
            assert streamed(path, tokenizer, max_len) == in_memory(path, tokenizer, max_len)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(file=tsv_file())
def test_streamed_figures_equal_those_of_every_pair_in_memory_on_any_tsv(tmp_path, file):
    content, lines = file
    if not any(ln.kind == "good" for ln in lines):
        return  # no pairs: an error either way (test_a_file_without_pairs_is_...)
    path = write(tmp_path, content)
    assert streamed(path, Tokenizer(), 3) == in_memory(path, Tokenizer(), 3)


# --- the parts: histograms, the capped counter, the sample, Seen in batches ------------------


def test_lengths_give_the_percentiles_of_the_sorted_values():
    rng = random.Random(0)
    for n in (1, 2, 7, 100, 1001):
        values = [rng.choice([0, 1, 1, 2, 5, 5, 5, 9, 40]) for _ in range(n)]
        lengths = Lengths()
        for v in values:
            lengths.add(v)
        ordered = sorted(values)
        assert lengths.percentiles() == {
            name: ordered[min(n - 1, int(q * n))]
            for name, q in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99))} | {"max": max(values)}
        assert lengths.mean() == pytest.approx(sum(values) / n)


def test_the_token_counter_keeps_the_most_frequent_past_its_cap():
    counter = TokenCounter(cap=4)
    counter.update(["a", "a", "a", "b", "b", "c", "d"])  # 4 distinct: at the cap, exact
    assert (counter.vocabulary(), counter.seen_once(), counter.approximate) == (4, 2, False)
    counter.update(["e"])  # 5 > 4: the 2 most frequent (a, b) are kept; c, d, e dropped
    assert counter.counts == {"a": 3, "b": 2}
    assert (counter.dropped, counter.dropped_once, counter.approximate) == (3, 3, True)
    assert (counter.vocabulary(), counter.seen_once()) == (5, 3)  # still exact here
    counter.update(["c"])  # c comes back: counted anew, an upper bound now
    assert (counter.vocabulary(), counter.seen_once()) == (6, 4)  # truly 5 and 2


def test_a_capped_count_is_marked_approximate_and_bounds_the_truth(tmp_path):
    rng = random.Random(1)
    words = [f"w{i}" for i in range(300)]
    rows = [" ".join(rng.choices(words, k=4)) + "\t" + " ".join(rng.choices(words, k=3))
            for _ in range(200)]
    path = write(tmp_path, "\n".join(rows) + "\n")
    exact, capped = figures([path]), figures([path], token_cap=50)
    assert not exact["vocabulary_approximate"] and capped["vocabulary_approximate"]
    assert capped["vocabulary"] >= exact["vocabulary"]
    assert capped["tokens_seen_once"] >= exact["tokens_seen_once"]
    same = ("pairs", "duplicates", "prompt_tokens", "reply_tokens", "fit_share")
    assert {k: capped[k] for k in same} == {k: exact[k] for k in same}
    lines = format_summary(capped).splitlines()
    assert f"vocabulary      at most {capped['vocabulary']} distinct tokens (at most " \
        f"{capped['tokens_seen_once']} seen once)" in lines
    assert f"{'':16}(estimates: past 50 distinct tokens the count dropped the rarest, and a " \
        "dropped token seen again was counted anew)" in lines


def test_the_counter_never_holds_more_than_its_cap(tmp_path):
    counter = TokenCounter(cap=10)
    for i in range(500):
        counter.update([f"t{i}", f"t{i % 7}"])
        assert len(counter.counts) <= 10
    assert counter.counts.most_common(1)[0][0] in {f"t{i}" for i in range(7)}


def test_the_reservoir_is_seeded_bounded_and_takes_all_of_a_small_stream():
    small = Reservoir(10, seed=0)
    for i in range(6):
        small.add(i)
    assert small.items == list(range(6))
    samples = []
    for seed in (0, 0, 1):
        reservoir = Reservoir(10, seed)
        for i in range(1000):
            reservoir.add(i)
        assert len(reservoir.items) == 10 == len(set(reservoir.items))
        samples.append(reservoir.items)
    assert samples[0] == samples[1] != samples[2]
    assert max(samples[0]) >= 100  # not just the first items


def test_the_reservoir_draws_every_item_alike():
    hits = Counter()
    for seed in range(2000):
        reservoir = Reservoir(2, seed)
        for i in range(10):
            reservoir.add(i)
        hits.update(reservoir.items)
    assert all(300 < hits[i] < 500 for i in range(10)), hits  # 400 each, expected


def test_seen_in_batches_answers_as_one_key_at_a_time():
    rng = random.Random(2)
    keys = [rng.randrange(300) for _ in range(2000)] + [2**64 - 1, 0, 2**64 - 1]
    one, many = Seen(pending=16), Seen(pending=16)  # merged often
    expected = [one.add(k) for k in keys]
    got = [flag for i in range(0, len(keys), 37) for flag in many.add_many(keys[i:i + 37])]
    assert got == expected
    assert len(many) == len(one) == len(set(keys))
    assert many.add_many([]) == []
