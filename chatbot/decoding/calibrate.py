"""Fit a run's confidence on held-out replies, and measure how reliable it is on others.

    calibration, report = calibrate(bot, train_pairs, val_pairs)

A reply is right when it is one of its prompt's own replies in the data (compared as tokens, so
that a known reply said as written and the model's own spelling of it agree). The replies the
calibration is fitted on are held out from what makes them:

- typing variants of a sample of the known prompts (chatbot.data.variants, seed FIT_SEED,
  never the seed evaluation reports on), against the whole memory: what a user who asks
  something the bot knows types; mostly right;
- the validation prompts, as written and as typing variants, against a memory without them:
  prompts neither the model nor the memory has seen, what asking something the bot does not
  know looks like; mostly wrong, right where another known prompt has the same reply;
- typing variants of the validation prompts against the whole memory: prompts the memory
  knows and the model never learned (a finished run's memory holds every pair, and its model
  learned the training split only); mostly right, with a reply the model finds unlikely, which
  the first two kinds never show.

(Known prompts asked of a memory without their own pair are no substitute for the validation
prompts: the model learned their replies, so it answers them right with a confidence no new
prompt earns.)

The report measures on replies the calibration did not see: the validation replies, each
scored by a calibration fitted without its half of the validation prompts (2-fold
cross-fitting), and typing variants of the known prompts with the reporting seed.
`validation` is the same cross-fitting on what `reliability` asks (the validation prompts as
written and with reporting-seed variants, against the memory without them, and those variants
against the whole memory): the figure of a calibration on pairs it has never seen.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from chatbot.data.pairs import Pair
from chatbot.data.variants import one_variant_each
from chatbot.decoding.bot import Bot
from chatbot.decoding.confidence import Calibration, Evidence, auroc, ece

FIT_SEED = 7  # the typing variants the calibration is fitted on
REPORT_SEED = 0  # and those reliability reports on (chatbot.evaluate.VARIANT_SEED)
SAMPLE = 400  # known prompts at most whose typing variants the calibration is fitted on


def _references(bot: Bot, pairs: Sequence[Pair]) -> dict[str, set[tuple[str, ...]]]:
    """Each distinct prompt -> its replies as tokens (cut to the reply length)."""
    key = bot.policy().reply_key
    found: dict[str, set[tuple[str, ...]]] = {}
    for pair in pairs:
        found.setdefault(pair.prompt, set()).add(key(pair.reply))
    return found


def _judged(bot: Bot, asked: Sequence[tuple[str, str]],
            references: dict[str, set[tuple[str, ...]]]) -> list[tuple[Evidence, bool]]:
    """(evidence, right) of the model's best reply to each (prompt typed, prompt meant), the
    fallback off: the calibration judges what would be said without it."""
    replies = bot.reply_all([typed for typed, _ in asked])
    return [(reply.evidence, tuple(reply.candidates[0].tokens) in references[meant])
            for (_, meant), reply in zip(asked, replies) if reply.evidence is not None]


def _settings(bot: Bot):
    """The bot's settings, and the fallback off for judging: the calibration judges what would
    be said without it."""
    saved = bot.decode
    bot.configure(fallback=False)
    return saved


def _novel(bot: Bot, val_pairs: Sequence[Pair], prompts: Sequence[str], seed: int,
           references: dict[str, set[tuple[str, ...]]]) -> list[tuple[Evidence, bool]]:
    """The validation `prompts`, as written and one typing variant each, asked of a memory
    without the validation pairs."""
    whole = bot.memory
    try:
        if whole is not None:
            bot.memory = whole.without({p.prompt for p in val_pairs})
        return _judged(bot, [(p, p) for p in prompts] + one_variant_each(prompts, seed), references)
    finally:
        bot.memory = whole


def calibrate(bot: Bot, train_pairs: Sequence[Pair], val_pairs: Sequence[Pair],
              sample: int = SAMPLE) -> tuple[Calibration, dict]:
    """The calibration of `bot` fitted on held-out replies (see the module doc), and a report:
    what it was fitted on, and its reliability (ECE, AUROC) on replies it was not fitted on."""
    references = _references(bot, [*train_pairs, *val_pairs])
    known = list(dict.fromkeys(p.prompt for p in train_pairs))
    random.Random(FIT_SEED).shuffle(known)
    known = known[:sample]
    novel = list(dict.fromkeys(p.prompt for p in val_pairs))
    saved = _settings(bot)
    try:
        typed = _judged(bot, one_variant_each(known, FIT_SEED), references)
        halves = [_validation(bot, val_pairs, novel[h::2], FIT_SEED, references) for h in (0, 1)]
        reported = _judged(bot, one_variant_each(known, REPORT_SEED), references)
        asked = [_validation(bot, val_pairs, novel[h::2], REPORT_SEED, references)
                 for h in (0, 1)]
    finally:
        bot.decode = saved
        bot.configure()
    fitted = typed + halves[0] + halves[1]
    calibration = Calibration.fit([e for e, _ in fitted], [r for _, r in fitted])
    # Cross-fitting: each half of the validation replies scored by a fit without it.
    scored, validation = [], []
    for h in (0, 1):
        others = typed + halves[1 - h]
        half = Calibration.fit([e for e, _ in others], [r for _, r in others])
        scored += [(half(e), r) for e, r in halves[h]]
        validation += [(half(e), r) for e, r in asked[h]]
    validation_halves = list(scored)
    scored += [(calibration(e), r) for e, r in reported]
    report = {"fitted_on": {"replies": calibration.examples, "right": calibration.right,
                            "seed": FIT_SEED},
              "held_out": _reliability(scored),
              "held_out_validation": _reliability(validation_halves),
              "validation": {**_reliability(validation), "seed": REPORT_SEED}}
    return calibration, report


def _validation(bot: Bot, val_pairs: Sequence[Pair], prompts: Sequence[str], seed: int,
                references: dict[str, set[tuple[str, ...]]]) -> list[tuple[Evidence, bool]]:
    """The validation `prompts` as `_novel` asks them, then their typing variants (`seed`)
    against the whole memory."""
    return (_novel(bot, val_pairs, prompts, seed, references)
            + _judged(bot, one_variant_each(prompts, seed), references))


def _reliability(scored: list[tuple[float, bool]]) -> dict:
    confidence = [c for c, _ in scored]
    right = [r for _, r in scored]
    return {"replies": len(scored), "right": sum(right), "ece": ece(confidence, right),
            "auroc": auroc(confidence, right)}


def reliability(bot: Bot, pairs: Sequence[Pair], seed: int = REPORT_SEED) -> dict:
    """How well the confidence of `bot` tells right replies from wrong ones on `pairs` (for
    `chatbot eval`): their prompts and a typing variant of each asked of the memory without
    them, and the variants of the whole memory too. ECE, AUROC, and how many were right."""
    references = _references(bot, pairs)
    prompts = list(references)
    saved = _settings(bot)
    try:
        judged = _novel(bot, pairs, prompts, seed, references)
        judged += _judged(bot, one_variant_each(prompts, seed), references)
    finally:
        bot.decode = saved
        bot.configure()
    return {**_reliability([(bot.calibration(e), r) for e, r in judged]),
            "calibrated": bot.calibration.calibrated}
