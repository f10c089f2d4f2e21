"""Small files that claim much (issue 21): what a hostile upload looks like, made in a few
milliseconds. Real encodings of a tenth of a second whose headers then claim hours, hundreds of
channels or rates no microphone has, and float files beyond any full scale."""
from __future__ import annotations

import io
import struct

import numpy as np
import soundfile as sf


def flac_claiming(rate_hz: int, channels: int, seconds: float, real_seconds: float = 0.1) -> bytes:
    """A real FLAC of `real_seconds` (a quiet tone) whose STREAMINFO then claims `seconds` (its
    36-bit total samples; 0 says "unknown", as a FLAC written as a stream does)."""
    tone = 0.1 * np.sin(np.arange(int(real_seconds * rate_hz)) * 0.05, dtype=np.float32)
    buffer = io.BytesIO()
    sf.write(buffer, np.tile(tone[:, None], (1, channels)), rate_hz, format="FLAC")
    data = bytearray(buffer.getvalue())
    assert data[:4] == b"fLaC" and data[4] & 0x7F == 0  # STREAMINFO first, its fields from byte 8
    fields = struct.unpack(">Q", data[18:26])[0]
    struct.pack_into(">Q", data, 18, (fields & ~((1 << 36) - 1)) | int(seconds * rate_hz))
    return bytes(data)


def vorbis(channels: int, rate_hz: int = 48000) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, np.zeros((rate_hz // 10, channels), np.float32), rate_hz, format="OGG", subtype="VORBIS")
    return buffer.getvalue()


def float_wav(value: float, seconds: float = 4.0, rate: int = 8000) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, np.full(int(seconds * rate), value, np.float32), rate, format="WAV", subtype="FLOAT")
    return buffer.getvalue()
