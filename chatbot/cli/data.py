"""`chatbot data`: import corpora as pairs or conversations, and check a data file."""

from __future__ import annotations

import argparse

from chatbot.cli.common import EXIT_USER_ERROR, bad_lines_option, setting_flag
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
    check.add_argument("files", nargs="+", metavar="FILE",
                       help="UTF-8 TSVs of prompt<TAB>reply lines, or chat JSONL conversations "
                            "(.jsonl), each plain or gzip-compressed (.gz); read as one corpus, "
                            "a line at a time")
    check.add_argument("--max-len", type=int, default=None,
                       help="tokens kept per side when training (default: the default preset's)")
    bad_lines_option(check, default="skip")
    check.set_defaults(func=cmd_check)
    add_prepare(data)


# The settings that shape prepared data, each with its `chatbot train` flag: the rest of a
# run's settings are given when it trains.
PREPARE_SETTINGS = ("max_len", "min_count", "val_fraction", "on_bad_lines", "seed",
                    "noise_copies", "tokenizer", "subword_vocab", "subword_model")


def add_prepare(data) -> None:
    """`chatbot data prepare FILE... --out DIR`."""
    from chatbot.config import train_flags
    from chatbot.training.prepare_corpus import MEMORY_CAP, SHARD_SIZE

    prepare = data.add_parser(
        "prepare", help="stream pairs (TSV, chat JSONL, gzip) into shards that 'chatbot train "
                        "--data DIR' reads, in bounded memory: for corpora larger than memory")
    prepare.add_argument("files", nargs="+", metavar="FILE",
                         help="TSV or chat JSONL files, plain or .gz")
    prepare.add_argument("--out", required=True, help="the directory to write")
    prepare.add_argument("--overwrite", action="store_true",
                         help="prepare again into a directory already prepared")
    prepare.add_argument("--shard-size", type=int, default=SHARD_SIZE,
                         help=f"examples per shard (default: {SHARD_SIZE:,})")
    prepare.add_argument("--memory-cap", type=int, default=MEMORY_CAP,
                         help="most prompts the bot knows by heart: the most frequent "
                              f"(default: {MEMORY_CAP:,})")
    for flag, _, name, kind, choices, text in train_flags():
        if name == "noise_copies":
            text, default = ("noisy copies of every training prompt written into the shards "
                             "(typing noise on the text: chatbot.data.noise)",
                             "0: a run draws them in the stream, on the token ids")
        else:
            default = "the default preset's"
        if name in PREPARE_SETTINGS:
            setting_flag(prepare, flag, name, kind, choices, f"{text} (default: {default})")
    prepare.set_defaults(func=cmd_prepare)


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
    from chatbot.data.summary import format_summary, summarize
    from chatbot.text.words import Tokenizer

    config = RunConfig()
    max_len = args.max_len or config.data.max_len
    summary = summarize(args.files, Tokenizer(config.text.lowercase), max_len, args.on_bad_lines)
    figures = summary.figures()
    figures["tokens_per_pair"] = summary.tokens_per_pair(config.text)
    print(format_summary(figures))
    return EXIT_USER_ERROR if figures["bad_lines"] else 0


def cmd_prepare(args: argparse.Namespace) -> int:
    import os
    import time

    from chatbot.config import RunConfig
    from chatbot.errors import ChatbotError

    for name in ("shard_size", "memory_cap"):
        if getattr(args, name) < 1:
            raise ChatbotError(f"--{name.replace('_', '-')} must be at least 1, received "
                               f"{getattr(args, name)}")
    config = RunConfig()
    config.train.noise_copies = 0  # the shards hold none unless asked: drawn in the stream
    for section in (config.text, config.data, config.train):
        for name in PREPARE_SETTINGS:
            if hasattr(section, name) and getattr(args, name, None) is not None:
                setattr(section, name, getattr(args, name))
    config = RunConfig.from_dict(config.to_dict(), source="chatbot data prepare")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from chatbot.training.from_shards import report
    from chatbot.training.prepare_corpus import prepare_corpus
    from chatbot.training.shards import read_manifest

    started = time.perf_counter()
    prepare_corpus(args.files, args.out, config, shard_size=args.shard_size,
                   memory_cap=args.memory_cap, overwrite=args.overwrite)
    manifest = read_manifest(args.out)
    for line in report(manifest).lines():
        print(line)
    shards = len(manifest.raw["shards"])
    print(f"wrote {shards} shards to {args.out} in {time.perf_counter() - started:.0f} s; train "
          f"on them: chatbot train --data {args.out}")
    return 0
