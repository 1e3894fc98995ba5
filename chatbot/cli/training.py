"""`chatbot train` and `chatbot pretrain`: their flags (one per config field that has one,
chatbot.config.train_flags), starting, resuming and fine-tuning a run, and measuring it."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from chatbot import rundir
from chatbot.cli.common import (
    DEFAULT_MODEL,
    EXIT_INTERRUPTED,
    MODEL_HELP,
    as_given,
    setting_flag,
)
from chatbot.config import MEASURED, PRESETS, train_flags
from chatbot.data.pairs import read_pairs
from chatbot.errors import ChatbotError

# Flags of `chatbot train` that each set one setting of the preset:
# (flag, config section, setting, type, valid choices or None, help).
TRAIN_FLAGS = train_flags()  # one per config field that has a flag (chatbot.fields)
# Settings of pair data that plain text (`chatbot pretrain`) does not have.
PAIRS_ONLY = ("noise_copies", "on_bad_lines")
# What a resumed run may change: the rest is the run's own, recorded in its config.json.
RESUME_MAY_CHANGE = ("epochs", "strategy", "max_minutes")
# What fine-tuning cannot change: they shape the vocabulary or the model it keeps.
INIT_KEEPS = ("arch", "embedding_dim", "hidden_dim", "num_layers", "num_heads", "max_positions",
              "min_count", "tokenizer", "subword_vocab", "subword_model")


def add_parsers(sub) -> None:
    """`chatbot train` and `chatbot pretrain`."""
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
        setting_flag(train, flag, name, kind, choices, f"{text} (default: from the preset)")
    train.add_argument("--fallback", metavar="FILE", default=None,
                       help="what the bot says when it does not know: UTF-8 text, one phrasing "
                            "per line (lines with Chinese characters for Chinese prompts), "
                            "saved as the run's fallback.txt (default: the built-in phrasings)")
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
            setting_flag(pretrain, flag, name, kind, choices,
                         f"{text} (default: from the preset)")
    pretrain.set_defaults(func=cmd_pretrain)


def cmd_train(args: argparse.Namespace) -> int:

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
    config = None if resume else train_config(args)
    read = None  # a prepared directory is checked by its manifest, a resumed run's by training
    if config is not None and not Path(args.data).is_dir():
        # Read as training reads it, before TensorFlow loads (seconds): a missing file or a
        # bad line is reported at once; training then uses these pairs.
        read = read_pairs(args.data, config.data.on_bad_lines)
    phrasings = _fallback(args.fallback)  # checked before training, saved after it

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's C++ start-up chatter out
    from chatbot.decoding.probes import ProbeReplies
    from chatbot.decoding.quality import AnswerRates
    from chatbot.evaluate import evaluate_training
    from chatbot.training.train import train

    options = {"resume": True, "epochs": args.epochs, "strategy": args.strategy} if resume \
        else {"config": config, "overwrite": overwrite, "init_from": args.init_from, "read": read}
    try:
        result = train(args.data, out, callbacks=[ProbeReplies.of, AnswerRates.of], **options)
        if phrasings is not None and result.data is not None:  # (the chief only)
            rundir.atomic_write_text(Path(out) / rundir.FALLBACK, phrasings)
        evaluate_training(result)
    except KeyboardInterrupt:
        again = " (or the same command again)" if args.if_needed else ""
        print(f"\nchatbot: training interrupted; continue with 'chatbot train --resume {out}'"
              f"{again}", file=sys.stderr)
        return EXIT_INTERRUPTED
    return 0


def _fallback(path: str | None) -> str | None:
    """The text of a --fallback file, checked as the bot will read it; None without one."""
    if path is None:
        return None
    from chatbot.decoding.fallback import Fallback

    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ChatbotError(f"{path}: not readable as UTF-8 text ({exc}); write one phrasing "
                           "per line") from None
    if not text.strip():
        raise ChatbotError(f"{path}: empty; write one phrasing per line")
    Fallback.of(text.splitlines(), path)
    return text


def cmd_pretrain(args: argparse.Namespace) -> int:

    if args.resume:
        rundir.check_resumable(args.out)
        args.data = None
        _refuse_changes(args, args.out, "is resumed with its own settings", RESUME_MAY_CHANGE)
    elif not args.text:
        raise ChatbotError("--text FILE is required (unless you --resume a run)")
    else:
        from chatbot.training.pretrain_data import read_text

        read = read_text(args.text)  # before TensorFlow loads, as `chatbot train` does
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from chatbot.decoding.probes import ProbeReplies
    from chatbot.training.train import train

    if args.resume:
        options = {"resume": True, "epochs": args.epochs, "strategy": args.strategy}
    else:
        args.preset = args.preset or "transformer"
        config = train_config(args)
        config.data.text = list(args.text)
        config.train.noise_copies = 0  # typing noise is for prompts; text has none
        if config.train.monitor in MEASURED:  # answer rates are of prompts: text has none
            config.train.monitor = "loss"
        options = {"config": config, "overwrite": args.overwrite, "read": read}
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


def train_config(args: argparse.Namespace):
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
                had = ("it on" if has else "it off") if isinstance(has, bool) else has
                changes.append(f"{as_given(flag, value)} (the run has {had})")
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
