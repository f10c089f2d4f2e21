"""Cross-validation by baby: every fold trained with every seed, out-of-fold probabilities saved.

Each (seed, fold) training is a `FoldJob` run by `train_fold`, a function of its inputs alone,
so the runs can go through any map (a loop here; a pool or a cluster elsewhere) and give the
same probabilities. cry.reason.cv_summary scores what they predicted.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from cry.files import UserError, atomic_output, write_json
from cry.params import CLASSES, Settings
from cry.reason.calibration import apply_temperature, calibrate, fit_calibration, fit_temperature
from cry.reason.data import Windows, grouped_folds, select
from cry.reason.metrics import aggregate_recordings, two_level_scores
from cry.reason.model import predict_paths, train
from cry.reason.params import Training

FOLDS_FILE, PREDICTIONS_FILE, SUMMARY_FILE = "cv_folds.json", "cv_predictions.npz", "cv.json"


@dataclasses.dataclass(frozen=True)
class CvRun:
    """What a cross-validation run was: kept in cv.json, and by a re-scored summary."""

    command: str
    training: Training
    seeds: tuple
    folds: int
    fold_seed: int
    data_dir: str
    settings: Settings
    bootstrap_resamples: int | None = None   # set when not the default: rougher intervals
    rescored: str | None = None              # the command that re-scored it

    def to_dict(self) -> dict:
        return {"command": self.command, "arch": self.training.arch, "balance": self.training.balance,
                "augment": self.training.augment, "training": self.training.to_dict(), "seeds": list(self.seeds),
                "folds": self.folds, "fold_seed": self.fold_seed, "data_dir": self.data_dir,
                "settings": self.settings.to_dict(),
                **({"bootstrap_resamples": self.bootstrap_resamples} if self.bootstrap_resamples else {}),
                **({"rescored": self.rescored} if self.rescored else {})}

    @classmethod
    def from_dict(cls, d: dict) -> CvRun:
        return cls(d["command"], Training.from_dict(d["training"]), tuple(d["seeds"]), int(d["folds"]),
                   int(d["fold_seed"]), str(d["data_dir"]), Settings.from_dict(d["settings"]))


@dataclasses.dataclass
class CvPredictions:
    """Out-of-fold window probabilities [n_seeds, n_windows, n_classes] (raw, calibrated two-level,
    temperature only), the windows' labels, recordings, babies and paths [n_windows], each run's
    validation windows and raw probabilities, and the baselines' features per recording."""

    raw: np.ndarray
    calibrated: np.ndarray
    temperature_only: np.ndarray
    labels: np.ndarray
    recordings: np.ndarray
    babies: np.ndarray
    paths: np.ndarray
    seeds: np.ndarray
    validation_run: np.ndarray
    validation_paths: np.ndarray
    validation_raw: np.ndarray
    features: dict = dataclasses.field(default_factory=dict)  # kind -> float [n_recordings, d]

    def save(self, folder: Path) -> None:
        arrays = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "features"}
        with atomic_output(Path(folder) / PREDICTIONS_FILE) as tmp, open(tmp, "wb") as f:
            np.savez_compressed(f, **arrays, **{f"{k}_features": v for k, v in self.features.items()})

    @classmethod
    def load(cls, folder: Path) -> CvPredictions:
        with np.load(Path(folder) / PREDICTIONS_FILE, allow_pickle=False) as saved:
            arrays = {key: saved[key] for key in saved.files}
        features = {k[:-len("_features")]: arrays.pop(k) for k in list(arrays) if k.endswith("_features")}
        return cls(**arrays, features=features)


@dataclasses.dataclass(frozen=True)
class FoldJob:
    """One training of the cross-validation: seed `seed` (the seed_index-th) on fold `fold`."""

    run: int
    seed_index: int
    seed: int
    fold: int
    test_babies: tuple


@dataclasses.dataclass(frozen=True)
class FoldResult:
    job: FoldJob
    test_raw: np.ndarray        # raw probabilities of the fold's test windows [n_test, n_classes]
    val_paths: np.ndarray       # the run's validation windows [n_val]
    val_labels: np.ndarray
    val_raw: np.ndarray         # their raw probabilities [n_val, n_classes]


def fold_jobs(folds: list, seeds) -> list[FoldJob]:
    """Every training run, in run order (a run's place is its number in validation_run)."""
    return [FoldJob(s * len(folds) + k, s, int(seed), k, tuple(test)) for s, seed in enumerate(seeds)
            for k, test in enumerate(folds)]


def fold_runs(babies: np.ndarray, folds: list, seeds) -> list[tuple[int, int, int, np.ndarray]]:
    """(seed index, seed, fold index, test mask over babies) of every training run, in run order."""
    return [(j.seed_index, j.seed, j.fold, np.isin(babies, j.test_babies)) for j in fold_jobs(folds, seeds)]


def split_fold(windows: Windows, test: np.ndarray, seed: int) -> tuple[Windows, Windows]:
    """A fold's training side split into training and validation babies (a fifth, drawn by seed)."""
    rest = windows.subset(~test)
    val_babies = grouped_folds(rest, 5, seed)[0]
    return rest.subset(~np.isin(rest.babies, val_babies)), select(rest, val_babies)


def train_fold(windows: Windows, job: FoldJob, settings: Settings, params: Training) -> FoldResult:
    """Train one fold with one seed; its test windows' and validation windows' raw probabilities."""
    test = np.isin(windows.babies, job.test_babies)
    part_train, val = split_fold(windows, test, job.seed + job.fold)
    print(f"seed {job.seed}, fold {job.fold + 1}: train {len(part_train)}, validation {len(val)}, "
          f"test {int(test.sum())} windows", flush=True)
    model, _ = train(part_train, val, settings, params, seed=job.seed + 100 * job.fold, verbose=0)
    return FoldResult(job, predict_paths(model, windows.paths[test]), val.paths, val.labels,
                      predict_paths(model, val.paths))


def run_folds(windows: Windows, folds: list, settings: Settings, params: Training, seeds,
              map_fn=map) -> CvPredictions:
    """Train and predict every fold with every seed (through map_fn, in run order) and calibrate
    each run's test windows on its own validation windows."""
    calibrated = np.zeros((len(seeds), len(windows), len(CLASSES)))
    raw, temperature_only = np.zeros_like(calibrated), np.zeros_like(calibrated)
    results = list(map_fn(lambda job: train_fold(windows, job, settings, params), fold_jobs(folds, seeds)))
    for result in results:
        s, test = result.job.seed_index, np.isin(windows.babies, result.job.test_babies)
        raw[s, test] = result.test_raw
        calibrated[s, test] = calibrate(result.test_raw, fit_calibration(result.val_raw, result.val_labels))
        temperature_only[s, test] = apply_temperature(result.test_raw, fit_temperature(result.val_raw,
                                                                                       result.val_labels))
        fold_p, fold_y, _, _ = aggregate_recordings(calibrated[s, test], windows.labels[test],
                                                    windows.recordings[test], windows.babies[test])
        print(f"  seed {result.job.seed}, fold {result.job.fold + 1}: " +
              ", ".join(f"{key} {v:.3f}" for key, v in two_level_scores(fold_y, fold_p).items()))
    return CvPredictions(raw, calibrated, temperature_only, windows.labels, windows.recordings, windows.babies,
                         windows.paths, np.array(seeds),
                         np.concatenate([[r.job.run] * len(r.val_paths) for r in results]),
                         np.concatenate([r.val_paths for r in results]),
                         np.concatenate([r.val_raw for r in results]))


def save_folds(folder: Path, folds: list, fold_seed: int) -> None:
    """The folds' baby ids, written before training (a stopped run still names its folds)."""
    write_json({"fold_seed": fold_seed, "folds": [list(f) for f in folds]}, Path(folder) / FOLDS_FILE)


def load_run(folder: Path) -> tuple[CvPredictions, CvRun, list]:
    """(predictions, the run, folds) of an earlier run's reports folder."""
    try:
        predictions = CvPredictions.load(folder)
        run = CvRun.from_dict(json.loads((Path(folder) / SUMMARY_FILE).read_text()))
        folds = [np.array(f) for f in json.loads((Path(folder) / FOLDS_FILE).read_text())["folds"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UserError(f"{folder}: not the reports folder of an --cv run ({exc})") from None
    return predictions, run, folds
