"""What the commands share: the default run, exit codes, and the options several commands
take (decoding settings, bad lines) with the bot they load."""

from __future__ import annotations

import argparse
import re
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

from chatbot.data.pairs import BAD_LINE_CHOICES

DEFAULT_MODEL = "models/default"
EXIT_USER_ERROR = 1
EXIT_INTERRUPTED = 130
MODEL_HELP = f"run directory (default {DEFAULT_MODEL})"
GLYPH_MISSING = re.compile(r"Glyph \d+ .* missing from font")  # matplotlib's warning


def setting_flag(parser: argparse.ArgumentParser, flag: str, name: str, kind: type,
                 choices: tuple | None, help: str) -> None:
    """`flag` for the setting `name` (chatbot.config.train_flags): followed by a value of
    `kind`, or for a true-or-false setting alone (`--run-eagerly`, `--no-run-eagerly`). It
    reads None when not given: the preset's, or the run's, value applies."""
    if kind is bool:
        parser.add_argument(flag, dest=name, action=argparse.BooleanOptionalAction, default=None,
                            help=help)
    else:
        parser.add_argument(flag, dest=name, type=kind, choices=choices, default=None, help=help)


def as_given(flag: str, value) -> str:
    """`flag` with `value` as setting_flag reads it from a command line: `--epochs 9`, or for a
    true-or-false setting `--run-eagerly` or `--no-run-eagerly`."""
    if isinstance(value, bool):
        return flag if value else "--no-" + flag.removeprefix("--")
    return f"{flag} {value}"


def decode_options(parser: argparse.ArgumentParser) -> None:
    """A `--name` flag per decoding setting (chatbot.decoding.settings.SETTINGS), read as `/set`
    reads its value."""
    from chatbot.decoding.settings import SETTINGS

    group = parser.add_argument_group("decoding (default: greedy, as saved with the model)")
    for name, setting in SETTINGS.items():
        group.add_argument(setting.flag, dest=f"decode_{name}", default=None,
                           metavar=setting.metavar, help=setting.help)


def load_bot(args: argparse.Namespace):
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


@contextmanager
def cjk_note() -> Iterator[None]:
    """Draws what runs inside, with matplotlib's warning for each glyph no font has (a Chinese
    label drawn as a box when no CJK font is installed: chatbot.plot.cjk_font) turned into one
    note on stderr that says how to get them drawn; other warnings pass."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    boxes = False
    for warning in caught:
        if GLYPH_MISSING.search(str(warning.message)):
            boxes = True
        else:
            warnings.warn_explicit(warning.message, warning.category, warning.filename,
                                   warning.lineno)
    if boxes:
        print("note: no CJK font installed, so Chinese labels show as boxes; install one "
              "(e.g. Debian/Ubuntu: apt install fonts-wqy-microhei)", file=sys.stderr)


def bad_lines_option(parser: argparse.ArgumentParser, default: str | None) -> None:
    parser.add_argument("--on-bad-lines", choices=BAD_LINE_CHOICES, default=default,
                        help="stop at the first bad line, or skip bad lines and count them")
