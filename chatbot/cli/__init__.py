"""`chatbot` command line: the only place that reads sys.argv and chooses exit codes.

One module per group of commands, each adding its parsers (`add_parsers`) and running them
(`cmd_*`): data, training, talk (chat, reply, eval, attention, plot), report, embeddings,
serving (serve, export).
Heavy modules (TensorFlow, matplotlib) are imported inside the command that needs them, so
`chatbot --help`, `chatbot data check` and `chatbot chat` start quickly.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from chatbot.cli import data, embeddings, report, serving, talk, training
from chatbot.cli.common import EXIT_INTERRUPTED, EXIT_USER_ERROR
from chatbot.errors import ChatbotError


def main(argv: Sequence[str] | None = None) -> int:
    for stream in (sys.stdout, sys.stderr):  # a console that cannot show 你好 gets \u4f60\u597d
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args) or 0
    except ChatbotError as exc:
        print(f"chatbot: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("\nchatbot: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # e.g. `chatbot reply < prompts.txt | head`
        sys.stderr.close()
        return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="chatbot",
        description="Train a seq2seq chatbot on prompt<TAB>reply pairs and talk to it.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in (data, training, talk, report, embeddings, serving):
        group.add_parsers(sub)
    return parser
