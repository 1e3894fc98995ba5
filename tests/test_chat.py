"""The REPL, driven through prompt_toolkit pipe input as a real session."""

from __future__ import annotations

import pytest

from chatbot.decoding.bot import Bot
from tests.helpers import drive

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
