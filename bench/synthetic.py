"""Synthetic corpora of any size, shaped like the default one, for benchmarks that read data at
scale (bench/check_memory.py):

    write_synthetic_tsv(path, pairs, seed)   -> what was written (pairs, bytes, tokens, ...)

Every prompt and reply gets a number of tokens drawn from the default corpus's own (prompts and
replies apart, as the word tokenizer counts them), and tokens drawn from the default corpus's by
their frequency, joined by spaces (so the word tokenizer reads back the same tokens). A share
of the tokens (RARE) are made-up lowercase words drawn from 26^7 of them, nearly all distinct:
a corpus of the default one's words alone would stop at its five thousand distinct tokens, when
a real corpus's vocabulary keeps growing with its size. The same seed gives the same file.
"""

from __future__ import annotations

import string
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CORPUS = ROOT / "data" / "chatterbot.tsv"  # the Makefile's DATA
RARE = 0.01  # share of tokens that are made-up words (few of them seen twice)
RARE_LETTERS = 7  # a made-up word's letters: 26^7 = 8e9 of them
CHUNK = 100_000  # pairs drawn at a time


def corpus_shape(corpus: str | Path = DEFAULT_CORPUS) -> dict[str, Any]:
    """The tokens of `corpus` with their counts, and its prompts' and replies' token counts."""
    from chatbot.data.pairs import read_pairs
    from chatbot.text.words import Tokenizer

    tokenizer = Tokenizer(lowercase=False)
    counts: Counter[str] = Counter()
    prompt_lengths, reply_lengths = [], []
    for pair in read_pairs(corpus, "skip").pairs:
        prompt, reply = tokenizer.tokenize(pair.prompt), tokenizer.tokenize(pair.reply)
        counts.update(prompt + reply)
        prompt_lengths.append(len(prompt))
        reply_lengths.append(len(reply))
    tokens, weights = zip(*counts.most_common())
    return {"tokens": list(tokens), "weights": np.array(weights, dtype=np.float64),
            "prompt_lengths": np.array(prompt_lengths), "reply_lengths": np.array(reply_lengths)}


def write_synthetic_tsv(path: str | Path, pairs: int, seed: int = 0,
                        corpus: str | Path = DEFAULT_CORPUS, rare: float = RARE) -> dict[str, Any]:
    """Writes `pairs` lines of prompt<TAB>reply to `path` (see the module's docstring) and
    returns what was written."""
    shape = corpus_shape(corpus)
    rng = np.random.default_rng(seed)
    vocabulary = np.array(shape["tokens"], dtype=object)
    p = shape["weights"] / shape["weights"].sum()
    written = tokens_written = 0
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        while written < pairs:
            n = min(CHUNK, pairs - written)
            lengths = np.stack([rng.choice(shape["prompt_lengths"], n),
                                rng.choice(shape["reply_lengths"], n)], axis=1).ravel()
            lengths = np.maximum(lengths, 1)  # (a side is never empty)
            tokens = vocabulary[rng.choice(len(vocabulary), int(lengths.sum()), p=p)]
            made_up = np.flatnonzero(rng.random(len(tokens)) < rare)
            tokens[made_up] = _made_up_words(rng, len(made_up))
            ends = np.cumsum(lengths).tolist()
            sides = [" ".join(tokens[a:b]) for a, b in zip([0, *ends[:-1]], ends)]
            f.write("".join(f"{q}\t{r}\n" for q, r in zip(sides[::2], sides[1::2])))
            written += n
            tokens_written += len(tokens)
    return {"pairs": pairs, "seed": seed, "bytes": path.stat().st_size,
            "tokens": tokens_written, "rare_share": rare,
            "corpus": str(Path(corpus).resolve().relative_to(ROOT)
                          if Path(corpus).resolve().is_relative_to(ROOT) else corpus),
            "corpus_distinct_tokens": len(vocabulary)}


def _made_up_words(rng: np.random.Generator, n: int) -> list[str]:
    letters = np.array(list(string.ascii_lowercase))
    drawn = letters[rng.integers(0, 26, size=(n, RARE_LETTERS))]
    return ["".join(row) for row in drawn]
