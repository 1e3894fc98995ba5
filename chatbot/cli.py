"""`chatbot` command line: the only place that reads sys.argv and chooses exit codes.

Heavy modules (TensorFlow, matplotlib) are imported inside the command that needs them, so
`chatbot --help`, `chatbot data check` and `chatbot chat` start quickly.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from chatbot.config import MONITORS, OPTIMIZERS, PRESETS
from chatbot.corpora.chatterbot import FORMATS as CHATTERBOT_FORMATS
from chatbot.data.pairs import BAD_LINE_CHOICES
from chatbot.errors import ChatbotError
from chatbot.export.saved_model import FORMATS as EXPORT_FORMATS
from chatbot.models import ARCHS
from chatbot.text.tokenizer import SUBWORD_MODELS, TOKENIZERS
from chatbot.training.distribute import STRATEGIES

DEFAULT_MODEL = "models/default"
EXIT_USER_ERROR = 1
EXIT_INTERRUPTED = 130
MODEL_HELP = f"run directory (default {DEFAULT_MODEL})"


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
    _bad_lines_option(check, default="skip")
    check.set_defaults(func=cmd_check)

    train = sub.add_parser("train", help="train a model and write its run directory")
    train.add_argument("--data", help="TSV of prompt<TAB>reply pairs (with --resume: the "
                       "recorded one)")
    train.add_argument("--out", default=None, help=MODEL_HELP)
    train.add_argument("--preset", choices=PRESETS, default=None,
                       help="starting settings that the flags below change (default: default)")
    mode = train.add_mutually_exclusive_group()
    mode.add_argument("--overwrite", action="store_true", help="replace a run already in --out")
    mode.add_argument("--resume", metavar="DIR", default=None,
                      help="continue the interrupted run in DIR from its last finished epoch, "
                           "with its own settings (only --epochs, --strategy and --data may "
                           "change)")
    mode.add_argument("--if-needed", action="store_true",
                      help="train --out unless it is done: start a run if there is none, "
                           "resume it if it was interrupted, do nothing if it finished (what "
                           "'make train' runs)")
    mode.add_argument("--init-from", metavar="DIR", default=None,
                      help="fine-tune the model in DIR on --data, keeping its vocabulary and "
                           "model shape")
    for flag, _, name, kind, choices, text in TRAIN_FLAGS:
        train.add_argument(flag, dest=name, type=kind, choices=choices, default=None,
                           help=f"{text} (default: from the preset)")
    train.set_defaults(func=cmd_train)

    pretrain = sub.add_parser(
        "pretrain", help="train a decoder-only model as a language model on plain text, to "
                         "fine-tune on pairs with 'train --init-from'")
    pretrain.add_argument("--text", nargs="+", metavar="FILE",
                          help="UTF-8 text files; each non-blank line is a passage")
    pretrain.add_argument("--out", required=True, help="the run directory to write")
    pretrain.add_argument("--preset", choices=PRESETS, default=None,
                          help="starting settings that the flags below change (default: "
                               "transformer)")
    mode = pretrain.add_mutually_exclusive_group()
    mode.add_argument("--overwrite", action="store_true", help="replace a run already in --out")
    mode.add_argument("--resume", action="store_true",
                      help="continue the interrupted pretraining in --out")
    for flag, _, name, kind, choices, text in TRAIN_FLAGS:
        if name not in PAIRS_ONLY:
            pretrain.add_argument(flag, dest=name, type=kind, choices=choices, default=None,
                                  help=f"{text} (default: from the preset)")
    pretrain.set_defaults(func=cmd_pretrain)

    chat = sub.add_parser("chat", help="talk to a trained model in the terminal")
    chat.add_argument("--model", default=DEFAULT_MODEL, help=MODEL_HELP)
    _decode_options(chat)
    chat.set_defaults(func=cmd_chat)

    reply = sub.add_parser("reply", help="answer one prompt, or each line of stdin")
    reply.add_argument("--model", default=DEFAULT_MODEL, help=MODEL_HELP)
    reply.add_argument("text", nargs="*", help="the prompt; without it, one prompt per stdin line")
    reply.add_argument("--conversation", action="store_true",
                       help="read chat JSONL from stdin, one conversation per line, and answer "
                            "the last user turn of each (a context model reads the turns "
                            "before it)")
    _decode_options(reply)
    reply.set_defaults(func=cmd_reply)

    evaluate = sub.add_parser("eval", help="measure a model on pairs or conversations")
    evaluate.add_argument("--model", default=DEFAULT_MODEL, help=MODEL_HELP)
    evaluate.add_argument("--data", required=True,
                          help="TSV of prompt<TAB>reply pairs, or chat JSONL conversations "
                               "(a context model is then measured with and without context)")
    evaluate.add_argument("--variants", action="store_true",
                          help="also ask typing variants of each prompt (punctuation, case, "
                               "contractions, fillers, typos, Chinese punctuation and "
                               "particles) and report how often each kind still gets one of "
                               "its prompt's replies")
    evaluate.add_argument("-o", "--out", default=None,
                          help="JSON to write (default: metrics.json in the run directory)")
    _bad_lines_option(evaluate, default="error")
    _decode_options(evaluate)
    evaluate.set_defaults(func=cmd_eval)

    attention = sub.add_parser(
        "attention", help="heatmaps of where the model looked: each reply token over the prompt "
                          "(attention), every layer and head over the whole sequence (transformer)")
    attention.add_argument("--model", default=DEFAULT_MODEL,
                           help="an attention or transformer run directory")
    attention.add_argument("text", help="the prompt")
    attention.add_argument("-o", "--out", default="attention.png", help="PNG to write")
    _decode_options(attention)
    attention.set_defaults(func=cmd_attention)

    plot = sub.add_parser("plot", help="draw loss and accuracy curves of one or more runs")
    plot.add_argument("runs", nargs="+", help="run directories")
    plot.add_argument("-o", "--out", default="curves.png", help="PNG to write (default curves.png)")
    plot.set_defaults(func=cmd_plot)

    from chatbot.serving.limits import DEFAULT_LIMITS, LIMIT_FLAGS

    serve = sub.add_parser("serve", help="serve the model over HTTP as an OpenAI-compatible "
                                         "API (POST /v1/chat/completions)")
    serve.add_argument("--model", default=DEFAULT_MODEL, help=MODEL_HELP)
    serve.add_argument("--host", default="127.0.0.1",
                       help="address to listen on (default 127.0.0.1: this machine only; "
                            "0.0.0.0: every network interface)")
    serve.add_argument("--port", type=int, default=8000, help="port (default 8000; 0: any free)")
    serve.add_argument("--api-key", default=os.environ.get("CHATBOT_API_KEY"),
                       help="require 'Authorization: Bearer KEY' (default: $CHATBOT_API_KEY, "
                            "else no key; prefer the variable: a flag shows in `ps`)")
    serve.add_argument("--allowed-host", action="append", default=[], metavar="NAME",
                       help="a name this server answers to besides the loopback names and "
                            "--host (requests naming another Host get 421); repeatable")
    for flag, name, kind, text in LIMIT_FLAGS:
        serve.add_argument(flag, dest=name, type=kind, default=getattr(DEFAULT_LIMITS, name),
                           help=f"{text} (default %(default)s)")
    _decode_options(serve)
    serve.set_defaults(func=cmd_serve)

    exporter = sub.add_parser("export", help="write the model as a TensorFlow SavedModel that "
                                             "TensorFlow Serving can serve")
    exporter.add_argument("--model", default=DEFAULT_MODEL, help=MODEL_HELP)
    exporter.add_argument("--format", choices=EXPORT_FORMATS, default=EXPORT_FORMATS[0],
                          help="what to write (default %(default)s)")
    exporter.add_argument("-o", "--out", required=True,
                          help="directory to write; the SavedModel goes in its subdirectory 1/, "
                               "the numbered version TensorFlow Serving loads")
    exporter.add_argument("--overwrite", action="store_true",
                          help="replace an earlier export in --out")
    exporter.set_defaults(func=cmd_export)
    return parser


def _decode_options(parser: argparse.ArgumentParser) -> None:
    """A `--name` flag per decoding setting (chatbot.decoding.settings.SETTINGS), read as `/set`
    reads its value."""
    from chatbot.decoding.settings import SETTINGS

    group = parser.add_argument_group("decoding (default: greedy, as saved with the model)")
    for name, setting in SETTINGS.items():
        group.add_argument(setting.flag, dest=f"decode_{name}", default=None,
                           metavar=setting.metavar, help=setting.help)


def _load_bot(args: argparse.Namespace):
    from chatbot.decoding.bot import Bot
    from chatbot.decoding.settings import SETTINGS, in_order
    from chatbot.rundir import unfinished_warning

    bot = Bot.load(args.model)
    warning = unfinished_warning(args.model)  # the best model of a run that did not finish
    if warning:
        print(f"chatbot: warning: {warning}", file=sys.stderr)
    if bot.memory is None:
        print(f"chatbot: warning: {args.model} has no memory.json (the memory of its training "
              "pairs): replies come from the model alone; train the run again to add one",
              file=sys.stderr)
    given = [name for name in SETTINGS if getattr(args, f"decode_{name}") is not None]
    for name in in_order(given):  # (chatbot.decoding.settings.in_order says why the order matters)
        bot.set(name, getattr(args, f"decode_{name}"))
    return bot


def _bad_lines_option(parser: argparse.ArgumentParser, default: str | None) -> None:
    parser.add_argument("--on-bad-lines", choices=BAD_LINE_CHOICES, default=default,
                        help="stop at the first bad line, or skip bad lines and count them")


def cmd_import_chatterbot(args: argparse.Namespace) -> int:
    from chatbot.corpora.chatterbot import import_chatterbot

    report = import_chatterbot(args.lang, args.out, args.format)
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


# Flags of `chatbot train` that each set one setting of the preset:
# (flag, config section, setting, type, valid choices or None, help).
TRAIN_FLAGS = [
    ("--arch", "model", "arch", str, tuple(ARCHS), "architecture"),
    ("--epochs", "train", "epochs", int, None, "maximum epochs"),
    ("--batch-size", "train", "batch_size", int, None, "pairs per batch"),
    ("--learning-rate", "train", "learning_rate", float, None, "optimizer step size"),
    ("--optimizer", "train", "optimizer", str, OPTIMIZERS, "optimizer"),
    ("--monitor", "train", "monitor", str, MONITORS,
     "quantity for the best checkpoint and early stopping"),
    ("--patience", "train", "patience", int, None,
     "epochs without improvement before early stopping"),
    ("--max-minutes", "train", "max_minutes", float, None,
     "stop after the epoch that ends past this many minutes of training (0: no limit)"),
    ("--seed", "train", "seed", int, None, "random seed"),
    ("--noise-copies", "train", "noise_copies", int, None,
     "noisy copies of every training prompt (typing noise: punctuation, case, typos, words)"),
    ("--strategy", "train", "strategy", str, STRATEGIES,
     "devices to train on: this one, every GPU here (or 2 logical CPUs), or several workers "
     "described by TF_CONFIG"),
    ("--embedding-dim", "model", "embedding_dim", int, None,
     "embedding size (transformer: model width)"),
    ("--hidden-dim", "model", "hidden_dim", int, None,
     "LSTM units (transformer: feed-forward width)"),
    ("--num-layers", "model", "num_layers", int, None, "stacked LSTM layers (transformer: blocks)"),
    ("--num-heads", "model", "num_heads", int, None, "transformer: attention heads"),
    ("--max-positions", "model", "max_positions", int, None,
     "transformer: longest sequence (0: what the longest training sequence needs, "
     "2 * max-len + 2 for single turns)"),
    ("--dropout", "model", "dropout", float, None, "dropout rate"),
    ("--max-len", "data", "max_len", int, None, "tokens kept per side"),
    ("--context-turns", "data", "context_turns", int, None,
     "turns read before each reply: the prompt and up to N - 1 earlier turns of its "
     "conversation (chat JSONL data)"),
    ("--val-fraction", "data", "val_fraction", float, None, "validation share"),
    ("--min-count", "data", "min_count", int, None, "rarer tokens become <UNK>"),
    ("--on-bad-lines", "data", "on_bad_lines", str, BAD_LINE_CHOICES,
     "stop at the first bad line, or skip bad lines and count them"),
    ("--tokenizer", "text", "tokenizer", str, TOKENIZERS,
     "words and CJK characters, or subword pieces learned from the training text"),
    ("--subword-vocab", "text", "subword_vocab", int, None,
     "sentencepiece: most pieces, the 256 byte pieces included"),
    ("--subword-model", "text", "subword_model", str, SUBWORD_MODELS,
     "sentencepiece: how pieces are learned"),
]
# Settings of pair data that plain text (`chatbot pretrain`) does not have.
PAIRS_ONLY = ("noise_copies", "on_bad_lines")
# What a resumed run may change: the rest is the run's own, recorded in its config.json.
RESUME_MAY_CHANGE = ("epochs", "strategy", "max_minutes")
# What fine-tuning cannot change: they shape the vocabulary or the model it keeps.
INIT_KEEPS = ("arch", "embedding_dim", "hidden_dim", "num_layers", "num_heads", "max_positions",
              "min_count", "tokenizer", "subword_vocab", "subword_model")


def cmd_train(args: argparse.Namespace) -> int:
    from chatbot import rundir

    out = args.resume or args.out or DEFAULT_MODEL
    if args.resume and args.out and args.out != args.resume:
        raise ChatbotError(f"--resume {args.resume} names the run to continue; --out "
                           f"{args.out} cannot apply too (drop --out)")
    resume, overwrite = bool(args.resume), args.overwrite
    if args.if_needed:
        needed = _if_needed(args, out)
        if needed is None:
            return 0
        resume, overwrite = needed
    if resume:
        rundir.check_resumable(out)
        _refuse_changes(args, out, "is resumed with its own settings", RESUME_MAY_CHANGE)
    elif args.init_from:
        given = [flag for flag, _, name, *_ in TRAIN_FLAGS
                 if name in INIT_KEEPS and getattr(args, name, None) is not None]
        if given:
            raise ChatbotError(
                f"--init-from keeps the vocabulary and the model shape of {args.init_from}, so "
                f"{', '.join(given)} cannot apply; drop them (--max-len, --dropout, "
                "--val-fraction, --on-bad-lines and the training flags do apply)")
    if not resume and not args.data:
        raise ChatbotError("--data FILE is required (unless you --resume a run)")

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's C++ start-up chatter out
    from chatbot.decoding.probes import ProbeReplies
    from chatbot.evaluate import evaluate_training
    from chatbot.training.train import train

    options = {"resume": True, "epochs": args.epochs, "strategy": args.strategy} if resume \
        else {"config": _train_config(args), "overwrite": overwrite, "init_from": args.init_from}
    try:
        evaluate_training(train(args.data, out, callbacks=[ProbeReplies.of], **options))
    except KeyboardInterrupt:
        again = " (or the same command again)" if args.if_needed else ""
        print(f"\nchatbot: training interrupted; continue with 'chatbot train --resume {out}'"
              f"{again}", file=sys.stderr)
        return EXIT_INTERRUPTED
    return 0


def cmd_pretrain(args: argparse.Namespace) -> int:
    from chatbot import rundir

    if args.resume:
        rundir.check_resumable(args.out)
        args.data = None
        _refuse_changes(args, args.out, "is resumed with its own settings", RESUME_MAY_CHANGE)
    elif not args.text:
        raise ChatbotError("--text FILE is required (unless you --resume a run)")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from chatbot.decoding.probes import ProbeReplies
    from chatbot.training.train import train

    if args.resume:
        options = {"resume": True, "epochs": args.epochs, "strategy": args.strategy}
    else:
        args.preset = args.preset or "transformer"
        config = _train_config(args)
        config.data.text = list(args.text)
        config.train.noise_copies = 0  # typing noise is for prompts; text has none
        options = {"config": config, "overwrite": args.overwrite}
    try:
        train(None, args.out, callbacks=[ProbeReplies.of], **options)
    except KeyboardInterrupt:
        print(f"\nchatbot: pretraining interrupted; continue with 'chatbot pretrain --resume "
              f"--out {args.out}'", file=sys.stderr)
        return EXIT_INTERRUPTED
    print(f"fine-tune it on pairs: chatbot train --init-from {args.out} --data PAIRS.tsv "
          "--out DIR")
    return 0


def _if_needed(args: argparse.Namespace, out: str) -> tuple[bool, bool] | None:
    """--if-needed: (resume, overwrite) for the run in `out`, or None if it has finished."""
    from chatbot import rundir

    state = rundir.run_state(out)
    if state.state == rundir.FINISHED:
        _refuse_changes(args, out, "has finished training", ("strategy",), data_too=True)
        done = state.finished  # empty for runs older than status.json
        counts = (f" ({done['epochs']} epochs, best epoch {done['best_epoch']})"
                  if "epochs" in done and "best_epoch" in done else "")
        print(f"{out}: training finished{counts}; nothing to do. To train it again from the "
              "start: --overwrite ('make retrain')")
        return None
    resume = state.state == rundir.TRAINING and state.resumable
    # A run killed before its settings were written has no epoch to lose: start it again.
    return resume, state.state == rundir.TRAINING and not resume


def _train_config(args: argparse.Namespace):
    """The preset (default: "default") with the settings of the flags given."""
    from chatbot.config import preset

    config = preset(args.preset or "default")
    for _, section, name, *_ in TRAIN_FLAGS:
        value = getattr(args, name, None)
        if value is not None:
            setattr(getattr(config, section), name, value)
    config.decode.max_reply_len = config.data.max_len
    return config


def _refuse_changes(args: argparse.Namespace, out: str, why: str, may_change: Sequence[str],
                    data_too: bool = False) -> None:
    """Refuses, naming them, the flags (and --preset settings) that differ from the run's own
    settings in `out`, which they could not change: a flag that repeats a setting is fine."""
    from pathlib import Path

    from chatbot.config import RunConfig, preset
    from chatbot.rundir import CONFIG

    recorded = RunConfig.load(Path(out) / CONFIG)
    changes = []
    if data_too and args.data and Path(args.data).resolve() != Path(
            recorded.data.path).resolve():
        changes.append(f"--data {args.data} (it was trained on {recorded.data.path})")
    flagged = set()
    for flag, section, name, *_ in TRAIN_FLAGS:
        value, has = getattr(args, name, None), getattr(getattr(recorded, section), name)
        if value is not None and name not in may_change:
            flagged.add(name)
            if value != has:
                changes.append(f"{flag} {value} (the run has {has})")
    if args.preset is not None:
        wanted = preset(args.preset)
        for section in ("text", "data", "model", "train"):
            for name, value in vars(getattr(wanted, section)).items():
                has = getattr(getattr(recorded, section), name)
                if name in (*may_change, *flagged, "path", "vocab_size") or value == has:
                    continue
                changes.append(f"--preset {args.preset} ({section}.{name} {value!r}; the run "
                               f"has {has!r})")
    if changes:
        raise ChatbotError(
            f"{out} {why}, which these flags would change: {'; '.join(changes)}. Drop them, "
            f"or start a new run with --overwrite (or another --out)")


def cmd_chat(args: argparse.Namespace) -> int:
    from chatbot.chat import run_repl

    run_repl(_load_bot(args))
    return 0


def cmd_reply(args: argparse.Namespace) -> int:
    from chatbot.chat import corrections, printable

    bot = _load_bot(args)
    if args.conversation and args.text:
        raise ChatbotError("--conversation reads conversations from stdin; give no prompt "
                           "text with it")
    if args.text:
        reply = bot.reply(" ".join(args.text))
        if reply.corrected:
            print(f"(read {corrections(reply)})", file=sys.stderr)
        if reply.unknown:
            print(f"(not in the vocabulary: {', '.join(map(printable, reply.unknown))})",
                  file=sys.stderr)
        print(reply.text)
        if bot.decode.nbest > 1:
            for rank, c in enumerate(reply.candidates[: bot.decode.nbest], start=1):
                print(f"{rank}. {c.text}  (log-prob {c.logprob:.2f}, score {c.score:.2f})",
                      file=sys.stderr)
        return 0
    # One reply line per input line, always, so scripts can zip inputs with outputs.
    status = 0
    lines = sys.stdin.buffer.read().split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    texts = []
    for number, raw in enumerate(lines, start=1):
        try:
            texts.append(raw.removesuffix(b"\r").decode("utf-8"))
        except UnicodeDecodeError:
            print(f"chatbot: stdin:{number}: not valid UTF-8; replied with an empty line",
                  file=sys.stderr)
            texts.append("")
            status = EXIT_USER_ERROR
    if args.conversation:
        texts, status = _conversations(bot, texts, status)
    for start in range(0, len(texts), 256):
        for reply in bot.reply_batch(texts[start: start + 256]):
            sys.stdout.write(reply.text + "\n")
        sys.stdout.flush()
    return status


def _conversations(bot, lines: list[str], status: int) -> tuple[list, int]:
    """Each stdin line of `chatbot reply --conversation` as a conversation to answer; a line
    that is not one is named on stderr and answered with an empty line."""
    import json

    from chatbot.data.dialogue import parse_messages

    out = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            out.append("")
            continue
        try:
            messages = parse_messages(json.loads(line))
            if isinstance(messages, str):
                raise ChatbotError(messages)
            bot.turns(messages)  # the last turn must be the user's
            out.append(messages)
        except (json.JSONDecodeError, ChatbotError) as exc:
            reason = f"bad JSON ({exc.msg})" if isinstance(exc, json.JSONDecodeError) else exc
            print(f"chatbot: stdin:{number}: {reason}; replied with an empty line",
                  file=sys.stderr)
            out.append("")
            status = EXIT_USER_ERROR
    return out, status


def cmd_eval(args: argparse.Namespace) -> int:
    from pathlib import Path

    from chatbot.data.pairs import read_pairs
    from chatbot.evaluate import (
        context_comparison,
        evaluate,
        format_metrics,
        variant_answer_rates,
    )
    from chatbot.rundir import update_metrics, write_json

    bot = _load_bot(args)
    pairs = read_pairs(args.data, args.on_bad_lines).pairs
    recorded = bot.config.data.path
    is_training = bool(recorded) and Path(recorded).resolve() == Path(args.data).resolve()
    metrics = evaluate(bot, pairs, training_pairs=is_training)
    if bot.config.data.context_turns > 1 and any(p.context for p in pairs):
        metrics["context"] = context_comparison(bot, pairs)
    if args.variants:
        metrics["variants"] = variant_answer_rates(bot, pairs)
    print(format_metrics(metrics))
    if args.out:
        path = Path(args.out)
        write_json(path, metrics)
    else:  # keep what training wrote; add this evaluation under "eval", keyed by data file
        path = update_metrics(args.model, {"eval": {str(args.data): metrics}})
    print(f"wrote {path}")
    return 0


def cmd_attention(args: argparse.Namespace) -> int:
    from chatbot.plot import cjk_font, plot_attention_map
    from chatbot.text.words import is_cjk

    bot = _load_bot(args)
    reply = bot.reply(args.text)
    amap = bot.attention(args.text, reply.tokens)
    path = plot_attention_map(amap, args.out)
    print(f"reply: {reply.text}\nwrote {path}")
    if cjk_font() is None and any(is_cjk(t) for t in amap.prompt + amap.reply):
        print("note: no CJK font installed, so Chinese labels show as boxes; install one "
              "(e.g. Debian/Ubuntu: apt install fonts-wqy-microhei)", file=sys.stderr)
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    from chatbot.plot import plot_runs

    path = plot_runs(args.runs, args.out)
    print(f"wrote {path}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from chatbot.serving.limits import LIMIT_FLAGS, Limits
    from chatbot.serving.server import serve

    limits = Limits(**{name: getattr(args, name) for _, name, *_ in LIMIT_FLAGS})
    key = args.api_key
    if key is not None and not key.strip():
        raise ChatbotError("the API key is empty (--api-key or $CHATBOT_API_KEY); give a key, "
                           "or unset it to serve without one")
    serve(_load_bot(args), args.model, args.host, args.port, key, limits, args.allowed_host)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from pathlib import Path

    from chatbot.export.saved_model import export

    exported = export(args.model, args.out, args.format, args.overwrite)
    print(f"wrote {exported.path} ({exported.size / 1e6:.1f} MB, {exported.seconds:.1f} s); "
          f"signatures: {', '.join(exported.signatures)}")
    for note in exported.notes:
        print(f"note: {note}")
    print("serve it with TensorFlow Serving (see the README):\n  docker run -p 8501:8501 "
          f"--mount type=bind,source={Path(args.out).resolve()},target=/models/chatbot "
          "-e MODEL_NAME=chatbot -t tensorflow/serving")
    return 0


if __name__ == "__main__":
    sys.exit(main())
