"""The decision rule, pure (no audio, no model, no I/O): is it crying, and what can honestly be said of why.

One object, `Decision`, serves live use and every evaluation that claims to measure live
behaviour: per-window scores -> a per-window crying decision -> the majority of the last few
heard windows -> episodes with a start and an end -> a reason only where held-out babies showed
skill (`ReasonRule`), otherwise "reason not known" (or "reason uncertain", where claims are allowed
but this one is not sure enough).
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


def top_guesses(shares: np.ndarray, n: int = 3) -> tuple[tuple[str, float], ...]:
    """The n likeliest reasons of a shares row [n_classes], likeliest first."""
    order = [i for i in np.argsort(shares)[::-1] if i != SILENCE][:n]
    return tuple((CLASSES[i], round(float(shares[i]), 3)) for i in order)


@dataclasses.dataclass(frozen=True)
class ReasonRule:
    """When a reason may be claimed, and how it is said.

    Only where held-out babies showed the model beats naming the prior (`allowed`), and then only
    from `threshold` (a share of the cry) up. Where they showed no skill, the reason is "not
    known" and no guesses are shown at all: "hungry 0.80" is the corpus's prior, and a tired
    parent reads it as a prediction. `precision`: how often such claims were right on held-out
    babies, said in words with a claim.
    """

    threshold: float = 1.0
    allowed: bool = False
    precision: float | None = None

    def claim(self, shares: np.ndarray) -> tuple[str | None, tuple, str]:
        """(the claimed reason or None, the top guesses (none unless allowed), the reason in words)
        of mean reason shares [n_classes]."""
        if not self.allowed:
            return None, (), "reason not known"
        guesses = top_guesses(shares)
        if shares.max() < self.threshold:
            return None, guesses, "reason uncertain"
        reason = CLASSES[int(shares.argmax())]
        sure = f" (right {round(10 * self.precision)} times in 10 for babies it never heard)" if self.precision else ""
        return reason, guesses, f"probably {reason.replace('_', '/')}{sure}"


@dataclasses.dataclass(frozen=True)
class WindowScores:
    """What the models said of one window; None where a model was not asked (quiet, or no cry)."""

    level_dbfs: float
    cry_probability: float | None = None   # the detector's, calibrated; None: quiet, no model call
    heard: str = "quiet"                    # what the sound is, in a word: speech, music, crying, ...
    reasons: np.ndarray | None = None       # calibrated class probabilities [n_classes] of a cry
    embedding: np.ndarray | None = dataclasses.field(default=None, compare=False, repr=False)  # the detector's view
    gated: bool = False                     # the detector's gates held it back (see cry.detect.detector.Head)


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
    guesses: tuple = ()          # top reasons with their shares of the cry, only where claims are allowed
    reason_text: str = ""        # the reason in words ("reason not known", ...); "" when not crying
    window_crying: bool = False  # this window's own smoothed vote (an episode also spans its pauses)
    scores: WindowScores | None = dataclasses.field(default=None, compare=False, repr=False)  # this window's own

    def to_dict(self) -> dict:
        """JSON-ready: every field but the window's raw scores."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "scores"}
        d["state"] = self.state.value
        d["guesses"] = [list(g) for g in self.guesses]
        return d


@dataclasses.dataclass(frozen=True)
class EpisodeEvent:
    """The start or the end of a crying episode. At "start", end and duration are None.

    An episode starts at its first crying window (said once it has lasted live.episode_start_windows
    windows) and ends at its last (said once live.episode_end_seconds have passed without crying)."""

    kind: str                    # "start" or "end"
    start: float                 # wall clock, seconds since the epoch
    stream_start_seconds: float
    end: float | None = None
    duration_seconds: float | None = None
    reason: str | None = None    # claimed reason over the episode, or None
    guesses: tuple = ()
    reason_text: str = ""
    said_stream_seconds: float = 0.0  # where in the stream the event was said (the alert's time)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["guesses"] = [list(g) for g in self.guesses]
        return d


class Decision:
    """Per-window scores -> (WindowState, the episode event it makes or None).

    Each heard window is decided alone (crying when the cry probability exceeds cry_threshold),
    then the majority of the last live.smooth_windows decides the window's vote: one odd window
    does not change it, and a tie stays crying (a missed cry costs a parent more than a false
    alarm). A quiet window casts no vote and clears the votes (an old cry must not decide the
    next sound). An episode starts after live.episode_start_windows crying votes in a row and
    ends when live.episode_end_seconds pass without one, so a cry's pauses and breaths do not end
    it; while it lasts, every output shows crying. Its reason is the rule's claim on the mean
    reason shares of its crying windows.
    """

    def __init__(self, cry_threshold: float, live: LiveSettings = LiveSettings(), rule: ReasonRule = ReasonRule()):
        self.cry_threshold, self.live, self.rule = cry_threshold, live, rule
        self.history = collections.deque(maxlen=live.smooth_windows)  # (crying?, shares or None) of heard windows
        self.episodes = 0
        self._start: EpisodeEvent | None = None
        self._run: list[tuple[float, float]] = []   # (time, stream seconds) of the crying votes in a row
        self._last_cry = (0.0, 0.0)                  # (time, stream seconds) of the episode's last crying vote
        self._shares: list[np.ndarray] = []          # reason shares of the episode's crying windows

    @property
    def open_episode(self) -> EpisodeEvent | None:
        """The start event of the episode under way, if any."""
        return self._start

    def update(self, scores: WindowScores, stream_seconds: float = 0.0,
               now: float | None = None) -> tuple[WindowState, EpisodeEvent | None]:
        now = time.time() if now is None else now
        crying, shares = self._vote(scores)
        event = self._episode(crying, shares, now, stream_seconds)
        return self._state(scores, crying, now, stream_seconds), event

    def _vote(self, scores: WindowScores) -> tuple[bool, np.ndarray | None]:
        """This window's smoothed vote, and its own reason shares when it is a crying window."""
        if scores.cry_probability is None:
            self.history.clear()
            return False, None
        crying = scores.cry_probability > self.cry_threshold
        shares = None if scores.reasons is None else reason_shares(scores.reasons)[0]
        self.history.append((crying, shares))
        votes = [c for c, _ in self.history]
        return sum(votes) * 2 >= len(votes), shares if crying else None

    def _episode(self, crying: bool, shares: np.ndarray | None, now: float, at: float) -> EpisodeEvent | None:
        if crying:
            self._run.append((now, at))
            if shares is not None:
                self._shares.append(shares)
        if self._start is not None:
            if crying:
                self._last_cry = (now, at)
                return None
            return self.close(now, at) if at - self._last_cry[1] >= self.live.episode_end_seconds else None
        if not crying:
            self._run, self._shares = [], []
            return None
        if len(self._run) < self.live.episode_start_windows:
            return None
        self.episodes += 1
        (first, first_at), self._last_cry = self._run[0], (now, at)
        reason, guesses, words = self._claim(self._shares)
        self._start = EpisodeEvent("start", first, first_at, reason=reason, guesses=guesses, reason_text=words,
                                   said_stream_seconds=at)
        return self._start

    def _claim(self, shares: list[np.ndarray]) -> tuple[str | None, tuple, str]:
        return self.rule.claim(np.mean(shares, axis=0) if shares else np.zeros(len(CLASSES)))

    def _state(self, scores: WindowScores, crying: bool, now: float, at: float) -> WindowState:
        if self._start is None:
            if scores.cry_probability is None:
                return WindowState(now, at, State.QUIET, scores.level_dbfs, "quiet", None, None, scores=scores)
            heard = scores.heard if scores.heard != "crying" else "noise"
            return WindowState(now, at, State.NOT_CRYING, scores.level_dbfs, heard, scores.cry_probability, None,
                               window_crying=crying, scores=scores)
        votes = [s for c, s in self.history if c and s is not None]
        reason, guesses, words = self._claim(votes or self._shares)
        heard = "crying" if crying else ("quiet" if scores.cry_probability is None else scores.heard)
        return WindowState(now, at, State.CRYING, scores.level_dbfs, heard, scores.cry_probability, reason, guesses,
                           words, crying, scores)

    def close(self, now: float, stream_seconds: float) -> EpisodeEvent | None:
        """End the episode under way at its last crying window (also at the end of listening); None
        when there is none."""
        if self._start is None:
            return None
        start, (end, end_at) = self._start, self._last_cry
        reason, guesses, words = self._claim(self._shares)
        self._start, self._run, self._shares = None, [], []
        return EpisodeEvent("end", start.start, start.stream_start_seconds, end,
                            round(end_at - start.stream_start_seconds, 2), reason, guesses, words, stream_seconds)
