"""The CNN-LSTM: its architecture, its training loop, and its class probabilities for images."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from cry.params import CLASSES, Settings
from cry.reason.dataset import evaluation_dataset, training_dataset
from cry.reason.params import ARCHITECTURES, Training


def build_model(settings: Settings, params: Training = Training()):
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
    for filters in params.filters:
        x = layers.Conv2D(filters, 3, activation="relu")(x)
        x = layers.MaxPooling2D(2)(x)
    if params.arch == "seed":
        x = layers.RepeatVector(params.repeat_steps)(layers.Flatten()(x))
    elif params.arch == "time":
        x = layers.Permute((2, 1, 3))(x)  # [freq, time, ch] -> [time, freq, ch]
        x = layers.Reshape((x.shape[1], x.shape[2] * x.shape[3]))(x)
    else:
        raise ValueError(f"unknown architecture {params.arch!r}; choose from {ARCHITECTURES}")
    x = layers.LSTM(params.lstm_units, return_sequences=True)(x)
    x = layers.LSTM(params.lstm_units)(x)
    x = layers.Dense(params.dense_units, activation="relu")(x)
    x = layers.Dropout(params.dropout)(x)
    outputs = layers.Dense(n_classes, activation="softmax", name="probabilities")(x)
    model = keras.Model(inputs, outputs, name=f"cry_{params.arch}")
    model.compile(optimizer=keras.optimizers.Adam(params.learning_rate), loss="categorical_crossentropy",
                  metrics=["accuracy", keras.metrics.F1Score(average="macro", name="macro_f1")])
    return model


def class_weights(labels: np.ndarray) -> dict[int, float]:
    """Inverse-frequency weights over the classes present in the training labels."""
    counts = np.bincount(labels, minlength=len(CLASSES))
    present = counts > 0
    return {c: float(len(labels) / (present.sum() * counts[c])) if counts[c] else 0.0
            for c in range(len(CLASSES))}


def train(train_windows, val_windows, settings: Settings, params: Training = Training(), seed: int = 0,
          backup_dir: Path | None = None, verbose: int | None = None):
    """Fit a fresh model; the weights kept are those of the best validation macro-F1 epoch.

    With backup_dir, progress is saved every epoch and a killed run resumes from there.
    verbose None: a bar per step on a terminal, a line per epoch in a log (cry.runtime).
    Returns (model, history dict).
    """
    import keras

    from cry.runtime import keras_verbosity

    keras.utils.set_random_seed(seed)
    model = build_model(settings, params)
    train_ds = training_dataset(train_windows.paths, train_windows.labels, settings, params, seed)
    val_ds = evaluation_dataset(val_windows.paths, val_windows.labels, params.batch_size)
    callbacks = [keras.callbacks.EarlyStopping(monitor="val_macro_f1", mode="max", patience=params.patience,
                                               restore_best_weights=True)]
    if backup_dir is not None:  # kept until the caller has saved the model; a kill mid-backup leaves the other copy
        # The epoch's log line first, then its backup: a kill between them makes the resumed run
        # log that epoch again (the last line of an epoch counts), never lose it.
        callbacks += [keras.callbacks.CSVLogger(str(Path(backup_dir) / "history.csv"), append=True),
                      keras.callbacks.BackupAndRestore(str(Path(backup_dir) / "state"), double_checkpoint=True,
                                                       delete_checkpoint=False)]
        Path(backup_dir).mkdir(parents=True, exist_ok=True)
    weights = class_weights(train_windows.labels) if params.balance == "weights" else None
    history = model.fit(train_ds, validation_data=val_ds, epochs=params.epochs, callbacks=callbacks,
                        verbose=keras_verbosity() if verbose is None else verbose,
                        shuffle=False, class_weight=weights)
    history = {k: [float(v) for v in vals] for k, vals in history.history.items()}
    if backup_dir is not None:  # after --resume, fit() saw only the epochs since the kill; the log has them all
        history = _read_history(Path(backup_dir) / "history.csv") or history
    return model, history


def _read_history(path: Path) -> dict:
    """The log's epochs in order, an epoch logged twice (killed after its line, before its backup) once."""
    import csv

    with open(path, newline="") as f:
        rows = list({int(r["epoch"]): r for r in csv.DictReader(f)}.items())
    rows = [r for _, r in sorted(rows)]
    return {k: [float(r[k]) for r in rows] for k in (rows[0] if rows else {}) if k != "epoch"}


def predict_probabilities(model, images: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """Class probabilities for uint8 images [n, size, size, 3] -> float32 [n, n_classes].

    model is a Keras model or a cry.litert.LiteRTModel: both answer predict_on_batch. For a
    Keras model that is the compiled graph Keras builds once and keeps on the model, far
    faster for a few windows than calling the model eagerly (the LSTMs step in Python) or
    model.predict (a tf.data pipeline per call), with the same numbers as model(images)
    (benchmarks/bench_inference.py measures it, tests/test_export.py checks it).
    """
    images = np.asarray(images)
    if len(images) == 0:
        return np.zeros((0, len(CLASSES)), np.float32)
    return np.concatenate([np.asarray(model.predict_on_batch(images[i:i + batch_size]))
                           for i in range(0, len(images), batch_size)]).astype(np.float32)


def predict_paths(model, paths, batch_size: int = 64) -> np.ndarray:
    """Probabilities for PNG files, decoded through the same pipeline as training."""
    ds = evaluation_dataset(paths, np.zeros(len(paths), int), batch_size)
    return np.concatenate([predict_probabilities(model, x.numpy(), batch_size) for x, _ in ds])
