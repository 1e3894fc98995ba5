"""Chooses the defaults of the `min_confidence` and `ambiguity` settings on dev data only.

    .venv/bin/python bench/choose.py          # models/default -> bench/choose.json

Dev data: every distinct prompt of --data as written, their typing variants with seed 11
(chatbot.data.variants; seed 7 fits the calibration, seed 0 is reported), and the out-of-domain
prompts of bench/ood/dev.txt. Never bench/ood/test.txt: bench/honest.py reports on it.

Every prompt is asked once, with the fallback off. What each point of the grid would do follows
from that one reply, as ReplyPolicy.decide settles it: the fallback is said when the reply's
confidence is below min_confidence, or when ReplyPolicy.unsure's other rules hold (the closest
known prompts ambiguous within `ambiguity`, no known word); otherwise the reply stands. A
sample of the prompts is asked again with the fallback on at a few points of the grid; the
JSON's "check" says whether both agree.

At each point: the fallback share on known prompts, the share of variants answered right (the
reply is exactly one of the meant prompt's replies in the data, and not the fallback), and the
fallback share on dev.txt. The rule is RULE below. Writes bench/choose.json and prints the
chosen values; chatbot/decoding/settings.py is left to its owners.
"""

from __future__ import annotations

import argparse
import math
import random
import time
from typing import Any

import numpy as np
from harness import ROOT, load_average, machine, write_results
from honest import ask, code_state, known_replies, read_lines
from known import language, variant_rows

from chatbot.data.pairs import read_pairs
from chatbot.data.taught import Taught
from chatbot.decoding.bot import Bot, Reply
from chatbot.decoding.settings import DecodeConfig
from chatbot.errors import ChatbotError

OOD_DEV = ROOT / "bench/ood/dev.txt"  # for choosing only: see bench/ood/README.md
DEV_SEED = 11  # the typing variants settings are chosen on
MIN_CONFIDENCE = [round(0.025 * i, 3) for i in range(39)]  # 0.00 to 0.95
AMBIGUITY = [0.0, 0.01, 0.02, 0.03, 0.05, 0.08]
MAX_KNOWN_FALLBACK = 0.01
VARIANT_SLACK = 0.01  # a point may answer this share of variants fewer than the grid's best
CHECK_PROMPTS = 200  # asked again with the fallback on, at each of the checked points
CHECK_SEED = 0
RULE = (f"Among the points whose fallback share on known prompts is at most {MAX_KNOWN_FALLBACK} "
        f"and whose share of variants answered right is at least the best over the grid minus "
        f"{VARIANT_SLACK}, the one with the highest fallback share on dev.txt; ties: the lower "
        f"min_confidence, then the lower ambiguity.")
EPSILON = 1e-9  # shares are compared with this slack, so that equal counts compare equal
STARTED = time.perf_counter()


def fallbacks(bot: Bot, prompts: list[str]) -> tuple[list[Reply], np.ndarray]:
    """The replies to `prompts` with the fallback off, and whether each point of the grid would
    say the fallback instead: (prompts, len(MIN_CONFIDENCE), len(AMBIGUITY)) booleans."""
    saved = bot.decode
    try:
        bot.configure(fallback=False)
        replies = ask(bot, prompts)
        policies = []
        for ambiguity in AMBIGUITY:
            bot.configure(ambiguity=ambiguity)
            policies.append(bot.policy())
    finally:
        bot.decode = saved
        bot.configure()
    # ReplyPolicy.unsure is `confidence < min_confidence or` the rules that do not look at
    # the confidence; asked with an infinite confidence, it answers those alone.
    unsure = np.zeros((len(prompts), len(AMBIGUITY)), dtype=bool)
    decided = np.zeros(len(prompts), dtype=bool)  # decide() looked at the confidence
    for i, (prompt, reply) in enumerate(zip(prompts, replies)):
        if not reply.candidates or reply.source == "taught":
            continue  # an empty prompt, or a taught reply: never the fallback
        decided[i] = True
        closest = policies[0].closest(bot.clip(bot.turns(prompt)))  # as reply_batch finds them
        unsure[i] = [policy.unsure(math.inf, reply.read, closest) for policy in policies]
    confidence = np.array([r.confidence for r in replies])
    low = confidence[:, None] < np.array(MIN_CONFIDENCE)[None, :]  # (prompts, min_confidence)
    said = low[:, :, None] | unsure[:, None, :]
    return replies, said & decided[:, None, None]


def choose(known_fallback: np.ndarray, variants_right: np.ndarray, ood_fallback: np.ndarray
           ) -> tuple[int, int] | None:
    """The (min_confidence, ambiguity) indices RULE picks; None when no point qualifies."""
    best = variants_right.max()
    allowed = ((known_fallback <= MAX_KNOWN_FALLBACK + EPSILON)
               & (variants_right >= best - VARIANT_SLACK - EPSILON))
    points = [(m, a) for m, a in zip(*np.nonzero(allowed))]
    if not points:
        return None
    # Highest OOD share first; then the lower min_confidence, then the lower ambiguity.
    m, a = min(points, key=lambda p: (-round(float(ood_fallback[p]), 9), p[0], p[1]))
    return int(m), int(a)


def check(bot: Bot, prompts: list[str], said: np.ndarray, points: list[tuple[int, int]]
          ) -> dict[str, Any]:
    """Asks a sample of `prompts` again with the fallback on at `points`: does each reply say
    the fallback exactly where `said` predicts?"""
    rows = sorted(random.Random(CHECK_SEED).sample(range(len(prompts)),
                                                   min(CHECK_PROMPTS, len(prompts))))
    saved = bot.decode
    disagreements = []
    try:
        for m, a in points:
            bot.configure(fallback=True, min_confidence=MIN_CONFIDENCE[m],
                          ambiguity=AMBIGUITY[a])
            replies = ask(bot, [prompts[i] for i in rows])
            disagreements += [
                {"prompt": prompts[i], "min_confidence": MIN_CONFIDENCE[m],
                 "ambiguity": AMBIGUITY[a], "predicted_fallback": bool(said[i, m, a]),
                 "source": reply.source, "confidence": round(reply.confidence, 4)}
                for i, reply in zip(rows, replies) if (reply.source == "fallback")
                != bool(said[i, m, a])]
    finally:
        bot.decode = saved
        bot.configure()
    return {"prompts": len(rows), "points": [[MIN_CONFIDENCE[m], AMBIGUITY[a]] for m, a in points],
            "disagreements": len(disagreements), "examples": disagreements[:5]}


def dev_figures(bot: Bot, pairs: list, ood: list[str]
                ) -> tuple[list[str], tuple[int, int], np.ndarray, dict[str, np.ndarray]]:
    """The prompts asked (known, variants, OOD, in that order), how many known and variants,
    where the fallback would be said (see `fallbacks`), and each figure over the grid."""
    references = known_replies(pairs)
    known = list(references)
    rows = variant_rows(pairs, DEV_SEED)  # (kind, meant prompt, variant)
    prompts = [*known, *(variant for _, _, variant in rows), *ood]
    replies, said = fallbacks(bot, prompts)
    k, v = len(known), len(rows)
    right = np.array([r.text in references[meant]
                      for (_, meant, _), r in zip(rows, replies[k: k + v])])
    known_right = np.array([r.text in references[p] for p, r in zip(known, replies[:k])])
    figures = {"known_fallback": said[:k].mean(axis=0),
               "variants_right": (right[:, None, None] & ~said[k: k + v]).mean(axis=0),
               "dev_ood_fallback": said[k + v:].mean(axis=0),
               "known_right": (known_right[:, None, None] & ~said[:k]).mean(axis=0)}
    return prompts, (k, v), said, figures


def point(m: int, a: int, figures: dict[str, np.ndarray]) -> dict[str, Any]:
    return {"min_confidence": MIN_CONFIDENCE[m], "ambiguity": AMBIGUITY[a],
            **{name: round(float(values[m, a]), 4) for name, values in figures.items()}}


def nearest(value: float, grid: list[float]) -> int | None:
    found = [i for i, v in enumerate(grid) if abs(v - value) < EPSILON]
    return found[0] if found else None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="models/default", help="the run directory")
    parser.add_argument("--data", default="data/chatterbot.tsv", help="the run's data")
    parser.add_argument("-o", "--out", default=str(ROOT / "bench/choose.json"))
    args = parser.parse_args(argv)
    load_start = load_average()
    try:
        bot = Bot.load(args.model)
    except ChatbotError as exc:
        raise SystemExit(f"choose: error: {exc}") from None
    bot.taught = Taught(None, bot.memory)  # the data alone, whatever was taught in the run
    pairs = read_pairs(args.data, bot.config.data.on_bad_lines).pairs
    ood = read_lines(OOD_DEV)
    prompts, (k, v), said, figures = dev_figures(bot, pairs, ood)
    chosen = choose(figures["known_fallback"], figures["variants_right"],
                    figures["dev_ood_fallback"])
    if chosen is None:
        raise SystemExit("choose: no point of the grid meets the rule's bounds")
    m, a = chosen
    defaults = DecodeConfig()
    compared = {"settings.py": (defaults.min_confidence, defaults.ambiguity),
                "run config.json": (bot.config.decode.min_confidence, bot.config.decode.ambiguity)}
    on_grid = {name: (nearest(mc, MIN_CONFIDENCE), nearest(am, AMBIGUITY))
               for name, (mc, am) in compared.items()}
    checked = list(dict.fromkeys([chosen, *(p for p in on_grid.values() if None not in p),
                                  (0, 0), (len(MIN_CONFIDENCE) - 1, len(AMBIGUITY) - 1)]))
    ood_said = said[k + v:, m, a]
    by_language = {lang: round(float(np.mean([s for p, s in zip(ood, ood_said)
                                              if language(p) == lang])), 4)
                   for lang in ("en", "zh")}
    results = {
        "model": args.model, "data": args.data,
        "dev": {"known_prompts": k, "variants": v, "variant_seed": DEV_SEED,
                "ood": str(OOD_DEV.relative_to(ROOT)), "ood_prompts": len(ood),
                "decode": {f: getattr(bot.decode, f) for f in ("strategy", "retrieval",
                                                               "retrieval_k", "spelling")},
                "calibrated": bot.calibration.calibrated},
        "rule": RULE,
        "best_variants_right": round(float(figures["variants_right"].max()), 4),
        "chosen": {**point(m, a, figures), "dev_ood_fallback_by_language": by_language},
        "compared": {name: point(*idx, figures) if None not in idx else
                     {"min_confidence": compared[name][0], "ambiguity": compared[name][1],
                      "on_grid": False} for name, idx in on_grid.items()},
        "grid": {"min_confidence": MIN_CONFIDENCE, "ambiguity": AMBIGUITY,
                 "points": [point(i, j, figures) for i in range(len(MIN_CONFIDENCE))
                            for j in range(len(AMBIGUITY))]},
        "check": check(bot, prompts, said, checked),
        "code": code_state(),
        "machine": machine(load_start),
        "seconds": round(time.perf_counter() - STARTED, 1),
    }
    write_results(args.out, results)
    found = results["chosen"]
    print(f"chosen: min_confidence {found['min_confidence']}, ambiguity {found['ambiguity']} "
          f"(known fallback {found['known_fallback']:.2%}, variants right "
          f"{found['variants_right']:.2%} of best {results['best_variants_right']:.2%}, "
          f"dev OOD fallback {found['dev_ood_fallback']:.2%}); check: "
          f"{results['check']['disagreements']} disagreements")
    for name, figures_ in results["compared"].items():
        print(f"{name}: {figures_}")


if __name__ == "__main__":
    main()
