"""Audio in, one way for everyone: a file or bytes -> mono float32 at its own rate, within a budget.

Every reader of audio (preparation, preprocessing, training the detector, the reports, the
live monitor's --file, the page's uploads) decodes through `open_audio` / `decode`, so a file
means the same thing everywhere: mixed to mono as the mean of its channels, NaN or infinite
samples refused, the same one-line reasons. libsndfile (soundfile) reads what it can (WAV,
FLAC, Ogg, MP3, AIFF...); anything else (phone formats: 3GP/AMR, CAF with IMA ADPCM, M4A/AAC)
goes through FFmpeg as bundled by PyAV. The header's channels, rate and length are checked
against an `AudioBudget` before any sample is decoded, and samples are read in blocks that are
mixed to mono as they come, so a file that claims hours or hundreds of channels costs a few
megabytes, never what it claims.
"""
from __future__ import annotations

import dataclasses
import io
import os
from pathlib import Path

import numpy as np
import soxr

# What list_audio_files picks up; every one is decoded (libsndfile or FFmpeg) or reported.
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".opus", ".mp3", ".aif", ".aiff", ".caf", ".m4a", ".aac", ".amr",
                  ".3gp", ".wma", ".webm", ".mp4")
BLOCK_SAMPLES = 1 << 20  # interleaved samples per read: 4 MB of float32, and a count no decoder can overflow


class AudioError(ValueError):
    """A file that cannot be used as audio; the message says why, in a few words."""


@dataclasses.dataclass(frozen=True)
class AudioBudget:
    """What a file may claim before a sample of it is decoded (None: no limit)."""

    max_seconds: float | None = None
    max_channels: int = 64
    max_rate_hz: int = 384_000


@dataclasses.dataclass(frozen=True)
class AudioInfo:
    rate_hz: int
    channels: int
    frames: int | None   # None when the container does not say

    @property
    def seconds(self) -> float | None:
        return None if self.frames is None else self.frames / self.rate_hz


def list_audio_files(folder: Path) -> list[Path]:
    """Audio files below folder (any depth), by suffix, case-insensitive, sorted."""
    return sorted(p for p in Path(folder).rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)


def _check_budget(info: AudioInfo, budget: AudioBudget) -> None:
    if info.channels < 1 or info.rate_hz < 1:
        raise AudioError(f"no usable audio stream ({info.channels} channels at {info.rate_hz} Hz)")
    if info.channels > budget.max_channels:
        raise AudioError(f"{info.channels} channels: at most {budget.max_channels}")
    if info.rate_hz > budget.max_rate_hz:
        raise AudioError(f"{info.rate_hz} Hz: at most {budget.max_rate_hz} Hz")
    if budget.max_seconds is not None and info.seconds is not None and info.seconds > budget.max_seconds:
        raise AudioError(f"{info.seconds:.0f} s of audio: at most {budget.max_seconds:.0f} s")


def _mono(block: np.ndarray) -> np.ndarray:
    """float32 [frames, channels] -> [frames], the channels' mean; non-finite samples refused."""
    mono = block[:, 0] if block.shape[1] == 1 else block.mean(axis=1, dtype=np.float32)
    if not np.isfinite(mono).all():
        raise AudioError("contains NaN or infinite samples")
    return np.ascontiguousarray(mono, dtype=np.float32)


class _SoundFileReader:
    """libsndfile's reader, block by block."""

    def __init__(self, source):
        import soundfile as sf

        self._file = sf.SoundFile(io.BytesIO(source) if isinstance(source, bytes) else str(source))
        self.info = AudioInfo(int(self._file.samplerate), int(self._file.channels), int(self._file.frames))

    def blocks(self, frames: int):
        while True:
            block = self._file.read(frames, dtype="float32", always_2d=True)
            if len(block) == 0:
                return
            yield block

    def close(self) -> None:
        self._file.close()


_INT_SCALE = {"u8": 128.0, "s16": 32768.0, "s32": 2147483648.0, "s64": 9223372036854775808.0}


class _FFmpegReader:
    """FFmpeg (PyAV) for what libsndfile cannot read: decoded frame by frame."""

    def __init__(self, source):
        import av

        self._container = av.open(io.BytesIO(source) if isinstance(source, bytes) else str(source),
                                  metadata_errors="ignore")
        if not self._container.streams.audio:
            self._container.close()
            raise AudioError("cannot decode audio (it holds no audio stream: a picture, or a video without sound?)")
        self._stream = stream = self._container.streams.audio[0]
        frames = None
        if stream.duration and stream.time_base:
            frames = int(round(float(stream.duration * stream.time_base) * stream.rate))
        elif self._container.duration:
            frames = int(round(self._container.duration / 1e6 * stream.rate))
        self.info = AudioInfo(int(stream.rate or 0), int(stream.channels or 0), frames)

    def blocks(self, frames: int):
        for frame in self._container.decode(self._stream):
            if frame.sample_rate != self.info.rate_hz:
                raise AudioError(f"the sample rate changes inside the file ({self.info.rate_hz} -> "
                                 f"{frame.sample_rate} Hz)")
            array, kind = frame.to_ndarray(), frame.format.name.rstrip("p")
            channels = len(frame.layout.channels)
            array = array.reshape(channels, -1).T if frame.format.is_planar else array.reshape(-1, channels)
            if kind in _INT_SCALE:
                array = (array.astype(np.float64) - (128.0 if kind == "u8" else 0.0)) / _INT_SCALE[kind]
            yield array.astype(np.float32, copy=False)

    def close(self) -> None:
        self._container.close()


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
        self._reader = _open_reader(source)
        try:
            _check_budget(self._reader.info, budget)
        except AudioError:
            self.close()
            raise
        self.info = self._reader.info

    def blocks(self, seconds: float | None = None):
        """Mono float32 blocks [n] of about `seconds` (default: as large as BLOCK_SAMPLES allows)."""
        channels = self.info.channels
        frames = max(1, min(BLOCK_SAMPLES // channels, int(seconds * self.info.rate_hz) if seconds else 1 << 62))
        limit = None if self.budget.max_seconds is None else self.budget.max_seconds * self.info.rate_hz
        done = 0
        try:
            for block in self._reader.blocks(frames):
                for start in range(0, len(block), frames):  # FFmpeg's frames come in its own sizes
                    mono = _mono(block[start:start + frames])
                    done += len(mono)
                    if limit is not None and done > limit:  # a header that understated the length
                        raise AudioError(f"more than {self.budget.max_seconds:.0f} s of audio")
                    yield mono
        except AudioError:
            raise
        except Exception as exc:  # a decoder failing half-way says why in its own words
            raise AudioError(f"the audio is broken or truncated ({_reason(exc)})") from None
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


def _reason(exc: Exception) -> str:
    """A decoder's reason in a few words, without the path it repeats."""
    text = getattr(exc, "error_string", None) or (str(exc).splitlines() or [type(exc).__name__])[0]
    return text.split(": ", 1)[-1].rstrip(".")[:120] if "Error opening" in text else text.rstrip(".")[:120]


def _open_reader(source):
    """libsndfile when it knows the format, else FFmpeg; AudioError (in libsndfile's words, which
    name the format problem best) when neither does."""
    import soundfile as sf

    try:
        return _SoundFileReader(source)
    except (sf.LibsndfileError, RuntimeError, ValueError, EOFError, TypeError) as exc:
        why = _reason(exc)  # not a format libsndfile reads, or broken: FFmpeg may still know it
    if why.startswith("File does not exist"):  # libsndfile's mp3 decoder's word for "not an mp3"
        why = "not a recognised audio format"
    try:
        return _FFmpegReader(source)
    except AudioError:
        raise
    except Exception:  # av.error.* and friends
        raise AudioError(f"cannot decode audio ({why})") from None


def open_audio(source: str | os.PathLike | bytes, budget: AudioBudget = AudioBudget()) -> AudioReader:
    """An AudioReader, or AudioError saying why the file cannot be read."""
    return AudioReader(source, budget)


def decode(source: str | os.PathLike | bytes, budget: AudioBudget = AudioBudget()) -> tuple[np.ndarray, int]:
    """The whole file: (mono float32 [n], its sample rate). Raises AudioError (empty, not audio,
    over the budget, broken, non-finite samples, no samples)."""
    with open_audio(source, budget) as reader:
        blocks = list(reader.blocks())
        rate = reader.info.rate_hz
    audio = np.concatenate(blocks) if blocks else np.zeros(0, np.float32)
    if len(audio) == 0:
        raise AudioError("no audio samples")
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
