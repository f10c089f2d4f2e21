"""Where answers go: one small interface for the terminal line, the CSV log and trace, the
history, the web page and MQTT, and a wrapper that keeps a slow output off the classifier's path."""
from __future__ import annotations

import csv
import queue
import sys
import threading
import time
from pathlib import Path

from cry.decision import EpisodeEvent, State, WindowState
from cry.files import UserError
from cry.live_path import Output, output_failed
from cry.params import CLASSES


def describe(state: WindowState) -> str:
    """The human line for one window."""
    if state.state == State.QUIET:
        return f"quiet ({state.level_dbfs:.0f} dBFS)"
    if state.state == State.NOT_CRYING:
        return f"not crying: {state.heard} ({state.level_dbfs:.0f} dBFS)"
    if state.state == State.NOT_LISTENING:
        return f"NOT LISTENING: {state.heard}"
    return f"crying: {state.reason_text}"


class TerminalLine(Output):
    """One updating line on a terminal; one line per window otherwise (a pipe or a log file)."""

    def __init__(self, stream=sys.stdout):
        self.stream, self.tty = stream, stream.isatty()

    def on_window(self, state: WindowState) -> None:
        clock = time.strftime("%H:%M:%S", time.localtime(state.time))
        line = f"{clock} {state.stream_seconds:7.1f} s  {describe(state)}"
        print(f"\r{line:<110}" if self.tty else line, end="" if self.tty else "\n", file=self.stream, flush=True)

    def close(self) -> None:
        if self.tty:
            print(file=self.stream)


def open_csv(path: Path, header: list, mode: str):
    """(file, writer); the header goes into a new or empty file. One-line error when unwritable."""
    try:
        f = open(path, mode, newline="")
    except OSError as exc:
        raise UserError(f"{path}: cannot write ({exc.strerror})") from None
    writer = csv.writer(f)
    if f.tell() == 0:
        writer.writerow(header)
    return f, writer


class EpisodeLog(Output):
    """Appends each episode's start and end to a CSV file, flushed at once (survives a kill)."""

    HEADER = ["time", "stream_seconds", "event", "reason", "guesses", "duration_seconds"]

    def __init__(self, path: Path):
        self.path = path
        self.file, self.writer = open_csv(path, self.HEADER, "a")

    def on_episode(self, event: EpisodeEvent) -> None:
        when = event.start if event.kind == "start" else event.end
        seconds = event.stream_start_seconds + (event.duration_seconds or 0.0)
        self.writer.writerow([time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(when)), f"{seconds:.1f}",
                              event.kind, event.reason_text,
                              "; ".join(f"{c} {p:.2f}" for c, p in event.guesses),
                              "" if event.duration_seconds is None else f"{event.duration_seconds:.1f}"])
        self.file.flush()

    def close(self) -> None:
        self.file.close()


class Trace(Output):
    """Every window's state and scores, for debugging and for tests."""

    HEADER = ["stream_seconds", "state", "level_dbfs", "heard", "cry_probability", "reason", "guesses", *CLASSES]

    def __init__(self, path: Path):
        self.path = path
        self.file, self.writer = open_csv(path, self.HEADER, "w")

    def on_window(self, state: WindowState) -> None:
        """One row; the class columns hold the window's own calibrated reason-model probabilities
        (empty where the reason model was not asked)."""
        reasons = state.scores.reasons if state.scores is not None else None
        self.writer.writerow([repr(state.stream_seconds), state.state.value, f"{state.level_dbfs:.2f}", state.heard,
                              "" if state.cry_probability is None else f"{state.cry_probability:.4f}",
                              state.reason or "", "; ".join(f"{c} {p:.3f}" for c, p in state.guesses),
                              *([""] * len(CLASSES) if reasons is None else [f"{p:.6f}" for p in reasons])])

    def close(self) -> None:
        self.file.close()


class Background(Output):
    """Runs another output on its own thread behind a bounded queue: the classifier only enqueues.

    When the queue is full (the output is stuck: a dead broker, a slow disk) the oldest window
    answers are dropped, never episode events, and the drops are counted. An inner output that
    fails is treated as any failing output (cry.live_path.output_failed): said once, then dropped.
    """

    def __init__(self, inner: Output, size: int = 256):
        self.inner, self.dropped, self.failed = inner, 0, False
        self._queue: queue.Queue = queue.Queue(size)
        self._thread = threading.Thread(target=self._run, name=type(inner).__name__, daemon=True)
        self._thread.start()

    def _put(self, item, droppable: bool) -> None:
        while True:
            try:
                self._queue.put_nowait(item)
                return
            except queue.Full:
                if droppable:
                    self.dropped += 1
                    return
                try:
                    self._queue.get_nowait()  # make room for the event: drop the oldest
                    self.dropped += 1
                except queue.Empty:
                    pass

    def on_window(self, state: WindowState) -> None:
        self._put(("window", state), droppable=True)

    def on_episode(self, event: EpisodeEvent) -> None:
        self._put(("episode", event), droppable=False)

    def _run(self) -> None:
        while True:
            kind, item = self._queue.get()
            if kind == "stop":
                return
            if self.failed:
                continue
            try:
                (self.inner.on_window if kind == "window" else self.inner.on_episode)(item)
            except Exception as exc:  # an output failing must not stop the others or the classifier
                self.failed = True
                output_failed(self.inner, exc)

    def close(self, timeout: float = 5.0) -> None:
        self._put(("stop", None), droppable=False)
        self._thread.join(timeout)
        self.inner.close()
