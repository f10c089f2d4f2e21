"""Baselines through the same folds as the CNN-LSTM: always the majority class, and a class-balanced
logistic regression on MFCCs and on YAMNet embeddings (transfer learning), per recording."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

from cry.audio import decode, list_audio_files, resample
from cry.files import UserError
from cry.params import CLASSES, Settings
from cry.reason.metrics import N_BOOT, bootstrap_scores, scores_by_reason
from cry.reason.windows import load_audio


def _audio_by_recording(recordings: np.ndarray, audio_dir: Path) -> dict | None:
    """recording name -> its audio file, or None when audio_dir does not hold all of them."""
    by_name = {str(p.relative_to(audio_dir).with_suffix("")): p for p in list_audio_files(audio_dir)}
    return by_name if all(r in by_name for r in recordings) else None


def mfcc_features(recordings: np.ndarray, audio_dir: Path, settings: Settings) -> np.ndarray | None:
    """40 MFCC means and standard deviations per recording [n, 80], or None without the audio."""
    import librosa

    if (by_name := _audio_by_recording(recordings, audio_dir)) is None:
        return None
    rows = []
    for r in tqdm(recordings, desc="mfcc baseline", unit="file"):
        mfcc = librosa.feature.mfcc(y=load_audio(by_name[r], settings), sr=settings.sample_rate_hz, n_mfcc=40,
                                    fmax=settings.fmax_hz)
        rows.append(np.concatenate([mfcc.mean(axis=1), mfcc.std(axis=1)]))
    return np.array(rows)


def yamnet_features(recordings: np.ndarray, audio_dir: Path, yamnet) -> np.ndarray | None:
    """Transfer learning for the reason: the mean and standard deviation of YAMNet's patch
    embeddings over each recording [n, 2048] (at YAMNet's rate), or None without the audio."""
    if (by_name := _audio_by_recording(recordings, audio_dir)) is None:
        return None
    rows = []
    for r in tqdm(recordings, desc="yamnet baseline", unit="file"):
        audio, rate = decode(by_name[r])
        _, embeddings = yamnet.waveform(resample(audio, rate, yamnet.params.sample_rate_hz))
        rows.append(np.concatenate([embeddings.mean(axis=0), embeddings.std(axis=0)]))
    return np.array(rows)


def baseline_features(recordings: np.ndarray, saved: dict, audio_dir: Path, settings: Settings,
                      yamnet_dir: Path | None = None) -> dict[str, np.ndarray]:
    """Each baseline's features per recording (np.unique(recordings) order): "mfcc" and "yamnet",
    those saved with the run, else computed from audio_dir. A kind that cannot be computed is
    left out, and why is said on stderr."""
    from cry.yamnet import YamnetModel

    recordings, out = np.unique(recordings), {}
    for kind in ("mfcc", "yamnet"):
        if kind in saved:
            out[kind] = saved[kind]
            continue
        if kind == "mfcc":
            features = mfcc_features(recordings, audio_dir, settings)
        else:
            try:
                features = yamnet_features(recordings, audio_dir, YamnetModel.from_folder(yamnet_dir))
            except UserError as exc:
                print(f"note: no YAMNet-embedding baseline row: {exc}", file=sys.stderr)
                continue
        if features is None:
            print(f"note: no {kind} baseline row: {audio_dir} does not hold every recording of the run "
                  f"(--audio-dir-for-baseline)", file=sys.stderr)
        else:
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
    out = {"majority": bootstrap_scores(labels, majority, babies, n_boot, score_fn=scores_by_reason)}
    for kind, p in logistic.items():
        out[f"{kind}_logistic_regression"] = bootstrap_scores(labels, p, babies, n_boot, score_fn=scores_by_reason)
    return out
