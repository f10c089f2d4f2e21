"""The one audio -> image function, used by preprocessing, training, evaluation and live use.

Light to import: the live monitor runs all night, and librosa (with numba) and scipy.signal cost
it more than a second and well over 100 MB for one filter bank and one window. So the mel basis
and the Hann window are computed here in numpy, with librosa's and scipy's arithmetic step by
step (bit-identical: reference_window_to_image, which keeps librosa, checks it in the tests and
benchmarks); matplotlib (the colour map) and PIL load on first use.
"""
from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np
import scipy.fft

from cry.files import atomic_output
from cry.params import Settings

_FFT_BLOCK_FRAMES = 16  # STFT frames per FFT call: 256 KB of float64 work arrays


def hz_to_slaney_mel(hz: np.ndarray) -> np.ndarray:
    """Slaney's mel scale (librosa's default, htk=False): linear below 1 kHz, logarithmic above."""
    hz = np.asanyarray(hz, dtype=float)
    mels = hz / (200.0 / 3)
    log = hz >= 1000.0
    mels[log] = 1000.0 / (200.0 / 3) + np.log(hz[log] / 1000.0) / (np.log(6.4) / 27.0)
    return mels


def slaney_mel_to_hz(mels: np.ndarray) -> np.ndarray:
    mels = np.asanyarray(mels, dtype=float)
    hz = (200.0 / 3) * mels
    log = mels >= 1000.0 / (200.0 / 3)
    hz[log] = 1000.0 * np.exp(np.log(6.4) / 27.0 * (mels[log] - 1000.0 / (200.0 / 3)))
    return hz


@functools.lru_cache(maxsize=8)
def mel_basis(settings: Settings) -> np.ndarray:
    """librosa.filters.mel(sr, n_fft, n_mels, fmin, fmax) (Slaney scale and norm), in its arithmetic.
    Returns float32 [n_mels, 1 + n_fft // 2]."""
    n_mels = settings.n_mels
    fft_hz = np.fft.rfftfreq(n=settings.n_fft, d=1.0 / settings.sample_rate_hz)
    edges = slaney_mel_to_hz(np.linspace(*hz_to_slaney_mel(np.array([settings.fmin_hz, settings.fmax_hz])),
                                         n_mels + 2))
    widths, ramps = np.diff(edges), np.subtract.outer(edges, fft_hz)
    weights = np.zeros((n_mels, len(fft_hz)), np.float32)
    for i in range(n_mels):
        weights[i] = np.maximum(0, np.minimum(-ramps[i] / widths[i], ramps[i + 2] / widths[i + 1]))
    weights *= (2.0 / (edges[2:n_mels + 2] - edges[:n_mels]))[:, np.newaxis]
    return weights


@functools.lru_cache(maxsize=8)
def _used_mel_basis(settings: Settings) -> np.ndarray:
    """The mel basis cut after its last non-zero column: with fmax 4 kHz only 372 of 1025
    FFT bins carry weight, so the rest need no magnitude and no multiply.
    Returns float32 [n_mels, n_used_bins], C-contiguous."""
    basis = mel_basis(settings)
    used = int(np.nonzero(basis.any(axis=0))[0].max()) + 1 if basis.any() else 1
    return np.ascontiguousarray(basis[:, :used])


@functools.lru_cache(maxsize=8)
def _stft_window(n_fft: int) -> np.ndarray:
    """float64 [n_fft]: the periodic Hann window librosa.stft uses, as scipy.signal.get_window("hann",
    n_fft, fftbins=True) computes it (a general cosine over one more point, the last one dropped)."""
    angles = np.linspace(-np.pi, np.pi, n_fft + 1)
    window = np.zeros(n_fft + 1)
    for k, a in enumerate((0.5, 0.5)):
        window += a * np.cos(k * angles)
    return window[:-1]


@functools.lru_cache(maxsize=8)
def colour_table(colormap: str) -> np.ndarray:
    """uint8 [256, 3]: the colour of each level index, 0 = the dB floor, 255 = the ceiling."""
    import matplotlib

    rgba = matplotlib.colormaps[colormap](np.linspace(0.0, 1.0, 256))
    return np.round(rgba[:, :3] * 255).astype(np.uint8)


def pack_rgb(rgb):
    """Each pixel's colour as one number 0xRRGGBB, to look colours up in a table.

    rgb: an integer numpy array or TensorFlow tensor [..., 3], of a type wide enough (int32, int64).
    """
    return rgb[..., 0] * 65536 + rgb[..., 1] * 256 + rgb[..., 2]


def window_to_levels(window: np.ndarray, settings: Settings) -> np.ndarray:
    """Mel spectrogram on a fixed dB scale mapped to [0, 1] (0 = at or below the floor).

    A fixed reference by default, not per-window normalisation, so a quiet room stays dark
    and a cry stays bright, whatever the microphone gain did to the rest of the recording.
    settings.db_reference "window" (an experiment) puts each window's loudest value at the
    ceiling instead, as librosa.power_to_db(ref=np.max) does.

    Args:
        window: float32 [settings.window_samples] at settings.sample_rate_hz.
    Returns:
        levels: float32 [n_mels, image_size], row 0 = lowest frequency.
    Raises:
        ValueError: wrong length or non-finite samples.
    """
    window = np.asarray(window, dtype=np.float32)
    if window.ndim != 1 or window.shape[0] != settings.window_samples:
        raise ValueError(f"window must be 1-D with {settings.window_samples} samples, got shape {window.shape}")
    if not np.isfinite(window).all():
        raise ValueError("window contains NaN or infinite samples")
    power = _power_spectrum(window, settings)
    with np.errstate(over="ignore", invalid="ignore"):
        mel_power = _used_mel_basis(settings) @ power.T
        db = 10.0 * np.log10(np.maximum(mel_power, 1e-20))
    db = np.nan_to_num(db, nan=-np.inf, posinf=settings.db_ceiling)
    if settings.db_reference == "window" and np.isfinite(db.max()):
        db = db - db.max() + settings.db_ceiling
    floor = settings.db_ceiling - settings.db_range
    return ((np.clip(db, floor, settings.db_ceiling) - floor) / settings.db_range).astype(np.float32)


def _power_spectrum(window: np.ndarray, settings: Settings) -> np.ndarray:
    """|STFT|^2 of the first image_size centred frames, for the bins the mel basis uses.

    The same arithmetic as librosa.stft(center=True, zero padding) followed by abs()**2
    (float64 windowed frames, scipy's rfft, rounded to complex64), so images are
    bit-identical to that path, without its per-call checks and padding bookkeeping.
    Frames go through the FFT a block at a time: the float64 work arrays then stay small
    and in cache, where one 2 MB array per call costs page faults in a fresh worker.
    Returns float32 [n_frames, n_used_bins].
    """
    n_fft, hop, n_used = settings.n_fft, settings.hop_length, _used_mel_basis(settings).shape[1]
    padded = np.pad(window, n_fft // 2)
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop][:settings.image_size]
    power = np.empty((len(frames), n_used), np.float32)
    with np.errstate(over="ignore"):  # absurdly loud input: inf, which the dB ceiling absorbs
        for start in range(0, len(frames), _FFT_BLOCK_FRAMES):
            block = slice(start, start + _FFT_BLOCK_FRAMES)
            spectrum = scipy.fft.rfft(frames[block] * _stft_window(n_fft), axis=-1)
            power[block] = np.abs(spectrum[:, :n_used].astype(np.complex64)) ** 2
    return np.minimum(power, np.finfo(np.float32).max, out=power)  # no inf: inf x 0 weights would be NaN


def window_to_image(window: np.ndarray, settings: Settings) -> np.ndarray:
    """The model's input picture of one window: coloured mel spectrogram, low notes at the bottom.

    Returns:
        image: uint8 [image_size, image_size, 3]
    """
    return np.take(colour_table(settings.colormap), window_to_indices(window, settings), axis=0)


def window_to_indices(window: np.ndarray, settings: Settings) -> np.ndarray:
    """window_to_image before colouring: each pixel's row in colour_table (0 = the dB floor).

    Returns:
        indices: uint8 [image_size, image_size]
    """
    levels = window_to_levels(window, settings)
    if levels.shape[0] != settings.image_size:  # n_mels other than the image height
        from PIL import Image

        levels = np.asarray(Image.fromarray(levels).resize((settings.image_size, settings.image_size),
                                                           Image.BILINEAR))
    return np.round(levels[::-1] * 255).astype(np.uint8)


def indices_to_png(indices: np.ndarray, colormap: str, path: str | os.PathLike) -> None:
    """Write window_to_indices output as a palette PNG of that colour map, atomically.

    Readers (png_to_image, tf.io.decode_png with channels=3) expand it to exactly the RGB
    pixels of window_to_image. A palette PNG is a third of the bytes of RGB, and spectrogram
    pixels barely compress, so the data is stored, not compressed: faster to write than any
    deflate level (benchmarks/bench_preprocess.py measures it).
    """
    from PIL import Image

    picture = Image.fromarray(np.asarray(indices, np.uint8), mode="P")
    picture.putpalette(colour_table(colormap).tobytes())
    with atomic_output(Path(path)) as tmp:
        picture.save(tmp, format="PNG", compress_level=0)


def png_to_image(path: str | os.PathLike) -> np.ndarray:
    """Read a PNG (indices_to_png's, or any other) as RGB. Returns uint8 [H, W, 3]."""
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def reference_window_to_image(window: np.ndarray, settings: Settings) -> np.ndarray:
    """window_to_image as first written, through librosa.stft and the whole mel basis.

    Kept only to check that the fast version gives the same pixels (tests, benchmarks).
    Returns uint8 [size, size, 3].
    """
    import librosa

    spectrum = np.abs(librosa.stft(np.asarray(window, np.float32), n_fft=settings.n_fft,
                                   hop_length=settings.hop_length, center=True)) ** 2
    with np.errstate(over="ignore", invalid="ignore"):
        db = 10.0 * np.log10(np.maximum(reference_mel_basis(settings) @ spectrum[:, :settings.image_size], 1e-20))
    db = np.nan_to_num(db, nan=-np.inf, posinf=settings.db_ceiling)
    floor = settings.db_ceiling - settings.db_range
    levels = ((np.clip(db, floor, settings.db_ceiling) - floor) / settings.db_range).astype(np.float32)
    return colour_table(settings.colormap)[np.round(levels[::-1] * 255).astype(np.uint8)]


def reference_mel_basis(settings: Settings) -> np.ndarray:
    """librosa's own mel filter bank for the settings, float32 [n_mels, 1 + n_fft // 2] (the reference)."""
    import librosa

    return librosa.filters.mel(sr=settings.sample_rate_hz, n_fft=settings.n_fft, n_mels=settings.n_mels,
                               fmin=settings.fmin_hz, fmax=settings.fmax_hz).astype(np.float32)
