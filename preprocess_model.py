"""Turn data/audio/<class>/*.wav into 128x128 RGB mel-spectrogram PNGs, one per window.

Windows are cut exactly as the live predictor cuts them, and each goes through the one
shared window_to_image function (stored as its colour indices: a palette PNG that reads
back as exactly its pixels). Re-running only redoes what is missing or out of date.
Files that cannot be used (undecodable, empty, too short, NaN, all zeros, outside a class
folder, or named like another recording) are skipped, each with a one-line reason printed
and listed in <out-dir>/skipped.csv. A killed run leaves no partial PNG behind once re-run.
Exit status: 0 every audio file processed; 1 some skipped; 2 nothing done (no audio in class
folders, settings mismatch, or the output cannot be written: disk full, read-only), one
"error:" line naming the path.
"""
from __future__ import annotations

import argparse
import csv
import ctypes
import multiprocessing
import os
import signal
import sys
import time
from pathlib import Path

from tqdm import tqdm

from cry import runtime
from cry.files import UserError, atomic_output, remove_leftovers, run_main, write_json
from cry.params import (CLASSES, DEFAULT_AUDIO, DEFAULT_SPECTROGRAMS, Settings, SettingsMismatch, check_compatible,
                        parse_overrides)
from cry.reason.data import SETTINGS_FILE, find_recordings, read_settings, recording_to_pngs, remove_orphans


def end_with_parent(parent: int) -> None:
    """Pool initializer: a worker dies with the main process, even a SIGKILLed one (Linux),
    instead of writing on as an orphan beside the next run."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
    if os.getppid() != parent:
        os._exit(1)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--audio-dir", type=Path, default=DEFAULT_AUDIO, help="default: %(default)s")
    parser.add_argument("--out-dir", type=Path, default=DEFAULT_SPECTROGRAMS, help="default: %(default)s")
    parser.add_argument("--workers", type=int, default=os.cpu_count(), help="processes (default: all cores)")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="change a feature setting for an experiment, e.g. window_seconds=2")
    args = parser.parse_args(argv)
    runtime.setup()  # parallelism is across files, not in BLAS
    started = time.perf_counter()
    try:
        settings = parse_overrides(args.set, Settings())
        if (args.out_dir / SETTINGS_FILE).exists():
            check_compatible(read_settings(args.out_dir), settings, f"{args.out_dir}")
    except SettingsMismatch as exc:
        raise UserError(f"{exc}; choose a new --out-dir or delete the old one") from None
    if not args.audio_dir.is_dir():
        raise UserError(f"{args.audio_dir}: no such folder (run prepare_data.py first)")
    jobs, skipped = find_recordings(args.audio_dir, args.out_dir, settings)
    if not jobs:
        raise UserError(f"{args.audio_dir}: no audio files in class folders ({', '.join(CLASSES)})")
    write_json(settings.to_dict(), args.out_dir / SETTINGS_FILE)
    remove_leftovers(args.out_dir)  # partial files of a killed run

    removed = remove_orphans(jobs, args.audio_dir, args.out_dir)
    windows = written = failed = 0
    with multiprocessing.get_context("fork").Pool(max(1, args.workers), end_with_parent, (os.getpid(),)) as pool:
        results = pool.imap_unordered(recording_to_pngs, jobs, chunksize=4)
        for path, n_windows, n_written, reason in tqdm(results, total=len(jobs), desc="preprocess", unit="file"):
            windows, written = windows + n_windows, written + n_written
            if reason:
                skipped.append((path, reason))
                failed += 1

    with atomic_output(args.out_dir / "skipped.csv") as tmp, open(tmp, "w", newline="") as f:
        csv.writer(f).writerows([("file", "reason"), *sorted(skipped)])
    for path, reason in sorted(skipped):
        print(f"skipped: {path}: {reason}")
    empty = [c for c in CLASSES if not any((args.out_dir / c).rglob("*.png"))]
    print(f"{len(jobs) - failed} files -> {windows} windows ({written} written, {windows - written} up to date), "
          f"{len(skipped)} skipped, {removed} PNGs of recordings no longer there removed, "
          f"{time.perf_counter() - started:.1f} s")
    if empty:
        print(f"note: no spectrograms for class(es) {', '.join(empty)}")
    print(f"spectrograms in {args.out_dir}/ (skipped files listed in {args.out_dir / 'skipped.csv'})")
    return 1 if skipped else 0


if __name__ == "__main__":
    run_main(main)
