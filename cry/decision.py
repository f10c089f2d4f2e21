"""The decision rule, pure (no audio, no model, no I/O): is it crying, and what can honestly be said of why.

One object, `Decision`, serves live use and every evaluation that claims to measure live
behaviour: per-window scores -> a per-window crying decision -> the majority of the last few
heard windows -> episodes with a start and an end -> a reason only where held-out babies showed
skill (`ReasonRule`), otherwise "reason uncertain".
"""
from __future__ import annotations

import collections
import dataclasses
import enum
import time

import numpy as np

from cry.params import CLASSES, SILENCE, LiveSettings


class State(enum.StrEnum):
    """What every output shows for a window; the values are the page's and the JSON's words."""

    QUIET = "quiet"
    NOT_CRYING = "not_crying"
    CRYING = "crying"
    NOT_LISTENING = "not_listening"  # the input is gone or gives only digital zeros (cry.deafness): not a decision

    @property
    def text(self) -> str:
        """In words, for a sensor or a line: "quiet", "not crying", "crying"."""
        return self.value.replace("_", " ")


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


def top_guesses(shares: np.ndarray, n: int = 3) -> tuple[tuple[str, float], ...]:
    """The n likeliest reasons of a shares row [n_classes], likeliest first."""
    order = [i for i in np.argsort(shares)[::-1] if i != SILENCE][:n]
    return tuple((CLASSES[i], round(float(shares[i]), 3)) for i in order)


@dataclasses.dataclass(frozen=True)
class ReasonRule:
    """When a reason may be claimed: only where held-out babies showed the model beats naming
    the prior (`allowed`), and then only from `threshold` (a share of the cry) up."""

    threshold: float = 1.0
    allowed: bool = False

    def claim(self, shares: np.ndarray) -> tuple[str | None, tuple]:
        """(the claimed reason or None, the top guesses) of mean reason shares [n_classes]."""
        claimed = self.allowed and shares.max() >= self.threshold
        return (CLASSES[int(shares.argmax())] if claimed else None), top_guesses(shares)


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
    state: State
    level_dbfs: float
    heard: str                   # "quiet", "speech", "music", "laughter", "noise", ..., "crying"
    cry_probability: float | None
    reason: str | None           # claimed only where held-out babies showed skill; else None
    guesses: tuple = ()          # top reasons with their shares of the cry, when crying
    scores: WindowScores | None = dataclasses.field(default=None, compare=False, repr=False)  # this window's own

    @property
    def reason_text(self) -> str:
        """'hungry' when claimed, else 'reason uncertain (hungry 0.81, tired 0.06, ...)'; '' when not crying."""
        return reason_in_words(self.reason, self.guesses) if self.state == State.CRYING else ""

    def to_dict(self) -> dict:
        """JSON-ready: every field but the window's raw scores, plus reason_text."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "scores"}
        d["state"] = self.state.value
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


class Decision:
    """Per-window scores -> (WindowState, the episode event it makes or None).

    Each heard window is decided alone (crying when the cry probability exceeds cry_threshold),
    then the majority of the last live.smooth_windows decides: one pause or one odd window does
    not end a crying episode, and a tie stays crying (a missed cry costs a parent more than a
    false alarm). A quiet window is its own answer, casts no vote and clears the votes (an old
    cry must not decide the next sound). A state's reason is the rule's claim on the mean reason
    shares of its crying votes; an episode's, on the mean shares of all its crying windows.
    """

    def __init__(self, cry_threshold: float, live: LiveSettings = LiveSettings(), rule: ReasonRule = ReasonRule()):
        self.cry_threshold, self.live, self.rule = cry_threshold, live, rule
        self.history = collections.deque(maxlen=live.smooth_windows)  # (crying?, shares or None) of heard windows
        self.episodes = 0
        self._start: EpisodeEvent | None = None
        self._episode_shares: list[np.ndarray] = []

    @property
    def open_episode(self) -> EpisodeEvent | None:
        """The start event of the episode under way, if any."""
        return self._start

    def update(self, scores: WindowScores, stream_seconds: float = 0.0,
               now: float | None = None) -> tuple[WindowState, EpisodeEvent | None]:
        state = self._state(scores, stream_seconds, time.time() if now is None else now)
        return state, self._episode(state)

    def _state(self, scores: WindowScores, stream_seconds: float, now: float) -> WindowState:
        if scores.cry_probability is None:
            self.history.clear()
            return WindowState(now, stream_seconds, State.QUIET, scores.level_dbfs, "quiet", None, None, scores=scores)
        crying = scores.cry_probability > self.cry_threshold
        shares = None if scores.reasons is None else reason_shares(scores.reasons)[0]
        self.history.append((crying, shares))
        votes = [c for c, _ in self.history]
        if sum(votes) * 2 < len(votes):
            heard = scores.heard if scores.heard != "crying" else "noise"
            return WindowState(now, stream_seconds, State.NOT_CRYING, scores.level_dbfs, heard,
                               scores.cry_probability, None, scores=scores)
        if crying and shares is not None:
            self._episode_shares.append(shares)
        heard_shares = [s for c, s in self.history if c and s is not None]
        reason, guesses = self.rule.claim(np.mean(heard_shares, axis=0)) if heard_shares else (None, ())
        return WindowState(now, stream_seconds, State.CRYING, scores.level_dbfs, "crying", scores.cry_probability,
                           reason, guesses, scores)

    def _episode(self, state: WindowState) -> EpisodeEvent | None:
        if state.state == State.CRYING:
            if self._start is not None:
                return None
            self.episodes += 1
            self._start = EpisodeEvent("start", state.time, state.stream_seconds, reason=state.reason,
                                       guesses=state.guesses)
            return self._start
        return self.close(state.time, state.stream_seconds)

    def close(self, now: float, stream_seconds: float) -> EpisodeEvent | None:
        """End the episode under way (also at the end of listening); None when there is none."""
        if self._start is None:
            return None
        start, shares, self._start, self._episode_shares = self._start, self._episode_shares, None, []
        reason, guesses = self.rule.claim(np.mean(shares, axis=0)) if shares else (None, ())
        return EpisodeEvent("end", start.start, start.stream_start_seconds, now,
                            round(stream_seconds - start.stream_start_seconds, 2), reason, guesses)

