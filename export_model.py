"""Export a trained model to LiteRT (TFLite) and check that it gives the Keras model's answers.

Writes <model>.tflite (float32 weights) and, with --weights, <model>_float16.tflite and
<model>_int8.tflite (dynamic-range quantised), beside the model or in --out-dir, and records
them with their parity figures in <model>_litert.json beside the model (an export of one
kind keeps the record of the others made from the same model file). Parity is measured on windows of the model's own test babies,
never seen in training: the largest absolute difference in any class probability, and how
often the top class agrees (at least --min-agreement for every file written). The settings
stay in the model's JSON, which the exported files share.

The LSTMs only convert when traced for a fixed batch of one image: see cry.model.to_litert.

Exit status: 0 every export keeps parity; 1 some export agrees less than --min-agreement;
2 user error (no model, no spectrograms).

  python export_model.py --weights float32 float16 int8
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np

from cry.data import index_spectrograms, read_settings, select
from cry.features import png_to_image
from cry.files import UserError, atomic_output, run_main, write_json
from cry.model import (LITERT_WEIGHTS, LiteRTModel, litert_report_path, load_model, predict_probabilities,
                       to_litert)
from cry.params import CLASSES, check_compatible


def test_images(info: dict, data_dir: Path, max_windows: int) -> np.ndarray:
    """Up to max_windows windows of the model's test babies (all babies if it has no split),
    spread evenly over them. Returns uint8 [n, size, size, 3]."""
    check_compatible(read_settings(data_dir), info["settings"], f"{data_dir} against the model")
    windows = index_spectrograms(data_dir)
    test_babies = info.get("split", {}).get("test")
    if test_babies:
        windows = select(windows, test_babies)
    if len(windows) == 0 or max_windows < 1:
        raise UserError(f"{data_dir}: no test windows of this model to check parity on")
    chosen = np.unique(np.linspace(0, len(windows) - 1, min(max_windows, len(windows))).astype(int))
    return np.stack([png_to_image(p) for p in windows.paths[chosen]])


def parity(probabilities: np.ndarray, reference: np.ndarray) -> dict:
    """Largest absolute probability difference and top-class agreement against the reference."""
    return {"max_abs_diff": float(np.abs(probabilities - reference).max()),
            "argmax_agreement": float(np.mean(probabilities.argmax(1) == reference.argmax(1)))}


def earlier_exports(report: Path, keras_sha256: str) -> dict:
    """Exports already recorded for this very model file (none if it was retrained since)."""
    try:
        old = json.loads(report.read_text())
        return old["exports"] if old.get("keras_sha256") == keras_sha256 else {}
    except (OSError, ValueError, KeyError):
        return {}


def export_path(model_path: Path, out_dir: Path, weights: str) -> Path:
    return out_dir / f"{model_path.stem}{'' if weights == 'float32' else '_' + weights}.tflite"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=Path("models/cry_model.keras"), help="default: %(default)s")
    parser.add_argument("--out-dir", type=Path, help="default: the model's folder")
    parser.add_argument("--weights", nargs="+", choices=LITERT_WEIGHTS, default=["float32"],
                        help="one file per choice (default: float32)")
    parser.add_argument("--data-dir", type=Path, help="spectrograms for the parity check (default: the model's)")
    parser.add_argument("--max-windows", type=int, default=400, help="test windows compared (default: %(default)s)")
    parser.add_argument("--min-agreement", type=float, default=0.99, help="default: %(default)s")
    args = parser.parse_args(argv)

    model, info = load_model(args.model)
    out_dir = args.out_dir or args.model.parent
    images = test_images(info, args.data_dir or Path(info.get("data_dir", "data/spectrograms")), args.max_windows)
    reference = predict_probabilities(model, images)
    n_predicted = len(np.unique(reference.argmax(1)))
    figures = {"model": str(args.model), "keras_sha256": info["sha256"], "windows": len(images),
               "classes_predicted": n_predicted, "exports": {}}
    print(f"{len(images)} test windows; the Keras model predicts {n_predicted} of {len(CLASSES)} classes on them"
          + (" (agreement is a weak check for a model this undecided)" if n_predicted < 3 else ""))
    print(f"{'file':36} {'MB':>6} {'max |dp|':>10} {'top class agrees':>17}")
    for weights in args.weights:
        flatbuffer = to_litert(model, weights)
        path = export_path(args.model, out_dir, weights)
        with atomic_output(path) as tmp:
            tmp.write_bytes(flatbuffer)
        result = {"file": os.path.relpath(path, args.model.parent), "bytes": len(flatbuffer),
                  **parity(predict_probabilities(LiteRTModel(flatbuffer), images), reference)}
        figures["exports"][weights] = result
        print(f"{path.name:36} {len(flatbuffer) / 1e6:6.2f} {result['max_abs_diff']:10.2e} "
              f"{result['argmax_agreement']:17.2%}")
    report = litert_report_path(args.model)
    figures["exports"] = {**earlier_exports(report, info["sha256"]), **figures["exports"]}
    write_json(figures, report)
    print(f"LiteRT files in {out_dir}/, parity figures in {report}")
    failed = [w for w in args.weights if figures["exports"][w]["argmax_agreement"] < args.min_agreement]
    if failed:
        print(f"parity NOT kept (top class agrees < {args.min_agreement:.0%}): {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    run_main(main)
