"""LiteRT export and parity: exports float32, float16 and int8 weights as export_model.py does
(cry.reason.litert.export), then reports file sizes against the Keras file and parity against the
Keras model on test windows.

Writes the .tflite files and their record beside the model; the figures go to the benchmark
report. Exit status 1 when an export keeps the top class on fewer than 99%.

  python benchmarks/bench_export.py --model models/cry_model.keras
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from common import ROOT, print_table, target_row, update_report

from cry.reason.litert import export, parity_images
from cry.reason.model_files import load_model
from cry.params import DEFAULT_MODEL


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=ROOT / DEFAULT_MODEL, help="default: %(default)s")
    parser.add_argument("--max-windows", type=int, default=400, help="test windows compared (default: %(default)s)")
    args = parser.parse_args(argv)

    start = time.perf_counter()
    model, info = load_model(args.model)
    images = parity_images(info, ROOT / Path(info.data_dir), args.max_windows)
    figures = export(model, args.model, info.sha256, images, ("float32", "float16", "int8"))
    seconds = time.perf_counter() - start
    keras_bytes = args.model.stat().st_size
    exports = figures["exports"]
    print_table(f"LiteRT exports of {args.model.name} ({keras_bytes / 1e6:.1f} MB), parity on "
                f"{figures['windows']} test windows, {figures['classes_predicted']} classes predicted",
                ["weights", "file", "MB", "x Keras size", "max |dp|", "top agrees"],
                [[w, r["file"], r["bytes"] / 1e6, r["bytes"] / keras_bytes, r["max_abs_diff"], r["argmax_agreement"]]
                 for w, r in exports.items()])
    print_table("Targets", ["figure", "measured", "target", "met"], [
        target_row(f"top class agrees, {w}", r["argmax_agreement"], minimum=0.99) for w, r in exports.items()])
    update_report({"litert_argmax_agreement": exports["float32"]["argmax_agreement"],
                   "litert_max_abs_diff": exports["float32"]["max_abs_diff"],
                   "litert_float16_argmax_agreement": exports["float16"]["argmax_agreement"],
                   "litert_int8_argmax_agreement": exports["int8"]["argmax_agreement"],
                   "litert_int8_max_abs_diff": exports["int8"]["max_abs_diff"],
                   "litert_int8_size_fraction": exports["int8"]["bytes"] / keras_bytes,
                   "litert_parity_windows": figures["windows"], "export_seconds": seconds})
    return 0 if all(r["argmax_agreement"] >= 0.99 for r in exports.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
