"""All night: clean stops, never silently deaf, phone notifications, Home Assistant's device.

Against the real parts: a local HTTP receiver started here on 127.0.0.1 (apprise's json:// posts
to it), mosquitto (tests/test_mqtt.py's Broker), Chromium for the page's "monitor stopped", and a
PulseAudio daemon of this test's own whose source is unloaded and loaded again while the script
listens (the session's virtual microphone is never touched).
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from test_mqtt import Broker, Script, Subscriber, cry_audio, heard_model  # noqa: F401 (fixtures)
from test_web import CHROMIUM, CHROMIUM_ARGS, free_port

from cry.deafness import Deafness
from cry.decision import State
from cry.files import UserError
from cry.live_path import Collect, LivePath, run
from cry.monitor import mqtt_config
from cry.monitor.alerts import Alerts
from cry.monitor.notify import Notify, notify_services
from cry.stream import array_source
from test_web import loudness_scorer
from cry.params import LiveSettings


class Receiver:
    """An HTTP server on 127.0.0.1 that keeps every JSON body posted to it (apprise's json:// service)."""

    def __init__(self):
        self.messages: list[dict] = []
        self.changed = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                self.send_response(200)
                self.end_headers()
                with receiver.changed:
                    receiver.messages.append(body)
                    receiver.changed.notify_all()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"json://127.0.0.1:{self.server.server_address[1]}/cry"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def titles(self) -> list[str]:
        return [m["title"] for m in self.messages]

    def wait_for(self, title_part: str, timeout: float = 30.0) -> dict:
        with self.changed:
            if not self.changed.wait_for(lambda: any(title_part in t for t in self.titles()), timeout):
                pytest.fail(f"no message {title_part!r} within {timeout} s: {self.messages}")
        return next(m for m in self.messages if title_part in m["title"])

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    started = Receiver()
    yield started
    started.close()


class Loudness:
    """cry.live_path.Scorer's stand-in: louder than -40 dBFS is a cry (each window decided alone)."""

    live, cry_threshold = LiveSettings(smooth_windows=1), 0.5

    def __call__(self, window, rate, end=None, cache=None):
        return loudness_scorer(window, rate)


# ---- in process: the rules ------------------------------------------------------------------------

def test_digital_zeros_for_a_while_are_not_listening_and_one_message_each_way(receiver):
    """A cry, 6 s of exact zeros (a muted input), a cry again: the episode ends when hearing stops,
    'not listening' after 4 s of zeros, one message for the cry, one each way for the deafness."""
    rate = 8000
    noise = np.random.default_rng(0).uniform(-0.3, 0.3, 4 * rate).astype(np.float32)
    audio = np.concatenate([noise, np.zeros(6 * rate, np.float32), noise])
    collect, path = Collect(), LivePath(Loudness())
    phone = Notify(notify_services([receiver.url], [], {}), Alerts(after=1.0, cooldown=120.0))
    run(array_source(audio, rate, "muted", fast=True), path.session(), [collect, phone],
        deafness=Deafness(zeros_seconds=4.0))
    states = [(s.stream_seconds, s.state) for s in collect.states]
    deaf = [t for t, s in states if s == State.NOT_LISTENING]
    # the zeros start at 4 s; windows of 3 s: all zeros from the one ending at 7 s, four seconds of them at 8 s
    assert deaf == list(np.arange(8.0, 10.01, 0.5))
    # all zeros from 7 s: quiet windows, but not yet 15 s without crying, so the episode lasts: crying
    assert [s for t, s in states if 7.0 <= t < 8.0] == [State.CRYING] * 2
    assert all(s == State.CRYING for t, s in states if t < 4.0 or t > 10.0)
    assert [(e.kind, e.stream_start_seconds) for e in collect.events] == [("start", 3.0), ("end", 3.0),
                                                                         ("start", 10.5), ("end", 10.5)]
    assert "digital silence" in next(s for s in collect.states if s.state == State.NOT_LISTENING).heard
    # the second cry comes within the cooldown: no second alert
    assert receiver.titles() == ["Baby crying", "Cry monitor: not listening", "Cry monitor: listening again"]
    assert receiver.messages[0]["message"].startswith("Crying for 1 s (since ")
    assert "digital silence" in receiver.messages[1]["message"]


def test_notification_urls_with_a_secret_never_come_from_the_command_line(tmp_path, receiver):
    with pytest.raises(UserError, match="holds a secret; put it in a file for --notify-file"):
        notify_services(["json://parent:hunter22@127.0.0.1:9/x"], [], {})
    with pytest.raises(UserError, match="not a notification URL apprise knows"):
        notify_services(["nonsense://x"], [], {})
    urls = tmp_path / "urls.txt"
    urls.write_text("# the phones\n\njson://parent:hunter22@127.0.0.1:9/x\n")
    assert len(notify_services([receiver.url], [urls], {"CRY_NOTIFY_URLS": "tgram://123:abc/4 ntfy://t"})) == 4
    (tmp_path / "empty.txt").write_text("# nothing\n")
    with pytest.raises(UserError, match="empty.txt: no notification URL"):
        notify_services([], [tmp_path / "empty.txt"], {})


def test_the_device_is_named_once_versioned_and_keeps_a_generated_id(tmp_path):
    made = mqtt_config.stored_id(tmp_path / "mqtt_id")
    assert made.startswith("cry_monitor_") and mqtt_config.stored_id(tmp_path / "mqtt_id") == made  # kept
    assert mqtt_config.device_name(made) == "Cry monitor" and mqtt_config.device_name("nursery_2") == "Nursery 2"
    configs = mqtt_config.discovery("homeassistant", "nursery_2", version=mqtt_config.software_version())
    device = configs["homeassistant/binary_sensor/nursery_2/crying/config"]["device"]
    assert device["name"] == "Nursery 2" and device["manufacturer"] and device["sw_version"]
    names = [c["name"] for c in configs.values()]
    assert len(set(names)) == len(names) and not any("nursery" in n.lower() or "cry monitor" in n.lower()
                                                     for n in names)  # Home Assistant puts the device name first
    problem = configs["homeassistant/binary_sensor/nursery_2/problem/config"]
    assert (problem["device_class"], problem["state_topic"]) == ("problem", "nursery_2/problem")
    assert "not listening" in configs["homeassistant/sensor/nursery_2/state/config"]["options"]
    (tmp_path / "bad_id").write_text("no/slashes\n")
    with pytest.raises(UserError, match="not an MQTT id"):
        mqtt_config.stored_id(tmp_path / "bad_id")


# ---- the script: a clean stop mid-cry ------------------------------------------------------------

def test_sigterm_mid_cry_ends_the_episode_everywhere(heard_model, cry_audio, receiver, tmp_path):  # noqa: F811
    """SIGTERM (systemd's stop) during a cry: the phone had its alert, then the page says "monitor
    stopped", MQTT keeps crying OFF and a state that is not crying next to "offline", the episode
    has its end in the history, and the script says its summary and exits 0."""
    from playwright.sync_api import expect, sync_playwright

    if not Path(CHROMIUM).exists():
        (pytest.fail if os.environ.get("CI") else pytest.skip)("no Chromium (sh scripts/system-deps.sh test)")
    broker = Broker(tmp_path / "broker").start()
    port, history = free_port(), tmp_path / "history.sqlite"
    script = Script("--model", heard_model, "--file", cry_audio["long"], "--serve", f"127.0.0.1:{port}",
                    "--history", history, "--mqtt", f"127.0.0.1:{broker.port}", "--mqtt-id", "nursery",
                    "--notify", receiver.url, "--alert-after", "1")
    watching = Subscriber(broker.port)
    try:
        script.wait_line("listening")
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page()
            page.goto(f"http://127.0.0.1:{port}/")
            expect(page.locator("#state")).to_have_text("Crying", timeout=20_000)
            alert = receiver.wait_for("Baby crying")
            assert "reason not known" in alert["message"]
            script.proc.send_signal(signal.SIGTERM)
            expect(page.locator("#state")).to_have_text("Monitor stopped", timeout=10_000)
            expect(page.locator("#link")).to_have_text("monitor stopped")
            page.wait_for_timeout(4000)  # the page retries: it still says so
            expect(page.locator("#state")).to_have_text("Monitor stopped")
            browser.close()
        assert script.finish() == 0
        watching.wait_for(lambda: watching.live("availability", "nursery")[-1:] == ["offline"], "offline")
        retained = {t: p for t, p, _ in watching.messages}  # the last payload of each topic
        assert (retained["nursery/crying"], retained["nursery/state"], retained["nursery/reason"]) == (
            "OFF", "not crying", "not crying")
        topics = [t for t, _, _ in watching.messages]
        assert topics.index("nursery/availability", topics.index("nursery/crying") + 1)  # offline after OFF
        events = [json.loads(p)["event_type"] for p in watching.live("event", "nursery")]
        assert events == ["start", "end"]
        assert any(line.startswith("interrupted: ") and "1 crying episodes" in line for line in script.lines)
        import sqlite3

        with sqlite3.connect(history) as db:
            assert db.execute("SELECT COUNT(*) FROM episodes WHERE end IS NOT NULL").fetchone() == (1,)
    finally:
        if script.proc.poll() is None:
            script.proc.kill()
        watching.close()
        broker.stop()


# ---- the script: the microphone lost and found again ---------------------------------------------

def pactl(env, *args) -> str:
    return subprocess.run(["pactl", *args], env=env, capture_output=True, text=True, check=True, timeout=10).stdout


def test_a_lost_microphone_is_said_everywhere_and_listening_resumes_by_itself(heard_model, receiver,  # noqa: F811
                                                                              tmp_path):
    """The PulseAudio source behind the input device is unloaded while the script listens, then
    loaded again: "not listening" on MQTT (state and problem sensor), the page's API and the
    phone, at once; then listening again, by itself."""
    import httpx2 as httpx
    from conftest import VMIC_SCRIPT, virtual_mic_or_skip

    virtual_mic_or_skip()
    vmic = tmp_path / "vmic"
    env = dict(os.environ, VMIC_DIR=str(vmic), PULSE_SERVER=f"unix:{vmic}/pulse.sock")
    subprocess.run(["sh", str(VMIC_SCRIPT), "start"], env=env, check=True, timeout=30)
    broker = Broker(tmp_path / "broker").start()
    port = free_port()
    script = Script("--model", heard_model, "--serve", f"127.0.0.1:{port}", "--history", tmp_path / "h.sqlite",
                    "--mqtt", f"127.0.0.1:{broker.port}", "--mqtt-id", "nursery", "--notify", receiver.url, env=env)
    watching = Subscriber(broker.port)
    state = lambda: httpx.get(f"http://127.0.0.1:{port}/api/state", timeout=5).json()  # noqa: E731
    try:
        script.wait_line("listening")
        watching.wait_for(lambda: watching.live("state", "nursery")[-1:] == ["quiet"], "quiet at first")
        sink = next(line.split()[0] for line in pactl(env, "list", "short", "modules").splitlines()
                    if "module-null-sink" in line)
        lost = time.monotonic()
        pactl(env, "unload-module", sink)
        watching.wait_for(lambda: watching.live("problem", "nursery")[-1:] == ["ON"], "the problem sensor on")
        assert watching.live("state", "nursery")[-1] == "not listening"
        assert time.monotonic() - lost < 5
        assert state()["state"] == "not_listening" and "device is gone" in state()["heard"]
        assert "device is gone" in receiver.wait_for("not listening")["message"]
        time.sleep(3)  # a few retries while there is nothing to open
        pactl(env, "load-module", "module-null-sink", "sink_name=mic_feed", "rate=44100", "channels=1",
              "norewinds=1")
        pactl(env, "set-default-source", "mic_feed.monitor")
        watching.wait_for(lambda: watching.live("problem", "nursery")[-1:] == ["OFF"], "the problem sensor off")
        assert watching.live("state", "nursery")[-1] == "quiet" and state()["state"] == "quiet"
        receiver.wait_for("listening again")
        script.wait_line("input device 'default': back after ")
        assert len(script.said("warning: input device")) == 1
        script.proc.send_signal(signal.SIGTERM)
        assert script.finish() == 0
        assert receiver.titles() == ["Nursery: not listening", "Nursery: listening again"]  # no cry
    finally:
        if script.proc.poll() is None:
            script.proc.kill()
        watching.close()
        broker.stop()
        subprocess.run(["sh", str(VMIC_SCRIPT), "stop"], env=env, timeout=30)


# ---- the service -----------------------------------------------------------------------------------

def test_the_systemd_unit_verifies_and_its_command_runs(tmp_path):
    """scripts/cry-monitor.service installed as its header says (@REPO@ -> this checkout): systemd's
    own checker accepts it, and its ExecStart, with no options, is the script."""
    import shlex
    import shutil

    root = Path(__file__).resolve().parents[1]
    unit = tmp_path / "cry-monitor.service"
    unit.write_text((root / "scripts" / "cry-monitor.service").read_text().replace("@REPO@", str(root)))
    text = unit.read_text()
    assert "Restart=on-failure" in text and "WantedBy=default.target" in text
    if shutil.which("systemd-analyze"):
        done = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
    command = shlex.split(next(line for line in text.splitlines() if line.startswith("ExecStart="))[10:])
    assert command[-1] == "$CRY_MONITOR_ARGS"  # systemd puts the options from ~/.config/cry-monitor.env there
    done = subprocess.run([*command[:-1], "--help"], capture_output=True, text=True, timeout=60, cwd=root)
    assert done.returncode == 0 and "--notify" in done.stdout and "--deaf-after" in done.stdout
