"""Honest numbers: macro metrics with bootstrap intervals over babies, beside baselines that ignore the audio."""
from __future__ import annotations

import functools
import warnings

import numpy as np
from sklearn.metrics import (accuracy_score, balanced_accuracy_score, confusion_matrix, f1_score,
                             precision_recall_fscore_support, roc_auc_score)

from cry.decision import decide, reason_shares
from cry.params import CLASSES, SILENCE

HEADLINE = ("accuracy", "balanced_accuracy", "macro_f1", "macro_roc_auc")
N_BOOT = 1000  # resamples of babies behind every 95% interval


def macro_roc_auc(labels: np.ndarray, probabilities: np.ndarray) -> float:
    """One-vs-rest ROC-AUC averaged over the classes present with both outcomes; NaN if none."""
    aucs = [roc_auc_score(labels == c, probabilities[:, c]) for c in range(probabilities.shape[1])
            if 0 < (labels == c).sum() < len(labels)]
    return float(np.mean(aucs)) if aucs else float("nan")


def scores(labels: np.ndarray, probabilities: np.ndarray, silence_threshold: float | None = None) -> dict[str, float]:
    """The four headline metrics over the classes present in labels (decisions by decide())."""
    predicted = decide(probabilities, silence_threshold)
    present = np.unique(labels)
    return {"accuracy": float(accuracy_score(labels, predicted)),
            "balanced_accuracy": float(balanced_accuracy_score(labels, predicted)),
            "macro_f1": float(f1_score(labels, predicted, labels=present, average="macro", zero_division=0)),
            "macro_roc_auc": macro_roc_auc(labels, probabilities)}


def bootstrap_scores(labels, probabilities, babies, n_boot: int = N_BOOT, seed: int = 0,
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


def scores_with_baselines(labels, probabilities, babies, train_labels, silence_threshold: float | None = None,
                          seed: int = 0, n_boot: int = N_BOOT) -> dict:
    """Headline metrics with intervals (the model deciding silence as live does), per class and
    the confusion matrix; the same for the majority and chance baselines."""
    out = {"model": bootstrap_scores(labels, probabilities, babies, n_boot, seed, score_fn=functools.partial(
               scores, silence_threshold=silence_threshold)),
           "per_class": per_class(labels, probabilities, silence_threshold),
           "confusion": confusion(labels, probabilities, silence_threshold).tolist()}
    for kind in ("majority", "chance"):
        baseline = baseline_probabilities(train_labels, len(labels), kind, seed)
        out[kind] = bootstrap_scores(labels, baseline, babies, n_boot, seed)
        out[f"{kind}_per_class"] = per_class(labels, baseline)
    return out


def per_class(labels: np.ndarray, probabilities: np.ndarray, silence_threshold: float | None = None) -> dict[str, dict]:
    precision, recall, f1, support = precision_recall_fscore_support(
        labels, decide(probabilities, silence_threshold), labels=range(len(CLASSES)), zero_division=0)
    return {c: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
                "support": int(support[i])} for i, c in enumerate(CLASSES)}


def confusion(labels: np.ndarray, probabilities: np.ndarray, silence_threshold: float | None = None) -> np.ndarray:
    return confusion_matrix(labels, decide(probabilities, silence_threshold), labels=range(len(CLASSES)))


def aggregate_recordings(probabilities, labels, recordings, babies, silence: int = SILENCE):
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


def reason_view(labels: np.ndarray, probabilities: np.ndarray, silence: int = SILENCE):
    """Among cries only: (reason index [n_cries] into `reasons`, reason shares [n_cries, n_reasons], reasons:
    the class numbers without silence), the silence column dropped and the rest renormalised by reason_shares."""
    crying = labels != silence
    reasons = [c for c in range(probabilities.shape[1]) if c != silence]
    return np.searchsorted(reasons, labels[crying]), reason_shares(probabilities[crying], silence)[:, reasons], reasons


def reason_aucs(labels: np.ndarray, probabilities: np.ndarray, silence: int = SILENCE) -> dict[str, float]:
    """Each reason's one-vs-rest ROC-AUC among cries (NaN where it or the rest is absent)."""
    y, p, reasons = reason_view(labels, probabilities, silence)
    return {CLASSES[c]: float(roc_auc_score(y == i, p[:, i])) if 0 < (y == i).sum() < len(y) else float("nan")
            for i, c in enumerate(reasons)}


def scores_by_reason(labels: np.ndarray, probabilities: np.ndarray, silence: int = SILENCE) -> dict[str, float]:
    """two_level_scores and each reason's one-vs-rest AUC among cries, as "auc_<reason>": a macro average
    over reasons with a handful of babies each hides which of them, if any, is told apart."""
    return {**two_level_scores(labels, probabilities, silence),
            **{f"auc_{c}": v for c, v in reason_aucs(labels, probabilities, silence).items()}}


def two_level_scores(labels: np.ndarray, probabilities: np.ndarray, silence: int = SILENCE) -> dict[str, float]:
    """The two questions apart: crying vs silence (ROC-AUC of 1 - p(silence)), and among cries
    the reason (reason_view)."""
    crying = labels != silence
    out = {"cry_vs_silence_auc": float(roc_auc_score(crying, 1 - probabilities[:, silence]))
           if 0 < crying.sum() < len(labels) else float("nan")}
    y, p, _ = reason_view(labels, probabilities, silence)
    out["reasons_macro_auc"] = macro_roc_auc(y, p)
    out["reasons_macro_f1"] = float(f1_score(y, p.argmax(axis=1), labels=np.unique(y), average="macro",
                                             zero_division=0))
    out["reasons_balanced_accuracy"] = float(balanced_accuracy_score(y, p.argmax(axis=1)))
    return out
