"""Training and honest evaluation of the crying detector, split by source (baby, recording, speaker, voice).

Every clip is cut into the windows the live path would classify (cry.detect.detector.clip_windows)
and judged at clip level by the live decision rule (cry.decision.Decision with the live settings:
per-window threshold, majority of the last few heard windows): a clip "alarms" when any window's
answer is crying.
No source is ever on both sides of a split, and the threshold is chosen on held-out sources.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from tqdm import tqdm

from cry.decision import Decision, State, WindowScores
from cry.detect import detector as det
from cry.detect.feedback import sample_path, save_sample
from cry.detect.sounds import Clip, groups, list_clips, load_clip
from cry.files import UserError
from cry.params import DEFAULT_DETECTOR, LiveSettings

GENERATED_DIR = Path("data/generated")     # cry.detect.synth's sounds, made once
CACHE_DIR = Path("data/detector_cache")    # YAMNet's view of every training clip, made once
THRESHOLDS = np.concatenate([np.arange(0.50, 0.95, 0.01), np.arange(0.95, 0.9995, 0.0025)])


def clip_tables(clips: list[Clip], yamnet, band_hz: int | None, live: LiveSettings, cache_dir: Path | None = None,
                label: str = "YAMNet windows") -> list[dict]:
    """det.clip_windows of every clip (a progress bar; cached per clip in cache_dir when given,
    keyed by the file's path, size and time, the band, the live settings and the detector version)."""
    tables = []
    for clip in tqdm(clips, desc=label, unit="clip", leave=False):
        model = getattr(yamnet, "name", "coral")
        cached = _cache_path(cache_dir, clip.path, band_hz, live, model) if cache_dir else None
        if cached is not None and cached.is_file():
            with np.load(cached) as z:
                tables.append({k: z[k] for k in z.files})
            continue
        audio, rate = load_clip(clip.path)
        table = det.clip_windows(yamnet, audio, rate, band_hz, live)
        table["seconds"] = np.float32(len(audio) / rate)
        if cached is not None:
            cached.parent.mkdir(parents=True, exist_ok=True)
            np.savez(cached, **table)
        tables.append(table)
    return tables


def _cache_path(cache_dir: Path, path: Path, band_hz: int | None, live: LiveSettings, model: str) -> Path:
    stat = Path(path).stat()
    live_key = sorted(live.to_dict().items())
    key = f"{Path(path).resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{band_hz}|{det.VERSION}|{live_key}|{model}|2"
    return Path(cache_dir) / f"{hashlib.sha1(key.encode()).hexdigest()}.npz"


def training_windows(tables: list[dict], clips: list[Clip]) -> tuple[np.ndarray, np.ndarray]:
    """(mean embeddings [n, 1024], labels [n]) of the heard windows; of a crying clip only its
    loud part (det.loud_part)."""
    x, y = [], []
    for table, clip in zip(tables, clips):
        keep = det.loud_part(table["level_dbfs"], table["heard"]) if clip.label == 1 else table["heard"]
        x.append(table["embedding"][keep])
        y.append(np.full(int(keep.sum()), clip.label))
    return np.concatenate(x), np.concatenate(y)


def window_probabilities(head: det.Head, table: dict) -> np.ndarray:
    """p(crying) of each window of a clip [w] (0 for quiet windows, which the live path never scores)."""
    if len(table["heard"]) == 0:
        return np.zeros(0, np.float32)
    return np.where(table["heard"], head.probability(table["embedding"], table["scores"], table["cry_trace"]), 0.0)


def clip_outcome(probabilities: np.ndarray, heard: np.ndarray, threshold: float, live: LiveSettings) -> tuple:
    """(any crying answer, crying episodes) of one clip's windows through the live decision rule."""
    decision, crying = Decision(threshold, live), False
    for p, h in zip(probabilities, heard):
        state, _ = decision.update(WindowScores(0.0, float(p) if h else None), 0.0, 0.0)
        crying = crying or state.state == State.CRYING
    return crying, decision.episodes


def outcomes(probabilities: list[np.ndarray], tables: list[dict], threshold: float, live: LiveSettings) -> np.ndarray:
    """[n_clips, 2]: any crying answer, episodes; of every clip at one window threshold."""
    return np.array([clip_outcome(p, t["heard"], threshold, live) for p, t in zip(probabilities, tables)], int)


def pick_threshold(probabilities: list[np.ndarray], tables: list[dict], labels: np.ndarray, live: LiveSettings,
                   max_alarm: float = det.MAX_ALARM_SHARE) -> float:
    """The window threshold that detects the most crying clips while at most max_alarm of the
    not-crying clips get any crying answer (ties: the highest, the safest against alarms)."""
    best, best_detected = float(THRESHOLDS[-1]), -1.0
    for threshold in THRESHOLDS:
        crying = outcomes(probabilities, tables, threshold, live)[:, 0]
        if crying[labels == 0].mean() <= max_alarm and crying[labels == 1].mean() >= best_detected:
            best, best_detected = round(float(threshold), 4), crying[labels == 1].mean()
    return best


def folds(clips: list[Clip], n_folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Grouped, stratified folds: every source's clips in one fold."""
    from sklearn.model_selection import StratifiedGroupKFold

    labels = np.array([c.label for c in clips])
    n_folds = min(n_folds, len(set(c.source for c in clips)))
    return list(StratifiedGroupKFold(n_folds, shuffle=True, random_state=seed).split(labels, labels, groups(clips)))


def out_of_fold(tables: list[dict], clips: list[Clip], n_folds: int = 5, seed: int = 0, **rule) -> list[np.ndarray]:
    """Each clip's window probabilities from a head that never heard its source. rule: det.fit_head's
    c, floor, rival_ratio."""
    probabilities = [np.zeros(0)] * len(clips)
    for train, test in folds(clips, n_folds, seed):
        head = det.fit_head(*training_windows([tables[i] for i in train], [clips[i] for i in train]), **rule)
        for i in test:
            probabilities[i] = window_probabilities(head, tables[i])
    return probabilities


def fit_with_threshold(tables: list[dict], clips: list[Clip], live: LiveSettings, seed: int = 0,
                       **rule) -> tuple[det.Head, float]:
    """A head on all these clips, and its threshold tuned on held-out sources of the same clips."""
    labels = np.array([x.label for x in clips])
    threshold = pick_threshold(out_of_fold(tables, clips, 5, seed, **rule), tables, labels, live)
    return det.fit_head(*training_windows(tables, clips), **rule), threshold


def gather(audio_dirs: list[Path]) -> list[Clip]:
    """The clips of every folder (sounds trees or prepare_data.py corpus folders), listed once."""
    clips = []
    for folder in audio_dirs:
        found, skipped = list_clips(folder)
        for path, why in skipped:
            print(f"skipped {path}: {why}")
        clips += found
    if len({c.label for c in clips}) < 2:
        raise UserError("the detector needs crying and not-crying clips; got only one kind")
    return clips


def train_detector(audio_dirs: list[Path], out_path: Path = DEFAULT_DETECTOR, yamnet_dir: Path | None = None,
                   band_hz: int | None = det.BAND_HZ, live: LiveSettings = LiveSettings(),
                   cache_dir: Path | None = None, seed: int = 0, yamnet=None,
                   yamnet_model: str = "coral", leave_out: set | None = None) -> det.Detector:
    """Train the crying detector on these folders (the corpus from prepare_data.py, the sounds
    cry.detect.synth generates, sound trees such as ../shared/sounds) and save it to out_path, with
    the live settings its threshold was tuned under (on held-out sources of the same folders).
    leave_out: sources never to train on (those a night check is made of). Returns the loaded detector."""
    from cry.yamnet import YamnetModel

    yamnet = yamnet or YamnetModel.from_folder(yamnet_dir, yamnet_model)
    clips = [c for c in gather([Path(d) for d in audio_dirs]) if c.source not in (leave_out or set())]
    tables = clip_tables(clips, yamnet, band_hz, live, cache_dir)
    head, threshold = fit_with_threshold(tables, clips, live, seed)
    info = det.DetectorInfo(
        threshold, band_hz, live,
        trained_on={str(d): sorted({c.folder for c in clips if _below(c.path, d)}) for d in audio_dirs},
        clips=len(clips), sources=len({c.source for c in clips}), seed=seed,
        left_out=sorted(leave_out or ()),
        threshold_rule=f"most crying clips detected with at most {det.MAX_ALARM_SHARE:.0%} of not-crying "
                       f"clips alarmed, on held-out sources (5 grouped folds)")
    det.save_detector(out_path, head, info, getattr(yamnet, "name", "coral"))
    save_sample(sample_path(out_path), *training_windows(tables, clips), seed=seed)  # for a home's feedback
    return det.load_detector(out_path, yamnet=yamnet)


def _below(path: Path, folder: Path) -> bool:
    return Path(folder).resolve() in Path(path).resolve().parents


def train_on_corpus(audio_dir: Path, out_path: Path = DEFAULT_DETECTOR, yamnet_dir: Path | None = None,
                    live: LiveSettings = LiveSettings(), sounds: list[Path] = (), night_check: Path | None = None,
                    generated_dir: Path = GENERATED_DIR, cache_dir: Path = CACHE_DIR,
                    extra_cry_dirs: tuple[Path, ...] = ()) -> list[det.Detector]:
    """What train_model.py runs: the sounds cry.detect.synth generates (made once, then reused)
    beside the corpus from prepare_data.py, any extra trees of corpus cries (the uploads tagged
    with no class: prepare_data.py's --other-cries-dir) and the sound trees given, then
    train_detector on all of them; with night_check, a second detector that never heard the
    sources of the nights make_nights.py mixes by default (group 0 of 2 of the sound trees' and
    the corpus's cries and not-crying sounds), for an honest night report. Returns the detectors made."""
    from cry.detect import synth
    from cry.detect.nights import night_pool, source_groups

    folders = [audio_dir, synth.generate(generated_dir, audio_dir), *extra_cry_dirs, *sounds]
    made = [train_detector(folders, out_path, yamnet_dir, live=live, cache_dir=cache_dir)]
    if night_check is not None:
        pool = night_pool(gather([*sounds, audio_dir]))
        groups = source_groups(pool)
        made.append(train_detector(folders, night_check, yamnet_dir, live=live, cache_dir=cache_dir,
                                   yamnet=made[0].yamnet, leave_out={s for s, g in groups.items() if g == 0}))
    return made
