"""The monitor as a Home Assistant sensor, against a real broker: Debian's mosquitto started here on
free ports (one anonymous, one with a password file), watched by a paho subscriber.

What decides "crying" here: a hand-set model (heard_model) calls every window that passes the
quiet gate a cry, so a corpus cry is crying and digital silence is quiet, for certain. These tests
check the way from the live path to the broker, not the model's judgement; the published states
are also compared with the script's own per-window trace.
"""
from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
from conftest import save_probe_model
import pytest
import soundfile as sf
from test_live import loud_recording

from cry.audio import resample
from cry.params import CLASSES

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = [sys.executable, str(ROOT / "real_time_prediction.py"), "--detector", "none"]  # the probe models decide
MOSQUITTO = shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/usr/local/sbin")
USER, PASSWORD = "parent", "s3cret night"
NODE = "test_nursery"


def or_skip(problem: str) -> None:
    """Skip, saying why; on CI (CI set) a missing broker is a failure."""
    (pytest.fail if os.environ.get("CI") else pytest.skip)(problem)


# ---- the broker, the subscriber, the script ---------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    """mosquitto on 127.0.0.1 at a free port with its own config (no persistence: a restart forgets
    every retained message), optionally with a password file; start() returns once it accepts."""

    def __init__(self, folder: Path, password: bool = False, extra: tuple[str, ...] = ()):
        if MOSQUITTO is None:
            or_skip("mosquitto not installed (sh scripts/system-deps.sh test installs it)")
        folder.mkdir(parents=True, exist_ok=True)
        self.port, self.log, self.proc = free_port(), folder / "mosquitto.log", None
        lines = [f"listener {self.port} 127.0.0.1", "persistence false", "user root", "log_type all",
                 f"allow_anonymous {'false' if password else 'true'}", *extra]
        if password:
            subprocess.run(["mosquitto_passwd", "-b", "-c", str(folder / "passwd"), USER, PASSWORD], check=True,
                           capture_output=True, timeout=10)
            lines.append(f"password_file {folder / 'passwd'}")
        self.config = folder / "mosquitto.conf"
        self.config.write_text("\n".join(lines) + "\n")

    def start(self) -> Broker:
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.config)], stdout=open(self.log, "a"),
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return self
            assert self.proc.poll() is None, self.log.read_text()[-2000:]
            time.sleep(0.05)
        pytest.fail(f"mosquitto did not start: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    started = Broker(tmp_path_factory.mktemp("anonymous")).start()
    yield started
    started.stop()


@pytest.fixture(scope="module")
def password_broker(tmp_path_factory):
    started = Broker(tmp_path_factory.mktemp("password"), password=True).start()
    yield started
    started.stop()


class Subscriber:
    """Records every message on the broker (topic, payload, retained?); resubscribes after a reconnect."""

    def __init__(self, port: int, user: str | None = None):
        import paho.mqtt.client as mqtt

        self.messages: list[tuple[str, str, bool]] = []
        self.changed = threading.Condition()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        if user:
            self.client.username_pw_set(user, PASSWORD)
        self.client.reconnect_delay_set(1, 1)
        self.client.on_connect = lambda client, *_: client.subscribe("#", qos=1)
        self.client.on_subscribe = lambda *_: self._add(("", "subscribed", False))
        self.client.on_message = lambda client, userdata, m: self._add((m.topic, m.payload.decode(), bool(m.retain)))
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        self.wait_for(lambda: ("", "subscribed", False) in self.messages, "the subscription")

    def _add(self, message) -> None:
        with self.changed:
            self.messages.append(message)
            self.changed.notify_all()

    def wait_for(self, condition, what: str, timeout: float = 30.0) -> None:
        with self.changed:
            if not self.changed.wait_for(condition, timeout):
                pytest.fail(f"no {what} within {timeout} s; messages: {self.messages[-40:]}")

    def live(self, name: str, node: str = NODE, retained: bool = False) -> list[str]:
        """Payloads published on NODE/name while subscribed (with retained=True also the retained
        copies the broker sends on subscribing)."""
        return [p for t, p, kept in list(self.messages) if t == f"{node}/{name}" and (retained or not kept)]

    def configs(self) -> dict[str, dict]:
        return {t: json.loads(p) for t, p, _ in list(self.messages) if t.endswith("/config")}

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def subscriber(broker):
    watching = Subscriber(broker.port)
    yield watching
    watching.close()


class Script:
    """real_time_prediction.py running, its stderr collected line by line."""

    def __init__(self, *args, env=None):
        self.proc = subprocess.Popen([*SCRIPT, *map(str, args)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     text=True, cwd=ROOT, env=env)
        self.lines: list[str] = []
        self.reader = threading.Thread(target=lambda: self.lines.extend(self.proc.stderr), daemon=True)
        self.reader.start()

    def wait_line(self, start: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not any(line.startswith(start) for line in self.lines):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.reader.join(5)
                pytest.fail(f"no line starting {start!r} (status {self.proc.poll()}):\n{''.join(self.lines)[-3000:]}")
            time.sleep(0.05)

    def said(self, start: str) -> list[str]:
        return [line for line in self.lines if line.startswith(start)]

    def finish(self, timeout: float = 60.0) -> int:
        status = self.proc.wait(timeout)
        self.reader.join(5)
        assert "Traceback" not in "".join(self.lines), "".join(self.lines)[-3000:]
        return status


# ---- a model and the audio ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def heard_model(tmp_path_factory) -> Path:
    """Every window the quiet gate lets through is a cry (silence ~0.001), hungry the likeliest guess;
    no reason claims, so the reason is 'uncertain'."""
    import keras
    from keras import layers


    bias = np.zeros(len(CLASSES))
    bias[CLASSES.index("silence")], bias[CLASSES.index("hungry")] = -5.0, 1.0
    inputs = keras.Input((128, 128, 3))
    dense = layers.Dense(len(CLASSES), activation="softmax", kernel_initializer="zeros",
                         bias_initializer=keras.initializers.Constant(bias))
    path = tmp_path_factory.mktemp("heard") / "heard.keras"
    save_probe_model(keras.Model(inputs, dense(layers.GlobalAveragePooling2D()(inputs))), path)
    return path


@pytest.fixture(scope="module")
def cry_audio(corpus, tmp_path_factory) -> dict[str, Path]:
    """A loud corpus cry: padded with digital silence at its own rate (3.5 s before, and after it
    20 s, more than an episode needs to end), that with 4.5 s after four times (long, played in real
    time: a minute, so that a loaded machine's slow start never lets it end before the test is
    done with it), and the cry's first 4 s at the virtual microphone's rate."""
    folder = tmp_path_factory.mktemp("cry_audio")
    audio, rate = sf.read(loud_recording(corpus), dtype="float32")
    before = np.zeros(int(3.5 * rate), np.float32)
    sf.write(folder / "padded.wav", np.concatenate([before, audio, np.zeros(20 * rate, np.float32)]), rate)
    sf.write(folder / "long.wav", np.tile(np.concatenate([before, audio, np.zeros(int(4.5 * rate), np.float32)]), 4),
             rate)
    mic_rate = int(os.environ.get("VMIC_RATE", 44100))
    sf.write(folder / "mic.wav", resample(audio[:4 * rate], rate, mic_rate), mic_rate, subtype="FLOAT")
    return {name: folder / f"{name}.wav" for name in ("padded", "long", "mic")}


def runs(values) -> list:
    """Consecutive repeats collapsed: what an on-change publisher sends."""
    return [v for i, v in enumerate(values) if i == 0 or v != values[i - 1]]


def trace_states(path: Path) -> list[str]:
    with open(path, newline="") as f:
        return [row["state"] for row in csv.DictReader(f)]


# ---- the tests ----------------------------------------------------------------------------------

def check_discovery(configs: dict[str, dict], prefix: str, node: str) -> None:
    """The fields Home Assistant needs in each config, one device, distinct unique ids."""
    assert sorted(configs) == sorted(f"{prefix}/{c}/{node}/{k}/config" for c, k in (
        ("binary_sensor", "crying"), ("sensor", "state"), ("sensor", "reason"), ("sensor", "level"),
        ("event", "event"), ("binary_sensor", "problem")))
    for config in configs.values():
        assert config["name"] and config["unique_id"].startswith(node) and config["state_topic"].startswith(f"{node}/")
        assert (config["availability_topic"], config["payload_available"], config["payload_not_available"]) == (
            f"{node}/availability", "online", "offline")
        assert config["device"]["identifiers"] == [node] and config["device"]["name"]
    assert len({c["unique_id"] for c in configs.values()}) == len(configs)
    crying = configs[f"{prefix}/binary_sensor/{node}/crying/config"]
    assert (crying["name"], crying["device_class"], crying["payload_on"], crying["payload_off"]) == (
        "Crying", "sound", "ON", "OFF")
    level = configs[f"{prefix}/sensor/{node}/level/config"]
    assert (level["unit_of_measurement"], level["state_class"]) == ("dBFS", "measurement")
    assert configs[f"{prefix}/sensor/{node}/state/config"]["options"] == ["quiet", "not crying", "crying",
                                                                          "not listening"]
    assert configs[f"{prefix}/event/{node}/event/config"]["event_types"] == ["start", "end"]


def test_a_file_publishes_discovery_and_crying_on_then_off(heard_model, cry_audio, broker, subscriber, tmp_path):
    trace = tmp_path / "trace.csv"
    done = subprocess.run([*SCRIPT, "--model", heard_model, "--file", cry_audio["padded"], "--fast", "--trace", trace,
                           "--mqtt", f"127.0.0.1:{broker.port}", "--mqtt-id", NODE, "--mqtt-prefix", "ha_test"],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr[-3000:]
    subscriber.wait_for(lambda: subscriber.live("availability")[-1:] == ["offline"], "offline at the end")
    check_discovery(subscriber.configs(), "ha_test", NODE)

    # States on change only, exactly as the monitor decided window by window.
    states = trace_states(trace)
    assert runs(states) == ["quiet", "crying", "quiet"]
    assert subscriber.live("crying") == ["OFF", "ON", "OFF"]
    assert subscriber.live("state") == ["quiet", "crying", "quiet"]
    reasons = subscriber.live("reason")
    assert reasons[0] == "not crying" and reasons[1] == "reason not known" and len(reasons) == 3
    levels = [float(v) for v in subscriber.live("level")]
    assert 3 <= len(levels) < len(states) and all(abs(a - b) >= 1.0 for a, b in zip(levels, levels[1:]))
    # "online" only once there is an answer to show, after the first states
    topics = [t for t, _, retained in subscriber.messages if not retained and t.startswith(f"{NODE}/")]
    assert subscriber.live("availability") == ["online", "offline"]
    assert topics.index(f"{NODE}/availability") > topics.index(f"{NODE}/state")

    # One episode: start, then end with its duration and the reason guess; not retained.
    events = [json.loads(p) for p in subscriber.live("event")]
    assert [e["event_type"] for e in events] == ["start", "end"]
    first_cry = states.index("crying")
    crying_seconds = (len(states) - states[::-1].index("crying") - first_cry) * 0.5  # hop 0.5 s
    # the episode ends at its last crying window, 15 s before the state stopped saying crying
    assert crying_seconds - 15.5 <= events[1]["duration_seconds"] <= crying_seconds - 14.5
    assert events[1]["reason"] is None and events[1]["reason_text"] == "reason not known"
    assert not any(retained for t, _, retained in subscriber.messages if t == f"{NODE}/event")


def test_the_microphone_publishes_crying_on_then_off(heard_model, cry_audio, broker, subscriber, mic_feed, tmp_path):
    trace = tmp_path / "trace.csv"
    script = Script("--model", heard_model, "--duration", "9.5", "--trace", trace, "--mqtt",
                    f"127.0.0.1:{broker.port}", "--mqtt-id", NODE)
    script.wait_line("listening")
    time.sleep(0.5)
    mic_feed.play(cry_audio["mic"])  # 4 s of cry, then the virtual microphone's digital silence
    assert script.finish() == 0
    subscriber.wait_for(lambda: subscriber.live("availability")[-1:] == ["offline"], "offline at the end")
    states = runs(trace_states(trace))
    # the episode outlasts the cry's end by less than the 15 s that end one: the stop ends it, and says so
    assert states in (["crying"], ["quiet", "crying"])  # quiet first if paplay started late
    assert subscriber.live("crying") == ["ON" if s == "crying" else "OFF" for s in states] + ["OFF"]
    assert subscriber.live("state")[:len(states)] == states and subscriber.live("state")[-1] != "crying"
    assert [json.loads(p)["event_type"] for p in subscriber.live("event")] == ["start", "end"]


def test_restarts_kill_and_broker_restarts(heard_model, cry_audio, tmp_path):
    """Broker absent at start, then up; the monitor SIGKILLed (offline) and started again (same
    entities); the broker restarted mid-run (all republished). Each outage is said once."""
    broker = Broker(tmp_path / "broker", password=True)
    env = dict(os.environ, CRY_MQTT_PASSWORD=PASSWORD)
    args = ["--model", heard_model, "--file", cry_audio["long"], "--mqtt", f"localhost:{broker.port}",
            "--mqtt-user", USER, "--history", tmp_path / "history.sqlite"]  # real time, default prefix and id:
    # the id generated on the first start, kept beside the history (tmp_path/mqtt_id), so the same on the second
    heard = tmp_path / "heard.wav"  # --save-audio streams: the SIGKILL below must leave a playable file
    scripts = [Script(*args, "--save-audio", heard, env=env)]
    first = scripts[0]
    try:
        first.wait_line("warning: mqtt: broker localhost")
        assert "not reachable" in first.said("warning")[0]
        broker.start()
        first.wait_line("listening")
        watching = Subscriber(broker.port, USER)
        watching.wait_for(lambda: any(t.endswith("/availability") and p == "online" for t, p, _ in watching.messages),
                          "'online' once the broker is up")
        first.wait_line("mqtt: connected to")
        assert len(first.said("warning")) == 1
        node = next(t for t, p, _ in watching.messages if t.endswith("/availability")).split("/")[0]
        configs = watching.configs()
        check_discovery(configs, "homeassistant", node)
        first.proc.send_signal(signal.SIGKILL)
        watching.wait_for(lambda: watching.live("availability", node)[-1:] == ["offline"], "the will after SIGKILL")
        first.finish()
        recorded, rate = sf.read(heard, dtype="float32")  # what was heard until the kill, to the last 0.5 s
        original, original_rate = sf.read(cry_audio["long"], dtype="float32")
        assert rate == original_rate and len(recorded) >= 1.0 * rate
        assert np.abs(recorded - original[:len(recorded)]).max() < 1e-4  # 16-bit PCM of the same samples

        scripts.append(Script(*args, env=env))
        second = scripts[1]
        second.wait_line("listening")
        watching.wait_for(lambda: watching.live("availability", node)[-1:] == ["online"], "'online' again")
        assert watching.configs() == configs  # the same entities: unique ids stable across restarts
        assert node == (tmp_path / "mqtt_id").read_text().strip() and node.startswith("cry_monitor_")
        watching.wait_for(lambda: watching.live("state", node), "a state")

        broker.stop()
        watching.messages.clear()  # the restarted broker keeps no retained message: all that comes is republished
        time.sleep(0.5)
        broker.start()
        watching.wait_for(lambda: len(watching.configs()) == 6 and all(
            watching.live(n, node, retained=True) for n in ("crying", "state", "reason", "level"))
            and watching.live("availability", node, retained=True)[-1:] == ["online"], "everything republished")
        # ([-1:]: the restarted broker may first hand out the monitor's will, "offline", of the lost connection)
        second.wait_line("mqtt: connected to")
        assert watching.configs() == configs
        assert len(second.said("warning: mqtt")) == 1 and "lost the broker" in second.said("warning")[0]
        second.proc.send_signal(signal.SIGKILL)
        second.finish()
        watching.close()
    finally:
        for script in scripts:
            if script.proc.poll() is None:
                script.proc.kill()
        broker.stop()


def test_wrong_credentials_are_one_error_line_and_status_2(heard_model, cry_audio, password_broker, tmp_path):
    (tmp_path / "password").write_text("not the password\n")
    done = subprocess.run([*SCRIPT, "--model", heard_model, "--file", cry_audio["padded"], "--mqtt",
                           f"127.0.0.1:{password_broker.port}", "--mqtt-user", USER, "--mqtt-id", NODE,
                           "--mqtt-password-file", tmp_path / "password"],
                          capture_output=True, text=True, cwd=ROOT, timeout=60)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-3000:]
    assert [line for line in lines if line.startswith(("error", "warning"))] == [lines[-1]]
    assert lines[-1].startswith(f"error: the MQTT broker 127.0.0.1:{password_broker.port} refused the user name")
    assert not any(line.startswith("listening") for line in lines)


def test_tls_needs_the_ca_that_signed_the_broker(tmp_path):
    """In process: with --mqtt-ca the connection is made; with the system's CAs alone, one UserError."""
    from cry.files import UserError
    from cry.monitor.mqtt import MqttOutput

    if not shutil.which("openssl"):
        pytest.skip("openssl not installed")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    for command in (["req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "1", "-subj", "/CN=test CA"],
                    ["req", *ec, "-keyout", "broker.key", "-out", "broker.csr", "-subj", "/CN=localhost"],
                    ["x509", "-req", "-in", "broker.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                     "-out", "broker.pem", "-days", "1", "-extfile", "san.ext"]):
        (tmp_path / "san.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
        subprocess.run(["openssl", *command], cwd=tmp_path, check=True, capture_output=True, timeout=30)
    broker = Broker(tmp_path / "broker", extra=tuple(f"{k} {tmp_path / v}" for k, v in (
        ("cafile", "ca.pem"), ("certfile", "broker.pem"), ("keyfile", "broker.key")))).start()
    try:
        output = MqttOutput("localhost", broker.port, "tls_test", ca=tmp_path / "ca.pem")
        assert output.answered.wait(5) and output.up
        output.close()
        with pytest.raises(UserError, match="TLS failed .*certificate"):
            MqttOutput("localhost", broker.port, "tls_test", tls=True)
    finally:
        broker.stop()


def test_command_line_values_are_checked_when_parsed(tmp_path):
    import argparse

    from cry.monitor.mqtt_config import parse_address, read_password, topic_word

    assert parse_address("broker.lan") == ("broker.lan", None)
    assert parse_address("10.0.0.2:1884") == ("10.0.0.2", 1884) and parse_address("[::1]:8883") == ("::1", 8883)
    (tmp_path / "password").write_text("pass word\nignored\n")
    assert read_password(str(tmp_path / "password")) == "pass word"
    (tmp_path / "empty").write_text("")
    for check, value in ((parse_address, "host:99999"), (parse_address, "a:b:c"), (read_password, tmp_path / "no"),
                         (read_password, tmp_path / "empty"), (topic_word, "home/assistant"), (topic_word, "#")):
        with pytest.raises(argparse.ArgumentTypeError):
            check(str(value))
