"""The REPL, driven through prompt_toolkit pipe input as a real session."""

from __future__ import annotations

import pytest
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput

from chatbot.bot import Bot
from chatbot.chat import run_repl

pytestmark = pytest.mark.slow  # needs the tiny trained model


def drive(bot: Bot, keys: str) -> list[str]:
    lines: list[str] = []
    with create_pipe_input() as pipe:
        pipe.send_text(keys)
        run_repl(bot, input=pipe, output=DummyOutput(), write=lines.append)
    return lines


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
