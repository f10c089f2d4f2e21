"""A recording sent to the page: decoded in memory, run through the live path, answered per window.

The bytes are decoded by what they are (the decoder reads the header), never by a file name,
never written to disk, and dropped with the answer. A broken file is an UploadError whose
message the page shows as it is.
"""
from __future__ import annotations

import base64
import io
import struct

import numpy as np

from cry.audio import AudioBudget, AudioError, NotAudio, OverBudget, decode
from cry.decision import State
from cry.live_path import LivePath, analyse

MAX_SECONDS = 300.0  # longer uploads are refused: decoding and analysis cost grows with the length
# What an upload may claim, checked on its header before a sample is decoded: phones record 1 or
# 2 channels at 8-48 kHz; the samples cap bounds the decoding work and the decoded audio (float32,
# mixed to mono: at most 4 bytes a sample, ~115 MB), whatever rate and channels share it.
UPLOAD_BUDGET = AudioBudget(max_seconds=MAX_SECONDS, max_channels=8, max_rate_hz=192_000,
                            max_samples=int(MAX_SECONDS * 48_000 * 2))


class UploadError(ValueError):
    """An upload that cannot be answered; the message says why, for the page. status: the HTTP one."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def riff_shortfall(data: bytes) -> int:
    """Bytes a WAV's RIFF header announces beyond what is there (0: complete, or not a WAV).

    libsndfile reads a cut-off WAV without complaint, shortening it to the samples present."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return 0
    declared = struct.unpack("<I", data[4:8])[0] + 8
    if declared in (8, 0xFFFFFFFF + 8):  # 0 or -1: written by a stream that never knew its length
        return 0
    return max(0, declared - len(data))


def decode_upload(data: bytes, budget: AudioBudget = UPLOAD_BUDGET) -> tuple[np.ndarray, int]:
    """Upload bytes -> (mono float32 audio [n], sample rate), or an UploadError saying what is wrong
    (through the one decoder, cry.audio, within a budget checked on the header): 413 for what
    claims more than the budget, 415 for what is not audio, 400 for broken audio."""
    if not data:
        raise UploadError("the upload is empty (0 bytes)")
    missing = riff_shortfall(data)
    if missing:
        raise UploadError(f"the WAV file is truncated: its header announces {missing} more bytes than "
                          "arrived (was the upload or the recording cut off?)")
    try:
        return decode(data, budget)
    except OverBudget as exc:
        raise UploadError(f"the recording is too large to analyse: {exc}", 413) from None
    except NotAudio as exc:
        raise UploadError(f"not an audio file this page can read ({exc}); send WAV, FLAC, OGG, MP3 or a phone "
                          "recording", 415) from None
    except AudioError as exc:
        raise UploadError(str(exc)) from None


def png_base64(image: np.ndarray) -> str:
    """image: uint8 [h, w, 3] -> base64 of its PNG."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def answer(data: bytes, path: LivePath, budget: AudioBudget = UPLOAD_BUDGET) -> dict:
    """Upload bytes -> JSON-ready answer: every window as live use would show it, the episodes,
    and the reason model's image of the loudest window (the picture the model judged)."""
    audio, rate = decode_upload(data, budget)
    live, scorer = path.live, path.scorer
    if len(audio) < live.window_seconds * rate:
        raise UploadError(f"{len(audio) / rate:.1f} s of audio: the monitor needs at least {live.window_seconds:g} s")
    result = analyse(audio, rate, path, label="upload")
    loudest = max(result.states, key=lambda s: s.level_dbfs)
    end = round(loudest.stream_seconds * rate)
    window = audio[max(0, end - round(live.window_seconds * rate)):end]
    image = scorer.reasons.image(scorer.reason_window(window, rate))
    windows = [{k: v for k, v in s.to_dict().items() if k != "time"} for s in result.states]  # time: of the analysis
    return {"seconds": round(len(audio) / rate, 2), "sample_rate_hz": rate, "hop_seconds": live.hop_seconds,
            "windows": windows, "crying_windows": sum(s.state == State.CRYING for s in result.states),
            "episodes": [e.to_dict() for e in result.events if e.kind == "end"],
            "image": {"png_base64": png_base64(image), "end_seconds": loudest.stream_seconds,
                      "seconds": scorer.reasons.settings.window_seconds}}
