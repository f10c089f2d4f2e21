"""Metrics on cases with known answers: baselines, bootstrap by baby, calibration, the uncertain threshold."""
import numpy as np
import pytest

from cry.reason.calibration import (apply_temperature, calibrate, choose_uncertain_threshold, fit_calibration,
                             fit_temperature)
from cry.decision import SILENCE, decide
from cry.reason.info import Calibration
from cry.reason.metrics import bootstrap_scores, expected_calibration_error, macro_roc_auc, two_level_scores
from cry.params import CLASSES

HUNGRY, TIRED = CLASSES.index("hungry"), CLASSES.index("tired")


def one_hot_probabilities(predicted, confidence):
    p = np.full((len(predicted), len(CLASSES)), (1 - confidence) / (len(CLASSES) - 1))
    p[np.arange(len(predicted)), predicted] = confidence
    return p


def test_claims_that_only_repeat_the_prior_stay_uncertain():
    labels = np.array([HUNGRY] * 80 + [TIRED] * 20)
    always_hungry = one_hot_probabilities(np.full(100, HUNGRY), 0.9)   # right 80%: the prior
    assert choose_uncertain_threshold(always_hungry, labels) == 1.0
    informed = one_hot_probabilities(labels, 0.9)                       # right every time
    assert choose_uncertain_threshold(informed, labels) < 1.0


def test_bootstrap_interval_contains_the_value_and_widens_with_fewer_babies():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 400)
    p = one_hot_probabilities(np.where(rng.random(400) < 0.7, labels, 1 - labels), 0.8)
    many = bootstrap_scores(labels, p, np.arange(400) // 2, n_boot=300)["accuracy"]
    few = bootstrap_scores(labels, p, np.arange(400) // 100, n_boot=300)["accuracy"]
    assert many["ci_low"] <= many["value"] <= many["ci_high"]
    assert few["ci_high"] - few["ci_low"] > many["ci_high"] - many["ci_low"]


def test_temperature_scaling_repairs_overconfidence():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, len(CLASSES), 2000)
    predicted = np.where(rng.random(2000) < 0.6, labels, rng.integers(0, len(CLASSES), 2000))
    overconfident = one_hot_probabilities(predicted, 0.99)               # right ~65%, claims 99%
    before, _ = expected_calibration_error(overconfident, labels)
    t = fit_temperature(overconfident, labels)
    logits = np.log(overconfident) / t
    after, _ = expected_calibration_error(np.exp(logits) / np.exp(logits).sum(1, keepdims=True), labels)
    assert t > 1 and before > 0.3 and after < 0.05


def test_two_level_calibration_repairs_what_one_temperature_cannot():
    """A model trained on balanced batches: sure about silence, at chance for the reason, and
    unaware that 80% of cries are "hungry". One temperature stays miscalibrated; the two-level
    calibration does not, and keeps the crying-vs-silence ranking."""
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(2)
    n, k = 4000, len(CLASSES)
    reasons = [c for c in range(k) if c != SILENCE]
    labels = np.where(rng.random(n) < 0.8, HUNGRY, rng.choice(reasons, n))
    labels[rng.random(n) < 0.1] = SILENCE
    logits = rng.normal(0, 1, (n, k))                          # the reason: noise, equal priors
    logits[:, SILENCE] += np.where(labels == SILENCE, 3.0, -1.0)  # silence: clearly told apart
    balanced = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    one_t = apply_temperature(balanced, fit_temperature(balanced, labels))
    two_level = calibrate(balanced, fit_calibration(balanced, labels))
    assert np.allclose(two_level.sum(1), 1)
    assert expected_calibration_error(two_level, labels)[0] < 0.05 < expected_calibration_error(one_t, labels)[0]
    crying = labels != SILENCE
    assert roc_auc_score(crying, 1 - two_level[:, SILENCE]) == roc_auc_score(crying, 1 - balanced[:, SILENCE])
    old = Calibration.from_dict({"temperature": 2.0})  # a model saved before the two-level calibration
    assert calibrate(balanced, old) == pytest.approx(apply_temperature(balanced, 2.0))


def test_decide_uses_the_silence_threshold_then_the_top_reason():
    p = np.full((3, len(CLASSES)), 0.05)
    p[0, SILENCE], p[0, TIRED] = 0.5, 0.2   # silence on top, above the threshold
    p[1, SILENCE], p[1, TIRED] = 0.3, 0.4   # silence second, but above the threshold
    p[2, SILENCE], p[2, HUNGRY] = 0.6, 0.1  # silence on top, below a high threshold
    assert list(decide(p)) == [SILENCE, TIRED, SILENCE]
    assert list(decide(p, silence_threshold=0.25)) == [SILENCE, SILENCE, SILENCE]
    assert list(decide(p, silence_threshold=0.7)) == [TIRED, TIRED, HUNGRY]


def test_two_level_scores_answer_each_question_alone():
    """Crying vs silence from p(silence) alone; the reason among cries only, silence dropped."""
    rng = np.random.default_rng(3)
    labels = np.array([SILENCE] * 20 + [HUNGRY] * 40 + [TIRED] * 40)
    p = rng.dirichlet(np.ones(len(CLASSES)), len(labels))
    p[:, SILENCE] = np.where(labels == SILENCE, 0.9, 0.05)                   # silence told apart perfectly
    scores = two_level_scores(labels, p)
    assert scores["cry_vs_silence_auc"] == 1.0
    crying = labels != SILENCE
    reasons = [c for c in range(len(CLASSES)) if c != SILENCE]
    y = np.searchsorted(reasons, labels[crying])
    shares = p[crying][:, reasons] / p[crying][:, reasons].sum(1)[:, None]
    assert scores["reasons_macro_auc"] == macro_roc_auc(y, shares)
    assert 0 <= scores["reasons_macro_f1"] <= 1 and 0 <= scores["reasons_balanced_accuracy"] <= 1
