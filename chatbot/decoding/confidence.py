"""How likely a reply is to be right: a score in [0, 1] from what the bot already computed.

    evidence = Evidence(similarity=0.62, margin=0.05, logprob=-1.9, unknown=0.0, known=True)
    calibration(evidence)            # 0.41: about 41 of 100 such replies were right

The evidence of a reply (chatbot.decoding.policy makes it):

    similarity   how close the closest known prompt is (character n-gram cosine, 0 to 1)
    margin       that similarity minus the closest known prompt's with other replies: two
                 known prompts as close with different replies mean the bot is guessing
    logprob      the model's mean log-probability per token of the reply, <EOS> included
    unknown      the share of the prompt's tokens the vocabulary does not have
    known        whether the reply is one of the closest known prompt's own replies
    extra        words typed that the closest known prompt does not have, and
    missing      its words that were not typed (a typo of a word counts as the word): a typing
                 variant changes a word or two; "you are immortal" is close to "you are not
                 immortal" in characters, but its missing "not" says it is another question

A logistic regression turns them into a probability (`Calibration`). It is fitted per run on
held-out replies (chatbot.decoding.calibrate: typing variants of known prompts, and known
prompts asked with their own pair left out of the memory) and saved as calibration.json in the
run directory. A run without one (trained before it existed) gets `UNCALIBRATED`, the
similarity scaled by the share of known words: ordered sensibly, but not a probability;
`chatbot calibrate DIR` fits one.

Its reliability, measured on other held-out replies than it was fitted on, is reported by
`chatbot eval`: the expected calibration error (`ece`) and the area under the ROC curve for
telling right replies from wrong ones (`auroc`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from chatbot.errors import ChatbotError
from chatbot.rundir import CALIBRATION  # noqa: F401 (its home; imported from here too)

LOGPROB_FLOOR = -10.0  # mean log-probabilities below this count as this (one outlier token)


WORDS_CAP = 4  # extra and missing words count up to this many


@dataclass(frozen=True)
class Evidence:
    similarity: float
    margin: float
    logprob: float
    unknown: float
    known: bool
    extra: int = 0
    missing: int = 0

    def features(self) -> list[float]:
        """The regression's inputs: the evidence, the log-probability clipped and scaled to
        [-1, 0], the similarity once more for a known reply (a close prompt's own reply is
        worth more than the same closeness with a reply from elsewhere), and the extra and
        missing words, capped and scaled to [0, 1]."""
        logprob = max(LOGPROB_FLOOR, min(0.0, self.logprob)) / -LOGPROB_FLOOR
        known = float(self.known)
        return [self.similarity, self.margin, logprob, self.unknown, known,
                self.similarity * known, min(self.extra, WORDS_CAP) / WORDS_CAP,
                min(self.missing, WORDS_CAP) / WORDS_CAP]


FEATURES = ("similarity", "margin", "logprob", "unknown", "known", "similarity_if_known",
            "extra_words", "missing_words")


def unmatched(typed: Sequence[str], known: Sequence[str]) -> tuple[int, int]:
    """(words of `typed` that `known` lacks, words of `known` that `typed` lacks), a word
    matching its own typo (one character dropped, added, changed, or two swapped, in words of
    3 characters or more)."""
    return (sum(not any(_near(a, b) for b in known) for a in typed),
            sum(not any(_near(b, a) for a in typed) for b in known))


def _near(a: str, b: str) -> bool:
    if a == b:
        return True
    if min(len(a), len(b)) < 3 or abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        diff = [i for i in range(len(a)) if a[i] != b[i]]
        return len(diff) == 1 or (len(diff) == 2 and diff[1] == diff[0] + 1
                                  and a[diff[0]] == b[diff[1]] and a[diff[1]] == b[diff[0]])
    short, long = (a, b) if len(a) < len(b) else (b, a)
    return any(long[:i] + long[i + 1:] == short for i in range(len(long)))


@dataclass(frozen=True)
class Calibration:
    """P(right | evidence) = sigmoid(weights . features + bias)."""

    weights: tuple[float, ...]
    bias: float
    examples: int = 0  # the replies it was fitted on
    right: int = 0  # of which right

    def __call__(self, evidence: Evidence) -> float:
        z = float(np.dot(self.weights, evidence.features())) + self.bias
        return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, z))))

    @property
    def calibrated(self) -> bool:
        return self.examples > 0

    @classmethod
    def fit(cls, evidence: Sequence[Evidence], right: Sequence[bool],
            l2: float = 1e-3, steps: int = 50) -> Calibration:
        """Logistic regression by Newton's method, with a little L2 (`l2`, on the weights,
        not the bias) so that a feature that separates perfectly keeps a finite weight."""
        if not evidence:
            raise ChatbotError("calibration needs at least one reply to fit on")
        x = np.array([e.features() for e in evidence], dtype=np.float64)
        x = np.hstack([x, np.ones((len(x), 1))])
        y = np.array(right, dtype=np.float64)
        w = np.zeros(x.shape[1])
        penalty = np.full(x.shape[1], l2 * len(x))
        penalty[-1] = 0.0
        for _ in range(steps):
            p = 1.0 / (1.0 + np.exp(-np.clip(x @ w, -60, 60)))
            gradient = x.T @ (p - y) + penalty * w
            hessian = (x * (p * (1 - p))[:, None]).T @ x + np.diag(penalty + 1e-9)
            step = np.linalg.solve(hessian, gradient)
            w -= step
            if np.abs(step).max() < 1e-8:
                break
        return cls(tuple(float(v) for v in w[:-1]), float(w[-1]), len(y), int(y.sum()))

    def to_json(self) -> str:
        return json.dumps({"features": FEATURES, **asdict(self)}, indent=1) + "\n"

    @classmethod
    def load(cls, path: str | Path) -> Calibration:
        """The run's calibration.json; UNCALIBRATED when there is none, or when it was fitted
        on other features (by an older chatbot: `chatbot calibrate` fits it again)."""
        path = Path(path)
        if not path.exists():
            return UNCALIBRATED
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            if (isinstance(raw, dict) and isinstance(raw.get("features"), list)
                    and tuple(raw["features"]) != FEATURES):
                return UNCALIBRATED
            weights, bias = tuple(float(v) for v in raw["weights"]), float(raw["bias"])
            if len(weights) != len(FEATURES) or not all(map(math.isfinite, (*weights, bias))):
                raise ValueError(f"{len(FEATURES)} finite weights and a finite bias expected")
            return cls(weights, bias, int(raw["examples"]), int(raw["right"]))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ChatbotError(f"{path}: not a readable calibration ({exc}); fit it again with "
                               f"'chatbot calibrate --model {path.parent}'") from None


class _Uncalibrated(Calibration):
    """For runs without calibration.json: the similarity, times the share of known words,
    halved when the reply is not the closest prompt's own. A ranking, not a probability."""

    def __call__(self, evidence: Evidence) -> float:
        score = evidence.similarity * (1.0 - evidence.unknown)
        return score if evidence.known else score / 2


UNCALIBRATED = _Uncalibrated((), 0.0)


def ece(confidence: Sequence[float], right: Sequence[bool], bins: int = 10) -> float:
    """Expected calibration error: over `bins` equal-width bins of confidence, the mean
    |share right - mean confidence|, weighted by each bin's share of the replies."""
    c = np.asarray(confidence, dtype=np.float64)
    y = np.asarray(right, dtype=np.float64)
    if not len(c):
        return float("nan")
    which = np.minimum((c * bins).astype(int), bins - 1)
    total = 0.0
    for b in range(bins):
        mask = which == b
        if mask.any():
            total += mask.sum() / len(c) * abs(y[mask].mean() - c[mask].mean())
    return float(total)


def auroc(confidence: Sequence[float], right: Sequence[bool]) -> float:
    """The area under the ROC curve: the chance that a right reply scores above a wrong one
    (ties count half); nan without both kinds."""
    c = np.asarray(confidence, dtype=np.float64)
    y = np.asarray(right, dtype=bool)
    positives, negatives = int(y.sum()), int((~y).sum())
    if not positives or not negatives:
        return float("nan")
    order = np.argsort(c, kind="mergesort")
    ranks = np.empty(len(c))
    sorted_c = c[order]
    i = 0
    while i < len(c):  # average ranks over ties
        j = i
        while j + 1 < len(c) and sorted_c[j + 1] == sorted_c[i]:
            j += 1
        ranks[order[i: j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return float((ranks[y].sum() - positives * (positives + 1) / 2) / (positives * negatives))
