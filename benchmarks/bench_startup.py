"""Start-up of the live monitor, side by side in one run: the path used now (the reason model's
LiteRT export and the detector, nothing of TensorFlow, Keras, librosa or scikit-learn imported)
against the old one (the same model through Keras: a copy of the model without its export).

The script runs as a user runs it, serving the page, on a recording played --fast (a microphone
adds the first window's 3 s of audio); measured: seconds from the process start to its first
answer line, and its resident memory then (VmRSS and the peak so far, VmHWM, from /proc).
Targets: at most 300 MB, first answer within 3 s.

  python benchmarks/bench_startup.py --model models/cry_model.keras
"""
from __future__ import annotations

import argparse
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, print_table, target_row, update_report

import numpy as np  # noqa: E402

from cry.audio import decode  # noqa: E402
from cry.files import run_main  # noqa: E402
from cry.params import DEFAULT_DETECTOR, DEFAULT_MODEL  # noqa: E402


def proc_status_mb(pid: int, key: str) -> float:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(key + ":")) / 1024


def first_answer(model: Path, detector: Path, clip: Path, folder: Path) -> tuple[float, float, float]:
    """(seconds to the first answer, VmRSS MB, VmHWM MB) of one start of the script."""
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, str(ROOT / "real_time_prediction.py"), "--model", str(model),
                             "--detector", str(detector), "--file", str(clip), "--fast", "--serve", "0",
                             "--history", str(folder / "history.sqlite")],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=ROOT)
    try:
        line = proc.stdout.readline()
        seconds = time.monotonic() - started
        if not line:
            raise SystemExit(f"{model}: the script gave no answer (status {proc.wait()})")
        return seconds, proc_status_mb(proc.pid, "VmRSS"), proc_status_mb(proc.pid, "VmHWM")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=ROOT / DEFAULT_MODEL)
    parser.add_argument("--detector", type=Path, default=ROOT / DEFAULT_DETECTOR)
    parser.add_argument("--repeats", type=int, default=2,
                        help="starts of each path, alternating (default: %(default)s)")
    args = parser.parse_args(argv)
    import soundfile as sf

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        old = folder / "keras" / args.model.name  # the model and its JSON, without the LiteRT export
        old.parent.mkdir()
        for source in (args.model, args.model.with_suffix(".json")):
            shutil.copy(source, old.parent / source.name)
        cry = sorted((ROOT / "data" / "audio").glob("hungry/*.wav"))[0]
        audio, rate = decode(cry)
        clip = folder / "clip.wav"
        sf.write(clip, np.tile(audio, int(np.ceil(60 * rate / len(audio)))), rate)  # still running at the answer
        runs = {"now (LiteRT, no TensorFlow)": [], "old (Keras)": []}
        for _ in range(args.repeats):
            runs["now (LiteRT, no TensorFlow)"].append(first_answer(args.model, args.detector, clip, folder))
            runs["old (Keras)"].append(first_answer(old, args.detector, clip, folder))
    (new_s, new_rss, new_peak), (old_s, old_rss, old_peak) = (np.median(v, axis=0) for v in runs.values())
    rows = [["first answer (s)", old_s, new_s, old_s / new_s, *target_row("", new_s, maximum=3.0)[2:]],
            ["resident memory at it (MB)", old_rss, new_rss, old_rss / new_rss, None, None],
            ["peak resident memory so far (MB)", old_peak, new_peak, old_peak / new_peak,
             *target_row("", new_peak, maximum=300.0)[2:]]]
    print_table(f"Live monitor start-up ({args.model.name} + detector, --serve, a recording --fast), median of "
                f"{args.repeats} starts each", ["", "old (Keras)", "now", "old / now", "target (now)", "met"], rows)
    figures = {"startup_first_answer_seconds": float(new_s), "startup_first_answer_seconds_keras": float(old_s),
               "startup_speedup_vs_keras": float(old_s / new_s), "startup_peak_rss_mb": float(new_peak),
               "startup_peak_rss_mb_keras": float(old_peak),
               "startup_rss_ratio_keras_to_now": float(old_peak / new_peak)}
    print(figures)
    update_report(figures)
    return figures


if __name__ == "__main__":
    run_main(lambda: main() and 0)
