"""Preprocessing throughput in files per second over the corpus, against two references.

  ours     cry.reason.data.recording_to_pngs (what preprocess_model.py runs): every window through
           window_to_indices, one PNG each
  figure   the usual way: librosa mel -> specshow in a matplotlib figure -> savefig ->
           reload at 128x128 -> PNG (on every --figure-step'th file only: it is slow)
  floor    decode + resample + mel of the whole recording, no image, as usually written
           (librosa.load + librosa.feature.melspectrogram, same n_fft, hop and mel bands)

Every method runs in a pool of forked worker processes, like preprocess_model.py, after one
warm-up file in the parent: workers inherit imports and caches, so no file pays a first-call
cost. Each figure is the best of --repeats runs, all in this one process run, so ratios
compare like with like on a shared machine. PNGs go to a RAM disk (/dev/shm) by default:
on the shared disk here one file creation took anywhere from 0.05 to 1 ms depending on
what others were doing; pass --out-dir to include your disk.

The workers' CPU time is recorded too: CPU ms per file does not grow when other programs
take the cores, and CPU seconds per wall second says how many cores the workers got, so a
1 -> 2 worker figure far below 2 can be told apart from code that does not scale.

Also checks that window_to_image gives, for every corpus window, the same pixels as the
librosa reference (cry.features.reference_window_to_image), and that written PNGs read back to them.

  python benchmarks/bench_preprocess.py
"""
from __future__ import annotations

import argparse
import io
import multiprocessing
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path

from common import ROOT, print_table, target_row, update_report

import numpy as np

from cry.reason.windows import audio_to_windows, load_audio
from cry.reason.data import find_recordings, recording_to_pngs
from cry.features import mel_basis, png_to_image, reference_window_to_image, window_to_image
from cry.params import DEFAULT_AUDIO, Settings


def ours(job) -> None:
    recording_to_pngs(job)


def figure_method(job) -> None:
    """Reference (a): a matplotlib figure per window, saved, reloaded and shrunk to 128x128."""
    import librosa
    import librosa.display
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    wav, audio_dir, out_dir, s = job
    audio, rate = librosa.load(wav, sr=s.sample_rate_hz)
    for k, window in enumerate(audio_to_windows(audio, s)):
        mel = librosa.feature.melspectrogram(y=window, sr=rate, n_fft=s.n_fft, hop_length=s.hop_length,
                                             n_mels=s.n_mels, fmin=s.fmin_hz, fmax=s.fmax_hz)
        fig = plt.figure(figsize=(2.56, 2.56), dpi=100)
        ax = fig.add_axes((0, 0, 1, 1))
        ax.set_axis_off()
        librosa.display.specshow(librosa.power_to_db(mel, ref=np.max), sr=rate, hop_length=s.hop_length,
                                 y_axis="mel", fmin=s.fmin_hz, fmax=s.fmax_hz, cmap=s.colormap, ax=ax)
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png")
        plt.close(fig)
        image = Image.open(buffer).convert("RGB").resize((s.image_size, s.image_size))
        target = out_dir / wav.relative_to(audio_dir).parent / f"{wav.stem}_w{k}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        image.save(target)


def floor(job) -> None:
    """Reference (b): decode, resample and mel spectrogram of the whole file; nothing drawn."""
    import librosa

    wav, _, _, s = job
    audio, rate = librosa.load(wav, sr=s.sample_rate_hz)
    librosa.feature.melspectrogram(y=audio, sr=rate, n_fft=s.n_fft, hop_length=s.hop_length,
                                   n_mels=s.n_mels, fmin=s.fmin_hz, fmax=s.fmax_hz)


def floor_cached(job) -> None:
    """Shown for information: the floor with our decoder and a mel basis built once."""
    import librosa

    wav, _, _, s = job
    audio = load_audio(wav, s)
    mel_basis(s) @ np.abs(librosa.stft(audio, n_fft=s.n_fft, hop_length=s.hop_length)) ** 2


def run_pool(method, jobs: list, workers: int) -> tuple[float, float]:
    """(files per second, CPU ms per file) of method over jobs in a pool of forked workers.

    CPU time is the workers' own (user + system), so it does not grow when other programs
    take the cores; seconds of CPU per second of wall clock is how many cores we got.
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    pool = multiprocessing.get_context("fork").Pool(workers)
    start = time.perf_counter()
    for _ in pool.imap_unordered(method, jobs, chunksize=4):
        pass
    seconds = time.perf_counter() - start
    pool.close()
    pool.join()  # the workers' CPU time is counted once they are reaped
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return len(jobs) / seconds, 1000 * cpu / len(jobs)


def check_images(jobs: list, written_dir: Path, png_step: int) -> tuple[int, int, int, int]:
    """(identical images, windows, PNGs read back identical, PNGs checked)."""
    same = total = png_same = png_total = 0
    for i, (wav, audio_dir, _, settings) in enumerate(jobs):
        for k, window in enumerate(audio_to_windows(load_audio(wav, settings), settings)):
            image = window_to_image(window, settings)
            same += np.array_equal(image, reference_window_to_image(window, settings))
            total += 1
            if i % png_step == 0:
                png = written_dir / wav.relative_to(audio_dir).parent / f"{wav.stem}_w{k}.png"
                png_same += np.array_equal(png_to_image(png), image)
                png_total += 1
    return same, total, png_same, png_total


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--audio-dir", type=Path, default=ROOT / DEFAULT_AUDIO, help="default: %(default)s")
    parser.add_argument("--out-dir", type=Path, help="where PNGs are written (default: a new folder in /dev/shm)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per method; the best counts (default: 3)")
    parser.add_argument("--figure-step", type=int, default=5, help="the figure method does every n-th file")
    parser.add_argument("--png-step", type=int, default=10, help="read back the PNGs of every n-th file")
    args = parser.parse_args(argv)

    settings = Settings()
    ram_disk = Path("/dev/shm") if Path("/dev/shm").is_dir() else None
    out = args.out_dir or Path(tempfile.mkdtemp(prefix="cry-bench-", dir=ram_disk))

    def jobs_into(folder: str) -> list:
        return find_recordings(args.audio_dir, out / folder, settings)[0]

    jobs = jobs_into("warm-up")
    if not jobs:
        raise SystemExit(f"{args.audio_dir}: no audio in class folders; run prepare_data.py first")
    methods = [  # name, function, workers, every n-th file
        ("ours", ours, 1, 1), ("ours", ours, 2, 1), ("figure (a)", figure_method, 1, args.figure_step),
        ("floor (b)", floor, 1, 1), ("floor, mel basis built once", floor_cached, 1, 1)]
    for _, method, _, _ in methods:  # imports and first-call costs, paid once before forking
        method(jobs[0])

    best, load = {}, os.getloadavg()[0]  # (name, workers) -> (files/s, CPU ms per file) of the fastest run
    for run in range(args.repeats):
        for name, method, workers, step in methods:
            measured = run_pool(method, jobs_into(f"{run}-{method.__name__}-{workers}")[::step], workers)
            best[name, workers] = max(best.get((name, workers), (0.0, 0.0)), measured)
    rate = {key: files_s for key, (files_s, _) in best.items()}
    cpu_ms = {key: ms for key, (_, ms) in best.items()}
    same, total, png_same, png_total = check_images(jobs, out / f"{args.repeats - 1}-ours-1", args.png_step)
    if args.out_dir is None:
        shutil.rmtree(out, ignore_errors=True)

    ours1, ours2 = rate["ours", 1], rate["ours", 2]
    figure, floor_ = ("figure (a)", 1), ("floor (b)", 1)
    cores2 = ours2 * cpu_ms["ours", 2] / 1000  # CPU seconds per wall second with 2 workers
    print_table(f"Preprocessing {len(jobs)} recordings ({total} windows), best of {args.repeats} runs; "
                f"load average {load:.1f} before, {os.getloadavg()[0]:.1f} after (2 fills both cores)",
                ["method", "workers", "files", "files/s", "x figure (a)", "x floor (b)", "CPU ms/file",
                 "x floor CPU", "cores used"],
                [[name, workers, len(jobs[::step]), rate[name, workers], rate[name, workers] / rate[figure],
                  rate[name, workers] / rate[floor_], cpu_ms[name, workers], cpu_ms[floor_] / cpu_ms[name, workers],
                  rate[name, workers] * cpu_ms[name, workers] / 1000] for name, _, workers, step in methods])
    results = {
        "preprocess_files_per_second": ours1,
        "preprocess_files_per_second_2_workers": ours2,
        "preprocess_figure_method_files_per_second": rate[figure],
        "preprocess_floor_files_per_second": rate[floor_],
        "preprocess_speedup_vs_figure_method": ours1 / rate[figure],
        "preprocess_fraction_of_floor": ours1 / rate[floor_],
        "preprocess_fraction_of_floor_cpu": cpu_ms[floor_] / cpu_ms["ours", 1],
        "preprocess_speedup_1_to_2_workers": ours2 / ours1,
        "preprocess_cores_used_2_workers": cores2,
        "preprocess_cpu_ms_per_file": cpu_ms["ours", 1],
        "preprocess_images_identical_fraction": same / total,
    }
    print_table("Targets", ["figure", "measured", "target", "met"], [
        target_row("speed-up vs figure method (a)", ours1 / rate[figure], minimum=10),
        target_row("fraction of floor (b), per worker", ours1 / rate[floor_], minimum=0.6),
        target_row("  the same in CPU time", cpu_ms[floor_] / cpu_ms["ours", 1], minimum=0.6),
        target_row("speed-up from 1 to 2 workers", ours2 / ours1, minimum=1.7),
        target_row("  cores the 2 workers got", cores2, minimum=1.7),
        target_row(f"images equal to librosa reference ({same}/{total})", same / total, minimum=1),
        target_row(f"PNGs read back equal ({png_same}/{png_total})", png_same / max(png_total, 1), minimum=1)])
    print(f"PNGs written to {out}" + ("" if args.out_dir else " (a temporary folder, now removed)"))
    update_report(results)
    return 0 if same == total and png_same == png_total else 1


if __name__ == "__main__":
    raise SystemExit(main())
