"""Honest numbers: macro metrics with bootstrap intervals over babies, baselines, calibration."""
from __future__ import annotations

import warnings

import numpy as np
from scipy.optimize import minimize, minimize_scalar
from sklearn.metrics import (accuracy_score, balanced_accuracy_score, confusion_matrix, f1_score,
                             precision_recall_fscore_support, roc_auc_score)

from cry.params import CLASSES

HEADLINE = ("accuracy", "balanced_accuracy", "macro_f1", "macro_roc_auc")


def macro_roc_auc(labels: np.ndarray, probabilities: np.ndarray) -> float:
    """One-vs-rest ROC-AUC averaged over the classes present with both outcomes; NaN if none."""
    aucs = [roc_auc_score(labels == c, probabilities[:, c]) for c in range(probabilities.shape[1])
            if 0 < (labels == c).sum() < len(labels)]
    return float(np.mean(aucs)) if aucs else float("nan")


def reason_shares(probabilities: np.ndarray, silence: int = CLASSES.index("silence")) -> np.ndarray:
    """Each row's reasons as shares of the cry: the silence column zeroed, the rest summing to 1."""
    shares = np.array(probabilities, dtype=float, ndmin=2)
    shares[:, silence] = 0.0
    return shares / np.maximum(shares.sum(axis=1, keepdims=True), 1e-12)


def decide(probabilities: np.ndarray, silence_threshold: float | None = None,
           silence: int = CLASSES.index("silence")) -> np.ndarray:
    """The predicted class of each row: the top class or, with a silence_threshold (fitted by
    fit_calibration), silence at or above it and otherwise the top reason."""
    predicted = probabilities.argmax(axis=1)
    if silence_threshold is not None:
        predicted = np.where(probabilities[:, silence] >= silence_threshold, silence,
                             reason_shares(probabilities, silence).argmax(axis=1))
    return predicted


def scores(labels: np.ndarray, probabilities: np.ndarray, silence_threshold: float | None = None) -> dict[str, float]:
    """The four headline metrics over the classes present in labels (decisions by decide())."""
    predicted = decide(probabilities, silence_threshold)
    present = np.unique(labels)
    return {"accuracy": float(accuracy_score(labels, predicted)),
            "balanced_accuracy": float(balanced_accuracy_score(labels, predicted)),
            "macro_f1": float(f1_score(labels, predicted, labels=present, average="macro", zero_division=0)),
            "macro_roc_auc": macro_roc_auc(labels, probabilities)}


def bootstrap_scores(labels, probabilities, babies, n_boot: int = 1000, seed: int = 0,
                     score_fn=scores) -> dict[str, dict]:
    """Each metric with a 95% interval from resampling babies (not windows) with replacement.

    Windows of one baby are not independent; resampling them one by one would give
    intervals far too narrow.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        point = score_fn(labels, probabilities)
    unique, inverse = np.unique(babies, return_inverse=True)
    members = [np.flatnonzero(inverse == b) for b in range(len(unique))]
    rng = np.random.default_rng(seed)
    draws = {k: [] for k in point}
    with warnings.catch_warnings():  # a resample may lack a class; the metric copes
        warnings.simplefilter("ignore")
        for _ in range(n_boot):
            rows = np.concatenate([members[b] for b in rng.integers(0, len(unique), len(unique))])
            for k, v in score_fn(labels[rows], probabilities[rows]).items():
                draws[k].append(v)
    out = {}
    for k, v in point.items():
        values = np.asarray(draws[k], float)
        values = values[np.isfinite(values)]
        low, high = (np.percentile(values, [2.5, 97.5]) if len(values) else (np.nan, np.nan))
        out[k] = {"value": v, "ci_low": float(low), "ci_high": float(high)}
    return out


def baseline_probabilities(train_labels: np.ndarray, n: int, kind: str, seed: int = 0) -> np.ndarray:
    """Predictions that ignore the audio: 'majority' (always the commonest training class, one-hot)
    or 'chance' (a random class drawn by the training prior)."""
    prior = np.bincount(train_labels, minlength=len(CLASSES)) / len(train_labels)
    if kind == "majority":
        return np.tile(np.eye(len(CLASSES))[prior.argmax()], (n, 1))
    rng = np.random.default_rng(seed)
    probabilities = rng.random((n, len(CLASSES)))
    probabilities[np.arange(n), rng.choice(len(CLASSES), size=n, p=prior)] += 1.0
    return probabilities / probabilities.sum(axis=1, keepdims=True)


def per_class(labels: np.ndarray, probabilities: np.ndarray, silence_threshold: float | None = None) -> dict[str, dict]:
    precision, recall, f1, support = precision_recall_fscore_support(
        labels, decide(probabilities, silence_threshold), labels=range(len(CLASSES)), zero_division=0)
    return {c: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
                "support": int(support[i])} for i, c in enumerate(CLASSES)}


def confusion(labels: np.ndarray, probabilities: np.ndarray, silence_threshold: float | None = None) -> np.ndarray:
    return confusion_matrix(labels, decide(probabilities, silence_threshold), labels=range(len(CLASSES)))


def aggregate_recordings(probabilities, labels, recordings, babies, silence: int = CLASSES.index("silence")):
    """Recording-level view, in the two questions: the recording is crying as much as its most
    crying window (its silence probability is the smallest of its windows': cries pause, so
    the mean would let a recording's quiet gaps outvote its cry), and the reason is the mean
    of its windows' reason probabilities.

    Returns (probabilities [n_rec, C], labels [n_rec], babies [n_rec], recordings [n_rec]).
    """
    probabilities = np.asarray(probabilities, dtype=float)
    unique, first, inverse = np.unique(recordings, return_index=True, return_inverse=True)
    sums = np.zeros((len(unique), probabilities.shape[1]))
    np.add.at(sums, inverse, probabilities)
    quiet = np.ones(len(unique))
    np.minimum.at(quiet, inverse, probabilities[:, silence])
    out = (1 - quiet)[:, None] * reason_shares(sums, silence)
    out[:, silence] = quiet
    return out, labels[first], babies[first], unique


# ---- calibration --------------------------------------------------------------------------

def _scaled_logits(probabilities: np.ndarray, temperature: float, log_bias=None) -> np.ndarray:
    """log p / T + b, shifted so the largest per row is 0 (exp cannot overflow)."""
    logits = np.log(np.clip(probabilities, 1e-12, 1.0)) / temperature
    if log_bias is not None:
        logits = logits + np.asarray(log_bias, dtype=float)
    return logits - logits.max(axis=1, keepdims=True)


def apply_temperature(probabilities: np.ndarray, temperature: float, log_bias=None) -> np.ndarray:
    """softmax(log p / T + b): T > 1 softens, T < 1 sharpens; b (one per class, optional)
    moves the class priors."""
    exp = np.exp(_scaled_logits(probabilities, temperature, log_bias))
    return exp / exp.sum(axis=1, keepdims=True)


def _nll(probabilities, labels, temperature, log_bias=None):
    logits = _scaled_logits(probabilities, temperature, log_bias)
    log_norm = np.log(np.exp(logits).sum(axis=1))
    return float(np.mean(log_norm - logits[np.arange(len(labels)), labels]))


def fit_temperature(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """Temperature minimising validation negative log-likelihood (Guo et al., 2017)."""
    if len(labels) == 0:
        return 1.0
    result = minimize_scalar(lambda t: _nll(probabilities, labels, t), bounds=(0.05, 20.0), method="bounded")
    return float(result.x)


def fit_calibration(probabilities: np.ndarray, labels: np.ndarray, silence: int = CLASSES.index("silence"),
                    l2: float = 1e-3) -> dict:
    """Calibration in the two questions the model answers, fitted on validation windows.

    Crying or quiet: Platt scaling of the silence probability's log-odds (monotone, so the
    crying-vs-silence ranking is kept). Which reason, among cries: a temperature and one
    log-prior shift per reason (bias-corrected temperature scaling, Alexandari et al., 2020).
    Balanced training teaches the model equal priors that the real mix (~80% "hungry") does
    not have; one temperature over all classes can only flatten or sharpen, so it either keeps
    the reasons overconfident or blurs the silence it is sure of (ECE 0.14 vs 0.03 in
    cross-validation, README). A small L2 keeps the shift of a reason absent from validation finite.
    The probabilities then fit this corpus, where only ~4% of windows are silence; so the
    crying-or-quiet decision is not "silence above 0.5" (that called 75% of silence windows
    crying) but silence_threshold: silence's share of the validation windows, above which
    silence is likelier than its prior, the decision that weighs both errors equally
    whatever the mix of sounds.
    Returns a dict for calibrate(): silence_scale, silence_shift, temperature, class_log_bias,
    and silence_threshold.
    """
    from sklearn.linear_model import LogisticRegression

    n_classes = probabilities.shape[1]
    reasons = [c for c in range(n_classes) if c != silence]
    calibration = {"silence_scale": 1.0, "silence_shift": 0.0, "temperature": 1.0, "class_log_bias": [0.0] * n_classes,
                   "silence_threshold": 0.5}
    quiet = labels == silence
    if 0 < quiet.sum() < len(labels):
        calibration["silence_threshold"] = float(quiet.mean())
        platt = LogisticRegression(C=100.0).fit(_silence_log_odds(probabilities, silence)[:, None], quiet)
        calibration.update(silence_scale=float(platt.coef_[0, 0]), silence_shift=float(platt.intercept_[0]))
    cries = ~quiet
    if cries.any():
        p, y = probabilities[cries][:, reasons], np.searchsorted(reasons, labels[cries])

        def loss(params):
            return _nll(p, y, np.exp(params[0]), params[1:]) + l2 * np.sum(params[1:] ** 2)
        result = minimize(loss, np.zeros(1 + len(reasons)), method="L-BFGS-B",
                          bounds=[(np.log(0.05), np.log(20.0))] + [(-10, 10)] * len(reasons))
        bias = result.x[1:] - result.x[1:].mean()  # only differences between reasons matter
        calibration["temperature"] = float(np.exp(result.x[0]))
        calibration["class_log_bias"] = [0.0 if c == silence else float(bias[reasons.index(c)]) for c in range(n_classes)]
    return calibration


def _silence_log_odds(probabilities: np.ndarray, silence: int) -> np.ndarray:
    q = np.clip(probabilities[:, silence], 1e-7, 1 - 1e-7)
    return np.log(q / (1 - q))


def calibrate(probabilities: np.ndarray, calibration: dict | None, silence: int = CLASSES.index("silence")) -> np.ndarray:
    """Apply fit_calibration's result. A dict with only "temperature" (models saved before the
    two-level calibration) is plain temperature scaling; None changes nothing."""
    probabilities = np.asarray(probabilities, dtype=float)
    if not calibration:
        return probabilities
    if "silence_scale" not in calibration:
        return apply_temperature(probabilities, calibration.get("temperature", 1.0))
    quiet = 1 / (1 + np.exp(-(calibration["silence_scale"] * _silence_log_odds(probabilities, silence)
                              + calibration["silence_shift"])))
    reasons = [c for c in range(probabilities.shape[1]) if c != silence]
    bias = np.asarray(calibration["class_log_bias"], dtype=float)[reasons]
    out = np.empty_like(probabilities)
    out[:, reasons] = (1 - quiet)[:, None] * apply_temperature(
        probabilities[:, reasons] / np.maximum(probabilities[:, reasons].sum(1, keepdims=True), 1e-12),
        calibration["temperature"], bias)
    out[:, silence] = quiet
    return out


def expected_calibration_error(probabilities: np.ndarray, labels: np.ndarray, n_bins: int = 10):
    """ECE of the top-class confidence, and the per-bin table for a reliability diagram."""
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == labels
    edges = np.linspace(0, 1, n_bins + 1)
    bins = np.clip(np.digitize(confidence, edges[1:-1]), 0, n_bins - 1)
    table, ece = [], 0.0
    for b in range(n_bins):
        inside = bins == b
        if inside.any():
            gap = abs(correct[inside].mean() - confidence[inside].mean())
            ece += inside.mean() * gap
            table.append({"bin_low": float(edges[b]), "bin_high": float(edges[b + 1]), "count": int(inside.sum()),
                          "confidence": float(confidence[inside].mean()), "accuracy": float(correct[inside].mean())})
    return float(ece), table


def choose_uncertain_threshold(probabilities: np.ndarray, labels: np.ndarray, silence: int,
                               target_precision: float = 0.6, margin_over_prior: float = 0.1) -> float:
    """Lowest top reason share (the reasons' probabilities of a cry, silence left out, as the
    live predictor shows them) at which reason claims on validation cries are right often
    enough, so the live predictor says "uncertain" below it.

    Often enough means at least target_precision, and at least margin_over_prior better than
    always naming the commonest reason: on this corpus "hungry" alone is right ~80% of the
    time, and a claim that only repeats that prior tells a parent nothing.
    Returns 1.0 (always uncertain) when no threshold qualifies.
    """
    cries = labels != silence
    if not cries.any():
        return 1.0
    shares = reason_shares(probabilities[cries], silence)  # as the live predictor shows them
    top, right = shares.max(axis=1), shares.argmax(axis=1) == labels[cries]
    prior = np.bincount(labels[cries]).max() / cries.sum()
    needed = max(target_precision, prior + margin_over_prior)
    for threshold in np.unique(top):
        confident = top >= threshold
        if confident.sum() >= 5 and right[confident].mean() >= needed:
            return float(threshold)
    return 1.0
