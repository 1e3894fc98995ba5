"""`chatbot serve` and `chatbot export`: the run as an HTTP API, or as a SavedModel."""

from __future__ import annotations

import argparse
import os

from chatbot.cli.common import DEFAULT_MODEL, MODEL_HELP, decode_options, load_bot
from chatbot.errors import ChatbotError
from chatbot.export.saved_model import FORMATS as EXPORT_FORMATS


def add_parsers(sub) -> None:
    """`chatbot serve` and `chatbot export`."""
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
    decode_options(serve)
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


def cmd_serve(args: argparse.Namespace) -> int:
    from chatbot.serving.limits import LIMIT_FLAGS, Limits
    from chatbot.serving.server import serve

    limits = Limits(**{name: getattr(args, name) for _, name, *_ in LIMIT_FLAGS})
    key = args.api_key
    if key is not None and not key.strip():
        raise ChatbotError("the API key is empty (--api-key or $CHATBOT_API_KEY); give a key, "
                           "or unset it to serve without one")
    serve(load_bot(args), args.model, args.host, args.port, key, limits, args.allowed_host)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from pathlib import Path

    from chatbot.export.saved_model import export

    exported = export(args.model, args.out, args.format, args.overwrite)
    print(f"wrote {exported.path} ({exported.size / 1e6:.1f} MB, {exported.seconds:.1f} s); "
          f"signatures: {', '.join(exported.signatures)}")
    for note in exported.notes:
        print(f"note: {note}")
    print("serve it with TensorFlow Serving (see docs/export.md):\n  docker run -p 8501:8501 "
          f"--mount type=bind,source={Path(args.out).resolve()},target=/models/chatbot "
          "-e MODEL_NAME=chatbot -t tensorflow/serving")
    return 0
