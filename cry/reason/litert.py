"""LiteRT (TFLite): conversion of a Keras model, its interpreter, and the record of exports and their parity.

The record, <model>_litert.json beside the Keras model, says which Keras file (by hash) each
export came from, where the export went, and how closely it agrees with Keras on the model's
test windows; cry.reason.predictor trusts an export only through it.
"""
from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import numpy as np

from cry.features import png_to_image
from cry.files import UserError, atomic_output, write_json
from cry.params import CLASSES
from cry.reason.data import held_out_windows
from cry.reason.info import ModelInfo
from cry.reason.model import predict_probabilities

LITERT_WEIGHTS = ("float32", "float16", "int8")


def to_litert(model, weights: str = "float32") -> bytes:
    """A LiteRT (TFLite) flatbuffer of a Keras model, for one uint8 image [1, size, size, 3].

    The converter cannot lower Keras LSTMs traced with an unknown batch size: from_keras_model
    fails with "'tf.TensorListReserve' op requires element_shape to be static", and Keras'
    own export(format="litert") falls back to Select TF ops that the LiteRT interpreter
    cannot run. A SavedModel traced for exactly one image converts to builtin ops only
    (each LSTM becomes one fused UNIDIRECTIONAL_SEQUENCE_LSTM op).

    weights: "float32" (Keras' numbers up to float rounding), "float16" (half the size, the
    same speed, differences ~1e-4) or "int8" (dynamic-range quantisation: a quarter of the
    size and faster, differences ~1e-2 and an occasional other top class; export checks).
    """
    import tempfile

    import tensorflow as tf

    if weights not in LITERT_WEIGHTS:
        raise ValueError(f"weights must be one of {LITERT_WEIGHTS}, got {weights!r}")
    signature = [tf.TensorSpec((1, *model.input_shape[1:]), tf.uint8, name="image")]
    with tempfile.TemporaryDirectory() as saved_model:
        model.export(saved_model, format="tf_saved_model", input_signature=signature, verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(saved_model)
        if weights != "float32":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if weights == "float16":
            converter.target_spec.supported_types = [tf.float16]
        return converter.convert()


class LiteRTModel:
    """A model converted by to_litert, run by the LiteRT interpreter one image at a time.

    Its weights are a snapshot taken at conversion: convert again after further training.
    """

    def __init__(self, flatbuffer: bytes, num_threads: int = 1):
        from ai_edge_litert.interpreter import Interpreter

        self._interpreter = Interpreter(model_content=flatbuffer, num_threads=num_threads)
        self._interpreter.allocate_tensors()
        self._input = self._interpreter.get_input_details()[0]["index"]
        self._output = self._interpreter.get_output_details()[0]["index"]
        self._lock = threading.Lock()  # one interpreter, so one call at a time

    @classmethod
    def from_keras(cls, model, weights: str = "float32", num_threads: int = 1) -> LiteRTModel:
        return cls(to_litert(model, weights), num_threads)

    @classmethod
    def from_file(cls, path: Path, num_threads: int = 1) -> LiteRTModel:
        return cls(Path(path).read_bytes(), num_threads)

    def __call__(self, images: np.ndarray) -> np.ndarray:
        """uint8 images [n, size, size, 3] -> float32 probabilities [n, n_classes]."""
        images = np.asarray(images, dtype=np.uint8)
        rows = []
        with self._lock:
            for image in images:
                self._interpreter.set_tensor(self._input, image[None])
                self._interpreter.invoke()
                rows.append(self._interpreter.get_tensor(self._output)[0].copy())
        return np.stack(rows).astype(np.float32) if rows else np.zeros((0, len(CLASSES)), np.float32)

    predict_on_batch = __call__  # as a Keras model answers, for cry.model.predict_probabilities


def record_path(model_path: Path) -> Path:
    """<model>_litert.json beside the Keras model, wherever the exports themselves went."""
    return Path(model_path).parent / f"{Path(model_path).stem}_litert.json"


def export_path(model_path: Path, out_dir: Path, weights: str) -> Path:
    """<out_dir>/<model>.tflite for float32 weights, <out_dir>/<model>_<weights>.tflite otherwise."""
    return Path(out_dir) / f"{Path(model_path).stem}{'' if weights == 'float32' else '_' + weights}.tflite"


def exports_of(model_path: Path, keras_sha256: str) -> tuple[dict, str | None]:
    """The recorded exports of this very Keras file, {weights: {file, bytes, max_abs_diff,
    argmax_agreement}}, and why there are none when there are none."""
    path = record_path(model_path)
    if not path.is_file():
        return {}, f"no LiteRT export recorded ({path.name}; export_model.py makes one)"
    try:
        record = json.loads(path.read_text())
        if record.get("keras_sha256") != keras_sha256:
            return {}, f"{path.name} records exports of another training of this model (export again)"
        return dict(record["exports"]), None
    except (OSError, ValueError, KeyError, AttributeError, TypeError) as exc:
        return {}, f"{path.name} is unreadable ({type(exc).__name__}: {exc})"


def parity_images(info: ModelInfo, data_dir: Path, max_windows: int) -> np.ndarray:
    """Up to max_windows windows of the model's test babies (all babies if it has no split),
    spread evenly over them, to compare an export with its model. uint8 [n, size, size, 3]."""
    windows = held_out_windows(info, data_dir)
    if len(windows) == 0 or max_windows < 1:
        raise UserError(f"{data_dir}: no test windows of this model to check parity on")
    chosen = np.unique(np.linspace(0, len(windows) - 1, min(max_windows, len(windows))).astype(int))
    return np.stack([png_to_image(p) for p in windows.paths[chosen]])


def parity(probabilities: np.ndarray, reference: np.ndarray) -> dict:
    """Largest absolute probability difference and top-class agreement against the reference."""
    return {"max_abs_diff": float(np.abs(probabilities - reference).max()),
            "argmax_agreement": float(np.mean(probabilities.argmax(1) == reference.argmax(1)))}


def export(model, model_path: Path, keras_sha256: str, images: np.ndarray, weights=("float32",),
           out_dir: Path | None = None) -> dict:
    """Convert the model once per kind of weights, write each file atomically (see export_path),
    measure its parity with the Keras model on images, and write the record (exports of other
    kinds made from the same Keras file stay in it). Returns the record."""
    model_path = Path(model_path)
    out_dir = Path(out_dir or model_path.parent)
    reference = predict_probabilities(model, images)
    record = {"model": str(model_path), "keras_sha256": keras_sha256, "windows": len(images),
              "classes_predicted": len(np.unique(reference.argmax(1))), "exports": {}}
    for kind in weights:
        flatbuffer = to_litert(model, kind)
        path = export_path(model_path, out_dir, kind)
        with atomic_output(path) as tmp:
            tmp.write_bytes(flatbuffer)
        record["exports"][kind] = {"file": os.path.relpath(path, model_path.parent), "bytes": len(flatbuffer),
                                   **parity(predict_probabilities(LiteRTModel(flatbuffer), images), reference)}
    record["exports"] = {**exports_of(model_path, keras_sha256)[0], **record["exports"]}
    write_json(record, record_path(model_path))
    return record
