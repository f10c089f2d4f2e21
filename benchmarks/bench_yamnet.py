"""YAMNet through LiteRT: time per patch, time of the numpy features, and its zero-shot baby-cry rate.

The rate is the share of clips of each folder of a sounds tree (cry/*, not_cry/*) with a "Baby cry,
infant cry" score above 0.5 in any patch: on the clips as they are, and band-limited to 4 kHz first
(down to 8 kHz and back with soxr) to see what the corpus's 8 kHz phone audio costs.

  python benchmarks/bench_yamnet.py [--sounds ../shared/sounds] [--models models/pretrained]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # one core, as on the live monitor
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from cry.audio import decode, list_audio_files, resample  # noqa: E402
from cry.yamnet import BABY_CRY, YamnetModel, heard_label, waveform_to_log_mel_patches  # noqa: E402

RATE_HZ = 16000
BAND_LIMIT_RATE_HZ = 8000
THRESHOLD = 0.5


def median_ms(fn, n: int, warmup: int = 5) -> float:
    for _ in range(warmup):
        fn()
    seconds = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        seconds.append(time.perf_counter() - start)
    return 1000 * float(np.median(seconds))


def load_16k(path: Path) -> np.ndarray:
    """Mono float32 [n] at 16 kHz."""
    audio, rate = decode(path)
    return resample(audio, rate, RATE_HZ)


def band_limited(waveform: np.ndarray) -> np.ndarray:
    """Nothing above 4 kHz, like the corpus: down to 8 kHz and back up. float32 [n]."""
    return resample(resample(waveform, RATE_HZ, BAND_LIMIT_RATE_HZ), BAND_LIMIT_RATE_HZ, RATE_HZ)[:len(waveform)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sounds", type=Path, default=ROOT.parent / "shared" / "sounds")
    parser.add_argument("--models", type=Path, default=ROOT / "models" / "pretrained")
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args()
    model = YamnetModel.from_folder(args.models)

    rng = np.random.default_rng(0)
    three_seconds = (0.1 * rng.standard_normal(3 * RATE_HZ)).astype(np.float32)
    patch = waveform_to_log_mel_patches(three_seconds)[:1]  # float32 [1, 96, 64]
    print(f"YAMNet via LiteRT, one thread: {median_ms(lambda: model.patches(patch), args.repeats):.2f} ms a patch "
          f"(median of {args.repeats})")
    print(f"waveform_to_log_mel_patches, 3 s of audio ({len(waveform_to_log_mel_patches(three_seconds))} patches): "
          f"{median_ms(lambda: waveform_to_log_mel_patches(three_seconds), args.repeats):.2f} ms "
          f"(median of {args.repeats})")

    print(f"\nclips with a baby-cry score > {THRESHOLD} in any patch, per folder of {args.sounds}")
    print(f"{'folder':45s} {'clips':>5s} {'full band':>10s} {'<= 4 kHz':>10s}  most heard (full band)")
    for folder in sorted(p for p in args.sounds.glob("*/*") if p.is_dir()):
        hits_full, hits_limited, heard = [], [], []
        for path in list_audio_files(folder):
            waveform = load_16k(path)
            scores, _ = model.waveform(waveform)                 # [n_patches, 521]
            hits_full.append(scores[:, BABY_CRY].max() > THRESHOLD)
            heard.append(heard_label(scores.mean(axis=0)))
            hits_limited.append(model.waveform(band_limited(waveform))[0][:, BABY_CRY].max() > THRESHOLD)
        labels, counts = np.unique(heard, return_counts=True)
        print(f"{str(folder.relative_to(args.sounds)):45s} {len(heard):5d} {np.mean(hits_full):10.0%} "
              f"{np.mean(hits_limited):10.0%}  {labels[np.argmax(counts)]} ({counts.max()}/{len(heard)})")


if __name__ == "__main__":
    main()
