"""Helpers that several test files share: fake engines and their vocabulary, driving the REPL,
hostile input, a CLI run without TensorFlow, slow runs, and waiting on a training process.
(Fixtures that build trained runs are in conftest.py; the server harness is tests/serving.py.)
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput

from chatbot.chat import run_repl
from chatbot.decoding.bot import Bot
from chatbot.models.base import Engine
from chatbot.text.vocab import SPECIALS, Vocabulary

# --- fake engines: next-token logits from a script, no trained model ---------------------------

VOCAB = Vocabulary(list(SPECIALS) + ["a", "b", "c"])  # a=5, b=6, c=7
A, B, C, D = 5, 6, 7, 8
EOS = VOCAB.eos_id


class ScriptedEngine(Engine):
    """Next-token logits from a table: row r, step t -> the scripted favourite gets logit 5."""

    def __init__(self, script: list[list[int]], runner_up: int | None = None):
        self.script = script
        self.runner_up = runner_up
        self.fed: list[list[int]] = []

    def _logits(self, rows: np.ndarray, t: int) -> np.ndarray:
        logits = np.zeros((len(rows), len(VOCAB)))
        for i, row in enumerate(rows):
            tokens = self.script[row]
            logits[i, tokens[min(t, len(tokens) - 1)]] = 5.0
            if self.runner_up is not None:
                logits[i, self.runner_up] = 4.0
        return logits

    def start(self, prompts):
        rows = np.arange(len(prompts))
        return self._logits(rows, 0), {"rows": rows, "t": 0}

    def step(self, tokens, state):
        self.fed.append([int(x) for x in tokens])
        t = state["t"] + 1
        return self._logits(state["rows"], t), {"rows": state["rows"], "t": t}


class MarkovEngine(Engine):
    """Logits depend only on the last token: `matrix[last]`, (vocab, vocab)."""

    def __init__(self, matrix: np.ndarray):
        self.matrix = matrix
        self.steps = 0

    def start(self, prompts):
        last = np.array([p[-1] for p in prompts])
        return self.matrix[last], [last]

    def step(self, tokens, state):
        self.steps += 1
        return self.matrix[tokens], [np.asarray(tokens)]


# --- engines, REPL and input -----------------------------------------------------------------


def engine_logits(engine, prompt: list[int], reply: list[int]) -> np.ndarray:
    """The engine's logits for the same pair, one step per reply token: (len(reply) + 1, vocab)."""
    logits, state = engine.start([prompt])
    rows = [logits[0]]
    for token in reply:
        logits, state = engine.step(np.array([token]), state)
        rows.append(logits[0])
    return np.stack(rows)


def drive(bot: Bot, keys: str) -> list[str]:
    lines: list[str] = []
    with create_pipe_input() as pipe:
        pipe.send_text(keys)
        run_repl(bot, input=pipe, output=DummyOutput(), write=lines.append)
    return lines


HOSTILE = {
    "empty": "",
    "whitespace": "  \u3000 \xa0 ",
    "100k-chars": "lorem ipsum dolor sit amet, " * 3572,  # 100,016 characters
    "control-chars": "\x01\x07\x08",
    "ansi-colour": "\x1b[31mred\x1b[0m",
    "ansi-title": "\x1b]0;title\x07",
    "emoji": "👍🏽 👨‍👩‍👧 🏳️‍🌈 hello 🙂",
    "rtl": "مرحبا שלום \u202eolleh\u202c",
    "only-unknown": "zebra quokka axolotl",
    "cjk-and-unknown": "斑马 zebra 你好 再见",
    "tabs": "\t\t\t",
    "nul": "hel\x00lo",
}

# Runs `chatbot ARGS...` with every import of TensorFlow or Keras failing, and says at the end
# which ones were attempted: a command that merely caught the ImportError would still be caught.
WITHOUT_TENSORFLOW = [sys.executable, "-c", """\
import sys

class BlockTensorFlow:
    attempts = []

    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in ("tensorflow", "keras"):
            self.attempts.append(name)
            raise ImportError(f"{name} is blocked by the test")
        return None

sys.meta_path.insert(0, BlockTensorFlow())
from chatbot.cli import main
status = main(sys.argv[1:])
print(f"blocked imports: {BlockTensorFlow.attempts}", file=sys.stderr)
sys.exit(status)
"""]


def slow_run(run_dir: Path, out: Path, reply_tokens: int) -> Path:
    """A copy of ``run_dir`` whose saved decoding setting makes every reply ``reply_tokens``
    long. (`--min-len` with `--max-len` would do, but the CLI checks --min-len against the
    saved max_len first.)"""
    shutil.copytree(run_dir, out)
    config = json.loads((out / "config.json").read_text(encoding="utf-8"))
    # No memory, no fallback and no loop guard: the model's own reply, every token of it.
    config["decode"].update(min_len=reply_tokens, max_reply_len=reply_tokens, retrieval=False,
                            loop_guard=0, fallback=False)
    (out / "config.json").write_text(json.dumps(config), encoding="utf-8")
    return out


def synthetic_tsv(path: Path, n: int = 160) -> Path:
    """Pairs with a learnable pattern and enough rows that an epoch takes a moment."""
    words = ["red", "green", "blue", "cat", "dog", "bird", "one", "two", "three", "sun"]
    rows = [f"{words[i % 10]} {words[i // 10 % 10]} {i}\t{words[(i + 3) % 10]} {i % 7}"
            for i in range(n)]
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def wait_for(condition, timeout: float = 240.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("training did not get there in time")
        time.sleep(0.02)


def rows(run: Path) -> int:
    try:
        return len(pd.read_csv(run / "history.csv"))
    except (FileNotFoundError, pd.errors.EmptyDataError):
        return 0
