"""Inference latency for one window on one core: each way of running the model, side by side.

For one 128x128x3 image: model.predict, calling the model eagerly, predict_on_batch, a
tf.function traced for one image, cry.reason.model.predict_probabilities (what evaluation uses),
and LiteRT exports with float32, float16 and int8 weights. The trained default model and,
for comparison, a freshly built "seed" model (speed does not depend on the weights). Each
path is also checked against the Keras model on real test windows; the fastest path that
keeps parity (top class agrees on >= 99%, probabilities within 1e-4) is the headline figure.
Also times the audio -> image step of live use: resampling a window from the microphone
rate and window_to_image.

The process is pinned to --threads cores and TensorFlow and LiteRT get as many threads.

  python benchmarks/bench_inference.py --model models/cry_model.keras
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

from common import ROOT, median_p95_ms, print_table, target_row, time_calls, update_report

import numpy as np

from cry.audio import list_audio_files, resample
from cry.reason.windows import audio_to_windows, load_audio
from cry.features import window_to_image
from cry.params import DEFAULT_AUDIO, DEFAULT_MODEL
from cry.reason.params import Training

MAX_DIFF = 1e-4  # float rounding, not a different model


def model_paths(model, threads: int) -> dict:
    """name -> function(images uint8 [1, size, size, 3]) -> probabilities [1, n_classes]."""
    import tensorflow as tf

    from cry.reason.litert import LiteRTModel
    from cry.reason.model import predict_probabilities

    traced = tf.function(lambda x: model(x, training=False), input_signature=[
        tf.TensorSpec((1, *model.input_shape[1:]), tf.uint8)])
    paths = {"model.predict": lambda x: model.predict(x, verbose=0),
             "model(x), eager": lambda x: model(x, training=False),
             "predict_on_batch": model.predict_on_batch,
             "tf.function, batch 1": traced,
             "predict_probabilities": lambda x: predict_probabilities(model, x)}
    for weights in ("float32", "float16", "int8"):
        paths[f"LiteRT {weights}"] = LiteRTModel.from_keras(model, weights, num_threads=threads)
    return paths


def measure(name: str, model, images: np.ndarray, threads: int, calls: int) -> list[list]:
    """Rows [path, median ms, p95 ms, x predict, max |dp|, top class agrees] for one model."""
    reference = np.asarray(model.predict_on_batch(images))  # same numbers as model(images)
    rows = []
    for path, run in model_paths(model, threads).items():
        slow = path in ("model.predict", "model(x), eager")
        seconds = time_calls(lambda run=run: np.asarray(run(images[:1])), calls // 5 if slow else calls)
        probabilities = (np.concatenate([np.asarray(run(images[i:i + 1])) for i in range(len(images))])
                         if path == "tf.function, batch 1" else np.asarray(run(images)))
        rows.append([path, *median_p95_ms(seconds), None, float(np.abs(probabilities - reference).max()),
                     float(np.mean(probabilities.argmax(1) == reference.argmax(1)))])
    predict_ms = rows[0][1]
    for row in rows:
        row[3] = predict_ms / row[1]
    print_table(f"{name}: one window, {threads} core(s); parity against Keras on {len(images)} test windows",
                ["path", "median ms", "p95 ms", "x predict", "max |dp|", "top agrees"], rows)
    return rows


def fastest_with_parity(rows: list[list]) -> list:
    return min((r for r in rows if r[4] <= MAX_DIFF and r[5] >= 0.99), key=lambda r: r[1])


def audio_to_image_ms(audio_dir: Path, settings, device_rate: int, calls: int) -> dict:
    """window_to_image alone, and after resampling a window from the device rate (live use)."""
    audio = load_audio(list_audio_files(audio_dir)[0], settings)
    window = audio_to_windows(audio, settings)[0]
    at_device = resample(window, settings.sample_rate_hz, device_rate)
    live = lambda: window_to_image(resample(at_device, device_rate, settings.sample_rate_hz)[:settings.window_samples],  # noqa: E731
                                   settings)
    return {"window_to_image": median_p95_ms(time_calls(lambda: window_to_image(window, settings), calls)),
            f"resample {device_rate} Hz + window_to_image": median_p95_ms(time_calls(live, calls))}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=ROOT / DEFAULT_MODEL, help="default: %(default)s")
    parser.add_argument("--audio-dir", type=Path, default=ROOT / DEFAULT_AUDIO, help="default: %(default)s")
    parser.add_argument("--calls", type=int, default=100, help="timed calls per path (default: %(default)s)")
    parser.add_argument("--windows", type=int, default=200, help="test windows for parity (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=1, help="cores and threads (default: %(default)s)")
    parser.add_argument("--device-rate", type=int, default=44100, help="microphone rate (default: %(default)s)")
    args = parser.parse_args(argv)

    if hasattr(os, "sched_setaffinity"):  # before TensorFlow starts its thread pools
        os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:args.threads])
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    from cry.reason.litert import parity_images
    from cry.reason.model import build_model
    from cry.reason.model_files import load_model

    model, info = load_model(args.model)
    settings = info.settings
    images = parity_images(info, ROOT / Path(info.data_dir), args.windows)
    arch = info.training.arch
    rows = measure(f"{args.model.name} ({arch})", model, images, args.threads, args.calls)
    seed_rows = measure("seed architecture, untrained", build_model(settings, Training(arch="seed")), images,
                        args.threads, args.calls) if arch != "seed" else rows
    best, seed_best = fastest_with_parity(rows), fastest_with_parity(seed_rows)
    steps = audio_to_image_ms(args.audio_dir, settings, args.device_rate, args.calls)
    print_table("Audio -> image for one window", ["step", "median ms", "p95 ms"],
                [[step, *ms] for step, ms in steps.items()])
    live_ms = steps[f"resample {args.device_rate} Hz + window_to_image"]

    print_table(f"Targets ({arch}; fastest path keeping parity: {best[0]}; seed: {seed_best[0]})",
                ["figure", "measured", "target", "met"], [
                    target_row("fastest path, x model.predict", best[3], minimum=10),
                    target_row("fastest path, median ms", best[1], maximum=3),
                    target_row("audio -> image, median ms", live_ms[0], maximum=5)])
    by_path = {row[0]: row for row in rows}
    update_report({
        "inference_ms_median": best[1], "inference_ms_p95": best[2], "inference_speedup_vs_predict": best[3],
        "inference_predict_ms_median": by_path["model.predict"][1],
        "inference_eager_call_ms_median": by_path["model(x), eager"][1],
        "inference_predict_on_batch_ms_median": by_path["predict_on_batch"][1],
        "inference_predict_probabilities_ms_median": by_path["predict_probabilities"][1],
        "inference_litert_ms_median": by_path["LiteRT float32"][1],
        "inference_litert_int8_ms_median": by_path["LiteRT int8"][1],
        "inference_litert_int8_argmax_agreement": by_path["LiteRT int8"][5],
        "seed_inference_ms_median": seed_best[1], "seed_inference_speedup_vs_predict": seed_best[3],
        "seed_inference_predict_ms_median": seed_rows[0][1],
        "seed_inference_litert_int8_ms_median": {r[0]: r for r in seed_rows}["LiteRT int8"][1],
        "window_to_image_ms_median": steps["window_to_image"][0],
        "audio_to_image_ms_median": live_ms[0], "audio_to_image_ms_p95": live_ms[1]})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
