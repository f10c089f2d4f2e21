"""All settings in two frozen objects: what the model sees (Settings), and how it is built and
trained (Training); both are saved with every model, Settings also with every spectrogram folder."""
from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from cry.files import UserError

# The order is part of the model: output unit i is CLASSES[i].
CLASSES = ("belly_pain", "hungry", "cold_hot", "tired", "silence", "discomfort", "burping")

# Where the scripts read and write by default.
DEFAULT_AUDIO = Path("data/audio")
DEFAULT_SPECTROGRAMS = Path("data/spectrograms")
DEFAULT_MODEL = Path("models/cry_model.keras")

ARCHITECTURES = ("seed", "time")
BALANCES = ("weights", "sampling")
AUGMENTATIONS = ("none", "spec", "mix")  # none; masks + time shift; that + gain + mixing with silence

# Bump when window_to_image changes in a way settings do not capture: old PNGs and models
# then refuse to load instead of silently disagreeing with live features.
FEATURE_VERSION = 1


# Fields added after the first release, with the value that reproduces files made before them.
_ADDED_LATER = {"db_reference": "fixed"}


class SettingsMismatch(UserError, ValueError):
    """Data or a model was made with settings this code cannot reproduce."""


@dataclasses.dataclass(frozen=True)
class Settings:
    """Everything that decides what the model sees. Units are in the names."""

    sample_rate_hz: int = 22050
    window_seconds: float = 3.0          # one model input; same in training and live
    window_hop_seconds: float = 1.0      # between windows cut from a recording
    n_fft: int = 2048
    n_mels: int = 128
    fmin_hz: float = 50.0
    fmax_hz: float = 4000.0              # corpus is 8 kHz: nothing lives above 4 kHz
    db_ceiling: float = 30.0             # fixed dB reference (corpus 99.9th pct ~ 20 dB): quiet stays dark
    db_range: float = 110.0              # floor at -80 dB
    db_reference: str = "fixed"          # "fixed": db_ceiling; "window": each window's loudest band is the ceiling
    image_size: int = 128
    colormap: str = "viridis"
    quiet_dbfs: float = -60.0            # RMS below this is "quiet" (quietest corpus window: -56)
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
        d = dataclasses.asdict(self)
        d["classes"] = list(self.classes)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Settings:
        """Strict: unknown or missing fields mean another code version made the file (except
        fields added later whose default reproduces what that version did)."""
        names = {f.name for f in dataclasses.fields(cls)}
        d = {**_ADDED_LATER, **d}
        unknown, missing = sorted(set(d) - names), sorted(names - set(d))
        if unknown or missing:
            raise SettingsMismatch(
                f"settings were written by another version (unknown: {unknown}, missing: {missing})")
        d = dict(d, classes=tuple(d["classes"]))
        return cls(**d)

    def replace(self, **changes) -> Settings:
        return dataclasses.replace(self, **changes)


def describe_difference(a: Settings, b: Settings) -> str:
    """'window_seconds 3.0 != 2.0, ...' for the fields that differ."""
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


def parse_overrides(pairs: list[str], base: Settings | None = None) -> Settings:
    """Apply KEY=VALUE strings (from --set) to the settings, typed like the defaults."""
    base = base or Settings()
    types = {f.name: type(getattr(base, f.name)) for f in dataclasses.fields(base)}
    changes = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or key not in types or key in ("classes", "feature_version"):
            raise SettingsMismatch(f"--set {pair!r}: expected KEY=VALUE with KEY one of "
                                   f"{sorted(k for k in types if k not in ('classes', 'feature_version'))}")
        try:
            changes[key] = types[key](value)
        except ValueError:
            raise SettingsMismatch(f"--set {pair!r}: {value!r} is not a {types[key].__name__}") from None
    settings = base.replace(**changes)
    import matplotlib

    if settings.colormap not in matplotlib.colormaps:
        raise SettingsMismatch(f"--set colormap={settings.colormap!r}: not a matplotlib colour map")
    if min(settings.window_seconds, settings.window_hop_seconds, settings.n_fft, settings.n_mels,
           settings.sample_rate_hz, settings.db_range) <= 0 or settings.image_size < 8:
        raise SettingsMismatch("--set: sizes, rates and seconds must be positive (image_size at least 8)")
    if settings.db_reference not in ("fixed", "window"):
        raise SettingsMismatch(f"--set db_reference={settings.db_reference!r}: choose fixed or window")
    if not 0 <= settings.fmin_hz < settings.fmax_hz <= settings.sample_rate_hz / 2:
        raise SettingsMismatch("--set: need 0 <= fmin_hz < fmax_hz <= sample_rate_hz / 2")
    return settings


@dataclasses.dataclass(frozen=True)
class Training:
    """Every hyperparameter of the model and its training; the scripts' options default to these."""

    arch: str = "time"                   # "time" reads the spectrogram in time order; "seed" as first specified
    epochs: int = 30                     # at most
    patience: int = 8                    # epochs without a better validation macro-F1 before stopping
    batch_size: int = 32
    learning_rate: float = 1e-3
    balance: str = "sampling"            # "sampling": balanced batches; "weights": class weights
    augment: str = "spec"                # one of AUGMENTATIONS, training data only
    filters: tuple = (32, 64, 128)       # of the three Conv2D/MaxPool blocks
    lstm_units: int = 64                 # each of the two LSTMs
    dense_units: int = 64
    dropout: float = 0.5
    repeat_steps: int = 16               # "seed": how often RepeatVector repeats the flat vector
    shuffle_buffer: int = 256            # per class, in balanced sampling
    max_time_mask: int = 20              # SpecAugment: widest band of time columns set to the floor
    max_freq_mask: int = 16              # ... and of mel rows
    max_shift: int = 16                  # circular time shift, columns either way
    max_gain_db: float = 6.0             # "mix": random gain
    mix_snrs_db: tuple = (0.0, 5.0, 10.0, 20.0)  # "mix": a cry over real silence at one of these
    mix_probability: float = 0.5         # "mix": share of windows that get silence mixed in

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> Training:
        """As saved in a model's JSON; fields added since keep their defaults."""
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})

    def replace(self, **changes) -> Training:
        return dataclasses.replace(self, **changes)


_TRAINING_OPTIONS = {  # option: help; choices and defaults come from Training
    "arch": ("'time' reads the spectrogram in time order; 'seed' is the original", ARCHITECTURES),
    "epochs": ("at most", None),
    "patience": ("early-stopping epochs", None),
    "batch_size": ("", None),
    "learning_rate": ("", None),
    "balance": ("balanced sampling or class weights, training data only (weights collapsed some folds to "
                "one class in cross-validation)", BALANCES),
    "augment": ("training data only: none; spec = time/frequency masks + time shift; mix = spec + gain + "
                "mixing with real silence at 0-20 dB SNR", AUGMENTATIONS),
}


def add_training_arguments(parser: argparse.ArgumentParser) -> None:
    """--arch, --epochs, --patience, --batch-size, --learning-rate, --balance, --augment,
    defaulting to Training's values, for every script that trains."""
    defaults = Training()
    for name, (text, choices) in _TRAINING_OPTIONS.items():
        default = getattr(defaults, name)
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(default), choices=choices, default=default,
                            help=f"{text}{' ' if text else ''}(default: %(default)s)")


def training_from_args(args: argparse.Namespace) -> Training:
    """The Training given by add_training_arguments' options; the rest stays at its default."""
    return Training(**{name: getattr(args, name) for name in _TRAINING_OPTIONS})
