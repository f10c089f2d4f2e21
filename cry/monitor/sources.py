"""The microphone as a source: an input device at its own rate, its audio callback only copying samples.

It has the interface of cry.stream's sources (samplerate, ring, label, fast, active, start,
close), so the live path listens to it as it listens to a recording. A device that stops
delivering (unplugged, the sound server gone) is watched for on a thread of its own: the
stream is closed, the ring gets digital zeros in real time (the clock runs on, every hop
still gets an answer: cry.deafness says "not listening", with `problem`), and the device is
opened again every RETRY_SECONDS until it delivers; then listening goes on by itself.
"""
from __future__ import annotations

import sys
import threading
import time

import numpy as np

from cry.files import UserError
from cry.stream import RING_SECONDS, RingBuffer

LOST_SECONDS = 1.5   # no sample for this long: the device is gone (listen's own stall limit is longer)
RETRY_SECONDS = 2.0  # a lost device is opened again this often
STEP_SECONDS = 0.05  # the watcher's pace: zeros written, checks made


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
        self.problem: str | None = None  # why the device is not heard, while it is lost
        self._closing = threading.Event()
        self._blocks = 0                 # blocks the device delivered (the ring also gets the zeros written here)
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

    def _open(self) -> None:
        try:
            self._stream = self._sd.InputStream(device=self.device, channels=1, samplerate=self.samplerate,
                                                dtype="float32", callback=self._callback)
            self._stream.start()
        except (ValueError, self._sd.PortAudioError) as exc:  # busy device
            self._stream = None
            raise self._no_device(exc) from None

    def _callback(self, indata, frames, time_info, status) -> None:
        self._blocks += 1
        self.ring.callback(indata, frames, time_info, status)

    def start(self) -> None:
        """Open the device (a UserError if it cannot be, now), then watch it for the rest of the night."""
        self._open()
        threading.Thread(target=self._watch, name="microphone", daemon=True).start()

    def _watch(self) -> None:
        seen, seen_at = self._blocks, time.monotonic()
        while not self._closing.wait(STEP_SECONDS):
            stream = self._stream
            if self._blocks != seen:
                seen, seen_at = self._blocks, time.monotonic()
            elif stream is None or not stream.active or time.monotonic() - seen_at > LOST_SECONDS:
                self._lost()
                seen, seen_at = self._blocks, time.monotonic()

    def _lost(self) -> None:
        """Zeros in real time and a retry every RETRY_SECONDS, until the device delivers again."""
        lost_at, tried_at = time.monotonic(), -float("inf")
        self.problem = "the input device is gone (unplugged, or the sound server stopped?)"
        filled = int(LOST_SECONDS * self.samplerate)  # the time it took to notice, first: the clock never stalls
        self.ring.write(np.zeros(filled, np.float32))
        lost_at -= LOST_SECONDS
        print(f"\nwarning: {self.label}: {self.problem}; not listening, retrying every {RETRY_SECONDS:g} s",
              file=sys.stderr, flush=True)
        self._close_stream()  # a stream whose server is gone may take a while to close
        opened_with = None  # self._blocks when the device was opened again
        while not self._closing.is_set():
            if self._stream is not None and self._blocks != opened_with:
                break  # the new stream delivers
            due = int((time.monotonic() - lost_at) * self.samplerate) - filled
            self.ring.write(np.zeros(due, np.float32))
            filled += due
            if self._stream is None and time.monotonic() - tried_at >= RETRY_SECONDS:
                tried_at, opened_with = time.monotonic(), self._blocks
                self._reopen()
            elif self._stream is not None and time.monotonic() - tried_at > LOST_SECONDS:
                self._close_stream()  # opened, but silent: try again later
            time.sleep(STEP_SECONDS)
        if not self._closing.is_set():
            self.problem = None
            print(f"\n{self.label}: back after {time.monotonic() - lost_at:.0f} s; listening again",
                  file=sys.stderr, flush=True)

    def _reopen(self) -> None:
        """PortAudio knows only the devices there when it started, so it starts again first (the
        way sounddevice's author gives for a device plugged in later; no stream is open now)."""
        try:
            self._sd._terminate()
            self._sd._initialize()
        except (AttributeError, self._sd.PortAudioError):
            pass
        try:
            self._open()
        except UserError:
            pass

    def _close_stream(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            try:
                stream.close()
            except self._sd.PortAudioError:
                pass  # a stream whose device is gone may not close cleanly; it is dropped all the same

    @property
    def active(self) -> bool:
        """Until close(): a lost device is retried, never the end of listening."""
        return not self._closing.is_set()

    def close(self) -> None:
        self._closing.set()
        self._close_stream()
