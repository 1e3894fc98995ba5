"""`chatbot chat` and `chatbot reply` as real processes: Ctrl-C while a reply is being decoded,
and the promise (docs/how-it-works.md) that neither imports TensorFlow.

The chat runs on a pseudo-terminal, as it does for a user. Ctrl-C during decoding is a real
SIGINT sent to the process: what the terminal sends to the foreground process when the user
presses Ctrl-C while the prompt is not reading keys.
"""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time

import pytest

from chatbot.chat import describe
from chatbot.decoding.bot import Bot
from tests.helpers import WITHOUT_TENSORFLOW, slow_run

pytestmark = pytest.mark.slow  # spawns processes on the tiny trained model

CLI = [sys.executable, "-m", "chatbot.cli"]


# prompt_toolkit enables bracketed paste each time it starts reading a line and disables it when
# the line is done: the two tell when the chat is at its prompt and when it has left it.
PROMPT_STARTS, PROMPT_ENDS = b"\x1b[?2004h", b"\x1b[?2004l"
ESCAPE = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]")


class Terminal:
    """A process on a pseudo-terminal of 24 x 80: type keys into it, read what it shows."""

    def __init__(self, args: list[str]):
        self.fd, child = pty.openpty()
        fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
        env = {**os.environ, "TERM": "xterm", "PROMPT_TOOLKIT_NO_CPR": "1"}
        self.process = subprocess.Popen(args, stdin=child, stdout=child, stderr=child, env=env,
                                        start_new_session=True)
        os.close(child)
        self.raw = b""

    def read_until(self, done=None, timeout: float = 60) -> None:
        """Reads output until ``done(raw output so far)`` is true, or with ``done=None`` until
        the process closes the terminal; fails after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while done is None or not done(self.raw):
            ready, _, _ = select.select([self.fd], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                pytest.fail(f"timed out; the terminal shows:\n{self.text()}")
            try:
                chunk = os.read(self.fd, 65536)
            except OSError:  # EIO: the process has closed the terminal
                chunk = b""
            if not chunk and done is None:
                return
            if not chunk:
                pytest.fail(f"the process ended; the terminal shows:\n{self.text()}")
            self.raw += chunk

    def at_prompt(self, number: int) -> None:
        """Waits until the chat reads its ``number``-th line: keys typed now are keys, not
        signals (Ctrl-C) or end of file (Ctrl-D) for the terminal's line discipline."""
        self.read_until(lambda raw: raw.count(PROMPT_STARTS) >= number)

    def type(self, keys: str) -> None:
        os.write(self.fd, keys.encode())

    def finish(self, timeout: float = 60) -> int:
        """Reads the rest of the output; returns the exit code."""
        self.read_until(None, timeout)
        return self.process.wait(timeout)

    def text(self) -> str:
        return ESCAPE.sub(b"", self.raw).decode("utf-8", "replace").replace("\r", "")

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        os.close(self.fd)


@pytest.fixture
def terminal():
    terminals: list[Terminal] = []

    def start(args: list[str]) -> Terminal:
        terminals.append(Terminal(args))
        return terminals[-1]

    yield start
    for each in terminals:
        each.close()


def repl_lines(text: str) -> list[str]:
    """The lines the REPL itself printed, without the prompt's own drawing."""
    return [line for line in text.split("\n")
            if line.startswith(("bot> ", "(interrupted)", "bye", "strategy ", "blocked imports"))]


# --- Ctrl-C ---------------------------------------------------------------------------------


def test_ctrl_c_in_the_chat_clears_the_line_or_abandons_the_reply(tiny_run, terminal):
    # docs: chatbot chat --model models/mine
    chat = terminal([*CLI, "chat", "--model", str(tiny_run)])
    chat.at_prompt(1)
    chat.type("how are\x03")  # Ctrl-C at the prompt: the half-typed line is dropped
    chat.at_prompt(2)
    # <EOS> is not allowed before the longest reply (4,096 tokens), and 256 hypotheses are
    # searched: the next reply would take many seconds. (With retrieval on, the known reply of
    # "hello" would win without a search: see ReplyPolicy._drafts.)
    chat.type("/set max_len 4096\r")
    chat.at_prompt(3)
    chat.type("/set min_len 4096\r")
    chat.at_prompt(4)
    chat.type("/set retrieval off\r")
    chat.at_prompt(5)
    chat.type("/set beam 256\r")
    chat.at_prompt(6)
    chat.type("hello\r")
    chat.read_until(lambda raw: raw.count(PROMPT_ENDS) >= 6)  # the prompt has returned "hello"
    time.sleep(0.5)
    assert "bot> " not in chat.text()  # still decoding
    chat.process.send_signal(signal.SIGINT)
    chat.at_prompt(7)  # the session goes on
    chat.type("/set min_len 0\r")
    chat.at_prompt(8)
    chat.type("/set beam 1\r")
    chat.at_prompt(9)
    chat.type("hello\r")
    chat.at_prompt(10)
    chat.type("\x04")  # Ctrl-D leaves
    assert chat.finish() == 0, chat.text()
    bot = Bot.load(tiny_run)  # what /set prints: the settings line of the same changes
    shown = []
    for name, value in [("max_len", "4096"), ("min_len", "4096"), ("retrieval", "off"),
                        ("beam", "256"), ("min_len", "0"), ("beam", "1")]:
        bot.set(name, value)
        shown.append(describe(bot))
    assert shown[0].startswith("strategy greedy; min_len 0, max_len 4096, ")
    said = bot.reply("hello").text  # the model's own reply, written with case: "Hi there!"
    assert said.lower() == "hi there!"
    assert repl_lines(chat.text()) == [
        *shown[:4], "(interrupted)", *shown[4:], f"bot> {said}", "bye"]
    assert "Traceback" not in chat.text()


def test_ctrl_c_stops_reply_after_the_last_whole_batch_with_exit_130(tiny_run, tmp_path):
    # `reply` answers stdin 256 lines at a time and writes each batch once it is decoded.
    # With 500-token replies a batch takes about a second: the signal, sent as soon as the
    # first batch has been read, arrives while a later one is being decoded.
    run_dir = slow_run(tiny_run, tmp_path / "slow", reply_tokens=500)
    process = subprocess.Popen([*CLI, "reply", "--model", str(run_dir)], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        process.stdin.write(b"hello\n" * 4 * 256)
        process.stdin.close()
        lines = [process.stdout.readline() for _ in range(256)]
        process.send_signal(signal.SIGINT)
        lines += process.stdout.read().splitlines(keepends=True)
        err = process.stderr.read()
        status = process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert status == 130
    assert err == b"\nchatbot: interrupted\n"
    # Whole batches only: nothing of the interrupted one, not even part of a line.
    assert len(lines) in (256, 512, 768)
    [reply] = set(lines)  # the same 500-token reply to each "hello", each on a line of its own
    assert reply.lower().startswith(b"hi there!") and reply.endswith(b"\n") and len(reply) > 500


# --- no TensorFlow --------------------------------------------------------------------------


@pytest.mark.parametrize(("args", "stdin", "expected"), [
    (["hello"], b"", b"hi there!\n"),
    (["--beam", "3"], "hello\n你好\n".encode(), "hi there!\n你好！很高兴认识你。\n".encode()),
], ids=["argument", "stdin-beam"])
def test_reply_runs_with_tensorflow_unimportable(tiny_run, args, stdin, expected):
    result = subprocess.run([*WITHOUT_TENSORFLOW, "reply", "--model", str(tiny_run), *args],
                            input=stdin, capture_output=True, timeout=120)
    assert result.stderr.decode() == "blocked imports: []\n"
    assert result.returncode == 0
    assert result.stdout == expected


def test_chat_runs_with_tensorflow_unimportable(tiny_run, terminal):
    # docs: chatbot chat --model models/default --beam 3
    chat = terminal([*WITHOUT_TENSORFLOW, "chat", "--model", str(tiny_run), "--beam", "3"])
    chat.at_prompt(1)
    chat.type("你好\r")
    chat.at_prompt(2)
    chat.type("/quit\r")
    assert chat.finish() == 0, chat.text()
    assert repl_lines(chat.text()) == ["bot> 你好！很高兴认识你。", "bye", "blocked imports: []"]
