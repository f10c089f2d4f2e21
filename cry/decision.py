"""The decision rule, pure (no audio, no model, no I/O): is it crying, and what can honestly be said of why.

One path serves live use and every evaluation that claims to measure live behaviour:
per-window scores -> a per-window crying decision -> the majority of the last few heard
windows -> episodes with a start and an end -> a reason only where held-out babies showed
skill, otherwise "reason uncertain" with the top guesses.
"""
from __future__ import annotations

import collections
import dataclasses
import time

import numpy as np

from cry.params import CLASSES

SILENCE = CLASSES.index("silence")
REASONS = tuple(c for c in CLASSES if c != "silence")
STATES = ("quiet", "not_crying", "crying")


def reason_shares(probabilities: np.ndarray, silence: int = SILENCE) -> np.ndarray:
    """Each row's reasons as shares of the cry: the silence column zeroed, the rest summing to 1."""
    shares = np.array(probabilities, dtype=float, ndmin=2)
    shares[:, silence] = 0.0
    return shares / np.maximum(shares.sum(axis=1, keepdims=True), 1e-12)


def decide(probabilities: np.ndarray, silence_threshold: float | None = None, silence: int = SILENCE) -> np.ndarray:
    """The predicted class of each row: the top class or, with a silence_threshold (fitted by
    calibration), silence at or above it and otherwise the top reason."""
    predicted = probabilities.argmax(axis=1)
    if silence_threshold is not None:
        predicted = np.where(probabilities[:, silence] >= silence_threshold, silence,
                             reason_shares(probabilities, silence).argmax(axis=1))
    return predicted


def reason_in_words(reason: str | None, guesses) -> str:
    """'hungry' when claimed, else 'reason uncertain (hungry 0.81, tired 0.06, ...)'."""
    if reason:
        return reason
    return "reason uncertain" + (f" ({', '.join(f'{c} {p:.2f}' for c, p in guesses)})" if guesses else "")


def top_guesses(shares: np.ndarray, n: int = 3) -> list[tuple[str, float]]:
    """The n likeliest reasons of a shares row [n_classes], likeliest first."""
    order = [i for i in np.argsort(shares)[::-1] if i != SILENCE][:n]
    return [(CLASSES[i], round(float(shares[i]), 3)) for i in order]


@dataclasses.dataclass(frozen=True)
class WindowScores:
    """What the models said of one window; None where a model was not asked (quiet, or no cry)."""

    level_dbfs: float
    cry_probability: float | None = None   # the detector's, calibrated; None: quiet, no model call
    heard: str = "quiet"                    # what the sound is, in a word: speech, music, crying, ...
    reasons: np.ndarray | None = None       # calibrated class probabilities [n_classes] of a cry


@dataclasses.dataclass(frozen=True)
class WindowState:
    """The answer for one window, as every output (terminal, CSV, web page, MQTT) shows it."""

    time: float                  # wall clock, seconds since the epoch
    stream_seconds: float        # position in the audio heard
    state: str                   # one of STATES
    level_dbfs: float
    heard: str                   # "quiet", "speech", "music", "laughter", "noise", ..., "crying"
    cry_probability: float | None
    reason: str | None           # claimed only where held-out babies showed skill; else None
    guesses: tuple = ()          # top reasons with their shares of the cry, when crying
    scores: WindowScores | None = dataclasses.field(default=None, compare=False, repr=False)  # this window's own

    @property
    def reason_text(self) -> str:
        """'hungry' when claimed, else 'reason uncertain (hungry 0.81, tired 0.06, ...)'; '' when not crying."""
        return reason_in_words(self.reason, self.guesses) if self.state == "crying" else ""

    def to_dict(self) -> dict:
        """JSON-ready: every field but the window's raw scores, plus reason_text."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "scores"}
        d["guesses"] = [list(g) for g in self.guesses]
        d["reason_text"] = self.reason_text
        return d


@dataclasses.dataclass(frozen=True)
class EpisodeEvent:
    """The start or the end of a crying episode. At "start", end and duration are None."""

    kind: str                    # "start" or "end"
    start: float                 # wall clock, seconds since the epoch
    stream_start_seconds: float
    end: float | None = None
    duration_seconds: float | None = None
    reason: str | None = None    # claimed reason over the episode, or None (uncertain)
    guesses: tuple = ()

    @property
    def reason_text(self) -> str:
        return reason_in_words(self.reason, self.guesses)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["guesses"] = [list(g) for g in self.guesses]
        d["reason_text"] = self.reason_text
        return d


class Decider:
    """Per-window scores -> WindowState, smoothed over the last `smooth` windows the models heard.

    Each heard window is decided alone (crying when the detector's probability exceeds
    cry_threshold), then the majority of the last `smooth` decides: one pause or one odd
    window does not end a crying episode, and a tie stays crying (a missed cry costs a parent
    more than a false alarm). A quiet window is its own answer and casts no vote.
    The reason is the mean of the crying windows' reason shares; it is claimed only when
    claim_reasons (held-out babies showed the model beats naming the prior) and its share
    reaches reason_threshold; otherwise "reason uncertain" with the top guesses.
    """

    def __init__(self, cry_threshold: float, reason_threshold: float = 1.0, claim_reasons: bool = False,
                 smooth: int = 4):
        self.cry_threshold, self.reason_threshold = cry_threshold, reason_threshold
        self.claim_reasons = claim_reasons
        self.history = collections.deque(maxlen=smooth)  # (crying?, reason shares or None) of heard windows

    def update(self, scores: WindowScores, stream_seconds: float = 0.0, now: float | None = None) -> WindowState:
        now = time.time() if now is None else now
        if scores.cry_probability is None:  # silence ends the votes: an old cry must not decide the next sound
            self.history.clear()
            return WindowState(now, stream_seconds, "quiet", scores.level_dbfs, "quiet", None, None, scores=scores)
        crying = scores.cry_probability > self.cry_threshold
        self.history.append((crying, None if scores.reasons is None else reason_shares(scores.reasons)[0]))
        votes = [c for c, _ in self.history]
        if sum(votes) * 2 < len(votes):
            heard = scores.heard if scores.heard != "crying" else "noise"
            return WindowState(now, stream_seconds, "not_crying", scores.level_dbfs, heard,
                               scores.cry_probability, None, scores=scores)
        shares = [s for c, s in self.history if c and s is not None]
        if not shares:
            return WindowState(now, stream_seconds, "crying", scores.level_dbfs, "crying", scores.cry_probability,
                               None, scores=scores)
        mean = np.mean(shares, axis=0)
        claimed = self.claim_reasons and mean.max() >= self.reason_threshold
        return WindowState(now, stream_seconds, "crying", scores.level_dbfs, "crying", scores.cry_probability,
                           CLASSES[int(mean.argmax())] if claimed else None, tuple(top_guesses(mean)), scores)


class Episodes:
    """Start and end of crying episodes, with the reason over the whole episode."""

    def __init__(self, reason_threshold: float = 1.0, claim_reasons: bool = False):
        self.reason_threshold, self.claim_reasons = reason_threshold, claim_reasons
        self.count, self._start, self._shares = 0, None, []

    @property
    def open(self) -> EpisodeEvent | None:
        """The start event of the episode under way, if any."""
        return self._start

    def update(self, state: WindowState) -> EpisodeEvent | None:
        """The start or end event this window makes, or None."""
        if state.state == "crying":
            if state.guesses:
                self._shares.append(dict(state.guesses))
            if self._start is None:
                self.count += 1
                self._start = EpisodeEvent("start", state.time, state.stream_seconds, reason=state.reason,
                                           guesses=state.guesses)
                return self._start
            return None
        return self.close(state.time, state.stream_seconds) if self._start is not None else None

    def close(self, now: float, stream_seconds: float) -> EpisodeEvent | None:
        """End the episode under way (also at the end of listening); None when there is none."""
        if self._start is None:
            return None
        start, shares, self._start, self._shares = self._start, self._shares, None, []
        mean = {c: float(np.mean([s.get(c, 0.0) for s in shares])) for c in REASONS} if shares else {}
        guesses = tuple(sorted(((c, round(p, 3)) for c, p in mean.items()), key=lambda g: -g[1])[:3])
        reason = guesses[0][0] if (guesses and self.claim_reasons and guesses[0][1] >= self.reason_threshold) else None
        return EpisodeEvent("end", start.start, start.stream_start_seconds, now,
                            round(stream_seconds - start.stream_start_seconds, 2), reason, guesses)
