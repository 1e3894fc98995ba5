"""Shared fixtures: a tiny model trained once per session on a handful of pairs."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

# English, Chinese and mixed prompts; each prompt has one reply, so "learned" is exact.
TINY_PAIRS = [
    ("hello", "hi there!"),
    ("how are you?", "i am fine, thanks."),
    ("what is your name?", "my name is bot."),
    ("你好", "你好！很高兴认识你。"),
    ("再见", "再见，明天见。"),
    ("do you like tea?", "yes, 我喜欢茶."),
]


def write_tsv(path: Path, pairs=TINY_PAIRS) -> Path:
    path.write_text("".join(f"{p}\t{r}\n" for p, r in pairs), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def tiny_tsv(tmp_path_factory) -> Path:
    return write_tsv(tmp_path_factory.mktemp("data") / "tiny.tsv")


def tiny_config(epochs: int = 150, arch: str = "lstm"):
    from chatbot.config import preset

    config = preset("tiny")
    config.model.arch = arch
    config.data.val_fraction = 0.0  # six pairs: keep them all for training
    config.train.epochs = epochs
    config.train.patience = epochs
    config.train.batch_size = 4  # two batches of different lengths per epoch
    config.train.probes = 0
    return config


# tiny_run's training. (Fewer epochs at a higher rate also answer TINY_PAIRS, 50 at 1e-2, but
# that model is too sure of its own replies: tests/test_rerank.py's known replies lose to it.)
TINY_RUN_EPOCHS, TINY_RUN_LEARNING_RATE = 150, 5e-3


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, tiny_tsv) -> Path:
    """A run directory trained on TINY_PAIRS until it answers them (about 15 s)."""
    from chatbot.train import train

    out = tmp_path_factory.mktemp("runs") / "tiny"
    config = tiny_config(epochs=TINY_RUN_EPOCHS)
    config.train.learning_rate = TINY_RUN_LEARNING_RATE
    train(tiny_tsv, out, config, log=lambda _: None, verbose=0)
    return out


# Epochs and learning rate after which each architecture answers all of TINY_PAIRS, the
# model alone (measured: seq2seq at 30 epochs needs 0.01, attention still needs 60).
TINY_TRAINING = {"seq2seq": (30, 1e-2), "attention": (60, 5e-3), "transformer": (30, 5e-3)}


@pytest.fixture(scope="session")
def tiny_runs(tmp_path_factory, tiny_tsv, tiny_run) -> dict[str, Path]:
    """One tiny run directory per architecture, trained once per session (TINY_TRAINING)."""
    from chatbot.train import train

    runs = {"lstm": tiny_run}
    for arch, (epochs, learning_rate) in TINY_TRAINING.items():
        out = tmp_path_factory.mktemp("runs") / arch
        config = tiny_config(epochs=epochs, arch=arch)
        config.train.learning_rate = learning_rate
        train(tiny_tsv, out, config, log=lambda _: None, verbose=0)
        runs[arch] = out
    return runs
