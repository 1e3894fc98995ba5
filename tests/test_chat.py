"""The REPL, driven through prompt_toolkit pipe input as a real session."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import pytest
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput

from chatbot.chat import run_repl
from chatbot.decoding.bot import Bot
from tests.helpers import HOSTILE, drive

pytestmark = pytest.mark.slow  # needs the tiny trained model


def test_replies_in_english_and_chinese_then_quits(tiny_run):
    lines = drive(Bot.load(tiny_run), "hello\r你好\r/quit\r")
    assert "bot> hi there!" in lines
    assert "bot> 你好！很高兴认识你。" in lines
    assert lines[-1] == "bye"


def test_unknown_words_are_named(tiny_run):
    lines = drive(Bot.load(tiny_run), "hello zebra 斑马\r/quit\r")
    assert "(not in my vocabulary: zebra, 斑, 马)" in lines
    assert any(line.startswith("bot> ") for line in lines)


def test_help_unknown_command_and_empty_input(tiny_run):
    lines = drive(Bot.load(tiny_run), "/help\r/nope\r   \r/quit\r")
    assert any("/quit" in line and "leave" in line for line in lines)
    assert "unknown command /nope; /help lists commands" in lines
    assert not any(line.startswith("bot> ") for line in lines)  # blank input is not sent


def test_ctrl_c_clears_the_line_and_ctrl_d_leaves(tiny_run):
    # Ctrl-C (\x03) drops "how are" without replying; then a full prompt; Ctrl-D (\x04) ends.
    lines = drive(Bot.load(tiny_run), "how are\x03hello\r\x04")
    replies = [line for line in lines if line.startswith("bot> ")]
    assert replies == ["bot> hi there!"]
    assert lines[-1] == "bye"


def test_set_and_show_change_decoding(tiny_run):
    lines = drive(Bot.load(tiny_run),
                  "/show\r/set beam 3\r/set temperature 0.7\r/set top_p 0.8\r/set top_k 4\r"
                  "/set no_repeat_ngram 2\r/set seed 7\r/set max_len 5\r/show\r/quit\r")
    assert lines[1].startswith("strategy greedy;")
    assert lines[2].startswith("strategy beam (width 3,")
    # A temperature means sampling; top_p and top_k then keep it.
    assert lines[3].startswith("strategy random (temperature 0.7)")
    assert lines[4].startswith("strategy top_p (p 0.8, temperature 0.7)")
    assert lines[5].startswith("strategy top_k (k 4, temperature 0.7)")
    assert "no_repeat_ngram 2" in lines[6] and "seed 7" in lines[7]
    assert "max_len 5" in lines[9]


def test_bad_settings_are_explained_and_change_nothing(tiny_run):
    lines = drive(Bot.load(tiny_run),
                  "/set beam many\r/set top_p 1.5\r/set colour blue\r/set beam\r/show\r/quit\r")
    assert lines[1] == "error: beam expects a whole number from 1 to 256, received 'many'"
    assert lines[2] == "error: top_p must be a number from 0 (excluded) to 1, received 1.5"
    assert lines[3].startswith("error: unknown setting 'colour'; settings: strategy, max_len")
    assert lines[4] == "wrong arguments for /set; /help shows its usage"
    assert lines[5].startswith("strategy greedy;")


def test_nbest_lists_candidates_with_log_probabilities(tiny_run):
    lines = drive(Bot.load(tiny_run), "/nbest 3\rhello\r/quit\r")
    assert lines[1].startswith("strategy beam (width 5, length_penalty 1.0, nbest 3)")
    assert lines[2] == "bot> hi there!"
    ranked = [line for line in lines if line.startswith("  ") and "log-prob" in line]
    assert len(ranked) == 3
    assert ranked[0].startswith("  1. hi there!  (log-prob ")
    scores = [float(line.rsplit("score ", 1)[1].rstrip(")")) for line in ranked]
    assert scores == sorted(scores, reverse=True)


def test_attention_needs_an_attention_model(tiny_run, tmp_path):
    lines = drive(Bot.load(tiny_run), f"/attention {tmp_path / 'a.png'}\rhello\r"
                                      f"/attention {tmp_path / 'a.png'}\r/quit\r")
    assert lines[1] == "no reply yet: say something first"
    assert lines[3].startswith("error: this model (lstm) has no attention")
    assert not (tmp_path / "a.png").exists()


def test_attention_heatmap_of_the_last_reply(tiny_runs, tmp_path):
    out = tmp_path / "attn.png"
    lines = drive(Bot.load(tiny_runs["attention"]), f"你好\r/attention {out}\r/quit\r")
    assert lines[1] == "bot> 你好！很高兴认识你。"
    assert lines[2] == f"saved {out}"
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# === hostile input to the REPL and to `chatbot reply` ==========================================
# Hostile input to the REPL and to `chatbot reply`: the session survives, every prompt gets one
# answer line, nothing the user typed is echoed raw to the terminal, and invalid UTF-8 is reported
# with its line number.


IDS = list(HOSTILE)


@pytest.fixture(scope="module")
def bot(tiny_run) -> Bot:
    return Bot.load(tiny_run)


def drive_raw(bot: Bot, data: str | bytes) -> list[str]:
    """Runs a REPL session on `data` (keys, or raw terminal bytes); returns the lines written.

    A sender thread feeds the pipe while the session reads it: one write of more than the pipe's
    buffer (64 KiB) would otherwise block before the session starts.
    """
    lines: list[str] = []
    with create_pipe_input() as pipe:
        send = pipe.send_bytes if isinstance(data, bytes) else pipe.send_text
        sender = threading.Thread(target=send, args=(data,), daemon=True)
        sender.start()
        run_repl(bot, input=pipe, output=DummyOutput(), write=lines.append)
        sender.join(timeout=10)
    return lines


def pasted(text: str) -> str:
    """`text` as a terminal delivers a paste (bracketed), then Enter: typed into the line as is.

    Unbracketed, prompt_toolkit would read ESC, ^A, ^H, tab... as editing keys, not as text.
    """
    return f"\x1b[200~{text}\x1b[201~\r"


def assert_safe_to_print(lines: list[str]) -> None:
    for line in lines:
        assert all(ch.isprintable() for ch in line), f"raw control character in {line!r}"


def expected_answers(text: str) -> int:
    return 1 if text.strip() and not text.strip().startswith("/") else 0


# --- the REPL -------------------------------------------------------------------------------


@pytest.mark.parametrize("text", HOSTILE.values(), ids=IDS)
def test_repl_answers_hostile_input_once_and_echoes_nothing_raw(bot, text):
    lines = drive_raw(bot, pasted(text) + "/quit\r")
    assert lines[-1] == "bye"
    answers = [line for line in lines if line.startswith("bot> ")]
    assert len(answers) == expected_answers(text)
    notices = [line for line in lines if line.startswith("(not in my vocabulary: ")]
    assert len(notices) <= len(answers)
    assert_safe_to_print(lines)
    assert not any("\x1b" in line for line in lines)


def test_repl_survives_all_of_them_in_one_session(bot):
    lines = drive_raw(bot, "".join(pasted(t) for t in HOSTILE.values()) + "hello\r/quit\r")
    answers = [line for line in lines if line.startswith("bot> ")]
    assert len(answers) == sum(map(expected_answers, HOSTILE.values())) + 1
    assert answers[-1] == "bot> hi there!"  # still answering sensibly after all that
    assert lines[-1] == "bye"
    assert_safe_to_print(lines)


def test_escape_sequences_are_shown_escaped_in_the_unknown_word_notice(bot):
    lines = drive_raw(bot, pasted("hello \x1b[31mred\x1b]0;title\x07 \u202eevil") + "/quit\r")
    notice = next(line for line in lines if line.startswith("(not in my vocabulary: "))
    assert "\\x1b" in notice and "\\x07" in notice and "\\u202e" in notice


def test_invalid_utf8_from_the_terminal_is_answered(bot):
    # A Latin-1 terminal sends "café" as caf\xe9; prompt_toolkit decodes it with surrogateescape.
    lines = drive_raw(bot, b"caf\xe9 hello\r\x1b[200~\xff\xfe\x1b[201~\r/quit\r")
    assert len([line for line in lines if line.startswith("bot> ")]) == 2
    assert lines[-1] == "bye"
    assert_safe_to_print(lines)


# --- `chatbot reply` reading stdin ------------------------------------------------------------


def reply_stdin(run_dir, stdin: bytes, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "chatbot.cli", "reply", "--model", str(run_dir)],
                          input=stdin, capture_output=True, timeout=120, env=env)


def output_lines(result: subprocess.CompletedProcess) -> list[str]:
    out = result.stdout.decode("utf-8")
    assert out.endswith("\n")
    return out[:-1].split("\n")  # not splitlines(): only \n ends an output line


def test_reply_writes_one_line_per_hostile_input_line(tiny_run):
    stdin = b"".join(text.encode() + b"\n" for text in HOSTILE.values())
    result = reply_stdin(tiny_run, stdin)
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    lines = output_lines(result)
    assert len(lines) == len(HOSTILE)
    for text, line in zip(HOSTILE.values(), lines):
        if not text.strip():
            assert line == ""  # nothing to answer, but the line is kept for alignment
    assert_safe_to_print(lines)
    assert b"Traceback" not in result.stderr


def test_reply_reports_invalid_utf8_by_line_and_keeps_alignment(tiny_run):
    texts = [text.encode() for text in HOSTILE.values()]
    texts[3:3] = [b"\xff\xfe"]  # line 4
    texts.append(b"caf\xe9\r")  # Latin-1, with a CRLF line end
    texts.append(b"hello")  # last line without a newline
    result = reply_stdin(tiny_run, b"\n".join(texts))
    err = result.stderr.decode()
    assert result.returncode == 1
    lines = output_lines(result)
    assert len(lines) == len(texts)
    assert lines[3] == "" and lines[-2] == ""
    assert lines[-1] == "hi there!"
    assert "stdin:4: not valid UTF-8" in err
    assert f"stdin:{len(texts) - 1}: not valid UTF-8" in err
    assert len(err.strip().splitlines()) == 2  # one message per bad line, nothing else
    assert "Traceback" not in err


@pytest.mark.parametrize("how", ["argument", "stdin"])
def test_reply_to_a_terminal_that_cannot_show_chinese_escapes_it(tiny_run, how):
    # main() makes stdout and stderr backslash-escape what their encoding cannot show, so the
    # reply is still given (as \u4f60\u597d...), not refused and not a UnicodeEncodeError.
    env = {**os.environ, "PYTHONIOENCODING": "ascii"}
    args = ["你好"] if how == "argument" else []
    result = subprocess.run(
        [sys.executable, "-m", "chatbot.cli", "reply", "--model", str(tiny_run), *args],
        input="你好\n".encode() if how == "stdin" else b"", capture_output=True, timeout=120,
        env=env)
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    assert result.stdout == "你好！很高兴认识你。\n".encode("ascii", "backslashreplace")
    assert result.stderr == b""
