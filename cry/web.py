"""The parent's page: a local web server with the live state, the night's episodes, alerts and an upload.

FastAPI (on Starlette) served by uvicorn on a background thread: an asyncio server, so each
open event stream is a small task rather than a thread, Starlette's streaming response ends
when a browser leaves, and FastAPI adds only the routing and JSON on top.
The classifier reaches the server through cry.web_state.WebOutput, whose methods never wait.
The routes and their token check are in cry.web_app.
"""
from __future__ import annotations

import contextlib
import os
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
from cry.history import History
from cry.outputs import Background, Output
from cry.web_state import Alerts, WebOutput

DEFAULT_HISTORY = Path("data") / "history.sqlite"
# ---- the server ---------------------------------------------------------------------------

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
    """uvicorn serving an app on a socket already bound, on a daemon thread."""

    def __init__(self, app, sock: socket.socket):
        import uvicorn

        config = uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=2)
        self.sock, self.uvicorn = sock, uvicorn.Server(config)
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


def page_url(host: str, port: int, token: str | None) -> str:
    """The address to open: this machine's network address when serving every interface."""
    if host in ("0.0.0.0", "::"):
        with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(("192.0.2.1", 9))  # no packet is sent: this only picks the outgoing interface
            host = probe.getsockname()[0]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/" + (f"?token={urllib.parse.quote(token)}" if token else "")


def add_arguments(parser) -> None:
    """The page's options on the live monitor's command line."""
    serving = parser.add_argument_group("web page (a parent's view on a phone)")
    serving.add_argument("--serve", metavar="[HOST:]PORT", help="serve the page while listening, on 127.0.0.1 unless "
                      "HOST is given (e.g. 0.0.0.0:8000 for the phones of this network: a token is then required)")
    serving.add_argument("--token", default=os.environ.get("CRY_WEB_TOKEN"), help="required by the page and its "
                      "API (default: $CRY_WEB_TOKEN, else none on 127.0.0.1 and a random one, printed with the "
                      "address, elsewhere)")
    serving.add_argument("--history", type=Path, help=f"keep crying episodes in this SQLite file "
                      f"(default with --serve: {DEFAULT_HISTORY})")
    serving.add_argument("--alert-after", type=float, default=10.0, help="alert when an episode has lasted this "
                      "many seconds (default: %(default)s)")
    serving.add_argument("--alert-cooldown", type=float, default=120.0, help="at most one alert per this many "
                      "seconds (default: %(default)s)")
    serving.add_argument("--max-upload-mb", type=float, default=20.0, help="largest recording the page accepts "
                      "(default: %(default)s)")


class Page:
    """What --serve and --history ask for. Made before the model loads, so a wrong value or a
    busy port is one error line at once: the arguments checked, the port taken, the history opened."""

    def __init__(self, args):
        self.args, self.sock, self.token = args, None, None
        if args.serve:
            self.host, port = parse_serve(args.serve)
            if args.token is not None and len(args.token) < 8:
                raise UserError("--token: at least 8 characters")
            if min(args.alert_after, args.alert_cooldown) < 0 or args.max_upload_mb <= 0:
                raise UserError("--alert-after and --alert-cooldown must be >= 0, --max-upload-mb > 0")
            self.token = args.token or (None if is_loopback(self.host) else secrets.token_urlsafe(16))
            self.sock = bind(self.host, port)
        path = args.history or (DEFAULT_HISTORY if args.serve else None)
        self.history = History(path) if path else None

    def outputs(self, scorer, make_decider) -> list[Output]:
        """The history's writer and the page's output, whose server is running and whose address is
        printed when this returns. make_decider: () -> (Decider, Episodes), fresh for each upload."""
        from functools import partial

        from cry import upload
        from cry.web_app import create_app  # FastAPI is imported only when serving

        args, outputs = self.args, []
        if self.sock is not None:
            web = WebOutput(self.history, Alerts(args.alert_after, args.alert_cooldown), scorer.cry_threshold)
            answer = partial(upload.answer, scorer=scorer, make_decider=make_decider, hop_seconds=args.hop)
            app = create_app(web, answer, self.token, self.host, int(args.max_upload_mb * 2**20))
            web.server = Server(app, self.sock)
            outputs.append(web)  # before the history: closed first, so no page reads a closed database
            port, host = self.sock.getsockname()[1], self.host
            print(f"page: {page_url(host, port, self.token)}" + ("" if is_loopback(host) else f"  (this machine: "
                  f"{page_url('127.0.0.1', port, self.token)})"), file=sys.stderr, flush=True)
        if self.history is not None:
            outputs.append(Background(self.history))
            print(f"episode history: {self.history.path}", file=sys.stderr)
        return outputs
