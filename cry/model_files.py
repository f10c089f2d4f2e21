"""Model files: <name>.keras with <name>.json (settings, training, calibration, hash), saved and checked on load."""
from __future__ import annotations

import hashlib
import json
import os
import platform
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow loads: no info lines around a one-line error

import numpy as np  # noqa: E402

from cry.files import UserError, atomic_output, write_json  # noqa: E402
from cry.params import DEFAULT_SPECTROGRAMS, Settings, SettingsMismatch, check_compatible  # noqa: E402


class ModelError(UserError):
    """A model file that cannot be used: missing, corrupt, or made with other settings."""


def info_path(model_path: Path) -> Path:
    return Path(model_path).with_suffix(".json")


def sha256_of(path: Path) -> str:
    """The file's SHA-256, hex: what ties a .keras file to its JSON and to its LiteRT exports."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def library_versions() -> dict:
    import keras
    import librosa
    import sklearn
    import tensorflow as tf

    return {"python": platform.python_version(), "tensorflow": tf.__version__, "keras": keras.__version__,
            "librosa": librosa.__version__, "numpy": np.__version__, "scikit-learn": sklearn.__version__}


def calibration_of(info: dict) -> dict:
    """The calibration fitted on validation and saved with the model, for calibrate(); models
    saved before the two-level calibration have only a temperature."""
    return info.get("calibration") or {"temperature": info.get("temperature", 1.0)}


def data_dir_of(info: dict) -> Path:
    """The spectrogram folder the model was trained on."""
    return Path(info.get("data_dir", DEFAULT_SPECTROGRAMS))


def save_model(model, settings: Settings, extra: dict, path: Path) -> None:
    """Write <path>.keras and <path>.json, each atomically; the JSON holds the .keras hash,
    so a pair torn apart by a crash between the two writes is refused on load."""
    path = Path(path)
    with atomic_output(path) as tmp:
        model.save(tmp)
        digest = sha256_of(tmp)
    info = {"model_file": path.name, "sha256": digest, "classes": list(settings.classes),
            "settings": settings.to_dict(), "versions": library_versions(), **extra}
    write_json(info, info_path(path))


def read_model_info(path: Path, expected: Settings | None = None) -> dict:
    """The model's JSON, checked: present, same classes and feature code, file unchanged.
    info["settings"] is a Settings."""
    path, json_path = Path(path), info_path(path)
    if not path.is_file():
        raise ModelError(f"{path}: no such model file (train one with train_model.py)")
    try:
        info = json.loads(json_path.read_text())
        settings = Settings.from_dict(info["settings"])
    except FileNotFoundError:
        raise ModelError(f"{json_path}: missing; a model without its settings cannot be used safely") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"{json_path}: unreadable model settings ({exc})") from None
    try:
        check_compatible(settings, expected or settings, str(json_path))
    except SettingsMismatch as exc:
        raise ModelError(str(exc)) from None
    if info.get("sha256") != sha256_of(path):
        raise ModelError(f"{path}: does not match {json_path.name} (changed or half-saved); retrain or restore both")
    info["settings"] = settings
    return info


def load_model(path: Path, expected: Settings | None = None):
    """Load a model in Keras safe mode (nothing unpickled) after checking its JSON.

    Returns (model, info) where info["settings"] is a Settings.
    """
    info = read_model_info(path, expected)
    import keras

    try:
        model = keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as exc:  # a corrupt zip or config raises many kinds
        reason = f"{type(exc).__name__}: {str(exc).splitlines()[0][:150]}"
        raise ModelError(f"{path}: cannot load model ({reason})") from None
    return model, info
