"""Audio as it arrives: a ring buffer, sources with one interface (microphone, recording), and the hop loop.

A source has `samplerate`, `ring` (a RingBuffer its audio lands in), `label`, `active`,
`start()` and `close()`. The microphone's audio callback only copies samples into the ring
(no model, no I/O), so the device never waits on the classifier.
"""
from __future__ import annotations

import threading
import time
import types
from pathlib import Path

import numpy as np

from cry.files import UserError

STALL_SECONDS = 2.0  # no samples for this long while listening: the input device is gone
RING_SECONDS = 10.0  # audio kept: a window, plus room for a slow hop or the models loading
_NO_FLAGS = types.SimpleNamespace(input_overflow=False)


class RingBuffer:
    """The newest `capacity` samples of a stream, and how many were ever written (the clock).

    A lock keeps a read from seeing half a write. With keep=True every block is also kept,
    for --save-audio.
    """

    def __init__(self, capacity: int, keep: bool = False):
        self.data = np.zeros(capacity, np.float32)  # [capacity], circular
        self.total = self.overflows = 0
        self.kept = [] if keep else None
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


class ArraySource:
    """Audio in memory fed to a ring in blocks, like a microphone: in real time on a thread, or
    (fast=True) one block per pump() as quickly as the classifier keeps up."""

    def __init__(self, audio: np.ndarray, samplerate: int, label: str, fast: bool = False, keep: bool = False,
                 ring_seconds: float = RING_SECONDS, block_seconds: float = 0.02):
        self.audio = np.asarray(audio, np.float32).reshape(-1, 1)  # [n, 1], like a one-channel stream
        self.samplerate, self.label, self.fast = samplerate, label, fast
        self.ring = RingBuffer(int(ring_seconds * samplerate), keep)
        self.block, self.position = max(1, int(block_seconds * samplerate)), 0
        self._stop = threading.Event()

    @property
    def active(self) -> bool:
        return self.position < len(self.audio) and not self._stop.is_set()

    def pump(self) -> None:
        block = self.audio[self.position:self.position + self.block]
        self.position += len(block)
        self.ring.callback(block, len(block), None, _NO_FLAGS)

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


def file_source(path: Path, fast: bool = False, keep: bool = False) -> ArraySource:
    """A recording as a source (mixed to mono, at its own rate), or one UserError saying why not."""
    import soundfile as sf

    if not Path(path).is_file():
        raise UserError(f"{path}: no such file")
    try:
        audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:  # libsndfile says why in its own words
        raise UserError(f"{path}: cannot read audio ({str(exc).splitlines()[0][:120]})") from None
    if len(audio) == 0:
        raise UserError(f"{path}: no audio samples")
    return ArraySource(audio.mean(axis=1), rate, str(path), fast, keep)


def import_sounddevice():
    """sounddevice, or one line saying what to install."""
    try:
        import sounddevice as sd
    except OSError as exc:  # the Python package is there, the PortAudio library is not
        raise UserError(f"cannot load PortAudio ({exc}); install it (Debian/Ubuntu: sudo apt-get install "
                        f"libportaudio2; macOS: brew install portaudio), or try --file X.wav") from None
    return sd


class MicrophoneSource:
    """An input device at its own rate; start() opens it, or raises one UserError saying what to do."""

    fast = False

    def __init__(self, device=None, keep: bool = False, ring_seconds: float = RING_SECONDS):
        self._sd = import_sounddevice()
        self.device, self._stream = device, None
        try:
            info = self._sd.query_devices(device, kind="input")
        except (ValueError, self._sd.PortAudioError) as exc:  # no device, no such device
            raise self._no_device(exc) from None
        self.samplerate, self.label = int(info["default_samplerate"]), f"input device {info['name']!r}"
        self.ring = RingBuffer(int(ring_seconds * self.samplerate), keep)

    def _no_device(self, exc) -> UserError:
        inputs = [d["name"] for d in self._sd.query_devices() if d["max_input_channels"] > 0]
        if not inputs:
            return UserError(f"no audio input device found ({exc}); plug in a microphone, or try --file X.wav")
        return UserError(f"cannot use input device {'(default)' if self.device is None else self.device} ({exc}); "
                         f"close programs using it, or choose one with --device: {', '.join(inputs)}")

    def start(self) -> None:
        try:
            self._stream = self._sd.InputStream(device=self.device, channels=1, samplerate=self.samplerate,
                                                dtype="float32", callback=self.ring.callback)
            self._stream.start()
        except (ValueError, self._sd.PortAudioError) as exc:  # busy device
            raise self._no_device(exc) from None

    @property
    def active(self) -> bool:
        return self._stream is not None and self._stream.active

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()


def listen(source, on_window, window_seconds: float, hop_seconds: float, duration: float | None = None) -> str:
    """Every hop, hand the newest window to on_window(end_sample, window [window_seconds * rate]).

    The first answer needs a full window. A classifier that falls behind gets the newest
    window, not a backlog. Returns why it stopped: "duration", "ended" (file over, or the
    stream stopped) or "stalled" (the device delivers nothing).
    """
    ring, rate = source.ring, source.samplerate
    window_n, hop_n = int(round(window_seconds * rate)), max(1, int(round(hop_seconds * rate)))
    next_end, seen, seen_at = window_n, 0, time.monotonic()
    stop_at = np.inf if duration is None else ring.total + duration * rate
    while True:
        total = ring.total
        if total >= stop_at:
            return "duration"
        if total >= next_end:
            window, end = ring.read_last(window_n)
            on_window(end, window)
            next_end = end + hop_n
        elif not source.active:
            return "ended"
        elif total != seen:
            seen, seen_at = total, time.monotonic()
        elif time.monotonic() - seen_at > STALL_SECONDS:
            return "stalled"
        elif source.fast:
            source.pump()
        else:
            time.sleep(0.01)
