"""Training through tf.distribute: batches shared fairly between devices and workers, even when
there are fewer batches than devices; mirrored and multi-worker training (two local processes);
TF_CONFIG checks; only the chief writes, and its refusal stops every worker."""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
import time
import types
from pathlib import Path

import pandas as pd
import pytest

from chatbot.decoding.bot import Bot
from chatbot.errors import ChatbotError
from chatbot.rundir import finish_run, read_history
from chatbot.training.batches import Batches
from chatbot.training.distribute import is_chief, make_strategy, refuse_together
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


def train_on_three_devices() -> None:
    """Run in a process of its own (the CPU is split before TensorFlow starts): two epochs on
    3 logical CPUs of 1 pair (1 batch) and of 5 pairs (2 batches); prints the losses as JSON."""
    strategy = make_strategy("mirrored", logical_cpus=3)
    from chatbot.config import ModelConfig, TrainConfig
    from chatbot.models import lstm
    from chatbot.models.common import compile_model
    from chatbot.training.loop import Loop

    losses = {}
    for pairs in (1, 5):
        with strategy.scope():
            model = lstm.build(ModelConfig(embedding_dim=4, hidden_dim=8, vocab_size=10))
            compile_model(model, TrainConfig())
        data = Batches(examples(pairs), batch_size=4)
        # Six steps: run eagerly, they take less time than tracing them on 3 devices would.
        history = Loop(model, strategy, run_eagerly=True).fit(
            data.distributed(strategy, repeat=True), epochs=2, steps=data.steps(3), verbose=0)
        losses[pairs] = [epoch["loss"] for epoch in history]
    print(json.dumps(losses))


@pytest.mark.slow
def test_fewer_batches_than_devices_still_train():
    # Before: 1 batch on 3 devices planned steps of 2 batches; tf.data failed its count.
    result = subprocess.run(
        [sys.executable, "-c", "from tests.test_distribute import train_on_three_devices; "
                               "train_on_three_devices()"],
        cwd=Path(__file__).resolve().parents[1], capture_output=True, timeout=180)
    assert result.returncode == 0, result.stderr.decode()[-3000:]
    losses = json.loads(result.stdout.decode().splitlines()[-1])
    assert set(losses) == {"1", "5"}
    assert all(len(epochs) == 2 and epochs[1] < epochs[0] for epochs in losses.values())


# Epochs after which the loss of the tiny runs here is below a third of the first epoch's
# (about a quarter), at this learning rate.
EPOCHS, LEARNING_RATE = 20, "2e-2"


def run_train(tmp_path, *extra: str) -> subprocess.CompletedProcess:
    data = write_tsv(tmp_path / "pairs.tsv")
    return subprocess.run(
        [sys.executable, "-m", "chatbot.cli", "train", "--data", str(data), "--out",
         str(tmp_path / "run"), "--preset", "tiny", "--val-fraction", "0",
         "--learning-rate", LEARNING_RATE, *extra],
        capture_output=True, timeout=600)


@pytest.mark.slow
def test_mirrored_over_two_logical_cpus_trains_one_usable_run(tmp_path):
    result = run_train(tmp_path, "--strategy", "mirrored", "--epochs", str(EPOCHS))
    assert result.returncode == 0, result.stderr.decode()[-3000:]
    out = result.stdout.decode()
    assert "training on 2 devices (mirrored)" in out
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["train"]["strategy"] == "mirrored"


    history = pd.read_csv(tmp_path / "run" / "history.csv")
    assert len(history) == EPOCHS and history["loss"].iloc[-1] < history["loss"].iloc[0] / 3
    assert Bot.load(tmp_path / "run").reply("hello").text  # the single run directory answers
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pairs.tsv", "run"]


EPHEMERAL = 32768  # where Linux's ports for port 0 and outgoing connections begin, by default


def free_ports(n: int) -> list[int]:
    """`n` ports free on 127.0.0.1 for the workers to listen on, below the ephemeral range: the
    tests that run alongside (pytest-xdist) bind port 0 and connect, and could be given one of
    these between this check and the workers' bind, seconds later."""
    draw = random.SystemRandom()  # not `random`, which tests seed: every process would draw alike
    ports: list[int] = []
    while len(ports) < n:
        port = draw.randrange(20000, EPHEMERAL)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:  # in use
                continue
        if port not in ports:
            ports.append(port)
    return ports


def start_workers(*args: str) -> list[subprocess.Popen]:
    """`chatbot ARGS --strategy multiworker` as two worker processes on 127.0.0.1."""
    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(2)]}
    workers = []
    for index in range(2):
        tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        workers.append(subprocess.Popen(
            [sys.executable, "-m", "chatbot.cli", *args, "--strategy", "multiworker"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env={**os.environ, "TF_CONFIG": tf_config}))
    return workers


def finish(workers: list[subprocess.Popen]) -> list[str]:
    """Waits for every worker; checks they all succeeded; returns their standard outputs."""
    outputs = [worker.communicate(timeout=600) for worker in workers]
    for worker, (_, err) in zip(workers, outputs):
        assert worker.returncode == 0, err.decode()[-3000:]
    return [out.decode() for out, _ in outputs]


def train_args(tmp_path, epochs: int) -> list[str]:
    data = write_tsv(tmp_path / "pairs.tsv")
    return ["train", "--data", str(data), "--out", str(tmp_path / "run"), "--preset", "tiny",
            "--val-fraction", "0", "--epochs", str(epochs), "--learning-rate", LEARNING_RATE]


def outcomes(workers: list[subprocess.Popen], timeout: float) -> list[tuple[int, str]]:
    """Every worker's exit code and standard error; kills them all if one takes too long."""
    try:
        results = [worker.communicate(timeout=timeout) for worker in workers]
    except subprocess.TimeoutExpired:
        for worker in workers:
            worker.kill()
            worker.wait()
        pytest.fail(f"the workers were still running after {timeout} s")
    return [(worker.returncode, err.decode()) for worker, (_, err) in zip(workers, results)]


@pytest.mark.slow
def test_a_refusal_of_the_chief_stops_every_worker(tmp_path):
    # Only the chief checks --out; the other worker used to wait for it forever.
    (tmp_path / "run").mkdir()
    finish_run(tmp_path / "run")  # a finished run, and no --overwrite
    for code, err in outcomes(start_workers(*train_args(tmp_path, 5)), timeout=90):
        assert code == 1 and "Traceback" not in err, err[-3000:]
        assert "run: already holds a trained model; pass --resume" in err


def test_without_a_cluster_the_check_runs_here_and_raises_here():
    calls = []

    def refuse():
        calls.append("checked")
        raise ChatbotError("out: already holds a trained model")

    with pytest.raises(ChatbotError, match="already holds a trained model"):
        refuse_together(types.SimpleNamespace(), refuse)  # default and mirrored: one process
    refuse_together(types.SimpleNamespace(), lambda: calls.append("passed"))
    assert calls == ["checked", "passed"]


@pytest.mark.slow
def test_multiworker_as_two_local_processes_resumes_a_kill_and_trains_one_usable_run(tmp_path):
    history_csv = tmp_path / "run" / "history.csv"
    # docs: chatbot train --data data/pairs.tsv --out models/big --strategy multiworker
    workers = start_workers(*train_args(tmp_path, EPOCHS))
    deadline = time.monotonic() + 300
    while len(read_history(tmp_path / "run")) < 3:  # empty until the first epoch ends
        assert time.monotonic() < deadline and all(w.poll() is None for w in workers)
        time.sleep(0.05)
    for worker in workers:
        worker.kill()  # kill -9, both
    chief, other = (worker.communicate()[0].decode() for worker in workers)
    assert "training on 2 devices (multiworker)" in chief
    assert "worker 1: training with the chief" in other and "Epoch" not in other
    done = len(pd.read_csv(history_csv))
    assert 3 <= done < EPOCHS and (tmp_path / "run" / ".backup").is_dir()

    chief, _ = finish(start_workers("train", "--resume", str(tmp_path / "run")))
    assert "resuming" in chief
    history = pd.read_csv(history_csv)
    assert list(history["epoch"]) == list(range(EPOCHS))  # every epoch once, none lost
    assert history["loss"].iloc[-1] < history["loss"].iloc[0] / 3
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["train"]["strategy"] == "multiworker"
    assert Bot.load(tmp_path / "run").reply("hello").text  # the single run directory answers
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pairs.tsv", "run"]
    assert not (tmp_path / "run" / ".backup").exists()


@pytest.mark.parametrize("tf_config, says", [
    (None, "needs the TF_CONFIG environment variable"),
    ("{not json", "TF_CONFIG is not valid"),
    (json.dumps({"cluster": {"worker": ["a:1"]}}), "TF_CONFIG is not valid"),
    (json.dumps({"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 2}}),
     "task 'worker' index 2 is not in the cluster"),
])
def test_multiworker_needs_a_valid_tf_config(monkeypatch, tf_config, says):
    if tf_config is None:
        monkeypatch.delenv("TF_CONFIG", raising=False)
    else:
        monkeypatch.setenv("TF_CONFIG", tf_config)
    with pytest.raises(ChatbotError, match=says) as caught:
        make_strategy("multiworker")
    assert '"task": {"type": "worker", "index": 0}' in str(caught.value)  # shows how


def test_cli_refuses_multiworker_without_tf_config(tmp_path, monkeypatch, capsys):
    from chatbot.cli import main

    monkeypatch.delenv("TF_CONFIG", raising=False)
    data = write_tsv(tmp_path / "pairs.tsv")
    # Run here, as the command runs it: the check comes before any TensorFlow work.
    assert main(["train", "--data", str(data), "--out", str(tmp_path / "run"), "--strategy",
                 "multiworker"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and "needs the TF_CONFIG environment variable" in err
    assert not (tmp_path / "run").exists()


class FakeResolver:
    def __init__(self, cluster: dict, task_type: str, task_id: int):
        self.task_type, self.task_id, self._cluster = task_type, task_id, cluster

    def cluster_spec(self):
        return types.SimpleNamespace(as_dict=lambda: self._cluster)


@pytest.mark.parametrize("cluster, task, chief", [
    ({"worker": ["a:1", "b:1"]}, ("worker", 0), True),
    ({"worker": ["a:1", "b:1"]}, ("worker", 1), False),
    ({"chief": ["c:1"], "worker": ["a:1"]}, ("chief", 0), True),
    ({"chief": ["c:1"], "worker": ["a:1"]}, ("worker", 0), False),
    ({}, (None, None), True),
])
def test_only_the_chief_writes(cluster, task, chief):
    strategy = types.SimpleNamespace(cluster_resolver=FakeResolver(cluster, *task))
    assert is_chief(strategy) is chief
    assert is_chief(types.SimpleNamespace()) is True  # strategies without a cluster
