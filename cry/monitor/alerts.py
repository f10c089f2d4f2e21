"""When to alert a parent: the one rule the page and the phone notifications share."""
from __future__ import annotations

from cry.decision import EpisodeEvent, State, WindowState


class Alerts:
    """An alert when the episode under way has lasted `after` seconds: one per episode, and at most
    one per `cooldown` seconds (an episode still going when the cooldown ends alerts then)."""

    def __init__(self, after: float = 10.0, cooldown: float = 120.0):
        self.after, self.cooldown = after, cooldown
        self.last, self.alerted = -float("inf"), None  # time of the last alert, start of its episode

    def update(self, state: WindowState, episode: EpisodeEvent | None) -> dict | None:
        if episode is None or state.state != State.CRYING or episode.start == self.alerted:
            return None
        lasted = state.stream_seconds - episode.stream_start_seconds
        if lasted < self.after or state.time - self.last < self.cooldown:
            return None
        self.last, self.alerted = state.time, episode.start
        return {"time": state.time, "episode_start": episode.start, "lasted_seconds": round(lasted, 1),
                "reason_text": state.reason_text}
