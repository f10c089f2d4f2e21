"""The page's live side: the latest answer, the 10-minute chart, alerts, and the event-stream fan-out.

The classifier reaches the server through `WebOutput`, whose methods never wait: each answer is
handed to the server's event loop in one call, and every browser has its own bounded queue
there; a browser that falls behind is dropped (its page reconnects), and when all the streams
are taken the oldest one makes way, so a crowd of streams never locks a new page out.
"""
from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import sys
import threading
import time

from cry.decision import EpisodeEvent, WindowState
from cry.live_path import Output
from cry.monitor.alerts import Alerts
from cry.monitor.history import History

CHART_SECONDS = 600.0    # the page's chart: the last 10 minutes
CLIENT_QUEUE = 64        # messages waiting for one browser; beyond, it is dropped
MAX_CLIENTS = 100        # event streams at once; one more ends the oldest
STATE_SECONDS = 0.1      # at most ten state events a second (a --fast file makes hundreds)
KEEPALIVE_SECONDS = 15.0


# ---- the output the classifier feeds --------------------------------------------------------

class WebOutput(Output):
    """The latest state, the last 10 minutes for the chart, and the fan-out to event-stream clients.

    Called on the classifier's thread, where it only stores and posts: the clients' queues live
    on the server's event loop and are touched only there (loop.call_soon_threadsafe does not
    wait). States are coalesced, newest wins, at most one every STATE_SECONDS: live (an answer
    every 0.5 s) each one goes out; a file played --fast makes hundreds a second, and the
    browsers get ten. Episode and alert events always go out, at once.
    """

    def __init__(self, history: History | None = None, alerts: Alerts | None = None,
                 cry_threshold: float | None = None, max_clients: int = MAX_CLIENTS):
        self.history, self.alerts, self.cry_threshold = history, alerts or Alerts(), cry_threshold
        self.max_clients = max_clients
        self.latest: dict | None = None
        self.episode: EpisodeEvent | None = None          # the episode under way
        self.recent = collections.deque(maxlen=20000)     # (time, cry_probability, level_dbfs)
        self._recent_lock = threading.Lock()
        self.loop: asyncio.AbstractEventLoop | None = None  # set when the server starts
        self.clients: dict[asyncio.Queue, None] = {}   # oldest first
        self.dropped_clients = self.most_clients = self.evicted_clients = 0
        self._state_pending, self._state_sent_at = False, -float("inf")
        self.server = None
        self.stopped: float | None = None                 # when the monitor stopped (close), for the page

    # classifier thread
    def on_window(self, state: WindowState) -> None:
        self.latest = state.to_dict()
        with self._recent_lock:
            self.recent.append((state.time, state.cry_probability, state.level_dbfs))
            while self.recent[0][0] < state.time - CHART_SECONDS:
                self.recent.popleft()
        if not self._state_pending:  # else the one already posted will carry this newer state
            self._state_pending = True  # before posting: the loop may send it at once
            if not self._post(self._send_state):
                self._state_pending = False
        alert = self.alerts.update(state, self.episode)
        if alert is not None:
            self._post(self._send, "alert", alert)

    def on_episode(self, event: EpisodeEvent) -> None:
        self.episode = event if event.kind == "start" else None
        self._post(self._send, "episode", event.to_dict())

    def _post(self, callback, *args) -> bool:
        """Run callback on the server's loop, without waiting; False when there is no one to tell."""
        loop = self.loop
        if loop is None or not self.clients:
            return False
        try:
            loop.call_soon_threadsafe(callback, *args)
            return True
        except RuntimeError:  # the loop has closed
            return False

    # server's event loop
    def _send_state(self) -> None:
        wait = self._state_sent_at + STATE_SECONDS - self.loop.time()
        if wait > 0:
            self.loop.call_later(wait, self._send_state)
        elif self._state_pending:  # else sent already, by an earlier timer
            self._state_pending, self._state_sent_at = False, self.loop.time()
            self._fan_out(sse("state", self.latest))

    def _send(self, kind: str, data: dict) -> None:
        self._fan_out(sse(kind, data))

    def _fan_out(self, message: bytes) -> None:
        for queue in list(self.clients):
            try:
                queue.put_nowait(message)
            except asyncio.QueueFull:  # this browser is not reading: drop it, it will reconnect
                self.clients.pop(queue, None)
                self.dropped_clients += 1
                end_stream(queue)

    def subscribe(self) -> asyncio.Queue:
        """A new stream's queue; when max_clients are open, the oldest stream ends to make room (its
        page, if a page it is, reconnects in a few seconds and is then the newest)."""
        while len(self.clients) >= self.max_clients:
            oldest = next(iter(self.clients))
            del self.clients[oldest]
            self.evicted_clients += 1
            end_stream(oldest)
        queue = asyncio.Queue(CLIENT_QUEUE)
        self.clients[queue] = None
        self.most_clients = max(self.most_clients, len(self.clients))
        return queue

    def unsubscribe(self, queue: asyncio.Queue) -> None:
        self.clients.pop(queue, None)

    def end_streams(self, last: bytes | None = None) -> None:
        for queue in list(self.clients):
            end_stream(queue, last)
        self.clients.clear()

    # any thread
    def snapshot(self, totals: bool = True) -> dict:
        """/api/state: the latest window's answer (None fields before the first), the episode under
        way, and (a database read) the 12-hour totals."""
        latest = self.latest or {"state": None, "level_dbfs": None, "heard": None, "cry_probability": None,
                                 "reason": None, "reason_text": "", "guesses": []}
        return {**latest, "episode": self.episode.to_dict() if self.episode else None, "stopped": self.stopped,
                "totals": self.history.totals() if totals and self.history else None,
                "cry_threshold": self.cry_threshold, "alert_after": self.alerts.after,
                "alert_cooldown": self.alerts.cooldown,
                "streams": {"open": len(self.clients), "dropped": self.dropped_clients,
                            "evicted": self.evicted_clients}}

    def recent_points(self) -> list:
        with self._recent_lock:
            return list(self.recent)

    def close(self) -> None:
        """Every page is told "stopped" (it shows "monitor stopped"), after what was still queued for it."""
        loop, server = self.loop, self.server
        self.stopped = time.time()
        if loop is not None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self.end_streams, sse("stopped", {"time": self.stopped}))
        if server is not None:
            server.stop()
            print(f"page: {self.most_clients} event streams at most, {self.dropped_clients} dropped for not "
                  f"reading, {self.evicted_clients} ended to make room", file=sys.stderr)


def end_stream(queue: asyncio.Queue, last: bytes | None = None) -> None:
    """Put the end mark (None), after `last` if given: the stream ends once what is queued is sent.
    A queue without room for them is emptied first (that browser was not reading)."""
    if queue.maxsize - queue.qsize() < 2:
        while not queue.empty():
            queue.get_nowait()
    if last is not None:
        queue.put_nowait(last)
    queue.put_nowait(None)


def sse(kind: str, data) -> bytes:
    """One Server-Sent Event."""
    return f"event: {kind}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()
