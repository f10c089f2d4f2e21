"""Listen to the microphone and say, live, whether a baby is crying and the most likely reason.

The audio callback only copies samples into a ring buffer. Every --hop seconds the main loop
resamples the newest window from the device's rate to the model's, makes the same image the
model was trained on, and decides in three steps, saying which decided: too quiet (no model
call) -> silence; the model says silence -> silence; otherwise the reason, from the mean of the
last few windows, or "crying, reason uncertain" with the top 3 when that mean's top probability
is below the threshold fitted on validation babies.

  python real_time_prediction.py                          # default microphone
  python real_time_prediction.py --list-devices
  python real_time_prediction.py --file cry.wav --fast --log events.csv
"""
from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # tiny matrices: BLAS threads only fight the model for cores

import argparse
import collections
import csv
import sys
import threading
import time
import types
from pathlib import Path

import numpy as np

from cry.audio import resample, rms_dbfs
from cry.features import window_to_image
from cry.files import UserError, atomic_output, run_main
from cry.metrics import decide, reason_shares
from cry.model import calibrate, calibration_of, fastest_predictor, load_model, predict_probabilities
from cry.params import CLASSES

SILENCE = CLASSES.index("silence")
STALL_SECONDS = 2.0  # no samples for this long while listening: the input device is gone
RING_SECONDS = 10.0  # audio kept: a window, plus room for a slow hop or the model loading
NO_FLAGS = types.SimpleNamespace(input_overflow=False)


class RingBuffer:
    """The newest `capacity` samples of a stream, and how many were ever written (the clock).

    The audio callback only copies in (no model, no I/O, so it never makes the device wait);
    the classifier reads the newest window. A lock keeps a read from seeing half a write.
    """

    def __init__(self, capacity: int, keep: bool = False):
        self.data = np.zeros(capacity, np.float32)  # [capacity], circular
        self.total = self.overflows = 0
        self.kept = [] if keep else None            # every block, for --save-audio
        self._lock = threading.Lock()

    def callback(self, indata, frames, time_info, status) -> None:
        """sounddevice.InputStream callback; indata: float32 [frames, channels]."""
        self.overflows += bool(status.input_overflow)  # counted and reported, never fatal
        self.write(indata[:, 0])

    def write(self, samples: np.ndarray) -> None:
        n_all, cap = len(samples), len(self.data)
        samples = samples[-cap:]  # a block longer than the buffer keeps only its end
        with self._lock:
            start = (self.total + n_all - len(samples)) % cap
            first = min(len(samples), cap - start)
            self.data[start:start + first] = samples[:first]
            self.data[:len(samples) - first] = samples[first:]
            self.total += n_all
            if self.kept is not None:
                self.kept.append(np.array(samples, np.float32))

    def read_last(self, n: int) -> tuple[np.ndarray, int]:
        """(the newest n samples [n], stream position of their end); zeros before the start."""
        with self._lock:
            return self.data[np.arange(self.total - n, self.total) % len(self.data)], self.total


class FileSource:
    """A recording fed to a ring buffer's callback in blocks, like a microphone: in real time on
    a thread, or (fast=True) one block per pump() as quickly as the classifier keeps up."""

    def __init__(self, path: Path, ring_seconds: float, fast: bool, keep: bool = False, block_seconds=0.02):
        import soundfile as sf

        if not Path(path).is_file():
            raise UserError(f"{path}: no such file")
        try:
            audio, self.samplerate = sf.read(str(path), dtype="float32", always_2d=True)
        except Exception as exc:
            raise UserError(f"{path}: cannot read audio ({str(exc).splitlines()[0][:120]})") from None
        self.audio = audio.mean(axis=1, keepdims=True)  # [n, 1], like a one-channel stream
        self.ring, self.label = RingBuffer(int(ring_seconds * self.samplerate), keep), str(path)
        self.block, self.position, self.fast = max(1, int(block_seconds * self.samplerate)), 0, fast
        self._stop = threading.Event()

    @property
    def active(self) -> bool:
        return self.position < len(self.audio) and not self._stop.is_set()

    def pump(self) -> None:
        block = self.audio[self.position:self.position + self.block]
        self.position += len(block)
        self.ring.callback(block, len(block), None, NO_FLAGS)

    def start(self) -> None:
        def play():  # real time: each block is delivered when it would have been recorded
            t0 = time.monotonic()
            while self.active:
                self.pump()
                time.sleep(max(0.0, t0 + self.position / self.samplerate - time.monotonic()))
        if not self.fast:
            threading.Thread(target=play, daemon=True).start()

    def close(self) -> None:
        self._stop.set()


def import_sounddevice():
    """sounddevice, or one line saying what to install."""
    try:
        import sounddevice as sd
    except OSError as exc:  # the Python package is there, the PortAudio library is not
        raise UserError(f"cannot load PortAudio ({exc}); install it (Debian/Ubuntu: sudo apt-get install "
                        f"libportaudio2; macOS: brew install portaudio), or try --file X.wav") from None
    return sd


def open_microphone(sd, device, ring_seconds: float, keep: bool = False):
    """A started InputStream at the device's own rate, or one UserError saying what to do."""
    try:
        info = sd.query_devices(device, kind="input")
        ring = RingBuffer(int(ring_seconds * info["default_samplerate"]), keep)
        stream = sd.InputStream(device=device, channels=1, samplerate=info["default_samplerate"],
                                dtype="float32", callback=ring.callback)
        stream.start()
    except (ValueError, sd.PortAudioError) as exc:  # no device, no such device, busy device
        inputs = [d["name"] for d in sd.query_devices() if d["max_input_channels"] > 0]
        if not inputs:
            raise UserError(f"no audio input device found ({exc}); plug in a microphone, or try --file X.wav") from None
        raise UserError(f"cannot use input device {'(default)' if device is None else device} ({exc}); close "
                        f"programs using it, or choose one with --device: {', '.join(inputs)}") from None
    stream.ring, stream.label = ring, f"input device {info['name']!r}"
    return stream


def fit_length(audio: np.ndarray, n: int) -> np.ndarray:
    """Exactly n samples: the newest ones, zero-padded at the front (resampling may be 1 off)."""
    return np.pad(audio, (max(0, n - len(audio)), 0))[-n:]


def window_probabilities(window, rate, model, settings):
    """(level in dBFS, model probabilities [n_classes] or None when too quiet to need the model).

    window: float32 [window_seconds * rate] at the device rate.
    """
    window = fit_length(resample(np.nan_to_num(window), rate, settings.sample_rate_hz), settings.window_samples)
    dbfs = rms_dbfs(window)
    if dbfs < settings.quiet_dbfs:
        return dbfs, None
    return dbfs, predict_probabilities(model, window_to_image(window, settings)[None])[0]


class Decider:
    """The three-step decision over the last few windows; pure (no audio, no model).

    Each window the model heard is decided on its own (metrics.decide), then the majority of
    the last `smooth` heard decides crying or silence, so one pause or one odd window does not end
    a crying episode; the reason is the mean over the crying windows among them.
    """

    def __init__(self, threshold: float, calibration: dict | None = None, smooth: int = 4):
        self.threshold, self.calibration = threshold, calibration
        self.history = collections.deque(maxlen=smooth)  # calibrated probabilities; None = quiet window

    def update(self, probabilities) -> tuple[str, np.ndarray]:
        """(state, probabilities [n_classes]); state: "quiet" (this window, by the energy gate),
        "silence" (the model's), "crying" (with the reason's share of the cry at least the
        threshold) or "uncertain". For crying states the probabilities are the reasons' shares."""
        self.history.append(None if probabilities is None else
                            calibrate(np.asarray(probabilities)[None], self.calibration)[0])
        heard = np.array([p for p in self.history if p is not None])
        if probabilities is None or len(heard) == 0:
            return "quiet", np.eye(len(CLASSES))[SILENCE]
        silent = decide(heard, (self.calibration or {}).get("silence_threshold")) == SILENCE
        if silent.mean() > 0.5:  # a tie stays crying: a missed cry costs a parent more than a false alarm
            return "silence", heard.mean(axis=0)
        reasons = reason_shares(heard[~silent].mean(axis=0))[0]
        return ("crying" if reasons.max() >= self.threshold else "uncertain"), reasons


class Episodes:
    """Start and end of crying episodes, with the reason averaged over the whole episode."""

    def __init__(self):
        self.count, self.sum = 0, None

    def update(self, seconds: float, state: str, mean):
        """An event (seconds, "start" or "end", reason, probability), or None."""
        crying = state in ("crying", "uncertain")
        if crying and self.sum is None:
            self.count, self.sum = self.count + 1, mean.copy()
            return seconds, "start", CLASSES[mean.argmax()], float(mean.max())
        if crying:
            self.sum += mean
        elif self.sum is not None:
            share, self.sum = self.sum / self.sum.sum(), None
            share[SILENCE] = 0  # the reason is a cry class
            return seconds, "end", CLASSES[share.argmax()], float(share.max())
        return None


def describe(state: str, mean: np.ndarray, dbfs: float) -> str:
    """The human line: state, top class and probability, top 3."""
    if state == "quiet":
        return f"silence (quiet, {dbfs:.0f} dBFS)"
    top3 = ", ".join(f"{CLASSES[i]} {mean[i]:.2f}" for i in np.argsort(mean)[::-1][:3])
    head = {"silence": "silence (model)", "uncertain": "crying, reason uncertain"}.get(
        state, f"crying: {CLASSES[mean.argmax()]} {mean.max():.2f}")
    return f"{head:<28} top 3: {top3}"


def listen(source, classify, window_seconds: float, hop_seconds: float, duration=None, on_window=print):
    """Every hop, classify the newest window: on_window(end_sample, classify(window)).

    Returns why it stopped: "duration", "ended" (file over, or stream stopped) or "stalled".
    """
    ring, rate = source.ring, source.samplerate
    window_n, hop_n = int(round(window_seconds * rate)), max(1, int(round(hop_seconds * rate)))
    next_end, seen, seen_at = window_n, 0, time.monotonic()  # the first answer needs a full window
    stop_at = np.inf if duration is None else ring.total + duration * rate
    while True:
        total = ring.total
        if total >= stop_at:
            return "duration"
        if total >= next_end:
            window, end = ring.read_last(window_n)  # [window_n]: the newest, even if we fell behind
            on_window(end, classify(window))
            next_end = end + hop_n
        elif not source.active:
            return "ended"
        elif total != seen:
            seen, seen_at = total, time.monotonic()
        elif time.monotonic() - seen_at > STALL_SECONDS:
            return "stalled"
        elif getattr(source, "fast", False):
            source.pump()
        else:
            time.sleep(0.01)


def check_audio_output(path: Path) -> None:
    """--save-audio must name a .wav or .flac in a folder we can write to."""
    if path.suffix.lower() not in (".wav", ".flac"):
        raise UserError(f"{path}: --save-audio writes .wav or .flac files")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir() or not os.access(folder, os.W_OK):
        raise UserError(f"{path}: cannot write (no such folder, or no permission)")


def csv_writer(path: Path, header: list, mode: str):
    """(file, writer); the header goes into a new or empty file."""
    try:
        f = open(path, mode, newline="")
    except OSError as exc:
        raise UserError(f"{path}: cannot write ({exc.strerror})") from None
    writer = csv.writer(f)
    if f.tell() == 0:
        writer.writerow(header)
    return f, writer


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=Path("models/cry_model.keras"), help="default: %(default)s")
    parser.add_argument("--list-devices", action="store_true", help="list audio devices and exit")
    parser.add_argument("--device", help="input device number or part of its name (default: the system's)")
    parser.add_argument("--file", type=Path, help="play this recording through the same path instead")
    parser.add_argument("--fast", action="store_true", help="with --file: as fast as possible, not real time")
    parser.add_argument("--hop", type=float, default=0.5, help="seconds between answers (default: %(default)s)")
    parser.add_argument("--smooth", type=int, default=4, help="windows averaged (default: %(default)s)")
    parser.add_argument("--threshold", type=float, help="uncertain below this (default: the model's, from validation)")
    parser.add_argument("--duration", type=float, help="stop after listening this many seconds (of audio)")
    parser.add_argument("--log", type=Path, help="append crying episodes (start, end, reason) to this CSV")
    parser.add_argument("--trace", type=Path, help="write every window's level and raw probabilities to this CSV")
    parser.add_argument("--save-audio", type=Path, help="write what was heard to this WAV, at the device rate")
    args = parser.parse_args(argv)
    if args.list_devices:
        print(import_sounddevice().query_devices())
        return 0
    if args.hop <= 0 or args.smooth < 1:
        raise UserError("--hop must be > 0 and --smooth at least 1")
    if args.save_audio:  # now, not after an hour of listening
        check_audio_output(args.save_audio)

    device = int(args.device) if args.device and args.device.isdigit() else args.device
    source = (FileSource(args.file, RING_SECONDS, args.fast, args.save_audio is not None) if args.file else
              open_microphone(import_sounddevice(), device, RING_SECONDS, args.save_audio is not None))  # fails fast
    model, info = load_model(args.model)
    model, settings = fastest_predictor(args.model, model, info), info["settings"]
    if settings.window_seconds > RING_SECONDS:
        raise UserError(f"{args.model}: windows of {settings.window_seconds} s exceed the {RING_SECONDS} s buffer")
    threshold = args.threshold if args.threshold is not None else info.get("uncertain_threshold", 0.5)
    decider, episodes = Decider(threshold, calibration_of(info), smooth=args.smooth), Episodes()
    window_probabilities(np.full(settings.window_samples, 0.1), settings.sample_rate_hz, model, settings)  # warm-up
    log = csv_writer(args.log, ["time", "stream_seconds", "event", "reason", "probability"], "a") if args.log else None
    trace = csv_writer(args.trace, ["end_sample", "rate_hz", "dbfs", "state", *CLASSES], "w") if args.trace else None
    rate, tty = int(source.samplerate), sys.stdout.isatty()

    def log_event(event):
        if event and log:
            log[1].writerow([time.strftime("%Y-%m-%dT%H:%M:%S"), f"{event[0]:.1f}", *event[1:3], f"{event[3]:.3f}"])
            log[0].flush()

    def on_window(end, result):
        dbfs, probabilities = result
        state, mean = decider.update(probabilities)
        line = f"{time.strftime('%H:%M:%S')} {end / rate:7.1f} s  {describe(state, mean, dbfs)}"
        print(f"\r{line:<110}" if tty else line, end="" if tty else "\n", flush=True)  # one updating line
        if trace:  # raw model output, before temperature and smoothing; empty when quiet
            raw = [""] * len(CLASSES) if probabilities is None else probabilities
            trace[1].writerow([end, rate, f"{dbfs:.2f}", state, *raw])
        log_event(episodes.update(end / rate, state, mean))

    print(f"listening to {source.label} at {rate} Hz, an answer every {args.hop} s; Ctrl-C ends",
          file=sys.stderr, flush=True)
    why = "interrupted"
    try:
        source.start()
        why = listen(source, lambda w: window_probabilities(w, rate, model, settings), settings.window_seconds,
                     args.hop, args.duration, on_window)
    except KeyboardInterrupt:
        pass
    finally:
        source.close()
    log_event(episodes.update(source.ring.total / rate, "quiet", None))  # close an episode still open
    print(("\n" if tty else "") + f"{why}: {source.ring.total / rate:.1f} s heard, {episodes.count} crying "
          f"episodes, {source.ring.overflows} input overflows", file=sys.stderr)
    for path, f in ((args.log, log), (args.trace, trace)):
        if f:
            f[0].close()
            print(f"wrote {path}", file=sys.stderr)
    if args.save_audio:
        import soundfile as sf

        with atomic_output(args.save_audio) as tmp:
            sf.write(str(tmp), np.concatenate([np.zeros(0, np.float32), *source.ring.kept]), rate,
                     format=args.save_audio.suffix[1:].upper())
        print(f"wrote {args.save_audio}", file=sys.stderr)
    if why == "stalled" or (why == "ended" and not args.file):
        print("error: the input device stopped delivering audio (unplugged, or taken by another program?)",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    run_main(main)
