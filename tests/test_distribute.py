"""Training through tf.distribute: batches shared fairly between devices, mirrored training."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest

from chatbot.batches import Batches
from chatbot.bot import Bot
from tests.conftest import write_tsv


def examples(n: int):
    # Example k has a target of length k % 9 + 1 and one input of length k % 5 + 1.
    return [(([7] * (k % 5 + 1),), [8] * (k % 9 + 1)) for k in range(n)]


@pytest.mark.parametrize("shards, multiple", [(1, 2), (2, 1), (2, 2), (3, 1)])
def test_every_shard_gets_the_same_steps_and_no_pair_is_lost(shards, multiple):
    # Every worker builds its own Batches with the same seed, so all plan the same epoch.
    per_shard = [list(Batches(examples(50), batch_size=4, seed=3).iterate(s, shards, multiple))
                 for s in range(shards)]
    assert len({len(batches) for batches in per_shard}) == 1  # same number of steps
    seen = sum((y.shape[0] for batches in per_shard for _, y in batches), 0)
    assert 50 <= seen < 50 + 4 * shards * multiple  # all pairs, plus a few repeated to even up
    # Batches that form one step have the same lengths on every shard and device.
    group = multiple
    for step in range(len(per_shard[0]) // group):
        lengths = {(x.shape[1], y.shape[1]) for batches in per_shard
                   for x, y in batches[step * group: (step + 1) * group]}
        assert len(lengths) == 1


def run_train(tmp_path, *extra: str) -> subprocess.CompletedProcess:
    data = write_tsv(tmp_path / "pairs.tsv")
    return subprocess.run(
        [sys.executable, "-m", "chatbot.cli", "train", "--data", str(data), "--out",
         str(tmp_path / "run"), "--preset", "tiny", "--val-fraction", "0", *extra],
        capture_output=True, timeout=600)


@pytest.mark.slow
def test_mirrored_over_two_logical_cpus_trains_one_usable_run(tmp_path):
    result = run_train(tmp_path, "--strategy", "mirrored", "--epochs", "40")
    assert result.returncode == 0, result.stderr.decode()[-3000:]
    out = result.stdout.decode()
    assert "training on 2 devices (mirrored)" in out
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["train"]["strategy"] == "mirrored"


    history = pd.read_csv(tmp_path / "run" / "history.csv")
    assert len(history) == 40 and history["loss"].iloc[-1] < history["loss"].iloc[0] / 3
    assert Bot.load(tmp_path / "run").reply("hello").text  # the single run directory answers
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pairs.tsv", "run"]


@pytest.mark.slow
def test_multiworker_is_refused_with_the_reason(tmp_path):
    result = run_train(tmp_path, "--strategy", "multiworker", "--epochs", "1")
    assert result.returncode == 1
    assert "keras-team/keras issue 20585" in result.stderr.decode()
    assert b"Traceback" not in result.stderr
