"""What a model learned about words: its word vectors, as nearest neighbours and as a map.

    neighbours(run_dir, "hello")        # [("hi", 0.71), ...]: cosine similarity, best first
    draw_map(run_dir, Path("map.png"))  # the 150 most frequent words on a plane, labelled

A word's vector is what the model makes of it in its places: the vector its output layer reads
after the word (`Engine.states`, the state it predicts the next token from), averaged over every
place the word has in the run's known pairs (memory.json, read as the model reads a pair:
`<SOS> prompt <SEP> reply`, each side cut to max_len, the first PAIRS pairs). Words the model
reads in the same kinds of places, and after which it expects the same kinds of words, point
alike. Such averages of a model's states make better word vectors than its tables (Bommasani et
al., 2020, "Interpreting Pretrained Contextualized Representations via Reductions to Static
Embeddings"); on our default model they give related neighbours to 5 of the 10 words
docs/embeddings.md picked in advance, against 1 with the tables.

An engine without one space for every token (an encoder-decoder reads the prompt with another
network than the reply's) has no `states`, nor does a run without memory.json: its vectors are
then its two tables, read through the architecture contract: the input embedding
(`chatbot.models.base.token_embeddings`) and the output embedding (`output_embeddings`, the
columns of the output layer's kernel), each centred and of unit length, side by side (as GloVe
adds its word and context vectors).

Either way:

- centred: the vectors are centred on the mean of the `among` most frequent words' (states and
  output vectors share a common direction that makes every cosine large, whatever the words;
  Mu and Viswanath's "all-but-the-top" removes it), and scaled to unit length;
- neighbours among the `among` (AMONG) most frequent words only: a rare word's vector is the
  state of one or two places (or, in a table, a few steps from its random start), and chance
  cosines fill a list otherwise.

These choices were made on 14 words other than the ten docs/embeddings.md reports on.

`neighbours` ranks by the cosine of the angle between these vectors; `draw_map` projects the
most frequent words onto the plane of their two largest principal components (PCA by SVD of the
unit vectors, so that the map shows the angles that the cosine measures) and labels them,
Chinese with the CJK font `chatbot.plot` picks.

Special tokens (<PAD>, <SOS>, <EOS>, <UNK>, <SEP>, <TURN>) are never neighbours nor on the map,
nor is a word that none of the pairs holds (it has no state). A word the tokenizer reads as
several tokens (the word tokenizer reads Chinese a character at a time, so "你好" is 你 and 好;
sentencepiece may split a rare word into pieces) stands for the mean of their unit vectors, and
its own tokens are left out of its neighbours.

"Most frequent": a word vocabulary lists tokens by descending count in the training text
(`Vocabulary.build`); a sentencepiece vocabulary lists pieces in the model's own order (a
unigram model's by probability, a BPE model's by merge), whose byte pieces the map leaves out.
The map labels words (a letter, digit or CJK character in them), not punctuation.

Reads the run directory with h5py and NumPy (the NumPy engine), never TensorFlow; matplotlib only
to draw.
"""

from __future__ import annotations

import difflib
import itertools
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from chatbot.config import RunConfig
from chatbot.data.memory import read_entries
from chatbot.errors import ChatbotError
from chatbot.models import arch_module
from chatbot.models.base import (
    Engine,
    check_weights,
    gives_states,
    output_embeddings,
    token_embeddings,
)
from chatbot.models.weights import read_keras_weights
from chatbot.rundir import CONFIG, MEMORY, MODEL, VOCAB, atomic_write, check_run_dir
from chatbot.text.tokenizer import load_tokenizer
from chatbot.text.vocab import SPECIALS, TURN, Vocabulary
from chatbot.text.words import TextTokenizer, has_cjk

BYTE_PIECE = re.compile(r"<0x[0-9A-F]{2}>")  # sentencepiece's pieces for single UTF-8 bytes
DPI = 100  # the map at 10 x 8 inches: 1000 x 800 pixels, small enough for a README
AMONG = 1000  # neighbours are the nearest of this many most frequent tokens (see above)
PAIRS = 3000  # the known pairs a word's states are averaged over: the first of memory.json
BATCH = 128  # pairs the engine reads at once
STATES, TABLES = "states", "tables"  # what a run's word vectors are (see above)
DRAWN = {STATES: "the model's states after them, averaged over the known pairs",
         TABLES: "their input and output embeddings"}


@dataclass
class Embeddings:
    """A run's vocabulary, its tokenizer, and a vector of unit length per token; neighbours are
    looked for among the `among` most frequent tokens (None: all of them) that have a vector
    (`seen`; None: all of them)."""

    vocab: Vocabulary
    tokenizer: TextTokenizer
    unit: np.ndarray  # (vocab, dim): token i's vector divided by its length
    among: int | None = None
    seen: np.ndarray | None = None  # (vocab,) bool: the tokens that have a vector
    kind: str = TABLES  # STATES or TABLES: what the vectors are (see the module's docstring)

    @classmethod
    def load(cls, run_dir: str | Path, among: int = AMONG) -> Embeddings:
        """The run's word vectors: its states averaged over the known pairs, or without them
        its two tables, centred on the `among` most frequent tokens' mean, of unit length."""
        check_count("among", among, 1, "the most frequent tokens to look for neighbours in")
        run_dir = check_run_dir(run_dir)
        try:
            config = RunConfig.load(run_dir / CONFIG)
            vocab = Vocabulary.load(run_dir / VOCAB)
            weights = read_keras_weights(run_dir / MODEL)
            check_weights(config.model, vocab, weights)
            tokenizer = load_tokenizer(config.text, run_dir)
            engine = arch_module(config.model.arch).Engine(weights, config.model, vocab)
            # An engine without states needs no pairs: the memory is not even read.
            pairs = known_pairs(run_dir / MEMORY) if gives_states(engine) else []
        except ChatbotError as exc:
            raise ChatbotError(f"{run_dir}: {exc}") from None
        found = mean_states(engine, vocab, tokenizer, pairs, config.data.max_len)
        if found is None:
            vectors = word_vectors(token_embeddings(weights), output_embeddings(weights),
                                   candidates(vocab, among))
            return cls(vocab, tokenizer, vectors, among)
        seen = found[1] > 0
        vectors = found[0] / np.maximum(found[1], 1)[:, None]
        centred = centred_units(vectors, candidates(vocab, among, seen))
        return cls(vocab, tokenizer, np.where(seen[:, None], centred, 0.0), among, seen, STATES)

    def read(self, word: str) -> list[int]:
        """The ids of the tokens `word` is read as; ChatbotError if it has none or one that is
        not in the vocabulary, naming known words close to it."""
        tokens = self.tokenizer.tokenize(word)
        if not tokens:
            raise ChatbotError(f"{word!r} holds no word to look up; give one, such as "
                               f"{', '.join(self.frequent(3))}")
        unknown = self.vocab.unknown(tokens)
        if unknown:
            words = self.frequent(len(self.vocab))
            close = list(dict.fromkeys(
                match for token in unknown
                for match in difflib.get_close_matches(token, words, n=5, cutoff=0.6)))[:5]
            hint = (f"close known words: {', '.join(close)}" if close else
                    f"the most frequent words are: {', '.join(words[:8])}")
            raise ChatbotError(
                f"{', '.join(map(repr, unknown))} {'is' if len(unknown) == 1 else 'are'} not in "
                f"the model's vocabulary ({len(self.vocab)} tokens), so "
                f"{'it has' if len(unknown) == 1 else 'they have'} no embedding; {hint}")
        ids = self.vocab.encode(tokens)
        if self.seen is not None and not self.seen[ids].all():
            absent = [self.vocab.tokens[i] for i in ids if not self.seen[i]]
            raise ChatbotError(
                f"{', '.join(map(repr, absent))} occur{'s' if len(absent) == 1 else ''} in none "
                f"of the known pairs the model's states are averaged over, so "
                f"{'it has' if len(absent) == 1 else 'they have'} no vector; try a more "
                f"frequent word, such as {', '.join(self.frequent(3))}")
        return ids

    def neighbours(self, word: str, k: int = 8) -> list[tuple[str, float]]:
        """The `k` tokens, of the `among` most frequent, whose vectors are closest to `word`'s by
        cosine similarity, most similar first, without `word`'s own tokens and the specials."""
        check_count("k", k, 1, "the neighbours to find")
        ids = self.read(word)
        vector = self.unit[ids].mean(axis=0)
        cosine = self.unit @ (vector / max(float(np.linalg.norm(vector)), 1e-12))  # (vocab,)
        among = candidates(self.vocab, self.among, self.seen)
        ranked = [int(i) for i in among[np.argsort(-cosine[among], kind="stable")]
                  if int(i) not in ids]
        return [(self.vocab.tokens[i], float(cosine[i])) for i in ranked[:k]]

    def frequent(self, top: int) -> list[str]:
        """The `top` most frequent words of the vocabulary (see the module's docstring)."""
        words = [t for i, t in enumerate(self.vocab.tokens)
                 if not special(t) and not BYTE_PIECE.fullmatch(t)
                 and any(ch.isalnum() for ch in t) and (self.seen is None or self.seen[i])]
        return words[:top]


def special(token: str) -> bool:
    return token in SPECIALS or token == TURN


def candidates(vocab: Vocabulary, among: int | None,
               seen: np.ndarray | None = None) -> np.ndarray:
    """The ids of the `among` most frequent tokens of `vocab` that are not specials (and are
    `seen`, if given), in vocabulary order (None: every such token)."""
    ids = np.array([i for i, token in enumerate(vocab.tokens)
                    if not special(token) and (seen is None or seen[i])], dtype=int)
    return ids if among is None else ids[:among]


def known_pairs(path: Path) -> list[tuple[str, str]]:
    """The first PAIRS (prompt, reply) pairs of the run's memory.json, or none without one."""
    if not path.exists():
        return []
    _, prompts, replies = read_entries(path)
    pairs = ((prompt, reply) for prompt, theirs in zip(prompts, replies) for reply in theirs)
    return list(itertools.islice(pairs, PAIRS))


def mean_states(engine: Engine, vocab: Vocabulary, tokenizer: TextTokenizer,
                pairs: list[tuple[str, str]], max_len: int) -> tuple[np.ndarray, np.ndarray] | None:
    """Each token's states summed over its places in `pairs` (vocab, width), and how many
    places it has (vocab,); None if the engine has no states or there are no pairs. The
    pairs are read as training reads them, each side cut to `max_len` tokens, BATCH at a
    time, the shortest together."""
    rows = [(vocab.encode(tokenizer.tokenize(prompt, max_len)),
             vocab.encode(tokenizer.tokenize(reply, max_len))) for prompt, reply in pairs]
    rows.sort(key=lambda row: len(row[0]) + len(row[1]))
    sums = counts = None
    for start in range(0, len(rows), BATCH):
        batch = rows[start: start + BATCH]
        states = engine.states([p for p, _ in batch], [r for _, r in batch])
        if states is None:
            return None
        if sums is None:
            sums = np.zeros((len(vocab), states[0].shape[-1]))
            counts = np.zeros(len(vocab))
        ids = [i for (prompt, reply), vectors in zip(batch, states)
               for i in [*prompt, *reply][: len(vectors)]]
        np.add.at(sums, ids, np.concatenate(states))
        np.add.at(counts, ids, 1)
    return None if sums is None else (sums, counts)


def word_vectors(inputs: np.ndarray, outputs: np.ndarray, frequent: np.ndarray) -> np.ndarray:
    """(vocab, in_dim + out_dim): each token's input embedding (`inputs`, (vocab, in_dim)) and
    output embedding (`outputs`), each centred on the mean of the rows `frequent` (no centring
    if it is empty) and scaled to unit length, side by side, scaled to unit length."""
    halves = [centred_units(table.astype(np.float64), frequent) for table in (inputs, outputs)]
    return unit_rows(np.hstack(halves))


def centred_units(table: np.ndarray, frequent: np.ndarray) -> np.ndarray:
    """`table` centred on the mean of its rows `frequent` (as it is if that is empty), each row
    then scaled to unit length."""
    return unit_rows(table - table[frequent].mean(axis=0) if len(frequent) else table)


def unit_rows(table: np.ndarray) -> np.ndarray:
    """`table` with each row divided by its length (a zero row stays zero)."""
    return table / np.maximum(np.linalg.norm(table, axis=1, keepdims=True), 1e-12)


def check_count(name: str, value: int, least: int, what: str) -> None:
    """Refuses a `k` or `top` that is not a whole number of at least `least`."""
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise ChatbotError(f"{name} must be a whole number of at least {least} ({what}), "
                           f"received {value!r}")


def neighbours(run_dir: Path, word: str, k: int = 8) -> list[tuple[str, float]]:
    """The `k` nearest neighbours of `word` by the run's input and output embeddings: (token, cosine
    similarity), most similar first; ChatbotError for a word the vocabulary lacks."""
    return Embeddings.load(run_dir).neighbours(word, k)


def neighbour_lines(embeddings: Embeddings, word: str, k: int = 8) -> list[str]:
    """`neighbours` as the CLI and the REPL print them: a heading, then one line per token."""
    found = embeddings.neighbours(word, k)
    ids = embeddings.read(word)
    heading = f"nearest to {word!r} by cosine similarity"
    if len(ids) > 1:
        tokens = " ".join(embeddings.vocab.tokens[i] for i in ids)
        heading += f" (read as {len(ids)} tokens, {tokens}: the mean of their vectors)"
    return [heading + ":"] + [f"  {similarity:6.3f}  {token}" for token, similarity in found]


def project(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """PCA: the rows of `vectors` (n, dim) on their two principal axes, (n, 2), and the share of
    the variance each axis holds, (2,)."""
    centred = vectors - vectors.mean(axis=0)
    _, singular, axes = np.linalg.svd(centred, full_matrices=False)  # axes (min(n, dim), dim)
    points = np.zeros((len(vectors), 2))
    points[:, : min(2, len(axes))] = centred @ axes[:2].T
    variance = singular**2
    share = np.zeros(2)
    share[: min(2, len(variance))] = variance[:2] / max(float(variance.sum()), 1e-12)
    return points, share


def draw_map(run_dir: Path, out: Path, top: int = 150) -> Path:
    """Draw the `top` most frequent words of the run on the plane of their embeddings' two
    principal components, labelled (Chinese with a CJK font); write a PNG to `out`."""
    return draw_words(Embeddings.load(run_dir), Path(out), top, Path(run_dir).resolve().name)


def draw_words(embeddings: Embeddings, out: Path, top: int, name: str) -> Path:
    """`draw_map` of embeddings already loaded; `name` names the run in the title."""
    check_count("top", top, 2, "the words to draw")
    words = embeddings.frequent(top)
    if len(words) < 2:
        raise ChatbotError(f"{name}: its vocabulary has {len(words)} word(s) to draw; a map "
                           "needs at least 2")
    points, share = project(embeddings.unit[embeddings.vocab.encode(words)])
    title = (f"{name}: its {len(words)} most frequent words by {DRAWN[embeddings.kind]}\n"
             "(near: the model reads and predicts them alike; PCA of the vectors)")
    figure = map_figure(points, words, share, title)
    atomic_write(out, lambda tmp: figure.savefig(tmp, format="png", dpi=DPI))
    return out


def map_figure(points: np.ndarray, words: list[str], share: np.ndarray, title: str):
    """A matplotlib Figure: `points` (n, 2) scattered, each labelled with its word, Chinese in
    red; `share` (2,) of the variance on each axis."""
    from matplotlib.figure import Figure  # only to draw: neighbours need no matplotlib

    from chatbot.plot import label_fonts

    figure = Figure(figsize=(10, 8), layout="constrained")
    ax = figure.subplots()
    chinese = np.array([has_cjk(word) for word in words])
    for mask, colour, label in ((~chinese, "C0", "English and other words"),
                                (chinese, "C3", "Chinese")):
        if mask.any():
            ax.scatter(points[mask, 0], points[mask, 1], s=8, color=colour, label=label)
    families = label_fonts()
    for (x, y), word, zh in zip(points, words, chinese):
        ax.annotate(word, (x, y), xytext=(2, 2), textcoords="offset points", fontsize=7,
                    color="C3" if zh else "black", fontfamily=families)
    ax.set_xlabel(f"principal component 1 ({share[0]:.0%} of the variance)")
    ax.set_ylabel(f"principal component 2 ({share[1]:.0%} of the variance)")
    ax.set_title(title, fontsize="medium")
    ax.legend(loc="best", fontsize="small")
    ax.grid(True, alpha=0.3)
    return figure
