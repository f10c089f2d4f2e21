"""A recording sent to the page: decoded in memory, run through the live path, answered per window.

The bytes are decoded by what they are (libsndfile reads the header), never by a file name,
never written to disk, and dropped with the answer. A broken file is an UploadError whose
message the page shows as it is.
"""
from __future__ import annotations

import base64
import io
import struct
from pathlib import Path

import numpy as np
import soundfile as sf

from cry.audio import decoder_reason, resample
from cry.features import window_to_image
from cry.monitor import analyse, fit_length

MAX_SECONDS = 300.0  # longer uploads are refused: decoding and analysis cost grows with the length


class UploadError(ValueError):
    """An upload that cannot be answered; the message says why, for the page. status: the HTTP one."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def form_file(body: bytes, content_type: str) -> bytes:
    """The first file of a multipart/form-data body, parsed in memory (stdlib email parser)."""
    from email.parser import BytesParser
    from email.policy import HTTP

    message = BytesParser(policy=HTTP).parsebytes(b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n"
                                                  + body)
    parts = list(message.iter_parts()) if message.is_multipart() else []
    files = [p for p in parts if p.get_filename() is not None or p.get_param("name", header="content-disposition")
             == "file"]
    if not files:
        raise UploadError("no file in the form (send the recording as the field 'file', or as the raw body)")
    return files[0].get_payload(decode=True) or b""


def riff_shortfall(data: bytes) -> int:
    """Bytes a WAV's RIFF header announces beyond what is there (0: complete, or not a WAV).

    libsndfile reads a cut-off WAV without complaint, shortening it to the samples present."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return 0
    declared = struct.unpack("<I", data[4:8])[0] + 8
    if declared in (8, 0xFFFFFFFF + 8):  # 0 or -1: written by a stream that never knew its length
        return 0
    return max(0, declared - len(data))


def decode(data: bytes, max_seconds: float = MAX_SECONDS) -> tuple[np.ndarray, int]:
    """Upload bytes -> (mono float32 audio [n], sample rate), or an UploadError saying what is wrong."""
    if not data:
        raise UploadError("the upload is empty (0 bytes)")
    try:
        info = sf.info(io.BytesIO(data))
    except (RuntimeError, ValueError, EOFError) as exc:  # libsndfile says why in its own words
        raise UploadError(f"not an audio file this page can read ({decoder_reason(exc, Path('upload'))}); "
                          "send WAV, FLAC, OGG or MP3") from None
    if info.duration > max_seconds:
        raise UploadError(f"{info.duration:.0f} s of audio: at most {max_seconds:.0f} s, cut it shorter", 413)
    missing = riff_shortfall(data)
    if missing:
        raise UploadError(f"the WAV file is truncated: its header announces {missing} more bytes than "
                          "arrived (was the upload or the recording cut off?)")
    try:
        audio, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except (RuntimeError, ValueError, EOFError) as exc:
        raise UploadError(f"the audio is broken or truncated ({decoder_reason(exc, Path('upload'))})") from None
    if len(audio) < 0.99 * info.frames:
        raise UploadError(f"the audio is truncated: its header announces {info.duration:.1f} s, "
                          f"{len(audio) / rate:.1f} s could be decoded")
    audio = audio.mean(axis=1)
    if not np.isfinite(audio).all():
        raise UploadError("the audio contains NaN or infinite samples")
    return audio, rate


def png_base64(image: np.ndarray) -> str:
    """image: uint8 [h, w, 3] -> base64 of its PNG."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def answer(data: bytes, scorer, make_decider, hop_seconds: float, max_seconds: float = MAX_SECONDS) -> dict:
    """Upload bytes -> JSON-ready answer: every window as live use would show it, the episodes,
    and the reason model's image of the loudest window (the picture the model judged)."""
    audio, rate = decode(data, max_seconds)
    settings = scorer.settings
    if len(audio) < settings.window_seconds * rate:
        raise UploadError(f"{len(audio) / rate:.1f} s of audio: the model needs at least {settings.window_seconds:g} s")
    result = analyse(audio, rate, scorer, make_decider, settings.window_seconds, hop_seconds, label="upload")
    loudest = max(result.states, key=lambda s: s.level_dbfs)
    end = round(loudest.stream_seconds * rate)
    window = audio[max(0, end - round(settings.window_seconds * rate)):end]
    image = window_to_image(fit_length(resample(window, rate, settings.sample_rate_hz), settings.window_samples),
                            settings)
    windows = [{k: v for k, v in s.to_dict().items() if k != "time"} for s in result.states]  # time: of the analysis
    return {"seconds": round(len(audio) / rate, 2), "sample_rate_hz": rate, "hop_seconds": hop_seconds,
            "windows": windows, "crying_windows": sum(s.state == "crying" for s in result.states),
            "episodes": [e.to_dict() for e in result.events if e.kind == "end"],
            "image": {"png_base64": png_base64(image), "end_seconds": loudest.stream_seconds,
                      "seconds": settings.window_seconds}}
