"""The reason model on babies it never heard: at window and recording level, beside the baselines,
each metric with a 95% interval from resampling babies; written as JSON, Markdown and pictures."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from tqdm import tqdm

from cry.audio import AudioError, list_audio_files
from cry.corpus import baby_id
from cry.features import window_to_image
from cry.files import UserError, write_json, write_text
from cry.params import CLASSES
from cry.reason import metrics, reports
from cry.reason.calibration import calibrate
from cry.reason.data import held_out_windows
from cry.reason.info import ModelInfo
from cry.reason.model import predict_paths, predict_probabilities
from cry.reason.predictor import fastest_model
from cry.reason.windows import audio_to_windows, load_audio


def windows_from_audio(audio_dir: Path, settings) -> tuple:
    """Labels, images, recordings and babies of every <class>/*.wav, windowed as in training."""
    rows, images = [], []
    for path in tqdm(list_audio_files(audio_dir), desc="audio", unit="file"):
        label = path.relative_to(audio_dir).parts[0]
        if label not in CLASSES:
            print(f"skipped: {path}: folder {label!r} is not a class")
            continue
        try:
            for window in audio_to_windows(load_audio(path, settings), settings):
                images.append(window_to_image(window, settings))
                rows.append((CLASSES.index(label), str(path), baby_id(path)))
        except AudioError as exc:
            print(f"skipped: {path}: {exc}")
    if not rows:
        raise UserError(f"{audio_dir}: no usable recordings in class folders ({', '.join(CLASSES)})")
    labels, recordings, babies = (np.array(column) for column in zip(*rows))
    return labels, np.stack(images), recordings, babies


def held_out_probabilities(model, model_path: Path, info: ModelInfo, data_dir: Path | None,
                           audio_dir: Path | None) -> tuple:
    """(raw probabilities, labels, recordings, babies, source) of audio_dir, or else of the
    model's own test babies in its spectrogram folder."""
    if audio_dir:
        labels, images, recordings, babies = windows_from_audio(audio_dir, info.settings)
        seen = set(babies) & set(info.split.train + info.split.validation) if info.split else set()
        if seen:
            print(f"warning: {len(seen)} of {len(set(babies))} babies in {audio_dir} were used in training or "
                  f"validation; these scores are not for unheard babies")
        return predict_probabilities(model, images), labels, recordings, babies, str(audio_dir)
    data_dir = data_dir or Path(info.data_dir)
    if info.split is None:
        raise UserError(f"{model_path}: saved without a split, so it has no test babies; use --audio-dir")
    test = held_out_windows(info, data_dir)
    if len(test) == 0:
        raise UserError(f"{data_dir}: none of the model's test babies are there")
    source = f"{data_dir} (test babies of the saved split)"
    return predict_paths(model, test.paths), test.labels, test.recordings, test.babies, source


def evaluate(model_path: Path, info: ModelInfo, out: Path, data_dir: Path | None = None,
             audio_dir: Path | None = None, n_boot: int = metrics.N_BOOT) -> tuple[dict, str]:
    """The saved model on unheard babies: evaluation.{json,md} and pictures in out. Returns the
    report and its Markdown."""
    model = fastest_model(model_path, info)
    train_labels = np.repeat(np.arange(len(CLASSES)), info.train_class_counts)
    raw, labels, recordings, babies, source = held_out_probabilities(model, model_path, info, data_dir, audio_dir)
    probabilities = calibrate(raw, info.calibration)
    threshold = info.calibration.silence_threshold if info.calibration.two_level else None
    rec_p, rec_labels, rec_babies, _ = metrics.aggregate_recordings(probabilities, labels, recordings, babies)
    report = {"source": source, "model": str(model_path), "n_windows": int(len(labels)),
              "n_recordings": int(len(rec_labels)), "n_babies": int(len(set(babies))),
              "window": metrics.scores_with_baselines(labels, probabilities, babies, train_labels, threshold,
                                                      n_boot=n_boot),
              "recording": metrics.scores_with_baselines(rec_labels, rec_p, rec_babies, train_labels, threshold,
                                                         n_boot=n_boot),
              **({"bootstrap_resamples": n_boot} if n_boot != metrics.N_BOOT else {})}
    levels = ("window", "recording")
    for key in metrics.HEADLINE:  # the headline keys at the top, as documented
        report[key] = {level: report[level]["model"][key] for level in levels}
    report["baselines"] = {kind: {level: report[level][kind] for level in levels} for kind in ("majority", "chance")}
    report["per_class"] = {level: report[level]["per_class"] for level in levels}
    ece_raw, table_raw = metrics.expected_calibration_error(raw, labels)
    ece, table = metrics.expected_calibration_error(probabilities, labels)
    report["calibration"] = {**info.calibration.to_dict(), "ece_before": ece_raw, "ece_after": ece}
    pictures = reports.evaluation_pictures(report, {"before scaling": table_raw, "after scaling": table}, out)
    text = reports.evaluation_markdown(report)
    write_json(report, out / "evaluation.json")
    write_text(text, out / "evaluation.md")
    return report, text + f"\nreport written to {out / 'evaluation.json'}, {out / 'evaluation.md'} and " \
                          f"{', '.join(p.name for p in pictures)}"
