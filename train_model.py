"""Train the CNN-LSTM on spectrogram PNGs, with a split that keeps every baby on one side.

Writes models/<name>.keras with models/<name>.json (settings, classes, split, history,
calibration) and models/<name>_curves.png. Balancing and augmentation touch training
data only. A killed run continues from its last epoch with --resume.
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import numpy as np

from cry.data import index_spectrograms, read_settings, select, split_by_baby
from cry.files import UserError, atomic_output, run_main
from cry.metrics import choose_uncertain_threshold, fit_calibration
from cry.model import ARCHITECTURES, AUGMENTATIONS, calibrate, predict_paths, save_model, train
from cry.params import CLASSES


def plot_curves(history: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key in zip(axes, ("loss", "macro_f1")):
        ax.plot(history[key], label="train")
        ax.plot(history[f"val_{key}"], label="validation")
        ax.set(xlabel="epoch", title=key.replace("_", " "))
        ax.legend()
    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def check_writable(folder: Path) -> None:
    """Fail now, not after hours of training, when the model folder cannot be written."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=folder).close()
    except OSError as exc:
        raise UserError(f"{folder}: cannot write ({exc.strerror or exc})") from None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=Path("data/spectrograms"), help="default: %(default)s")
    parser.add_argument("--model", type=Path, default=Path("models/cry_model.keras"), help="default: %(default)s")
    parser.add_argument("--arch", choices=ARCHITECTURES, default="time",
                        help="'time' reads the spectrogram in time order; 'seed' is the original (default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=30, help="at most (default: %(default)s)")
    parser.add_argument("--patience", type=int, default=8, help="early-stopping epochs (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--balance", choices=("weights", "sampling"), default="sampling",
                        help="balanced sampling or class weights, training data only (default: %(default)s; "
                             "weights collapsed some folds to one class in cross-validation)")
    parser.add_argument("--augment", choices=AUGMENTATIONS, default="spec",
                        help="training data only: none; spec = time/frequency masks + time shift; mix = spec + "
                             "gain + mixing with real silence at 0-20 dB SNR (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="for the split, initial weights and shuffling")
    parser.add_argument("--resume", action="store_true", help="continue a killed run from its last epoch")
    args = parser.parse_args(argv)
    if args.epochs < 1 or args.patience < 1 or args.batch_size < 1:
        raise UserError("--epochs, --patience and --batch-size must be at least 1")
    if not args.model.name.endswith(".keras"):
        raise UserError(f"{args.model}: model path must end in .keras")
    check_writable(args.model.parent)

    settings = read_settings(args.data_dir)
    windows = index_spectrograms(args.data_dir)
    split = split_by_baby(windows, args.seed)
    parts = {name: select(windows, babies) for name, babies in split.items()}
    for name, part in parts.items():
        counts = np.bincount(part.labels, minlength=len(CLASSES))
        print(f"{name}: {len(split[name])} babies, {len(part)} windows (" +
              ", ".join(f"{c} {n}" for c, n in zip(CLASSES, counts)) + ")")

    backup_dir = args.model.parent / f".{args.model.stem}.backup"
    if not args.resume:
        shutil.rmtree(backup_dir, ignore_errors=True)
    model, history = train(parts["train"], parts["validation"], settings, args.arch, args.epochs, args.patience,
                           args.batch_size, args.seed, args.augment, args.balance, args.learning_rate,
                           backup_dir)

    val_probabilities = predict_paths(model, parts["validation"].paths)
    calibration = fit_calibration(val_probabilities, parts["validation"].labels)
    threshold = choose_uncertain_threshold(calibrate(val_probabilities, calibration),
                                           parts["validation"].labels, CLASSES.index("silence"))
    extra = {"arch": args.arch, "seed": args.seed, "data_dir": str(args.data_dir), "split": split,
             "training": {k: v for k, v in vars(args).items() if k not in ("data_dir", "model")},
             "epochs_run": len(history["loss"]), "history": history,
             "train_class_counts": np.bincount(parts["train"].labels, minlength=len(CLASSES)).tolist(),
             "calibration": calibration, "uncertain_threshold": threshold}
    save_model(model, settings, extra, args.model)
    shutil.rmtree(backup_dir, ignore_errors=True)
    curves = args.model.with_name(f"{args.model.stem}_curves.png")
    plot_curves(history, curves)
    print(f"calibration: silence log-odds x{calibration['silence_scale']:.2f} {calibration['silence_shift']:+.2f}, "
          f"reasons temperature {calibration['temperature']:.2f}, log-prior shifts "
          f"{' '.join(f'{b:+.1f}' for b in calibration['class_log_bias'])}; uncertain below {threshold:.2f} "
          f"(fitted on validation babies)")
    print(f"model written to {args.model} and {args.model.with_suffix('.json')}; curves in {curves}")
    return 0


if __name__ == "__main__":
    run_main(main)
