"""How the defaults of retrieval_weight and retrieval_min_similarity were chosen.

    .venv/bin/python bench/tune_retrieval.py --model models/default -o bench/tune_retrieval.json

The choice is made on typing variants drawn with seed 1, carved from the run's own training
prompts; `chatbot eval --variants` and bench/quality.py report on seed 0, which this never
sees. Every variant is answered once with retrieval on, every match kept (similarity 0) and no
bonus (weight 0): each candidate then carries the model's mean log-probability and its known
prompt's similarity, so any (weight, minimum similarity) can be scored without decoding again.
The validation pairs are scored the same way, so that a setting that helps the known prompts'
variants but hurts prompts the model never saw shows it.
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

from harness import write_results  # (first: it puts the chatbot package on sys.path)

from chatbot.config import RunConfig  # noqa: E402
from chatbot.data.variants import prompt_rng, typing_variants  # noqa: E402
from chatbot.decoding.bot import Bot, Reply  # noqa: E402
from chatbot.training.prepare import prepare_data  # noqa: E402

TUNING_SEED = 1  # never the reported seed (chatbot.evaluate.VARIANT_SEED = 0)
WEIGHTS = (0.5, 1.0, 2.0, 3.0, 5.0, 8.0)
SIMILARITIES = (0.3, 0.4, 0.5, 0.6, 0.7)


def choose(reply: Reply, weight: float, min_similarity: float) -> tuple[str, ...]:
    """The reply the bot would give with these settings, from a reply made with weight 0 and
    every match kept."""
    def score(c) -> float:
        similarity = c.match.similarity if c.match else 0.0
        return c.score + weight * (similarity if similarity >= min_similarity else 0.0)
    eligible = [c for c in reply.candidates
                if c.source == "model" or c.match.similarity >= min_similarity]
    return tuple(max(eligible, key=score).tokens) if eligible else ()


def answered(replies: list[Reply], references: list[set[tuple[str, ...]]], weight: float,
             min_similarity: float) -> float:
    hits = [choose(r, weight, min_similarity) in refs for r, refs in zip(replies, references)]
    return sum(hits) / max(1, len(hits))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="models/default")
    parser.add_argument("-o", "--out", default="bench/tune_retrieval.json")
    args = parser.parse_args()
    bot = Bot.load(args.model)
    config = RunConfig.load(Path(args.model) / "config.json")
    data = prepare_data(config, config.data.path)
    tok, max_len = bot.tokenizer, bot.config.data.max_len

    def refs(pairs) -> dict[str, set[tuple[str, ...]]]:
        out: dict[str, set] = {}
        for p in pairs:
            out.setdefault(p.prompt, set()).add(tuple(tok.tokenize(p.reply)[:max_len]))
        return out

    known, unseen = refs(data.train_pairs), refs(data.val_pairs)
    variants = [(v, known[p]) for p in known
                for v in typing_variants(p, prompt_rng(p, TUNING_SEED)).values()]
    bot.configure(retrieval=True, retrieval_min_similarity=0.0, retrieval_weight=0.0, mmi=0.0)
    sets = {"variants_seed_1": variants, "exact": [(p, r) for p, r in known.items()],
            "validation": [(p, r) for p, r in unseen.items()]}
    replies = {name: [] for name in sets}
    for name, rows in sets.items():
        texts = [text for text, _ in rows]
        for start in range(0, len(texts), 256):
            replies[name] += bot.reply_batch(texts[start: start + 256])
    grid = []
    for weight, similarity in itertools.product(WEIGHTS, SIMILARITIES):
        grid.append({"retrieval_weight": weight, "retrieval_min_similarity": similarity, **{
            name: answered(replies[name], [r for _, r in rows], weight, similarity)
            for name, rows in sets.items()}})
    alone = {name: answered(replies[name], [r for _, r in rows], 0.0, 1.01)
             for name, rows in sets.items()}
    chosen = choose_setting(grid)
    write_results(args.out, {"tuning_seed": TUNING_SEED, "model": args.model, "rule": RULE,
                             "model_alone": alone, "chosen": chosen, "grid": grid})
    print(f"model alone: {alone}\nchosen: {chosen}")


TOLERANCE = 0.005
RULE = (f"the least retrieval that comes within {TOLERANCE} of the best answer rate (variants + "
        "exact): the smallest weight, then the highest minimum similarity, so that the model's "
        "own scores decide as much as they can")


def choose_setting(grid: list[dict]) -> dict:
    def rate(g: dict) -> float:
        return g["variants_seed_1"] + g["exact"]
    best = max(rate(g) for g in grid)
    near = [g for g in grid if rate(g) >= best - TOLERANCE]
    return min(near, key=lambda g: (g["retrieval_weight"], -g["retrieval_min_similarity"]))


if __name__ == "__main__":
    main()
