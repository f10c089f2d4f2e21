"""Audio as it arrives: a ring buffer, sources with one interface, and the hop loop over them.

A source has `samplerate`, `ring` (a RingBuffer its audio lands in), `label`, `fast`, `active`,
`start()` and `close()`, and, when `fast`, `pump()` (deliver the next block now). A microphone
(cry.monitor.sources) fills its ring from the audio callback; a recording here fills it block
by block, streamed from disk, in real time on a thread or as fast as the classifier keeps up.
`listen` is the one hop loop: live, for a file, and for every clip an evaluation plays.
"""
from __future__ import annotations

import threading
import time
import types
from pathlib import Path

import numpy as np

from cry.audio import AudioError, open_audio
from cry.files import UserError

STALL_SECONDS = 5.0  # no samples for this long while listening: the input device is gone (and not replaced)
RING_SECONDS = 10.0  # audio kept: a window, plus room for a slow hop or the models loading
BLOCK_SECONDS = 0.02  # a recording is delivered in blocks of this length, as a microphone would
NO_FLAGS = types.SimpleNamespace(input_overflow=False)


class RingBuffer:
    """The newest `capacity` samples of a stream, and how many were ever written (the clock).

    A lock keeps a read from seeing half a write. With keep=True every block is also kept (in
    memory: for tests and short clips); `tap`, when set, gets every block as it is written
    (--save-audio streams them to disk: cry.monitor.recording) and must not block.
    """

    def __init__(self, capacity: int, keep: bool = False):
        self.data = np.zeros(capacity, np.float32)  # [capacity], circular
        self.total = self.overflows = 0
        self.kept = [] if keep else None
        self.tap = None
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
            if self.tap is not None:
                self.tap(samples)

    def read_last(self, n: int) -> tuple[np.ndarray, int]:
        """(the newest n samples [n], stream position of their end); zeros before the start."""
        with self._lock:
            return self.data[np.arange(self.total - n, self.total) % len(self.data)], self.total


class BlockSource:
    """Blocks of mono float32 audio [n] (any iterator) delivered to a ring like a microphone's."""

    def __init__(self, blocks, samplerate: int, label: str, fast: bool = False, keep: bool = False,
                 ring_seconds: float = RING_SECONDS):
        self.samplerate, self.label, self.fast = samplerate, label, fast
        self.ring = RingBuffer(int(ring_seconds * samplerate), keep)
        self._blocks, self._done, self._delivered = iter(blocks), False, 0
        self._stop = threading.Event()

    @property
    def active(self) -> bool:
        return not self._done and not self._stop.is_set()

    def pump(self) -> None:
        block = next(self._blocks, None)
        if block is None:
            self._done = True
            return
        self._delivered += len(block)
        self.ring.callback(block.reshape(-1, 1), len(block), None, NO_FLAGS)

    def start(self) -> None:
        def play():  # real time: each block is delivered when it would have been recorded
            t0 = time.monotonic()
            while self.active:
                self.pump()
                time.sleep(max(0.0, t0 + self._delivered / self.samplerate - time.monotonic()))
        if not self.fast:
            threading.Thread(target=play, daemon=True).start()

    def close(self) -> None:
        self._stop.set()


def array_source(audio: np.ndarray, samplerate: int, label: str, fast: bool = False,
                 keep: bool = False) -> BlockSource:
    """Audio in memory as a source, in blocks of BLOCK_SECONDS."""
    audio, size = np.asarray(audio, np.float32).reshape(-1), max(1, int(BLOCK_SECONDS * samplerate))
    return BlockSource((audio[i:i + size] for i in range(0, len(audio), size)), samplerate, label, fast, keep)


def file_source(path: Path, fast: bool = False, keep: bool = False) -> BlockSource:
    """A recording streamed from disk (mixed to mono, at its own rate), or one UserError saying why not."""
    if not Path(path).is_file():
        raise UserError(f"{path}: no such file")
    try:
        reader = open_audio(path)
    except AudioError as exc:
        raise UserError(f"{path}: {exc}") from None
    rate = reader.info.rate_hz

    def blocks():
        with reader:
            try:
                yield from reader.blocks(BLOCK_SECONDS)
            except AudioError as exc:
                raise UserError(f"{path}: {exc}") from None
    return BlockSource(blocks(), rate, str(path), fast, keep)


def listen(source, on_window, window_seconds: float, hop_seconds: float, duration: float | None = None) -> str:
    """Every hop, hand the newest window to on_window(end_sample, window [window_seconds * rate]).

    The first answer needs a full window. A classifier that falls behind gets the newest
    window, not a backlog. Returns why it stopped: "duration", "ended" (file over, or the
    stream stopped) or "stalled" (the device delivers nothing, and its source has not said why:
    a source retrying a lost device says so in `problem` and fills the gap when it can).
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
        elif time.monotonic() - seen_at > STALL_SECONDS and not getattr(source, "problem", None):
            return "stalled"  # (a source that has said its problem, a lost device being retried, is not stalled)
        elif source.fast:
            source.pump()
        else:
            time.sleep(0.01)
