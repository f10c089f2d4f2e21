"""The parent's page (cry.monitor.web, .history, .upload): alerts, history and the API in process, then
the script itself serving a real browser, a token on other addresses, a killed server, and 50
event streams during an hour of audio.

What decides "crying" here: a hand-set "loudness model" (loud_model below) calls every window
whose spectrogram is bright enough a cry, and the cry played is a corpus recording raised to
-20 dBFS. So crying is certain, and these tests check the way from the microphone (or a file) to
the page, not the model's judgement (the evaluation does that).
"""
from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime
import io
import json
import os
import re
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
from functools import partial
from pathlib import Path

import numpy as np
from conftest import save_probe_model
import pytest
import soundfile as sf

from cry.audio import resample, rms_dbfs
from cry.decision import EpisodeEvent, State, WindowScores, WindowState
from cry.files import UserError
from cry.live_path import LivePath, run
from cry.monitor import upload
from cry.monitor.history import History
from cry.monitor.web import bind, parse_serve
from cry.monitor.web_app import create_app
from cry.monitor.web_guard import Throttle
from cry.monitor.web_state import Alerts, WebOutput
from cry.params import CLASSES, LiveSettings
from cry.stream import array_source

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = [sys.executable, str(ROOT / "real_time_prediction.py"), "--detector", "none"]  # the probe models decide
SCREENSHOT = ROOT / "reports" / "web.png"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


# ---- fixtures: a model that calls loud sounds cries, and a loud corpus cry --------------------

@pytest.fixture(scope="module")
def loud_model(tmp_path_factory) -> Path:
    """Mean green of the spectrogram image (viridis: brighter = louder) above 90/255 -> a cry,
    hungry a little likelier than tired, the rest even; no reason claims (uncertain)."""
    import keras
    from keras import layers


    silence = CLASSES.index("silence")
    inputs = keras.Input((128, 128, 3))
    dense = layers.Dense(len(CLASSES), activation="softmax")
    model = keras.Model(inputs, dense(layers.GlobalAveragePooling2D()(layers.Rescaling(1 / 255)(inputs))))
    weights, bias = np.zeros((3, len(CLASSES)), np.float32), np.zeros(len(CLASSES), np.float32)
    for i, name in enumerate(CLASSES):
        if i != silence:
            weights[1, i], bias[i] = 40.0, -40.0 * 90 / 255 + {"hungry": 1.0, "tired": 0.5}.get(name, 0.0)
    dense.set_weights([weights, bias])
    path = tmp_path_factory.mktemp("loud") / "loud.keras"
    save_probe_model(model, path)
    return path


@pytest.fixture(scope="module")
def loud_cry(corpus, tmp_path_factory):
    """The loudest of a few corpus cries, raised to -20 dBFS: (audio at 8 kHz, rate, folder with
    cry.wav at that rate and cry44k.wav at the virtual microphone's rate)."""
    folder = tmp_path_factory.mktemp("cry")
    files = sorted((corpus / "donateacry_corpus_cleaned_and_updated_data" / "hungry").glob("*.wav"))[:12]
    audio, rate = sf.read(max(files, key=lambda p: rms_dbfs(sf.read(p, dtype="float32")[0])), dtype="float32")
    audio = audio * 10 ** ((-20 - rms_dbfs(audio)) / 20)
    sf.write(folder / "cry.wav", audio, rate)
    mic_rate = int(os.environ.get("VMIC_RATE", 44100))
    sf.write(folder / "cry44k.wav", resample(audio, rate, mic_rate), mic_rate, subtype="FLOAT")
    return audio, rate, folder


def wav_bytes(audio, rate, format="WAV") -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, audio, rate, format=format)
    return buffer.getvalue()


# ---- alerts and history: pure, no server ----------------------------------------------------

def crying_at(t: float, state: State = State.CRYING) -> WindowState:
    return WindowState(1000.0 + t, t, state, -20.0, "crying", 0.9, None, (), "reason not known")


def test_alerts_once_per_episode_after_alert_after_and_never_within_the_cooldown():
    alerts = Alerts(after=10, cooldown=120)
    first = EpisodeEvent("start", 1000.0, 0.0)
    assert [t for t in np.arange(0, 60, 0.5) if alerts.update(crying_at(t), first)] == [10.0]
    second = EpisodeEvent("start", 1070.0, 70.0)  # reaches 10 s at 80 s: inside the cooldown (10 + 120)
    assert [t for t in np.arange(70, 200, 0.5) if alerts.update(crying_at(t), second)] == [130.0]
    third = EpisodeEvent("start", 1300.0, 300.0)
    assert alerts.update(crying_at(309.5), third) is None
    assert alerts.update(crying_at(310, State.NOT_CRYING), third) is None  # only while crying
    alert = alerts.update(crying_at(310.5), third)
    assert alert["lasted_seconds"] == 10.5 and alert["reason_text"] == "reason not known"
    assert alerts.update(crying_at(310.5), None) is None  # no episode under way


def test_history_is_committed_at_once_and_keeps_an_unfinished_episode(tmp_path):
    now, path = time.time(), tmp_path / "history.sqlite"
    writer = History(path)
    writer.on_episode(EpisodeEvent("start", now - 20 * 3600, 0.0))  # older than 12 hours
    writer.on_episode(EpisodeEvent("end", now - 20 * 3600, 0.0, now - 20 * 3600 + 30, 30.0))
    writer.on_episode(EpisodeEvent("start", now - 7200, 5.0, guesses=(("hungry", 0.6),)))
    writer.on_episode(EpisodeEvent("end", now - 7200, 5.0, now - 7140, 60.0, None, (("hungry", 0.5), ("tired", 0.3))))
    writer.on_episode(EpisodeEvent("start", now - 60, 100.0))  # the writer is never closed: like a kill
    reader = History(path)  # another connection sees every committed row
    rows = reader.episodes(since=now - 12 * 3600)
    assert [r["start"] for r in rows] == [now - 60, now - 7200]  # newest first
    assert rows[0]["end"] is None and rows[0]["duration_seconds"] is None
    assert (rows[1]["end"], rows[1]["duration_seconds"], rows[1]["guesses"]) == (now - 7140, 60.0,
                                                                                 [["hungry", 0.5], ["tired", 0.3]])
    assert reader.totals(now=now) == {"hours": 12.0, "episodes": 2, "crying_minutes": 1.0}
    assert len(reader.episodes()) == 3
    assert {p.name: p.stat().st_mode & 0o777 for p in tmp_path.iterdir()} == {  # nobody else's business
        "history.sqlite": 0o600, "history.sqlite-wal": 0o600, "history.sqlite-shm": 0o600}


def test_serve_values_and_a_busy_port_are_one_line_errors(tmp_path):
    assert parse_serve("8000") == ("127.0.0.1", 8000)
    assert parse_serve("0.0.0.0:8000") == ("0.0.0.0", 8000)
    assert parse_serve("[::1]:8000") == ("::1", 8000)
    for bad in ("", "host:", "80000", "a b:80", "http://x:80"):
        with pytest.raises(UserError, match="expected \\[HOST:\\]PORT"):
            parse_serve(bad)
    taken = bind("127.0.0.1", 0)
    try:
        with pytest.raises(UserError, match="is in use"):
            bind("127.0.0.1", taken.getsockname()[1])
        sf.write(tmp_path / "a.wav", np.zeros(8000, np.float32), 8000)
        done = subprocess.run([*SCRIPT, "--file", str(tmp_path / "a.wav"), "--serve", str(taken.getsockname()[1]),
                               "--history", str(tmp_path / "h.sqlite")], cwd=ROOT, capture_output=True, text=True,
                              timeout=60)  # refused before the model loads
        assert not (tmp_path / "h.sqlite").exists()
        assert done.returncode == 2 and done.stderr.endswith(f"error: --serve: 127.0.0.1:{taken.getsockname()[1]} "
                                                              "is in use (another program, or another monitor?)\n")
    finally:
        taken.close()


# ---- the app in process: event stream, JSON API, uploads -------------------------------------

def loudness_scorer(window: np.ndarray, rate: int) -> WindowScores:
    """Stands in for cry.monitor.Scorer: louder than -40 dBFS is a hungry-ish cry."""
    level = rms_dbfs(window)
    if level < -40:
        return WindowScores(level)
    return WindowScores(level, 0.9, "crying", np.array([0.1, 0.5, 0.1, 0.1, 0.0, 0.1, 0.1]))


class LivePaced:
    """loudness_scorer at a live-like pace: slower than the page's ten states a second, so none is
    coalesced; each window decided alone (smoothing 1), crying above 0.5."""

    live, cry_threshold = LiveSettings(smooth_windows=1, episode_end_seconds=0.0), 0.5  # each window alone

    def __call__(self, window: np.ndarray, rate: int, end=None, cache=None) -> WindowScores:
        time.sleep(0.2)
        return loudness_scorer(window, rate)


def read_events(lines, until) -> list[tuple[str, dict]]:
    """SSE events (kind, data) from an iterator of lines, up to and including the one until() accepts."""
    events, kind = [], None
    for line in lines:
        if line.startswith("event: "):
            kind = line[7:]
        elif line.startswith("data: "):
            events.append((kind, json.loads(line[6:])))
            if until(*events[-1]):
                return events
    raise AssertionError(f"the stream ended after {events}")


def test_event_stream_and_api_follow_the_classifier_in_process(tmp_path):
    from starlette.testclient import TestClient

    history = History(tmp_path / "history.sqlite")
    web = WebOutput(history, Alerts(after=1.0, cooldown=120), cry_threshold=0.5)
    rate = 8000
    noise = np.random.default_rng(0).uniform(-0.3, 0.3, 2 * rate).astype(np.float32)
    audio = np.concatenate([np.zeros(3 * rate, np.float32), noise, np.zeros(3 * rate, np.float32)])
    with TestClient(create_app(web), base_url="http://127.0.0.1") as client:
        assert client.get("/api/state").json()["state"] is None  # before the first answer
        with client.stream("GET", "/api/events") as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            lines = stream.iter_lines()
            assert [(k, d["state"]) for k, d in read_events(lines, lambda kind, data: True)] == [("state", None)]
            path = LivePath(LivePaced())
            listening = threading.Thread(target=run, args=(array_source(audio, rate, "test", fast=True),
                                                           path.session(), [web, history]))
            listening.start()
            events = read_events(lines, lambda kind, data: kind == "episode" and data["kind"] == "end")
            listening.join()
            web.loop.call_soon_threadsafe(web.end_streams)
        # windows end at 3 s (silence), 3.5 s (the noise starts: an episode), ... 8 s (silence again: it ends)
        kinds = [k if k != "episode" else data["kind"] for k, data in events]
        assert kinds == ["state", "state", "start", "state", "state", "alert", *["state"] * 7, "end"]
        states = [d for k, d in events if k == "state"]
        assert [d["stream_seconds"] for d in states] == list(np.arange(3.0, 8.1, 0.5))
        assert [d["state"] for d in states] == ["quiet", *["crying"] * 9, "quiet"]
        alert = dict(events)["alert"]
        assert alert["lasted_seconds"] >= 1.0 and alert["reason_text"] == "reason not known"

        state = client.get("/api/state").json()
        assert {"state", "level_dbfs", "heard", "reason", "reason_text", "guesses", "cry_probability"} <= set(state)
        assert state["state"] == "quiet" and state["episode"] is None and state["totals"]["episodes"] == 1
        recent = client.get("/api/recent").json()  # [time, cry probability, level] of each window: 3 s, 3.5 s, ... 8 s
        assert len(recent) == 11 and recent[0][1] is None and recent[1][1] == 0.9  # quiet: no model, so no probability
        since = (datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=5)).isoformat()
        episodes = client.get("/api/episodes", params={"since": since}).json()
        assert len(episodes) == 1 and episodes[0]["duration_seconds"] == dict(events)["episode"]["duration_seconds"]
        assert client.get("/api/episodes", params={"since": "2999-01-01T00:00:00+00:00"}).json() == []
        bad = client.get("/api/episodes", params={"since": "last night"})
        assert bad.status_code == 400 and "ISO 8601" in bad.json()["error"]
        # no token on 127.0.0.1, but only loopback Host names: a page elsewhere cannot rebind its name to us
        assert client.get("/api/state", headers={"Host": "evil.example:8000"}).status_code == 401
        cross = client.get("/api/state", headers={"Origin": "http://evil.example"})
        assert not any(h.lower().startswith("access-control") for h in cross.headers)  # no CORS


def test_a_browser_that_does_not_read_is_dropped_and_a_stuck_server_never_holds_the_classifier():
    from cry.monitor.web_state import CLIENT_QUEUE

    web, released = WebOutput(), threading.Event()

    async def scenario():
        web.loop = asyncio.get_running_loop()
        asleep, awake = web.subscribe(), web.subscribe()
        for i in range(CLIENT_QUEUE + 1):  # one more event than a queue holds
            web.on_episode(EpisodeEvent("start", float(i), float(i)))
            await asyncio.sleep(0.01)
            assert (await awake.get()).startswith(b"event: episode")
        assert list(web.clients) == [awake] and web.dropped_clients == 1
        assert asleep.qsize() == 1 and asleep.get_nowait() is None  # its stream ends there; the page reconnects
        # the server's loop stuck for a while: the classifier goes on, and its states wait as one, the newest
        web.loop.call_soon(released.wait, 30)
        feeding = threading.Thread(target=lambda: [web.on_window(crying_at(t, State.NOT_CRYING)) for t in range(1000)])
        await asyncio.to_thread(lambda: (feeding.start(), feeding.join(30), released.set()))
        await asyncio.sleep(0.3)
        return [awake.get_nowait() for _ in range(awake.qsize())]

    sent = asyncio.run(scenario())
    assert len(sent) == 1 and json.loads(sent[0].split(b"data: ")[1])["stream_seconds"] == 999


def test_token_is_checked_on_every_route_in_process():
    from starlette.testclient import TestClient

    token = "correct-horse-battery"
    unthrottled = Throttle(free=10**6)  # 40 wrong tokens from one address here: throttled in tests/test_web_attacks.py
    with TestClient(create_app(WebOutput(), token=token, host="0.0.0.0", throttle=unthrottled),
                    base_url="http://127.0.0.1") as client:
        for path in ("/", "/app.js", "/style.css", "/api/state", "/api/recent", "/api/episodes", "/api/events",
                     "/no/such/page"):
            for headers, params in (({}, {}), ({}, {"token": "wrong"}), ({"Authorization": "Bearer wrong"}, {}),
                                    ({"Authorization": f"Basic {token}"}, {}), ({}, {"token": token[:-1]})):
                response = client.get(path, headers=headers, params=params)
                assert (response.status_code, response.content) == (401, b"unauthorized\n"), (path, headers, params)
        assert client.post("/api/upload", content=b"RIFF").status_code == 401
        page = client.get("/", params={"token": token})
        assert page.status_code == 200 and f'app.js?token={token}"' in page.text  # the page's own requests carry it
        assert client.get("/api/state", headers={"Authorization": f"Bearer {token}"}).status_code == 200
        assert client.get("/app.js", params={"token": token}).headers["content-type"].startswith("text/javascript")


@pytest.fixture(scope="module")
def upload_client(loud_model):
    """The app with uploads answered by the loud model through cry.monitor.upload.answer; 1 MB limit;
    its requests say what a browser says of the page's own (Sec-Fetch-Site: same-origin)."""
    from starlette.testclient import TestClient

    from cry.assemble import load_live_path

    answer = partial(upload.answer, path=load_live_path(loud_model, None))
    with TestClient(create_app(WebOutput(), answer, max_upload_bytes=2**20), base_url="http://127.0.0.1",
                    headers={"Sec-Fetch-Site": "same-origin"}) as client:
        yield client


@pytest.mark.parametrize("body, status, message", [
    (b"", 400, "empty"),
    (b"I am a text file, not a recording. " * 50, 415, "not an audio file"),
    (b"\x89PNG\r\n\x1a\n" + bytes(2000), 415, "not an audio file"),
    (b"x" * (2**20 + 1), 413, "1 MB limit"),
    (iter([b"x" * 300_000] * 4), 413, "1 MB limit"),  # no length given (chunked): counted while read
])
def test_upload_refuses_empty_non_audio_and_oversized(upload_client, body, status, message):
    response = upload_client.post("/api/upload", content=body)
    assert response.status_code == status and message in response.json()["error"]


def test_upload_refuses_truncated_and_too_short_audio(upload_client, loud_cry):
    audio, rate, _ = loud_cry
    for data, message in ((wav_bytes(audio, rate)[:30_000], "truncated"),
                          (wav_bytes(audio, rate, "FLAC")[:20_000], "broken or truncated"),
                          (wav_bytes(audio[:rate], rate), "at least 3 s")):
        response = upload_client.post("/api/upload", content=data)
        assert response.status_code == 400 and message in response.json()["error"], response.json()


def test_upload_answers_each_window_and_the_spectrogram(upload_client, loud_cry):
    from PIL import Image

    audio, rate, _ = loud_cry
    quiet = np.zeros(20 * rate, np.float32)  # more than the 15 s without crying that end an episode
    raw = upload_client.post("/api/upload", content=wav_bytes(np.concatenate([audio, quiet]), rate),
                             headers={"Content-Type": "application/octet-stream"})
    assert raw.status_code == 200, raw.text
    answer = raw.json()
    ends = [w["stream_seconds"] for w in answer["windows"]]
    assert ends == pytest.approx(np.arange(3.0, len(audio) / rate + 20 + 1e-9, 0.5))  # the live hop, whole file
    states = [w["state"] for w in answer["windows"]]
    assert states[0] == "crying" and states[-1] == "quiet" and answer["crying_windows"] >= 8
    assert len(answer["episodes"]) == 1 and answer["episodes"][0]["duration_seconds"] > 4
    assert answer["windows"][0]["reason_text"] == "reason not known"
    image = np.asarray(Image.open(io.BytesIO(base64.b64decode(answer["image"]["png_base64"]))))
    assert image.shape == (128, 128, 3) and image[..., 1].mean() > 90  # the cry's window: bright, as the model saw it
    # the same recording as a form with a hostile file name: refused (a recording is sent as the body, by what
    # it is, never by a name), before its body is read
    form = upload_client.post("/api/upload", files={"file": ("../../etc/cron.d/x.wav", wav_bytes(
        np.concatenate([audio, quiet]), rate), "audio/wav")})
    assert form.status_code == 415 and "not a form" in form.json()["error"]


# ---- the script serving the page ------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serving(args: list[str], tmp_path: Path, stdout=subprocess.DEVNULL, ready: str = "listening"):
    """The script as a subprocess; yields (process, its stderr so far: a callable) once `ready` is printed."""
    err = tmp_path / f"stderr-{time.monotonic_ns()}.txt"
    with open(err, "w") as f:
        proc = subprocess.Popen([*SCRIPT, *args], stdout=stdout, stderr=f, text=True, cwd=ROOT)
    try:
        deadline = time.monotonic() + 60
        while ready not in err.read_text():
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the script did not start (status {proc.poll()}):\n{err.read_text()[-3000:]}")
            time.sleep(0.05)
        yield proc, err.read_text
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(30)


def test_browser_sees_the_cry_the_episode_and_the_alert(mic_feed, loud_model, loud_cry, tmp_path):
    """Chromium (Debian's, driven by Playwright) on the page while a cry comes through the virtual microphone."""
    from playwright.sync_api import expect, sync_playwright

    if not Path(CHROMIUM).exists():
        (pytest.fail if os.environ.get("CI") else pytest.skip)("no Chromium (sh scripts/system-deps.sh test)")
    _, _, folder = loud_cry
    port = free_port()
    args = ["--model", str(loud_model), "--serve", f"127.0.0.1:{port}", "--history", str(tmp_path / "h.sqlite"),
            "--alert-after", "2", "--duration", "60"]
    with serving(args, tmp_path) as (proc, stderr), sync_playwright() as playwright:
        assert f"page: http://127.0.0.1:{port}/\n" in stderr()  # loopback: no token
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 412, "height": 915}, device_scale_factor=2,
                                      permissions=["notifications"])
        page = context.new_page()
        page.goto(f"http://127.0.0.1:{port}/")
        expect(page.locator("#link")).to_have_text("live")
        page.click("#allow")
        mic_feed.play(folder / "cry44k.wav", loop=True)
        expect(page.locator("#state")).to_have_text("Crying", timeout=15_000)
        expect(page.locator("#detail")).to_contain_text("reason not known")
        expect(page.locator("#timeline li.open")).to_have_count(1)
        expect(page.locator("#timeline li.open .when")).to_contain_text("– now")
        expect(page.locator("#alert")).to_contain_text("Crying for", timeout=10_000)
        expect(page.locator("#alert-status")).to_contain_text("notification, sound")
        page.set_input_files("#file", str(folder / "cry.wav"))
        page.click("#upload-form button")
        expect(page.locator("#upload-summary")).to_contain_text("Crying episodes: ", timeout=20_000)
        assert page.eval_on_selector("#spectrogram", "img => img.naturalWidth") == 128
        page.wait_for_timeout(1000)  # a few more points on the chart
        SCREENSHOT.parent.mkdir(exist_ok=True)
        page.screenshot(path=str(SCREENSHOT), full_page=True)
        mic_feed.stop()
        # the microphone's digital silence: quiet once 15 s without crying have ended the episode
        expect(page.locator("#state")).to_have_text("Quiet", timeout=25_000)
        expect(page.locator("#timeline li")).to_have_count(1)
        ended = page.locator("#timeline li:not(.open) .how")
        expect(ended).to_contain_text(re.compile(r"^(\d+ min )?\d+ s · reason not known"))
        expect(page.locator("#totals")).to_have_text(re.compile(r"^1 episode, \d+\.\d minutes crying$"))
        with another_site(port) as elsewhere:  # a page of another site posts a form to the monitor: refused
            evil = context.new_page()
            evil.goto(elsewhere)
            with evil.expect_navigation():
                evil.click("button")
            assert evil.content().count("cross-site request refused") == 1
        browser.close()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0
    assert SCREENSHOT.stat().st_size > 10_000


@contextlib.contextmanager
def another_site(port: int):
    """http://localhost:<another port>/ (another site than 127.0.0.1): a form that posts a file to
    the monitor's upload, as a hostile page open in the same browser would."""
    import http.server

    form = (f'<form method="post" enctype="multipart/form-data" action="http://127.0.0.1:{port}/api/upload">'
            '<input type="hidden" name="file" value="RIFF"><button>go</button></form>').encode()

    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("content-type", "text/html")
            self.end_headers()
            self.wfile.write(form)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://localhost:{server.server_port}/"
    finally:
        server.shutdown()
        server.server_close()


def get(port: int, path: str, token: str | None = None, bearer: str | None = None):
    import httpx2 as httpx

    headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
    return httpx.get(f"http://127.0.0.1:{port}{path}", params={"token": token} if token else None, headers=headers,
                     timeout=10)


def test_other_addresses_need_the_token_and_a_killed_server_keeps_its_episodes(loud_model, loud_cry, tmp_path):
    import httpx2 as httpx

    _, rate, folder = loud_cry
    history, port = tmp_path / "history.sqlite", free_port()
    args = ["--model", str(loud_model), "--history", str(history)]
    with serving([*args, "--file", str(folder / "cry.wav"), "--serve", f"0.0.0.0:{port}"], tmp_path) as (proc, stderr):
        token = re.search(r"^page: http://\S+/\?token=([\w-]{20,})  \(this machine: http://127\.0\.0\.1:"
                          rf"{port}/\?token=\1\)$", stderr(), re.M).group(1)  # generated, printed with the address
        for i, path in enumerate(("/", "/app.js", "/api/state", "/api/episodes", "/api/events")):
            assert get(port, path).status_code == 401
            if i % 2:  # a few wrong tokens: more from one address are throttled (tests/test_web_attacks.py)
                assert get(port, path, "wrong-token").status_code == 401
                assert get(port, path, bearer=token[::-1]).text == "unauthorized\n"
        assert get(port, "/api/state", bearer=token).status_code == 200
        with httpx.stream("GET", f"http://127.0.0.1:{port}/api/events", params={"token": token}, timeout=10) as events:
            assert events.status_code == 200
            assert read_events(events.iter_lines(), lambda kind, data: kind == "state")[-1][0] == "state"
        deadline = time.monotonic() + 20  # the cry plays in real time: wait for the episode to start
        while (episode := get(port, "/api/state", token).json()["episode"]) is None:
            assert time.monotonic() < deadline and proc.poll() is None, "no crying episode started"
            time.sleep(0.1)
        time.sleep(0.3)  # the history's writer thread commits the start
        proc.send_signal(signal.SIGKILL)  # mid-episode: its end is never written
        proc.wait(10)

    sf.write(tmp_path / "quiet.wav", np.zeros(20 * rate, np.float32), rate)
    own = "a-token-of-my-own"  # loopback, but a token was given: then it is required too
    with serving([*args, "--file", str(tmp_path / "quiet.wav"), "--serve", f"127.0.0.1:{port}", "--token", own],
                 tmp_path) as (proc, stderr):
        assert f"page: http://127.0.0.1:{port}/?token={own}\n" in stderr()
        assert get(port, "/api/episodes").status_code == 401
        episodes = get(port, "/api/episodes", bearer=own).json()
        assert [(e["start"], e["end"]) for e in episodes] == [(episode["start"], None)]  # started, never ended
        assert get(port, "/api/state", own).json()["totals"]["episodes"] == 1


# ---- 50 event streams while an hour of audio is classified as fast as possible ------------------

class EventStreams:
    """n raw connections to /api/events, read on one thread; the first `stalled` never read (with
    a tiny receive buffer), like a phone that went to sleep mid-stream."""

    def __init__(self, port: int, n: int, stalled: int):
        self.received, self.socks, self.selector = [bytearray() for _ in range(n)], [], selectors.DefaultSelector()
        for i in range(n):
            sock = socket.socket()
            if i < stalled:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.connect(("127.0.0.1", port))
            sock.sendall(b"GET /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            self.socks.append(sock)
            if i >= stalled:
                self.selector.register(sock, selectors.EVENT_READ, i)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        while self.selector.get_map() and not self.stop.is_set():
            for key, _ in self.selector.select(timeout=1):
                chunk = key.fileobj.recv(1 << 16)
                self.received[key.data] += chunk
                if not chunk:
                    self.selector.unregister(key.fileobj)

    def events(self, i: int, kind: str) -> list[dict]:
        """The data of client i's events of one kind (each event is one HTTP chunk: never split)."""
        return [json.loads(d) for d in re.findall(rb"event: " + kind.encode() + rb"\ndata: (.*)\n", self.received[i])]

    def close(self):
        self.stop.set()
        self.thread.join(30)
        for sock in self.socks:
            sock.close()


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) / 1024


def test_fifty_event_streams_during_forty_minutes_of_audio(loud_model, loud_cry, tmp_path):
    """40 minutes (a cry every 30 s) with --fast: the middle third with 50 event streams (5 of
    them never reading), the rest alone. Compared: windows a second, the server's memory."""
    audio, rate, _ = loud_cry
    cycles, total = 80, 80 * 30
    cycle = np.concatenate([audio, np.zeros(30 * rate - len(audio), np.float32)])
    sf.write(tmp_path / "hour.wav", np.tile(cycle, cycles), rate, subtype="PCM_16")
    port, progress, streams = free_port(), [], None
    args = ["--model", str(loud_model), "--file", str(tmp_path / "hour.wav"), "--fast",
            "--serve", f"127.0.0.1:{port}", "--history", str(tmp_path / "history.sqlite")]
    with serving(args, tmp_path, stdout=subprocess.PIPE, ready="page:") as (proc, stderr):
        for line in proc.stdout:  # one line per window: "HH:MM:SS   1234.0 s  crying: ..."
            progress.append((time.monotonic(), float(line.split()[1]), rss_mb(proc.pid)))
            if streams is None and progress[-1][1] >= total / 3:
                streams = EventStreams(port, 50, stalled=5)
            elif streams and not streams.stop.is_set() and progress[-1][1] >= 2 * total / 3:
                streams.close()
        assert proc.wait(60) == 0, stderr()[-2000:]
    t, seconds, rss = map(np.array, zip(*progress))
    ends = np.searchsorted(seconds, np.array([0.05, 0.3, 0.38, 0.64, 0.72, 0.97]) * total)
    pace = [(j - i) / (t[j] - t[i]) for i, j in zip(ends[::2], ends[1::2])]
    alone, crowd = (pace[0] + pace[2]) / 2, pace[1]
    b, c = ends[1], ends[2]
    growth = rss[c:ends[3]].max() - rss[c]
    most, dropped = map(int, re.search(r"page: (\d+) event streams at most, (\d+) dropped", stderr()).groups())
    # every episode event, from the history; each reading stream must have all of them from when it connected
    truth = [(kind, e["start"]) for e in reversed(History(tmp_path / "history.sqlite").episodes())  # oldest first
             for kind in ("start", "end")]
    got = [[(e["kind"], e["start"]) for e in streams.events(i, "episode")] for i in range(5, 50)]
    states = [len(streams.events(i, "state")) for i in range(5, 50)]
    print(f"\n{total / 60:.0f} minutes of audio, --fast, {len(progress)} windows: {alone:.0f} windows/s alone (before "
          f"and after), {crowd:.0f} with 50 event streams (ratio {crowd / alone:.2f}); server RSS {rss[b]:.0f} MB "
          f"before the streams, {rss[c]:.0f} MB with them, at most {rss[c:ends[3]].max():.0f} MB while they listened "
          f"(+{growth:.1f} MB), {rss[-1]:.0f} MB at the end; each reading stream got {min(map(len, got))}-"
          f"{max(map(len, got))} of the third's ~{2 * cycles // 3} episode events and "
          f"{min(states)}-{max(states)} states; "
          f"{most} streams at most, {dropped} dropped")
    assert most == 50 and len(truth) == 2 * cycles
    for g in got:  # none lost, none out of order, while connected
        assert g and g == truth[truth.index(g[0]):truth.index(g[0]) + len(g)]
    assert min(map(len, got)) >= 0.85 * 2 * cycles / 3  # all of the middle third's, but for its edges
    assert min(states) >= 10  # states keep coming, coalesced to ten a second
    assert growth < 20, f"memory grew by {growth:.1f} MB while streaming"
    assert crowd > 0.5 * alone, "the classifier slowed down by half with 50 streams"
