"""Live prediction speed, side by side in one run, on one core:

  1. per-window latency of resample + feature + model, with the model called directly: eagerly
     (model(x)) and as cry.model.predict_probabilities does for live use (predict_on_batch,
     Keras's compiled step), against model.predict;
  2. end-to-end delay from a sample arriving (audio callback) to its prediction being printed,
     through the same ring buffer / listen loop / decision as real_time_prediction.py, fed by a
     recording in real time (or, with --mic, by the default input device);
  3. the CPU share used while listening.

Targets: feature + model < 20 ms per window; delay < hop + 100 ms; CPU < 25 % of one core.

  python benchmarks/bench_live.py --model models/cry_model.keras
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from common import ROOT, print_table, target_row, update_report

if hasattr(os, "sched_setaffinity"):
    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core, before TF starts threads

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402

import real_time_prediction as rtp  # noqa: E402
from cry.audio import resample  # noqa: E402
from cry.files import run_main  # noqa: E402


def percentiles(ms: list[float]) -> tuple[float, float]:
    return float(np.median(ms)), float(np.percentile(ms, 95))


def window_latency(model, settings, audio: np.ndarray, rate: int, n: int = 30) -> dict:
    """Milliseconds per window for each stage, on windows cut from `audio` (device rate)."""
    from cry.features import window_to_image
    from cry.model import predict_probabilities

    size = int(settings.window_seconds * rate)
    starts = np.linspace(0, len(audio) - size, n).astype(int)
    times = {"feature": [], "model(x) eager": [], "predict_probabilities": [], "model.predict": []}
    blank = np.zeros((1, settings.image_size, settings.image_size, 3), np.uint8)
    model.predict(blank, verbose=0), model(blank, training=False), predict_probabilities(model, blank)  # warm-up
    for s in starts:
        t0 = time.perf_counter()
        window = rtp.fit_length(resample(audio[s:s + size], rate, settings.sample_rate_hz), settings.window_samples)
        image = window_to_image(window, settings)[None]  # [1, 128, 128, 3]
        t1 = time.perf_counter()
        np.asarray(model(image, training=False))
        t2 = time.perf_counter()
        predict_probabilities(model, image)
        t3 = time.perf_counter()
        model.predict(image, verbose=0)
        t4 = time.perf_counter()
        for key, dt in zip(times, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
            times[key].append(1000 * dt)
    for key in list(times)[1:]:
        times[f"feature + {key}"] = [a + b for a, b in zip(times["feature"], times[key])]
    return {key: percentiles(ms) for key, ms in times.items()}


class TimedRingBuffer(rtp.RingBuffer):
    """The script's ring buffer, also noting when each block arrived: (samples so far, time)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.arrivals = []

    def callback(self, indata, frames, time_info, status):
        super().callback(indata, frames, time_info, status)
        self.arrivals.append((self.total, time.monotonic()))


def listening(model, info, source, hop: float, seconds: float) -> dict:
    """Run the live loop as the script does (LiteRT export if there is one); delay = printed -
    arrival of the oldest sample new in that window."""
    settings = info["settings"]
    decider = rtp.Decider(info.get("uncertain_threshold", 0.5), rtp.calibration_of(info))
    out = open(os.devnull, "w")  # printed like the script does, but not shown
    rate, windows, previous_end = int(source.samplerate), [], [0]

    def on_window(end, result):
        dbfs, probabilities = result
        state, mean = decider.update(probabilities)
        print(rtp.describe(state, mean, dbfs), file=out, flush=True)
        windows.append((max(previous_end[0], end - int(settings.window_seconds * rate)), end, time.monotonic(),
                        probabilities is not None))
        previous_end[0] = end

    cpu0, wall0 = time.process_time(), time.monotonic()
    source.start()
    rtp.listen(source, lambda w: rtp.window_probabilities(w, rate, model, settings), settings.window_seconds,
               hop, seconds, on_window)
    cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
    source.close()
    totals, times = (np.array(column) for column in zip(*source.ring.arrivals))
    oldest = [1000 * (printed - times[np.searchsorted(totals, first, side="right")])
              for first, end, printed, _ in windows[1:]]  # the first answer waits for a full window
    newest = [1000 * (printed - times[np.searchsorted(totals, end - 1, side="right")])
              for first, end, printed, _ in windows]
    return {"windows": len(windows), "model calls": sum(w[3] for w in windows), "delay oldest": oldest,
            "delay newest": newest, "cpu share": 100 * cpu / wall, "overflows": source.ring.overflows}


def loud_recording() -> Path:
    files = sorted((ROOT / "data" / "audio").glob("[!s]*/*.wav"))[:40]  # cries, not silence
    return max(files, key=lambda p: float(np.sqrt(np.mean(sf.read(p, dtype="float32")[0] ** 2))))


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "cry_model.keras")
    parser.add_argument("--file", type=Path, help="a cry recording (default: the loudest of data/audio's first)")
    parser.add_argument("--rate", type=int, default=44100,
                        help="feed the file at this device rate (default: %(default)s)")
    parser.add_argument("--mic", action="store_true", help="listen to the default input device instead")
    parser.add_argument("--hop", type=float, default=0.5)
    parser.add_argument("--seconds", type=float, default=10.0, help="how long to listen (default: %(default)s)")
    args = parser.parse_args(argv)

    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    from cry.model import fastest_predictor, load_model

    model, info = load_model(args.model)
    settings = info["settings"]
    wav = args.file or loud_recording()
    audio, rate = sf.read(wav, dtype="float32", always_2d=True)
    audio = resample(audio.mean(axis=1), rate, args.rate)  # what a device at args.rate would deliver
    audio = np.tile(audio, int(np.ceil(args.seconds * args.rate / len(audio))))[:int(args.seconds * args.rate)]
    latency = window_latency(model, settings, audio, args.rate)

    rtp.RingBuffer = TimedRingBuffer  # what open_microphone and FileSource build
    with tempfile.TemporaryDirectory() as tmp:
        if args.mic:
            source = rtp.open_microphone(rtp.import_sounddevice(), None, 2 * settings.window_seconds)
            source.start = lambda: None  # already running
        else:
            sf.write(Path(tmp) / "feed.wav", audio, args.rate, subtype="FLOAT")
            source = rtp.FileSource(Path(tmp) / "feed.wav", 2 * settings.window_seconds, fast=False)
        live = listening(fastest_predictor(args.model, model, info), info, source, args.hop, args.seconds)

    budget = 1000 * args.hop + 100
    rows = [[f"{key} (ms/window)", *latency[key], None, None] for key in latency]
    rows[5][3:] = target_row("", rows[5][2], maximum=20.0)[2:]  # feature + predict_probabilities: live use
    for name, ms in (("delay, oldest new sample (ms)", live["delay oldest"]),
                     ("delay, newest sample (ms)", live["delay newest"])):
        rows.append([name, *percentiles(ms), None, None])
    rows[-2][3:] = target_row("", rows[-2][2], maximum=budget)[2:]
    rows.append(["CPU while listening (% of 1 core)", live["cpu share"], None,
                 *target_row("", live["cpu share"], maximum=25.0)[2:]])
    print_table(f"Live prediction, one core: model {args.model.name}, {'microphone' if args.mic else wav.name} at "
                f"{args.rate} Hz, hop {args.hop} s, {live['windows']} windows ({live['model calls']} model calls), "
                f"{live['overflows']} input overflows; targets apply to p95",
                ["", "median", "p95", "target", "met"], rows)
    figures = {"live_feature_model_ms_median": rows[5][1], "live_feature_model_ms_p95": rows[5][2],
               "live_feature_model_eager_ms_median": rows[4][1], "live_feature_model_predict_ms_median": rows[6][1],
               "live_delay_ms_median": rows[7][1], "live_delay_ms_p95": rows[7][2],
               "live_delay_newest_ms_median": rows[8][1], "live_cpu_percent_one_core": live["cpu share"],
               "live_input_overflows": live["overflows"]}
    print(figures)
    update_report(figures)
    return figures

if __name__ == "__main__":
    run_main(lambda: main() and 0)
