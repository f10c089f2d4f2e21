"""The live monitor's engine: window -> scores -> decision -> outputs, for a microphone, a file or a clip.

Live use, the web page's upload and every evaluation that claims to measure live behaviour
(`evaluate_model.py --sounds`) run through `run` and `analyse`, so they cannot drift apart.
"""
from __future__ import annotations

import sys
import time

import numpy as np

from cry.audio import resample, rms_dbfs
from cry.decision import SILENCE, Decider, Episodes, WindowScores, WindowState
from cry.features import window_to_image
from cry.live import ArraySource, listen


def fit_length(audio: np.ndarray, n: int) -> np.ndarray:
    """Exactly n samples: the newest ones, zero-padded at the front (resampling may be 1 off)."""
    return np.pad(audio, (max(0, n - len(audio)), 0))[-n:]


class Scorer:
    """One window at the device rate -> WindowScores.

    In order: the quiet gate (RMS below settings.quiet_dbfs: no model call); the detector (is
    it a cry at all, or speech, music, a laugh, a dog?) when there is one, else the reason
    model's own crying-vs-silence; then the reason model, only for windows that may be cries.
    """

    def __init__(self, reason_model, settings, calibration: dict, detector=None):
        from cry.calibration import calibrate

        self.reason_model, self.settings, self.calibration = reason_model, settings, calibration
        self.detector, self._calibrate = detector, calibrate

    @classmethod
    def from_model_file(cls, path, detector=None) -> tuple[Scorer, dict]:
        """The reason model at path (its LiteRT export when one kept parity) with its calibration.
        Returns (scorer, the model's info)."""
        from cry.litert import fastest_predictor
        from cry.model_files import calibration_of, load_model

        model, info = load_model(path)
        return cls(fastest_predictor(path, model, info), info["settings"], calibration_of(info), detector), info

    @property
    def cry_threshold(self) -> float:
        """Above this cry probability a window counts as crying (the detector's, else the reason
        model's: silence below its validation threshold)."""
        if self.detector is not None:
            return self.detector.threshold
        return 1.0 - self.calibration.get("silence_threshold", 0.5)

    def reasons(self, window: np.ndarray) -> np.ndarray:
        """Calibrated class probabilities [n_classes] of a window at the model's rate."""
        from cry.model import predict_probabilities

        raw = predict_probabilities(self.reason_model, window_to_image(window, self.settings)[None])
        return self._calibrate(raw, self.calibration)[0]

    def __call__(self, window: np.ndarray, rate: int) -> WindowScores:
        settings = self.settings
        window = np.nan_to_num(np.asarray(window, np.float32))
        level = rms_dbfs(window)
        if level < settings.quiet_dbfs:
            return WindowScores(level)
        if self.detector is not None:
            cry_probability, heard = self.detector(window, rate)
            if cry_probability <= self.cry_threshold:
                return WindowScores(level, cry_probability, heard)
        model_window = fit_length(resample(window, rate, settings.sample_rate_hz), settings.window_samples)
        reasons = self.reasons(model_window)
        if self.detector is None:
            cry_probability = 1.0 - float(reasons[SILENCE])
            heard = "crying" if cry_probability > self.cry_threshold else "room tone"
        return WindowScores(level, cry_probability, heard, reasons)


def decider_factory(scorer: Scorer, info: dict, smooth: int = 4, reason_threshold: float | None = None):
    """() -> a fresh (Decider, Episodes) pair as the model's JSON says: a reason is claimed only when
    held-out babies showed skill (info["reason_claims"]["allowed"]), from the share fitted on
    validation babies or reason_threshold (--threshold) when given."""
    allowed = bool(info.get("reason_claims", {}).get("allowed"))
    threshold = reason_threshold if reason_threshold is not None else info.get("uncertain_threshold", 1.0)

    def make_decider() -> tuple[Decider, Episodes]:
        return Decider(scorer.cry_threshold, threshold, allowed, smooth), Episodes(threshold, allowed)
    return make_decider


def deliver(outputs: list, method: str, item) -> None:
    """Hand item to every output; one that fails (a closed pipe, a full disk) is said once on
    stderr and dropped, so the monitor goes on listening for the others."""
    for output in list(outputs):
        try:
            getattr(output, method)(item)
        except Exception as exc:
            print(f"\nwarning: {type(output).__name__} stopped ({type(exc).__name__}: {exc}); listening on",
                  file=sys.stderr, flush=True)
            outputs.remove(output)


def run(source, scorer, decider: Decider, episodes: Episodes, outputs, window_seconds: float,
        hop_seconds: float, duration: float | None = None) -> str:
    """Listen to source until it ends (or duration, or Ctrl-C), handing every answer to outputs.

    Wall-clock times are the start time plus the position in the stream, so a file played
    faster than real time gets the times it would have had. Returns why listening stopped.
    """
    rate, started = source.samplerate, time.time()

    def on_window(end: int, window: np.ndarray) -> None:
        seconds = end / rate
        state = decider.update(scorer(window, rate), seconds, started + seconds)
        deliver(outputs, "on_window", state)
        event = episodes.update(state)
        if event is not None:
            deliver(outputs, "on_episode", event)

    why = "interrupted"
    try:
        source.start()
        why = listen(source, on_window, window_seconds, hop_seconds, duration)
    except KeyboardInterrupt:
        pass
    finally:
        source.close()
    seconds = source.ring.total / rate
    event = episodes.close(started + seconds, seconds)  # an episode still open ends with the listening
    if event is not None:
        deliver(outputs, "on_episode", event)
    return why


class Collect:
    """An output that keeps every window state and episode event (for analyse)."""

    def __init__(self):
        self.states: list[WindowState] = []
        self.events: list = []

    def on_window(self, state) -> None:
        self.states.append(state)

    def on_episode(self, event) -> None:
        self.events.append(event)

    def close(self) -> None:
        pass


def analyse(audio: np.ndarray, rate: int, scorer, make_decider, window_seconds: float, hop_seconds: float,
            label: str = "clip") -> Collect:
    """A whole clip through the live path, as fast as possible, with a fresh decider and episodes.

    make_decider: () -> (Decider, Episodes). Returns the Collect holding states and events.
    """
    collect = Collect()
    decider, episodes = make_decider()
    run(ArraySource(audio, rate, label, fast=True), scorer, decider, episodes, [collect], window_seconds, hop_seconds)
    return collect
