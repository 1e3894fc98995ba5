"""`chatbot embeddings`: what a run's model learned about words (chatbot.embeddings)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from chatbot.cli.common import DEFAULT_MODEL, EXIT_USER_ERROR, MODEL_HELP, cjk_note
from chatbot.errors import ChatbotError

DEFAULT_MAP = "embeddings.png"


def add_parsers(sub) -> None:
    """`chatbot embeddings`."""
    parser = sub.add_parser(
        "embeddings", help="a map of the model's most frequent words by their vectors (the "
                           "model's state after each, averaged over the known pairs; or its "
                           "input and output embeddings), and the nearest neighbours of words "
                           "by cosine similarity")
    parser.add_argument("--model", default=DEFAULT_MODEL, help=MODEL_HELP)
    parser.add_argument("-o", "--out", default=None,
                        help=f"PNG of the map to write (default {DEFAULT_MAP}; with "
                             "--neighbours and no --out, no map is drawn)")
    parser.add_argument("--top", type=int, default=150,
                        help="how many of the most frequent words the map shows (default 150)")
    parser.add_argument("--neighbours", action="append", default=[], metavar="WORD",
                        help="print the nearest neighbours of WORD (repeat it for several words)")
    parser.add_argument("-k", type=int, default=8,
                        help="how many neighbours to print per word (default 8)")
    parser.add_argument("--among", type=int, default=None, metavar="N",
                        help="look for neighbours among the N most frequent tokens (default "
                             "1000: a rare token's vector comes from a place or two, or hardly "
                             "moved from its random start)")
    parser.set_defaults(func=cmd_embeddings)


def cmd_embeddings(args: argparse.Namespace) -> int:
    from chatbot.embeddings import AMONG, Embeddings, check_count, draw_words, neighbour_lines

    check_count("-k", args.k, 1, "the neighbours to print per word")
    check_count("--top", args.top, 2, "the words to draw")
    among = AMONG if args.among is None else args.among
    check_count("--among", among, 1, "the most frequent tokens to look for neighbours in")
    embeddings = Embeddings.load(args.model, among)
    status = 0
    for word in args.neighbours:
        try:
            print("\n".join(neighbour_lines(embeddings, word, args.k)))
        except ChatbotError as exc:  # the other words are still looked up
            print(f"chatbot: error: {exc}", file=sys.stderr)
            status = EXIT_USER_ERROR
    if args.out or not args.neighbours:
        name = Path(args.model).resolve().name
        with cjk_note():
            path = draw_words(embeddings, Path(args.out or DEFAULT_MAP), args.top, name)
        print(f"wrote {path}")
    return status
