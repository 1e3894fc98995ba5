"""Helpers for tests that talk to a real `chatbot serve` app: tests/test_app.py (the API) and
tests/test_web.py (the chat page in a browser)."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import uvicorn

from chatbot.decoding.bot import Bot
from chatbot.models.base import Engine


class Server:
    """uvicorn serving an app on a free port of 127.0.0.1, in a thread of this process."""

    def __init__(self, app):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]},
                                       daemon=True)

    def __enter__(self) -> Server:
        self.thread.start()
        for _ in range(500):
            if self.server.started:
                return self
            time.sleep(0.01)
        raise RuntimeError("the server did not start")

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


class SlowEngine(Engine):
    """A run's engine, `delay` seconds slower per step; counts its steps."""

    def __init__(self, engine, delay: float):
        self.engine, self.delay, self.steps = engine, delay, 0

    def start(self, prompts):
        return self.engine.start(prompts)

    def step(self, tokens, state):
        self.steps += 1
        time.sleep(self.delay)
        return self.engine.step(tokens, state)


def bot_with(run: Path, **settings) -> Bot:
    bot = Bot.load(run)
    bot.configure(**settings)
    return bot
