"""Spectrogram folders as labelled arrays, and splits that keep every baby on one side."""
from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold

from cry.audio import baby_id
from cry.files import UserError
from cry.params import CLASSES, Settings, SettingsMismatch, check_compatible

SETTINGS_FILE = "settings.json"
_WINDOW_SUFFIX = re.compile(r"_w\d+$")


def read_settings(folder: Path) -> Settings:
    """The settings a spectrogram folder was made with."""
    path = Path(folder) / SETTINGS_FILE
    try:
        settings = Settings.from_dict(json.loads(path.read_text()))
    except FileNotFoundError:
        raise UserError(f"{path}: missing; run preprocess_model.py first") from None
    except (ValueError, TypeError) as exc:
        raise SettingsMismatch(f"{path}: {exc}") from None
    check_compatible(settings, settings, str(path))  # classes and feature version of this code
    return settings


@dataclasses.dataclass
class Windows:
    """One row per window PNG. All arrays [n_windows]."""

    paths: np.ndarray        # str
    labels: np.ndarray       # int, index into CLASSES
    recordings: np.ndarray   # str, class/name of the source recording
    babies: np.ndarray       # str, baby id

    def subset(self, mask: np.ndarray) -> "Windows":
        return Windows(*(getattr(self, f.name)[mask] for f in dataclasses.fields(self)))

    def __len__(self) -> int:
        return len(self.paths)


def recording_of(png: Path, folder: Path) -> str:
    """'hungry/abc_w3.png' -> 'hungry/abc': the recording a window PNG was cut from."""
    return _WINDOW_SUFFIX.sub("", str(Path(png).relative_to(folder).with_suffix("")))


def index_spectrograms(folder: Path) -> Windows:
    """Every <class>/**/<recording>_w<k>.png below folder, labelled by its class folder."""
    rows = []
    for label, name in enumerate(CLASSES):
        for png in sorted((Path(folder) / name).rglob("*.png")):
            if png.name.startswith("."):
                continue
            recording = recording_of(png, folder)
            rows.append((str(png), label, recording, baby_id(recording)))
    if not rows:
        raise UserError(f"{folder}: no spectrogram PNGs in class folders; run preprocess_model.py first")
    paths, labels, recordings, babies = zip(*rows)
    return Windows(np.array(paths), np.array(labels), np.array(recordings), np.array(babies))


def recording_table(windows: Windows) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unique recordings with their label and baby: (recordings, labels, babies)."""
    recordings, first = np.unique(windows.recordings, return_index=True)
    return recordings, windows.labels[first], windows.babies[first]


def grouped_folds(windows: Windows, n_folds: int, seed: int) -> list[np.ndarray]:
    """Assign each baby to one of n_folds, stratified by its recordings' classes.

    Returns one array of baby ids per fold. Folds are made on recordings, so a baby
    with many windows does not weigh more than one with few.
    """
    recordings, labels, babies = recording_table(windows)
    if len(set(babies)) < n_folds:
        raise UserError(f"only {len(set(babies))} babies: too few for {n_folds} baby-disjoint folds")
    splitter = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    return [np.unique(babies[test]) for _, test in splitter.split(recordings, labels, groups=babies)]


def split_by_baby(windows: Windows, seed: int, test_fraction: float = 0.2,
                  val_fraction: float = 0.15) -> dict[str, list[str]]:
    """Baby ids for train, validation and test; no baby is in two of them."""
    folds = grouped_folds(windows, max(2, round(1 / test_fraction)), seed)
    test = set(folds[0])
    rest = windows.subset(~np.isin(windows.babies, list(test)))
    val_folds = grouped_folds(rest, max(2, round((1 - test_fraction) / val_fraction)), seed + 1)
    val = set(val_folds[0])
    train = set(rest.babies) - val
    return {"train": sorted(train), "validation": sorted(val), "test": sorted(test)}


def select(windows: Windows, babies) -> Windows:
    return windows.subset(np.isin(windows.babies, list(babies)))
