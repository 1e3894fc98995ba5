"""Read and check training pairs, from a TSV of `prompt<TAB>reply` or chat JSONL
conversations (chatbot.data.dialogue); split them; summarize them.

Pure Python (no TensorFlow), so `chatbot data check` answers instantly. Every problem is reported
as `FILE:LINE: what is wrong` so that the user can open the file at that line and fix it.
"""

from __future__ import annotations

import dataclasses
import random
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from chatbot.data.dialogue import exchanges, is_conversation_file, read_conversations
from chatbot.errors import ChatbotError
from chatbot.text.tokenizer import train_tokenizer
from chatbot.text.words import TextTokenizer, Tokenizer

if TYPE_CHECKING:
    from chatbot.text.tokenizer import TextConfig

BAD_LINE_CHOICES = ("error", "skip")
_LINE_END = re.compile(rb"\r\n|\r|\n")


@dataclass(frozen=True)
class Pair:
    prompt: str
    reply: str
    line: int  # 1-based line number in the source file (a conversation's line)
    context: tuple[str, ...] = ()  # the conversation's turns before the prompt, oldest first

    def query(self, turns: int) -> str | tuple[str, ...]:
        """What a bot that reads `turns` turns is asked for this pair: its prompt, or (a
        conversation's) its last turns, oldest first."""
        if turns == 1 or not self.context:
            return self.prompt
        return (*self.context[-(turns - 1):], self.prompt)


@dataclass
class LoadReport:
    path: str
    pairs: list[Pair] = field(default_factory=list)
    bad_lines: list[tuple[int, str]] = field(default_factory=list)  # (line, reason)
    blank_lines: int = 0
    duplicates: int = 0  # exact repeats of an earlier (prompt, reply), dropped
    conversations: int = 0  # chat JSONL: the conversations the pairs come from
    turns: list[int] = field(default_factory=list)  # chat JSONL: each one's non-system turns


def read_pairs(path: str | Path, on_bad_lines: str = "error") -> LoadReport:
    """Reads a UTF-8 TSV of prompt<TAB>reply pairs (a third column and beyond are ignored), or
    a chat JSONL file (`.jsonl`: see chatbot.data.dialogue), whose pairs keep their context.

    A BOM, CRLF line ends and blank lines are accepted. With on_bad_lines="error" the first bad
    line raises ChatbotError naming FILE:LINE; with "skip" bad lines are counted and reported.
    """
    if on_bad_lines not in BAD_LINE_CHOICES:
        raise ChatbotError(
            f"on_bad_lines must be one of {', '.join(BAD_LINE_CHOICES)}, received {on_bad_lines!r}"
        )
    if is_conversation_file(path):
        return _read_conversation_pairs(Path(path), on_bad_lines)
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ChatbotError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ChatbotError(f"{path}: is a directory, expected a .tsv file") from None
    except OSError as exc:
        raise ChatbotError(f"{path}: cannot read ({exc.strerror})") from None
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]

    report = LoadReport(path=str(path))
    seen: set[tuple[str, str]] = set()
    # Unix (LF), Windows (CRLF) and old Mac (CR) line ends all end a line.
    lines = _LINE_END.split(raw)
    if lines and lines[-1] == b"":
        lines.pop()  # the newline that ends the last line does not start a new one
    for number, line_bytes in enumerate(lines, start=1):
        parsed = _parse_line(line_bytes)
        if parsed is None:
            report.blank_lines += 1
            continue
        if isinstance(parsed, str):
            if on_bad_lines == "error":
                raise ChatbotError(
                    f"{path}:{number}: {parsed} "
                    "(fix the line, or pass --on-bad-lines skip to skip bad lines)"
                )
            report.bad_lines.append((number, parsed))
            continue
        if parsed in seen:
            report.duplicates += 1
            continue
        seen.add(parsed)
        report.pairs.append(Pair(parsed[0], parsed[1], number))
    if not report.pairs:
        skipped = f" ({len(report.bad_lines)} bad lines skipped)" if report.bad_lines else ""
        raise ChatbotError(
            f"{path}: no prompt<TAB>reply pairs found{skipped}; each line should hold a prompt, "
            "a tab character, and its reply"
        )
    return report


def _read_conversation_pairs(path: Path, on_bad_lines: str) -> LoadReport:
    report = LoadReport(path=str(path))
    seen: set[tuple] = set()
    blank: list[int] = []
    for conversation in read_conversations(path, on_bad_lines, report.bad_lines, blank):
        report.conversations += 1
        report.turns.append(sum(m.role != "system" for m in conversation.messages))
        for context, prompt, reply in exchanges(conversation.messages):
            key = (*context, prompt, reply)
            if key in seen:
                report.duplicates += 1
                continue
            seen.add(key)
            report.pairs.append(Pair(prompt, reply, conversation.line, tuple(context)))
    report.blank_lines = len(blank)
    if not report.pairs:
        skipped = f" ({len(report.bad_lines)} bad lines skipped)" if report.bad_lines else ""
        raise ChatbotError(
            f"{path}: no conversations found{skipped}; each line should hold "
            '{"messages": [{"role": "user", "content": ...}, {"role": "assistant", ...}]}')
    return report


def _parse_line(line: bytes) -> tuple[str, str] | str | None:
    """A (prompt, reply) pair, a reason the line is bad, or None for a blank line."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        return (
            f"not valid UTF-8 (byte 0x{line[exc.start]:02x} at column {exc.start + 1}); "
            "save the file with UTF-8 encoding"
        )
    text = text.removeprefix("\ufeff")  # a BOM left where two files were concatenated
    if "\x00" in text:
        return "contains a NUL byte; is this a binary or UTF-16 file? save it as UTF-8 text"
    if not text.strip():
        return None
    columns = text.split("\t")
    if len(columns) < 2:
        if text.lstrip().startswith("{"):
            return ("expected 2 tab-separated columns (prompt<TAB>reply), found a JSON object; "
                    "name a chat JSONL file *.jsonl to read it as conversations")
        return "expected 2 tab-separated columns (prompt<TAB>reply), found 1"
    prompt, reply = columns[0].strip(), columns[1].strip()
    if not prompt:
        return "the prompt (first column) is empty"
    if not reply:
        return "the reply (second column) is empty"
    return prompt, reply


def split_pairs(
    pairs: Sequence[Pair], val_fraction: float, seed: int
) -> tuple[list[Pair], list[Pair]]:
    """A deterministic (train, validation) split: the same seed gives the same split. Pairs of
    one conversation (one source line) stay on the same side: validation turns are never
    seen in training as another turn's context. A TSV line is its own conversation."""
    if not 0.0 <= val_fraction < 1.0:
        raise ChatbotError(f"val_fraction must be in [0, 1), received {val_fraction}")
    groups = list(dict.fromkeys(p.line for p in pairs))
    order = list(range(len(groups)))
    random.Random(seed).shuffle(order)
    n_val = int(len(groups) * val_fraction)
    val_lines = {groups[i] for i in order[:n_val]}
    train = [p for p in pairs if p.line not in val_lines]
    val = [p for p in pairs if p.line in val_lines]
    return train, val


def summarize(report: LoadReport, tokenizer: TextTokenizer, max_len: int) -> dict:
    """The figures `chatbot data check` prints, as a dict."""
    prompt_lens, reply_lens, counts = [], [], Counter()
    for pair in report.pairs:
        p, r = tokenizer.tokenize(pair.prompt), tokenizer.tokenize(pair.reply)
        prompt_lens.append(len(p))
        reply_lens.append(len(r))
        counts.update(p)
        counts.update(r)
    too_long = [
        pair.line for pair, lp, lr in zip(report.pairs, prompt_lens, reply_lens)
        if lp > max_len or lr > max_len
    ]
    summary = {
        "file": report.path,
        "pairs": len(report.pairs),
        "distinct_prompts": len({p.prompt for p in report.pairs}),
        "bad_lines": len(report.bad_lines),
        "blank_lines": report.blank_lines,
        "duplicates": report.duplicates,
        "prompt_tokens": _percentiles(prompt_lens),
        "reply_tokens": _percentiles(reply_lens),
        "vocabulary": len(counts),
        "tokens_seen_once": sum(1 for c in counts.values() if c == 1),
        "max_len": max_len,
        "fit_share": 1 - len(too_long) / len(report.pairs),
        "too_long_lines": too_long,  # a conversation's line once for each pair cut
    }
    if is_conversation_file(report.path):
        turns = _percentiles(report.turns)
        summary["conversations"] = report.conversations
        summary["turns"] = {k: turns[k] for k in ("p50", "p90", "max")}
        summary["context_share"] = sum(bool(p.context) for p in report.pairs) / len(report.pairs)
    return summary


def tokens_per_pair(pairs: Sequence[Pair], text: TextConfig) -> dict[str, dict | str]:
    """Prompt and reply tokens of each pair under each tokenizer (percentiles and mean), by
    tokenizer name; for sentencepiece, a throwaway model learned from the pairs in memory (or
    why none could be)."""
    word = Tokenizer(lowercase=text.lowercase)
    settings = dataclasses.replace(text, tokenizer="sentencepiece")
    try:
        pieces = train_tokenizer(settings, (t for p in pairs for t in (p.prompt, p.reply)))
    except ChatbotError as exc:
        return {"word": _lengths(pairs, word), "sentencepiece": str(exc)}
    name = f"sentencepiece ({text.subword_model}, {len(pieces.pieces)} pieces)"
    return {"word": _lengths(pairs, word), name: _lengths(pairs, pieces)}


def _lengths(pairs: Sequence[Pair], tokenizer: TextTokenizer) -> dict[str, float]:
    counts = [len(tokenizer.tokenize(p.prompt)) + len(tokenizer.tokenize(p.reply)) for p in pairs]
    return {"mean": sum(counts) / len(counts), **_percentiles(counts)}


def _percentiles(values: Sequence[int]) -> dict[str, int]:
    ordered = sorted(values)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return {"p50": pick(0.5), "p90": pick(0.9), "p99": pick(0.99), "max": ordered[-1]}


def format_summary(s: dict, bad_lines: Sequence[tuple[int, str]] = ()) -> str:
    lines = [
        f"file            {s['file']}",
        f"pairs           {s['pairs']} ({s['distinct_prompts']} distinct prompts)",
    ]
    if "conversations" in s:  # chat JSONL
        q = s["turns"]
        lines += [
            f"conversations   {s['conversations']}",
            f"turns           p50 {q['p50']}  p90 {q['p90']}  max {q['max']} per conversation "
            "(system turns left out)",
            f"with context    {s['context_share']:.1%} of pairs (earlier turns before the prompt)",
        ]
    lines += [
        f"bad lines       {s['bad_lines']}",
        f"duplicates      {s['duplicates']} (dropped)",
        f"blank lines     {s['blank_lines']}",
    ]
    for side in ("prompt", "reply"):
        q = s[f"{side}_tokens"]
        lines.append(
            f"{side + ' tokens':<16}p50 {q['p50']}  p90 {q['p90']}  p99 {q['p99']}  max {q['max']}"
        )
    per_pair = s.get("tokens_per_pair", {})  # by tokenizer (tokens_per_pair)
    width = max(map(len, per_pair), default=0)
    for i, (name, q) in enumerate(per_pair.items()):
        figures = q if isinstance(q, str) else (f"mean {q['mean']:.1f}  p50 {q['p50']}  p90 "
                                                f"{q['p90']}  p99 {q['p99']}  max {q['max']}")
        lines.append(f"{'' if i else 'tokens per pair':<16}{name:<{width}}  {figures}")
    lines += [
        f"vocabulary      {s['vocabulary']} distinct tokens ({s['tokens_seen_once']} seen once)",
        f"fit max_len={s['max_len']:<4}{s['fit_share']:.1%} of pairs"
        + (f" ({len(s['too_long_lines'])} truncated when training)" if s["too_long_lines"] else ""),
    ]
    if s["too_long_lines"]:
        numbers = list(dict.fromkeys(s["too_long_lines"]))  # a conversation's pairs share one
        shown = ", ".join(map(str, numbers[:10]))
        more = " ..." if len(numbers) > 10 else ""
        lines.append(f"  longer lines  {shown}{more}")
    for number, reason in list(bad_lines)[:10]:
        lines.append(f"  {s['file']}:{number}: {reason}")
    if len(bad_lines) > 10:
        lines.append(f"  ... and {len(bad_lines) - 10} more bad lines")
    return "\n".join(lines)
