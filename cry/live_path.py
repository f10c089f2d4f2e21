"""The live path: window -> scores -> decision -> outputs, for a microphone, a file or a clip.

Live use, the page's upload, and every evaluation that claims to measure live behaviour (the
clip report, the nights, the detector's design table) run through `run`, `analyse` and
`play_clip` here, with the detector's LiveSettings, so they cannot drift apart. The models
arrive as objects (a detector: window, rate -> (p, heard); a reason predictor: window at its
rate -> calibrated class probabilities), built by cry.assemble from their files.
"""
from __future__ import annotations

import sys
import time

import numpy as np

from cry.audio import is_quiet, resample, rms_dbfs
from cry.deafness import Deafness, not_listening
from cry.decision import Decision, EpisodeEvent, ReasonRule, WindowScores, WindowState
from cry.params import SILENCE, LiveSettings
from cry.patches import PatchCache
from cry.stream import array_source, listen


class Output:
    """Receives every window's answer and every episode's start and end. Methods must not block long."""

    def on_window(self, state: WindowState) -> None:
        pass

    def on_episode(self, event: EpisodeEvent) -> None:
        pass

    def close(self) -> None:
        pass


def output_failed(output, exc: Exception) -> None:
    """The one policy for an output that fails (a closed pipe, a full disk, a dead thread): said
    once on stderr, then it is dropped and the monitor goes on listening for the others."""
    print(f"\nwarning: {type(output).__name__} stopped ({type(exc).__name__}: {exc}); listening on",
          file=sys.stderr, flush=True)


def deliver(outputs: list, method: str, item) -> None:
    """Hand item to every output; one that fails is dropped (output_failed)."""
    for output in list(outputs):
        try:
            getattr(output, method)(item)
        except Exception as exc:
            output_failed(output, exc)
            outputs.remove(output)


def hand_out(outputs: list, state: WindowState, event: EpisodeEvent | None) -> None:
    """A window's answer to every output, then the episode event it made, if any."""
    deliver(outputs, "on_window", state)
    if event is not None:
        deliver(outputs, "on_episode", event)


def fit_length(audio: np.ndarray, n: int) -> np.ndarray:
    """Exactly n samples: the newest ones, zero-padded at the front (resampling may be 1 off)."""
    return np.pad(audio, (max(0, n - len(audio)), 0))[-n:]


class Scorer:
    """One window at the device rate -> WindowScores.

    In order: the quiet gate (RMS below live.quiet_dbfs: no model call); the detector (is it a
    cry at all, or speech, music, a laugh, a dog?) when there is one, else the reason model's own
    crying-vs-silence; then the reason model, only for windows that may be cries, on the newest
    part of the window its own settings ask for, at its own rate. Without a reason model (reasons
    None: scanning recordings for where the crying is, which asks no reason) the detector alone
    decides and every episode's reason is "not known".
    """

    def __init__(self, reasons, live: LiveSettings = LiveSettings(), detector=None):
        self.reasons, self.live, self.detector = reasons, live, detector
        if reasons is None and detector is None:
            raise ValueError("a scorer needs a detector, a reason model, or both")
        if reasons is not None and reasons.settings.window_seconds > live.window_seconds:
            from cry.files import UserError

            raise UserError(f"the reason model's windows ({reasons.settings.window_seconds:g} s) are longer than "
                            f"the live path's ({live.window_seconds:g} s)")

    @property
    def cry_threshold(self) -> float:
        """Above this cry probability a window counts as crying (the detector's, else the reason
        model's: silence below its validation threshold)."""
        if self.detector is not None:
            return self.detector.threshold
        return 1.0 - self.reasons.silence_threshold

    def reason_window(self, window: np.ndarray, rate: int) -> np.ndarray:
        """The reason model's view of a live window: its newest settings.window_seconds, at its rate."""
        settings = self.reasons.settings
        newest = window[-int(round(settings.window_seconds * rate)):]
        return fit_length(resample(newest, rate, settings.sample_rate_hz), settings.window_samples)

    def __call__(self, window: np.ndarray, rate: int, end: int | None = None, cache=None) -> WindowScores:
        """end: the stream sample the window ends at; cache: the stream's patches (see Session)."""
        level = rms_dbfs(window)
        if is_quiet(level, self.live.quiet_dbfs):
            return WindowScores(level)
        embedding, gated = None, False
        if self.detector is not None:
            judged = self.detector.judge(window, rate, end, cache)
            cry_probability, heard, embedding, gated = judged.probability, judged.heard, judged.embedding, judged.gated
            if cry_probability <= self.cry_threshold or self.reasons is None:
                return WindowScores(level, cry_probability, heard, embedding=embedding, gated=gated)
        reasons = self.reasons(self.reason_window(window, rate))
        if self.detector is None:
            cry_probability = 1.0 - float(reasons[SILENCE])
            heard = "crying" if cry_probability > self.cry_threshold else "room tone"
        return WindowScores(level, cry_probability, heard, reasons, embedding, gated)


class LivePath:
    """The scorer, the live settings and the reason rule: what every stream is judged by."""

    def __init__(self, scorer: Scorer, rule: ReasonRule = ReasonRule()):
        self.scorer, self.live, self.rule = scorer, scorer.live, rule

    def decision(self) -> Decision:
        return Decision(self.scorer.cry_threshold, self.live, self.rule)

    def session(self) -> Session:
        return Session(self)


class Session:
    """One stream through the live path: its decision and the detector's patches computed so far
    (each YAMNet patch once), so that streams judged at once (live and an upload) never mix."""

    def __init__(self, path: LivePath):
        self.path, self.decision, self.patches = path, path.decision(), PatchCache()

    def score(self, window: np.ndarray, rate: int, end: int) -> WindowScores:
        """What the models say of the window ending at stream sample `end` (no decision: a scan
        scores pieces of a recording apart and decides over their scores in order)."""
        return self.path.scorer(window, rate, end, self.patches)

    def answer(self, window: np.ndarray, rate: int, end: int, now: float) -> tuple[WindowState, EpisodeEvent | None]:
        """The window ending at stream sample `end`, at wall-clock time `now`."""
        return self.decision.update(self.score(window, rate, end), end / rate, now)


def run(source, session: Session, outputs: list, duration: float | None = None,
        deafness: Deafness | None = None) -> str:
    """Listen to source until it ends (or duration, or Ctrl-C), handing every answer to outputs.

    Wall-clock times are the start time plus the position in the stream, so a file played
    faster than real time gets the times it would have had. With `deafness` (live input), a
    window that cannot be heard is "not listening" (cry.deafness). Returns why listening stopped.
    """
    rate, started, live = source.samplerate, time.time(), session.path.live

    def on_window(end: int, window: np.ndarray) -> None:
        seconds = end / rate
        why = deafness.why(window, seconds, rate, source) if deafness is not None else None
        if why is not None:
            state, event = not_listening(session.decision, why, rms_dbfs(window), seconds, started + seconds)
        else:
            state, event = session.answer(window, rate, end, started + seconds)
        hand_out(outputs, state, event)

    why = "interrupted"
    try:
        source.start()
        why = listen(source, on_window, live.window_seconds, live.hop_seconds, duration)
    except KeyboardInterrupt:
        pass
    finally:
        source.close()
    seconds = source.ring.total / rate
    event = session.decision.close(started + seconds, seconds)  # an episode still open ends with the listening
    if event is not None:
        deliver(outputs, "on_episode", event)
    return why


class Collect(Output):
    """An output that keeps every window state and episode event (for analyse)."""

    def __init__(self):
        self.states: list[WindowState] = []
        self.events: list[EpisodeEvent] = []

    def on_window(self, state) -> None:
        self.states.append(state)

    def on_episode(self, event) -> None:
        self.events.append(event)


def analyse(audio: np.ndarray, rate: int, path: LivePath, label: str = "clip") -> Collect:
    """A whole recording through the live path, as fast as possible, with a fresh decision."""
    collect = Collect()
    run(array_source(audio, rate, label, fast=True), path.session(), [collect])
    return collect


def pad_clip(audio: np.ndarray, rate: int, live: LiveSettings) -> np.ndarray:
    """A clip as it is played on its own: live.clip_padding_seconds of digital silence before and
    after, and more before a clip shorter than a window, so that one window holds all of it (the
    live path answers only once a window is full, and a short word must still be heard)."""
    lead = max(live.clip_padding_seconds, live.window_seconds - len(audio) / rate)
    return np.concatenate([np.zeros(int(lead * rate), np.float32), np.asarray(audio, np.float32),
                           np.zeros(int(live.clip_padding_seconds * rate), np.float32)])


def clip_window_ends(n_samples: int, rate: int, live: LiveSettings) -> range:
    """The sample each window of a recording played with `analyse` ends at: a full window first,
    then one every hop (blocks of a recording line up with the hop at the usual rates)."""
    size, hop = int(round(live.window_seconds * rate)), max(1, int(round(live.hop_seconds * rate)))
    return range(size, n_samples + 1, hop)


def play_clip(audio: np.ndarray, rate: int, path: LivePath) -> Collect:
    """One clip played on its own through the live path (pad_clip)."""
    return analyse(pad_clip(audio, rate, path.live), rate, path)
