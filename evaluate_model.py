"""Honest evaluation: metrics with 95% intervals over babies, beside baselines that ignore the audio.

Default: the trained model on its own held-out test babies (the split saved in its JSON).
--audio-dir DIR: the model on any <class>/*.wav folder, through the live windowing and features.
--cv K: grouped K-fold cross-validation by baby (train and evaluate per fold, several seeds),
        with the majority and MFCC + logistic-regression baselines computed by the same harness.
--rescore DIR: summarise an earlier --cv run again from its saved probabilities.
--sounds DIR: the real-room report: every clip of DIR's cry/ and not_cry/ trees played alone
        through the live decision path (detector + reason model), beside YAMNet zero-shot.
Writes reports/evaluation.{json,md} and PNGs, reports/cv.json and a row of reports/experiments.md,
or reports/sounds.{json,md}.
"""
from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # tiny matrices: BLAS threads only fight the model for cores

import argparse
import shlex
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

from cry import crossval, metrics, reports, sound_report
from cry.detector import DEFAULT_PATH as DETECTOR_PATH
from cry.audio import AudioError, audio_to_windows, baby_id, list_audio_files, load_audio
from cry.calibration import calibrate
from cry.data import grouped_folds, held_out_windows, index_spectrograms, read_settings
from cry.features import window_to_image
from cry.files import UserError, run_main, write_json, write_text
from cry.litert import fastest_predictor
from cry.model import predict_paths, predict_probabilities
from cry.model_files import calibration_of, data_dir_of, load_model
from cry.params import (CLASSES, DEFAULT_AUDIO, DEFAULT_MODEL, DEFAULT_SPECTROGRAMS, Settings,
                        add_training_arguments, training_from_args)


def windows_from_audio(audio_dir: Path, settings) -> tuple:
    """Labels, images, recordings and babies of every <class>/*.wav, windowed as live."""
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


def held_out_probabilities(args, model, info: dict) -> tuple:
    """(raw probabilities, labels, recordings, babies, source) of the --audio-dir folder, or
    else of the model's own test babies in its spectrogram folder."""
    if args.audio_dir:
        labels, images, recordings, babies = windows_from_audio(args.audio_dir, info["settings"])
        seen = set(babies) & set(info["split"]["train"] + info["split"]["validation"]) if "split" in info else set()
        if seen:
            print(f"warning: {len(seen)} of {len(set(babies))} babies in {args.audio_dir} were used in training or "
                  f"validation; these scores are not for unheard babies")
        return predict_probabilities(model, images), labels, recordings, babies, str(args.audio_dir)
    data_dir = args.data_dir or data_dir_of(info)
    if "split" not in info:
        raise UserError(f"{args.model}: saved without a split, so it has no test babies; use --audio-dir")
    test = held_out_windows(info, data_dir)
    if len(test) == 0:
        raise UserError(f"{data_dir}: none of the model's test babies are there")
    source = f"{data_dir} (test babies of the saved split)"
    return predict_paths(model, test.paths), test.labels, test.recordings, test.babies, source


def evaluate(args) -> int:
    """The saved model on unheard babies, at window and recording level: evaluation.{json,md} and pictures."""
    model, info = load_model(args.model)
    model = fastest_predictor(args.model, model, info)
    train_labels = np.repeat(np.arange(len(CLASSES)), info.get("train_class_counts", [1] * len(CLASSES)))
    raw, labels, recordings, babies, source = held_out_probabilities(args, model, info)
    probabilities = calibrate(raw, calibration_of(info))
    threshold = calibration_of(info).get("silence_threshold")
    rec_p, rec_labels, rec_babies, _ = metrics.aggregate_recordings(probabilities, labels, recordings, babies)
    report = {"source": source, "model": str(args.model), "n_windows": int(len(labels)),
              "n_recordings": int(len(rec_labels)), "n_babies": int(len(set(babies))),
              "window": metrics.scores_with_baselines(labels, probabilities, babies, train_labels, threshold,
                                                      n_boot=args.bootstrap),
              "recording": metrics.scores_with_baselines(rec_labels, rec_p, rec_babies, train_labels, threshold,
                                                         n_boot=args.bootstrap), **bootstrap_note(args)}
    levels = ("window", "recording")
    for key in metrics.HEADLINE:  # the headline keys at the top, as documented
        report[key] = {level: report[level]["model"][key] for level in levels}
    report["baselines"] = {kind: {level: report[level][kind] for level in levels} for kind in ("majority", "chance")}
    report["per_class"] = {level: report[level]["per_class"] for level in levels}
    ece_raw, table_raw = metrics.expected_calibration_error(raw, labels)
    ece, table = metrics.expected_calibration_error(probabilities, labels)
    report["calibration"] = {**calibration_of(info), "ece_before": ece_raw, "ece_after": ece}

    out = args.reports_dir
    pictures = reports.evaluation_pictures(report, {"before scaling": table_raw, "after scaling": table}, out)
    text = reports.evaluation_markdown(report)
    write_json(report, out / "evaluation.json")
    write_text(text, out / "evaluation.md")
    print(text)
    print(f"report written to {out / 'evaluation.json'}, {out / 'evaluation.md'} and "
          f"{', '.join(p.name for p in pictures)}")
    return 0


def bootstrap_note(args) -> dict:
    """{"bootstrap_resamples": N} when --bootstrap is not the default, so that a quick run's
    rougher intervals are never taken for a full one's."""
    return {"bootstrap_resamples": args.bootstrap} if args.bootstrap != metrics.N_BOOT else {}


def cross_validate(args) -> int:
    """Train and predict every fold with every seed, save the window probabilities, summarise."""
    data_dir = args.data_dir or DEFAULT_SPECTROGRAMS
    settings, windows, params = read_settings(data_dir), index_spectrograms(data_dir), training_from_args(args)
    folds = grouped_folds(windows, args.cv, args.fold_seed)
    crossval.save_folds(args.reports_dir, folds, args.fold_seed)
    predictions = crossval.run_folds(windows, folds, settings, params, args.seeds)
    features = crossval.baseline_features(predictions, args.audio_dir_for_baseline, settings, args.pretrained_dir)
    crossval.save_predictions(args.reports_dir, predictions | {f"{kind}_features": x for kind, x in features.items()})
    meta = {"command": "python " + shlex.join(sys.argv), "arch": params.arch, "balance": params.balance,
            "augment": params.augment, "training": params.to_dict(), "seeds": args.seeds, "folds": args.cv,
            "fold_seed": args.fold_seed, "data_dir": str(data_dir), "settings": settings.to_dict(),
            **bootstrap_note(args)}
    result = crossval.summarise(predictions, folds, meta, features, args.bootstrap)
    crossval.write_summary(result, args.reports_dir, args.experiments_file)
    return 0


def rescore(args) -> int:
    """Summarise an earlier --cv run again from its saved probabilities (no training): for a
    change in how recordings are aggregated or scored, on exactly the same models."""
    predictions, meta, folds = crossval.load_run(args.rescore)
    meta.update(rescored="python " + shlex.join(sys.argv), **bootstrap_note(args))
    settings = Settings.from_dict(meta["settings"])
    features = crossval.baseline_features(predictions, args.audio_dir_for_baseline, settings, args.pretrained_dir)
    result = crossval.summarise(predictions, folds, meta, features, args.bootstrap)
    crossval.write_summary(result, args.rescore, args.experiments_file)
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="default: %(default)s")
    parser.add_argument("--data-dir", type=Path, help=f"spectrograms (default: the model's, or {DEFAULT_SPECTROGRAMS})")
    parser.add_argument("--audio-dir", type=Path, help="evaluate the model on this <class>/*.wav folder instead")
    parser.add_argument("--reports-dir", type=Path, default=Path("reports"), help="default: %(default)s")
    parser.add_argument("--bootstrap", type=int, default=metrics.N_BOOT, metavar="N",
                        help="resamples of babies behind each 95%% interval (default: %(default)s; fewer: faster, "
                             "rougher intervals, recorded in the report)")
    room = parser.add_argument_group("real-room report (--sounds DIR)")
    room.add_argument("--sounds", type=Path, metavar="DIR", help="a folder with cry/ and not_cry/ at its top")
    room.add_argument("--detector", default=str(DETECTOR_PATH),
                      help="the crying detector, or 'none' for the reason model alone (default: %(default)s)")
    room.add_argument("--pretrained-dir", type=Path, help="YAMNet's folder, also for the --cv baseline on its "
                      "embeddings (default: models/pretrained)")
    cv = parser.add_argument_group("cross-validation (--cv K)")
    cv.add_argument("--cv", type=int, metavar="K", help="grouped K-fold cross-validation by baby")
    add_training_arguments(cv)
    cv.add_argument("--seeds", type=int, nargs="+", default=[0], help="repeat every fold with these seeds")
    cv.add_argument("--fold-seed", type=int, default=2026, help="the folds, the same for every variant")
    cv.add_argument("--experiments-file", type=Path, default=Path("reports/experiments.md"),
                    help="table the result is appended to (default: %(default)s)")
    cv.add_argument("--audio-dir-for-baseline", type=Path, default=DEFAULT_AUDIO,
                    help="source audio for the MFCC baseline (default: %(default)s)")
    cv.add_argument("--rescore", type=Path, metavar="DIR",
                    help="summarise the --cv run whose reports are in DIR again from its saved probabilities")
    args = parser.parse_args(argv)
    if args.sounds is not None:
        detector = None if args.detector == "none" else Path(args.detector)
        report = sound_report.report_from_files(args.sounds, args.model, detector, args.reports_dir,
                                                args.pretrained_dir)
        print(sound_report.markdown(report))
        print(f"real-room report written to {args.reports_dir / 'sounds.json'} and {args.reports_dir / 'sounds.md'}")
        return 0
    if args.rescore is not None:
        return rescore(args)
    if args.cv is not None:
        if args.cv < 2:
            raise UserError("--cv needs at least 2 folds")
        return cross_validate(args)
    if args.audio_dir is not None and not args.audio_dir.is_dir():
        raise UserError(f"{args.audio_dir}: no such folder")
    return evaluate(args)


if __name__ == "__main__":
    run_main(main)
