"""The page's HTTP side: the routes (page, JSON API, event stream, upload) and the guard in front of them.

Every route is behind `Guard`: with a token, nothing answers without it (401, nothing else
said); without one (127.0.0.1 only), only loopback Host names are served. No CORS headers are
ever sent, so pages of other origins cannot read the answers.
"""
from __future__ import annotations

import asyncio
import contextlib
import datetime
import hmac
import json
import re
import threading
import time
import urllib.parse
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response, StreamingResponse

from cry.decision import State
from cry.monitor.upload import UploadError, form_file
from cry.monitor.web_state import KEEPALIVE_SECONDS, WebOutput, sse

STATIC = Path(__file__).with_name("static")
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer"), (b"cache-control", b"no-store"),
    (b"content-security-policy", b"default-src 'self'; img-src 'self' data:; frame-ancestors 'none'"),
]
LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1"}


class Guard:
    """ASGI middleware: the token on every request (when one is set), else loopback Host names only
    (so a web page elsewhere cannot reach the server by DNS rebinding); security headers, no CORS."""

    def __init__(self, app, token: str | None, host: str):
        self.app, self.host = app, host.lower()
        self.token = None if token is None else token.encode()

    def allowed(self, scope) -> bool:
        headers = dict(scope.get("headers") or [])
        if self.token is None:
            name = headers.get(b"host", b"").decode("latin-1").lower()
            name = name[1:name.index("]")] if name.startswith("[") and "]" in name else name.split(":")[0]
            return name in LOOPBACK_NAMES or name == self.host
        given = headers.get(b"authorization", b"")
        given = given[7:].strip() if given[:7].lower() == b"bearer " else b""
        if not given:
            query = urllib.parse.parse_qs(scope.get("query_string", b"").decode("latin-1"))
            given = (query.get("token") or [""])[0].encode()
        return hmac.compare_digest(given, self.token)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if not self.allowed(scope):
            await send({"type": "http.response.start", "status": 401,
                        "headers": [(b"content-type", b"text/plain"), (b"www-authenticate", b"Bearer"),
                                    *SECURITY_HEADERS]})
            await send({"type": "http.response.body", "body": b"unauthorized\n"})
            return

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def parse_since(text: str | None) -> float:
    """?since=ISO8601 -> epoch seconds (no zone: local time); default the last 12 hours."""
    if not text:
        return time.time() - 12 * 3600
    text = re.sub(r" (\d\d:?\d\d)$", r"+\1", text.strip())  # a '+' in a query string arrives as a space
    try:
        return datetime.datetime.fromisoformat(text).timestamp()
    except ValueError:
        raise ValueError(f"since: {text!r} is not an ISO 8601 time, e.g. 2025-01-31T21:00:00+01:00") from None


def create_app(web: WebOutput, upload=None, token: str | None = None, host: str = "127.0.0.1",
               max_upload_bytes: int = 20 * 2**20):
    """The FastAPI app. upload: bytes -> JSON-ready answer (cry.upload.answer with the model bound),
    raising UploadError; None: no uploads (503)."""
    @contextlib.asynccontextmanager
    async def lifespan(app):
        web.loop = asyncio.get_running_loop()
        yield
        web.loop = None

    app = FastAPI(lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)  # no docs: they load a CDN
    query = f"?token={urllib.parse.quote(token)}" if token else ""
    pages = {name: (STATIC / name).read_bytes() for name in ("index.html", "app.js", "style.css")}
    states = json.dumps({state.name: state.value for state in State}).replace("<", "\\u003c")
    pages["index.html"] = (pages["index.html"].replace(b"{{query}}", query.replace("&", "&amp;").encode())
                           .replace(b"{{states}}", states.encode()))
    kinds = {"html": "text/html; charset=utf-8", "js": "text/javascript", "css": "text/css"}
    analysing = threading.Lock()

    def static(name):
        return lambda: Response(pages[name], media_type=kinds[name.rsplit(".", 1)[1]])

    for path, name in (("/", "index.html"), ("/app.js", "app.js"), ("/style.css", "style.css")):
        app.add_api_route(path, static(name), methods=["GET"], include_in_schema=False)

    def error(message: str, status: int = 400):
        return JSONResponse({"error": message}, status)

    @app.get("/api/state")
    def state():
        return web.snapshot()

    @app.get("/api/recent")
    def recent():
        """The chart's points: [time, cry_probability (null: quiet), level_dbfs], oldest first."""
        return web.recent_points()

    @app.get("/api/episodes")
    def episodes(since: str | None = None):
        try:
            start = parse_since(since)
        except ValueError as exc:
            return error(str(exc))
        return web.history.episodes(start) if web.history else []

    @app.get("/api/events")
    async def events():
        queue = web.subscribe()
        if queue is None:
            return error("too many pages open", 503)

        async def stream():
            try:
                yield b"retry: 3000\n\n" + sse("state", web.snapshot(totals=False))
                while True:
                    try:
                        message = await asyncio.wait_for(queue.get(), KEEPALIVE_SECONDS)
                    except TimeoutError:
                        message = b": keep-alive\n\n"
                    if message is None:
                        return
                    yield message
            finally:
                web.clients.discard(queue)

        return StreamingResponse(stream(), media_type="text/event-stream", headers={"x-accel-buffering": "no"})

    @app.post("/api/upload")
    async def upload_route(request: Request):
        limit = f"larger than the {max_upload_bytes / 2**20:g} MB limit"
        length = request.headers.get("content-length", "")
        if length and (not length.isdigit() or int(length) > max_upload_bytes):
            return error(f"the upload is {limit}", 413)  # answered before reading the body
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > max_upload_bytes:
                return error(f"the upload is {limit}", 413)
        if upload is None:
            return error("uploads are not available here", 503)
        if not analysing.acquire(blocking=False):
            return error("another recording is being analysed; try again in a moment", 503)
        try:
            content_type = request.headers.get("content-type", "")
            data = form_file(bytes(body), content_type) if content_type.startswith("multipart/") else bytes(body)
            del body
            return await run_in_threadpool(upload, data)
        except UploadError as exc:
            return error(str(exc), exc.status)
        finally:
            analysing.release()

    return Guard(app, token, host)
