"""Spectrogram folders: one PNG per window of each recording, read back as labelled arrays and
split so that every baby stays on one side."""
from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import numpy as np

from cry.audio import AudioError, list_audio_files
from cry.corpus import baby_id
from cry.features import indices_to_png, window_to_indices
from cry.files import UserError
from cry.params import CLASSES, Settings, SettingsMismatch, check_compatible
from cry.reason.info import ModelInfo, Split
from cry.reason.windows import audio_to_windows, load_audio

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

    def subset(self, mask: np.ndarray) -> Windows:
        return Windows(*(getattr(self, f.name)[mask] for f in dataclasses.fields(self)))

    def __len__(self) -> int:
        return len(self.paths)


def recording_of(png: Path, folder: Path) -> str:
    """'hungry/abc_w3.png' -> 'hungry/abc': the recording a window PNG was cut from."""
    return _WINDOW_SUFFIX.sub("", str(Path(png).relative_to(folder).with_suffix("")))


def png_paths(audio: Path, audio_dir: Path, out_dir: Path, n_windows: int) -> list[Path]:
    """<out_dir>/<class>/.../<name>_w<k>.png for the first n_windows windows of a recording."""
    relative = audio.relative_to(audio_dir).with_suffix("")
    return [out_dir / relative.parent / f"{relative.name}_w{k}.png" for k in range(n_windows)]


def find_recordings(audio_dir: Path, out_dir: Path, settings: Settings) -> tuple[list, list]:
    """Jobs for recording_to_pngs (one per recording under a class folder), and (file, reason)
    for each audio file that cannot be one."""
    jobs, skipped, first = [], [], {}
    for audio in list_audio_files(audio_dir):
        label = audio.relative_to(audio_dir).parts[0]
        name = audio.with_suffix("")  # PNGs are named after it: a.wav and a.flac would overwrite each other
        if label not in CLASSES:
            where = "not in a class folder" if label == audio.name else f"folder {label!r} is not a class"
            skipped.append((str(audio), f"{where} (classes: {', '.join(CLASSES)})"))
        elif name in first:
            skipped.append((str(audio), f"same output name as {first[name].name}; rename one of them"))
        else:
            first[name] = audio
            jobs.append((audio, audio_dir, out_dir, settings))
    return jobs, skipped


def recording_to_pngs(job: tuple) -> tuple[str, int, int, str | None]:
    """One recording -> its window PNGs, each through window_to_indices (a palette PNG that reads
    back as exactly window_to_image's pixels); PNGs newer than the recording are kept.
    Returns (path, windows, written, skip reason)."""
    audio, audio_dir, out_dir, settings = job
    try:
        windows = audio_to_windows(load_audio(audio, settings), settings)
        targets = png_paths(audio, audio_dir, out_dir, len(windows))
        source_time = audio.stat().st_mtime
        written = 0
        for window, target in zip(windows, targets):
            if target.exists() and target.stat().st_mtime >= source_time:
                continue
            indices_to_png(window_to_indices(window, settings), settings.colormap, target)
            written += 1
        extra = len(targets)  # windows left from a longer old version of this recording
        while (stale := png_paths(audio, audio_dir, out_dir, extra + 1)[-1]).exists():
            stale.unlink()
            extra += 1
        return str(audio), len(windows), written, None
    except (AudioError, OSError) as exc:  # a bad recording; a failed write (UserError) stops the run
        return str(audio), 0, 0, str(exc)


def remove_orphans(jobs: list, audio_dir: Path, out_dir: Path) -> int:
    """Delete window PNGs whose recording is no longer in audio_dir (or no longer usable as a
    class recording): left in place they would be trained on as if it still were."""
    wanted = {str(audio.relative_to(audio_dir).with_suffix("")) for audio, *_ in jobs}
    orphans = [png for c in CLASSES for png in (out_dir / c).rglob("*_w*.png")
               if recording_of(png, out_dir) not in wanted]
    for png in orphans:
        png.unlink()
    return len(orphans)


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
    from sklearn.model_selection import StratifiedGroupKFold

    recordings, labels, babies = recording_table(windows)
    if len(set(babies)) < n_folds:
        raise UserError(f"only {len(set(babies))} babies: too few for {n_folds} baby-disjoint folds")
    splitter = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    return [np.unique(babies[test]) for _, test in splitter.split(recordings, labels, groups=babies)]


def split_by_baby(windows: Windows, seed: int, test_fraction: float = 0.2,
                  val_fraction: float = 0.15) -> Split:
    """Baby ids for train, validation and test; no baby is in two of them."""
    folds = grouped_folds(windows, max(2, round(1 / test_fraction)), seed)
    test = set(folds[0])
    rest = windows.subset(~np.isin(windows.babies, list(test)))
    val_folds = grouped_folds(rest, max(2, round((1 - test_fraction) / val_fraction)), seed + 1)
    val = set(val_folds[0])
    train = set(rest.babies) - val
    return Split(tuple(sorted(train)), tuple(sorted(val)), tuple(sorted(test)))


def select(windows: Windows, babies) -> Windows:
    return windows.subset(np.isin(windows.babies, list(babies)))


def held_out_windows(info: ModelInfo, data_dir: Path) -> Windows:
    """The windows of a model's test babies in data_dir, after checking the folder was made with
    the model's settings; all windows for a model saved without a split."""
    check_compatible(read_settings(data_dir), info.settings, f"{data_dir} against the model")
    windows = index_spectrograms(data_dir)
    return select(windows, info.split.test) if info.split is not None else windows
