"""The two decoders behind cry.audio (its private half): libsndfile first, FFmpeg through PyAV else.

Each reader says what the header claims (`info`) before a sample is decoded, and yields
interleaved float32 blocks [frames, channels] of at most the frames asked for, so cry.audio
can check the budget first and bound every read (never a read whose sample count a decoder
cannot hold). Only cry.audio uses these.
"""
from __future__ import annotations

import dataclasses
import io

import numpy as np


class AudioError(ValueError):
    """A file that cannot be used as audio; the message says why, in a few words."""


class NotAudio(AudioError):
    """Neither decoder knows the format (a picture, a text, a video without sound)."""


@dataclasses.dataclass(frozen=True)
class AudioInfo:
    rate_hz: int
    channels: int
    frames: int | None   # None when the container does not say

    @property
    def seconds(self) -> float | None:
        return None if self.frames is None else self.frames / self.rate_hz


# libsndfile containers and encodings whose seek lands on the very sample a read from the start
# would reach (PCM and FLAC); lossy codecs restart their decoder at a seek, so they are read through.
EXACT_SEEK_FORMATS = ("WAV", "WAVEX", "AIFF", "FLAC", "W64", "RF64", "CAF", "AU")
EXACT_SEEK_SUBTYPES = ("PCM_S8", "PCM_U8", "PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE", "ULAW", "ALAW")


class SoundFileReader:
    """libsndfile's reader, block by block."""

    def __init__(self, source):
        import soundfile as sf

        self._file = sf.SoundFile(io.BytesIO(source) if isinstance(source, bytes) else str(source))
        if self._file.frames >= 1 << 62:  # "unknown" (a FLAC written as a stream): libsndfile cannot read it on
            self._file.close()
            raise ValueError("length unknown")  # so FFmpeg, which reads it and counts as it goes
        self.info = AudioInfo(int(self._file.samplerate), int(self._file.channels), int(self._file.frames))
        self.exact_seek = self._file.format in EXACT_SEEK_FORMATS and self._file.subtype in EXACT_SEEK_SUBTYPES

    def seek(self, frame: int) -> None:
        self._file.seek(frame)

    def blocks(self, frames: int):
        while True:
            block = self._file.read(frames, dtype="float32", always_2d=True)
            if len(block) == 0:
                return
            yield block

    def close(self) -> None:
        self._file.close()


_INT_SCALE = {"u8": 128.0, "s16": 32768.0, "s32": 2147483648.0, "s64": 9223372036854775808.0}


class FFmpegReader:
    """FFmpeg (PyAV) for what libsndfile cannot read: decoded frame by frame (its frames are
    small: a codec's frame, a few thousand samples), cut to the frames asked for by cry.audio."""

    def __init__(self, source):
        import av

        self._container = av.open(io.BytesIO(source) if isinstance(source, bytes) else str(source),
                                  metadata_errors="ignore")
        if not self._container.streams.audio:
            self._container.close()
            raise NotAudio("cannot decode audio (it holds no audio stream: a picture, or a video without sound?)")
        self._stream = stream = self._container.streams.audio[0]
        frames = None
        if stream.duration and stream.time_base:
            frames = int(round(float(stream.duration * stream.time_base) * stream.rate))
        elif self._container.duration:
            frames = int(round(self._container.duration / 1e6 * stream.rate))
        self.info = AudioInfo(int(stream.rate or 0), int(stream.channels or 0), frames)
        self.exact_seek = False  # FFmpeg's seeks land on packets, not samples

    def blocks(self, frames: int):
        for frame in self._container.decode(self._stream):
            if frame.sample_rate != self.info.rate_hz:
                raise AudioError(f"the sample rate changes inside the file ({self.info.rate_hz} -> "
                                 f"{frame.sample_rate} Hz)")
            channels = len(frame.layout.channels)
            if channels != self.info.channels:  # a stream whose layout changes: its header said less
                raise AudioError(f"the channels change inside the file ({self.info.channels} -> {channels})")
            array, kind = frame.to_ndarray(), frame.format.name.rstrip("p")
            array = array.reshape(channels, -1).T if frame.format.is_planar else array.reshape(-1, channels)
            if kind in _INT_SCALE:
                array = (array.astype(np.float64) - (128.0 if kind == "u8" else 0.0)) / _INT_SCALE[kind]
            yield array.astype(np.float32, copy=False)

    def close(self) -> None:
        self._container.close()


def reason(exc: Exception) -> str:
    """A decoder's reason in a few words, without the path it repeats."""
    text = getattr(exc, "error_string", None) or (str(exc).splitlines() or [type(exc).__name__])[0]
    return text.split(": ", 1)[-1].rstrip(".")[:120] if "Error opening" in text else text.rstrip(".")[:120]


def open_reader(source):
    """libsndfile when it knows the format, else FFmpeg; NotAudio (in libsndfile's words, which
    name the format problem best) when neither does."""
    import soundfile as sf

    try:
        return SoundFileReader(source)
    except (sf.LibsndfileError, RuntimeError, ValueError, EOFError, TypeError) as exc:
        why = reason(exc)  # not a format libsndfile reads, or broken: FFmpeg may still know it
    if why.startswith("File does not exist"):  # libsndfile's mp3 decoder's word for "not an mp3"
        why = "not a recognised audio format"
    try:
        return FFmpegReader(source)
    except AudioError:
        raise
    except Exception:  # av.error.* and friends
        raise NotAudio(f"cannot decode audio ({why})") from None
