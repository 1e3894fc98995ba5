"""The REPL, driven through prompt_toolkit pipe input as a real session."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading

import pytest
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput

from chatbot.chat import run_repl
from chatbot.data.taught import TAUGHT
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


def test_help_lists_teach_and_forget(tiny_run):
    help_text = "\n".join(drive(Bot.load(tiny_run), "/help\r/quit\r"))
    assert "/teach REPLY" in help_text and "/forget" in help_text


def test_set_reaches_the_fallback_settings(tiny_run):
    bot = Bot.load(tiny_run)
    lines = drive(bot, "/set fallback off\r/set min_confidence 0.9\r/set ambiguity 0.1\r"
                       "/quit\r")
    assert "fallback off (min_confidence 0.9, ambiguity 0.1)" in lines[3]
    assert (bot.decode.fallback, bot.decode.min_confidence, bot.decode.ambiguity) == (
        False, 0.9, 0.1)


# --- /teach, /forget ----------------------------------------------------------------------


def session_bot(tiny_run) -> Bot:
    """The tiny run's bot, teaching for this session only (the run is shared by the tests)."""
    from chatbot.data.taught import Taught

    bot = Bot.load(tiny_run)
    bot.taught = Taught(None, bot.memory)
    return bot


def test_teach_and_forget_the_last_prompt(tiny_run):
    lines = drive(session_bot(tiny_run), "/teach hi\r/forget\rhello\r/teach Hey, you!\r"
                                         "hello\rhello!\r/forget\r/forget\rhello\r/quit\r")
    assert lines[1:3] == ["nothing to teach for yet: type a prompt first",
                          "nothing to forget yet: type a prompt first"]
    assert lines[3] == "bot> hi there!"
    assert lines[4] == 'taught: "hello" -> "Hey, you!" (this session only)'
    assert lines[5:7] == ["bot> Hey, you!"] * 2  # said as taught, to prompts like it too
    # The last reply was taught for "hello": that is what is forgotten.
    assert lines[7] == 'forgot what was taught for "hello"'
    assert lines[8] == 'nothing was taught for "hello"'
    assert lines[9] == "bot> hi there!"


def test_what_is_taught_is_saved_in_the_run(tiny_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    lines = drive(Bot.load(run), "what is your name?\r/teach I'm   Chatbot.\r/quit\r")
    assert lines[2] == f'taught: "what is your name?" -> "I\'m Chatbot." (saved in {run / TAUGHT})'
    assert Bot.load(run).reply("what is your name").text == "I'm Chatbot."
    assert drive(Bot.load(run), "what is your name?\r/forget\r/quit\r")[2] == (
        'forgot what was taught for "what is your name?"')
    assert Bot.load(run).reply("what is your name?").text == "my name is bot."


def test_teach_needs_a_reply_and_a_prompt_it_can_save(tiny_run):
    lines = drive(session_bot(tiny_run), "hello\r/teach\r/quit\r")
    assert lines[2] == "wrong arguments for /teach; /help shows its usage"
    # A Latin-1 terminal's "café" arrives undecoded: it could not be written to taught.jsonl.
    bot = session_bot(tiny_run)
    bot.configure(fallback=False)
    lines = drive_raw(bot, b"caf\xe9\r/teach coffee\r/quit\r")
    assert lines[-2].startswith("the last prompt is not valid UTF-8") and "taught" in lines[-2]
    assert_safe_to_print(lines)


def test_a_taught_reply_with_control_characters_is_shown_escaped(tiny_run):
    lines = drive_raw(session_bot(tiny_run), b"hello\r/teach \x1b[200~\x1b[31mred\x1b[201~\r"
                                           b"hello\r/quit\r")
    assert lines[3] == "bot> \\x1b[31mred"
    assert_safe_to_print(lines)


# --- /why -----------------------------------------------------------------------------------


def why(bot: Bot, prompt: str) -> list[str]:
    lines = drive(bot, f"{prompt}\r/why\r/quit\r")
    return lines[lines.index(next(line for line in lines if line.startswith("bot> "))) + 1: -1]


def test_why_names_the_source_the_confidence_and_its_evidence(tiny_run):
    from chatbot.decoding.confidence import UNCALIBRATED

    bot = Bot.load(tiny_run)
    bot.calibration = UNCALIBRATED
    bot.configure(fallback=False)  # (half the prompt unknown: its confidence is low)
    lines = why(bot, "hello zebra")
    reply = bot.reply("hello zebra")
    assert reply.source == "memory" and reply.match.prompt == "hello"
    assert lines[0] == (f"memory: the reply of the known prompt 'hello' (similarity "
                        f"{reply.match.similarity:.2f}), chosen by the model's scores")
    assert lines[1] == (f"confidence {reply.confidence:.2f} (uncalibrated: run chatbot "
                        f"calibrate --model {tiny_run})")
    e = reply.evidence
    assert lines[2] == (
        f"  evidence: the closest known prompt is {e.similarity:.2f} similar, {e.margin:.2f} "
        f"more than the closest with other replies; the reply is one of its replies; "
        f"{e.extra} words typed that it lacks, {e.missing} of its words not typed; the "
        f"model's mean log-prob per token {e.logprob:.2f}; 50% of the prompt's tokens unknown")


def test_why_of_a_calibrated_run_has_no_note_and_below_min_confidence_says_so(tiny_run):
    from chatbot.decoding.confidence import Calibration

    bot = Bot.load(tiny_run)
    from chatbot.decoding.confidence import FEATURES

    bot.calibration = Calibration((0.0,) * len(FEATURES), -2.0, examples=10, right=1)  # 0.12
    bot.configure(fallback=False, min_confidence=0.5)
    lines = why(bot, "hello")
    assert lines[1] == "confidence 0.12"
    assert lines[3] == ("  (below min_confidence 0.5: with the fallback on, /set fallback on, "
                        "the bot would say it does not know)")


def test_why_says_why_the_fallback_fired_and_what_it_would_have_said(tiny_run):
    bot = Bot.load(tiny_run)
    bot.configure(min_confidence=0.5)
    reply = bot.reply("zebra quokka axolotl")
    assert reply.source == "fallback"
    lines = why(bot, "zebra quokka axolotl")
    assert lines[0] == "fallback: the bot said it does not know"
    assert (f"  because the confidence {reply.confidence:.2f} is below min_confidence 0.5"
            in lines)
    assert "  because the prompt has no word the bot knows" in lines
    assert f"without it, the bot would have said {reply.candidates[1].text!r} (model)" in lines


def test_why_names_the_two_known_prompts_as_close_with_different_replies(tiny_run):
    from chatbot.data.memory import Memory

    bot = Bot.load(tiny_run)
    # "hello" is as close to each (their n-grams differ alike), and their replies differ.
    bot.memory = Memory(["hello a", "hello b"], [["hi there!"], ["my name is bot."]])
    bot.configure(min_confidence=0.0, ambiguity=0.02)  # (the rule is off by default)
    assert bot.reply("hello").source == "fallback"
    lines = why(bot, "hello")
    reasons = [line for line in lines if line.startswith("  because")]
    assert len(reasons) == 1 and reasons[0].startswith(
        "  because two known prompts are as close with different replies: 'hello a' (0.")
    assert reasons[0].endswith("within ambiguity 0.02")


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
