"""Scanning a recording through the live path in pieces: window scores in parallel, one decision in order.

The live path judges a window of live.window_seconds every live.hop_seconds. A recording's
windows end on a fixed grid (cry.live_path.clip_window_ends: a full window first, then one every
hop, which is where a file played through the monitor has them at the usual rates), so a
recording can be cut into pieces of consecutive windows. Each piece is scored on its own
(`score_piece`, in any process or on any node) from its own audio plus one window before it: every
window, and every YAMNet patch in it, is a pure function of the samples ending where it ends
(cry.patches), so a piece's scores are the very numbers a single pass gives. What depends on the
past, the votes and the episodes, is then decided by one cry.decision.Decision over the pieces'
scores in order (`decide`), exactly as the monitor decides them as they come.
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from cry.audio import AudioError, open_audio
from cry.decision import WindowScores
from cry.live_path import LivePath, deliver, hand_out
from cry.params import LiveSettings

READ_SECONDS = 10.0  # audio read at a time: memory stays a few windows, whatever the recording's length
SAFE_SHARE = 0.99    # of a header's length: cry.audio accepts a file this much shorter than it claims


@dataclasses.dataclass(frozen=True)
class Grid:
    """Where a recording's windows end: window k ends at sample window + k * hop."""

    rate_hz: int
    window: int  # samples
    hop: int     # samples

    @classmethod
    def of(cls, rate_hz: int, live: LiveSettings) -> Grid:
        return cls(rate_hz, int(round(live.window_seconds * rate_hz)), max(1, int(round(live.hop_seconds * rate_hz))))

    def end(self, k: int) -> int:
        return self.window + k * self.hop

    def windows_in(self, frames: int) -> int:
        """How many windows fit in `frames` samples."""
        return 0 if frames < self.window else 1 + (frames - self.window) // self.hop


@dataclasses.dataclass(frozen=True)
class Piece:
    """Windows first .. first + count - 1 of one recording (count None: to the end of it)."""

    recording: str
    index: int
    first: int
    count: int | None
    seconds: float  # of audio it covers, for the progress bar


def plan_pieces(recording: Path, live: LiveSettings, piece_seconds: float) -> list[Piece]:
    """The pieces of a recording, from its header (AudioError when it cannot be opened). Only the
    length a header vouches for is cut (a file a little shorter than it says is still read to its
    end by the last piece); a header that says no length gives one piece."""
    with open_audio(recording) as reader:
        info = reader.info
    grid = Grid.of(info.rate_hz, live)
    total = grid.windows_in(int(SAFE_SHARE * info.frames)) if info.frames else 0
    per_piece = max(1, int(piece_seconds * info.rate_hz) // grid.hop)
    starts = list(range(0, total, per_piece)) or [0]
    hop_seconds, length = grid.hop / info.rate_hz, (info.frames or 0) / info.rate_hz
    pieces = [Piece(str(recording), i, first, per_piece, per_piece * hop_seconds) for i, first in enumerate(starts)]
    last = pieces[-1]
    return pieces[:-1] + [dataclasses.replace(last, count=None, seconds=max(0.0, length - last.first * hop_seconds))]


@dataclasses.dataclass
class PieceScores:
    """The live path's scores of a piece's windows (cry_probability NaN: quiet, no model asked),
    and where its audio ended; or why it could not be read."""

    piece: Piece
    rate_hz: int = 0
    ends: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, np.int64))  # stream samples [n]
    level_dbfs: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0))     # [n]
    cry_probability: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0))  # [n]
    heard: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, "U12"))   # [n]
    stream_end: int = 0   # samples read, where the piece's audio ended (the recording's end for the last)
    error: str | None = None

    def windows(self) -> Iterator[tuple[int, WindowScores]]:
        """(end sample, WindowScores) of each window, as the scorer gave them."""
        for end, level, p, heard in zip(self.ends.tolist(), self.level_dbfs.tolist(),
                                        self.cry_probability.tolist(), self.heard.tolist()):
            yield end, WindowScores(level, None if math.isnan(p) else p, heard)


def grid_windows(blocks: Iterable[np.ndarray], grid: Grid, start: int, first: int,
                 count: int | None) -> Iterator[tuple[int, np.ndarray]]:
    """(end, window [grid.window]) of windows first .. first + count - 1 from blocks of audio that
    begin at stream sample `start` (the first window's start); the audio kept is a window and a block."""
    buffer, at, k = np.zeros(0, np.float32), start, first  # buffer[0] is stream sample `at`
    for block in blocks:
        buffer = np.concatenate([buffer, block])
        while grid.end(k) <= at + len(buffer):
            end = grid.end(k)
            yield end, buffer[end - grid.window - at:end - at]
            k += 1
            if count is not None and k >= first + count:
                return
        keep_from = grid.end(k) - grid.window
        buffer, at = buffer[keep_from - at:], keep_from


def score_piece(path: LivePath, piece: Piece) -> PieceScores:
    """Every window of the piece through the live path's scorer (with a patch cache of its own).
    An unreadable or broken recording gives a PieceScores with `error` set, never an exception."""
    session, rows, read = path.session(), [], [0]
    try:
        with open_audio(piece.recording) as reader:
            rate = reader.info.rate_hz
            grid = Grid.of(rate, path.live)
            read[0] = start = piece.first * grid.hop
            blocks = _counted(reader.blocks(READ_SECONDS, start), read)
            for end, window in grid_windows(blocks, grid, start, piece.first, piece.count):
                s = session.score(window, rate, end)
                rows.append((end, s.level_dbfs, np.nan if s.cry_probability is None else s.cry_probability, s.heard))
    except AudioError as exc:
        return PieceScores(piece, error=str(exc))
    if piece.count is not None and len(rows) < piece.count:
        return PieceScores(piece, error=f"the audio is truncated: it ends at {read[0] / rate:.1f} s, before the "
                                        "length its header announces")
    ends, levels, probabilities, heard = zip(*rows) if rows else ((), (), (), ())
    return PieceScores(piece, rate, np.array(ends, np.int64), np.array(levels, np.float64),
                       np.array(probabilities, np.float64), np.array(heard, "U12"),
                       read[0] if piece.count is None else grid.end(piece.first + piece.count - 1))


def _counted(blocks: Iterable[np.ndarray], counter: list[int]) -> Iterator[np.ndarray]:
    """blocks, adding their lengths to counter[0] (how far the audio was read)."""
    for block in blocks:
        counter[0] += len(block)
        yield block


def decide(path: LivePath, pieces: Iterable[PieceScores], outputs: list) -> float:
    """One Decision over the pieces' windows in order, every answer handed to outputs (as the
    monitor's `run` does, with stream seconds for wall-clock times); an episode still open ends with
    the recording. Returns the recording's length in seconds. Pieces must come in order."""
    decision, seconds = path.decision(), 0.0
    for piece in pieces:
        for end, scores in piece.windows():
            at = end / piece.rate_hz
            hand_out(outputs, *decision.update(scores, at, at))
        seconds = piece.stream_end / piece.rate_hz
    event = decision.close(seconds, seconds)
    if event is not None:
        deliver(outputs, "on_episode", event)
    return seconds
