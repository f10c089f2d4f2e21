"""Each YAMNet patch once: the detector's view of a window, built from patches on the hop grid.

A window ending at stream sample `end` is seen as K patches ending at end, end - hop, ...,
end - (K-1) hop, each 0.975 s long (YAMNet's input). Every hop adds exactly one new patch; the
others were computed at earlier hops and are taken from a cache. A patch is always computed from
the same audio (a fixed span ending where it ends, a little longer than the patch so that the
resampler's filter has settled), so it is the same numbers whether it is computed when it is the
newest or later, from a longer window: live, a file played fast, a clip in a report, a day-long
scan and training all see identical patches.
"""
from __future__ import annotations

import numpy as np

from cry.audio import resample
from cry.params import LiveSettings
from cry.yamnet import EMBEDDING_SIZE, N_CLASSES, YamnetParams

PARAMS = YamnetParams()
MARGIN_SECONDS = 0.02  # audio before a patch that goes through the resampler with it


def patch_seconds() -> float:
    return PARAMS.patch_samples / PARAMS.sample_rate_hz


def patches_per_window(live: LiveSettings) -> int:
    """K: how many patches on the hop grid fit in a window (with their margin)."""
    return 1 + int((live.window_seconds - patch_seconds() - MARGIN_SECONDS) // live.hop_seconds)


def to_yamnet_rate(audio: np.ndarray, rate: int, band_hz: int | None) -> np.ndarray:
    """Audio at YAMNet's rate, first cut to band_hz (through a 2 * band_hz rate) when given."""
    if band_hz:
        audio, rate = resample(audio, rate, 2 * band_hz), 2 * band_hz
    return resample(audio, rate, PARAMS.sample_rate_hz)


def patch_wave(span: np.ndarray, rate: int, band_hz: int | None) -> np.ndarray:
    """The 16 kHz waveform of the patch that ends where span ends: float32 [15600]."""
    wave = to_yamnet_rate(np.asarray(span, np.float32), rate, band_hz)
    return np.pad(wave, (max(0, PARAMS.patch_samples - len(wave)), 0))[-PARAMS.patch_samples:]


class PatchCache:
    """The patches of one stream computed so far, by the stream sample they end at; patches that
    no window can use any more are forgotten."""

    def __init__(self):
        self.outputs: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # end -> (scores [521], embedding [1024])
        self.computed = 0

    def forget_before(self, end: int) -> None:
        for key in [k for k in self.outputs if k < end]:
            del self.outputs[key]


def window_patches(yamnet, window: np.ndarray, rate: int, live: LiveSettings, band_hz: int | None,
                   end: int | None = None, cache: PatchCache | None = None) -> tuple[np.ndarray, np.ndarray]:
    """YAMNet's scores [K, 521] and embeddings [K, 1024] of the window's patches, oldest first.

    window: float32 [window_seconds * rate] ending at stream sample `end` (default: its length);
    with a cache, patches computed before are reused and new ones kept.
    """
    window = np.asarray(window, np.float32)
    end = len(window) if end is None else end
    hop, span = max(1, int(round(live.hop_seconds * rate))), int(round((patch_seconds() + MARGIN_SECONDS) * rate))
    ends = [end - k * hop for k in reversed(range(patches_per_window(live)))]
    missing = [e for e in ends if cache is None or e not in cache.outputs]
    if missing:
        waves = [patch_wave(window[max(0, len(window) - (end - e) - span):len(window) - (end - e)], rate, band_hz)
                 for e in missing]
        scores, embeddings = yamnet.wave_patches(np.stack(waves))
        computed = dict(zip(missing, zip(scores, embeddings)))
        if cache is not None:
            cache.outputs.update(computed)
            cache.computed += len(missing)
            cache.forget_before(ends[0])
    else:
        computed = {}
    rows = [cache.outputs[e] if cache is not None else computed[e] for e in ends]
    return (np.stack([r[0] for r in rows]).reshape(-1, N_CLASSES),
            np.stack([r[1] for r in rows]).reshape(-1, EMBEDDING_SIZE))
