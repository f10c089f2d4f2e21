"""Run every benchmark, each in its own process (so peak memory is each one's own), and
check that reports/benchmarks.json holds every figure the README quotes.

Inputs must exist: data/audio, data/spectrograms and a model (`make bench` makes them).

  python benchmarks/run_all.py --model models/cry_model.keras
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from common import REPORT, ROOT, print_table

from cry.params import DEFAULT_MODEL

SCRIPTS = ("bench_preprocess.py", "bench_train.py", "bench_inference.py", "bench_export.py", "bench_live.py",
           "bench_startup.py", "bench_night.py", "bench_scan.py")
REQUIRED = ("preprocess_speedup_vs_figure_method", "preprocess_fraction_of_floor",
            "preprocess_speedup_1_to_2_workers", "inference_speedup_vs_predict", "inference_ms_median",
            "train_seconds_per_epoch", "train_peak_rss_mb", "litert_argmax_agreement",
            "live_work_fraction_of_hop", "startup_first_answer_seconds", "startup_peak_rss_mb",
            "startup_rss_ratio_keras_to_now", "night_rss_growth_mb", "scan_x_realtime_per_core",
            "scan_speedup_vs_file_fast", "scan_ray_2_nodes_vs_one_worker", "scan_rss_growth_mb")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=ROOT / DEFAULT_MODEL, help="default: %(default)s")
    args = parser.parse_args(argv)

    REPORT.unlink(missing_ok=True)  # no figure survives from an older run
    here, rows, started = Path(__file__).parent, [], time.perf_counter()
    load_before = os.getloadavg()[0]
    for script in SCRIPTS:
        needs_model = script not in ("bench_preprocess.py", "bench_train.py")
        command = [sys.executable, str(here / script)] + (["--model", str(args.model)] if needs_model else [])
        print(f"\n=== {script}", flush=True)
        start = time.perf_counter()
        status = subprocess.call(command, cwd=ROOT)
        rows.append([script, time.perf_counter() - start, status])

    report = json.loads(REPORT.read_text()) if REPORT.is_file() else {}
    missing = [key for key in REQUIRED if not isinstance(report.get(key), (int, float))]
    print_table(f"All benchmarks: {time.perf_counter() - started:.0f} s, load average "
                f"{load_before:.1f} before and {os.getloadavg()[0]:.1f} after (2 would fill 2 cores)",
                ["script", "seconds", "exit status"], rows)
    print_table("Headline figures", ["key", "value"], [[key, report.get(key)] for key in REQUIRED])
    if missing:
        print(f"missing from {REPORT}: {', '.join(missing)}")
    print(f"all figures in {REPORT}")
    return 1 if missing or any(status for _, _, status in rows) else 0


if __name__ == "__main__":
    raise SystemExit(main())
