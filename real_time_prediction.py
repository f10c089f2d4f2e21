"""Listen to the microphone and say, live, whether a baby is crying and, as far as the model honestly knows, why.

Every --hop seconds the newest window goes through the package's live path (cry.monitor):
too quiet -> "quiet" (no model call); not a cry -> "not crying" and what was heard; a cry ->
"crying" with the reason only where held-out babies showed the model knows it, otherwise
"reason uncertain" and the top guesses. Answers go to the terminal and, when asked, to a
CSV of episodes, a per-window trace, the web page and MQTT.

  python real_time_prediction.py                          # default microphone
  python real_time_prediction.py --list-devices
  python real_time_prediction.py --file cry.wav --fast --log events.csv
"""
from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # tiny matrices: BLAS threads only fight the models for cores

import argparse
import sys
from pathlib import Path

import numpy as np

from cry import mqtt, web
from cry.detector import DEFAULT_PATH as DETECTOR_PATH
from cry.detector import load_detector
from cry.files import UserError, atomic_output, run_main
from cry.live import RING_SECONDS, MicrophoneSource, file_source, import_sounddevice
from cry.monitor import Scorer, decider_factory, run
from cry.outputs import EpisodeLog, TerminalLine, Trace
from cry.params import DEFAULT_MODEL
from cry.pretrained import PRETRAINED_DIR


def check_audio_output(path: Path) -> None:
    """--save-audio must name a .wav or .flac in a folder we can write to."""
    if path.suffix.lower() not in (".wav", ".flac"):
        raise UserError(f"{path}: --save-audio writes .wav or .flac files")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir() or not os.access(folder, os.W_OK):
        raise UserError(f"{path}: cannot write (no such folder, or no permission)")


def save_audio(source, path: Path) -> None:
    import soundfile as sf

    with atomic_output(path) as tmp:
        sf.write(str(tmp), np.concatenate([np.zeros(0, np.float32), *source.ring.kept]), source.samplerate,
                 format=path.suffix[1:].upper())
    print(f"wrote {path}", file=sys.stderr)


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="default: %(default)s")
    parser.add_argument("--list-devices", action="store_true", help="list audio devices and exit")
    parser.add_argument("--device", help="input device number or part of its name (default: the system's)")
    parser.add_argument("--file", type=Path, help="play this recording through the same path instead")
    parser.add_argument("--fast", action="store_true", help="with --file: as fast as possible, not real time")
    parser.add_argument("--hop", type=float, default=0.5, help="seconds between answers (default: %(default)s)")
    parser.add_argument("--smooth", type=int, default=4, help="windows in the majority vote (default: %(default)s)")
    parser.add_argument("--threshold", type=float, help="claim a reason from this share of the cry up (default: "
                        "the model's, from validation babies); reasons are claimed at all only where held-out "
                        "babies showed skill, else 'reason uncertain'")
    parser.add_argument("--duration", type=float, help="stop after listening this many seconds (of audio)")
    parser.add_argument("--log", type=Path, help="append crying episodes (start, end, reason) to this CSV")
    parser.add_argument("--trace", type=Path, help="write every window's state and scores to this CSV")
    parser.add_argument("--save-audio", type=Path, help="write what was heard to this WAV, at the device rate")
    parser.add_argument("--detector", default=str(DETECTOR_PATH), help="the crying detector (YAMNet + a trained "
                        "head), or 'none': the reason model alone decides crying (default: %(default)s)")
    parser.add_argument("--pretrained-dir", type=Path, help=f"YAMNet's folder (default: {PRETRAINED_DIR})")
    web.add_arguments(parser)
    mqtt.add_arguments(parser)
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.list_devices:
        print(import_sounddevice().query_devices())
        return 0
    if args.hop <= 0 or args.smooth < 1:
        raise UserError("--hop must be > 0 and --smooth at least 1")
    if args.save_audio:  # now, not after a night of listening
        check_audio_output(args.save_audio)
    keep = args.save_audio is not None
    device = int(args.device) if args.device and args.device.isdigit() else args.device
    source = file_source(args.file, args.fast, keep) if args.file else MicrophoneSource(device, keep)  # fails fast
    sensors = mqtt.outputs_from_args(args)  # Home Assistant's, when asked; wrong credentials fail fast too
    page = web.Page(args)  # --serve, --history: checked, and the port taken, before the model loads
    detector = None if args.detector == "none" else load_detector(Path(args.detector), args.pretrained_dir)
    scorer, info = Scorer.from_model_file(args.model, detector)
    if scorer.settings.window_seconds > RING_SECONDS:
        raise UserError(f"{args.model}: windows of {scorer.settings.window_seconds} s exceed the "
                        f"{RING_SECONDS} s buffer")
    make_decider = decider_factory(scorer, info, args.smooth, args.threshold)  # also one per uploaded recording
    decider, episodes = make_decider()
    scorer(np.full(scorer.settings.window_samples, 0.1, np.float32), scorer.settings.sample_rate_hz)  # warm-up

    outputs = [TerminalLine()]
    if args.log:
        outputs.append(EpisodeLog(args.log))
    if args.trace:
        outputs.append(Trace(args.trace))
    outputs += page.outputs(scorer, make_decider)  # the episode history and the page, when asked
    outputs += sensors
    print(f"listening to {source.label} at {source.samplerate} Hz, an answer every {args.hop} s; Ctrl-C ends",
          file=sys.stderr, flush=True)
    why = run(source, scorer, decider, episodes, outputs, scorer.settings.window_seconds, args.hop, args.duration)
    for output in outputs:
        output.close()
    print(f"{why}: {source.ring.total / source.samplerate:.1f} s heard, {episodes.count} crying episodes, "
          f"{source.ring.overflows} input overflows", file=sys.stderr)
    for output in outputs:
        if getattr(output, "path", None):
            print(f"wrote {output.path}", file=sys.stderr)
    if args.save_audio:
        save_audio(source, args.save_audio)
    if why == "stalled" or (why == "ended" and not args.file):
        print("error: the input device stopped delivering audio (unplugged, or taken by another program?)",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    run_main(main)
