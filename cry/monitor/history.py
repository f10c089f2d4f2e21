"""Crying episodes in SQLite: written as they start and end, read back after a restart or a kill.

One table, one row per episode: the start is inserted when it happens and the end filled in
when it comes, each committed at once (WAL), so a killed process leaves its last episode
started, with no end, and every earlier one complete. Stdlib sqlite3 only. A new file is made
readable by its owner only (0600; SQLite gives its -wal and -shm files the same mode): the
night's episodes are nobody else's business on a shared machine.
"""
from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
import time
from pathlib import Path

from cry.decision import EpisodeEvent
from cry.files import UserError
from cry.live_path import Output

SCHEMA = """CREATE TABLE IF NOT EXISTS episodes (
    start REAL PRIMARY KEY,          -- wall clock, seconds since the epoch
    end REAL,                        -- NULL: still going, or the process was killed during it
    duration_seconds REAL,
    reason TEXT,                     -- claimed reason, NULL when uncertain
    guesses TEXT NOT NULL DEFAULT '[]',  -- JSON [[reason, share], ...], likeliest first; [] when not known
    reason_text TEXT NOT NULL DEFAULT ''  -- the reason as the monitor said it ("reason not known", ...)
)"""
COLUMNS = "start, end, duration_seconds, reason, guesses, reason_text"
TOTAL_HOURS = 12.0


class History(Output):
    """The episode table of one SQLite file; an Output whose on_episode writes (wrap it in Background).

    One connection shared by the writer thread and the web server's readers, behind a lock.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(FileExistsError):  # made here first: sqlite3 would make it 0644
                os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: a kill loses nothing committed
            self._db.execute(SCHEMA)
            known = {row[1] for row in self._db.execute("PRAGMA table_info(episodes)")}
            if "reason_text" not in known:  # a history written before the reason was said in words
                self._db.execute("ALTER TABLE episodes ADD COLUMN reason_text TEXT NOT NULL DEFAULT ''")
        except (OSError, sqlite3.Error) as exc:
            raise UserError(f"{self.path}: cannot use as the episode history ({getattr(exc, 'strerror', None) or exc})"
                            ) from None
        self._lock = threading.Lock()

    def on_episode(self, event: EpisodeEvent) -> None:
        guesses = json.dumps([list(g) for g in event.guesses])
        with self._lock:
            if event.kind == "start":
                self._db.execute("INSERT OR REPLACE INTO episodes (start, reason, guesses, reason_text) "
                                 "VALUES (?, ?, ?, ?)", (event.start, event.reason, guesses, event.reason_text))
            else:
                self._db.execute(f"INSERT OR REPLACE INTO episodes ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",
                                 (event.start, event.end, event.duration_seconds, event.reason, guesses,
                                  event.reason_text))

    def episodes(self, since: float | None = None, limit: int = 1000) -> list[dict]:
        """Episodes started at or after `since` (epoch seconds; None: all), newest first."""
        with self._lock:
            rows = self._db.execute(f"SELECT {COLUMNS} FROM episodes WHERE start >= ? ORDER BY start DESC LIMIT ?",
                                    (-1e18 if since is None else since, limit)).fetchall()
        return [{"start": s, "end": e, "duration_seconds": d, "reason": r, "guesses": json.loads(g), "reason_text": t}
                for s, e, d, r, g, t in rows]

    def totals(self, hours: float = TOTAL_HOURS, now: float | None = None) -> dict:
        """Episodes started in the last `hours` and the minutes of those that ended."""
        since = (time.time() if now is None else now) - hours * 3600
        with self._lock:
            count, seconds = self._db.execute("SELECT COUNT(*), TOTAL(duration_seconds) FROM episodes "
                                              "WHERE start >= ?", (since,)).fetchone()
        return {"hours": hours, "episodes": count, "crying_minutes": round(seconds / 60, 1)}

    def close(self) -> None:
        with self._lock:
            self._db.close()
