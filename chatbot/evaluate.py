"""How well a model answers: what training measured, what it says, and how varied it is.

    from chatbot.decoding.bot import Bot
    from chatbot.data.pairs import read_pairs
    from chatbot.evaluate import evaluate, format_metrics
    bot = Bot.load("models/default")
    print(format_metrics(evaluate(bot, read_pairs("data/test.tsv").pairs)))

Two views of the same pairs:

- teacher forcing (`teacher_forced`): the model reads the true reply prefix and is scored on the
  next token, exactly as training's `masked_accuracy` and loss score it (raw logits, no decoding
  constraints), so the numbers compare with `history.csv`;
- generation (`evaluate`): the model answers each distinct prompt with `bot.reply_batch`, under
  whatever decoding settings the bot has, and the replies are scored against every reference
  reply of their prompt (BLEU, chrF), and for variety (distinct-n, the most common reply).

Everything runs in NumPy from the run directory, without TensorFlow.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from chatbot.data.pairs import Pair
from chatbot.data.variants import KINDS, prompt_rng, typing_variants
from chatbot.decoding.bot import Bot, Reply
from chatbot.decoding.calibrate import calibrate
from chatbot.decoding.confidence import CALIBRATION
from chatbot.decoding.rerank import teacher_forced_rows
from chatbot.errors import ChatbotError
from chatbot.rundir import atomic_write_text, update_metrics
from chatbot.text.context import context_tokens
from chatbot.text.metrics import (  # noqa: F401 (also imported from here)
    bleu_chrf,
    distinct_n,
    empty_reply_share,
    most_common_reply,
    same_reply_share,
    unk_rate,
)

if TYPE_CHECKING:
    from chatbot.training.train import TrainResult

VARIANT_SEED = 0  # the typing variants `chatbot eval --variants` reports on; never train on them
SAME_REPLY_SHARE = 0.5  # flag a model that gives one reply to more than this share of prompts
SAME_REPLY_MIN_PROMPTS = 5  # ... when it has at least this many prompts to answer
EMPTY_REPLY_SHARE = 0.1  # flag more empty replies than this share
UNK_RATE = 0.05  # flag more <UNK> among generated tokens than this share
LOW_ANSWER_RATE = 0.5  # flag answering fewer training prompts than this with their own reply


# -- teacher forcing --------------------------------------------------------------------------

def teacher_forced(bot: Bot, pairs: Sequence[Pair], batch_size: int = 256) -> dict:
    """Next-token accuracy and perplexity with the true reply prefix, as training scores them.

    Every reply token and the final <EOS> is a target; prompt and reply are truncated to
    `max_len` tokens, as in training. Reply tokens missing from the vocabulary are <UNK> targets
    and are counted, as training counts them (it only skips padding): a model that predicts
    <UNK> there is right. No token is banned, so the arg-max is that of the raw logits.

    Returns {"masked_accuracy", "perplexity" (exp of the mean cross-entropy), "tokens"}.
    """
    if not pairs:
        raise ChatbotError("no pairs to evaluate")
    if batch_size < 1:
        raise ChatbotError(f"batch_size must be at least 1, received {batch_size}")
    tok, vocab, max_len = bot.tokenizer, bot.vocab, bot.config.data.max_len
    examples = [
        (vocab.encode(context_tokens(_turns(_query(bot, p)), tok, max_len,
                                     bot.context_turns)[0]),
         [*vocab.encode(tok.tokenize(p.reply)[:max_len]), vocab.eos_id])
        for p in pairs
    ]
    examples.sort(key=lambda e: len(e[1]))  # similar lengths together: fewer wasted steps
    correct, nll, count = 0, 0.0, 0
    for start in range(0, len(examples), batch_size):
        chunk = examples[start: start + batch_size]
        c, n, k = _score_batch(bot.engine, [e[0] for e in chunk], [e[1] for e in chunk])
        correct, nll, count = correct + c, nll + n, count + k
    return {"masked_accuracy": correct / count, "perplexity": math.exp(nll / count),
            "tokens": count}


def _score_batch(engine, prompts: list[list[int]], targets: list[list[int]]
                 ) -> tuple[int, float, int]:
    """(correct arg-max predictions, summed cross-entropy, scored tokens) of one batch."""
    logprobs, hits = teacher_forced_rows(engine, prompts, targets)
    return int(hits.sum()), -float(logprobs.sum()), sum(len(t) for t in targets)


# -- generation -------------------------------------------------------------------------------

def answer_rate(bot: Bot, pairs: Sequence[Pair], batch_size: int = 256) -> dict:
    """Share of distinct prompts whose reply equals (token for token) one of their references.

    References are compared after the model's own tokenization and truncation to max_len, so
    case and spacing differences do not count as errors.
    """
    references = _references(bot, pairs)
    prompts = list(references)
    return _answered(prompts, _replies(bot, prompts, batch_size), references)


def evaluate(bot: Bot, pairs: Sequence[Pair], training_pairs: bool = False,
             batch_size: int = 256) -> dict:
    """Teacher-forced and generation metrics of `bot` on `pairs`, plus human warnings (`flags`).

    One reply is generated per distinct prompt; pairs that share a prompt are its references.
    References are normalized as the model sees text (its tokenizer, lowercasing and max_len),
    then detokenized, so BLEU and chrF do not count case or spacing the model cannot produce.
    With `training_pairs`, the pairs are the ones the model was trained on and the result also
    holds `answer_rate` (the dict of `answer_rate()`): how many it reproduces exactly.
    """
    forced = teacher_forced(bot, pairs, batch_size)
    references = _references(bot, pairs)
    prompts = list(references)
    replies = _replies(bot, prompts, batch_size)
    tokens = [r.tokens for r in replies]
    texts = [r.text for r in replies]
    detok = bot.tokenizer.detokenize
    bleu, chrf = bleu_chrf(texts, [[detok(ref) for ref in references[p]] for p in prompts])
    metrics = {
        "pairs": len(pairs),
        "prompts": len(prompts),
        "masked_accuracy": forced["masked_accuracy"],
        "perplexity": forced["perplexity"],
        "tokens": forced["tokens"],
        "bleu": bleu,
        "chrf": chrf,
        "mean_reply_tokens": sum(map(len, tokens)) / len(tokens),
        "distinct_1": distinct_n(tokens, 1),
        "distinct_2": distinct_n(tokens, 2),
        "same_reply_share": same_reply_share(texts),
        "most_common_reply": most_common_reply(texts),
        "unk_rate": unk_rate(tokens),
        "empty_reply_share": empty_reply_share(texts),
    }
    if training_pairs:
        metrics["answer_rate"] = _answered(prompts, replies, references)
    metrics["flags"] = quality_flags(metrics)
    return metrics


def evaluate_training(result: TrainResult, log: Callable[[str], None] = print) -> dict:
    """What `chatbot train` measures of a finished run, added to its metrics.json: the bot as
    it chats on its training pairs, its model alone, and its model alone on the validation."""
    data = result.data
    if data is None or not data.train_pairs:  # a worker, or a pretraining run
        return {}
    bot = Bot.load(result.run_dir)  # exactly what `chatbot chat` will load
    confidence = calibrate_run(bot, data.train_pairs, data.val_pairs)
    metrics = {"train": evaluate(bot, data.train_pairs, True), "confidence": confidence}
    # The model alone: the memory holds every pair, validation too; no fallback either
    bot.configure(retrieval=False, fallback=False)
    if bot.memory is not None:  # "train" is the bot as it chats; this, its model without memory
        metrics["train_model_alone"] = {"answer_rate": answer_rate(bot, data.train_pairs)}
    if data.val_pairs:  # unseen by the model, but known to the memory: measured without it
        metrics["validation"] = {**evaluate(bot, data.val_pairs), "retrieval": False}
    bot.configure(retrieval=True, fallback=True)
    update_metrics(result.run_dir, metrics)
    answered = metrics["train"]["answer_rate"]
    log(f"answers {answered['answer_rate']:.1%} of {answered['prompts']} training prompts with "
        "one of their replies")
    return metrics


def calibrate_run(bot: Bot, train_pairs: Sequence[Pair], val_pairs: Sequence[Pair],
                  log: Callable[[str], None] = print) -> dict:
    """Fits the confidence of `bot`'s run on replies held out of its data, saves it as
    calibration.json, and reports how reliable it is (chatbot.decoding.calibrate)."""
    calibration, report = calibrate(bot, train_pairs, val_pairs)
    atomic_write_text(bot.run_dir / CALIBRATION, calibration.to_json())
    bot.calibration = calibration
    held, val = report["held_out"], report["validation"]
    log(f"confidence on {held['replies']} held-out replies: AUROC {held['auroc']:.3f}, "
        f"ECE {held['ece']:.3f}; on {val['replies']} of the validation pairs (cross-fitted): "
        f"AUROC {val['auroc']:.3f}, ECE {val['ece']:.3f}")
    return report


def context_comparison(bot: Bot, pairs: Sequence[Pair], batch_size: int = 256) -> dict:
    """A context model (--context-turns N > 1) on conversation pairs, as it reads them and
    with its context switched off (the prompt alone): answer rate (a reply equal to one of the
    references), BLEU and chrF of each. Far apart, the model uses what came before the prompt."""
    if bot.config.data.context_turns == 1:
        raise ChatbotError("this model reads single turns (--context-turns 1): there is no "
                           "context to switch off")
    original = bot.decode.context
    result = {}
    try:
        bot.configure(context=True)
        references = _references(bot, pairs)  # the same questions and answers for both
        queries = list(references)
        for name, on in (("with_context", True), ("without_context", False)):
            bot.configure(context=on)  # off: the bot reads each query's last turn only
            replies = _replies(bot, queries, batch_size)
            bleu, chrf = bleu_chrf([r.text for r in replies], [
                [bot.tokenizer.detokenize(ref) for ref in references[q]] for q in queries])
            answered = _answered(queries, replies, references)
            result[name] = {"answer_rate": answered["answer_rate"], "prompts": len(queries),
                            "bleu": bleu, "chrf": chrf}
    finally:
        bot.configure(context=original)
    return result


def variant_answer_rates(bot: Bot, pairs: Sequence[Pair], seed: int = VARIANT_SEED,
                         batch_size: int = 256) -> dict:
    """How often typing variants of the pairs' prompts (chatbot.data.variants) still get one of
    their original prompt's replies: per kind, and over all variants.

    Every distinct prompt gets one variant of each kind that applies to it, chosen by `seed`
    and the prompt alone, so the figures are reproducible and comparable between models.
    Returns {"seed", "all": {prompts, answered, answer_rate}, kind: {..., "missed_examples"}}.
    """
    references = _references(bot, pairs)
    # A conversation's variants change its last turn, the one the user just typed.
    rows = [(kind, query, variant if isinstance(query, str) else (*query[:-1], variant))
            for query in references
            for kind, variant in typing_variants(_last(query), prompt_rng(_last(query),
                                                                          seed)).items()]
    replies = _replies(bot, [variant for _, _, variant in rows], batch_size)
    result: dict = {"seed": seed}
    totals = {"prompts": 0, "answered": 0}
    for kind in KINDS:
        picked = [(prompt, variant, reply) for (k, prompt, variant), reply in zip(rows, replies)
                  if k == kind]
        if not picked:
            continue
        hits = [tuple(reply.tokens) in references[prompt] for prompt, _, reply in picked]
        result[kind] = {
            "prompts": len(picked), "answered": sum(hits), "answer_rate": sum(hits) / len(hits),
            "missed_examples": [{"prompt": _shown(variant), "reply": reply.text}
                                for (_, variant, reply), hit in zip(picked, hits) if not hit][:3],
        }
        totals["prompts"] += len(picked)
        totals["answered"] += sum(hits)
    result["all"] = {**totals, "answer_rate": totals["answered"] / max(1, totals["prompts"])}
    return result


# What the bot is asked for a pair: its prompt, or with a context model (and the `context`
# setting on) the last turns of its conversation, oldest first.
Query = str | tuple[str, ...]


def _query(bot: Bot, pair: Pair) -> Query:
    return pair.query(bot.context_turns)


def _turns(query: Query) -> list[str]:
    return [query] if isinstance(query, str) else list(query)


def _last(query: Query) -> str:
    return query if isinstance(query, str) else query[-1]


def _shown(query: Query) -> str:
    return query if isinstance(query, str) else " | ".join(query)


def _references(bot: Bot, pairs: Sequence[Pair]) -> dict[Query, list[tuple[str, ...]]]:
    """Each distinct query (in order of appearance) -> its distinct reference token tuples."""
    tok, max_len = bot.tokenizer, bot.config.data.max_len
    references: dict[Query, dict[tuple[str, ...], None]] = {}
    for p in pairs:
        references.setdefault(_query(bot, p), {})[tuple(tok.tokenize(p.reply)[:max_len])] = None
    return {query: list(refs) for query, refs in references.items()}


def _replies(bot: Bot, prompts: Sequence[str], batch_size: int) -> list[Reply]:
    return bot.reply_all(prompts, batch_size)


def _answered(prompts: Sequence[str], replies: Sequence[Reply],
              references: dict[str, list[tuple[str, ...]]]) -> dict:
    answered, examples = 0, []
    for prompt, reply in zip(prompts, replies):
        hit = tuple(reply.tokens) in references[prompt]
        answered += hit
        if len(examples) < 5 and not hit:
            examples.append({"prompt": _shown(prompt), "reply": reply.text})
    return {
        "prompts": len(prompts),
        "answered": answered,
        "answer_rate": answered / len(prompts) if prompts else 0.0,
        "missed_examples": examples,
    }


def quality_flags(metrics: dict) -> list[str]:
    """Human warnings about what the metrics show; empty when nothing looks wrong."""
    flags = []
    prompts, share = metrics["prompts"], metrics["same_reply_share"]
    if prompts >= SAME_REPLY_MIN_PROMPTS and share > SAME_REPLY_SHARE:
        which = "every input" if share == 1.0 else f"{share:.0%} of {prompts} inputs"
        flags.append(f"same reply for {which}: {metrics['most_common_reply']!r}; the model "
                     "ignores its prompt (train longer, or check the data for a dominant reply)")
    if metrics["empty_reply_share"] > EMPTY_REPLY_SHARE:
        flags.append(f"{metrics['empty_reply_share']:.0%} of replies are empty; try "
                     "'/set min_len 1'")
    if metrics["unk_rate"] > UNK_RATE:
        flags.append(f"{metrics['unk_rate']:.0%} of generated tokens are <UNK>; the vocabulary "
                     "is too small (raise max_vocab or lower min_count)")
    answered = metrics.get("answer_rate")
    if answered and answered["prompts"] and answered["answer_rate"] < LOW_ANSWER_RATE:
        flags.append(f"answers only {answered['answer_rate']:.0%} of training prompts with one "
                     "of their replies; the model underfits (train longer or make it larger)")
    return flags


# -- report -----------------------------------------------------------------------------------

_FORMATS = {  # how each value is shown; anything else is shown with str()
    "masked_accuracy": "{:.2%}", "perplexity": "{:.3f}", "bleu": "{:.2f}", "chrf": "{:.2f}",
    "mean_reply_tokens": "{:.1f}", "distinct_1": "{:.3f}", "distinct_2": "{:.3f}",
    "same_reply_share": "{:.1%}", "unk_rate": "{:.2%}", "empty_reply_share": "{:.1%}",
    "most_common_reply": "{!r}",
}


def format_metrics(metrics: dict) -> str:
    """The metrics of `evaluate` as an aligned two-column table, warnings last."""
    rows = []
    for name, value in metrics.items():
        if name == "flags":
            continue
        if name == "variants" and isinstance(value, dict):
            rows += _variant_rows(value)
        elif name == "context" and isinstance(value, dict):
            rows += [(name.replace("_", " "), f"answer rate {v['answer_rate']:.1%} of "
                      f"{v['prompts']} replies, BLEU {v['bleu']:.1f}, chrF {v['chrf']:.1f}")
                     for name, v in value.items()]
        elif name == "answer_rate" and isinstance(value, dict):
            rows.append((name, f"{value['answer_rate']:.1%} ({value['answered']} of "
                               f"{value['prompts']} training prompts)"))
            rows += [("  missed", f"{m['prompt']!r} -> {m['reply']!r}")
                     for m in value["missed_examples"]]
        else:
            rows.append((name, _FORMATS.get(name, "{}").format(value)))
    flags = metrics.get("flags", [])
    rows += [("flag", f) for f in flags] if flags else [("flags", "none")]
    width = max(len(name) for name, _ in rows) + 2
    return "\n".join(f"{name:<{width}}{value}" for name, value in rows)


def _variant_rows(variants: dict) -> list[tuple[str, str]]:
    rows = [("variants", f"{variants['all']['answer_rate']:.1%} ({variants['all']['answered']} of "
                         f"{variants['all']['prompts']} typing variants, seed {variants['seed']})")]
    for kind in KINDS:
        if kind in variants:
            v = variants[kind]
            rows.append((f"  {kind}", f"{v['answer_rate']:.1%} ({v['answered']} of "
                                      f"{v['prompts']})"))
    return rows
