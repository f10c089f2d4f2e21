"""A cross-validation run scored: the two questions with intervals over babies, false alarms of one
model, calibration variants, the spread over folds and the baselines through the same folds."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from cry.decision import decide
from cry.files import write_json, write_text
from cry.params import CLASSES, SILENCE, Settings
from cry.reason import reports
from cry.reason.baselines import baselines
from cry.reason.calibration import fit_calibration
from cry.reason.crossval import PREDICTIONS_FILE, SUMMARY_FILE, CvPredictions, CvRun, fold_runs
from cry.reason.metrics import (N_BOOT, aggregate_recordings, bootstrap_scores, expected_calibration_error,
                                scores_by_reason, two_level_scores)

PER_REASON_FILE = "cv_per_reason.md"


def per_fold_scores(predictions: CvPredictions, folds: list, seeds) -> list[dict]:
    """The two-level scores of each fold x seed, at recording level."""
    p = predictions
    out = []
    for s, seed, k, test in fold_runs(p.babies, folds, seeds):
        fold_p, fold_y, _, _ = aggregate_recordings(p.calibrated[s, test], p.labels[test], p.recordings[test],
                                                    p.babies[test])
        out.append({"seed": seed, "fold": k, **two_level_scores(fold_y, fold_p)})
    return out


def fold_spread(per_fold: list[dict]) -> dict:
    """Mean and standard deviation of each score over the fold x seed runs."""
    return {key: {"mean": float(np.nanmean([f[key] for f in per_fold])),
                  "std": float(np.nanstd([f[key] for f in per_fold]))}
            for key in per_fold[0] if key not in ("seed", "fold")}


def false_alarms(predictions: CvPredictions, folds: list, seeds, settings: Settings) -> dict:
    """The crying-or-quiet decision as one shipped model makes it: each run's windows decided at
    the silence threshold its calibration fitted on that run's validation windows. Returns
    false alarms per hour of silence and the share of cry windows called silence, over seeds."""
    p = predictions
    label_of = dict(zip(p.paths, p.labels))
    said_silence = np.zeros(p.calibrated.shape[:2], bool)
    for run, (s, _, _, test) in enumerate(fold_runs(p.babies, folds, seeds)):
        validated = p.validation_run == run
        val_labels = np.array([label_of[path] for path in p.validation_paths[validated]])
        threshold = fit_calibration(p.validation_raw[validated], val_labels).silence_threshold
        said_silence[s, test] = decide(p.calibrated[s, test], threshold) == SILENCE
    silence = p.labels == SILENCE
    hours = max(silence.sum() * settings.window_hop_seconds / 3600, 1e-9)
    return {"false_alarms_per_hour_of_silence": float((~said_silence[:, silence]).sum(axis=1).mean() / hours),
            "cry_windows_called_silence": float(said_silence[:, ~silence].mean())}


def calibration_variants(predictions: CvPredictions) -> dict:
    """ECE of one model (what train_model.py ships), averaged over seeds, with the two-level
    calibration, one temperature, none; of the seeds' mean (softer); and the recording-level
    scores of the same models uncalibrated and with one temperature."""
    p = predictions

    def single_ece(q):
        return float(np.mean([expected_calibration_error(one, p.labels)[0] for one in q]))
    out = {"ece_after_scaling": single_ece(p.calibrated),
           "ece_after_temperature_only": single_ece(p.temperature_only),
           "ece_seed_ensemble": expected_calibration_error(p.calibrated.mean(axis=0), p.labels)[0],
           "ece_before_scaling": single_ece(p.raw)}
    for name, q in (("raw", p.raw), ("temperature_only", p.temperature_only)):
        rec_p, y, _, _ = aggregate_recordings(q.mean(axis=0), p.labels, p.recordings, p.babies)
        out[f"{name}_scores"] = two_level_scores(y, rec_p)
    return out


def summarise(predictions: CvPredictions, folds: list, run: CvRun, n_boot: int = N_BOOT) -> dict:
    """Everything cv.json holds, from out-of-fold window probabilities: the seeds' mean at
    recording level with 95% intervals over babies (window level too, from a fifth of the
    resamples), then the views above; the baselines on predictions.features."""
    p, seeds = predictions, list(run.seeds)
    mean_p = p.calibrated.mean(axis=0)
    rec_p, rec_labels, rec_babies, _ = aggregate_recordings(mean_p, p.labels, p.recordings, p.babies)
    result = bootstrap_scores(rec_labels, rec_p, rec_babies, n_boot, score_fn=scores_by_reason)
    result["reason_support"] = reason_support(rec_labels, rec_babies)
    result["window_level"] = bootstrap_scores(p.labels, mean_p, p.babies, n_boot // 5, score_fn=two_level_scores)
    result.update(false_alarms(p, folds, seeds, run.settings))
    result.update(calibration_variants(p))
    per_fold = per_fold_scores(p, folds, seeds)
    result["fold_mean_std"], result["per_fold"] = fold_spread(per_fold), per_fold
    result["baselines"] = baselines(rec_labels, rec_babies, p.features, folds, n_boot)
    result.update(run.to_dict(), calibration="two-level: Platt on silence, temperature + log-prior shifts on reasons",
                  aggregation="silence: smallest window probability; reason: mean of windows")
    return result


def reason_support(labels: np.ndarray, babies: np.ndarray) -> dict[str, dict]:
    """Recordings and babies of each reason."""
    return {c: {"recordings": int((labels == i).sum()), "babies": len(set(babies[labels == i]))}
            for i, c in enumerate(CLASSES) if i != SILENCE}


def per_reason_markdown(result: dict) -> str:
    """Each reason on its own: support, and its one-vs-rest AUC among cries for the model and every
    baseline through the same folds, with 95% intervals from resampling babies."""
    columns = {"model": result, **{k: v for k, v in result["baselines"].items() if k != "majority"}}  # majority: 0.5
    lines = ["| reason | recordings | babies | " + " | ".join(f"{name} AUC" for name in columns) + " |",
             "|---|---:|---:|" + "---|" * len(columns)]
    for reason, support in result["reason_support"].items():
        cells = [reports.interval(r[f"auc_{reason}"]) for r in columns.values()]
        lines.append(f"| {reason} | {support['recordings']} | {support['babies']} | " + " | ".join(cells) + " |")
    beats = [reason for reason in result["reason_support"] if result[f"auc_{reason}"]["ci_low"] > 0.5]
    lines += ["", "Reasons the model tells apart for babies it never heard (95% interval above 0.5): "
              + (", ".join(beats) if beats else "none") + "."]
    return "\n".join(lines) + "\n"


def write_summary(result: dict, folder: Path, experiments_file: Path) -> None:
    """cv.json in folder, each reason's table in cv_per_reason.md, and the run's row (and the
    baselines' first rows) in the experiments table."""
    write_json(result, Path(folder) / SUMMARY_FILE)
    per_reason = per_reason_markdown(result)
    write_text(per_reason, Path(folder) / PER_REASON_FILE)
    print(per_reason)
    old = experiments_file.read_text() if experiments_file.exists() else reports.EXPERIMENTS_HEADER
    write_text(old + reports.experiment_rows(result, old), experiments_file)
    print(json.dumps({k: result[k] for k in ("cry_vs_silence_auc", "reasons_macro_auc", "reasons_macro_f1",
                                             "ece_after_scaling")}, indent=1))
    print(f"cross-validation written to {Path(folder) / SUMMARY_FILE} (window probabilities in {PREDICTIONS_FILE}); "
          f"row added to {experiments_file}")
