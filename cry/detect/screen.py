"""The uploads' screen: does YAMNet hear any crying in a recording played on its own through the live path?

prepare_data.py screens every original upload with it before the detector exists (train_model.py
trains the detector afterwards, on what prepare_data.py wrote), so the rule uses nothing trained:
each window of det.clip_windows (the live windows, the quiet gate, the 4 kHz band) that is heard
and in which some patch's crying-family score reaches the detector's own floor (det.FLOOR, YAMNet's
smallest steps above zero) is a crying window. It is the detector's first gate without its head
and rival gate, so it keeps nearly every cry of the cleaned folder and rejects what YAMNet hears
no crying in at all: silence, talk, music, a phone in a pocket. The same rule for every run, so the
data does not depend on a detector an earlier run happened to leave behind.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from cry.detect import detector as det
from cry.params import LiveSettings
from cry.yamnet import heard_label


@dataclasses.dataclass(frozen=True)
class CryScreen:
    """screen(audio, rate) -> why the recording holds no crying window, or None when it holds one."""

    yamnet: object
    band_hz: int | None = det.BAND_HZ
    live: LiveSettings = LiveSettings()
    floor: float = det.FLOOR

    @property
    def id(self) -> str:
        """What the answers depend on: a rerun under another id screens again."""
        live = self.live
        return (f"YAMNet crying >= {self.floor:.4f}, band {self.band_hz}, windows {live.window_seconds:g}/"
                f"{live.hop_seconds:g} s, quiet {live.quiet_dbfs:g} dBFS, padding {live.clip_padding_seconds:g} s, "
                f"detector v{det.VERSION}")

    def __call__(self, audio: np.ndarray, rate: int) -> str | None:
        table = det.clip_windows(self.yamnet, audio, rate, self.band_hz, self.live)
        heard = table["heard"]
        if not heard.any():
            return f"no crying window: every window is quiet (below {self.live.quiet_dbfs:g} dBFS)"
        if (heard & (table["cry_trace"] >= self.floor)).any():
            return None
        return (f"no crying window: YAMNet hears {heard_label(table['scores'][heard].mean(axis=0))}, "
                f"no crying (loudest window {table['level_dbfs'].max():.0f} dBFS)")
