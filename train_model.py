"""Train the CNN-LSTM on spectrogram PNGs, with a split that keeps every baby on one side.

Writes models/<name>.keras with models/<name>.json (settings, classes, split, training
hyperparameters, history, calibration, whether held-out babies allow reason claims) and
models/<name>_curves.png. Balancing and augmentation touch training data only. A killed run
continues from its last epoch with --resume.

Then the crying detector (models/cry_detector.json): a head on YAMNet's embeddings trained on the
corpus (--audio-dir, and the uploads' cries tagged with no class: --other-cries-dir), generated
speech, music and noise, and the sound trees given with --sounds, its threshold tuned on held-out
sources under the live settings it is saved with. --detector none skips it.
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import numpy as np

from cry import runtime
from cry.files import UserError, run_main
from cry.params import (CLASSES, DEFAULT_AUDIO, DEFAULT_DETECTOR, DEFAULT_MODEL, DEFAULT_OTHER_CRIES,
                        DEFAULT_SPECTROGRAMS, LiveSettings, parse_overrides)
from cry.pretrained import PRETRAINED_DIR, yamnet_files
from cry.reason import reports
from cry.reason.calibration import calibrate, choose_uncertain_threshold, fit_calibration, reason_claim_skill
from cry.reason.data import index_spectrograms, read_settings, select, split_by_baby
from cry.reason.info import ModelInfo
from cry.reason.model import predict_paths, train
from cry.reason.model_files import info_path, save_model
from cry.reason.params import TRAINING_OPTIONS, Training, add_training_arguments


def check_writable(folder: Path) -> None:
    """Fail now, not after hours of training, when the model folder cannot be written."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=folder).close()
    except OSError as exc:
        raise UserError(f"{folder}: cannot write ({exc.strerror or exc})") from None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_SPECTROGRAMS, help="default: %(default)s")
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="default: %(default)s")
    add_training_arguments(parser)
    parser.add_argument("--seed", type=int, default=0, help="for the split, initial weights and shuffling")
    parser.add_argument("--resume", action="store_true", help="continue a killed run from its last epoch")
    parser.add_argument("--detector", default=str(DEFAULT_DETECTOR),
                        help="where the crying detector goes, or 'none' to skip it (default: %(default)s)")
    parser.add_argument("--sounds", type=Path, action="append", default=[], metavar="DIR",
                        help="a cry/ + not_cry/ tree the detector also trains on (e.g. ../shared/sounds; repeatable)")
    parser.add_argument("--night-check", type=Path, metavar="PATH",
                        help="also write a detector that never heard the sources make_nights.py mixes by default, "
                        "for an honest evaluate_model.py --events report (e.g. models/cry_detector_night_check.json)")
    parser.add_argument("--live-set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="change a live setting the detector is tuned under and saved with, e.g. hop_seconds=1 "
                        f"(defaults: {LiveSettings().to_dict()})")
    parser.add_argument("--audio-dir", type=Path, default=DEFAULT_AUDIO,
                        help="the corpus recordings, for the detector (default: %(default)s)")
    parser.add_argument("--other-cries-dir", type=Path, default=DEFAULT_OTHER_CRIES,
                        help="prepare_data.py's uploads tagged with no class: cries for the detector, when there "
                        "(default: %(default)s)")
    parser.add_argument("--pretrained-dir", type=Path, default=PRETRAINED_DIR, help="YAMNet (default: %(default)s)")
    args = parser.parse_args(argv)
    runtime.setup()
    params = Training().replace(**{name: getattr(args, name) for name in TRAINING_OPTIONS})
    live = parse_overrides(args.live_set, LiveSettings())
    if params.epochs < 1 or params.patience < 1 or params.batch_size < 1:
        raise UserError("--epochs, --patience and --batch-size must be at least 1")
    if not args.model.name.endswith(".keras"):
        raise UserError(f"{args.model}: model path must end in .keras")
    check_writable(args.model.parent)
    if args.detector != "none":  # now, not after the reason model has trained
        yamnet_files(args.pretrained_dir)
        if not args.audio_dir.is_dir():
            raise UserError(f"{args.audio_dir}: no such folder (run prepare_data.py first, or --detector none)")
        for folder in args.sounds:
            if not folder.is_dir():
                raise UserError(f"--sounds {folder}: no such folder")

    settings = read_settings(args.data_dir)
    windows = index_spectrograms(args.data_dir)
    split = split_by_baby(windows, args.seed)
    parts = {name: select(windows, getattr(split, name)) for name in ("train", "validation", "test")}
    for name, part in parts.items():
        counts = np.bincount(part.labels, minlength=len(CLASSES))
        print(f"{name}: {len(getattr(split, name))} babies, {len(part)} windows (" +
              ", ".join(f"{c} {n}" for c, n in zip(CLASSES, counts)) + ")")

    backup_dir = args.model.parent / f".{args.model.stem}.backup"
    if not args.resume:
        shutil.rmtree(backup_dir, ignore_errors=True)
    model, history = train(parts["train"], parts["validation"], settings, params, args.seed, backup_dir)

    val_probabilities = predict_paths(model, parts["validation"].paths)
    calibration = fit_calibration(val_probabilities, parts["validation"].labels)
    threshold = choose_uncertain_threshold(calibrate(val_probabilities, calibration), parts["validation"].labels)
    test = parts["test"]  # held-out babies: may a reason be claimed at all?
    claims = reason_claim_skill(calibrate(predict_paths(model, test.paths), calibration), test.labels, test.babies,
                                threshold)
    info = ModelInfo("", "", settings, params, calibration, threshold, claims, split, args.seed, str(args.data_dir),
                     len(history["loss"]), history,
                     tuple(np.bincount(parts["train"].labels, minlength=len(CLASSES)).tolist()))
    save_model(model, info, args.model)
    shutil.rmtree(backup_dir, ignore_errors=True)
    curves = reports.plot_training_curves(history, args.model.with_name(f"{args.model.stem}_curves.png"))
    print(f"calibration: silence log-odds x{calibration.silence_scale:.2f} {calibration.silence_shift:+.2f}, "
          f"reasons temperature {calibration.temperature:.2f}, log-prior shifts "
          f"{' '.join(f'{b:+.1f}' for b in calibration.class_log_bias)}; uncertain below {threshold:.2f} "
          f"(fitted on validation babies)")
    print(f"reason claims on held-out babies at that threshold: {claims.claimed_share:.0%} of cry windows, "
          f"right {claims.precision or 0:.0%} (95% lower bound {claims.precision_ci_low or 0:.0%}) against "
          f"{claims.prior_precision or 0:.0%} for always '{claims.prior_reason}': "
          + ("claimed live" if claims.allowed else "live says 'reason not known'"))
    print(f"model written to {args.model} and {info_path(args.model)}; curves in {curves}")
    if args.detector != "none":
        from cry.detect.detector import describe
        from cry.detect.training import train_on_corpus

        other = (args.other_cries_dir,) if args.other_cries_dir.is_dir() else ()
        made = train_on_corpus(args.audio_dir, Path(args.detector), args.pretrained_dir, live, args.sounds,
                               args.night_check, extra_cry_dirs=other)
        print(f"detector written to {args.detector}: {describe(made[0])}")
        if args.night_check:
            print(f"night-check detector (never heard the sources of make_nights.py's nights) written to "
                  f"{args.night_check}: {describe(made[1])}")
    return 0


if __name__ == "__main__":
    run_main(main)
