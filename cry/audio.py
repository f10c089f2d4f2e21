"""Audio in, one way for everyone: a file or bytes -> mono float32 at its own rate, within a budget.

Every reader of audio (preparation, preprocessing, training the detector, the reports, the
live monitor's --file, the page's uploads) decodes through `open_audio` / `decode`, so a file
means the same thing everywhere: mixed to mono as the mean of its channels, NaN or infinite
samples refused, the same one-line reasons. libsndfile (soundfile) reads what it can (WAV,
FLAC, Ogg, MP3, AIFF...); anything else (phone formats: 3GP/AMR, CAF with IMA ADPCM, M4A/AAC)
goes through FFmpeg as bundled by PyAV. The header's channels, rate and length are checked
against an `AudioBudget` before any sample is decoded, and samples are read in blocks that are
mixed to mono as they come, so a file that claims hours or hundreds of channels costs a few
megabytes, never what it claims; a header that understated is caught by counting as blocks
come. The two decoders themselves are in cry.audio_readers.
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
import soxr

from cry.audio_readers import AudioError, AudioInfo, NotAudio, open_reader, reason

__all__ = ["AUDIO_SUFFIXES", "BLOCK_SAMPLES", "MAX_PEAK", "AudioBudget", "AudioError", "AudioInfo", "AudioReader",
           "NotAudio", "OverBudget", "decode", "is_quiet", "list_audio_files", "open_audio", "resample", "rms_dbfs"]

# What list_audio_files picks up; every one is decoded (libsndfile or FFmpeg) or reported.
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".opus", ".mp3", ".aif", ".aiff", ".caf", ".m4a", ".aac", ".amr",
                  ".3gp", ".wma", ".webm", ".mp4")
BLOCK_SAMPLES = 1 << 20  # interleaved samples per read: 4 MB of float32, and a count no decoder can overflow
MAX_PEAK = 1000.0  # |sample| above this (+60 dBFS) is no recording: refused before it overflows a sum or a filter


class OverBudget(AudioError):
    """The file claims, or holds, more than the budget allows (length, channels, rate, samples)."""


@dataclasses.dataclass(frozen=True)
class AudioBudget:
    """What a file may claim before a sample of it is decoded (None: no limit). max_samples counts
    frames x channels: the decoding work and, mixed to mono, a bound on the memory of the result."""

    max_seconds: float | None = None
    max_channels: int = 64
    max_rate_hz: int = 384_000
    max_samples: int | None = None


def list_audio_files(folder: Path) -> list[Path]:
    """Audio files below folder (any depth), by suffix, case-insensitive, sorted."""
    return sorted(p for p in Path(folder).rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)


def _check_budget(info: AudioInfo, budget: AudioBudget) -> None:
    if info.channels < 1 or info.rate_hz < 1:
        raise AudioError(f"no usable audio stream ({info.channels} channels at {info.rate_hz} Hz)")
    if info.channels > budget.max_channels:
        raise OverBudget(f"{info.channels} channels: at most {budget.max_channels}")
    if info.rate_hz > budget.max_rate_hz:
        raise OverBudget(f"{info.rate_hz} Hz: at most {budget.max_rate_hz} Hz")
    if budget.max_seconds is not None and info.seconds is not None and info.seconds > budget.max_seconds:
        raise OverBudget(f"{info.seconds:.0f} s of audio: at most {budget.max_seconds:.0f} s")
    if budget.max_samples is not None and info.frames is not None and info.frames * info.channels > budget.max_samples:
        raise OverBudget(f"{info.channels} channels at {info.rate_hz} Hz for {info.seconds:.0f} s: at most "
                         f"{budget.max_samples / 1e6:.1f} million samples (e.g. {budget.max_samples / 96000:.0f} s "
                         "of stereo at 48 kHz)")


def _mono(block: np.ndarray) -> np.ndarray:
    """float32 [frames, channels] -> [frames], the channels' mean; non-finite samples, and samples
    no recording holds (beyond MAX_PEAK: a float file of 3e38 overflows resampling), refused."""
    peak = float(np.abs(block).max()) if block.size else 0.0  # NaN and inf carry through max
    if not np.isfinite(peak):
        raise AudioError("contains NaN or infinite samples")
    if peak > MAX_PEAK:
        raise AudioError(f"samples far beyond full scale (peak {peak:.3g}; full scale is 1, at most {MAX_PEAK:g})")
    mono = block[:, 0] if block.shape[1] == 1 else block.mean(axis=1, dtype=np.float32)
    return np.ascontiguousarray(mono, dtype=np.float32)


class AudioReader:
    """One audio file (a path or its bytes) being read; `info` comes from the header, checked
    against the budget. Use as a context manager; `blocks()` yields mono float32 pieces."""

    def __init__(self, source: str | os.PathLike | bytes, budget: AudioBudget = AudioBudget()):
        self.budget, self._reader = budget, None
        if isinstance(source, bytes):
            if not source:
                raise AudioError("empty file (0 bytes)")
        else:
            try:
                size = Path(source).stat().st_size
            except OSError as exc:
                raise AudioError(f"cannot read ({exc.strerror})") from None
            if size == 0:
                raise AudioError("empty file (0 bytes)")
        self._reader = open_reader(source)
        try:
            _check_budget(self._reader.info, budget)
        except AudioError:
            self.close()
            raise
        self.info = self._reader.info

    def blocks(self, seconds: float | None = None, start: int = 0):
        """Mono float32 blocks [n] of about `seconds` (default: as large as BLOCK_SAMPLES allows),
        from frame `start` on: the same samples as a read from the beginning would give there
        (seeking where the format lands exactly on a sample, else decoding and dropping what
        comes before), so a long recording can be read in pieces by several workers."""
        channels, budget = self.info.channels, self.budget
        frames = max(1, min(BLOCK_SAMPLES // channels, int(seconds * self.info.rate_hz) if seconds else 1 << 62))
        limit = None if budget.max_seconds is None else budget.max_seconds * self.info.rate_hz
        if budget.max_samples is not None:
            limit = min(limit or budget.max_samples, budget.max_samples / channels)
        done = skip = 0
        if start and self._reader.exact_seek:
            self._reader.seek(start)
            done = start
        else:
            skip = start
        try:
            for block in self._reader.blocks(frames):
                if skip:
                    dropped = min(skip, len(block))
                    block, skip, done = block[dropped:], skip - dropped, done + dropped
                for first in range(0, len(block), frames):  # FFmpeg's frames come in its own sizes
                    mono = _mono(block[first:first + frames])
                    done += len(mono)
                    if limit is not None and done > limit:  # a header that understated the length
                        raise OverBudget(f"more than the limit of {limit / self.info.rate_hz:.0f} s of audio at "
                                         f"{self.info.rate_hz} Hz (its header said less, or nothing)")
                    yield mono
        except AudioError:
            raise
        except Exception as exc:  # a decoder failing half-way says why in its own words
            raise AudioError(f"the audio is broken or truncated ({reason(exc)})") from None
        if self.info.frames and done < 0.99 * self.info.frames:
            raise AudioError(f"the audio is truncated: its header announces {self.info.seconds:.1f} s, "
                             f"{done / self.info.rate_hz:.1f} s could be decoded")

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()

    def __enter__(self) -> AudioReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_audio(source: str | os.PathLike | bytes, budget: AudioBudget = AudioBudget()) -> AudioReader:
    """An AudioReader, or AudioError saying why the file cannot be read."""
    return AudioReader(source, budget)


def decode(source: str | os.PathLike | bytes, budget: AudioBudget = AudioBudget()) -> tuple[np.ndarray, int]:
    """The whole file: (mono float32 [n], its sample rate). Raises AudioError (empty, not audio,
    over the budget, broken, non-finite samples, no samples).

    The result is filled in place, sized from the header when the budget bounds it (a header's
    length is trusted with memory only that far), grown by half when the header said less: the
    memory is the result's, not twice it."""
    bounded = budget.max_samples is not None or budget.max_seconds is not None
    with open_audio(source, budget) as reader:
        rate, frames = reader.info.rate_hz, reader.info.frames or 0
        audio, n = np.empty(frames if bounded else min(frames, 16 * BLOCK_SAMPLES), np.float32), 0
        for block in reader.blocks():
            if n + len(block) > len(audio):
                grown = np.empty(max(n + len(block), len(audio) * 3 // 2), np.float32)
                grown[:n] = audio[:n]
                audio = grown
            audio[n:n + len(block)] = block
            n += len(block)
    if n == 0:
        raise AudioError("no audio samples")
    audio.resize(n, refcheck=False)  # in place: the header's extra, or the last growth's, handed back
    return audio, rate


def resample(audio: np.ndarray, from_hz: int, to_hz: int) -> np.ndarray:
    """High-quality resampling (soxr); a no-op when the rates agree."""
    if from_hz == to_hz or audio.size == 0:
        return audio.astype(np.float32, copy=False)
    return soxr.resample(audio, from_hz, to_hz, quality="HQ").astype(np.float32, copy=False)


def rms_dbfs(audio: np.ndarray) -> float:
    """Root-mean-square level in dB relative to full scale (a full-scale sine is -3 dB)."""
    if audio.size == 0:
        return -np.inf
    rms = float(np.sqrt(np.mean(np.square(audio, dtype=np.float64))))
    return 20.0 * np.log10(max(rms, 1e-12))


def is_quiet(level_dbfs: float, quiet_dbfs: float) -> bool:
    """The quiet gate: too quiet to be a cry, so no model is asked (LiveSettings.quiet_dbfs)."""
    return level_dbfs < quiet_dbfs
