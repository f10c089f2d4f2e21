"""Cross-validation by baby: every fold trained with every seed, out-of-fold probabilities saved,
then scored in the two questions with intervals, false alarms, calibration variants and
baselines through the same folds."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import soundfile as sf
from tqdm import tqdm

from cry import reports
from cry.audio import list_audio_files, load_audio
from cry.calibration import apply_temperature, calibrate, fit_calibration, fit_temperature
from cry.data import Windows, grouped_folds, select
from cry.decision import SILENCE, decide
from cry.files import UserError, atomic_output, write_json, write_text
from cry.metrics import N_BOOT, aggregate_recordings, bootstrap_scores, expected_calibration_error, two_level_scores
from cry.model import predict_paths, train
from cry.params import CLASSES, Settings, Training

FOLDS_FILE, PREDICTIONS_FILE, SUMMARY_FILE = "cv_folds.json", "cv_predictions.npz", "cv.json"
META_KEYS = ("command", "arch", "balance", "augment", "training", "seeds", "folds", "fold_seed", "data_dir",
             "settings")  # what a re-scored summary keeps of the run's own


def fold_runs(babies: np.ndarray, folds: list, seeds) -> list[tuple[int, int, int, np.ndarray]]:
    """(seed index, seed, fold index, test mask over babies) of every training run, in run order
    (a run's place in this list is its number in "validation_run")."""
    return [(s, int(seed), k, np.isin(babies, test_babies)) for s, seed in enumerate(seeds)
            for k, test_babies in enumerate(folds)]


def split_fold(windows: Windows, test: np.ndarray, seed: int) -> tuple[Windows, Windows]:
    """A fold's training side split into training and validation babies (a fifth, drawn by seed)."""
    rest = windows.subset(~test)
    val_babies = grouped_folds(rest, 5, seed)[0]
    return rest.subset(~np.isin(rest.babies, val_babies)), select(rest, val_babies)


def run_folds(windows: Windows, folds: list, settings: Settings, params: Training, seeds) -> dict:
    """Train and predict every fold with every seed. Returns the window probabilities (raw,
    calibrated two-level, temperature only: [n_seeds, n_windows, n_classes]), each run's
    validation windows and raw probabilities, and the windows' labels, recordings, babies, paths:
    what save_predictions keeps in cv_predictions.npz (with the baselines' "<kind>_features")."""
    calibrated = np.zeros((len(seeds), len(windows), len(CLASSES)))
    raw, temperature_only = np.zeros_like(calibrated), np.zeros_like(calibrated)
    validation = []  # (run, paths, raw probabilities), kept to compare calibrations later
    for run, (s, seed, k, test) in enumerate(fold_runs(windows.babies, folds, seeds)):
        part_train, val = split_fold(windows, test, seed + k)
        print(f"seed {seed}, fold {k + 1}/{len(folds)}: train {len(part_train)}, validation {len(val)}, "
              f"test {int(test.sum())} windows")
        model, _ = train(part_train, val, settings, params, seed=seed + 100 * k, verbose=0)
        val_raw = predict_paths(model, val.paths)
        validation.append((run, val.paths, val_raw))
        raw[s, test] = predict_paths(model, windows.paths[test])
        calibrated[s, test] = calibrate(raw[s, test], fit_calibration(val_raw, val.labels))
        temperature_only[s, test] = apply_temperature(raw[s, test], fit_temperature(val_raw, val.labels))
        fold_p, fold_y, _, _ = aggregate_recordings(calibrated[s, test], windows.labels[test],
                                                    windows.recordings[test], windows.babies[test])
        print("  " + ", ".join(f"{key} {v:.3f}" for key, v in two_level_scores(fold_y, fold_p).items()))
    return {"raw": raw, "calibrated": calibrated, "temperature_only": temperature_only,
            "labels": windows.labels, "recordings": windows.recordings, "babies": windows.babies,
            "paths": windows.paths, "seeds": np.array(seeds),
            "validation_run": np.concatenate([[run] * len(p) for run, p, _ in validation]),
            "validation_paths": np.concatenate([p for _, p, _ in validation]),
            "validation_raw": np.concatenate([r for *_, r in validation])}


def save_folds(folder: Path, folds: list, fold_seed: int) -> None:
    """The folds' baby ids, written before training (a stopped run still names its folds)."""
    write_json({"fold_seed": fold_seed, "folds": [list(f) for f in folds]}, folder / FOLDS_FILE)


def save_predictions(folder: Path, predictions: dict) -> None:
    with atomic_output(folder / PREDICTIONS_FILE) as tmp, open(tmp, "wb") as f:
        np.savez_compressed(f, **predictions)


def load_run(folder: Path) -> tuple[dict, dict, list]:
    """(predictions, the run's own summary keys, folds) of an earlier run's reports folder."""
    try:
        with np.load(folder / PREDICTIONS_FILE, allow_pickle=False) as saved:
            predictions = {key: saved[key] for key in saved.files}
        summary = json.loads((folder / SUMMARY_FILE).read_text())
        folds = [np.array(f) for f in json.loads((folder / FOLDS_FILE).read_text())["folds"]]
    except (OSError, ValueError, KeyError) as exc:
        raise UserError(f"{folder}: not the reports folder of an --cv run ({exc})") from None
    return predictions, {key: summary[key] for key in META_KEYS if key in summary}, folds


def per_fold_scores(predictions: dict, folds: list, seeds) -> list[dict]:
    """The two-level scores of each fold x seed, at recording level."""
    labels, recordings, babies = predictions["labels"], predictions["recordings"], predictions["babies"]
    out = []
    for s, seed, k, test in fold_runs(babies, folds, seeds):
        fold_p, fold_y, _, _ = aggregate_recordings(predictions["calibrated"][s, test], labels[test],
                                                    recordings[test], babies[test])
        out.append({"seed": seed, "fold": k, **two_level_scores(fold_y, fold_p)})
    return out


def fold_spread(per_fold: list[dict]) -> dict:
    """Mean and standard deviation of each score over the fold x seed runs."""
    return {key: {"mean": float(np.nanmean([f[key] for f in per_fold])),
                  "std": float(np.nanstd([f[key] for f in per_fold]))}
            for key in per_fold[0] if key not in ("seed", "fold")}


def false_alarms(predictions: dict, folds: list, seeds, settings: Settings) -> dict:
    """The crying-or-quiet decision as one shipped model makes it: each run's windows decided at
    the silence threshold its calibration fitted on that run's validation windows. Returns
    false alarms per hour of silence and the share of cry windows called silence, over seeds."""
    labels, calibrated = predictions["labels"], predictions["calibrated"]
    label_of = dict(zip(predictions["paths"], labels))
    said_silence = np.zeros(calibrated.shape[:2], bool)
    for run, (s, _, _, test) in enumerate(fold_runs(predictions["babies"], folds, seeds)):
        validated = predictions["validation_run"] == run
        val_labels = np.array([label_of[p] for p in predictions["validation_paths"][validated]])
        threshold = fit_calibration(predictions["validation_raw"][validated], val_labels)["silence_threshold"]
        said_silence[s, test] = decide(calibrated[s, test], threshold) == SILENCE
    silence = labels == SILENCE
    hours = max(silence.sum() * settings.window_hop_seconds / 3600, 1e-9)
    return {"false_alarms_per_hour_of_silence": float((~said_silence[:, silence]).sum(axis=1).mean() / hours),
            "cry_windows_called_silence": float(said_silence[:, ~silence].mean())}


def calibration_variants(predictions: dict) -> dict:
    """ECE of one model (what train_model.py ships), averaged over seeds, with the two-level
    calibration, one temperature, none; of the seeds' mean (softer); and the recording-level
    scores of the same models uncalibrated and with one temperature."""
    labels = predictions["labels"]

    def single_ece(p):
        return float(np.mean([expected_calibration_error(q, labels)[0] for q in p]))
    out = {"ece_after_scaling": single_ece(predictions["calibrated"]),
           "ece_after_temperature_only": single_ece(predictions["temperature_only"]),
           "ece_seed_ensemble": expected_calibration_error(predictions["calibrated"].mean(axis=0), labels)[0],
           "ece_before_scaling": single_ece(predictions["raw"])}
    for name in ("raw", "temperature_only"):
        p, y, _, _ = aggregate_recordings(predictions[name].mean(axis=0), labels, predictions["recordings"],
                                          predictions["babies"])
        out[f"{name}_scores"] = two_level_scores(y, p)
    return out


def mfcc_features(recordings: np.ndarray, audio_dir: Path, settings: Settings) -> np.ndarray | None:
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


def yamnet_features(recordings: np.ndarray, audio_dir: Path, yamnet_dir: Path | None = None) -> np.ndarray | None:
    """Transfer learning for the reason: the mean and standard deviation of YAMNet's patch
    embeddings over each recording [n, 2048] (16 kHz, as YAMNet hears it), or None without the
    audio or the model. A logistic regression on them goes through the same folds as the CNN-LSTM."""
    from cry.audio import resample
    from cry.yamnet import YamnetModel

    by_name = {str(p.relative_to(audio_dir).with_suffix("")): p for p in list_audio_files(audio_dir)}
    if not all(r in by_name for r in recordings):
        return None
    try:
        yamnet = YamnetModel.from_folder(yamnet_dir)
    except UserError:
        return None
    rows = []
    for r in tqdm(recordings, desc="yamnet baseline", unit="file"):
        audio, rate = sf.read(by_name[r], dtype="float32", always_2d=True)
        _, embeddings = yamnet.waveform(resample(audio.mean(axis=1), rate, 16000))
        rows.append(np.concatenate([embeddings.mean(axis=0), embeddings.std(axis=0)]))
    return np.array(rows)


def baseline_features(predictions: dict, audio_dir: Path, settings: Settings,
                      yamnet_dir: Path | None = None) -> dict[str, np.ndarray]:
    """Each baseline's features per recording, in the order of np.unique(recordings): "mfcc" and
    "yamnet", those saved with the run, else computed from audio_dir; a kind is left out without
    its audio or model."""
    recordings, out = np.unique(predictions["recordings"]), {}
    for kind, compute in (("mfcc", lambda: mfcc_features(recordings, audio_dir, settings)),
                          ("yamnet", lambda: yamnet_features(recordings, audio_dir, yamnet_dir))):
        features = predictions[f"{kind}_features"] if f"{kind}_features" in predictions else compute()
        if features is not None:
            out[kind] = features
    return out


def baselines(labels: np.ndarray, babies: np.ndarray, features: dict[str, np.ndarray], folds: list,
              n_boot: int = N_BOOT) -> dict:
    """Recording-level baselines through the same folds: always the majority class, and for each
    kind of features a class-balanced logistic regression ("<kind>_logistic_regression"); each
    scored like the model."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    majority = np.zeros((len(labels), len(CLASSES)))
    logistic = {kind: np.zeros((len(labels), len(CLASSES))) for kind in features}
    for test_babies in folds:
        test = np.isin(babies, test_babies)
        majority[test] = np.eye(len(CLASSES))[np.bincount(labels[~test]).argmax()]
        for kind, x in features.items():
            clf = make_pipeline(StandardScaler(), LogisticRegression(class_weight="balanced", max_iter=2000))
            clf.fit(x[~test], labels[~test])
            logistic[kind][np.ix_(test, clf.classes_)] = clf.predict_proba(x[test])
    out = {"majority": bootstrap_scores(labels, majority, babies, n_boot, score_fn=two_level_scores)}
    for kind, p in logistic.items():
        out[f"{kind}_logistic_regression"] = bootstrap_scores(labels, p, babies, n_boot, score_fn=two_level_scores)
    return out


def summarise(predictions: dict, folds: list, meta: dict, features: dict[str, np.ndarray],
              n_boot: int = N_BOOT) -> dict:
    """Everything cv.json holds, from out-of-fold window probabilities: the seeds' mean at
    recording level with 95% intervals over babies (window level too, from a fifth of the
    resamples), then the views above; the baselines on features (baseline_features)."""
    labels, babies, seeds = predictions["labels"], predictions["babies"], meta["seeds"]
    settings = Settings.from_dict(meta["settings"])
    mean_p = predictions["calibrated"].mean(axis=0)
    rec_p, rec_labels, rec_babies, _ = aggregate_recordings(mean_p, labels, predictions["recordings"], babies)
    result = bootstrap_scores(rec_labels, rec_p, rec_babies, n_boot, score_fn=two_level_scores)
    result["window_level"] = bootstrap_scores(labels, mean_p, babies, n_boot // 5, score_fn=two_level_scores)
    result.update(false_alarms(predictions, folds, seeds, settings))
    result.update(calibration_variants(predictions))
    per_fold = per_fold_scores(predictions, folds, seeds)
    result["fold_mean_std"], result["per_fold"] = fold_spread(per_fold), per_fold
    result["baselines"] = baselines(rec_labels, rec_babies, features, folds, n_boot)
    result.update(meta, calibration="two-level: Platt on silence, temperature + log-prior shifts on reasons",
                  aggregation="silence: smallest window probability; reason: mean of windows")
    return result


def write_summary(result: dict, folder: Path, experiments_file: Path) -> None:
    """cv.json in folder and the run's row (and the baselines' first rows) in the experiments table."""
    write_json(result, folder / SUMMARY_FILE)
    old = experiments_file.read_text() if experiments_file.exists() else reports.EXPERIMENTS_HEADER
    write_text(old + reports.experiment_rows(result, old), experiments_file)
    print(json.dumps({k: result[k] for k in ("cry_vs_silence_auc", "reasons_macro_auc", "reasons_macro_f1",
                                             "ece_after_scaling")}, indent=1))
    print(f"cross-validation written to {folder / SUMMARY_FILE} (window probabilities in {PREDICTIONS_FILE}); "
          f"row added to {experiments_file}")
