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


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, tiny_tsv) -> Path:
    """A run directory trained on TINY_PAIRS until it answers them (about 15 s)."""
    from chatbot.train import train

    out = tmp_path_factory.mktemp("runs") / "tiny"
    train(tiny_tsv, out, tiny_config(), log=lambda _: None, verbose=0)
    return out


@pytest.fixture(scope="session")
def tiny_runs(tmp_path_factory, tiny_tsv, tiny_run) -> dict[str, Path]:
    """One tiny run directory per architecture, trained once per session; 60 epochs answer
    all of TINY_PAIRS in each (measured), in under half of tiny_run's time."""
    from chatbot.train import train

    runs = {"lstm": tiny_run}
    for arch in ("seq2seq", "attention", "transformer"):
        out = tmp_path_factory.mktemp("runs") / arch
        train(tiny_tsv, out, tiny_config(epochs=60, arch=arch), log=lambda _: None, verbose=0)
        runs[arch] = out
    return runs
