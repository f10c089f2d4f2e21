"""A parent's "not a cry" and "that was a cry", on the monitor's side: what was just heard, kept to be marked.

The Marker is an output like the others: it keeps the YAMNet embedding (the detector has computed
them anyway) of every window heard in the last AUDIO_SECONDS and, of older ones, only those of
crying episodes, for KEEP_SECONDS (what can be marked: an episode, or the last minute; a night of
white noise is every window heard, and would be 170 MB of embeddings), and, through the ring's
tap, the audio of the last AUDIO_SECONDS. A mark (from the page or the command line) takes the windows of
one episode, or of the last minute, hands them to cry.detect.feedback.HomeLearning, which refits
the head at once, and keeps the clip as a WAV in the feedback folder on this machine (0600).
"""
from __future__ import annotations

import collections
import dataclasses
import itertools
import sys
import threading
import time
from pathlib import Path

import numpy as np

from cry.decision import State
from cry.detect import detector as det
from cry.detect.feedback import LABELS, HomeLearning
from cry.files import UserError, atomic_output
from cry.live_path import Output

KEEP_SECONDS = 12 * 3600   # the episodes of the page's night (embeddings, float16: about 2 KB a window)
AUDIO_SECONDS = 180.0      # the audio kept to save a marked clip
WORDS = {"not_cry": "not a cry", "cry": "a cry"}


@dataclasses.dataclass(frozen=True)
class Marked:
    """What a mark did: the windows learnt, the clip kept, and how the same windows are judged now."""

    label: str
    windows: int
    clip: Path | None
    crying_before: int     # of those windows, above the threshold before the mark
    crying_after: int      # and after
    gated: int             # held back by YAMNet's gates whatever the head says (a miss that cannot be learnt)

    def text(self) -> str:
        kept = f"; the clip is kept in {self.clip}" if self.clip else "; its audio was no longer in memory"
        gated = (f"; {self.gated} of them YAMNet hears as something else more strongly (its gates hold, whatever "
                 "is marked)") if self.gated and self.label == "cry" else ""
        return (f"learnt {self.windows} windows as {WORDS[self.label]}: {self.crying_before} of them were crying "
                f"before, {self.crying_after} now{gated}{kept}")


class Marker(Output):
    """Keeps the recent windows and audio of a stream so that a parent can mark them (see the module)."""

    def __init__(self, learning: HomeLearning, rate: int, window_seconds: float, audio_seconds: float = AUDIO_SECONDS):
        self.learning, self.rate, self.window_seconds = learning, rate, window_seconds
        self.audio_seconds = audio_seconds
        self.recent = collections.deque()    # (stream_seconds, level_dbfs, embedding float16, scores, crying)
        self.crying = collections.deque()    # the same, of crying windows older than audio_seconds
        self.episodes = {}                   # episode start (wall clock) -> (stream start, stream end or None)
        self.audio, self.audio_end, self.audio_kept = collections.deque(), 0, 0  # int16 blocks; samples written, kept
        self._lock = threading.Lock()

    def tap(self, samples: np.ndarray) -> None:
        """Every block the ring gets (the audio thread: only appends)."""
        block = (np.clip(samples, -1, 1) * 32767).astype(np.int16)
        with self._lock:
            self.audio.append(block)
            self.audio_end += len(block)
            self.audio_kept += len(block)
            while self.audio and self.audio_kept - len(self.audio[0]) >= self.audio_seconds * self.rate:
                self.audio_kept -= len(self.audio.popleft())

    def on_window(self, state) -> None:
        scores = state.scores
        if scores is None or scores.embedding is None:
            return
        with self._lock:
            self.recent.append((state.stream_seconds, state.level_dbfs, scores.embedding.astype(np.float16), scores,
                                state.state == State.CRYING))
            while self.recent and self.recent[0][0] < state.stream_seconds - self.audio_seconds:
                if (old := self.recent.popleft())[4]:
                    self.crying.append(old)
            while self.crying and self.crying[0][0] < state.stream_seconds - KEEP_SECONDS:
                self.crying.popleft()

    def on_episode(self, event) -> None:
        with self._lock:
            end = None if event.kind == "start" else event.stream_start_seconds + event.duration_seconds
            self.episodes[round(event.start, 3)] = (event.stream_start_seconds, end)
            while len(self.episodes) > 1000:
                self.episodes.pop(next(iter(self.episodes)))

    def episode_span(self, start: float) -> tuple[float, float]:
        """(first, last) stream seconds of the episode that started at wall-clock `start`."""
        with self._lock:
            found = self.episodes.get(round(start, 3))
            now = self.recent[-1][0] if self.recent else 0.0
        if found is None:
            raise UserError("no such episode in this run of the monitor (episodes of an earlier run cannot be marked)")
        return found[0], now if found[1] is None else found[1]

    def mark(self, label: str, first: float, last: float) -> Marked:
        """Learn the windows ending between stream seconds first and last (up to a window later) as
        label; of a cry, only its loud part (det.loud_part). The clip is kept when still in memory."""
        if label not in LABELS:
            raise UserError(f"label: one of {', '.join(LABELS)}")
        with self._lock:
            rows = [w for w in itertools.chain(self.crying, self.recent) if first <= w[0] <= last + self.window_seconds]
            clip = self._clip(first - self.window_seconds, last + self.window_seconds)
        if label == "cry" and rows:
            rows = [r for r, keep in zip(rows, det.loud_part([r[1] for r in rows], np.ones(len(rows), bool))) if keep]
        if not rows:
            raise UserError("no window of that time was heard (quiet, or no longer kept): nothing to learn")
        return learn(self.learning, label, np.stack([r[2] for r in rows]).astype(np.float32),
                     [r[3] for r in rows], clip, self.rate)

    def mark_request(self, label: str, episode_start: float | None = None, seconds: float | None = None) -> dict:
        """The page's mark: an episode (by its wall-clock start) or the last `seconds` heard.
        Returns the answer as JSON; raises UserError saying what cannot be marked."""
        if episode_start is not None:
            first, last = self.episode_span(float(episode_start))
        else:
            seconds = float(seconds or 60.0)
            if not 0 < seconds <= AUDIO_SECONDS:
                raise UserError(f"seconds: between 0 and {AUDIO_SECONDS:g}")
            with self._lock:
                last = self.recent[-1][0] if self.recent else 0.0
            first = max(0.0, last - seconds)
        result = self.mark(label, first, last)
        print(f"\nfeedback from the page: {result.text()}", file=sys.stderr, flush=True)
        return {**dataclasses.asdict(result), "clip": str(result.clip) if result.clip else None,
                "text": result.text()}

    def _clip(self, first: float, last: float) -> np.ndarray | None:
        """The audio between stream seconds first and last, if it is still kept (under the lock)."""
        start_sample, first_sample = self.audio_end - self.audio_kept, max(0, int(first * self.rate))
        if not self.audio or first_sample < start_sample:
            return None
        audio = np.concatenate(self.audio)
        return audio[first_sample - start_sample:max(0, int(last * self.rate) - start_sample)]


def home_learning(live_path, detector_path: Path | None, folder: Path | None, needed: bool) -> HomeLearning | None:
    """The live path's detector learning from this home's marks in folder, or None (said) when it
    cannot: no detector, or a detector saved without its training sample. needed: a mark was asked
    for, so not being able to is an error."""
    detector = live_path.scorer.detector
    why = ("--feedback-dir none" if folder is None else "no detector (--detector none)" if detector is None
           else None)
    if why is None:
        try:
            return HomeLearning(detector, Path(detector_path), Path(folder))
        except UserError as exc:
            if needed:
                raise
            why = str(exc)
    if needed:
        raise UserError(f"cannot mark sounds: {why}")
    print(f"marking sounds is off: {why}", file=sys.stderr)
    return None


def learn(learning: HomeLearning, label: str, embeddings: np.ndarray, scores: list, clip: np.ndarray | None,
          rate: int) -> Marked:
    """Mark windows (their embeddings [n, 1024] and WindowScores) as label, keep the clip, and say
    how the refitted head judges the same windows."""
    detector = learning.detector
    gated = np.array([s.gated for s in scores])
    before = int(np.sum([(s.cry_probability or 0.0) > detector.threshold for s in scores]))
    learning.mark(label, embeddings)
    after = int(np.sum((detector.head.ungated(embeddings) > detector.threshold) & ~gated))
    path = None
    if clip is not None and len(clip):
        path = save_clip(learning.folder, f"{time.strftime('%Y%m%d-%H%M%S')}-{label}", clip, rate)
    return Marked(label, len(embeddings), path, before, after, int(gated.sum()))


def save_clip(folder: Path, name: str, audio: np.ndarray, rate: int) -> Path:
    """A marked clip as 16-bit WAV in folder/clips, readable by this user only (a second mark in
    the same second gets its own name)."""
    import soundfile

    path, n = Path(folder) / "clips" / f"{name}.wav", 1
    while path.exists():
        n += 1
        path = path.with_name(f"{name}-{n}.wav")
    with atomic_output(path, mode=0o600) as tmp:
        soundfile.write(tmp, audio, rate, subtype="PCM_16")
    return path


def mark_file(path: Path, label: str, live_path, learning: HomeLearning) -> Marked:
    """The command line's mark: a recording played through the live path as a clip (pad_clip), with
    a Marker listening, and all of it marked."""
    from cry.audio import AudioError, decode
    from cry.live_path import pad_clip, run
    from cry.stream import array_source

    try:
        audio, rate = decode(path)
    except (AudioError, OSError) as exc:
        raise UserError(f"{path}: {exc}") from None
    played = pad_clip(audio, rate, live_path.live)
    source = array_source(played, rate, str(path), fast=True)
    marker = Marker(learning, rate, live_path.live.window_seconds, audio_seconds=len(played) / rate + 1)
    source.ring.tap = marker.tap
    run(source, live_path.session(), [marker])
    try:
        return marker.mark(label, 0.0, len(played) / rate)
    except UserError as exc:
        raise UserError(f"{path}: {exc}") from None
