"""The microphone as a source: an input device at its own rate, its audio callback only copying samples.

It has the interface of cry.stream's sources (samplerate, ring, label, fast, active, start,
close), so the live path listens to it as it listens to a recording.
"""
from __future__ import annotations

from cry.files import UserError
from cry.stream import RING_SECONDS, RingBuffer


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
