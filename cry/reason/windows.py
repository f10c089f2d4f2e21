"""Recordings as the reason model trains on them: decoded (cry.audio), refused when they cannot
teach anything (digital silence, too short), resampled, and cut into its windows."""
from __future__ import annotations

import os

import numpy as np

from cry.audio import AudioError, decode, resample
from cry.params import Settings


def load_audio(path: str | os.PathLike, settings: Settings) -> np.ndarray:
    """Decode, mix to mono and resample to settings.sample_rate_hz.

    Returns:
        audio: float32 [n_samples], nominally in [-1, 1].
    Raises:
        AudioError: unreadable, empty, undecodable, non-finite, all-zero or too short audio.
    """
    audio, rate = decode(path)
    if not audio.any():
        raise AudioError("digital silence (every sample is 0: microphone off or broken recording)")
    seconds = audio.shape[0] / rate
    if seconds < settings.min_audio_seconds:
        raise AudioError(f"too short ({seconds:.2f} s < {settings.min_audio_seconds} s)")
    return resample(audio, rate, settings.sample_rate_hz)


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
