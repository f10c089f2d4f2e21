"""Model files: <name>.keras with <name>.json (a ModelInfo), saved atomically and checked on load."""
from __future__ import annotations

import dataclasses
import json
import platform
from pathlib import Path

import numpy as np

from cry.files import UserError, atomic_output, sha256_of, write_json
from cry.params import Settings, SettingsMismatch, check_compatible
from cry.reason.info import ModelInfo


class ModelError(UserError):
    """A model file that cannot be used: missing, corrupt, or made with other settings."""


def info_path(model_path: Path) -> Path:
    return Path(model_path).with_suffix(".json")


def library_versions() -> dict:
    import keras
    import librosa
    import sklearn
    import tensorflow as tf

    return {"python": platform.python_version(), "tensorflow": tf.__version__, "keras": keras.__version__,
            "librosa": librosa.__version__, "numpy": np.__version__, "scikit-learn": sklearn.__version__}


def save_model(model, info: ModelInfo, path: Path) -> ModelInfo:
    """Write <path>.keras and <path>.json, each atomically; the JSON holds the .keras hash,
    so a pair torn apart by a crash between the two writes is refused on load. Returns the
    info as written (file name, hash and library versions filled in)."""
    path = Path(path)
    with atomic_output(path) as tmp:
        model.save(tmp)
        digest = sha256_of(tmp)
    info = dataclasses.replace(info, model_file=path.name, sha256=digest, versions=library_versions())
    write_json(info.to_dict(), info_path(path))
    return info


def read_model_info(path: Path, expected: Settings | None = None) -> ModelInfo:
    """The model's JSON, checked: present, same classes and feature code, file unchanged.
    Reads no TensorFlow: the live monitor checks a model this way before using its LiteRT export."""
    path, json_path = Path(path), info_path(path)
    if not path.is_file():
        raise ModelError(f"{path}: no such model file (train one with train_model.py)")
    try:
        info = ModelInfo.from_dict(json.loads(json_path.read_text()))
    except FileNotFoundError:
        raise ModelError(f"{json_path}: missing; a model without its settings cannot be used safely") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"{json_path}: unreadable model settings ({exc})") from None
    try:
        check_compatible(info.settings, expected or info.settings, str(json_path))
    except SettingsMismatch as exc:
        raise ModelError(str(exc)) from None
    if info.sha256 != sha256_of(path):
        raise ModelError(f"{path}: does not match {json_path.name} (changed or half-saved); retrain or restore both")
    return info


def load_keras_model(path: Path, info: ModelInfo):
    """The Keras model at path, in safe mode (nothing unpickled), its info already checked."""
    import keras

    try:
        return keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as exc:  # a corrupt zip or config raises many kinds
        reason = f"{type(exc).__name__}: {str(exc).splitlines()[0][:150]}"
        raise ModelError(f"{path}: cannot load model ({reason})") from None


def load_model(path: Path, expected: Settings | None = None):
    """(Keras model, ModelInfo) after checking the JSON."""
    info = read_model_info(path, expected)
    return load_keras_model(path, info), info
