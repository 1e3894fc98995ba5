"""Runs a command and writes its own wall seconds, CPU seconds and peak RSS as JSON.

    python -S bench/peak_rss.py REPORT.json COMMAND [ARG...]

The command inherits stdin, stdout and stderr; this script exits with its exit code.

Why not os.wait4 on the command from the benchmark itself: Linux keeps a process's peak RSS
across exec (fs/exec.c, exec_mmap: the peak of the memory it had before the exec is kept in
its signal->maxrss, which ru_maxrss reports), and a child of Python's subprocess starts in its
parent's memory (vfork). So a command started by a benchmark that once held 500 MiB reports at
least 500 MiB, whatever it uses itself. Measured here: `python -c pass` started with subprocess
from a process that had touched 500 MiB reports ru_maxrss 514 MiB; through this script, 13 MiB.
This script starts small (-S: no site packages, only the standard library) and forks the
command from itself, so the command's peak counts from this script's few MiB.
"""

import json
import os
import sys
import time


def main() -> None:
    if len(sys.argv) < 3:
        sys.exit("usage: python -S bench/peak_rss.py REPORT.json COMMAND [ARG...]")
    report, command = sys.argv[1], sys.argv[2:]
    started = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        try:
            os.execvp(command[0], command)
        except OSError as exc:
            print(f"peak_rss.py: cannot run {command[0]}: {exc}", file=sys.stderr, flush=True)
        os._exit(127)
    _, status, usage = os.wait4(pid, 0)
    seconds = time.perf_counter() - started
    code = os.waitstatus_to_exitcode(status)
    with open(report, "w") as f:
        json.dump({"exit_code": code, "seconds": round(seconds, 2),
                   "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 2),
                   "peak_rss_mib": round(usage.ru_maxrss / 1024, 1)}, f)  # KiB on Linux
    sys.exit(code if code >= 0 else 128 - code)  # killed by signal N: 128 + N, as shells say


if __name__ == "__main__":
    main()
