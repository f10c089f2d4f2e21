"""The page's HTTP side: the routes (page, JSON API, event stream, upload), behind the Guard.

Every route is behind cry.monitor.web_guard.Guard (the token or loopback Host names, same-origin
for anything that changes something, no CORS). An upload is one at a time: the slot is taken
before its body is read (a second gets 503 at once, without sending its body), the body is
counted as it comes, and the decoding and the analysis run on a worker thread, never on the
event loop that keeps the live state and the event streams going.
"""
from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import re
import secrets
import threading
import time
import urllib.parse
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.requests import ClientDisconnect

from cry.decision import State
from cry.files import UserError
from cry.monitor.upload import UploadError
from cry.monitor.web_guard import Guard, Throttle
from cry.monitor.web_state import KEEPALIVE_SECONDS, WebOutput, sse

STATIC = Path(__file__).with_name("static")
MAX_FEEDBACK_BYTES = 1024
FORM_TYPES = ("multipart/", "application/x-www-form-urlencoded", "text/")  # a form's bodies, never a recording


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
               max_upload_bytes: int = 20 * 2**20, throttle: Throttle | None = None, feedback=None):
    """The FastAPI app behind its Guard. upload: bytes -> JSON-ready answer (cry.upload.answer with
    the model bound), raising UploadError; None: no uploads (503). feedback: a parent's mark
    (cry.detect.marks.Marker.mark_request), raising UserError; None: marking is off (503). A fresh
    per-page token is put in the page for its script to send with uploads and marks."""
    @contextlib.asynccontextmanager
    async def lifespan(app):
        web.loop = asyncio.get_running_loop()
        yield
        web.loop = None

    app = FastAPI(lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)  # no docs: they load a CDN
    query = f"?token={urllib.parse.quote(token)}" if token else ""
    page_token = secrets.token_urlsafe(16)
    pages = {name: (STATIC / name).read_bytes() for name in ("index.html", "app.js", "style.css")}
    states = json.dumps({state.name: state.value for state in State}).replace("<", "\\u003c")
    pages["index.html"] = (pages["index.html"].replace(b"{{query}}", query.replace("&", "&amp;").encode())
                           .replace(b"{{states}}", states.encode()).replace(b"{{page_token}}", page_token.encode()))
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
                web.unsubscribe(queue)

        return StreamingResponse(stream(), media_type="text/event-stream", headers={"x-accel-buffering": "no"})

    @app.post("/api/upload")
    async def upload_route(request: Request):
        limit = f"larger than the {max_upload_bytes / 2**20:g} MB limit"
        length, kind = request.headers.get("content-length", ""), request.headers.get("content-type", "").lower()
        if length and (not length.isdigit() or int(length) > max_upload_bytes):
            return error(f"the upload is {limit}", 413)  # answered before reading the body
        if kind.startswith(FORM_TYPES):
            return error("send the recording itself as the request body (Content-Type: application/octet-stream), "
                         "not a form", 415)
        if upload is None:
            return error("uploads are not available here", 503)
        if not analysing.acquire(blocking=False):  # before the body: one upload's bytes in memory at a time
            return error("another recording is being analysed; try again in a moment", 503)
        try:
            chunks, size = [], 0
            async for chunk in request.stream():
                chunks.append(chunk)
                size += len(chunk)
                if size > max_upload_bytes:
                    return error(f"the upload is {limit}", 413)
            data = b"".join(chunks)
            del chunks
            return await run_in_threadpool(upload, data)
        except UploadError as exc:
            return error(str(exc), exc.status)
        except ClientDisconnect:  # gone (or closed for sending too slowly): no one to answer
            return Response(status_code=400)
        finally:
            analysing.release()

    @app.post("/api/feedback")
    async def feedback_route(request: Request):
        """{"label": "not_cry" or "cry", and "episode_start" (an episode's start time) or "seconds"
        (the last so many seconds heard)}: learnt at once, the clip kept on this machine."""
        if feedback is None:
            return error("marking is off here (no detector, or its training sample is missing)", 503)
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_FEEDBACK_BYTES:
                return error("a mark is a small JSON object", 413)
        try:
            mark = json.loads(body)
            label, start, seconds = mark["label"], mark.get("episode_start"), mark.get("seconds")
            numbers = all(v is None or isinstance(v, (int, float)) for v in (start, seconds))
            if not isinstance(label, str) or not numbers:
                raise TypeError
        except (ValueError, KeyError, TypeError):
            return error('send {"label": "not_cry" or "cry", "episode_start": <its start> or "seconds": <n>}')
        try:
            return await run_in_threadpool(feedback, label, start, seconds)
        except UserError as exc:
            return error(str(exc), 409 if start is not None else 400)

    return Guard(app, token, host, page_token, throttle)
