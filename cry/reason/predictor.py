"""The reason model as the live path uses it: a window at the model's rate -> calibrated class probabilities.

The LiteRT export of this very model file is used when one was recorded with parity (faster for
one window than Keras, and TensorFlow need not be imported at all); otherwise the Keras model,
and the reason is said once on stderr.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from cry.features import window_to_image
from cry.reason.calibration import calibrate
from cry.reason.info import ModelInfo
from cry.reason.litert import LiteRTModel, exports_of
from cry.reason.model import predict_probabilities
from cry.reason.model_files import load_keras_model, read_model_info

MIN_AGREEMENT = 0.99  # an export's top class must agree this often with Keras on the test windows


class ReasonPredictor:
    """window float32 [settings.window_samples] -> calibrated probabilities [n_classes]."""

    def __init__(self, model, info: ModelInfo):
        self.model, self.info = model, info
        self.settings, self.calibration = info.settings, info.calibration

    @property
    def silence_threshold(self) -> float:
        return self.calibration.silence_threshold

    def image(self, window: np.ndarray) -> np.ndarray:
        """The picture the model judges: uint8 [size, size, 3]."""
        return window_to_image(window, self.settings)

    def __call__(self, window: np.ndarray) -> np.ndarray:
        raw = predict_probabilities(self.model, self.image(window)[None])
        return calibrate(raw, self.calibration)[0]


def litert_or_why(model_path: Path, info: ModelInfo, min_agreement: float = MIN_AGREEMENT):
    """(the float32 LiteRT export of this exact model, None) when one was recorded with parity,
    else (None, why not)."""
    exports, why = exports_of(model_path, info.sha256)
    export = exports.get("float32")
    if export is None:
        return None, why or "no float32 LiteRT export recorded"
    if export.get("argmax_agreement", 0.0) < min_agreement:
        return None, f"its LiteRT export agrees with Keras on only {export['argmax_agreement']:.1%} of test windows"
    try:
        return LiteRTModel.from_file(Path(model_path).parent / export["file"]), None
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        return None, f"its LiteRT export cannot be loaded ({type(exc).__name__}: {exc})"


def fastest_model(model_path: Path, info: ModelInfo, keras_model=None):
    """The LiteRT export when it may be used, else the Keras model (loaded here unless given),
    saying once on stderr why the slower one is used."""
    litert, why = litert_or_why(model_path, info)
    if litert is not None:
        return litert
    print(f"note: {model_path}: using the Keras model, {why}", file=sys.stderr, flush=True)
    return keras_model if keras_model is not None else load_keras_model(model_path, info)


def load_predictor(model_path: Path) -> ReasonPredictor:
    """The model at model_path, checked against its JSON, as the live path's reason predictor."""
    info = read_model_info(model_path)
    return ReasonPredictor(fastest_model(model_path, info), info)
