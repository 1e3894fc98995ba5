"""`chatbot` command line: the only place that reads sys.argv and chooses exit codes.

Heavy modules (TensorFlow, matplotlib) are imported inside the command that needs them, so
`chatbot --help`, `chatbot data check` and `chatbot chat` start quickly.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from chatbot.errors import ChatbotError

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

    data = sub.add_parser("data", help="import and check TSV data").add_subparsers(
        dest="data_command", required=True, metavar="DATA_COMMAND")
    imp = data.add_parser("import-chatterbot",
                          help="convert the installed chatterbot-corpus YAML to a TSV")
    imp.add_argument("--lang", nargs="+", default=["english", "chinese"], metavar="LANG",
                     help="corpus languages (default: english chinese)")
    imp.add_argument("-o", "--out", default="data/chatterbot.tsv", help="TSV to write")
    imp.set_defaults(func=cmd_import_chatterbot)
    check = data.add_parser("check", help="report pairs, bad lines, lengths and vocabulary")
    check.add_argument("file", help="a UTF-8 TSV of prompt<TAB>reply lines")
    check.add_argument("--max-len", type=int, default=None,
                       help="tokens kept per side when training (default: the default preset's)")
    _bad_lines_option(check, default="skip")
    check.set_defaults(func=cmd_check)

    train = sub.add_parser("train", help="train a model and write its run directory")
    train.add_argument("--data", help="TSV of prompt<TAB>reply pairs (with --resume: the "
                       "recorded one)")
    train.add_argument("--out", default=DEFAULT_MODEL, help=MODEL_HELP)
    train.add_argument("--preset", default="default", help="default, article or tiny")
    train.add_argument("--arch", default=None, help="lstm, seq2seq or attention (default: lstm)")
    train.add_argument("--overwrite", action="store_true", help="replace a model already in --out")
    train.add_argument("--resume", metavar="DIR", default=None,
                       help="continue the interrupted run in DIR from its last finished epoch")
    train.add_argument("--init-from", metavar="DIR", default=None,
                       help="fine-tune the model in DIR on --data, keeping its vocabulary")
    train.add_argument("--strategy", choices=("default", "mirrored", "multiworker"), default=None,
                       help="devices to train on: this one, every GPU here (or 2 logical CPUs), "
                            "or several workers described by TF_CONFIG")
    for flag, kind, text in [
        ("--epochs", int, "maximum epochs"), ("--batch-size", int, "pairs per batch"),
        ("--learning-rate", float, "optimizer step size"),
        ("--optimizer", str, "adam or rmsprop"),
        ("--monitor", str, "loss, val_loss, masked_accuracy or val_masked_accuracy"),
        ("--patience", int, "epochs without improvement before early stopping"),
        ("--embedding-dim", int, "embedding size"), ("--hidden-dim", int, "LSTM units"),
        ("--num-layers", int, "stacked LSTM layers"), ("--dropout", float, "dropout rate"),
        ("--max-len", int, "tokens kept per side"), ("--val-fraction", float, "validation share"),
        ("--min-count", int, "rarer tokens become <UNK>"), ("--seed", int, "random seed"),
    ]:
        train.add_argument(flag, type=kind, default=None,
                           help=f"{text} (default: from the preset)")
    _bad_lines_option(train, default=None)
    train.set_defaults(func=cmd_train)

    chat = sub.add_parser("chat", help="talk to a trained model in the terminal")
    chat.add_argument("--model", default=DEFAULT_MODEL, help=MODEL_HELP)
    _decode_options(chat)
    chat.set_defaults(func=cmd_chat)

    reply = sub.add_parser("reply", help="answer one prompt, or each line of stdin")
    reply.add_argument("--model", default=DEFAULT_MODEL, help=MODEL_HELP)
    reply.add_argument("text", nargs="*", help="the prompt; without it, one prompt per stdin line")
    _decode_options(reply)
    reply.set_defaults(func=cmd_reply)

    evaluate = sub.add_parser("eval", help="measure a model on a TSV of pairs")
    evaluate.add_argument("--model", default=DEFAULT_MODEL, help=MODEL_HELP)
    evaluate.add_argument("--data", required=True, help="TSV of prompt<TAB>reply pairs")
    evaluate.add_argument("-o", "--out", default=None,
                          help="JSON to write (default: metrics.json in the run directory)")
    _bad_lines_option(evaluate, default="error")
    _decode_options(evaluate)
    evaluate.set_defaults(func=cmd_eval)

    attention = sub.add_parser("attention", help="heatmap of where each reply token looked")
    attention.add_argument("--model", default=DEFAULT_MODEL, help="an attention run directory")
    attention.add_argument("text", help="the prompt")
    attention.add_argument("-o", "--out", default="attention.png", help="PNG to write")
    _decode_options(attention)
    attention.set_defaults(func=cmd_attention)

    plot = sub.add_parser("plot", help="draw loss and accuracy curves of one or more runs")
    plot.add_argument("runs", nargs="+", help="run directories")
    plot.add_argument("-o", "--out", default="curves.png", help="PNG to write (default curves.png)")
    plot.set_defaults(func=cmd_plot)
    return parser


# Decoding flags shared by chat, reply and attention: (flag, setting name, type, help).
DECODE_FLAGS = [
    ("--beam", "beam", int, "beam search with this width (1 = greedy)"),
    ("--nbest", "nbest", int, "show the N best candidates (beam search)"),
    ("--temperature", "temperature", float, "sample with this temperature"),
    ("--top-k", "top_k", int, "sample among the K most probable tokens"),
    ("--top-p", "top_p", float, "sample among the fewest tokens reaching probability P"),
    ("--no-repeat-ngram", "no_repeat_ngram", int, "never repeat an n-gram of this size"),
    ("--min-len", "min_len", int, "at least this many reply tokens"),
    ("--max-len", "max_len", int, "at most this many reply tokens"),
    ("--seed", "seed", int, "seed for reproducible sampling"),
]


def _decode_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("decoding (default: greedy, as saved with the model)")
    for flag, name, kind, text in DECODE_FLAGS:
        group.add_argument(flag, dest=f"decode_{name}", type=kind, default=None, help=text)


def _load_bot(args: argparse.Namespace):
    from chatbot.bot import Bot

    bot = Bot.load(args.model)
    # Order matters where flags imply a strategy: sampling flags first, then beam overrides.
    for _, name, _, _ in sorted(DECODE_FLAGS, key=lambda f: f[1] in ("beam", "nbest")):
        value = getattr(args, f"decode_{name}")
        if value is not None:
            bot.set(name, str(value))
    return bot


def _bad_lines_option(parser: argparse.ArgumentParser, default: str | None) -> None:
    parser.add_argument("--on-bad-lines", choices=("error", "skip"), default=default,
                        help="stop at the first bad line, or skip bad lines and count them")


def cmd_import_chatterbot(args: argparse.Namespace) -> int:
    from chatbot.corpora import import_chatterbot

    rows = import_chatterbot(args.lang, args.out)
    print(f"wrote {rows} pairs ({', '.join(args.lang)}) to {args.out}")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from chatbot.config import RunConfig
    from chatbot.data import format_summary, read_pairs, summarize
    from chatbot.text import Tokenizer

    config = RunConfig()
    report = read_pairs(args.file, args.on_bad_lines)
    max_len = args.max_len or config.data.max_len
    summary = summarize(report, Tokenizer(config.text.lowercase), max_len)
    print(format_summary(summary, report.bad_lines))
    return EXIT_USER_ERROR if report.bad_lines else 0


def cmd_train(args: argparse.Namespace) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's C++ start-up chatter out
    from chatbot.train import train

    if args.resume and args.init_from:
        raise ChatbotError("--resume and --init-from cannot be used together")
    if args.resume:
        out, options = args.resume, {"resume": True, "epochs": args.epochs,
                                     "strategy": args.strategy}
    else:
        if not args.data:
            raise ChatbotError("--data FILE is required (unless you --resume a run)")
        out, options = args.out, {"config": _train_config(args), "overwrite": args.overwrite,
                                  "init_from": args.init_from}
    try:
        train(args.data, out, **options)
    except KeyboardInterrupt:
        print(f"\nchatbot: training interrupted; continue with 'chatbot train --resume {out}'",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    return 0


def _train_config(args: argparse.Namespace):
    from chatbot.config import preset

    config = preset(args.preset)
    sections = {"data": config.data, "model": config.model, "train": config.train}
    overrides = {
        "train": ("epochs", "batch_size", "learning_rate", "optimizer", "monitor", "patience",
                  "seed", "strategy"),
        "model": ("arch", "embedding_dim", "hidden_dim", "num_layers", "dropout"),
        "data": ("max_len", "val_fraction", "min_count", "on_bad_lines"),
    }
    for section, names in overrides.items():
        for name in names:
            value = getattr(args, name)
            if value is not None:
                setattr(sections[section], name, value)
    config.decode.max_reply_len = config.data.max_len
    return config


def cmd_chat(args: argparse.Namespace) -> int:
    from chatbot.chat import run_repl

    run_repl(_load_bot(args))
    return 0


def cmd_reply(args: argparse.Namespace) -> int:
    from chatbot.chat import printable

    bot = _load_bot(args)
    if args.text:
        reply = bot.reply(" ".join(args.text))
        if reply.unknown:
            print(f"(not in the vocabulary: {', '.join(map(printable, reply.unknown))})",
                  file=sys.stderr)
        print(reply.text)
        if len(reply.candidates) > 1:
            for rank, c in enumerate(reply.candidates, start=1):
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
    for start in range(0, len(texts), 256):
        for reply in bot.reply_batch(texts[start: start + 256]):
            sys.stdout.write(reply.text + "\n")
        sys.stdout.flush()
    return status


def cmd_eval(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from chatbot.config import atomic_write_text
    from chatbot.data import read_pairs
    from chatbot.evaluate import evaluate, format_metrics
    from chatbot.rundir import METRICS

    bot = _load_bot(args)
    pairs = read_pairs(args.data, args.on_bad_lines).pairs
    recorded = bot.config.data.path
    is_training = bool(recorded) and Path(recorded).resolve() == Path(args.data).resolve()
    metrics = evaluate(bot, pairs, training_pairs=is_training)
    print(format_metrics(metrics))
    if args.out:
        path, document = Path(args.out), metrics
    else:  # keep what training wrote; add this evaluation under "eval", keyed by data file
        path = Path(args.model) / METRICS
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            document = {}
        document.setdefault("eval", {})[str(args.data)] = metrics
    atomic_write_text(path, json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    print(f"wrote {path}")
    return 0


def cmd_attention(args: argparse.Namespace) -> int:
    from chatbot.plot import cjk_font, plot_attention
    from chatbot.text import is_cjk

    bot = _load_bot(args)
    reply = bot.reply(args.text)
    amap = bot.attention(args.text, reply.tokens)
    path = plot_attention(amap.weights, amap.prompt, amap.reply, args.out)
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


if __name__ == "__main__":
    sys.exit(main())
