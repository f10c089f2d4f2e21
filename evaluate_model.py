"""Honest evaluation: metrics with 95% intervals over babies, beside baselines that ignore the audio.

Default: the trained model on its own held-out test babies (the split saved in its JSON).
--audio-dir DIR: the model on any <class>/*.wav folder, through the live windowing and features.
--cv K: grouped K-fold cross-validation by baby (train and evaluate per fold, several seeds),
        with the majority and MFCC + logistic-regression baselines computed by the same harness.
Writes reports/evaluation.{json,md} and PNGs, or reports/cv.json and a row of reports/experiments.md.
"""
from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # tiny matrices: BLAS threads only fight the model for cores

import argparse
import datetime
import functools
import json
import shlex
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

from cry import metrics, reports
from cry.audio import AudioError, audio_to_windows, baby_id, list_audio_files, load_audio
from cry.data import grouped_folds, index_spectrograms, read_settings, select
from cry.features import window_to_image
from cry.files import UserError, atomic_output, run_main, write_json, write_text
from cry.model import (ARCHITECTURES, AUGMENTATIONS, calibrate, calibration_of, fastest_predictor, load_model,
                       predict_paths, predict_probabilities, train)
from cry.params import CLASSES, Settings, check_compatible

SILENCE = CLASSES.index("silence")


def level_report(labels, probabilities, babies, train_labels, silence_threshold=None, seed=0) -> dict:
    """Headline metrics with intervals (the model deciding silence as live), and the same for
    the majority and chance baselines."""
    out = {"model": metrics.bootstrap_scores(labels, probabilities, babies, seed=seed, score_fn=functools.partial(
               metrics.scores, silence_threshold=silence_threshold)),
           "per_class": metrics.per_class(labels, probabilities, silence_threshold),
           "confusion": metrics.confusion(labels, probabilities, silence_threshold).tolist()}
    for kind in ("majority", "chance"):
        baseline = metrics.baseline_probabilities(train_labels, len(labels), kind, seed)
        out[kind] = metrics.bootstrap_scores(labels, baseline, babies, seed=seed)
        out[f"{kind}_per_class"] = metrics.per_class(labels, baseline)
    return out


def windows_from_audio(audio_dir: Path, settings) -> tuple:
    """Labels, images, recordings and babies of every <class>/*.wav, windowed as live."""
    rows, images = [], []
    for path in tqdm(list_audio_files(audio_dir), desc="audio", unit="file"):
        label = path.relative_to(audio_dir).parts[0]
        if label not in CLASSES:
            print(f"skipped: {path}: folder {label!r} is not a class")
            continue
        try:
            for window in audio_to_windows(load_audio(path, settings), settings):
                images.append(window_to_image(window, settings))
                rows.append((CLASSES.index(label), str(path), baby_id(path)))
        except AudioError as exc:
            print(f"skipped: {path}: {exc}")
    if not rows:
        raise UserError(f"{audio_dir}: no usable recordings in class folders ({', '.join(CLASSES)})")
    labels, recordings, babies = (np.array(column) for column in zip(*rows))
    return labels, np.stack(images), recordings, babies


def evaluate_model(args) -> int:
    model, info = load_model(args.model)
    model, settings = fastest_predictor(args.model, model, info), info["settings"]
    train_labels = np.repeat(np.arange(len(CLASSES)), info.get("train_class_counts", [1] * len(CLASSES)))
    if args.audio_dir:
        labels, images, recordings, babies = windows_from_audio(args.audio_dir, settings)
        seen = set(babies) & set(info["split"]["train"] + info["split"]["validation"]) if "split" in info else set()
        if seen:
            print(f"warning: {len(seen)} of {len(set(babies))} babies in {args.audio_dir} were used in training or "
                  f"validation; these scores are not for unheard babies")
        raw = predict_probabilities(model, images)
        source = str(args.audio_dir)
    else:
        data_dir = args.data_dir or Path(info["data_dir"])
        check_compatible(read_settings(data_dir), settings, f"{data_dir} against {args.model}")
        test = select(index_spectrograms(data_dir), info["split"]["test"])
        if len(test) == 0:
            raise UserError(f"{data_dir}: none of the model's test babies are there")
        labels, recordings, babies = test.labels, test.recordings, test.babies
        raw = predict_paths(model, test.paths)
        source = f"{data_dir} (test babies of the saved split)"
    probabilities = calibrate(raw, calibration_of(info))
    silence_threshold = calibration_of(info).get("silence_threshold")
    rec_p, rec_labels, rec_babies, _ = metrics.aggregate_recordings(probabilities, labels, recordings, babies)
    report = {"source": source, "model": str(args.model), "n_windows": int(len(labels)),
              "n_recordings": int(len(rec_labels)), "n_babies": int(len(set(babies))),
              "window": level_report(labels, probabilities, babies, train_labels, silence_threshold),
              "recording": level_report(rec_labels, rec_p, rec_babies, train_labels, silence_threshold)}
    for key in metrics.HEADLINE:  # the headline keys at the top, as documented
        report[key] = {level: report[level]["model"][key] for level in ("window", "recording")}
    report["baselines"] = {kind: {level: report[level][kind] for level in ("window", "recording")}
                           for kind in ("majority", "chance")}
    report["per_class"] = {level: report[level]["per_class"] for level in ("window", "recording")}
    ece_raw, table_raw = metrics.expected_calibration_error(raw, labels)
    ece, table = metrics.expected_calibration_error(probabilities, labels)
    report["calibration"] = {**calibration_of(info), "ece_before": ece_raw, "ece_after": ece}

    out = args.reports_dir
    pictures = [reports.plot_confusion(np.array(report["recording"]["confusion"]), "recordings", out / "confusion_recording.png"),
                reports.plot_confusion(np.array(report["window"]["confusion"]), "windows", out / "confusion_window.png"),
                reports.plot_per_class_f1(report["recording"]["per_class"], report["recording"]["majority_per_class"],
                                          out / "per_class_f1.png"),
                reports.plot_reliability({"before scaling": table_raw, "after scaling": table}, out / "reliability.png")]
    write_json(report, out / "evaluation.json")
    write_text(markdown(report), out / "evaluation.md")
    print(markdown(report))
    print(f"report written to {out / 'evaluation.json'}, {out / 'evaluation.md'} and "
          f"{', '.join(p.name for p in pictures)}")
    return 0


def markdown(report: dict) -> str:
    lines = [f"# Evaluation of {report['model']}", "",
             f"{report['n_recordings']} recordings ({report['n_windows']} windows) from {report['n_babies']} babies: "
             f"{report['source']}. 95% intervals from resampling babies.", ""]
    for level in ("recording", "window"):
        lines += [f"## {level} level", "", "| metric | model | always majority | chance |", "|---|---|---|---|"]
        for key in metrics.HEADLINE:
            lines.append(f"| {key} | " + " | ".join(reports.interval(report[level][kind][key])
                                                   for kind in ("model", "majority", "chance")) + " |")
        lines.append("")
    lines += ["## per class (recording level)", "", "| class | precision | recall | F1 | support |", "|---|---|---|---|---|"]
    lines += [f"| {c} | {v['precision']:.2f} | {v['recall']:.2f} | {v['f1']:.2f} | {v['support']} |"
              for c, v in report["recording"]["per_class"].items()]
    cal = report["calibration"]
    lines += ["", f"Calibration (fitted on validation babies): expected calibration error {cal['ece_before']:.3f} "
                  f"before, {cal['ece_after']:.3f} after (window level).", ""]
    return "\n".join(lines)


# ---- cross-validation --------------------------------------------------------------------

def two_level_scores(labels: np.ndarray, probabilities: np.ndarray) -> dict[str, float]:
    """Crying vs silence, and the reason among cries (silence column dropped, renormalised)."""
    from sklearn.metrics import balanced_accuracy_score, f1_score, roc_auc_score

    crying = labels != SILENCE
    out = {"cry_vs_silence_auc": float(roc_auc_score(crying, 1 - probabilities[:, SILENCE]))
           if 0 < crying.sum() < len(labels) else float("nan")}
    reasons = [c for c in range(len(CLASSES)) if c != SILENCE]
    p = metrics.reason_shares(probabilities[crying])[:, reasons]
    y = np.searchsorted(reasons, labels[crying])
    present = np.unique(y)
    out["reasons_macro_auc"] = float(np.mean([roc_auc_score(y == c, p[:, c]) for c in present
                                              if 0 < (y == c).sum() < len(y)] or [np.nan]))
    out["reasons_macro_f1"] = float(f1_score(y, p.argmax(axis=1), labels=present, average="macro", zero_division=0))
    out["reasons_balanced_accuracy"] = float(balanced_accuracy_score(y, p.argmax(axis=1)))
    return out


def mfcc_features(recordings: np.ndarray, audio_dir: Path, settings) -> np.ndarray | None:
    """40 MFCC means and standard deviations per recording [n, 80], or None without the audio."""
    import librosa

    by_name = {str(p.relative_to(audio_dir).with_suffix("")): p for p in list_audio_files(audio_dir)}
    if not all(r in by_name for r in recordings):
        return None
    rows = []
    for r in tqdm(recordings, desc="mfcc baseline", unit="file"):
        mfcc = librosa.feature.mfcc(y=load_audio(by_name[r], settings), sr=settings.sample_rate_hz, n_mfcc=40,
                                    fmax=settings.fmax_hz)
        rows.append(np.concatenate([mfcc.mean(axis=1), mfcc.std(axis=1)]))
    return np.array(rows)


def cross_validate(args) -> int:
    """Train and predict every fold with every seed, save the window probabilities, summarise."""
    data_dir = args.data_dir or Path("data/spectrograms")
    settings, windows = read_settings(data_dir), index_spectrograms(data_dir)
    folds = grouped_folds(windows, args.cv, args.fold_seed)
    write_json({"fold_seed": args.fold_seed, "folds": [list(f) for f in folds]}, args.reports_dir / "cv_folds.json")
    calibrated = np.zeros((len(args.seeds), len(windows), len(CLASSES)))
    raw, temperature_only = np.zeros_like(calibrated), np.zeros_like(calibrated)
    validation = []  # (seed index, fold, paths, raw probabilities), kept to compare calibrations later
    for s, seed in enumerate(args.seeds):
        for k, test_babies in enumerate(folds):
            test = np.isin(windows.babies, test_babies)
            rest = windows.subset(~test)
            val_babies = grouped_folds(rest, 5, seed + k)[0]
            part_train, part_val = rest.subset(~np.isin(rest.babies, val_babies)), select(rest, val_babies)
            print(f"seed {seed}, fold {k + 1}/{args.cv}: train {len(part_train)}, validation {len(part_val)}, "
                  f"test {int(test.sum())} windows")
            model, _ = train(part_train, part_val, settings, args.arch, args.epochs, args.patience, seed=seed + 100 * k,
                             balance=args.balance, augment=args.augment, verbose=0)
            val_raw = predict_paths(model, part_val.paths)
            validation.append((s, k, part_val.paths, val_raw))
            raw[s, test] = predict_paths(model, windows.paths[test])
            calibrated[s, test] = calibrate(raw[s, test], metrics.fit_calibration(val_raw, part_val.labels))
            temperature_only[s, test] = metrics.apply_temperature(raw[s, test],
                                                                  metrics.fit_temperature(val_raw, part_val.labels))
            fold_p, fold_y, _, _ = metrics.aggregate_recordings(calibrated[s, test], windows.labels[test],
                                                                windows.recordings[test], windows.babies[test])
            print("  " + ", ".join(f"{key} {v:.3f}" for key, v in two_level_scores(fold_y, fold_p).items()))
    predictions = {"raw": raw, "calibrated": calibrated, "temperature_only": temperature_only,
                   "labels": windows.labels, "recordings": windows.recordings, "babies": windows.babies,
                   "paths": windows.paths, "seeds": np.array(args.seeds),
                   "validation_run": np.concatenate([[s * args.cv + k] * len(p) for s, k, p, _ in validation]),
                   "validation_paths": np.concatenate([p for *_, p, _ in validation]),
                   "validation_raw": np.concatenate([r for *_, r in validation])}
    with atomic_output(args.reports_dir / "cv_predictions.npz") as tmp, open(tmp, "wb") as f:
        np.savez_compressed(f, **predictions)
    meta = {"command": "python " + shlex.join(sys.argv), "arch": args.arch, "balance": args.balance,
            "augment": args.augment, "seeds": args.seeds, "folds": args.cv, "fold_seed": args.fold_seed,
            "data_dir": str(data_dir), "settings": settings.to_dict()}
    return summarise_cv(predictions, folds, meta, args)


def rescore(args) -> int:
    """Summarise an earlier --cv run again from its saved probabilities (no training): for a
    change in how recordings are aggregated or scored, on exactly the same models."""
    folder = args.rescore
    try:
        with np.load(folder / "cv_predictions.npz", allow_pickle=False) as saved:
            predictions = {key: saved[key] for key in saved.files}
        meta = json.loads((folder / "cv.json").read_text())
        folds = [np.array(f) for f in json.loads((folder / "cv_folds.json").read_text())["folds"]]
    except (OSError, ValueError, KeyError) as exc:
        raise UserError(f"{folder}: not the reports folder of an --cv run ({exc})") from None
    meta = {key: meta[key] for key in ("command", "arch", "balance", "augment", "seeds", "folds", "fold_seed",
                                       "data_dir", "settings") if key in meta}
    meta["rescored"] = "python " + shlex.join(sys.argv)
    args.reports_dir = folder
    return summarise_cv(predictions, folds, meta, args)


def summarise_cv(predictions: dict, folds: list, meta: dict, args) -> int:
    """cv.json and a row of the experiments table from out-of-fold window probabilities."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    labels, recordings, babies = predictions["labels"], predictions["recordings"], predictions["babies"]
    calibrated, settings = predictions["calibrated"], Settings.from_dict(meta["settings"])
    per_fold = []
    for s, seed in enumerate(meta["seeds"]):
        for k, test_babies in enumerate(folds):
            test = np.isin(babies, test_babies)
            fold_p, fold_y, _, _ = metrics.aggregate_recordings(calibrated[s, test], labels[test], recordings[test],
                                                                babies[test])
            per_fold.append({"seed": int(seed), "fold": k, **two_level_scores(fold_y, fold_p)})
    mean_p = calibrated.mean(axis=0)
    rec_p, rec_labels, rec_babies, rec_names = metrics.aggregate_recordings(mean_p, labels, recordings, babies)
    result = metrics.bootstrap_scores(rec_labels, rec_p, rec_babies, score_fn=two_level_scores)
    result["window_level"] = metrics.bootstrap_scores(labels, mean_p, babies, n_boot=200, score_fn=two_level_scores)
    # The crying-or-quiet decision as one shipped model makes it: silence at or above its share
    # of that training run's validation windows (metrics.fit_calibration), averaged over seeds.
    label_of = dict(zip(predictions["paths"], labels))
    said_silence = np.zeros(calibrated.shape[:2], bool)
    for s in range(len(meta["seeds"])):
        for k, test_babies in enumerate(folds):
            test = np.isin(babies, test_babies)
            run = predictions["validation_run"] == s * len(folds) + k
            threshold = np.mean([label_of[p] == SILENCE for p in predictions["validation_paths"][run]])
            said_silence[s, test] = metrics.decide(calibrated[s, test], threshold) == SILENCE
    window_silence = labels == SILENCE
    result["false_alarms_per_hour_of_silence"] = float(
        (~said_silence[:, window_silence]).sum(axis=1).mean()
        / max(window_silence.sum() * settings.window_hop_seconds / 3600, 1e-9))
    result["cry_windows_called_silence"] = float(said_silence[:, ~window_silence].mean())
    # ECE of one model (what train_model.py ships), averaged over seeds; the seeds' mean is softer
    single_ece = lambda p: float(np.mean([metrics.expected_calibration_error(q, labels)[0] for q in p]))  # noqa: E731
    result["ece_after_scaling"] = single_ece(calibrated)
    result["ece_after_temperature_only"] = single_ece(predictions["temperature_only"])
    result["ece_seed_ensemble"] = metrics.expected_calibration_error(mean_p, labels)[0]
    result["ece_before_scaling"] = single_ece(predictions["raw"])
    for name in ("raw", "temperature_only"):  # the same models without (or with the simpler) calibration
        p, y, _, _ = metrics.aggregate_recordings(predictions[name].mean(axis=0), labels, recordings, babies)
        result[f"{name}_scores"] = two_level_scores(y, p)
    result["fold_mean_std"] = {key: {"mean": float(np.nanmean([f[key] for f in per_fold])),
                                     "std": float(np.nanstd([f[key] for f in per_fold]))}
                               for key in per_fold[0] if key not in ("seed", "fold")}
    result["per_fold"] = per_fold

    # Baselines through the same folds, at recording level.
    majority, logistic = np.zeros_like(rec_p), np.zeros_like(rec_p)
    features = mfcc_features(rec_names, args.audio_dir_for_baseline, settings)
    for test_babies in folds:
        test = np.isin(rec_babies, test_babies)
        majority[test] = np.eye(len(CLASSES))[np.bincount(rec_labels[~test]).argmax()]
        if features is not None:
            clf = make_pipeline(StandardScaler(), LogisticRegression(class_weight="balanced", max_iter=2000))
            clf.fit(features[~test], rec_labels[~test])
            logistic[np.ix_(test, clf.classes_)] = clf.predict_proba(features[test])
    result["baselines"] = {"majority": metrics.bootstrap_scores(rec_labels, majority, rec_babies,
                                                                score_fn=two_level_scores)}
    if features is not None:
        result["baselines"]["mfcc_logistic_regression"] = metrics.bootstrap_scores(
            rec_labels, logistic, rec_babies, score_fn=two_level_scores)
    result.update(meta, calibration="two-level: Platt on silence, temperature + log-prior shifts on reasons",
                  aggregation="silence: smallest window probability; reason: mean of windows")
    write_json(result, args.reports_dir / "cv.json")
    append_experiment(result, args.experiments_file)
    print(json.dumps({k: result[k] for k in ("cry_vs_silence_auc", "reasons_macro_auc", "reasons_macro_f1",
                                             "ece_after_scaling")}, indent=1))
    print(f"cross-validation written to {args.reports_dir / 'cv.json'} (window probabilities in cv_predictions.npz); "
          f"row added to {args.experiments_file}")
    return 0


def append_experiment(result: dict, path: Path) -> None:
    header = ("| date | variant (command) | cry vs silence AUC | reasons macro AUC | reasons macro-F1 | "
              "reasons bal. acc. | ECE after scaling (windows) |\n|---|---|---|---|---|---|---|\n")
    old = path.read_text() if path.exists() else "# Experiments (baby-disjoint CV, recording level, 95% CI over babies)\n\n" + header

    def row(name, r, ece="") -> str:
        return (f"| {datetime.date.today()} | {name} | {reports.interval(r['cry_vs_silence_auc'])} | "
                f"{reports.interval(r['reasons_macro_auc'])} | {reports.interval(r['reasons_macro_f1'])} | "
                f"{reports.interval(r['reasons_balanced_accuracy'])} | {ece} |\n")
    variant = (f"{result['arch']}, {result['balance']}, augment {result['augment']}, "
               f"{result['settings']['window_seconds']:g} s windows: `{result['command']}`"
               + (f", re-scored: `{result['rescored']}`" if "rescored" in result else ""))
    rows = [row(variant, result, f"{result['ece_after_scaling']:.3f} (temperature only "
                                 f"{result['ece_after_temperature_only']:.3f})")]
    rows += [row(f"baseline: {name} (same folds)", r) for name, r in result["baselines"].items()
             if f"baseline: {name}" not in old]
    write_text(old + "".join(rows), path)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=Path("models/cry_model.keras"), help="default: %(default)s")
    parser.add_argument("--data-dir", type=Path, help="spectrograms (default: the model's, or data/spectrograms)")
    parser.add_argument("--audio-dir", type=Path, help="evaluate the model on this <class>/*.wav folder instead")
    parser.add_argument("--reports-dir", type=Path, default=Path("reports"), help="default: %(default)s")
    cv = parser.add_argument_group("cross-validation (--cv K)")
    cv.add_argument("--cv", type=int, metavar="K", help="grouped K-fold cross-validation by baby")
    cv.add_argument("--arch", choices=ARCHITECTURES, default="time")
    cv.add_argument("--epochs", type=int, default=30)
    cv.add_argument("--patience", type=int, default=8)
    cv.add_argument("--balance", choices=("weights", "sampling"), default="sampling")
    cv.add_argument("--augment", choices=AUGMENTATIONS, default="spec",
                    help="training only: none; spec = masks + time shift; mix = spec + gain + mixing with silence")
    cv.add_argument("--seeds", type=int, nargs="+", default=[0], help="repeat every fold with these seeds")
    cv.add_argument("--fold-seed", type=int, default=2026, help="the folds, the same for every variant")
    cv.add_argument("--experiments-file", type=Path, default=Path("reports/experiments.md"),
                    help="table the result is appended to (default: %(default)s)")
    cv.add_argument("--audio-dir-for-baseline", type=Path, default=Path("data/audio"),
                    help="source audio for the MFCC baseline (default: %(default)s)")
    cv.add_argument("--rescore", type=Path, metavar="DIR",
                    help="summarise the --cv run whose reports are in DIR again from its saved probabilities")
    args = parser.parse_args(argv)
    if args.rescore is not None:
        return rescore(args)
    if args.cv is not None:
        if args.cv < 2:
            raise UserError("--cv needs at least 2 folds")
        return cross_validate(args)
    if args.audio_dir is not None and not args.audio_dir.is_dir():
        raise UserError(f"{args.audio_dir}: no such folder")
    return evaluate_model(args)


if __name__ == "__main__":
    run_main(main)
