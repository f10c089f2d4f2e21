"""Scanning long recordings (scan_recordings.py's path), side by side in one run:

  1. speed on one core, in x real time: the scan (pieces scored by the live path's scorer, one
     decision in order, every output written) against the monitor playing the same file with
     `real_time_prediction.py --file X --fast` (the same live path, with the reason model, a
     window read every hop from the ring, the terminal line); the work per hop of each; and the
     detector's work per hop with each patch once (a stream's patch cache) against every patch of
     every window computed anew;
  2. Ray on a 2-node cluster on this machine (one CPU per node) against one worker, in throughput;
  3. resident memory (peak) of a scan of 16 hours against a scan of 1 hour.

The speed recording is corpus cries with low noise between them: every window is heard, so the
quiet gate flatters nothing. The long recordings are a corpus cry every 5 minutes, a minute of
noise the detector scores after it, and quiet room tone the rest of the time (as bench_night.py).
Targets: scan >= 300x real time per core; Ray >= 1.7x one worker; 16 h within 50 MB of 1 h.

  python benchmarks/bench_scan.py --model models/cry_model.keras
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, print_table, target_row, update_report

import numpy as np  # noqa: E402

from cry.audio import decode, resample, rms_dbfs  # noqa: E402
from cry.files import run_main  # noqa: E402
from cry.local_cluster import DRIVER_ENV  # noqa: E402
from cry.params import DEFAULT_DETECTOR, DEFAULT_MODEL  # noqa: E402
from cry.pretrained import PRETRAINED_DIR  # noqa: E402

RATE = 16000
CYCLE_SECONDS, NOISE_SECONDS = 300, 60


def cries() -> list[np.ndarray]:
    """The corpus's cries (hungry, the largest class) at RATE, loudest first."""
    files = sorted((ROOT / "data" / "audio").glob("hungry/*.wav"))[:40]
    audio = [resample(*decode(p), RATE) for p in files]
    return sorted(audio, key=rms_dbfs, reverse=True)


def write_heard(path: Path, minutes: float, rng: np.random.Generator) -> float:
    """Cries with 5-20 s of noise at -50 dBFS between them (above the quiet gate); its seconds."""
    import soundfile as sf

    pieces, total = [], 0
    for cry in itertools.cycle(cries()):
        noise = rng.normal(0, 10 ** (-50 / 20), int(rng.uniform(5, 20) * RATE)).astype(np.float32)
        pieces += [cry, noise]
        total += len(cry) + len(noise)
        if total >= minutes * 60 * RATE:
            break
    sf.write(str(path), np.concatenate(pieces)[:int(minutes * 60 * RATE)], RATE, subtype="PCM_16")
    return minutes * 60


def write_day(path: Path, hours: float, rng: np.random.Generator) -> None:
    """A long recording as FLAC at 8 kHz, cycle by cycle (never all in memory)."""
    import soundfile as sf

    rate, cry = 8000, resample(cries()[0], RATE, 8000)
    with sf.SoundFile(str(path), "w", rate, 1, format="FLAC") as out:
        for _ in range(int(hours * 3600 / CYCLE_SECONDS)):
            noise = rng.normal(0, 10 ** (-50 / 20), NOISE_SECONDS * rate)
            room = rng.normal(0, 10 ** (-72 / 20), (CYCLE_SECONDS - NOISE_SECONDS) * rate - len(cry))
            out.write(np.concatenate([cry, noise, room]).astype(np.float32))


def monitor_file_fast(model: Path, detector: Path, recording: Path) -> float:
    """What `real_time_prediction.py --file X --fast` does, through the package: its seconds."""
    from cry.assemble import load_live_path
    from cry.live_path import run
    from cry.monitor.outputs import TerminalLine
    from cry.stream import file_source

    path = load_live_path(model, detector, ROOT / PRETRAINED_DIR)
    warm = np.full(3 * RATE, 0.1, np.float32)
    path.scorer(warm, RATE)
    path.scorer.reasons(path.scorer.reason_window(warm, RATE))
    started = time.perf_counter()
    run(file_source(recording, fast=True), path.session(), [TerminalLine(open(os.devnull, "w"))])
    return time.perf_counter() - started


def detector_ms_per_hop(path, recording: Path, windows: int = 600) -> tuple[float, float]:
    """(with each patch once: the stream's patch cache, every patch anew: the window alone) ms per
    hop of the live path's scorer over the first windows of a recording: part 1 of the issue."""
    from cry.live_path import clip_window_ends

    audio, rate = decode(recording)
    size, session = int(round(path.live.window_seconds * rate)), path.session()
    ends = list(clip_window_ends(len(audio), rate, path.live))[:windows]
    started = time.perf_counter()
    for end in ends:
        session.score(audio[end - size:end], rate, end)
    cached = time.perf_counter() - started
    started = time.perf_counter()
    for end in ends:
        path.scorer(audio[end - size:end], rate)
    return 1000 * cached / len(ends), 1000 * (time.perf_counter() - started) / len(ends)


def scan_seconds(recordings: list[Path], out: Path, models, executor, piece_seconds: float, repeats: int = 1) -> float:
    """The best of `repeats` scans into fresh folders (other work on this machine only ever slows one)."""
    import shutil

    from cry.detect import scanning

    best = float("inf")
    for _ in range(repeats):
        shutil.rmtree(out, ignore_errors=True)
        started = time.perf_counter()
        markers, failed = scanning.scan([(p, p.name) for p in recordings], out, models, executor, piece_seconds)
        best = min(best, time.perf_counter() - started)
        assert not failed and len(markers) == len(recordings)
    return best


def peak_rss_of_scan(recording: Path, out: Path, detector: Path) -> tuple[float, float]:
    """Peak resident memory (MB) of scan_recordings.py on one recording, in a process of its own,
    and the hours it scanned (from its marker)."""
    command = [sys.executable, str(ROOT / "scan_recordings.py"), str(recording), "--out", str(out), "--workers", "1",
               "--detector", str(detector)]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    marker = out / (recording.name + ".scan.json")
    if process.returncode or not marker.is_file():
        raise SystemExit(f"scan_recordings.py failed on {recording} ({process.returncode})")
    return usage.ru_maxrss / 1024, json.loads(marker.read_text())["seconds"] / 3600


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=ROOT / DEFAULT_MODEL)
    parser.add_argument("--detector", type=Path, default=ROOT / DEFAULT_DETECTOR)
    parser.add_argument("--minutes", type=float, default=20.0, help="of heard audio for speed (default: %(default)s)")
    parser.add_argument("--hours", type=float, default=16.0, help="the long recording (default: %(default)s)")
    args = parser.parse_args(argv)
    os.environ.update(DRIVER_ENV)  # before Ray is imported: the local cluster is on 127.0.0.1 only
    from cry.cluster import InProcess, RayCluster
    from cry.detect.scan import Grid
    from cry.detect.scanning import ScanModels, live_path_of
    from cry.local_cluster import LocalCluster

    load_before = os.getloadavg()[0]
    models, rng, cores = ScanModels.of(args.detector, ROOT / PRETRAINED_DIR), np.random.default_rng(0), \
        os.sched_getaffinity(0)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        seconds = write_heard(folder / "heard.wav", args.minutes, rng)
        os.sched_setaffinity(0, {min(cores)})  # one core: a per-core figure, whatever else runs
        scan_seconds([folder / "heard.wav"], folder / "warm", models, InProcess(), 600)  # models loaded, caches warm
        scanned = scan_seconds([folder / "heard.wav"], folder / "one_core", models, InProcess(), 600, repeats=3)
        monitored = min(monitor_file_fast(args.model, args.detector, folder / "heard.wav") for _ in range(2))
        once, anew = detector_ms_per_hop(live_path_of(models), folder / "heard.wav")
        os.sched_setaffinity(0, cores)

        (folder / "heard2.wav").write_bytes((folder / "heard.wav").read_bytes())
        pair = [folder / "heard.wav", folder / "heard2.wav"]
        with LocalCluster(nodes=2) as cluster:
            ray = RayCluster(cluster.address)
            scan_seconds([folder / "heard.wav"], folder / "ray_warm", models, ray, 120)  # each node loads its models
            runs = [(scan_seconds(pair, folder / "one_worker", models, InProcess(), 120),
                     scan_seconds(pair, folder / "ray", models, ray, 120)) for _ in range(3)]  # in turn: the same load
            ray.shutdown()
        one_worker, on_ray = (min(column) for column in zip(*runs))
        same = all((folder / "ray" / f).read_bytes() == (folder / "one_worker" / f).read_bytes()
                   for f in ("heard.wav.segments.csv", "heard2.wav.hourly.csv"))

        write_day(folder / "day.flac", args.hours, rng)
        write_day(folder / "hour.flac", 1.0, rng)
        (rss_hour, hour), (rss_day, day) = (peak_rss_of_scan(folder / f"{name}.flac", folder / f"rss_{name}",
                                                             args.detector) for name in ("hour", "day"))

    windows = Grid.of(RATE, live_path_of(models).live).windows_in(int(seconds * RATE))
    per_core, file_fast = seconds / scanned, seconds / monitored
    hop_ms = 1000 * scanned / windows, 1000 * monitored / windows
    ratio = one_worker / on_ray
    rows = [target_row("scan, x real time on one core", per_core, minimum=300),
            ["monitor --file --fast, x real time on one core", file_fast, None, None],
            ["scan / monitor --file --fast", per_core / file_fast, None, None],
            ["work per hop, scan / monitor (ms)", f"{hop_ms[0]:.2f} / {hop_ms[1]:.2f}", None, None],
            ["detector per hop, each patch once / all anew (ms)", f"{once:.2f} / {anew:.2f}", None, None],
            target_row("Ray, 2 nodes of 1 CPU / one worker (throughput)", ratio, minimum=1.7),
            ["Ray results equal one worker's, byte for byte", "yes" if same else "NO", None, None],
            [f"peak resident memory, {hour:.1f} h / {day:.1f} h scanned (MB)", f"{rss_hour:.0f} / {rss_day:.0f}",
             None, None],
            target_row(f"memory growth, {args.hours:g} h against 1 h (MB)", rss_day - rss_hour, maximum=50)]
    print_table(f"Scanning: {seconds / 60:.0f} min of heard audio at {RATE} Hz ({windows} windows), best of 3 "
                f"(the monitor: of 2); Ray on this machine's {len(cores)} cores, 2 recordings in pieces of 2 min, "
                f"in turn with one worker, best of 3 each (ratios of the pairs: "
                f"{', '.join(f'{a / b:.2f}' for a, b in runs)}); "
                f"load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after (other work shares the "
                "cores)", ["", "value", "target", "met"], rows)
    figures = {"scan_x_realtime_per_core": per_core, "scan_file_fast_x_realtime_per_core": file_fast,
               "scan_speedup_vs_file_fast": per_core / file_fast, "scan_ms_per_hop": hop_ms[0],
               "scan_file_fast_ms_per_hop": hop_ms[1], "detector_ms_per_hop_patch_once": once,
               "detector_ms_per_hop_all_patches": anew, "scan_ray_2_nodes_vs_one_worker": ratio,
               "scan_ray_identical": same, "scan_rss_1h_mb": rss_hour, "scan_rss_16h_mb": rss_day,
               "scan_rss_growth_mb": rss_day - rss_hour, "scan_load_average_before": load_before}
    print(figures)
    update_report(figures)
    return figures


if __name__ == "__main__":
    run_main(lambda: main() and 0)
