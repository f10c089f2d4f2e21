"""Crying or not: YAMNet's view of a window -> a small trained head -> a probability, and what was heard.

The project's reason model learned "loud = crying" (its only non-cry class is room tone). This
stage answers the question it cannot: is this sound a cry at all, or speech, music, a laugh, a
dog? YAMNet (AudioSet, 521 classes) gives each 0.96 s patch of the window a 1024-wide embedding
and class scores; a logistic regression on the window's mean embedding, trained on corpus cries
against generated speech, music, noise and tones (cry.detect.synth), says "like a cry". The head
has heard few laughs, pets or pieces of music (those of ../shared/sounds, when it was given);
YAMNet has heard thousands. So crying also needs YAMNet to hear a trace of crying (crying-family
score at least `floor` on some patch) and no laugh, animal or music more than `rival_ratio` times
as strongly as crying (chosen by leaving sources out: README, Results). Everything the live path
does to a window is done the same way here, in training and in every evaluation.
"""
from __future__ import annotations

import dataclasses
import functools
import json
from pathlib import Path

import numpy as np

from cry.audio import is_quiet, rms_dbfs
from cry.patches import PatchCache, window_patches
from cry.files import UserError, write_json
from cry.live_path import clip_window_ends, pad_clip
from cry.params import DEFAULT_DETECTOR, LiveSettings, SettingsMismatch
from cry.yamnet import BABY_CRY, EMBEDDING_SIZE, HEARD_RANGES, N_CLASSES, YamnetParams, heard_label

VERSION = 4                 # 2: live settings saved; 3: patches on the hop grid; 4: the head names its rivals
BAND_HZ = 4000              # corpus audio is 8 kHz: live audio is cut to the same band (None: full band)
FLOOR = 2 / 256             # YAMNet's int8 scores step by 1/256: "above its smallest step"
RIVALS = ("laughter", "animal", "music")  # what YAMNet tells from a cry better than a head that heard few of them
RIVAL_RATIO = 2.5           # a rival heard more than this many times as strongly as crying: not crying
LOUD_WITHIN_DB = 20.0       # windows of a crying recording this far below its loudest are its room tone
MAX_ALARM_SHARE = 0.01      # threshold: the most detection with at most this share of not-crying clips alarmed
PARAMS = YamnetParams()


def loud_part(level_dbfs: np.ndarray, heard: np.ndarray) -> np.ndarray:
    """The windows [w] of a crying recording that are the cry: heard, and within LOUD_WITHIN_DB of
    its loudest (a recording of a cry also holds pauses and room tone, which are not learnt as crying)."""
    heard = np.asarray(heard, bool)
    if not heard.any():
        return heard
    level_dbfs = np.asarray(level_dbfs)
    return heard & (level_dbfs >= level_dbfs[heard].max() - LOUD_WITHIN_DB)


def family_max(scores: np.ndarray, family: str) -> np.ndarray:
    """The highest score [n] of a cry.yamnet.HEARD_RANGES family in each row of scores [n, 521]."""
    return scores[:, family_columns(family)].max(axis=1)


@functools.lru_cache(maxsize=len(HEARD_RANGES))
def family_columns(family: str) -> np.ndarray:
    """The score columns of a family (made once: every window asks for three families)."""
    columns = np.concatenate([np.arange(first, last + 1) for first, last in HEARD_RANGES[family]])
    columns.flags.writeable = False
    return columns


@dataclasses.dataclass(frozen=True)
class Head:
    """Logistic regression on the standardised mean patch embedding, gated by what YAMNet itself hears."""

    mean: np.ndarray      # [1024]
    scale: np.ndarray     # [1024]
    weights: np.ndarray   # [1024]
    bias: float
    floor: float = FLOOR  # crying-family score some patch must reach; 0 turns this gate off
    rival_ratio: float = RIVAL_RATIO  # 0 turns the rivals gate off
    rivals: tuple = RIVALS

    def probability(self, embedding: np.ndarray, scores: np.ndarray, cry_trace: np.ndarray) -> np.ndarray:
        """p(crying) [n] of windows: mean embeddings [n, 1024], mean scores [n, 521], and the highest
        crying-family score of any patch [n]."""
        return np.where(self.allowed(scores, cry_trace), self.ungated(embedding), 0.0)

    def ungated(self, embedding: np.ndarray) -> np.ndarray:
        """The logistic regression's p(crying) [n] alone."""
        logit = ((embedding - self.mean) / self.scale) @ self.weights + self.bias
        return 1.0 / (1.0 + np.exp(-np.clip(logit, -50, 50)))

    def allowed(self, scores: np.ndarray, cry_trace: np.ndarray) -> np.ndarray:
        """[n]: YAMNet heard a trace of crying, and no rival much more strongly."""
        allowed = np.asarray(cry_trace) >= self.floor
        if self.rival_ratio:
            crying = family_max(scores, "crying")
            allowed &= np.all([family_max(scores, r) <= self.rival_ratio * crying for r in self.rivals], axis=0)
        return allowed

    def to_dict(self) -> dict:
        return {"mean": self.mean.tolist(), "scale": self.scale.tolist(), "weights": self.weights.tolist(),
                "bias": float(self.bias), "floor": float(self.floor), "rivals": list(self.rivals),
                "rival_ratio": float(self.rival_ratio)}

    @classmethod
    def from_dict(cls, d: dict) -> Head:
        arrays = {k: np.asarray(d[k], np.float32) for k in ("mean", "scale", "weights")}
        return cls(**arrays, bias=float(d["bias"]), floor=float(d["floor"]), rival_ratio=float(d["rival_ratio"]),
                   rivals=tuple(d["rivals"]))


def fit_head(embedding: np.ndarray, label: np.ndarray, c: float = 0.01, floor: float = FLOOR,
             rival_ratio: float = RIVAL_RATIO, rivals: tuple = RIVALS, like: Head | None = None,
             sample_weight: np.ndarray | None = None) -> Head:
    """A head fitted on window mean embeddings [n, 1024] and labels [n] (1 crying). Classes are
    weighted equally: the negatives outnumber no one, and the threshold is tuned afterwards.
    like: keep that head's standardisation and gates, refit only its weights (a home's feedback)."""
    from sklearn.linear_model import LogisticRegression

    if like is None:
        mean, scale = embedding.mean(axis=0), embedding.std(axis=0) + 1e-6
    else:
        mean, scale, floor, rival_ratio, rivals = like.mean, like.scale, like.floor, like.rival_ratio, like.rivals
    model = LogisticRegression(C=c, max_iter=3000, class_weight="balanced")
    model.fit((embedding - mean) / scale, label, sample_weight=sample_weight)
    return Head(mean.astype(np.float32), scale.astype(np.float32), model.coef_[0].astype(np.float32),
                float(model.intercept_[0]), floor, rival_ratio, tuple(rivals))


@dataclasses.dataclass(frozen=True)
class DetectorInfo:
    """Everything in the detector's file but the head: how it decides and what it was trained on."""

    threshold: float
    band_hz: int | None
    live: LiveSettings
    trained_on: dict = dataclasses.field(default_factory=dict)   # folder -> its sub-folders used
    clips: int = 0
    sources: int = 0
    threshold_rule: str = ""
    seed: int = 0
    left_out: list = dataclasses.field(default_factory=list)   # sources kept out of training (a night check)


@dataclasses.dataclass(frozen=True)
class Judged:
    probability: float
    heard: str
    embedding: np.ndarray    # [1024], the window's mean YAMNet embedding
    gated: bool              # YAMNet's gates held it back (Head.allowed), whatever the head says


class Detector:
    """The live stage: detector(window, rate, end, cache) -> (p(crying), what was heard); `threshold` decides.

    With the stream position of the window's end and the stream's PatchCache, each YAMNet patch
    is computed once (cry.detect.patches); without them, the window's patches are all computed.
    """

    def __init__(self, head: Head, info: DetectorInfo, yamnet):
        self.head, self.info, self.yamnet = head, info, yamnet
        self.threshold, self.band_hz, self.live = info.threshold, info.band_hz, info.live

    def judge(self, window: np.ndarray, rate: int, end: int | None = None,
              cache: PatchCache | None = None) -> Judged:
        """p(crying), what was heard, and the mean embedding the head read (for a parent's feedback)."""
        scores, embeddings = window_patches(self.yamnet, window, rate, self.live, self.band_hz, end, cache)
        mean_scores, embedding = scores.mean(axis=0), embeddings.mean(axis=0)
        head = self.head  # one head for the window, even if feedback replaces it meanwhile
        allowed = bool(head.allowed(mean_scores[None], [family_max(scores, "crying").max()])[0])
        p = float(head.ungated(embedding[None])[0]) if allowed else 0.0
        return Judged(p, "crying" if p > self.threshold else heard_label(mean_scores), embedding, not allowed)

    def __call__(self, window: np.ndarray, rate: int, end: int | None = None,
                 cache: PatchCache | None = None) -> tuple[float, str]:
        judged = self.judge(window, rate, end, cache)
        return judged.probability, judged.heard


def yamnet_fingerprint(model: str) -> dict:
    """What the detector's numbers depend on: which YAMNet build, its SHA-256 and the feature parameters."""
    from cry.pretrained import YAMNET_MODELS

    return {"yamnet_model": model, "yamnet_sha256": YAMNET_MODELS[model].sha256,
            "yamnet_params": dataclasses.asdict(PARAMS)}


def save_detector(path: Path, head: Head, info: DetectorInfo, yamnet_model: str) -> None:
    """The detector as one small JSON file (no pickle): head, threshold, band, the YAMNet build and
    the live settings its threshold was tuned under, and what it was trained on."""
    write_json({"version": VERSION, "kind": "cry_detector", **yamnet_fingerprint(yamnet_model),
                "threshold": float(info.threshold), "band_hz": info.band_hz, "live": info.live.to_dict(),
                "trained_on": info.trained_on, "clips": info.clips, "sources": info.sources,
                "threshold_rule": info.threshold_rule, "seed": info.seed, "left_out": info.left_out,
                "head": head.to_dict()}, path)


def load_detector(path: Path = DEFAULT_DETECTOR, yamnet_dir: Path | None = None, yamnet=None) -> Detector:
    """The detector at path with its YAMNet, or one UserError line saying what does not match."""
    from cry.yamnet import YamnetModel

    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"{path}: no detector file; train one with `python train_model.py`") from None
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: not a detector file ({exc})") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: not a detector file (no JSON object)")
    from cry.pretrained import YAMNET_MODELS

    model = data.get("yamnet_model") if data.get("yamnet_model") in YAMNET_MODELS else "coral"
    expected = {"version": VERSION, "kind": "cry_detector", **yamnet_fingerprint(model)}
    wrong = [k for k, v in expected.items() if data.get(k) != v]
    if wrong:
        raise UserError(f"{path}: made for another {', '.join(wrong)} than this code uses; retrain it with "
                        f"`python train_model.py`")
    try:
        live = LiveSettings.from_dict(data["live"]).check()
        info = DetectorInfo(float(data["threshold"]), data["band_hz"], live, data.get("trained_on", {}),
                            int(data.get("clips", 0)), int(data.get("sources", 0)), data.get("threshold_rule", ""),
                            int(data.get("seed", 0)), list(data.get("left_out", [])))
        head = Head.from_dict(data["head"])
    except (KeyError, TypeError, ValueError) as exc:  # SettingsMismatch is a ValueError
        why = exc if isinstance(exc, SettingsMismatch) else f"{type(exc).__name__}: {exc}"
        raise UserError(f"{path}: unreadable detector file ({why}); retrain it with `python train_model.py`") from None
    return Detector(head, info, yamnet or YamnetModel.from_folder(yamnet_dir, model))


def describe(detector: Detector) -> str:
    """One line for the scripts to print: what the detector is and where it decides."""
    band = f"band-limited to {detector.band_hz} Hz" if detector.band_hz else "full band"
    return f"YAMNet + logistic head ({band}), crying above {detector.threshold:.3f}"


def clip_windows(yamnet, audio: np.ndarray, rate: int, band_hz: int | None, live: LiveSettings) -> dict:
    """What the live path sees of one clip played on its own (cry.live_path.pad_clip, a window of
    live.window_seconds every live.hop_seconds, the quiet gate, each patch once), computed once
    per clip so that heads and thresholds can be compared on it.

    Returns arrays, one row per window: level_dbfs [w], heard [w] (above the quiet gate),
    embedding [w, 1024] and embedding_max (mean and max over patches; 0 when quiet), cry_trace [w]
    (max crying-family score), baby_cry [w] (max "Baby cry" score, for the zero-shot row), scores
    [w, 521] and scores_max (mean and max over patches).
    """
    return audio_windows(yamnet, pad_clip(audio, rate, live), rate, band_hz, live)


def audio_windows(yamnet, played: np.ndarray, rate: int, band_hz: int | None, live: LiveSettings) -> dict:
    """clip_windows of a recording as it is (no padding): every window the live path judges,
    ending at clip_window_ends (also in the table, as "end" [w], stream samples)."""
    cache, size = PatchCache(), int(round(live.window_seconds * rate))
    rows = {"level_dbfs": [], "heard": [], "embedding": [], "cry_trace": [], "baby_cry": [], "scores": [],
            "embedding_max": [], "scores_max": []}
    for end in clip_window_ends(len(played), rate, live):
        window = played[end - size:end]
        level = rms_dbfs(window)
        rows["level_dbfs"].append(level)
        rows["heard"].append(not is_quiet(level, live.quiet_dbfs))
        if is_quiet(level, live.quiet_dbfs):
            scores, embeddings = np.zeros((1, N_CLASSES), np.float32), np.zeros((1, EMBEDDING_SIZE), np.float32)
        else:
            scores, embeddings = window_patches(yamnet, window, rate, live, band_hz, end, cache)
        rows["embedding"].append(embeddings.mean(axis=0))
        rows["embedding_max"].append(embeddings.max(axis=0))
        rows["cry_trace"].append(family_max(scores, "crying").max())
        rows["baby_cry"].append(scores[:, BABY_CRY].max())
        rows["scores"].append(scores.mean(axis=0))
        rows["scores_max"].append(scores.max(axis=0))
    out = {k: np.asarray(v, np.float32) for k, v in rows.items()}
    out["heard"] = np.asarray(rows["heard"], bool)
    out["end"] = np.asarray(clip_window_ends(len(played), rate, live), np.int64)
    for key, width in (("embedding", EMBEDDING_SIZE), ("embedding_max", EMBEDDING_SIZE), ("scores", N_CLASSES),
                       ("scores_max", N_CLASSES)):
        out[key] = out[key].reshape(-1, width)
    return out
