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

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # parallelism is across files, not in BLAS

import argparse
import ctypes
import csv
import multiprocessing
import signal
import sys
import time
from pathlib import Path

from tqdm import tqdm

from cry.audio import AudioError, audio_to_windows, list_audio_files, load_audio
from cry.data import SETTINGS_FILE, read_settings, recording_of
from cry.features import indices_to_png, window_to_indices
from cry.files import UserError, atomic_output, remove_leftovers, run_main, write_json
from cry.params import CLASSES, Settings, SettingsMismatch, check_compatible, parse_overrides


def png_paths(wav: Path, audio_dir: Path, out_dir: Path, n_windows: int) -> list[Path]:
    relative = wav.relative_to(audio_dir).with_suffix("")
    return [out_dir / relative.parent / f"{relative.name}_w{k}.png" for k in range(n_windows)]


def process_file(job: tuple) -> tuple[str, int, int, str | None]:
    """One recording -> its window PNGs. Returns (path, windows, written, skip reason)."""
    wav, audio_dir, out_dir, settings = job
    try:
        windows = audio_to_windows(load_audio(wav, settings), settings)
        targets = png_paths(wav, audio_dir, out_dir, len(windows))
        source_time = wav.stat().st_mtime
        written = 0
        for window, target in zip(windows, targets):
            if target.exists() and target.stat().st_mtime >= source_time:
                continue
            indices_to_png(window_to_indices(window, settings), settings.colormap, target)
            written += 1
        extra = len(targets)  # windows left from a longer old version of this recording
        while (stale := png_paths(wav, audio_dir, out_dir, extra + 1)[-1]).exists():
            stale.unlink()
            extra += 1
        return str(wav), len(windows), written, None
    except (AudioError, OSError) as exc:  # a bad recording; a failed write (UserError) stops the run
        return str(wav), 0, 0, str(exc)


def remove_orphans(jobs: list, audio_dir: Path, out_dir: Path) -> int:
    """Delete window PNGs whose recording is no longer in audio_dir (or no longer usable as a
    class recording): left in place they would be trained on as if it still were."""
    wanted = {str(wav.relative_to(audio_dir).with_suffix("")) for wav, *_ in jobs}
    orphans = [png for c in CLASSES for png in (out_dir / c).rglob("*_w*.png")
               if recording_of(png, out_dir) not in wanted]
    for png in orphans:
        png.unlink()
    return len(orphans)


def end_with_parent(parent: int) -> None:
    """Pool initializer: a worker dies with the main process, even a SIGKILLed one (Linux),
    instead of writing on as an orphan beside the next run."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
    if os.getppid() != parent:
        os._exit(1)


def find_jobs(audio_dir: Path, out_dir: Path, settings: Settings) -> tuple[list, list]:
    """Recordings under known class folders, and a reason for each file that is not."""
    jobs, skipped, first = [], [], {}
    for wav in list_audio_files(audio_dir):
        label = wav.relative_to(audio_dir).parts[0]
        name = wav.with_suffix("")  # PNGs are named after it: a.wav and a.flac would overwrite each other
        if label not in CLASSES:
            where = "not in a class folder" if label == wav.name else f"folder {label!r} is not a class"
            skipped.append((str(wav), f"{where} (classes: {', '.join(CLASSES)})"))
        elif name in first:
            skipped.append((str(wav), f"same output name as {first[name].name}; rename one of them"))
        else:
            first[name] = wav
            jobs.append((wav, audio_dir, out_dir, settings))
    return jobs, skipped


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--audio-dir", type=Path, default=Path("data/audio"), help="default: %(default)s")
    parser.add_argument("--out-dir", type=Path, default=Path("data/spectrograms"), help="default: %(default)s")
    parser.add_argument("--workers", type=int, default=os.cpu_count(), help="processes (default: all cores)")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="change a feature setting for an experiment, e.g. window_seconds=2")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    try:
        settings = parse_overrides(args.set)
        if (args.out_dir / SETTINGS_FILE).exists():
            check_compatible(read_settings(args.out_dir), settings, f"{args.out_dir}")
    except SettingsMismatch as exc:
        raise UserError(f"{exc}; choose a new --out-dir or delete the old one") from None
    if not args.audio_dir.is_dir():
        raise UserError(f"{args.audio_dir}: no such folder (run prepare_data.py first)")
    jobs, skipped = find_jobs(args.audio_dir, args.out_dir, settings)
    if not jobs:
        raise UserError(f"{args.audio_dir}: no audio files in class folders ({', '.join(CLASSES)})")
    write_json(settings.to_dict(), args.out_dir / SETTINGS_FILE)
    remove_leftovers(args.out_dir)  # partial files of a killed run

    removed = remove_orphans(jobs, args.audio_dir, args.out_dir)
    windows = written = failed = 0
    with multiprocessing.get_context("fork").Pool(max(1, args.workers), end_with_parent, (os.getpid(),)) as pool:
        results = pool.imap_unordered(process_file, jobs, chunksize=4)
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
