"""`chatbot data`: import corpora as pairs or conversations, and check a data file."""

from __future__ import annotations

import argparse

from chatbot.cli.common import EXIT_USER_ERROR, bad_lines_option
from chatbot.corpora.chatterbot import FORMATS as CHATTERBOT_FORMATS


def add_parsers(sub) -> None:
    """`chatbot data import-chatterbot`, the importers of downloaded corpora, `check`."""
    data = sub.add_parser("data", help="import and check training data").add_subparsers(
        dest="data_command", required=True, metavar="DATA_COMMAND")
    imp = data.add_parser("import-chatterbot",
                          help="convert the installed chatterbot-corpus YAML to a TSV of pairs "
                               "or chat JSONL conversations")
    imp.add_argument("--lang", nargs="+", default=["english", "chinese"], metavar="LANG",
                     help="corpus languages (default: english chinese)")
    imp.add_argument("-o", "--out", default="data/chatterbot.tsv",
                     help="file to write (default: data/chatterbot.tsv)")
    imp.add_argument("--format", choices=CHATTERBOT_FORMATS, default=None,
                     help="prompt<TAB>reply pairs, or conversations with every turn (default: "
                          "jsonl if --out ends in .jsonl or .ndjson, else tsv)")
    imp.add_argument("--add", nargs="+", default=[], metavar="FILE",
                     help="pairs of your own (TSV or chat JSONL) to write after the corpus's, "
                          "such as corpus/about.tsv")
    imp.set_defaults(func=cmd_import_chatterbot)
    for command, function, text, metavar, source, default in IMPORTERS:
        importer = data.add_parser(command, help=text)
        importer.add_argument("source", metavar=metavar, help=source)
        importer.add_argument("-o", "--out", required=default is None, default=default,
                              help="the .jsonl file to write" +
                                   (f" (default: {default})" if default else ""))
        importer.set_defaults(func=cmd_import_conversations, importer=function)
    check = data.add_parser("check", help="report pairs, bad lines, lengths and vocabulary")
    check.add_argument("file", help="a UTF-8 TSV of prompt<TAB>reply lines, or chat JSONL "
                                    "conversations (.jsonl)")
    check.add_argument("--max-len", type=int, default=None,
                       help="tokens kept per side when training (default: the default preset's)")
    bad_lines_option(check, default="skip")
    check.set_defaults(func=cmd_check)


def cmd_import_chatterbot(args: argparse.Namespace) -> int:
    from chatbot.corpora.chatterbot import import_chatterbot

    report = import_chatterbot(args.lang, args.out, args.format, args.add)
    print(report.format())
    written = (f"{report.rows} pairs" if not report.conversations else
               f"{report.conversations} conversations, {report.turns} turns")
    print(f"wrote {written} ({', '.join(args.lang)}) to {args.out}")
    return 0


# The importers of corpora that users download (chatbot.corpora.importers), all writing chat JSONL:
# (command, function, help, source metavar, source help, default --out or None: required).
IMPORTERS = [
    ("import-cornell", "import_cornell",
     "convert the Cornell Movie-Dialogs corpus (downloaded yourself) to chat JSONL",
     "DIR", "the folder holding movie_lines.txt and movie_conversations.txt",
     "data/cornell.jsonl"),
    ("import-dailydialog", "import_dailydialog",
     "convert DailyDialog (downloaded yourself) to chat JSONL",
     "FILE", "dialogues_text.txt, or the folder holding it", "data/dailydialog.jsonl"),
    ("import-turns", "import_turns",
     "convert a text of conversations, one turn a line, to chat JSONL",
     "FILE", "UTF-8 text: one turn a line, a blank line between conversations", None),
]


def cmd_import_conversations(args: argparse.Namespace) -> int:
    from chatbot.corpora import importers

    report = getattr(importers, args.importer)(args.source, args.out)
    print(report.format())
    print(f"wrote {report.written()} to {args.out}")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from chatbot.config import RunConfig
    from chatbot.data.pairs import format_summary, read_pairs, summarize, tokens_per_pair
    from chatbot.text.words import Tokenizer

    config = RunConfig()
    report = read_pairs(args.file, args.on_bad_lines)
    max_len = args.max_len or config.data.max_len
    summary = summarize(report, Tokenizer(config.text.lowercase), max_len)
    summary["tokens_per_pair"] = tokens_per_pair(report.pairs, config.text)
    print(format_summary(summary, report.bad_lines))
    return EXIT_USER_ERROR if report.bad_lines else 0
