"""How fast the corpus importers run, and how much memory they hold, on synthetic corpora of
the real ones' sizes:

    .venv/bin/python bench/importers.py -o bench/importers.json     (make bench-importers)

- Cornell-sized: 300,000 movie lines in about 83,000 conversations (the real corpus has 304,713
  and 83,097), latin-1, with the real files' fields; about 60 characters of text per line.
- DailyDialog-sized: 13,118 dialogues of 2 to 20 turns, one a line, turns ended by __eou__.
- Turns text: the same dialogues, one turn a line, a blank line between them.

Each import runs alone in a fresh process (bench/harness.py), three times; the wall clock of
the library call (chatbot.corpora.importers) and the process's peak resident set size are kept.
Whether the Cornell import streams is measured with tracemalloc, in separate runs (it slows
Python down): the peak of the whole import against the peak of building the {line id: text}
dict alone, which the import must hold, and against reading every conversation into a list
before writing, which it must not do.

Everything is generated in a temporary folder and deleted afterwards; nothing is downloaded.
"""

from __future__ import annotations

import argparse
import random
import statistics
import string
import sys
import tempfile
import time
import tracemalloc
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import load_average, machine, rss_mib, spawn, write_results  # noqa: E402

from chatbot.corpora import importers  # noqa: E402
from chatbot.corpora.chatterbot import as_messages  # noqa: E402

CORNELL_LINES = 300_000
CORNELL_CONVERSATIONS = 83_000  # about: conversation lengths are drawn, 2 + geometric
DAILYDIALOG_DIALOGUES = 13_118
REPEATS = 3  # timed runs of each import, each in a fresh process
SEED = 0
MIB = 2**20


# --- the synthetic corpora --------------------------------------------------------------------

def _vocabulary(rng: random.Random, size: int = 5000) -> list[str]:
    """Pseudo-words of 1 to 9 letters, a few with latin-1 letters, and punctuation."""
    letters = string.ascii_lowercase * 4 + "éèàçô"
    words = ["".join(rng.choices(letters, k=rng.randint(1, 9))) for _ in range(size)]
    return words + [",", ".", "?", "!", "--"]


def _sentence(rng: random.Random, words: list[str], low: int, high: int) -> str:
    return " ".join(rng.choices(words, k=rng.randint(low, high))).capitalize()


def write_cornell(folder: Path, seed: int = SEED) -> dict[str, Any]:
    """movie_lines.txt and movie_conversations.txt as published (latin-1, ' +++$+++ ')."""
    rng = random.Random(seed)
    words = _vocabulary(rng)
    mean_extra = CORNELL_LINES / CORNELL_CONVERSATIONS - 2  # turns beyond the first 2
    p = 1 / (1 + mean_extra)  # of the geometric distribution of those extra turns
    lengths, total = [], 0
    while total < CORNELL_LINES:
        length = 2
        while rng.random() > p:
            length += 1
        length = min(length, CORNELL_LINES - total)
        lengths.append(length)
        total += length
    if lengths[-1] < 2:  # the remainder: one line, given to the conversation before it
        lengths[-2] += lengths.pop()
    folder.mkdir(parents=True, exist_ok=True)
    sep = " +++$+++ "
    with open(folder / importers.CORNELL_LINES, "w", encoding="latin-1", newline="\n") as f:
        for i in range(CORNELL_LINES):
            f.write(f"L{i}{sep}u{i % 9000}{sep}m{i % 617}{sep}NAME{sep}"
                    f"{_sentence(rng, words, 1, 19)}\n")
    with open(folder / importers.CORNELL_CONVERSATIONS, "w", encoding="latin-1",
              newline="\n") as f:
        start = 0
        for length in lengths:
            ids = ", ".join(f"'L{i}'" for i in range(start, start + length))
            f.write(f"u0{sep}u1{sep}m0{sep}[{ids}]\n")
            start += length
    return {"lines": CORNELL_LINES, "conversations": len(lengths),
            "bytes": sum(p.stat().st_size for p in folder.iterdir())}


def write_dailydialog(path: Path, turns_path: Path, seed: int = SEED) -> dict[str, Any]:
    """dialogues_text.txt (one dialogue a line, ' __eou__ ' after each turn), and the same
    dialogues as a turns text."""
    rng = random.Random(seed + 1)
    words = _vocabulary(rng)
    turns_total = 0
    with open(path, "w", encoding="utf-8", newline="\n") as daily, \
            open(turns_path, "w", encoding="utf-8", newline="\n") as text:
        for _ in range(DAILYDIALOG_DIALOGUES):
            turns = [_sentence(rng, words, 2, 24) + " ." for _ in range(rng.randint(2, 14))]
            turns_total += len(turns)
            daily.write("".join(f"{turn} __eou__ " for turn in turns).rstrip() + "\n")
            text.write("\n".join(turns) + "\n\n")
    return {"dialogues": DAILYDIALOG_DIALOGUES, "turns": turns_total,
            "bytes": path.stat().st_size, "turns_text_bytes": turns_path.stat().st_size}


# --- the jobs, each alone in a fresh process --------------------------------------------------

@dataclass(frozen=True)
class ImportJob:
    """One import: `importer` (a function of chatbot.corpora.importers) from `source` to `out`,
    timed by the wall clock; or, with `trace`, the tracemalloc peak of `mode`: "import" (the whole
    import), "lines" (the Cornell line dict alone) or "list" (the line dict and a list of every
    conversation, as an import that did not stream would hold)."""

    importer: str
    source: str
    out: str
    trace: bool = False
    mode: str = "import"
    name: str = "import"

    def run(self) -> dict[str, Any]:
        before = rss_mib()["current"]
        if self.trace:
            tracemalloc.start()
        started = time.perf_counter()
        report = self._work()
        seconds = time.perf_counter() - started
        figures: dict[str, Any] = {"seconds": round(seconds, 2),
                                   "rss_start_mib": before, "rss_peak_mib": rss_mib()["peak"]}
        if self.trace:
            figures["traced_peak_mib"] = round(tracemalloc.get_traced_memory()[1] / MIB, 1)
            tracemalloc.stop()
        if report is not None:
            figures.update(conversations=report.conversations, turns=report.turns,
                           bad_lines=report.bad_lines, skipped=report.skipped, cut=report.cut)
        return figures

    def _work(self) -> importers.ConversationReport | None:
        if self.mode == "import":
            return getattr(importers, self.importer)(self.source, self.out)
        folder = Path(self.source)
        report = importers.ConversationReport(self.source)
        lines = importers.cornell_lines(folder / importers.CORNELL_LINES, report)
        if self.mode == "list":  # every turn of the synthetic corpus is usable: no cuts
            conversations = [as_messages(turns) for _, turns in importers.cornell_conversations(
                folder / importers.CORNELL_CONVERSATIONS, lines, report)]
            assert conversations  # all of them held at once: the peak counts them
        return None


# --- the parent -------------------------------------------------------------------------------

def timed(job: ImportJob) -> dict[str, Any]:
    """The job run REPEATS times: the figures of its fastest run, with every run's seconds."""
    runs = [spawn(job) for _ in range(REPEATS)]
    best = min(runs, key=lambda run: run["seconds"])
    return {**best, "seconds_runs": [run["seconds"] for run in runs],
            "seconds_median": statistics.median(run["seconds"] for run in runs)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-o", "--out", default="bench/importers.json")
    args = parser.parse_args()
    from importers import ImportJob as Job  # this module by name, so the worker can import it

    load_start = load_average()
    with tempfile.TemporaryDirectory(prefix="bench-importers-") as work:
        work_dir = Path(work)
        cornell_dir, out = work_dir / "cornell", work_dir / "out.jsonl"
        print("generating the corpora ...", file=sys.stderr, flush=True)
        cornell_input = write_cornell(cornell_dir)
        daily_path, turns_path = work_dir / "dialogues_text.txt", work_dir / "turns.txt"
        daily_input = write_dailydialog(daily_path, turns_path)

        cornell = timed(Job("import_cornell", str(cornell_dir), str(out), name="cornell"))
        cornell_output = out.stat().st_size
        traced = {mode: spawn(Job("import_cornell", str(cornell_dir), str(out), trace=True,
                                  mode=mode, name=f"cornell traced {mode}"))
                  for mode in ("lines", "import", "list")}
        daily = timed(Job("import_dailydialog", str(daily_path), str(out), name="dailydialog"))
        turns = timed(Job("import_turns", str(turns_path), str(out), name="turns"))

    peak = {mode: figures["traced_peak_mib"] for mode, figures in traced.items()}
    results = {
        "what": "chatbot.corpora.importers on synthetic corpora of the real ones' sizes: "
                "wall-clock seconds of the library call (the fastest of 3 fresh processes, and "
                "each run's) and the process's peak RSS; for Cornell, the tracemalloc peak of the "
                "import against that of its {line id: text} dict alone and of also holding every "
                "conversation in a list",
        "cornell": {
            "input": {**cornell_input, "mib": round(cornell_input["bytes"] / MIB, 1)},
            "output_mib": round(cornell_output / MIB, 1),
            **cornell,
            "rss_growth_mib": round(cornell["rss_peak_mib"] - cornell["rss_start_mib"], 1),
            "traced_peak_mib": peak,
            "traced_peak_import_over_lines_dict": round(peak["import"] / peak["lines"], 2),
            "traced_peak_list_over_lines_dict": round(peak["list"] / peak["lines"], 2),
        },
        "dailydialog": {"input": {**daily_input, "mib": round(daily_input["bytes"] / MIB, 1)},
                        **daily},
        "turns_text": {"input_mib": round(daily_input["turns_text_bytes"] / MIB, 1), **turns},
        "machine": machine(load_start),
    }
    write_results(args.out, results)


if __name__ == "__main__":
    main()
