"""How long the notebook tour takes, from top to bottom (issue #29's target: at most 3 minutes):

    .venv/bin/python bench/notebook.py -o bench/notebook.json

Each round executes notebooks/tour.ipynb in full (not quick) mode with nbclient, in a fresh
kernel of this Python, as `make notebook` does, and times it from the kernel's start to the last
cell (wall clock); the kernel's CPU time (user and system) and the machine's load average before
each round are recorded beside it, since the wall clock varies with the load on a shared machine.
Then `--quick-rounds` rounds in quick mode (CHATBOT_TOUR_QUICK=1), what tests/test_notebook.py
runs, for the test suite's time budget.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

from harness import ROOT, load_average, machine, write_results  # noqa: E402

NOTEBOOK = ROOT / "notebooks" / "tour.ipynb"
ROUNDS, QUICK_ROUNDS = 3, 1
TARGET_SECONDS = 180.0
CELL_TIMEOUT = 600  # seconds a cell may run before the round fails


def execute(path: Path, quick: bool, timeout: int = CELL_TIMEOUT) -> tuple[object, float]:
    """Runs the notebook at `path` top to bottom in a fresh kernel of this Python; returns it
    with its outputs, and the CPU seconds (user and system) its kernel used. CellExecutionError
    on the first cell that fails."""
    import nbformat
    from jupyter_client.manager import KernelManager
    from nbclient import NotebookClient

    notebook = nbformat.read(path, as_version=4)
    os.environ["CHATBOT_TOUR_QUICK"] = "1" if quick else "0"  # the kernel inherits it
    # "python3" is the kernel of the Python that runs this (ipykernel's own spec, whose
    # `python` jupyter_client replaces with sys.executable).
    kernel = KernelManager(kernel_name="python3")
    used = [0.0]

    def note_cpu(**_) -> None:  # after every cell, while the kernel still runs
        used[0] = process_cpu_seconds(kernel.provisioner.process.pid)

    NotebookClient(notebook, km=kernel, timeout=timeout, on_cell_executed=note_cpu,
                   resources={"metadata": {"path": str(ROOT)}}).execute()
    return notebook, used[0]


def process_cpu_seconds(pid: int) -> float:
    """User and system CPU seconds of a running process, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def one_round(quick: bool) -> dict:
    """One run: wall-clock and kernel CPU seconds, and the load average at its start."""
    load = load_average()
    start = time.perf_counter()
    _, cpu = execute(NOTEBOOK, quick)
    seconds = time.perf_counter() - start
    return {"seconds": round(seconds, 1), "kernel_cpu_seconds": round(cpu, 1),
            "load_average_at_start_1_5_15min": load}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=ROUNDS, help="rounds in full mode")
    parser.add_argument("--quick-rounds", type=int, default=QUICK_ROUNDS,
                        help="rounds in quick mode, after the full ones")
    parser.add_argument("-o", "--out", default="bench/notebook.json")
    args = parser.parse_args()
    load_start = load_average()
    runs: dict[str, list[dict]] = {"full": [], "quick": []}
    for mode, count in (("full", args.rounds), ("quick", args.quick_rounds)):
        for number in range(1, count + 1):
            runs[mode].append(one_round(quick=mode == "quick"))
            print(f"{mode} round {number}: {runs[mode][-1]}", flush=True)
    median = {mode: round(statistics.median(r["seconds"] for r in rounds), 1)
              for mode, rounds in runs.items() if rounds}
    write_results(args.out, {
        "what": "notebooks/tour.ipynb executed top to bottom with nbclient, a fresh kernel per "
                "round, wall clock from the kernel's start to the last cell; full mode, then "
                "quick mode (CHATBOT_TOUR_QUICK=1, what tests/test_notebook.py runs)",
        "rounds": runs,
        "median_seconds": median,
        "target": {"seconds": TARGET_SECONDS, "full_median_within":
                   median["full"] <= TARGET_SECONDS if "full" in median else None},
        "machine": machine(load_start),
    })


if __name__ == "__main__":
    main()
