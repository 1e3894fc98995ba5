"""`chatbot export`: a run directory as a TensorFlow SavedModel that TF Serving can serve.

    chatbot export --model models/default --format saved_model -o export/chatbot

writes

    export/chatbot/1/                    version 1: TF Serving serves numbered subdirectories
        saved_model.pb, variables/       the graph and the weights
        assets.extra/chatbot.json        what a client needs: the vocabulary, the special ids,
                                         max_len, the decoding settings (`client_settings`)
        assets.extra/tokenizer.model     a sentencepiece run's tokenizer, for its clients

with two signatures:

    serving_default   prompt_ids int32 (batch, time): prompt token ids without specials,
                      post-padded with <PAD> = 0 (a prompt of only 0s gets an empty reply);
                      ids past max_len * context_turns are cut off, as Bot cuts a prompt
                   -> reply_ids int32 (batch, max_reply_len), each reply then 0s, no <EOS>;
                      reply_length int32 (batch,)
    reply_text        prompts string (batch,): one prompt (a single turn) each
                   -> reply string (batch,)

`reply_text` reads and writes text in the graph with core TF ops (chatbot.export.text_ops), so
it is exported for the word tokenizer only: sentencepiece is not a core TF op, and a
sentencepiece run's clients tokenize with its tokenizer.model themselves.

The generation loop runs in the graph (chatbot.export.graph): greedy, as `Bot.reply` decodes
with the settings `PLAIN`; the repetition guards, retrieval, MMI reranking and spelling
correction that chat and reply may add are Python, and are not exported.
"""

from __future__ import annotations

import functools
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from chatbot.errors import ChatbotError
from chatbot.rundir import MODEL, TOKENIZER, TRAINING, check_run_dir, run_state, write_json
from chatbot.text.context import prompt_budget

FORMATS = ("saved_model",)  # `chatbot export --format`
VERSION = "1"  # the numbered subdirectory TF Serving loads
CLIENT_FILE = "chatbot.json"  # in VERSION/assets.extra/: see client_settings
# The decoding settings under which `Bot.reply` gives exactly the exported replies (the
# others, such as max_reply_len, min_len and allow_unk, are exported as the run has them).
PLAIN = {"strategy": "greedy", "no_repeat_ngram": 0, "loop_guard": 0, "retrieval": False,
         "mmi": 0.0, "spelling": False, "fallback": False, "truecase": False}


@dataclass(frozen=True)
class Exported:
    """What `export` wrote, for the CLI to report."""

    path: Path  # the SavedModel: OUT/VERSION
    signatures: list[str]
    size: int  # bytes of the SavedModel directory
    seconds: float
    notes: list[str] = field(default_factory=list)  # what the export leaves out, and why


def export(model_dir: str | Path, out: str | Path, format: str = "saved_model",
           overwrite: bool = False) -> Exported:
    """Exports the run in `model_dir` to the directory `out` (see the module docstring).

    `out` appears whole or not at all: the export is written beside it and renamed into
    place. An existing `out` is replaced only with `overwrite`, and only if it is empty or
    an earlier export (never a directory holding anything else, nor the run itself).
    """
    if format not in FORMATS:
        raise ChatbotError(f"unknown export format {format!r}; choose one of: "
                           f"{', '.join(FORMATS)}")
    started = time.perf_counter()
    model_dir, out = check_run_dir(model_dir), Path(out)
    state = run_state(model_dir)
    if state.state == TRAINING:
        raise ChatbotError(f"{model_dir}: training has not finished, so there is no final "
                           f"model to export yet; finish it with {state.resume_hint()}")
    _check_out(model_dir, out, overwrite)

    from chatbot.decoding.bot import Bot  # loading checks config, vocabulary, weights and tokenizer
    from chatbot.models.weights import read_keras_weights

    bot = Bot.load(model_dir)
    config = bot.config
    budget = prompt_budget(config.data.max_len, config.data.context_turns)
    limit = bot.engine.max_positions  # an engine that reads at most this many positions
    if limit is not None and limit < budget + 3:
        raise ChatbotError(
            f"{model_dir}: max_positions {limit} cannot hold a prompt of "
            f"{budget} tokens with <SOS>, <SEP> and a reply token; the export needs a run "
            "whose max_positions fits its max_len (retrain it)")
    text = config.text.tokenizer == "word"
    notes = [] if text else [
        "no reply_text signature: sentencepiece tokenization is not a core TensorFlow op; "
        f"clients tokenize with assets.extra/{TOKENIZER} and call serving_default"]
    notes += _left_out(bot)

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    from chatbot.export.graph import graph_engine

    engine = graph_engine(read_keras_weights(model_dir / MODEL), config.model, bot.vocab)
    module, signatures = _module(tf, engine, bot, budget, text)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp"))
    try:
        saved = tmp / VERSION
        tf.saved_model.save(module, str(saved), signatures=signatures)
        write_json(saved / "assets.extra" / CLIENT_FILE, client_settings(bot, list(signatures)))
        if not text:
            shutil.copyfile(model_dir / TOKENIZER, saved / "assets.extra" / TOKENIZER)
        _replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    path = out / VERSION
    size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    return Exported(path, list(signatures), size, time.perf_counter() - started, notes)


def client_settings(bot, signatures: list[str]) -> dict:
    """assets.extra/chatbot.json: what a client of the SavedModel needs to talk to it."""
    config, vocab = bot.config, bot.vocab
    return {
        "arch": config.model.arch,
        "signatures": signatures,
        "tokenizer": config.text.tokenizer,  # "word" (chatbot.text.words) or "sentencepiece"
        "lowercase": config.text.lowercase,
        "max_len": config.data.max_len,  # prompt tokens read per turn
        "context_turns": config.data.context_turns,  # >1: prompts joined by <TURN>
        "max_prompt_ids": prompt_budget(config.data.max_len, config.data.context_turns),
        "max_reply_len": config.decode.max_reply_len,  # width of reply_ids
        "decoding": {"strategy": "greedy", "min_len": config.decode.min_len,
                     "allow_unk": config.decode.allow_unk},
        "ids": {"pad": vocab.pad_id, "sos": vocab.sos_id, "eos": vocab.eos_id,
                "unk": vocab.unk_id, "sep": vocab.sep_id, "turn": vocab.turn_id},
        "tokens": vocab.tokens,  # token strings by id
    }


def _module(tf, engine, bot, budget: int, text: bool):
    """The tf.Module to save and its signatures {name: tf.function}."""
    from chatbot.export.graph import greedy
    from chatbot.models.graph_ops import variables_of

    vocab, decode = bot.vocab, bot.config.decode
    # The loops are tf.while_loop and tf.scan already: autograph would only slow tracing.
    function = functools.partial(tf.function, autograph=False)
    module = tf.Module()
    module.engine_variables = variables_of(engine)  # tracked: they are saved

    @function(input_signature=[tf.TensorSpec([None, None], tf.int32, name="prompt_ids")])
    def reply_ids(prompt_ids):
        replies, lengths = greedy(engine, prompt_ids[:, :budget], vocab, decode)
        return {"reply_ids": replies, "reply_length": lengths}

    module.reply_ids = reply_ids
    signatures = {"serving_default": reply_ids}
    if not text:
        return module, signatures

    from chatbot.export.text_ops import detokenize, feature_table, tokenize

    module.table = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(vocab.tokens, list(range(len(vocab))),
                                            key_dtype=tf.string, value_dtype=tf.int64),
        default_value=vocab.unk_id)
    features = feature_table(vocab)

    @function(input_signature=[tf.TensorSpec([None], tf.string, name="prompts")])
    def reply_text(prompts):
        # Bot.prompt_tokens of a single turn: its first max_len tokens.
        tokens = tokenize(prompts, bot.config.text.lowercase)[:, : bot.config.data.max_len]
        ids = tf.cast(module.table.lookup(tokens).to_tensor(0), tf.int32)
        replies, lengths = greedy(engine, ids, vocab, decode)
        ragged = tf.RaggedTensor.from_tensor(replies, lengths=lengths)
        if vocab.turn_id is not None:  # vocab.decode leaves <TURN> out
            ragged = tf.ragged.boolean_mask(ragged, ragged != vocab.turn_id)
        return {"reply": detokenize(ragged.to_tensor(0), tf.constant(vocab.tokens),
                                    tf.constant(features))}

    module.reply_text = reply_text
    signatures["reply_text"] = reply_text
    return module, signatures


def _left_out(bot) -> list[str]:
    """The run's own decoding settings that the exported greedy decoding does not apply."""
    decode, left = bot.decode, []
    if decode.strategy != "greedy":
        left.append(f"strategy {decode.strategy}")
    if decode.no_repeat_ngram:
        left.append(f"no_repeat_ngram {decode.no_repeat_ngram}")
    if decode.loop_guard:
        left.append(f"loop_guard {decode.loop_guard}")
    if decode.retrieval and bot.memory is not None:
        left.append("retrieval")
    if decode.mmi:
        left.append(f"mmi {decode.mmi}")
    if decode.spelling and bot.speller is not None:
        left.append("spelling")
    if not left:
        return []
    return [f"the export decodes greedily, without the run's {', '.join(left)} (Python "
            "steps of chat and reply, not in the graph)"]


def _check_out(model_dir: Path, out: Path, overwrite: bool) -> None:
    run, target = model_dir.resolve(), out.resolve()
    if target == run or target in run.parents:
        raise ChatbotError(f"-o {out} would replace the run directory {model_dir} itself; "
                           "export to another directory")
    if not out.exists() and not out.is_symlink():
        return
    if not out.is_dir():
        raise ChatbotError(f"{out} exists and is not a directory; choose another -o")
    empty = not any(out.iterdir())
    if not empty and not overwrite:
        raise ChatbotError(f"{out} already exists; pass --overwrite to replace it, or choose "
                           "another -o")
    if not empty and not (out / VERSION / "saved_model.pb").is_file():
        raise ChatbotError(f"{out} is not an earlier export (no {VERSION}/saved_model.pb), so "
                           "--overwrite will not replace it; choose another -o")


def _replace(new: Path, out: Path) -> None:
    """Renames the directory `new` to `out`, moving an existing `out` aside first (a rename
    cannot replace a directory that has files). A crash between the two renames leaves the old
    export under its hidden name beside `out`, never half of either."""
    if not out.exists():
        os.replace(new, out)
        return
    old = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".old"))
    os.replace(out, old / "export")
    os.replace(new, out)
    shutil.rmtree(old, ignore_errors=True)
