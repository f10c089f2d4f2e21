"""The CNN-LSTM, its input pipeline and training loop, and model files with their settings."""
from __future__ import annotations

import hashlib
import json
import os
import platform
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

from cry.features import colour_table
from cry.files import UserError, atomic_output, write_json
from cry.metrics import calibrate  # noqa: F401  (callers use it from here with the model)
from cry.params import CLASSES, Settings, SettingsMismatch, check_compatible

ARCHITECTURES = ("seed", "time")
REPEAT_STEPS = 16  # seed architecture: how often RepeatVector repeats the flat vector


class ModelError(UserError):
    """A model file that cannot be used: missing, corrupt, or made with other settings."""


def build_model(arch: str, settings: Settings, learning_rate: float = 1e-3):
    """CNN-LSTM classifier over uint8 spectrogram images [size, size, 3].

    "seed": Conv/MaxPool x3 -> Flatten -> RepeatVector -> LSTM -> LSTM -> Dense -> Dropout ->
    softmax, as first specified. Every LSTM step sees the same vector, so it has no time axis.
    "time": the same convolutions, but the feature maps are read column by column, so the
    LSTMs see the spectrogram's time axis in order.
    """
    import keras
    from keras import layers

    size, n_classes = settings.image_size, len(settings.classes)
    inputs = keras.Input((size, size, 3), name="image")
    x = layers.Rescaling(1 / 255.0)(inputs)
    for filters in (32, 64, 128):
        x = layers.Conv2D(filters, 3, activation="relu")(x)
        x = layers.MaxPooling2D(2)(x)
    if arch == "seed":
        x = layers.RepeatVector(REPEAT_STEPS)(layers.Flatten()(x))
    elif arch == "time":
        x = layers.Permute((2, 1, 3))(x)  # [freq, time, ch] -> [time, freq, ch]
        x = layers.Reshape((x.shape[1], x.shape[2] * x.shape[3]))(x)
    else:
        raise ValueError(f"unknown architecture {arch!r}; choose from {ARCHITECTURES}")
    x = layers.LSTM(64, return_sequences=True)(x)
    x = layers.LSTM(64)(x)
    x = layers.Dense(64, activation="relu")(x)
    x = layers.Dropout(0.5)(x)
    outputs = layers.Dense(n_classes, activation="softmax", name="probabilities")(x)
    model = keras.Model(inputs, outputs, name=f"cry_{arch}")
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="categorical_crossentropy",
                  metrics=["accuracy", keras.metrics.F1Score(average="macro", name="macro_f1")])
    return model


# ---- input pipeline -----------------------------------------------------------------------

AUGMENTATIONS = ("none", "spec", "mix")  # none; masks + time shift; that + gain + mixing with silence


def _indices_from_rgb(colormap: str):
    """A function uint8 image [H, W, 3] -> float32 colour-table index [H, W] (0 = dB floor).

    Augmenting on levels, not colours, lets gain and mixing do real arithmetic in dB; the
    PNGs are drawn in the settings' colour map, so every pixel is one of its 256 colours.
    """
    import tensorflow as tf

    table = colour_table(colormap).astype(np.int64)
    keys, first = np.unique((table[:, 0] << 16) | (table[:, 1] << 8) | table[:, 2], return_index=True)
    lookup = tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(keys, first.astype(np.int64)), -1)

    def to_indices(image):
        rgb = tf.cast(image, tf.int64)
        index = lookup.lookup((rgb[..., 0] * 65536) + (rgb[..., 1] * 256) + rgb[..., 2])
        tf.debugging.assert_non_negative(index, f"a training PNG has colours outside the {colormap} colour map")
        return tf.cast(index, tf.float32)
    return to_indices


def _augment_levels(index, silence_index, seed, settings: Settings, mix: bool,
                    max_time: int = 20, max_freq: int = 16, max_shift: int = 16, max_gain_db: float = 6.0,
                    snrs_db=(0.0, 5.0, 10.0, 20.0), mix_probability: float = 0.5):
    """Training-only changes to one picture's levels (colour-table indices, float [H, W]).

    mix: a random gain, and (half the time) a real silence window added in power at one of
    snrs_db, as a cry recorded in another room. Always: SpecAugment (one band of time
    columns and one of mel rows set to the dB floor) and a circular time shift.
    """
    import tensorflow as tf

    draws = tf.random.stateless_uniform([9], seed=seed)
    size = tf.shape(index)[0]
    db_per_step = settings.db_range / 255.0
    if mix:
        floor = index <= 0
        index = tf.where(floor, 0.0, tf.clip_by_value(index + (2 * draws[0] - 1) * max_gain_db / db_per_step, 0, 255))
        to_power = lambda i: tf.pow(10.0, i * db_per_step / 10.0)  # noqa: E731  (relative to the floor)
        signal, noise = to_power(index), to_power(silence_index)
        snr = tf.gather(tf.constant(snrs_db, tf.float32), tf.cast(draws[1] * len(snrs_db), tf.int32) % len(snrs_db))
        scale = tf.reduce_mean(signal) / (tf.reduce_mean(noise) * tf.pow(10.0, snr / 10.0))
        mixed = 10.0 * tf.math.log(signal + scale * noise) / tf.math.log(10.0) / db_per_step
        index = tf.where(draws[2] < mix_probability, tf.clip_by_value(mixed, 0, 255), index)
    t_width = tf.cast(draws[3] * max_time, tf.int32)
    t_start = tf.cast(draws[4] * tf.cast(size - t_width, tf.float32), tf.int32)
    f_width = tf.cast(draws[5] * max_freq, tf.int32)
    f_start = tf.cast(draws[6] * tf.cast(size - f_width, tf.float32), tf.int32)
    steps = tf.range(size)
    masked = (((steps >= f_start) & (steps < f_start + f_width))[:, None]
              | ((steps >= t_start) & (steps < t_start + t_width))[None, :])
    index = tf.where(masked, 0.0, index)
    shift = tf.cast(draws[7] * (2 * max_shift + 1), tf.int32) - max_shift
    return tf.roll(index, shift, axis=1)


def make_dataset(paths, labels, batch_size: int = 32, training: bool = False, seed: int = 0,
                 augment: str = "spec", balance: str = "sampling", settings: Settings | None = None):
    """tf.data pipeline: PNGs decoded once and cached; shuffled, augmented and (optionally)
    class-balanced only when training. Training with augmentation needs the settings
    (colour map and dB range); random draws change every epoch."""
    import tensorflow as tf

    n_classes = len(CLASSES)
    paths, labels = np.asarray(paths, dtype=str), np.asarray(labels)
    augment = augment if training else "none"
    to_indices = _indices_from_rgb(settings.colormap) if augment != "none" else None

    def load(path, label):
        image = tf.io.decode_png(tf.io.read_file(path), channels=3)
        image.set_shape((None, None, 3))
        return (image if to_indices is None else to_indices(image)), tf.one_hot(label, n_classes)

    def base(p, y):
        return tf.data.Dataset.from_tensor_slices((p, y)).map(load, num_parallel_calls=tf.data.AUTOTUNE).cache()

    if not training:
        return base(paths, labels).batch(batch_size).prefetch(tf.data.AUTOTUNE)
    if balance == "sampling":
        present = [c for c in range(n_classes) if (labels == c).any()]
        per_class = [base(paths[labels == c], labels[labels == c]).repeat().shuffle(256, seed=seed) for c in present]
        ds = tf.data.Dataset.sample_from_datasets(per_class, seed=seed, rerandomize_each_iteration=True
                                                  ).take(len(labels))
    else:
        ds = base(paths, labels).shuffle(len(labels), seed=seed, reshuffle_each_iteration=True)
    if augment != "none":
        silent = labels == CLASSES.index("silence")
        mix = augment == "mix" and silent.any()
        noise = (base(paths[silent], labels[silent]).repeat().shuffle(256, seed=seed + 2).map(lambda i, _: i)
                 if mix else tf.data.Dataset.from_tensors(tf.zeros([settings.image_size] * 2)).repeat())
        seeds = tf.data.Dataset.random(seed=seed + 1, rerandomize_each_iteration=True).batch(2)
        colours = tf.constant(colour_table(settings.colormap))

        def augment_one(xy, silence_index, pair):
            index = _augment_levels(xy[0], silence_index, pair, settings, mix)
            return tf.gather(colours, tf.cast(tf.round(index), tf.int32)), xy[1]
        ds = tf.data.Dataset.zip(ds, noise, seeds).map(augment_one, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def class_weights(labels: np.ndarray) -> dict[int, float]:
    """Inverse-frequency weights over the classes present in the training labels."""
    counts = np.bincount(labels, minlength=len(CLASSES))
    present = counts > 0
    return {c: float(len(labels) / (present.sum() * counts[c])) if counts[c] else 0.0
            for c in range(len(CLASSES))}


def train(train_windows, val_windows, settings: Settings, arch: str = "time", epochs: int = 30,
          patience: int = 6, batch_size: int = 32, seed: int = 0, augment: str = "spec",
          balance: str = "sampling", learning_rate: float = 1e-3, backup_dir: Path | None = None,
          verbose: int = 1):
    """Fit a fresh model; the weights kept are those of the best validation macro-F1 epoch.

    With backup_dir, progress is saved every epoch and a killed run resumes from there.
    Returns (model, history dict).
    """
    import keras

    keras.utils.set_random_seed(seed)
    model = build_model(arch, settings, learning_rate)
    train_ds = make_dataset(train_windows.paths, train_windows.labels, batch_size, True, seed, augment, balance,
                            settings)
    val_ds = make_dataset(val_windows.paths, val_windows.labels, batch_size)
    callbacks = [keras.callbacks.EarlyStopping(monitor="val_macro_f1", mode="max", patience=patience,
                                               restore_best_weights=True)]
    if backup_dir is not None:  # kept until the caller has saved the model; a kill mid-backup leaves the other copy
        callbacks += [keras.callbacks.BackupAndRestore(str(Path(backup_dir) / "state"), double_checkpoint=True, delete_checkpoint=False),
                      keras.callbacks.CSVLogger(str(Path(backup_dir) / "history.csv"), append=True)]
        Path(backup_dir).mkdir(parents=True, exist_ok=True)
    history = model.fit(train_ds, validation_data=val_ds, epochs=epochs, callbacks=callbacks, verbose=verbose,
                        shuffle=False, class_weight=class_weights(train_windows.labels) if balance == "weights" else None)
    history = {k: [float(v) for v in vals] for k, vals in history.history.items()}
    if backup_dir is not None:  # after --resume, fit() saw only the epochs since the kill; the log has them all
        history = _read_history(Path(backup_dir) / "history.csv") or history
    return model, history


def _read_history(path: Path) -> dict:
    import csv

    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return {k: [float(r[k]) for r in rows] for k in (rows[0] if rows else {}) if k != "epoch"}


# ---- prediction ---------------------------------------------------------------------------

def predict_probabilities(model, images: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """Class probabilities for uint8 images [n, size, size, 3] -> float32 [n, n_classes].

    model is a Keras model or a LiteRTModel. A Keras model runs through predict_on_batch,
    whose compiled graph Keras builds once and keeps on the model: for one window that is
    ~15x faster than calling the model eagerly (the LSTMs step in Python) and than
    model.predict (a tf.data pipeline per call), with the same numbers as model(images)
    (benchmarks/bench_inference.py, tests/test_export.py).
    """
    images = np.asarray(images)
    if len(images) == 0:
        return np.zeros((0, len(CLASSES)), np.float32)
    if isinstance(model, LiteRTModel):
        return model(images)
    return np.concatenate([np.asarray(model.predict_on_batch(images[i:i + batch_size]))
                           for i in range(0, len(images), batch_size)]).astype(np.float32)


LITERT_WEIGHTS = ("float32", "float16", "int8")


def to_litert(model, weights: str = "float32") -> bytes:
    """A LiteRT (TFLite) flatbuffer of a Keras model, for one uint8 image [1, size, size, 3].

    The converter cannot lower Keras LSTMs traced with an unknown batch size: from_keras_model
    fails with "'tf.TensorListReserve' op requires element_shape to be static", and Keras'
    own export(format="litert") falls back to Select TF ops that the LiteRT interpreter
    cannot run. A SavedModel traced for exactly one image converts to builtin ops only
    (each LSTM becomes one fused UNIDIRECTIONAL_SEQUENCE_LSTM op).

    weights: "float32" (Keras' numbers up to float rounding, ~1e-6), "float16" (half the
    size, same speed, ~1e-4) or "int8" (dynamic-range quantisation: a quarter of the size,
    2-5x faster, ~1e-2 and an occasional different top class; export_model.py checks).
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
        import threading

        from ai_edge_litert.interpreter import Interpreter

        self._interpreter = Interpreter(model_content=flatbuffer, num_threads=num_threads)
        self._interpreter.allocate_tensors()
        self._input = self._interpreter.get_input_details()[0]["index"]
        self._output = self._interpreter.get_output_details()[0]["index"]
        self._lock = threading.Lock()  # one interpreter, so one call at a time

    @classmethod
    def from_keras(cls, model, weights: str = "float32", num_threads: int = 1) -> "LiteRTModel":
        return cls(to_litert(model, weights), num_threads)

    @classmethod
    def from_file(cls, path: Path, num_threads: int = 1) -> "LiteRTModel":
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


def litert_report_path(model_path: Path) -> Path:
    """Where export_model.py records which Keras file an export came from, where it is, and
    its parity: beside the model, where fastest_predictor looks, wherever the export went."""
    return Path(model_path).parent / f"{Path(model_path).stem}_litert.json"


def fastest_predictor(model_path: Path, model, info: dict, min_agreement: float = 0.99):
    """The float32 LiteRT export of this exact model when export_model.py made one that kept
    parity (1.6 ms a window against 2.5 ms), else the Keras model itself."""
    try:
        report = json.loads(litert_report_path(model_path).read_text())
        export = report["exports"]["float32"]
        if report["keras_sha256"] == info["sha256"] and export["argmax_agreement"] >= min_agreement:
            return LiteRTModel.from_file(Path(model_path).parent / export["file"])
    except (OSError, ValueError, KeyError):
        pass
    return model


def predict_paths(model, paths, batch_size: int = 64) -> np.ndarray:
    """Probabilities for PNG files, decoded through the same pipeline as training."""
    ds = make_dataset(paths, np.zeros(len(paths), int), batch_size)
    return np.concatenate([predict_probabilities(model, x.numpy(), batch_size) for x, _ in ds])


# ---- model files --------------------------------------------------------------------------

def calibration_of(info: dict) -> dict:
    """The calibration fitted on validation and saved with the model, for calibrate(); models
    saved before the two-level calibration have only a temperature."""
    return info.get("calibration") or {"temperature": info.get("temperature", 1.0)}


def info_path(model_path: Path) -> Path:
    return Path(model_path).with_suffix(".json")


def _sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def library_versions() -> dict:
    import keras
    import librosa
    import sklearn
    import tensorflow as tf

    return {"python": platform.python_version(), "tensorflow": tf.__version__, "keras": keras.__version__,
            "librosa": librosa.__version__, "numpy": np.__version__, "scikit-learn": sklearn.__version__}


def save_model(model, settings: Settings, extra: dict, path: Path) -> None:
    """Write <path>.keras and <path>.json, each atomically; the JSON holds the .keras hash,
    so a pair torn apart by a crash between the two writes is refused on load."""
    path = Path(path)
    with atomic_output(path) as tmp:
        model.save(tmp)
        digest = _sha256(tmp)
    info = {"model_file": path.name, "sha256": digest, "classes": list(settings.classes),
            "settings": settings.to_dict(), "versions": library_versions(), **extra}
    write_json(info, info_path(path))


def read_model_info(path: Path, expected: Settings | None = None) -> dict:
    """The model's JSON, checked: present, same classes and feature code, file unchanged."""
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
    if info.get("sha256") != _sha256(path):
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
        raise ModelError(f"{path}: cannot load model ({type(exc).__name__}: {str(exc).splitlines()[0][:150]})") from None
    return model, info
