"""Find every cry in long recordings (a day from a wearable recorder, a study of hundreds of days).

Each recording is streamed from disk through the live path (the detector, its live settings and
the monitor's episode rules: cry.live_path, cry.decision), as fast as the cores allow; long ones
are cut into pieces scored in parallel and decided in order, with the same results as one pass.
No reason model is used: a scan says where the crying is and how much, not why.

For each recording, under --out (named by its path below the recordings' common folder):
  <name>.segments.csv   crying segments: onset, offset, duration (seconds), mean probability
  <name>.labels.txt     the same as an Audacity label track (ELAN: import as tab-delimited text)
  <name>.hourly.csv     crying minutes in each hour of the recording
  <name>.timeline.png   those minutes and the segments on the recording's time line
  <name>.scan.json      written last: the scan is finished (a rerun skips it)
and summary.csv over all recordings; with annotation files beside the recordings (<name>.txt,
an Audacity label track, or <name>.csv: onset, offset, label; labels starting with "cry" are the
cries), agreement.json and agreement.md (cries caught, latency, false alarms per hour, event F1).

  python scan_recordings.py study/ --out scans/                  # all cores of this machine
  python scan_recordings.py day1.flac day2.mp3 --out scans/ --workers 1
  python scan_recordings.py /shared/study --out /shared/scans --ray auto   # on a Ray cluster
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from cry import runtime
from cry.files import UserError, run_main
from cry.params import DEFAULT_DETECTOR
from cry.pretrained import PRETRAINED_DIR

PIECE_SECONDS = 600.0  # a piece of a long recording: enough work to be worth a task, small enough to share


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("inputs", nargs="+", type=Path, metavar="DIR_OR_FILE",
                        help="recordings, or folders searched for them (any depth)")
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="where the results go")
    parser.add_argument("--detector", type=Path, default=DEFAULT_DETECTOR, help="default: %(default)s")
    parser.add_argument("--pretrained-dir", type=Path, help=f"YAMNet's folder (default: {PRETRAINED_DIR})")
    parser.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)),
                        help="processes on this machine (default: one per core, %(default)s)")
    parser.add_argument("--ray", metavar="ADDRESS", help="score on the Ray cluster at ADDRESS (host:port of its "
                        "head, or 'auto' on a node of it) instead; recordings and models must be at the same "
                        "paths on every node")
    parser.add_argument("--piece-minutes", type=float, default=PIECE_SECONDS / 60,
                        help="long recordings are scored in pieces of this many minutes (default: %(default)g)")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    runtime.setup()
    from cry.cluster import executor_for
    from cry.detect import scanning
    from cry.detect.scan_report import write_summary

    if args.piece_minutes <= 0:
        raise UserError("--piece-minutes must be > 0")
    if not args.detector.is_file():
        raise UserError(f"{args.detector}: no detector file; train one with `python train_model.py`")
    recordings = scanning.find_recordings(args.inputs)
    models = scanning.ScanModels.of(args.detector, args.pretrained_dir or PRETRAINED_DIR)
    executor = executor_for(args.ray, args.workers)
    where = f"the Ray cluster at {args.ray}" if args.ray else f"{executor.workers} local worker(s)"
    print(f"scanning {len(recordings)} recordings on {where}", file=sys.stderr)
    try:
        markers, failed = scanning.scan(recordings, args.out, models, executor, 60 * args.piece_minutes)
    finally:
        executor.shutdown()
    agreement = scanning.agreement_with_annotations(recordings, markers, args.out)
    summary = write_summary(args.out, markers, agreement)
    hours = sum(m["seconds"] for m in markers) / 3600
    print(f"{len(markers)} recordings ({hours:.2f} h) scanned, {failed} failed; results in {args.out}/, "
          f"summary in {summary}" + (f", agreement in {args.out / 'agreement.md'}" if agreement else ""),
          file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    run_main(main)
