"""`chatbot report`: a report card of one or more runs, as one self-contained HTML page."""

from __future__ import annotations

import argparse

from chatbot.cli.common import cjk_note


def add_parsers(sub) -> None:
    """`chatbot report`."""
    report = sub.add_parser(
        "report", help="write a report card of one or more finished runs as one self-contained "
                       "HTML page: settings, curves, metrics, answer rates, sample replies, "
                       "attention and the embedding map; several runs side by side")
    report.add_argument("runs", nargs="+", metavar="DIR", help="run directories")
    report.add_argument("-o", "--out", default="report.html",
                        help="HTML file to write (default report.html)")
    report.set_defaults(func=cmd_report)


def cmd_report(args: argparse.Namespace) -> int:
    from chatbot.report import write_report

    with cjk_note():  # the attention picture and the embedding map
        out = write_report(args.runs, args.out)
    print(f"wrote {out}")
    return 0
