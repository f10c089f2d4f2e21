"""--save-audio: what was heard, streamed to disk as it arrives (a night in memory would be gigabytes).

The audio callback only enqueues a copy of each block (RingBuffer.tap); a thread writes them.
A .wav is 16-bit PCM written by the standard library's wave module, which rewrites the header's
lengths after every write: a killed monitor leaves a WAV that every reader plays, up to the last
write (a fraction of a second). A .flac goes through libsndfile; its header gets the length only
at a clean close, so after a kill FFmpeg-based players (ffmpeg, VLC) play it but libsndfile does not.
"""
from __future__ import annotations

import queue
import sys
import threading
import wave
from pathlib import Path

import numpy as np

from cry.files import UserError

WRITE_SECONDS = 0.5  # the writer wakes this often: at most this much is lost to a kill


def check_recording_path(path: Path) -> None:
    """--save-audio must name a .wav or .flac in a folder we can write to (said before listening)."""
    import os

    if path.suffix.lower() not in (".wav", ".flac"):
        raise UserError(f"{path}: --save-audio writes .wav or .flac files")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir() or not os.access(folder, os.W_OK):
        raise UserError(f"{path}: cannot write (no such folder, or no permission)")


class Recording:
    """Blocks of mono float32 audio -> a file at `rate`; write() never waits (it is the audio callback's)."""

    def __init__(self, path: Path, rate: int):
        check_recording_path(path)
        self.path, self.rate, self.frames = Path(path), rate, 0
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        try:
            self._file = self._open()
        except OSError as exc:
            raise UserError(f"{path}: cannot write ({getattr(exc, 'strerror', None) or exc})") from None
        self._thread = threading.Thread(target=self._run, name="recording", daemon=True)
        self._thread.start()

    def _open(self):
        if self.path.suffix.lower() == ".wav":
            out = wave.open(str(self.path), "wb")
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(self.rate)
            return out
        import soundfile as sf

        return sf.SoundFile(str(self.path), "w", self.rate, 1, format="FLAC")

    def write(self, samples: np.ndarray) -> None:
        self._queue.put(np.array(samples, np.float32))

    def _run(self) -> None:
        done = False
        while not done:
            blocks = []
            try:
                blocks.append(self._queue.get(timeout=WRITE_SECONDS))
                while True:
                    blocks.append(self._queue.get_nowait())
            except queue.Empty:
                pass
            done = any(block is None for block in blocks)
            audio = np.concatenate([np.zeros(0, np.float32), *(b for b in blocks if b is not None)])
            if len(audio):
                try:
                    self._store(audio)
                except OSError as exc:  # a full disk: said once, the monitor listens on
                    print(f"\nwarning: {self.path}: cannot write ({exc.strerror or exc}); recording stopped",
                          file=sys.stderr, flush=True)
                    return

    def _store(self, audio: np.ndarray) -> None:
        if isinstance(self._file, wave.Wave_write):
            self._file.writeframes((np.clip(audio, -1.0, 1.0) * 32767).round().astype("<i2").tobytes())
        else:
            self._file.write(audio)
        self.frames += len(audio)

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(30)
        self._file.close()
        print(f"wrote {self.path} ({self.frames / self.rate:.1f} s)", file=sys.stderr)
