"""The page's connections: deadlines for half-sent requests, a cap that evicts the idle, and quiet logs.

uvicorn closes a connection only when it has been idle after an answer (timeout_keep_alive),
and an ASGI middleware runs only once a request's headers are complete, so a client that
sends a request one byte every few seconds is never closed, and a few hundred of them use up
the process's files (the parent's page then cannot connect at all). So the protocol uvicorn
runs is its own h11 one with three additions: a request's line and headers must arrive within
`head_seconds` of the connection (or of the last answer on it), its body within `body_seconds`
of the headers; and past `max_connections` open at once, the oldest connection that is not being
answered (no complete request yet, or idle between two) is closed to make room, so strangers
holding sockets never lock out a client that sends its request at once. uvicorn's own
`limit_concurrency` answers 503 to everyone once the count is reached, slow sockets included,
so it is not used. Every kind of trouble is said once, then at most once a minute with a count
(`Said`), never a traceback per socket.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import sys
import time

MAX_CONNECTIONS = 256   # open at once, at most; fewer when the process may open fewer files
ACCEPT_BACKLOG = 64     # connections waiting to be accepted, and accepted in one go (each a file)


@dataclasses.dataclass(frozen=True)
class ConnectionLimits:
    head_seconds: float = 10.0     # the request line and headers (a browser sends them at once)
    body_seconds: float = 120.0    # the body: a 20 MB recording over a slow phone link
    max_connections: int = MAX_CONNECTIONS


def max_connections_for_files() -> int:
    """MAX_CONNECTIONS, or fewer so that the files open now, a burst of ACCEPT_BACKLOG accepted at
    once and a margin stay within the process's limit (a full table of files makes every accept
    fail, the parent's included)."""
    try:
        import resource

        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        in_use = len(os.listdir("/proc/self/fd"))
    except (ImportError, OSError, ValueError):
        return MAX_CONNECTIONS
    if soft == resource.RLIM_INFINITY:
        return MAX_CONNECTIONS
    return max(16, min(MAX_CONNECTIONS, soft - in_use - ACCEPT_BACKLOG - 32))


class Said:
    """Each kind of trouble on stderr: the first at once, then at most one line a minute, with how
    many were not said since; `counts` for the summary at the end."""

    def __init__(self, every_seconds: float = 60.0, clock=time.monotonic):
        self.every, self.clock = every_seconds, clock
        self.counts: dict[str, int] = {}
        self._last: dict[str, tuple[float, int]] = {}   # kind -> (when last said, count then)

    def should(self, kind: str) -> tuple[bool, int]:
        """(say it now?, how many of this kind went unsaid since the last time)."""
        count = self.counts[kind] = self.counts.get(kind, 0) + 1
        last = self._last.get(kind)
        if last is not None and self.clock() - last[0] < self.every:
            return False, 0
        self._last[kind] = (self.clock(), count)
        return True, 0 if last is None else count - last[1] - 1

    def __call__(self, kind: str, line: str) -> None:
        say, unsaid = self.should(kind)
        if say:
            more = f" (and {unsaid} more since the last such line)" if unsaid else ""
            print(f"page: {line}{more}", file=sys.stderr, flush=True)


class OncePerKind(logging.Filter):
    """For uvicorn's and asyncio's loggers: a record per kind (logger, message template, exception
    type) once, its traceback only the first time, then at most once a minute with a count."""

    def __init__(self, said: Said):
        super().__init__()
        self.said = said

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[0].__name__ if record.exc_info and record.exc_info[0] else ""
        kind = f"{record.name}:{record.msg}:{error}"
        first = kind not in self.said.counts
        say, unsaid = self.said.should(kind)
        if not say:
            return False
        if not first:
            detail = f" ({record.exc_info[1]!r})" if record.exc_info else ""
            record.msg, record.args = f"{record.getMessage()}{detail} (and {unsaid} more since)", None
            record.exc_info = record.exc_text = None
        return True


class _Stderr(logging.StreamHandler):
    """To sys.stderr as it is at each record (not as it was when made)."""

    stream = property(lambda self: sys.stderr, lambda self, value: None)


def quiet_logs(said: Said) -> None:
    """uvicorn's records on stderr, one line each ("page: WARNING: ..."), and OncePerKind on the
    loggers whose records come per connection; once per process. Instead of uvicorn's own logging
    set-up (dictConfig), which closes every handler the process already has."""
    uvicorn = logging.getLogger("uvicorn")
    if not any(isinstance(h, _Stderr) for h in uvicorn.handlers):
        handler = _Stderr()
        handler.setFormatter(logging.Formatter("page: %(levelname)s: %(message)s"))
        uvicorn.addHandler(handler)
        uvicorn.propagate = False
    for name in ("uvicorn.error", "asyncio"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, OncePerKind) for f in logger.filters):
            logger.addFilter(OncePerKind(said))


def guarded_protocol(limits: ConnectionLimits, said: Said):
    """uvicorn's h11 protocol with the deadlines and the cap (a class, for uvicorn.Config(http=...))."""
    from uvicorn.protocols.http.h11_impl import H11Protocol

    opened: dict = {}   # connection -> None, oldest first (dicts keep their order)

    class GuardedH11(H11Protocol):
        _timer = None
        _timed = None   # the request whose body is being timed

        @property
        def answering(self) -> bool:
            return self.cycle is not None and not self.cycle.response_complete

        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            if len(opened) >= limits.max_connections:
                victim = next((c for c in opened if not c.answering), None)
                if victim is None:  # every one is being answered: this one waits for no turn
                    said("refused", f"{len(opened)} connections open, all being answered: refusing new ones")
                    transport.abort()
                    return
                said("evicted", f"{len(opened)} connections open: closing the oldest one that has sent no "
                     "request, to make room")
                victim.close_now()
            opened[self] = None
            self._arm(limits.head_seconds, "slow-head")

        def connection_lost(self, exc) -> None:
            opened.pop(self, None)
            self._disarm()
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            self._time_request()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():
                self._time_request(answered=True)

        def _time_request(self, answered: bool = False) -> None:
            if not self.answering:  # waiting for a request's head: its deadline runs (from the last answer)
                if answered:
                    self._arm(limits.head_seconds, "slow-head")
            elif not self.cycle.more_body:  # all of the request is in: the answer may take its time (a stream)
                self._disarm()
            elif self._timed is not self.cycle:
                self._timed = self.cycle
                self._arm(limits.body_seconds, "slow-body")

        def _arm(self, seconds: float, kind: str) -> None:
            self._disarm()
            self._timer = self.loop.call_later(seconds, self._expired, kind, seconds)

        def _disarm(self) -> None:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

        def _expired(self, kind: str, seconds: float) -> None:
            self._timer = None
            what = "request line and headers" if kind == "slow-head" else "request body"
            said(kind, f"closed a connection whose {what} did not arrive within {seconds:g} s")
            self.close_now()

        def close_now(self) -> None:
            opened.pop(self, None)
            self._disarm()
            if not self.transport.is_closing():
                self.transport.abort()

    return GuardedH11
