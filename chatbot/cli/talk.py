"""`chatbot chat`, `reply`, `eval`, `attention` and `plot`: talking to a run and seeing it."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from chatbot.cli.common import (
    DEFAULT_MODEL,
    EXIT_USER_ERROR,
    MODEL_HELP,
    bad_lines_option,
    cjk_note,
    decode_options,
    load_bot,
)
from chatbot.errors import ChatbotError

FORMATS = ("text", "jsonl")  # what `chatbot reply --format` writes

def add_parsers(sub) -> None:
    """`chatbot chat`, `reply`, `eval`, `attention` and `plot`."""
    _add_talk(sub)
    _add_measures(sub)


def _add_talk(sub) -> None:
    """`chatbot chat` and `chatbot reply`."""
    chat = sub.add_parser("chat", help="talk to a trained model in the terminal")
    chat.add_argument("--model", default=DEFAULT_MODEL, help=MODEL_HELP)
    decode_options(chat)
    chat.set_defaults(func=cmd_chat)

    reply = sub.add_parser("reply", help="answer one prompt, or each line of stdin")
    reply.add_argument("--model", default=DEFAULT_MODEL, help=MODEL_HELP)
    reply.add_argument("text", nargs="*", help="the prompt; without it, one prompt per stdin line")
    reply.add_argument("--conversation", action="store_true",
                       help="read chat JSONL from stdin, one conversation per line, and answer "
                            "the last user turn of each (a context model reads the turns "
                            "before it)")
    reply.add_argument("--format", choices=FORMATS, default="text",
                       help="text: one reply per line (default); jsonl: one JSON object per "
                            "line, {prompt, reply, confidence, source, matched_prompt, "
                            "similarity}, with an error field for a line that could not be read")
    decode_options(reply)
    reply.set_defaults(func=cmd_reply)


def _add_measures(sub) -> None:
    """`chatbot eval`, `attention` and `plot`."""
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
    bad_lines_option(evaluate, default="error")
    decode_options(evaluate)
    evaluate.set_defaults(func=cmd_eval)

    calibrate = sub.add_parser(
        "calibrate", help="fit a run's reply confidence on replies held out of its training "
                          "data, and measure it on the validation pairs (chatbot train does "
                          "this when it finishes)")
    calibrate.add_argument("--model", default=DEFAULT_MODEL, help=MODEL_HELP)
    calibrate.add_argument("--data", default=None,
                           help="the run's training data (default: the file config.json names)")
    calibrate.set_defaults(func=cmd_calibrate)

    attention = sub.add_parser(
        "attention", help="heatmaps of where the model looked: each reply token over the prompt "
                          "(attention), every layer and head over the whole sequence (transformer)")
    attention.add_argument("--model", default=DEFAULT_MODEL,
                           help="an attention or transformer run directory")
    attention.add_argument("text", help="the prompt")
    attention.add_argument("-o", "--out", default="attention.png", help="PNG to write")
    decode_options(attention)
    attention.set_defaults(func=cmd_attention)

    plot = sub.add_parser("plot", help="draw loss and accuracy curves of one or more runs")
    plot.add_argument("runs", nargs="+", help="run directories")
    plot.add_argument("-o", "--out", default="curves.png", help="PNG to write (default curves.png)")
    plot.set_defaults(func=cmd_plot)


def cmd_chat(args: argparse.Namespace) -> int:
    from chatbot.chat import run_repl

    run_repl(load_bot(args))
    return 0


def cmd_reply(args: argparse.Namespace) -> int:
    from chatbot.chat import corrections, printable

    bot = load_bot(args)
    if args.conversation and args.text:
        raise ChatbotError("--conversation reads conversations from stdin; give no prompt "
                           "text with it")
    if args.text:
        prompt = " ".join(args.text)
        reply = bot.reply(prompt)
        if reply.corrected:
            print(f"(read {corrections(reply)})", file=sys.stderr)
        if reply.unknown:
            print(f"(not in the vocabulary: {', '.join(map(printable, reply.unknown))})",
                  file=sys.stderr)
        print(reply.text if args.format == "text" else _json_line(prompt, reply))
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
    errors: dict[int, str] = {}  # line index -> why it got an empty reply
    for number, raw in enumerate(lines, start=1):
        try:
            texts.append(raw.removesuffix(b"\r").decode("utf-8"))
        except UnicodeDecodeError:
            print(f"chatbot: stdin:{number}: not valid UTF-8; replied with an empty line",
                  file=sys.stderr)
            texts.append(raw.removesuffix(b"\r").decode("utf-8", "replace"))
            errors[number - 1] = "not valid UTF-8"
            status = EXIT_USER_ERROR
    prompts = [("" if i in errors else text) for i, text in enumerate(texts)]
    if args.conversation:
        prompts, status = _conversations(bot, prompts, errors, status)
    for start in range(0, len(prompts), 256):
        batch = prompts[start: start + 256]
        for i, reply in enumerate(bot.reply_batch(batch), start=start):
            if args.format == "text":
                sys.stdout.write(reply.text + "\n")
            else:
                # The prompt: a conversation's last user turn, else the line as it was read.
                asked = bot.turns(prompts[i])[-1] if prompts[i] else texts[i]
                sys.stdout.write(_json_line(asked, reply, errors.get(i)) + "\n")
        sys.stdout.flush()
    return status


def _json_line(prompt: str, reply, error: str | None = None) -> str:
    """A reply as `chatbot reply --format jsonl` writes it: one JSON object."""
    import json

    match = reply.match
    record = {"prompt": prompt, "reply": reply.text, "confidence": round(reply.confidence, 4),
              "source": reply.source, "matched_prompt": match.prompt if match else None,
              "similarity": round(match.similarity, 4) if match else None}
    if error is not None:
        record["error"] = error
    return json.dumps(record, ensure_ascii=False)


def _conversations(bot, lines: list[str], errors: dict[int, str], status: int
                   ) -> tuple[list, int]:
    """Each stdin line of `chatbot reply --conversation` as a conversation to answer; a line
    that is not one is named on stderr (and in `errors`) and answered with an empty line."""
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
            errors[number - 1] = str(reason)
            status = EXIT_USER_ERROR
    return out, status


def cmd_eval(args: argparse.Namespace) -> int:
    from chatbot.evaluate import (
        context_comparison,
        evaluate,
        format_metrics,
        variant_answer_rates,
    )
    from chatbot.rundir import update_metrics, write_json

    bot = load_bot(args)
    recorded = bot.config.data.path
    is_training = bool(recorded) and Path(recorded).resolve() == Path(args.data).resolve()
    pairs = _eval_pairs(args, bot, is_training)
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


def _eval_pairs(args: argparse.Namespace, bot, is_training: bool) -> list:
    """The pairs of --data; of a prepared directory (chatbot data prepare), its samples: the
    run's own directory, the sample of the pairs its memory knows (as `chatbot train`
    measures it); another, that sample and the validation sample."""
    from chatbot.data.pairs import read_pairs
    from chatbot.training.shards import is_prepared

    if not is_prepared(args.data):
        return read_pairs(args.data, args.on_bad_lines).pairs
    from chatbot.training.from_shards import measured_pairs

    known, validation = measured_pairs(Path(args.data), bot.config.train.seed)
    pairs = known if is_training else known + validation
    print(f"{args.data}: a prepared directory; evaluating on its sample of {len(known)} known "
          f"pairs" + ("" if is_training else f" and {len(validation)} validation pairs"))
    return pairs


def cmd_calibrate(args: argparse.Namespace) -> int:
    from chatbot.data.pairs import read_pairs, split_pairs
    from chatbot.decoding.bot import Bot
    from chatbot.evaluate import calibrate_run
    from chatbot.rundir import update_metrics
    from chatbot.training.shards import is_prepared

    bot = Bot.load(args.model)
    data = bot.config.data
    path = args.data or data.path
    if not path:
        raise ChatbotError(f"{args.model}: config.json names no training data; give it with "
                           "--data FILE")
    if not Path(path).exists():
        raise ChatbotError(f"{path}: the run's training data is missing; give it with --data "
                           "FILE")
    if is_prepared(path):  # chatbot data prepare: the samples a run on it is measured on
        from chatbot.training.from_shards import measured_pairs

        train_pairs, val_pairs = measured_pairs(Path(path), bot.config.train.seed)
    else:
        train_pairs, val_pairs = split_pairs(read_pairs(path, data.on_bad_lines).pairs,
                                             data.val_fraction, bot.config.train.seed)
    report = calibrate_run(bot, train_pairs, val_pairs)
    update_metrics(args.model, {"confidence": report}, replace=True)  # no stale figures
    fitted = report["fitted_on"]
    print(f"fitted on {fitted['replies']} held-out replies ({fitted['right']} right); wrote "
          f"{Path(args.model) / 'calibration.json'}")
    return 0


def cmd_attention(args: argparse.Namespace) -> int:
    from chatbot.plot import plot_attention_map

    bot = load_bot(args)
    reply = bot.reply(args.text)
    amap = bot.attention(args.text, reply.tokens)
    with cjk_note():
        path = plot_attention_map(amap, args.out)
    print(f"reply: {reply.text}\nwrote {path}")
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    from chatbot.plot import plot_runs

    path = plot_runs(args.runs, args.out)
    print(f"wrote {path}")
    return 0
