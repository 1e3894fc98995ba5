"""What tests/conftest.py sets up for the whole run (its fixtures are tested where used)."""

from __future__ import annotations

import os

from tests.conftest import THREADS, share_the_cores


def test_each_worker_takes_its_share_of_the_cores_and_keeps_a_size_already_set(monkeypatch):
    for name in THREADS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "3")  # the user's own choice
    share_the_cores(workers=2, cores=8)
    assert {name: os.environ[name] for name in THREADS} == {
        "TF_NUM_INTRAOP_THREADS": "4", "TF_NUM_INTEROP_THREADS": "4", "OMP_NUM_THREADS": "3",
        "OPENBLAS_NUM_THREADS": "4"}
    for name in THREADS:
        monkeypatch.delenv(name)
    share_the_cores(workers=4, cores=2)  # more workers than cores: one thread each
    assert all(os.environ[name] == "1" for name in THREADS)
