"""Never silently deaf: when the input cannot be heard, every output is told "not listening", and why.

Two ways a night goes deaf. The device disappears (unplugged, the sound server restarted): the
microphone source (cry.monitor.sources) then keeps its stream going with digital zeros in real
time while it retries, and says why in `source.problem`, so the clock runs on and every hop
still has an answer. Or the device is there but delivers exact zeros (a mute switch, a dead
channel, a sound server that moved the stream to a null source): a real microphone always has
some noise, so a run of windows that are all exact zeros for `zeros_seconds` is not a quiet room.

The decision rule sees a window not heard as a quiet one (its votes cleared, an episode under
way ended there: nobody knows whether the cry went on), and the outputs see State.NOT_LISTENING.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from cry.decision import Decision, EpisodeEvent, State, WindowScores, WindowState

ZEROS_SECONDS = 30.0  # exact zeros this long: not listening (a virtual microphone gives them between feeds)


class Deafness:
    """Is the newest window heard? why(window, ...) -> None, or why not in words."""

    def __init__(self, zeros_seconds: float = ZEROS_SECONDS):
        self.zeros_seconds = zeros_seconds
        self.zeros_since: float | None = None  # stream seconds where the audio of the all-zero windows began

    def why(self, window: np.ndarray, end_seconds: float, rate: int, source=None) -> str | None:
        problem = getattr(source, "problem", None)
        if problem:
            return problem
        if window.any():
            self.zeros_since = None
            return None
        if self.zeros_since is None:
            self.zeros_since = end_seconds - len(window) / rate
        if end_seconds - self.zeros_since >= self.zeros_seconds:
            return f"the input gives only digital silence ({self.zeros_seconds:g} s or more: muted, or unplugged?)"
        return None


def not_listening(decision: Decision, why: str, level_dbfs: float, stream_seconds: float,
                  now: float) -> tuple[WindowState, EpisodeEvent | None]:
    """The answer for a window that was not heard: an episode under way ends (at its last crying
    window), the decision sees a quiet window, the outputs State.NOT_LISTENING (and why)."""
    event = decision.close(now, stream_seconds)
    state, _ = decision.update(WindowScores(level_dbfs), stream_seconds, now)
    return dataclasses.replace(state, state=State.NOT_LISTENING, heard=why), event
