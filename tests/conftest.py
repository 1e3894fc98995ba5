"""Shared fixtures: a tiny model trained once per session on a handful of pairs.

`make test` runs the tests in two processes (pytest-xdist), each with session fixtures of its
own: what takes a while to build is built once for both, by `shared`.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


# The sizes of TensorFlow's thread pools (within an op, across ops) and of NumPy's BLAS.
THREADS = ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS",
           "OPENBLAS_NUM_THREADS")


def share_the_cores(workers: int, cores: int) -> None:
    """Each of `workers` test processes runs TensorFlow and NumPy's BLAS on its share of the
    `cores` (at least one thread), and so do the commands its tests start, which inherit the
    environment; a variable already set is kept. Left alone, every worker sizes its thread
    pools to the whole machine, and `make test`'s two workers on two cores contend for them
    (alternated runs of the whole suite here: 228 s with this, 252 s without)."""
    threads = str(max(1, cores // workers))
    for name in THREADS:
        os.environ.setdefault(name, threads)


def usable_cores() -> int:
    """The cores this process may run on (all of the machine's where that cannot be asked)."""
    if hasattr(os, "sched_getaffinity"):  # Linux
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


if "PYTEST_XDIST_WORKER_COUNT" in os.environ:  # a worker of `pytest -n N`, before TensorFlow
    share_the_cores(int(os.environ["PYTEST_XDIST_WORKER_COUNT"]), usable_cores())

import fcntl  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
from collections.abc import Callable  # noqa: E402
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


@pytest.fixture(scope="session", autouse=True)
def interruptible_children():
    """Tests of Ctrl-C send SIGINT to the commands they start. A test run started in the
    background of a script (`.ci/run &`) ignores SIGINT, as POSIX shells make background jobs
    do, and its children inherit that: Python then installs no KeyboardInterrupt, and `chatbot
    chat` and `reply` rightly stay deaf to it. So the run catches SIGINT while it lasts (a
    handler, unlike an ignored signal, is reset to the default at exec), and the commands meet
    the Ctrl-C a terminal would send them."""
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
        yield
        return
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def write_tsv(path: Path, pairs=TINY_PAIRS) -> Path:
    path.write_text("".join(f"{p}\t{r}\n" for p, r in pairs), encoding="utf-8")
    return path


def assert_bounded_candidates(got, plain, atol: float = 1e-5) -> None:
    """Replies decoded with ReplyPolicy._drafts' bounds (`got`) against the same replies with a
    search for every prompt and every candidate scored (`plain`): the same replies; each candidate
    kept with the plain path's text, source, score and log-prob; and each one left out scoring
    below the best (it could not have won)."""
    for a, b in zip(got, plain, strict=True):
        assert a.text == b.text
        reference = {c.text: c for c in b.candidates}
        assert set(reference) >= {c.text for c in a.candidates}
        for c in a.candidates:
            assert (c.source, c.score, c.logprob) == (
                reference[c.text].source, pytest.approx(reference[c.text].score, abs=atol),
                pytest.approx(reference[c.text].logprob, abs=10 * atol))
        kept = {c.text for c in a.candidates}
        assert all(c.score < a.candidates[0].score for c in b.candidates if c.text not in kept)


def shared(tmp_path_factory, folder: str, builds: dict[str, Callable[[Path], object]]
           ) -> dict[str, Path]:
    """`build(path)` once per test session for each `name: build` of `builds`, in `folder`;
    the paths by name.

    Under pytest-xdist each worker process would build its own: here the first worker to need
    one builds it in the folder all workers share (the parent of their own temporary folders),
    under a file lock, while the others build the rest or wait for it.
    """
    if "PYTEST_XDIST_WORKER" not in os.environ:
        root = tmp_path_factory.mktemp(folder)
        for name, build in builds.items():
            build(root / name)
        return {name: root / name for name in builds}
    root = tmp_path_factory.getbasetemp().parent / folder
    root.mkdir(exist_ok=True)
    left, wait = list(builds), False  # first what nobody builds yet, then wait for the rest
    while left:
        left = [name for name in left if not _build_once(root / name, builds[name], wait)]
        wait = True
    return {name: root / name for name in builds}


def _build_once(path: Path, build: Callable[[Path], object], wait: bool) -> bool:
    """Builds `path` unless it was built; False if another worker holds it and not `wait`."""
    with open(f"{path}.lock", "w") as lock:  # closing it releases the lock
        try:
            fcntl.flock(lock, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        done = Path(f"{path}.done")
        if not done.exists():
            shutil.rmtree(path, ignore_errors=True)  # a build that failed half way
            build(path)
            done.touch()
    return True


@pytest.fixture(scope="session")
def tiny_tsv(tmp_path_factory) -> Path:
    return shared(tmp_path_factory, "data", {"tiny.tsv": write_tsv})["tiny.tsv"]


def tiny_config(epochs: int = 150, arch: str = "lstm", run_eagerly: bool = False):
    """The tiny preset on TINY_PAIRS-sized data. `run_eagerly` (train.run_eagerly) suits runs of
    a few steps, which would take longer to trace than to run; others trace their steps, as a
    user's run does."""
    from chatbot.config import preset

    config = preset("tiny")
    config.model.arch = arch
    config.train.run_eagerly = run_eagerly
    config.data.val_fraction = 0.0  # six pairs: keep them all for training
    config.train.epochs = epochs
    config.train.patience = epochs
    config.train.batch_size = 4  # two batches of different lengths per epoch
    config.train.probes = 0
    return config


# tiny_run's training. (Fewer epochs at a higher rate also answer TINY_PAIRS, 50 at 1e-2, but
# that model is too sure of its own replies: tests/test_rerank.py's known replies lose to it.
# At this rate, 80 epochs are too few for them: a known reply loses to a generated one.)
TINY_RUN_EPOCHS, TINY_RUN_LEARNING_RATE = 110, 5e-3

# The learning rate at which each other architecture learns TINY_PAIRS in the fewest epochs
# (measured: seq2seq 14, attention 22, gru 11, transformer 7); an architecture not listed
# trains as attention does.
TINY_LEARNING_RATES = {"seq2seq": 3e-2, "attention": 1e-2, "gru": 2e-2, "transformer": 5e-3}


def learned_config(arch: str, learning_rate: float, most: int = 100):
    """tiny_config that trains until the model alone answers every training prompt (the stop
    rule: train with callbacks=[AnswerRates.of]), at most `most` epochs."""
    config = tiny_config(epochs=most, arch=arch)
    config.train.learning_rate = learning_rate
    config.train.monitor, config.train.stop_at = "answer_rate", 1.0
    return config


@pytest.fixture(scope="session")
def trained_runs(tmp_path_factory, tiny_tsv) -> dict[str, Path]:
    """Every trained run of tiny_run and tiny_runs, by name ("tiny" is tiny_run's). One
    `shared` call: a worker that needs one of them builds what the other worker does not, and
    neither waits idle for the lstm while the other trains it."""
    from chatbot.decoding.quality import AnswerRates
    from chatbot.evaluate import evaluate_training
    from chatbot.models import ARCHS
    from chatbot.training.train import train

    quiet = lambda _: None  # noqa: E731
    config = tiny_config(epochs=TINY_RUN_EPOCHS)
    config.train.learning_rate = TINY_RUN_LEARNING_RATE
    # Its epochs and rate were chosen from an output bias of zeros, as Keras starts a Dense
    # (the tests of reranking and of /why read how sure of itself that model is).
    config.train.frequency_bias = False
    builds = {"tiny": lambda out: evaluate_training(
        train(tiny_tsv, out, config, log=quiet, verbose=0), log=quiet)}

    def learner(arch: str):
        rate = TINY_LEARNING_RATES.get(arch, TINY_LEARNING_RATES["attention"])
        return lambda out: train(tiny_tsv, out, learned_config(arch, rate), log=quiet,
                                 verbose=0, callbacks=[AnswerRates.of])

    builds.update({arch: learner(arch) for arch in ARCHS if arch != "lstm"})
    return shared(tmp_path_factory, "runs", builds)


@pytest.fixture(scope="session")
def tiny_run(trained_runs) -> Path:
    """A run directory trained on TINY_PAIRS until it answers them, then measured as `chatbot
    train` measures it (metrics.json)."""
    return trained_runs["tiny"]


@pytest.fixture(scope="session")
def tiny_runs(trained_runs) -> dict[str, Path]:
    """One tiny run directory per architecture: tiny_run for the lstm, the others trained until
    the model alone answers all of TINY_PAIRS."""
    return {"lstm": trained_runs["tiny"],
            **{arch: path for arch, path in trained_runs.items() if arch != "tiny"}}
