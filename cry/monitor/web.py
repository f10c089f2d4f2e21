"""The parent's page: a local web server with the live state, the night's episodes, alerts and an upload.

FastAPI (on Starlette) served by uvicorn on a background thread: an asyncio server, so each
open event stream is a small task rather than a thread, Starlette's streaming response ends
when a browser leaves, and FastAPI adds only the routing and JSON on top.
The classifier reaches the server through cry.monitor.web_state.WebOutput, whose methods never
wait. The routes are in cry.monitor.web_app, the token and same-origin checks in
cry.monitor.web_guard, and the connections' deadlines and cap in cry.monitor.web_conn.
"""
from __future__ import annotations

import contextlib
import dataclasses
import errno
import ipaddress
import re
import secrets
import socket
import sys
import threading
import time
import urllib.parse
from pathlib import Path

from cry.files import UserError
from cry.live_path import Output
from cry.monitor.history import History
from cry.monitor.outputs import Background
from cry.monitor.web_conn import (ACCEPT_BACKLOG, ConnectionLimits, Said, guarded_protocol,
                                  max_connections_for_files, quiet_logs)
from cry.monitor.web_state import MAX_CLIENTS, Alerts, WebOutput

DEFAULT_HISTORY = Path("data") / "history.sqlite"
MIN_TOKEN_CHARACTERS = 16  # the generated one has 22; an 8-digit one falls to guessing in hours without the throttle


def is_loopback(host: str) -> bool:
    """Only this machine can reach it (127.0.0.0/8, ::1, localhost): no token needed."""
    if host.lower() == "localhost":
        return True
    with contextlib.suppress(ValueError):
        return ipaddress.ip_address(host).is_loopback
    return False


def parse_serve(value: str) -> tuple[str, int]:
    """--serve [HOST:]PORT -> (host, port); an IPv6 host in brackets: [::]:8000."""
    host, _, port = value.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not port.isdigit() or int(port) > 65535 or (host and not re.fullmatch(r"[\w.:-]+", host)):
        raise UserError(f"--serve {value}: expected [HOST:]PORT, e.g. 8000 or 0.0.0.0:8000")
    return host or "127.0.0.1", int(port)


def bind(host: str, port: int) -> socket.socket:
    """A listening socket, or one UserError saying why not (port in use, no such address)."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                             flags=socket.AI_PASSIVE)[0]
    except socket.gaierror as exc:
        raise UserError(f"--serve: cannot find the address {host!r} ({exc.strerror})") from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        why = {errno.EADDRINUSE: "is in use (another program, or another monitor?)",
               errno.EADDRNOTAVAIL: "is not an address of this machine",
               errno.EACCES: "needs privileges (ports below 1024): choose a port from 1024 up"}
        why = why.get(exc.errno, exc.strerror)
        raise UserError(f"--serve: {host}:{port} {why}") from None
    sock.setblocking(False)
    return sock


class Server:
    """uvicorn serving an app on a socket already bound, on a daemon thread: its h11 protocol with
    deadlines and a cap on connections (cry.monitor.web_conn), no server banner, its logs one line
    per kind of trouble."""

    def __init__(self, app, sock: socket.socket, limits: ConnectionLimits = ConnectionLimits()):
        import uvicorn

        self.said = Said()
        quiet_logs(self.said)
        config = uvicorn.Config(app, log_config=None, log_level="warning", access_log=False,
                                timeout_graceful_shutdown=2,
                                http=guarded_protocol(limits, self.said), ws="none", server_header=False,
                                proxy_headers=False,  # X-Forwarded-For would let a client pick its address
                                backlog=ACCEPT_BACKLOG, timeout_keep_alive=5, h11_max_incomplete_event_size=16384)
        self.app, self.sock, self.uvicorn = app, sock, uvicorn.Server(config)
        self.thread = threading.Thread(target=self.uvicorn.run, kwargs={"sockets": [sock]}, name="web", daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.uvicorn.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise UserError("the web server did not start")
            time.sleep(0.01)

    def stop(self, timeout: float = 5.0) -> None:
        self.uvicorn.should_exit = True
        self.thread.join(timeout)
        self.sock.close()
        counts, throttle = self.said.counts, getattr(self.app, "throttle", None)
        print(f"page: {counts.get('slow-head', 0) + counts.get('slow-body', 0)} connections closed for sending too "
              f"slowly, {counts.get('evicted', 0)} closed to make room, {counts.get('refused', 0)} refused; "
              f"{throttle.refused if throttle else 0} requests with a wrong token refused", file=sys.stderr)


def page_url(host: str, port: int, token: str | None) -> str:
    """The address to open: this machine's network address when serving every interface."""
    if host in ("0.0.0.0", "::"):
        with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(("192.0.2.1", 9))  # no packet is sent: this only picks the outgoing interface
            host = probe.getsockname()[0]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/" + (f"?token={urllib.parse.quote(token)}" if token else "")


@dataclasses.dataclass(frozen=True)
class PageOptions:
    """What --serve, --token, --history and the alert options ask of the page."""

    serve: str | None = None            # [HOST:]PORT; None: no page
    token: str | None = None
    history: Path | None = None         # None: DEFAULT_HISTORY when serving, else no history
    alert_after_seconds: float = 10.0
    alert_cooldown_seconds: float = 120.0
    max_upload_mb: float = 20.0


class Page:
    """What PageOptions ask for. Made before the model loads, so a wrong value or a busy port is
    one error line at once: the options checked, the port taken, the history opened."""

    def __init__(self, options: PageOptions):
        self.options, self.sock, self.token = options, None, None
        if options.serve:
            self.host, port = parse_serve(options.serve)
            if options.token is not None and len(options.token) < MIN_TOKEN_CHARACTERS:
                raise UserError(f"--token: at least {MIN_TOKEN_CHARACTERS} characters (a short one can be guessed; "
                                "leave it out to get a random one)")
            if min(options.alert_after_seconds, options.alert_cooldown_seconds) < 0 or options.max_upload_mb <= 0:
                raise UserError("--alert-after and --alert-cooldown must be >= 0, --max-upload-mb > 0")
            self.token = options.token or (None if is_loopback(self.host) else secrets.token_urlsafe(16))
            self.sock = bind(self.host, port)
        path = options.history or (DEFAULT_HISTORY if options.serve else None)
        self.history = History(path) if path else None

    def outputs(self, path, marker=None) -> list[Output]:
        """The history's writer and the page's output, whose server is running and whose address is
        printed when this returns. path: the cry.live_path.LivePath that uploads go through too;
        marker: the cry.detect.marks.Marker that a parent's marks go to (None: marking is off)."""
        from functools import partial

        from cry.monitor import upload
        from cry.monitor.web_app import create_app  # FastAPI is imported only when serving

        options, outputs = self.options, []
        if self.sock is not None:
            limits = ConnectionLimits(max_connections=max_connections_for_files())
            web = WebOutput(self.history, Alerts(options.alert_after_seconds, options.alert_cooldown_seconds),
                            path.scorer.cry_threshold, max_clients=min(MAX_CLIENTS, limits.max_connections // 2))
            app = create_app(web, partial(upload.answer, path=path), self.token, self.host,
                             int(options.max_upload_mb * 2**20), feedback=marker and marker.mark_request)
            web.server = Server(app, self.sock, limits)
            outputs.append(web)  # before the history: closed first, so no page reads a closed database
            port, host = self.sock.getsockname()[1], self.host
            print(f"page: {page_url(host, port, self.token)}" + ("" if is_loopback(host) else f"  (this machine: "
                  f"{page_url('127.0.0.1', port, self.token)})"), file=sys.stderr, flush=True)
        if self.history is not None:
            outputs.append(Background(self.history))
            print(f"episode history: {self.history.path}", file=sys.stderr)
        return outputs
