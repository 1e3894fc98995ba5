"""A memory of the training pairs, searched by how a prompt is written.

    memory = Memory.build(pairs)
    memory.search("how are you", k=3)   # [Match("How are you?", 0.93, ["I am doing well."]), ...]

Prompts are compared as bags of character n-grams (2 to 4 characters, within and across word
boundaries, after NFKC folding and lower-casing), weighted by TF-IDF and compared by cosine
similarity. Character n-grams forgive what people change when they type: a dropped question
mark, a typo, a contraction, a filler word, full-width punctuation. A word-level match would
miss most of those.

The memory holds no weights: `Bot` uses it to add the replies of close known prompts to the
model's own candidates, and the model's scores still decide (see chatbot/decoding/bot.py). Search
costs one pass over the n-grams of the query through an inverted index, well under a millisecond for
the default corpus.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import re
import unicodedata
import zipfile
from array import array
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from chatbot.errors import ChatbotError
from chatbot.rundir import atomic_write, atomic_write_text
from chatbot.text.context import context_key

NGRAMS = (2, 3, 4)  # character n-gram lengths
INDEXED_FROM = 5000  # prompts from which memory.json gets its built index beside it
INDEX_SUFFIX = ".npz"  # memory.json's index: memory.npz
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True)
class Match:
    prompt: str  # the known prompt, as written in the training data
    similarity: float  # cosine similarity of the n-gram vectors, 0 to 1
    replies: tuple[str, ...]  # its distinct replies, in order of appearance


def normalize(text: str) -> str:
    """What similarity looks at: NFKC (full-width "？" is "?"), lower case, single spaces."""
    return " " + _SPACES.sub(" ", unicodedata.normalize("NFKC", text).lower()).strip() + " "


def ngrams(text: str) -> Counter:
    folded = normalize(text)
    return Counter(folded[i: i + n] for n in NGRAMS for i in range(len(folded) - n + 1))


class Memory:
    """Known prompts and their replies, with an inverted index of TF-IDF n-gram weights."""

    def __init__(self, prompts: Sequence[str], replies: Sequence[Sequence[str]],
                 built: dict[str, np.ndarray] | None = None):
        if len(prompts) != len(replies):
            raise ValueError(f"{len(prompts)} prompts but {len(replies)} reply lists")
        self.prompts = list(prompts)
        self.replies = [tuple(r) for r in replies]
        if built is not None:  # the index as `save` wrote it (a large memory's)
            grams = built["grams"].tolist()
            self.idf = dict(zip(grams, built["idf"].tolist()))
            self.index = {g: slice(a, b) for g, a, b in zip(
                grams, built["starts"].tolist(), built["ends"].tolist())}
            self._rows, self._weights = built["rows"], built["weights"]
            return
        self._build()

    def _build(self) -> None:
        # Built with whole-array operations (a chat's start-up waits for it): one entry per
        # (prompt, n-gram), in each prompt's n-gram order, so the sums below add in the order
        # vector adds in and give the same floats.
        ids: dict[str, int] = {}  # n-gram -> column
        # Typed arrays, not lists: 8 bytes an entry instead of about 36, for a memory of many
        # thousands of prompts (chatbot data prepare's, up to its cap)
        rows, columns, counts = array("q"), array("q"), array("q")
        for row, prompt in enumerate(self.prompts):
            grams = ngrams(prompt)
            rows.extend(itertools.repeat(row, len(grams)))
            columns.extend(ids.setdefault(gram, len(ids)) for gram in grams)
            counts.extend(grams.values())
        rows_, columns_ = np.frombuffer(rows, dtype=np.int64), np.frombuffer(columns, np.int64)
        total = len(self.prompts)
        documents = np.bincount(columns_, minlength=len(ids))  # prompts with each n-gram
        # Smoothed IDF, as scikit-learn's TfidfVectorizer: n-grams in every prompt still count.
        idf = np.log((1 + total) / (1 + documents)) + 1
        self.idf = dict(zip(ids, idf.tolist()))
        weights = (1 + np.log(np.array(counts, dtype=np.float64))) * idf[columns_]
        norms = np.sqrt(np.bincount(rows_, weights=weights * weights, minlength=total))
        weights /= np.where(norms > 0, norms, 1.0)[rows_]  # unit length, as vector's
        # The inverted index, gram -> (rows, weights): a search adds up whole arrays instead
        # of looping in Python. One array of each, sorted by n-gram (rows ascending within
        # one), and each n-gram's slice of them.
        order = np.argsort(columns_, kind="stable")
        self._rows, self._weights = rows_[order], weights[order]
        ends = np.cumsum(documents).tolist()
        self.index = {gram: slice(end - n, end)
                      for gram, end, n in zip(ids, ends, documents.tolist())}

    @classmethod
    def build(cls, pairs, context_turns: int = 1) -> Memory:
        """From pairs (chatbot.data.pairs.Pair); one entry per prompt, or for a context model
        (`context_turns` > 1) per its last turns, as it reads them (context_key)."""
        grouped: dict[str, dict[str, None]] = {}
        for pair in pairs:
            key = context_key([*pair.context, pair.prompt], context_turns)
            grouped.setdefault(key, {})[pair.reply] = None
        return cls(list(grouped), [list(r) for r in grouped.values()])

    def without(self, prompts: set[str]) -> Memory:
        """The memory less the entries of `prompts` (as its keys spell them)."""
        kept = [i for i, p in enumerate(self.prompts) if p not in prompts]
        return Memory([self.prompts[i] for i in kept], [self.replies[i] for i in kept])

    def vector(self, counts: Counter) -> dict[str, float]:
        """Unit-length TF-IDF weights of n-gram counts. An n-gram no known prompt has gets the
        highest IDF: it counts in the norm, so words the memory has never seen lower the
        similarity instead of being ignored."""
        unseen = math.log(1 + len(self.prompts)) + 1
        vector = {g: (1 + math.log(n)) * self.idf.get(g, unseen) for g, n in counts.items()}
        norm = math.sqrt(sum(w * w for w in vector.values())) or 1.0
        return {g: w / norm for g, w in vector.items()}

    def __len__(self) -> int:
        return len(self.prompts)

    def search(self, text: str, k: int = 3, min_similarity: float = 0.0) -> list[Match]:
        """The `k` known prompts most similar to `text`, best first, at or above the minimum."""
        query = self.vector(ngrams(text))
        found = [(self.index[gram], weight) for gram, weight in query.items()
                 if gram in self.index]
        if not found:
            return []
        rows = np.concatenate([self._rows[part] for part, _ in found])
        products = np.concatenate([self._weights[part] * weight for part, weight in found])
        scores = np.bincount(rows, weights=products, minlength=len(self.prompts))
        # The prompts that share an n-gram with the text: every weight is positive.
        candidates = np.flatnonzero(scores)
        best = candidates[np.lexsort((candidates, -scores[candidates]))][:k]  # ties: first row
        return [Match(self.prompts[row], min(1.0, float(scores[row])), self.replies[row])
                for row in best.tolist() if scores[row] >= min_similarity]

    # --- the run directory's memory.json, and a large memory's index ---------------------------

    def to_json(self) -> str:
        entries = [{"prompt": p, "replies": list(r)} for p, r in zip(self.prompts, self.replies)]
        return json.dumps({"entries": entries}, ensure_ascii=False, indent=0) + "\n"

    def save(self, path: str | Path) -> None:
        """memory.json at `path`; for a memory of INDEXED_FROM prompts or more, its built
        index too (beside it: INDEX_SUFFIX), so that loading it does not build it again."""
        path = Path(path)
        text = self.to_json()
        index = path.with_suffix(INDEX_SUFFIX)
        index.unlink(missing_ok=True)  # first: an index never outlives its memory.json
        atomic_write_text(path, text)
        if len(self.prompts) < INDEXED_FROM:
            return
        grams = list(self.index)
        arrays = {"grams": np.array(grams, dtype=f"U{max(NGRAMS)}"),
                  "idf": np.array([self.idf[g] for g in grams]),
                  "starts": np.array([self.index[g].start for g in grams], dtype=np.int64),
                  "ends": np.array([self.index[g].stop for g in grams], dtype=np.int64),
                  "rows": self._rows, "weights": self._weights,
                  "of": np.array(_digest(text))}
        atomic_write(index, lambda tmp: _save_npz(tmp, arrays))

    @classmethod
    def load(cls, path: str | Path) -> Memory:
        path = Path(path)
        text, prompts, replies = read_entries(path)
        return cls(prompts, replies, _read_index(path.with_suffix(INDEX_SUFFIX), text))


def read_entries(path: Path) -> tuple[str, list[str], list[list[str]]]:
    """memory.json's text, its prompts and each prompt's replies, without building the index
    (`Memory.load` builds it; chatbot.embeddings reads the pairs alone)."""
    try:
        text = path.read_text(encoding="utf-8")
        entries = json.loads(text)["entries"]
        prompts = [str(e["prompt"]) for e in entries]
        replies = [[str(r) for r in e["replies"]] for e in entries]
    except FileNotFoundError:
        raise ChatbotError(f"{path}: missing; retrain the model, or switch retrieval off "
                           "with '/set retrieval off'") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ChatbotError(f"{path}: not a readable memory of training pairs ({exc!r}); "
                           "retrain the model") from None
    return text, prompts, replies


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def _read_index(path: Path, text: str) -> dict[str, np.ndarray] | None:
    """The index `Memory.save` wrote for the memory.json that reads `text`; None if there is
    none, or it is damaged or another memory's (the memory is then built again)."""
    try:
        with np.load(path, allow_pickle=False) as saved:
            if str(saved["of"]) != _digest(text):
                return None
            return {name: saved[name] for name in saved.files}
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):
        return None
