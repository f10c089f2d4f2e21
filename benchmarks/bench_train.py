"""Training speed and memory on the full corpus: seconds per epoch and peak resident memory.

Trains the default architecture for --epochs epochs through cry.reason.dataset's tf.data
pipeline (PNGs decoded once and cached, shuffled, augmented, batched, prefetched) on the
same baby-disjoint split as train_model.py. The first epoch also decodes every PNG into the
cache and traces the graph; later epochs read the cache, so seconds per epoch is the mean
of those. An epoch includes its validation pass. Peak memory is the whole process's,
TensorFlow included, against a 2 GB budget.

  python benchmarks/bench_train.py
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from common import ROOT, peak_rss_mb, print_table, target_row, update_report

import keras

from cry.reason.data import index_spectrograms, read_settings, select, split_by_baby
from cry.reason.dataset import evaluation_dataset, training_dataset
from cry.reason.model import build_model
from cry.params import DEFAULT_SPECTROGRAMS
from cry.reason.params import ARCHITECTURES, Training

BUDGET_MB = 2048


class EpochTimer(keras.callbacks.Callback):
    """Wall-clock seconds and peak memory at the end of each epoch."""

    def __init__(self):
        super().__init__()
        self.seconds, self.peak_mb = [], []

    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self.start)
        self.peak_mb.append(peak_rss_mb())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=ROOT / DEFAULT_SPECTROGRAMS, help="default: %(default)s")
    parser.add_argument("--arch", choices=ARCHITECTURES, default=Training.arch, help="default: %(default)s")
    parser.add_argument("--epochs", type=int, default=3, help="the first fills the cache (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=Training.batch_size)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    settings = read_settings(args.data_dir)
    windows = index_spectrograms(args.data_dir)
    split = split_by_baby(windows, args.seed)
    train, validation = select(windows, split.train), select(windows, split.validation)
    params = Training(arch=args.arch, batch_size=args.batch_size)
    keras.utils.set_random_seed(args.seed)
    model = build_model(settings, params)
    train_ds = training_dataset(train.paths, train.labels, settings, params, args.seed)
    val_ds = evaluation_dataset(validation.paths, validation.labels, params.batch_size)
    start_mb, timer = peak_rss_mb(), EpochTimer()
    model.fit(train_ds, validation_data=val_ds, epochs=args.epochs, callbacks=[timer], verbose=0)

    steady = timer.seconds[1:] or timer.seconds
    per_epoch = sum(steady) / len(steady)
    print_table(f"Training '{args.arch}' on {len(train)} windows (+{len(validation)} validation), "
                f"batch {args.batch_size}; peak memory {start_mb:.0f} MB before fit",
                ["epoch", "seconds", "train windows/s", "x steady epoch", "peak RSS MB"],
                [[k + 1, s, len(train) / s, s / per_epoch, mb]
                 for k, (s, mb) in enumerate(zip(timer.seconds, timer.peak_mb))])
    peak = peak_rss_mb()
    print_table("Targets", ["figure", "measured", "target", "met"], [
        ["seconds per epoch (after the first)", per_epoch, "-", "-"],
        target_row("peak RSS, MB", peak, maximum=BUDGET_MB)])
    update_report({"train_seconds_per_epoch": per_epoch, "train_first_epoch_seconds": timer.seconds[0],
                   "train_windows_per_second": len(train) / per_epoch, "train_windows": len(train),
                   "train_peak_rss_mb": peak})
    return 0 if peak < BUDGET_MB else 1


if __name__ == "__main__":
    raise SystemExit(main())
