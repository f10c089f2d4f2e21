"""Metrics on cases with known answers: baselines, bootstrap by baby, calibration, the uncertain threshold."""
import numpy as np

from cry.metrics import (apply_temperature, bootstrap_scores, choose_uncertain_threshold, expected_calibration_error,
                         fit_calibration, fit_temperature)
from cry.params import CLASSES

SILENCE, HUNGRY, TIRED = CLASSES.index("silence"), CLASSES.index("hungry"), CLASSES.index("tired")


def one_hot_probabilities(predicted, confidence):
    p = np.full((len(predicted), len(CLASSES)), (1 - confidence) / (len(CLASSES) - 1))
    p[np.arange(len(predicted)), predicted] = confidence
    return p


def test_claims_that_only_repeat_the_prior_stay_uncertain():
    labels = np.array([HUNGRY] * 80 + [TIRED] * 20)
    always_hungry = one_hot_probabilities(np.full(100, HUNGRY), 0.9)   # right 80%: the prior
    assert choose_uncertain_threshold(always_hungry, labels, SILENCE) == 1.0
    informed = one_hot_probabilities(labels, 0.9)                       # right every time
    assert choose_uncertain_threshold(informed, labels, SILENCE) < 1.0


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


def test_class_bias_repairs_what_temperature_cannot_under_lopsided_priors():
    """A model that learned equal priors (balanced training) scores data where one class is
    80%: temperature alone stays miscalibrated, temperature + class bias does not."""
    rng = np.random.default_rng(2)
    n, k = 4000, len(CLASSES)
    labels = np.where(rng.random(n) < 0.8, 1, rng.integers(0, k, n))
    # equal-prior model: a weak hint of the true class, otherwise flat over all classes
    logits = rng.normal(0, 1, (n, k)) + 1.0 * np.eye(k)[labels]
    balanced = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    t_only = apply_temperature(balanced, fit_temperature(balanced, labels))
    temperature, log_bias = fit_calibration(balanced, labels)
    both = apply_temperature(balanced, temperature, log_bias)
    ece_t, _ = expected_calibration_error(t_only, labels)
    ece_both, _ = expected_calibration_error(both, labels)
    assert np.argmax(log_bias) == 1 and ece_both < 0.05 < ece_t
