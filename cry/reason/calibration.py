"""Calibration fitted on validation babies: probabilities that mean what they say, and the
thresholds the decision rule uses (silence, and "reason uncertain")."""
from __future__ import annotations

from functools import partial

import numpy as np

from cry.decision import reason_shares
from cry.params import CLASSES, SILENCE
from cry.reason.info import Calibration, ReasonClaims


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
    from scipy.optimize import minimize_scalar

    if len(labels) == 0:
        return 1.0
    result = minimize_scalar(lambda t: _nll(probabilities, labels, t), bounds=(0.05, 20.0), method="bounded")
    return float(result.x)


def fit_calibration(probabilities: np.ndarray, labels: np.ndarray, silence: int = SILENCE,
                    l2: float = 1e-3) -> Calibration:
    """Calibration in the two questions the model answers, fitted on validation windows.

    Crying or quiet: Platt scaling of the silence probability's log-odds (monotone, so the
    crying-vs-silence ranking is kept). Which reason, among cries: a temperature and one
    log-prior shift per reason (bias-corrected temperature scaling, Alexandari et al., 2020).
    Balanced training teaches the model equal priors that the real mix (mostly "hungry") does
    not have; one temperature over all classes can only flatten or sharpen, so it either keeps
    the reasons overconfident or blurs the silence it is sure of (README, Results). A small L2
    keeps the shift of a reason absent from validation finite.
    The probabilities then fit this corpus, where few windows are silence; so the
    crying-or-quiet decision is not "silence above 0.5" (that calls most silence windows
    crying) but silence_threshold: silence's share of the validation windows, above which
    silence is likelier than its prior, the decision that weighs both errors equally
    whatever the mix of sounds.
    """
    from scipy.optimize import minimize
    from sklearn.linear_model import LogisticRegression

    n_classes = probabilities.shape[1]
    reasons = [c for c in range(n_classes) if c != silence]
    calibration = {"silence_scale": 1.0, "silence_shift": 0.0, "temperature": 1.0,
                   "class_log_bias": (0.0,) * n_classes, "silence_threshold": 0.5}
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
        calibration["class_log_bias"] = tuple(0.0 if c == silence else float(bias[reasons.index(c)])
                                              for c in range(n_classes))
    return Calibration(**calibration)


def _silence_log_odds(probabilities: np.ndarray, silence: int) -> np.ndarray:
    q = np.clip(probabilities[:, silence], 1e-7, 1 - 1e-7)
    return np.log(q / (1 - q))


def calibrate(probabilities: np.ndarray, calibration: Calibration | None, silence: int = SILENCE) -> np.ndarray:
    """Apply fit_calibration's result. A model saved before the two-level calibration gets plain
    temperature scaling; None changes nothing."""
    probabilities = np.asarray(probabilities, dtype=float)
    if calibration is None:
        return probabilities
    if not calibration.two_level:
        return apply_temperature(probabilities, calibration.temperature)
    quiet = 1 / (1 + np.exp(-(calibration.silence_scale * _silence_log_odds(probabilities, silence)
                              + calibration.silence_shift)))
    reasons = [c for c in range(probabilities.shape[1]) if c != silence]
    bias = np.asarray(calibration.class_log_bias, dtype=float)[reasons]
    out = np.empty_like(probabilities)
    out[:, reasons] = (1 - quiet)[:, None] * apply_temperature(
        probabilities[:, reasons] / np.maximum(probabilities[:, reasons].sum(1, keepdims=True), 1e-12),
        calibration.temperature, bias)
    out[:, silence] = quiet
    return out


def choose_uncertain_threshold(probabilities: np.ndarray, labels: np.ndarray, silence: int = SILENCE,
                               target_precision: float = 0.6, margin_over_prior: float = 0.1) -> float:
    """Lowest top reason share (the reasons' probabilities of a cry, silence left out, as the
    live predictor shows them) at which reason claims on validation cries are right often
    enough, so the live predictor says "uncertain" below it.

    Often enough means at least target_precision, and at least margin_over_prior better than
    always naming the commonest reason: on this corpus "hungry" alone is right most of the
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


def reason_claim_skill(probabilities: np.ndarray, labels: np.ndarray, babies: np.ndarray, threshold: float,
                       n_boot: int = 1000, seed: int = 0, min_claims: int = 5) -> ReasonClaims:
    """How reason claims at `threshold` fare on held-out babies' cry windows, against naming the prior.

    A claim is a cry window whose top reason share reaches the threshold. Claims are allowed
    live only when the 95% bootstrap lower bound (resampling babies) of their precision is
    above the precision of always naming the commonest reason among these cries: a claim that
    cannot beat the prior tells a parent nothing new, and a confident "hungry" would be a lie
    dressed as knowledge.
    """
    cries = labels != SILENCE
    shares, y, b = reason_shares(probabilities[cries]), labels[cries], np.asarray(babies)[cries]
    claimed = shares.max(axis=1) >= threshold
    prior = int(np.bincount(y, minlength=len(CLASSES)).argmax()) if len(y) else SILENCE
    out = {"threshold": float(threshold), "cry_windows": int(len(y)), "babies": int(len(set(b))),
           "claimed_share": float(claimed.mean()) if len(y) else 0.0,
           "precision": None, "precision_ci_low": None,
           "prior_reason": CLASSES[prior], "prior_precision": float(np.mean(y == prior)) if len(y) else None,
           "allowed": False}
    if claimed.any():
        out["precision"] = float((shares.argmax(axis=1) == y)[claimed].mean())
    if claimed.sum() >= min_claims:
        from cry.reason.metrics import bootstrap_scores  # scikit-learn: not for live use, which only calibrates

        precision = bootstrap_scores(y, shares, b, n_boot, seed,
                                     score_fn=partial(_claim_precision, threshold=threshold))
        out["precision_ci_low"] = precision["precision"]["ci_low"]
        out["allowed"] = bool(out["precision_ci_low"] > out["prior_precision"])
    return ReasonClaims(**out)


def _claim_precision(labels: np.ndarray, shares: np.ndarray, threshold: float) -> dict[str, float]:
    """Share of right claims among rows whose top share reaches threshold (NaN without claims)."""
    claimed = shares.max(axis=1) >= threshold
    right = shares.argmax(axis=1) == labels
    return {"precision": float(right[claimed].mean()) if claimed.any() else float("nan")}
