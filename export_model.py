"""Export a trained model to LiteRT (TFLite) and check that it gives the Keras model's answers.

Writes <model>.tflite (float32 weights) and, with --weights, <model>_float16.tflite and
<model>_int8.tflite (dynamic-range quantised), beside the model or in --out-dir, and records
them with their parity figures in <model>_litert.json beside the model (an export of one
kind keeps the record of the others made from the same model file). Parity is measured on
windows of the model's own test babies, never seen in training: the largest absolute
difference in any class probability, and how often the top class agrees (at least
--min-agreement for every file written). The settings stay in the model's JSON, which the
exported files share.

The LSTMs only convert when traced for a fixed batch of one image: see cry.reason.litert.to_litert.

Exit status: 0 every export keeps parity; 1 some export agrees less than --min-agreement;
2 user error (no model, no spectrograms).

  python export_model.py --weights float32 float16 int8
"""
from __future__ import annotations

import argparse
from pathlib import Path

from cry import runtime
from cry.files import run_main
from cry.params import CLASSES, DEFAULT_MODEL
from cry.reason.litert import LITERT_WEIGHTS, export, parity_images, record_path
from cry.reason.model_files import load_model


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="default: %(default)s")
    parser.add_argument("--out-dir", type=Path, help="default: the model's folder")
    parser.add_argument("--weights", nargs="+", choices=LITERT_WEIGHTS, default=["float32"],
                        help="one file per choice (default: float32)")
    parser.add_argument("--data-dir", type=Path, help="spectrograms for the parity check (default: the model's)")
    parser.add_argument("--max-windows", type=int, default=400, help="test windows compared (default: %(default)s)")
    parser.add_argument("--min-agreement", type=float, default=0.99, help="default: %(default)s")
    args = parser.parse_args(argv)
    runtime.setup()
    model, info = load_model(args.model)
    out_dir = args.out_dir or args.model.parent
    images = parity_images(info, args.data_dir or Path(info.data_dir), args.max_windows)
    record = export(model, args.model, info.sha256, images, args.weights, out_dir)
    n_predicted = record["classes_predicted"]
    print(f"{len(images)} test windows; the Keras model predicts {n_predicted} of {len(CLASSES)} classes on them"
          + (" (agreement is a weak check for a model this undecided)" if n_predicted < 3 else ""))
    print(f"{'file':36} {'MB':>6} {'max |dp|':>10} {'top class agrees':>17}")
    for weights in args.weights:
        result = record["exports"][weights]
        print(f"{Path(result['file']).name:36} {result['bytes'] / 1e6:6.2f} {result['max_abs_diff']:10.2e} "
              f"{result['argmax_agreement']:17.2%}")
    print(f"LiteRT files in {out_dir}/, parity figures in {record_path(args.model)}")
    failed = [w for w in args.weights if record["exports"][w]["argmax_agreement"] < args.min_agreement]
    if failed:
        print(f"parity NOT kept (top class agrees < {args.min_agreement:.0%}): {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    run_main(main)
