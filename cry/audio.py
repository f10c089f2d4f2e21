"""Audio in: decode any file soundfile can read, mono, resampled; cut into model windows."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from cry.params import Settings

# Phone formats libsndfile cannot decode are listed too, so they are reported, not silently ignored.
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".opus", ".mp3", ".aif", ".aiff", ".caf")
NO_DECODER_SUFFIXES = (".m4a", ".aac", ".amr", ".3gp", ".wma")


class AudioError(ValueError):
    """A file that cannot be used as audio; the message says why, in a few words."""


def baby_id(path: str | os.PathLike) -> str:
    """The 36-character app-install id that starts a corpus file name (one id ~ one baby)."""
    return Path(path).name[:36].lower()


def list_audio_files(folder: Path) -> list[Path]:
    """Audio files below folder (any depth), by suffix, case-insensitive, sorted."""
    return sorted(p for p in Path(folder).rglob("*")
                  if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES + NO_DECODER_SUFFIXES)


def resample(audio: np.ndarray, from_hz: int, to_hz: int) -> np.ndarray:
    """High-quality resampling (soxr); a no-op when the rates agree."""
    if from_hz == to_hz or audio.size == 0:
        return audio.astype(np.float32, copy=False)
    return soxr.resample(audio, from_hz, to_hz, quality="HQ").astype(np.float32, copy=False)


def load_audio(path: str | os.PathLike, settings: Settings) -> np.ndarray:
    """Decode, mix to mono and resample to settings.sample_rate_hz.

    Returns:
        audio: float32 [n_samples], nominally in [-1, 1].
    Raises:
        AudioError: unreadable, empty, undecodable, non-finite, all-zero or too short audio.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:  # gone since it was listed
        raise AudioError(f"cannot read ({exc.strerror})") from None
    if size == 0:
        raise AudioError("empty file (0 bytes)")
    try:
        audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:  # libsndfile says why in its own words
        raise AudioError(f"cannot decode audio ({decoder_reason(exc, path)})") from None
    if audio.shape[0] == 0:
        raise AudioError("no audio samples")
    audio = audio.mean(axis=1)
    if not np.isfinite(audio).all():
        raise AudioError("contains NaN or infinite samples")
    if not audio.any():
        raise AudioError("digital silence (every sample is 0: microphone off or broken recording)")
    seconds = audio.shape[0] / rate
    if seconds < settings.min_audio_seconds:
        raise AudioError(f"too short ({seconds:.2f} s < {settings.min_audio_seconds} s)")
    return resample(audio, rate, settings.sample_rate_hz)


def decoder_reason(exc: Exception, path: Path) -> str:
    """libsndfile's reason without the path it repeats, plus what to do for phone formats."""
    reason = (getattr(exc, "error_string", None) or str(exc).splitlines()[0][:120]).rstrip(".")
    if reason.startswith("File does not exist"):  # the mp3 decoder's word for "not an mp3"
        reason = "not a recognised audio format"
    if path.suffix.lower() in NO_DECODER_SUFFIXES:
        reason += f"; no {path.suffix} decoder here, convert it to .wav or .flac first"
    return reason


def window_starts(n_samples: int, settings: Settings, hop_seconds: float | None = None) -> list[int]:
    """Start samples of windows covering the audio; the last one ends at the end."""
    size = settings.window_samples
    hop = max(1, int(round((hop_seconds or settings.window_hop_seconds) * settings.sample_rate_hz)))
    if n_samples <= size:
        return [0]
    starts = list(range(0, n_samples - size + 1, hop))
    if starts[-1] + size < n_samples:
        starts.append(n_samples - size)
    return starts


def audio_to_windows(audio: np.ndarray, settings: Settings, hop_seconds: float | None = None) -> np.ndarray:
    """Cut audio into model windows; audio shorter than a window is zero-padded at the end.

    Returns:
        windows: float32 [n_windows, settings.window_samples]
    """
    size = settings.window_samples
    if audio.shape[0] < size:
        audio = np.pad(audio, (0, size - audio.shape[0]))
    starts = window_starts(audio.shape[0], settings, hop_seconds)
    return np.stack([audio[s:s + size] for s in starts]).astype(np.float32, copy=False)


def rms_dbfs(audio: np.ndarray) -> float:
    """Root-mean-square level in dB relative to full scale (a full-scale sine is -3 dB)."""
    if audio.size == 0:
        return -np.inf
    rms = float(np.sqrt(np.mean(np.square(audio, dtype=np.float64))))
    return 20.0 * np.log10(max(rms, 1e-12))


def is_quiet(window: np.ndarray, settings: Settings) -> bool:
    """Energy gate: too quiet to be a cry, so no model call is needed."""
    return rms_dbfs(window) < settings.quiet_dbfs
