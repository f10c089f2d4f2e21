"""The settings everything downstream depends on, in frozen objects saved with what they made.

`Settings`: what the reason model sees (saved with every spectrogram folder and model).
`LiveSettings`: how the live path listens (window, hop, smoothing, the quiet gate, how a clip
played on its own is padded, the episode rules); saved in the detector's file, whose threshold
was tuned under them, and used by the monitor, the page's upload and every evaluation of the
live path, so none of them repeats a default by hand.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

from cry.files import UserError

# The order is part of the model: output unit i is CLASSES[i].
CLASSES = ("belly_pain", "hungry", "cold_hot", "tired", "silence", "discomfort", "burping")
SILENCE = CLASSES.index("silence")
REASONS = tuple(c for c in CLASSES if c != "silence")

# Where the scripts read and write by default.
DEFAULT_AUDIO = Path("data/audio")
DEFAULT_SPECTROGRAMS = Path("data/spectrograms")
DEFAULT_MODEL = Path("models/cry_model.keras")
DEFAULT_DETECTOR = Path("models/cry_detector.json")
# Uploads tagged with a reason outside CLASSES (dk, lo, sc): cries for the detector, never a class.
DEFAULT_OTHER_CRIES = Path("data/other_cries")
DEFAULT_REPORTS = Path("reports")

# Bump when window_to_image changes in a way settings do not capture: old PNGs and models
# then refuse to load instead of silently disagreeing with live features.
FEATURE_VERSION = 1


class SettingsMismatch(UserError, ValueError):
    """Data or a model was made with settings this code cannot reproduce."""


def dataclass_from_dict(cls, d: dict, added_later: dict | None = None, removed: tuple = ()):
    """cls(**d), strictly: unknown or missing fields mean another code version wrote the file,
    except fields added later (whose default reproduces what that version did) and fields
    since removed (ignored). Lists become tuples."""
    names = {f.name for f in dataclasses.fields(cls)}
    d = {**(added_later or {}), **{k: v for k, v in d.items() if k not in removed}}
    unknown, missing = sorted(set(d) - names), sorted(names - set(d))
    if unknown or missing:
        raise SettingsMismatch(f"{cls.__name__} written by another version (unknown: {unknown}, missing: {missing})")
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


def dataclass_to_dict(obj) -> dict:
    """JSON-ready fields of a frozen settings object (tuples as lists)."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(obj).items()}


@dataclasses.dataclass(frozen=True)
class Settings:
    """Everything that decides what the reason model sees. Units are in the names."""

    sample_rate_hz: int = 22050
    window_seconds: float = 3.0          # one model input
    window_hop_seconds: float = 1.0      # between windows cut from a recording for training
    n_fft: int = 2048
    n_mels: int = 128
    fmin_hz: float = 50.0
    fmax_hz: float = 4000.0              # corpus is 8 kHz: nothing lives above 4 kHz
    db_ceiling: float = 30.0             # fixed dB reference (corpus 99.9th pct ~ 20 dB): quiet stays dark
    db_range: float = 110.0              # floor at -80 dB
    db_reference: str = "fixed"          # "fixed": db_ceiling; "window": each window's loudest band is the ceiling
    image_size: int = 128
    colormap: str = "viridis"
    min_audio_seconds: float = 1.0       # shorter recordings are skipped, not padded
    classes: tuple = CLASSES
    feature_version: int = FEATURE_VERSION

    @property
    def window_samples(self) -> int:
        return int(round(self.window_seconds * self.sample_rate_hz))

    @property
    def hop_length(self) -> int:
        """STFT hop chosen so one window gives exactly image_size frames (centred STFT)."""
        return max(1, self.window_samples // (self.image_size - 1))

    def to_dict(self) -> dict:
        return dataclass_to_dict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Settings:
        # db_reference came later (older files were "fixed"); the quiet gate moved to LiveSettings.
        return dataclass_from_dict(cls, d, added_later={"db_reference": "fixed"}, removed=("quiet_dbfs",))

    def replace(self, **changes) -> Settings:
        return dataclasses.replace(self, **changes)

    def check(self) -> Settings:
        """self, or SettingsMismatch saying which value cannot work."""
        import matplotlib

        if self.colormap not in matplotlib.colormaps:
            raise SettingsMismatch(f"colormap={self.colormap!r}: not a matplotlib colour map")
        if min(self.window_seconds, self.window_hop_seconds, self.n_fft, self.n_mels, self.sample_rate_hz,
               self.db_range) <= 0 or self.image_size < 8:
            raise SettingsMismatch("sizes, rates and seconds must be positive (image_size at least 8)")
        if self.db_reference not in ("fixed", "window"):
            raise SettingsMismatch(f"db_reference={self.db_reference!r}: choose fixed or window")
        if not 0 <= self.fmin_hz < self.fmax_hz <= self.sample_rate_hz / 2:
            raise SettingsMismatch("need 0 <= fmin_hz < fmax_hz <= sample_rate_hz / 2")
        return self


@dataclasses.dataclass(frozen=True)
class LiveSettings:
    """How the live path listens and decides over time. Units are in the names.

    The detector's threshold is tuned through exactly these (a window of this length every
    hop, the majority of `smooth_windows`), so they are saved in the detector's file and
    every evaluation of the live path runs with the detector's own.
    """

    window_seconds: float = 3.0          # the newest audio judged at each answer
    hop_seconds: float = 0.5             # between answers
    smooth_windows: int = 4              # the majority of the last this many heard windows decides
    quiet_dbfs: float = -60.0            # window RMS below this: "quiet", no model is asked
    clip_padding_seconds: float = 1.0    # digital silence around a clip played on its own
    episode_start_windows: int = 1       # crying votes in a row that start an episode
    episode_end_seconds: float = 15.0    # this long without a crying vote ends it (a cry's pauses must not)

    def to_dict(self) -> dict:
        return dataclass_to_dict(self)

    @classmethod
    def from_dict(cls, d: dict) -> LiveSettings:
        return dataclass_from_dict(cls, d)

    def replace(self, **changes) -> LiveSettings:
        return dataclasses.replace(self, **changes)

    def check(self) -> LiveSettings:
        if min(self.window_seconds, self.hop_seconds) <= 0 or min(self.smooth_windows, self.episode_start_windows) < 1 \
                or min(self.clip_padding_seconds, self.episode_end_seconds) < 0:
            raise SettingsMismatch("live settings: seconds must be positive (or zero for padding and an episode's "
                                   "end), smooth_windows and episode_start_windows at least 1")
        return self


def describe_difference(a, b) -> str:
    """'window_seconds 3.0 != 2.0, ...' for the fields of two settings objects that differ."""
    da, db = a.to_dict(), b.to_dict()
    return ", ".join(f"{k} {da[k]!r} != {db[k]!r}" for k in da if da[k] != db[k])


def check_compatible(found: Settings, expected: Settings, what: str) -> None:
    """Refuse to mix data and models made with different settings, saying what differs."""
    if found.classes != CLASSES:
        raise SettingsMismatch(f"{what}: classes {list(found.classes)} differ from this code's {list(CLASSES)}")
    if found.feature_version != FEATURE_VERSION:
        raise SettingsMismatch(f"{what}: made by feature version {found.feature_version}, this code is "
                               f"version {FEATURE_VERSION}; re-run preprocessing and training")
    if found != expected:
        raise SettingsMismatch(f"{what}: settings differ ({describe_difference(found, expected)})")


def parse_overrides(pairs: list[str], base, fixed: tuple = ("classes", "feature_version")):
    """Apply KEY=VALUE strings (from --set) to a settings object, typed like its fields, then
    check the result. Returns a new object of base's type."""
    types = {f.name: type(getattr(base, f.name)) for f in dataclasses.fields(base) if f.name not in fixed}
    changes = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or key not in types:
            raise SettingsMismatch(f"--set {pair!r}: expected KEY=VALUE with KEY one of {sorted(types)}")
        try:
            changes[key] = types[key](value)
        except ValueError:
            raise SettingsMismatch(f"--set {pair!r}: {value!r} is not a {types[key].__name__}") from None
    try:
        return base.replace(**changes).check()
    except SettingsMismatch as exc:
        raise SettingsMismatch(f"--set: {exc}") from None
