"""Reply confidence: the evidence's features, the logistic calibration, ECE and AUROC.

Pure NumPy, no model: the calibration is fitted on synthetic evidence whose chance of being
right is known.
"""

from __future__ import annotations

import itertools
import json
import math
import re

import numpy as np
import pytest

from chatbot.decoding.confidence import (
    CALIBRATION,
    FEATURES,
    UNCALIBRATED,
    Calibration,
    Evidence,
    auroc,
    ece,
    unmatched,
)
from chatbot.errors import ChatbotError


def evidence(similarity: float = 0.0, margin: float = 0.0, logprob: float = 0.0,
             unknown: float = 0.0, known: bool = False) -> Evidence:
    return Evidence(similarity, margin, logprob, unknown, known)


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def drawn(n: int, seed: int, slope: float = 4.0, bias: float = -2.0
          ) -> tuple[list[Evidence], list[bool], np.ndarray]:
    """`n` replies with uniform similarity, right with probability sigmoid(slope * s + bias)."""
    rng = np.random.default_rng(seed)
    similarity = rng.uniform(0, 1, n)
    truth = sigmoid(slope * similarity + bias)
    right = rng.uniform(0, 1, n) < truth
    return [evidence(s) for s in similarity.tolist()], right.tolist(), truth


def pairwise_auroc(confidence, right) -> float:
    """The definition: over (right, wrong) pairs, 1 when the right one scores higher, 1/2 on a
    tie."""
    pos = [c for c, r in zip(confidence, right) if r]
    neg = [c for c, r in zip(confidence, right) if not r]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(pos, neg))
    return wins / (len(pos) * len(neg))


# --- evidence ------------------------------------------------------------------------------


def test_features_clip_and_scale_the_logprob_and_repeat_the_similarity_if_known():
    assert len(FEATURES) == len(evidence().features())
    assert evidence(0.5, 0.1, -2.0, 0.25, True).features() == [0.5, 0.1, -0.2, 0.25, 1.0, 0.5,
                                                                0.0, 0.0]
    assert evidence(0.5, logprob=-50.0).features()[2] == -1.0  # at the floor
    assert evidence(0.5, logprob=0.3).features()[2] == 0.0  # a log-probability is at most 0
    assert evidence(0.5, known=False).features()[4:6] == [0.0, 0.0]
    # Extra and missing words, capped at 4 and scaled to [0, 1].
    assert Evidence(0.5, 0.1, -2.0, 0.0, True, 1, 9).features()[6:] == [0.25, 1.0]


@pytest.mark.parametrize(("typed", "known", "expected"), [
    ("how are you", "how are you", (0, 0)),
    ("hwo are you", "how are you", (0, 0)),  # a typo is the word
    ("so how are you", "how are you", (1, 0)),  # a filler word
    ("you are immortal", "you are not immortal", (0, 1)),  # another question
    ("stock market", "what is the stock market", (0, 3)),
    ("do you feel", "can you feel", (1, 1)),
    ("a b", "a c", (1, 1)),  # short words must match exactly
])
def test_unmatched_counts_the_words_one_side_lacks_forgiving_typos(typed, known, expected):
    assert unmatched(typed.split(), known.split()) == expected


# --- ECE ------------------------------------------------------------------------------------


def test_ece_by_hand():
    # Bin [0.1, 0.2): confidence 0.1, half right -> 0.4, weight 1/2; bin [0.9, 1]: 0.9, all
    # right -> 0.1, weight 1/2.
    assert ece([0.1, 0.1, 0.9, 0.9], [False, True, True, True]) == pytest.approx(0.25)
    # One bin: mean confidence 0.325 against 2 of 4 right.
    assert ece([0.31, 0.32, 0.33, 0.34], [True, False, True, False]) == pytest.approx(0.175)


def test_ece_is_zero_when_confidence_is_the_share_right():
    assert ece([0.25] * 4, [True, False, False, False]) == pytest.approx(0.0)
    assert ece([0.0, 0.0, 1.0, 1.0], [False, False, True, True]) == pytest.approx(0.0)


def test_ece_puts_a_confidence_of_one_in_the_last_bin_and_counts_bins():
    assert ece([1.0, 0.95], [True, False]) == pytest.approx(abs(0.5 - 0.975))
    # Two bins of [0, 0.5) and [0.5, 1]: 0.4 and 0.6 no longer share one.
    assert ece([0.4, 0.6], [False, True], bins=1) == pytest.approx(0.0)
    assert ece([0.4, 0.6], [False, True], bins=2) == pytest.approx(0.4)


def test_ece_of_nothing_is_nan():
    assert math.isnan(ece([], []))


# --- AUROC ----------------------------------------------------------------------------------


def test_auroc_of_a_perfect_and_an_inverted_ranking():
    right = [False, False, True, True]
    assert auroc([0.1, 0.2, 0.8, 0.9], right) == 1.0
    assert auroc([0.9, 0.8, 0.2, 0.1], right) == 0.0


def test_auroc_counts_ties_half():
    assert auroc([0.5] * 4, [True, False, True, False]) == 0.5
    # Right 0.5 and 0.9 against wrong 0.5 and 0.2: 0.5 + 1 + 1 + 1 of 4 pairs.
    assert auroc([0.5, 0.5, 0.2, 0.9], [True, False, False, True]) == pytest.approx(0.875)
    # Ties that sort across the right/wrong boundary in both directions.
    assert auroc([0.3, 0.3, 0.3, 0.7, 0.7], [False, True, True, False, True]) == pytest.approx(
        pairwise_auroc([0.3, 0.3, 0.3, 0.7, 0.7], [False, True, True, False, True]))


def test_auroc_is_the_pairwise_definition_on_random_scores_with_ties():
    rng = np.random.default_rng(3)
    for _ in range(20):
        confidence = rng.integers(0, 5, 30) / 4  # few distinct values: many ties
        right = rng.uniform(0, 1, 30) < 0.4
        if right.all() or not right.any():
            continue
        assert auroc(confidence, right) == pytest.approx(
            pairwise_auroc(confidence.tolist(), right.tolist()))


def test_auroc_of_one_class_only_is_nan():
    assert math.isnan(auroc([0.2, 0.8], [True, True]))
    assert math.isnan(auroc([0.2, 0.8], [False, False]))
    assert math.isnan(auroc([], []))


# --- the calibration ------------------------------------------------------------------------


def test_fit_recovers_a_known_logistic_relation():
    found, right, _ = drawn(2000, seed=0)
    calibration = Calibration.fit(found, right)
    assert calibration.weights[0] == pytest.approx(4.0, abs=0.7)
    assert calibration.bias == pytest.approx(-2.0, abs=0.4)
    # Features that never vary carry no weight (the L2 keeps them at 0).
    assert all(w == pytest.approx(0.0, abs=1e-6) for w in calibration.weights[1:])
    assert (calibration.examples, calibration.right) == (2000, sum(right))
    assert calibration.calibrated


def test_fitted_probabilities_are_calibrated_on_fresh_replies():
    calibration = Calibration.fit(*drawn(2000, seed=0)[:2])
    fresh, right, truth = drawn(20_000, seed=1)
    confidence = np.array([calibration(e) for e in fresh])
    assert np.abs(confidence - truth).max() < 0.08  # close to the true probability everywhere
    assert ece(confidence, right) < 0.03
    assert auroc(confidence, right) == pytest.approx(auroc(truth, right), abs=1e-9)  # monotone
    assert all(0.0 <= c <= 1.0 for c in confidence)


def test_fit_keeps_finite_weights_when_a_feature_separates_perfectly():
    found = [evidence(s, known=s > 0.5) for s in np.linspace(0, 1, 50).tolist()]
    calibration = Calibration.fit(found, [e.known for e in found])
    assert all(math.isfinite(w) for w in calibration.weights) and math.isfinite(calibration.bias)
    assert calibration(evidence(0.9, known=True)) > 0.9
    assert calibration(evidence(0.1, known=False)) < 0.1


def test_fit_needs_at_least_one_reply():
    with pytest.raises(ChatbotError, match="at least one"):
        Calibration.fit([], [])


def test_extreme_evidence_gives_a_probability_not_an_overflow():
    calibration = Calibration((1e6,) + (0.0,) * (len(FEATURES) - 1), 0.0, 1, 1)
    assert calibration(evidence(1.0)) == pytest.approx(1.0)
    assert calibration(evidence(-1.0)) == pytest.approx(0.0)


def test_uncalibrated_is_the_similarity_scaled_by_known_words_and_halved_if_not_known():
    assert not UNCALIBRATED.calibrated
    assert UNCALIBRATED(evidence(0.8, unknown=0.25, known=True)) == pytest.approx(0.6)
    assert UNCALIBRATED(evidence(0.8, unknown=0.25, known=False)) == pytest.approx(0.3)
    assert UNCALIBRATED(evidence(0.0, unknown=1.0, known=False)) == 0.0


# --- calibration.json ---------------------------------------------------------------------


def test_to_json_and_load_round_trip(tmp_path):
    calibration = Calibration.fit(*drawn(500, seed=2)[:2])
    path = tmp_path / CALIBRATION
    path.write_text(calibration.to_json(), encoding="utf-8")
    assert json.loads(path.read_text())["features"] == list(FEATURES)
    loaded = Calibration.load(path)
    assert loaded == calibration and type(loaded) is Calibration
    probe = evidence(0.7, 0.2, -1.5, 0.1, True)
    assert loaded(probe) == calibration(probe)


def test_a_run_without_calibration_json_is_uncalibrated(tmp_path):
    assert Calibration.load(tmp_path / CALIBRATION) is UNCALIBRATED


@pytest.mark.parametrize("text", [
    "{not json",
    "",
    json.dumps({"features": list(FEATURES), "weights": [1.0] * len(FEATURES),
                "bias": 0.0}),  # no counts
    json.dumps({"features": list(FEATURES), "weights": "heavy", "bias": 0.0, "examples": 1,
                "right": 1}),
    json.dumps({"features": list(FEATURES), "weights": [1.0] * 5, "bias": 0.0, "examples": 1,
                "right": 1}),  # a weight short: every reply would fail on it
    json.dumps([1, 2, 3]),
])
def test_a_damaged_calibration_names_the_file_and_the_command_to_fix_it(tmp_path, text):
    path = tmp_path / CALIBRATION
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ChatbotError, match=re.escape(str(path))) as caught:
        Calibration.load(path)
    assert f"chatbot calibrate --model {tmp_path}" in str(caught.value)


def test_a_calibration_fitted_on_other_features_is_ignored_until_fitted_again(tmp_path):
    path = tmp_path / CALIBRATION  # (an older chatbot's: `chatbot calibrate` fits it again)
    path.write_text(json.dumps({"features": ["similarity"], "weights": [1.0], "bias": 0.0,
                                "examples": 1, "right": 1}), encoding="utf-8")
    assert Calibration.load(path) is UNCALIBRATED


def test_a_calibration_that_is_not_utf8_is_refused_with_the_file(tmp_path):
    path = tmp_path / CALIBRATION
    path.write_bytes(b"\xff\xfe{")
    with pytest.raises(ChatbotError, match="chatbot calibrate"):
        Calibration.load(path)
