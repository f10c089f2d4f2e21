"""Live monitor cost, side by side in one run, on one core, through the package's live path:

  1. per-window time of the whole scoring (quiet gate, detector, reason model) against
     model.predict, the slow way to call a Keras model;
  2. all work per hop (scoring + decision + outputs) as a fraction of the hop;
  3. the delay from a sample arriving (audio callback) to its answer, fed by a recording in
     real time (or, with --mic, by the default input device);
  4. the CPU share used while listening.

Targets: all work per hop <= 5% of the hop; delay <= hop + 100 ms.

  python benchmarks/bench_live.py --model models/cry_model.keras
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from common import ROOT, print_table, target_row, update_report

if hasattr(os, "sched_setaffinity"):
    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core, before TF starts threads

import numpy as np  # noqa: E402

from cry.assemble import load_live_path  # noqa: E402
from cry.audio import decode, resample  # noqa: E402
from cry.files import run_main  # noqa: E402
from cry.monitor.outputs import TerminalLine  # noqa: E402
from cry.monitor.sources import MicrophoneSource  # noqa: E402
from cry.params import DEFAULT_DETECTOR, DEFAULT_MODEL  # noqa: E402
from cry.pretrained import PRETRAINED_DIR  # noqa: E402
from cry.stream import RingBuffer, array_source, listen  # noqa: E402


def percentiles(ms) -> tuple[float, float]:
    return float(np.median(ms)), float(np.percentile(ms, 95))


class TimedRingBuffer(RingBuffer):
    """A ring buffer that also notes when each block arrived: (samples so far, time)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.arrivals = []

    def callback(self, indata, frames, time_info, status):
        super().callback(indata, frames, time_info, status)
        self.arrivals.append((self.total, time.monotonic()))


def scoring_latency(scorer, keras_model, audio: np.ndarray, rate: int, n: int = 30) -> dict:
    """Milliseconds per window: the live scoring, and model.predict on the same image."""
    settings, size = scorer.reasons.settings, int(scorer.live.window_seconds * rate)
    times = {"scoring (gate + detector + reason model)": [], "model.predict alone": []}
    scorer(audio[:size], rate)
    blank = np.zeros((1, settings.image_size, settings.image_size, 3), np.uint8)
    keras_model.predict(blank, verbose=0)
    for s in np.linspace(0, len(audio) - size, n).astype(int):
        t0 = time.perf_counter()
        scorer(audio[s:s + size], rate)
        t1 = time.perf_counter()
        image = scorer.reasons.image(scorer.reason_window(audio[s:s + size], rate))[None]
        t2 = time.perf_counter()
        keras_model.predict(image, verbose=0)
        times["scoring (gate + detector + reason model)"].append(1000 * (t1 - t0))
        times["model.predict alone"].append(1000 * (time.perf_counter() - t2))
    return {key: percentiles(ms) for key, ms in times.items()}


def listening(path, source, seconds: float) -> dict:
    """The live loop as the script runs it; work = time inside the per-hop handler;
    delay = answer printed - arrival of the oldest sample new in that window."""
    live, rate, session = path.live, source.samplerate, path.session()
    terminal = TerminalLine(open(os.devnull, "w"))  # printed as the script does, not shown
    windows, work = [], []

    def on_window(end, window):
        t0 = time.perf_counter()
        state, _ = session.answer(window, rate, end, time.time())
        terminal.on_window(state)
        work.append(1000 * (time.perf_counter() - t0))
        windows.append((end, time.monotonic(), state.cry_probability is not None))

    cpu0, wall0 = time.process_time(), time.monotonic()
    source.start()
    listen(source, on_window, live.window_seconds, live.hop_seconds, seconds)
    cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
    source.close()
    totals, times = (np.array(column) for column in zip(*source.ring.arrivals))
    hop_n, window_n = int(round(live.hop_seconds * rate)), int(round(live.window_seconds * rate))
    oldest = [1000 * (printed - times[np.searchsorted(totals, max(end - hop_n, end - window_n), side="right")])
              for end, printed, _ in windows[1:]]
    return {"windows": len(windows), "model calls": sum(w[2] for w in windows), "delay oldest": oldest,
            "work ms": work, "cpu share": 100 * cpu / wall, "overflows": source.ring.overflows}


def loud_recording() -> Path:
    files = sorted((ROOT / "data" / "audio").glob("[!s]*/*.wav"))[:40]  # cries, not silence
    return max(files, key=lambda p: float(np.sqrt(np.mean(decode(p)[0] ** 2))))


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=ROOT / DEFAULT_MODEL)
    parser.add_argument("--file", type=Path, help="a cry recording (default: the loudest of data/audio's first)")
    parser.add_argument("--rate", type=int, default=44100, help="device rate to feed at (default: %(default)s)")
    parser.add_argument("--mic", action="store_true", help="listen to the default input device instead")
    parser.add_argument("--detector", type=Path, default=ROOT / DEFAULT_DETECTOR,
                        help="the crying detector, when the file exists (default: %(default)s)")
    parser.add_argument("--seconds", type=float, default=10.0, help="how long to listen (default: %(default)s)")
    args = parser.parse_args(argv)

    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    from cry.reason.model_files import load_model

    path = load_live_path(args.model, args.detector if args.detector.is_file() else None, ROOT / PRETRAINED_DIR)
    scorer, detector = path.scorer, path.scorer.detector
    wav = args.file or loud_recording()
    audio, rate = decode(wav)
    audio = resample(audio, rate, args.rate)  # what a device at args.rate would deliver
    audio = np.tile(audio, int(np.ceil(args.seconds * args.rate / len(audio))))[:int(args.seconds * args.rate)]
    latency = scoring_latency(scorer, load_model(args.model)[0], audio, args.rate)

    source = MicrophoneSource() if args.mic else array_source(audio, args.rate, wav.name)
    source.ring = TimedRingBuffer(len(source.ring.data))  # before start(): the stream writes into this one
    live = listening(path, source, args.seconds)

    hop_ms = 1000 * path.live.hop_seconds
    fraction = np.array(live["work ms"]) / hop_ms
    rows = [[f"{key} (ms/window)", *value, None, None] for key, value in latency.items()]
    rows.append(["all work per hop (fraction of the hop)", *percentiles(fraction),
                 *target_row("", float(np.percentile(fraction, 95)), maximum=0.05)[2:]])
    delay = percentiles(live["delay oldest"])
    rows.append(["delay, oldest new sample (ms)", *delay, *target_row("", delay[1], maximum=hop_ms + 100)[2:]])
    rows.append(["CPU while listening (% of 1 core)", live["cpu share"], None, None, None])
    source_name = "microphone" if args.mic else wav.name
    print_table(f"Live monitor, one core: model {args.model.name}, detector {'yes' if detector else 'none'}, "
                f"{source_name} at "
                f"{args.rate} Hz, hop {path.live.hop_seconds} s, {live['windows']} windows "
                f"({live['model calls']} scored), "
                f"{live['overflows']} input overflows; targets apply to p95",
                ["", "median", "p95", "target", "met"], rows)
    scoring = latency["scoring (gate + detector + reason model)"]
    figures = {"live_scoring_ms_median": scoring[0], "live_scoring_ms_p95": scoring[1],
               "live_model_predict_ms_median": latency["model.predict alone"][0],
               "live_work_fraction_of_hop": float(np.median(fraction)),
               "live_work_fraction_of_hop_p95": float(np.percentile(fraction, 95)),
               "live_delay_ms_median": delay[0], "live_delay_ms_p95": delay[1],
               "live_cpu_percent_one_core": live["cpu share"], "live_input_overflows": live["overflows"],
               "live_with_detector": detector is not None}
    print(figures)
    update_report(figures)
    return figures


if __name__ == "__main__":
    run_main(lambda: main() and 0)
