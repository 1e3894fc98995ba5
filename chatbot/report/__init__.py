"""A report card of one or more finished runs, as one self-contained HTML page.

    from chatbot.report import write_report
    write_report(["models/default"], "report.html")

The page (chatbot.report.render) shows each run's settings, its training curves, the metrics
training measured, its answer rates and typing variants per kind, sample replies with their
confidence, an attention picture and the embedding map; several runs sit side by side. What it
shows is gathered by chatbot.report.collect: the run directory's files and the bot's own
replies. Like `chatbot chat`, it loads the bot in NumPy: no TensorFlow.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

from threadpoolctl import threadpool_limits

from chatbot.errors import ChatbotError
from chatbot.report.collect import check_finished, curves, run_card
from chatbot.report.render import page
from chatbot.rundir import atomic_write_text


def write_report(run_dirs: Sequence[str | Path], out: str | Path) -> Path:
    """Writes the report card of `run_dirs` to `out` (atomically); returns its path. A run
    directory that is missing or has not finished training is refused by name, before anything
    is drawn."""
    if not run_dirs:
        raise ChatbotError("no run directories to report on; name at least one, e.g. "
                           "models/default")
    runs = [check_finished(run_dir) for run_dir in run_dirs]
    # One BLAS thread, as `chatbot serve` decodes: the replies' small products gain nothing
    # from a pool, which on a busy 2-core machine made them take several times as long.
    with threadpool_limits(1, user_api="blas"), \
            tempfile.TemporaryDirectory(prefix="chatbot-report-") as work:
        work = Path(work)
        cards = []
        for index, run_dir in enumerate(runs):
            (work / str(index)).mkdir()
            cards.append(run_card(run_dir, work / str(index)))
        text = page(cards, curves(runs, work / "curves.png"))
    out = Path(out)
    atomic_write_text(out, text)
    return out
