"""How long `chatbot report` takes, and how large the page it writes is (issue #29's target:
at most 5 s for the default run, a page of at most 2 MB):

    .venv/bin/python bench/report.py --model models/default -o bench/report.json

(`make bench-report`).

Each round runs the command as a user does, `chatbot report MODEL -o PAGE`, in a fresh process,
and times it from start to exit (wall clock); then one more fresh process times the parts of the
same work (imports, loading the bot, the replies, each picture, the HTML), to say where the time
goes, and whether TensorFlow was imported. Each round's CPU time (user and system) and the
machine's load average are recorded beside the wall clock, which varies with the load on a shared
machine.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness import ROOT, load_average, machine, write_results  # noqa: E402

ROUNDS = 5
TARGET_SECONDS, TARGET_BYTES = 5.0, 2 * 1024 * 1024
CHATBOT = Path(sys.executable).parent / "chatbot"

# Run in a fresh process: the parts of write_report (chatbot.report), timed one by one.
PARTS = """
import json, sys, time
start = time.perf_counter()
laps = {}
def lap(name):
    global start
    now = time.perf_counter(); laps[name] = round(now - start, 3); start = now
from pathlib import Path
from chatbot.decoding.bot import Bot
from chatbot.report import collect, render
lap("imports")
run, work = Path(sys.argv[1]), Path(sys.argv[2])
from threadpoolctl import threadpool_limits
threadpool_limits(1, user_api="blas")  # as write_report does
collect.check_finished(run)
bot = Bot.load(run); lap("load_bot")
known = collect.known_prompts(bot)
picked = collect.pick(list(known), collect.SAMPLE_PROMPTS)
samples, variants = collect.ask(bot, known, picked); lap("replies")
collect.best_probes(run, 1); lap("history")
attention = collect.attention(bot, collect.for_attention(bot, samples), work / "a.png")
lap("attention_picture")
curves = collect.curves([run], work / "c.png"); lap("curves_picture")
embedding = collect.embedding(run, work / "e.png"); lap("embedding_map")
card = collect.RunCard(run, collect.flatten(json.loads((run / "config.json").read_text())), {},
                       {}, {}, samples, variants, [], attention, embedding)
render.page([card], curves); lap("html")
laps["replies_asked"] = len(samples) + sum(map(len, variants.values())) - 1
laps["tensorflow_imported"] = "tensorflow" in sys.modules
laps["picture_bytes"] = {name: len(p.png or b"") for name, p in
                         (("attention", attention), ("curves", curves), ("embedding", embedding))}
print(json.dumps(laps))
"""


def time_command(model: str, page: Path) -> tuple[float, float]:
    """(wall-clock seconds, CPU seconds: user and system) of one `chatbot report`."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    result = subprocess.run([str(CHATBOT), "report", model, "-o", str(page)],
                            capture_output=True, text=True)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        sys.exit(f"chatbot report failed: {result.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return round(seconds, 3), round(cpu, 3)


def parts(model: str, work: Path) -> dict:
    result = subprocess.run([sys.executable, "-c", PARTS, model, str(work)], capture_output=True,
                            text=True, cwd=ROOT)
    if result.returncode != 0:
        sys.exit(f"timing the parts failed: {result.stderr}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="models/default", help="the run to report on")
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("-o", "--out", default="bench/report.json")
    args = parser.parse_args()
    load_start = load_average()
    with tempfile.TemporaryDirectory() as work:
        page = Path(work) / "report.html"
        rounds = [time_command(args.model, page) for _ in range(args.rounds)]
        seconds = [wall for wall, _ in rounds]
        size = page.stat().st_size
        broken_down = parts(args.model, Path(work))
    results = {
        "what": "chatbot report MODEL -o PAGE, a fresh process per round, wall clock",
        "model": args.model,
        "seconds": seconds,
        "median_seconds": round(statistics.median(seconds), 3),
        "cpu_seconds": [cpu for _, cpu in rounds],
        "page_bytes": size,
        "target": {"seconds": TARGET_SECONDS, "bytes": TARGET_BYTES,
                   "median_within": statistics.median(seconds) <= TARGET_SECONDS,
                   "page_within": size <= TARGET_BYTES},
        "parts_seconds_one_process": broken_down,
        "machine": machine(load_start),
    }
    write_results(args.out, results)


if __name__ == "__main__":
    main()
