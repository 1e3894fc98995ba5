"""`chatbot data check` on large synthetic corpora: wall time and peak memory (issue #28).

    .venv/bin/python bench/check_memory.py                      # 1,000,000 pairs
    .venv/bin/python bench/check_memory.py --pairs 10000000     # adds 10M to the same JSON

For each size, a TSV of that many pairs shaped like the default corpus (bench/synthetic.py) is
written to bench/.work/check_memory/ (kept for the next run with the same size and seed; never
committed), then `chatbot data check FILE` runs on it in a child process, alone. Its wall time,
its CPU seconds (the machine's 2 cores are shared: CPU time is the steadier figure) and its
peak resident set size (ru_maxrss of that child, from os.wait4) are saved in
bench/check_memory.json, with the report it printed. Sizes measured before are kept.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from harness import ROOT, load_average, machine, write_results  # noqa: E402
from synthetic import RARE, write_synthetic_tsv  # noqa: E402

WORK = ROOT / "bench" / ".work" / "check_memory"
LIMIT_MIB = 1024  # the aim: peak RSS of 1 GiB at 10M pairs


def synthetic_file(pairs: int, seed: int) -> tuple[Path, dict[str, Any]]:
    """The synthetic TSV of `pairs` pairs, written unless a finished one is there already."""
    path = WORK / f"pairs-{pairs}-seed{seed}.tsv"
    meta = path.with_suffix(".json")  # written last: the file is complete
    if meta.exists() and path.exists():
        info = json.loads(meta.read_text())
        if info.get("rare_share") == RARE and info.get("bytes") == path.stat().st_size:
            return path, info
    print(f"writing {pairs} synthetic pairs to {path} ...", file=sys.stderr, flush=True)
    started = time.perf_counter()
    info = write_synthetic_tsv(path, pairs, seed)
    info["seconds_to_write"] = round(time.perf_counter() - started, 1)
    meta.write_text(json.dumps(info, indent=2) + "\n")
    return path, info


def run_check(path: Path) -> dict[str, Any]:
    """`chatbot data check path` in a child process: its wall time, CPU time, peak RSS."""
    out = path.with_suffix(".report.txt")
    load = round(os.getloadavg()[0], 2)
    print(f"chatbot data check {path} (load {load}) ...", file=sys.stderr, flush=True)
    with open(out, "wb") as stdout:
        started = time.perf_counter()
        child = subprocess.Popen([sys.executable, "-m", "chatbot.cli", "data", "check",
                                  str(path.relative_to(ROOT))], stdout=stdout, cwd=ROOT)
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)  # reaped by wait4: Popen must not
    return {"exit_code": child.returncode, "seconds": round(seconds, 1),
            "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 1),
            "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),  # KiB on Linux
            "load_1min_at_start": load, "niceness": os.nice(0),  # (nice -n N: slower wall time)
            "report": out.read_text(encoding="utf-8").splitlines()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, nargs="+", default=[1_000_000],
                        help="corpus sizes to measure (default: 1000000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("-o", "--out", default=str(ROOT / "bench" / "check_memory.json"))
    args = parser.parse_args()

    out = Path(args.out)
    results = json.loads(out.read_text()) if out.exists() else {}
    runs = results.get("runs", {})
    load_start = load_average()
    for pairs in args.pairs:
        path, corpus = synthetic_file(pairs, args.seed)
        figures = run_check(path)
        if figures["exit_code"] != 0:
            raise SystemExit(f"chatbot data check failed on {path} (exit "
                             f"{figures['exit_code']}); see {path.with_suffix('.report.txt')}")
        runs[str(pairs)] = {"corpus": {**corpus, "mib": round(corpus["bytes"] / 2**20, 1)},
                            **figures, "under_limit": figures["peak_rss_mib"] <= LIMIT_MIB,
                            "machine": machine(load_start)}
    write_results(out, {
        "what": "chatbot data check FILE on a synthetic TSV of N pairs shaped like the default "
                "corpus (bench/synthetic.py: its token counts and tokens, 1% made-up words), "
                "in a child process alone: wall seconds, CPU seconds (user + system), peak RSS "
                "(ru_maxrss of the child); the report it printed",
        "limit_mib": LIMIT_MIB,
        "runs": dict(sorted(runs.items(), key=lambda item: int(item[0]))),
    })


if __name__ == "__main__":
    main()
