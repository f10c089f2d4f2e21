"""The monitor as Home Assistant sensors over MQTT: discovery, retained states, a last will, episode events.

Topics, for a monitor whose id is NODE (--mqtt-id) and a discovery prefix PREFIX (--mqtt-prefix):

    PREFIX/binary_sensor/NODE/crying/config   discovery configs (JSON, retained), one per entity,
    PREFIX/sensor/NODE/{state,reason,level}/config    all of one device; republished on every connect
    PREFIX/event/NODE/event/config
    NODE/availability   "online" / "offline" (retained; "offline" is also the last will, so a killed
                        monitor goes unavailable)
    NODE/crying         "ON" / "OFF"                                  (retained, on change)
    NODE/state          "quiet" / "not crying" / "crying"             (retained, on change)
    NODE/reason         "reason uncertain (hungry 0.31, ...)", a claimed reason, or "not crying"
    NODE/level          dBFS, e.g. "-42.5"                            (retained, rate-limited)
    NODE/event          {"event_type": "start"|"end", ...EpisodeEvent} (JSON, not retained)

paho's network loop runs on its own thread and reconnects with backoff; publish() only queues.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import re
import socket
import ssl
import sys
import threading
from pathlib import Path

from cry.decision import EpisodeEvent, State, WindowState
from cry.files import UserError
from cry.live_path import Output
from cry.monitor.outputs import Background

PASSWORD_ENV = "CRY_MQTT_PASSWORD"
KEEPALIVE_SECONDS = 20    # after a network loss the broker sends the last will within 1.5x this
CONNECT_SECONDS = 5.0     # at start: how long to wait for the broker's answer (bad credentials are fatal)
REFRESH_SECONDS = 10.0    # a small change of the level or of the reason's shares waits this long
LEVEL_STEP_DB = 1.0       # a level change this large is published at once
NOT_CRYING = State.NOT_CRYING.text  # the reason sensor's value outside crying (an empty payload is ignored by HA)
AUTH_REFUSALS = ("Bad user name or password", "Not authorized")


def default_id() -> str:
    """cry_monitor_<hostname>: stable across restarts, distinct for two monitors in one house."""
    return ("cry_monitor_" + re.sub(r"[^a-z0-9]+", "_", socket.gethostname().lower())).rstrip("_")


def discovery(prefix: str, node: str) -> dict[str, dict]:
    """{config topic: Home Assistant discovery payload} for the monitor's entities, all of one device."""
    common = {"availability_topic": f"{node}/availability", "payload_available": "online",
              "payload_not_available": "offline",
              "device": {"identifiers": [node], "name": "Cry monitor", "model": "infant cry classifier"}}
    entities = {
        ("binary_sensor", "crying"): {"name": "Baby crying", "device_class": "sound",
                                      "payload_on": "ON", "payload_off": "OFF"},
        ("sensor", "state"): {"name": "State", "device_class": "enum", "options": [s.text for s in State],
                              "icon": "mdi:baby-face-outline"},
        ("sensor", "reason"): {"name": "Cry reason", "icon": "mdi:comment-question-outline"},
        ("sensor", "level"): {"name": "Sound level", "unit_of_measurement": "dBFS", "state_class": "measurement",
                              "suggested_display_precision": 0, "icon": "mdi:volume-high"},
        ("event", "event"): {"name": "Crying episode", "event_types": ["start", "end"], "icon": "mdi:baby-bottle"},
    }
    return {f"{prefix}/{component}/{node}/{key}/config": {**fields, "unique_id": f"{node}_{key}",
                                                          "state_topic": f"{node}/{key}", **common}
            for (component, key), fields in entities.items()}


def episode_payload(event: EpisodeEvent) -> dict:
    """The event topic's JSON: the episode event (with the reason in words), its kind as Home Assistant's event_type."""
    return {"event_type": event.kind, **event.to_dict()}


class MqttOutput(Output):
    """Publishes every answer as retained sensor states (on change), and each episode's start and end.

    Connects once at start (wrong credentials or a certificate that fails: UserError); an absent
    or restarting broker is said once on stderr and retried in the background with backoff. On
    every (re)connect the discovery configs go out again, and with the next window every state
    and then "online".
    """

    def __init__(self, host: str, port: int, node: str, prefix: str = "homeassistant", user: str | None = None,
                 password: str | None = None, tls: bool = False, ca: Path | None = None):
        import paho.mqtt.client as mqtt

        self.where, self.node, self.configs = f"{host}:{port}", node, discovery(prefix, node)
        self.sent: dict[str, tuple[str, float]] = {}  # topic name -> (payload, time) last published
        self.gist = None                               # what the published reason says, without the shares
        self.fresh = threading.Event()                 # (re)connected: publish every state again
        self.answered = threading.Event()              # the broker answered a connect
        self.refused, self.trouble, self.closing, self.up = None, False, False, False
        client = self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=node)
        if user:
            client.username_pw_set(user, password)
        if tls or ca:
            try:
                client.tls_set(ca_certs=None if ca is None else str(ca))
            except OSError as exc:  # ssl.SSLError is one
                raise UserError(f"--mqtt-ca {ca}: not a usable CA certificate file ({exc})") from None
        client.will_set(self.topic("availability"), "offline", qos=1, retain=True)
        client.reconnect_delay_set(1, 30)
        client.connect_timeout = CONNECT_SECONDS
        client.on_connect, client.on_disconnect = self._on_connect, self._on_disconnect
        client.on_connect_fail = lambda client, userdata: self._down(f"broker {self.where} not reachable")
        self._start(host, port)

    def topic(self, name: str) -> str:
        return f"{self.node}/{name}"

    def _start(self, host: str, port: int) -> None:
        try:
            self.client.connect(host, port, KEEPALIVE_SECONDS)  # TCP and TLS now; the answer comes in the loop
        except ssl.SSLError as exc:
            raise UserError(f"--mqtt {self.where}: TLS failed ({getattr(exc, 'verify_message', None) or exc.reason}); "
                            f"is it the broker's TLS port, and does --mqtt-ca sign its certificate?") from None
        except OSError as exc:
            self._down(f"broker {self.where} not reachable ({exc.strerror or exc})")
            self.client.connect_async(host, port, KEEPALIVE_SECONDS)
            self.client.loop_start()
            return
        self.client.loop_start()
        if self.answered.wait(CONNECT_SECONDS) and self.refused in AUTH_REFUSALS:
            self.client.loop_stop()
            raise UserError(f"the MQTT broker {self.where} refused the user name or password ({self.refused}): "
                            f"check --mqtt-user and {PASSWORD_ENV} or --mqtt-password-file")

    def _down(self, why: str) -> None:
        """Say once per outage that the broker is gone; listening goes on."""
        if not (self.trouble or self.closing):
            self.trouble = True
            print(f"warning: mqtt: {why}; listening on, reconnecting in the background", file=sys.stderr, flush=True)

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:  # the broker then closes the connection: _on_disconnect stays quiet
            first, self.refused = not self.answered.is_set(), str(reason_code)
            self.answered.set()
            if not (first and self.refused in AUTH_REFUSALS):  # refused at start: _start says it, as an error
                self._down(f"broker {self.where} refused the connection ({reason_code})")
            return
        self.refused, self.up = None, True
        if self.trouble:
            self.trouble = False
            print(f"mqtt: connected to {self.where}", file=sys.stderr, flush=True)
        for topic, config in self.configs.items():
            client.publish(topic, json.dumps(config), qos=1, retain=True)
        self.fresh.set()
        self.answered.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure and self.refused is None:
            self._down(f"lost the broker {self.where} ({reason_code})" if self.up else
                       f"{self.where} closed the connection unanswered ({reason_code}; a TLS port needs --mqtt-tls)")
        self.up = False
        self.answered.set()

    def _send(self, name: str, payload: str, now: float, significant: bool = True) -> bool:
        """Publish (retained) when payload changed: at once if the change is significant, else once
        REFRESH_SECONDS have passed since the last one. Returns whether it published."""
        last = self.sent.get(name)
        if last is not None and (payload == last[0] or not significant and now - last[1] < REFRESH_SECONDS):
            return False
        self.client.publish(self.topic(name), payload, retain=True)  # QoS 0: all of it goes again on reconnect
        self.sent[name] = (payload, now)
        return True

    def on_window(self, state: WindowState) -> None:
        fresh = self.fresh.is_set()
        if fresh:
            self.fresh.clear()
            self.sent.clear()
        self._send("crying", "ON" if state.state == State.CRYING else "OFF", state.time)
        self._send("state", state.state.text, state.time)
        gist = (state.state, state.reason, state.guesses[0][0] if state.guesses else None)
        if self._send("reason", state.reason_text or NOT_CRYING, state.time, gist != self.gist):
            self.gist = gist
        level = self.sent.get("level")
        self._send("level", f"{state.level_dbfs:.1f}", state.time,
                   level is None or abs(state.level_dbfs - float(level[0])) >= LEVEL_STEP_DB)
        if fresh:  # available once there is an answer to show
            self.client.publish(self.topic("availability"), "online", qos=1, retain=True)

    def on_episode(self, event: EpisodeEvent) -> None:
        self.client.publish(self.topic("event"), json.dumps(episode_payload(event)), qos=1)

    def close(self) -> None:
        self.closing = True
        info = self.client.publish(self.topic("availability"), "offline", qos=1, retain=True)
        if self.client.is_connected():
            with contextlib.suppress(ValueError, RuntimeError):
                info.wait_for_publish(2.0)
        self.client.disconnect()
        self.client.loop_stop()


# ---- options ------------------------------------------------------------------------------

def parse_address(text: str) -> tuple[str, int | None]:
    """'host', 'host:1883' or '[::1]:1883' -> (host, port or None)."""
    match = re.fullmatch(r"(\[[^\]]+\]|[^:\[\]]+)(?::(\d{1,5}))?", text.strip())
    if not match or (match[2] and not 0 < int(match[2]) < 65536):
        raise argparse.ArgumentTypeError(f"{text!r}: expected HOST or HOST:PORT, e.g. localhost:1883")
    return match[1].strip("[]"), int(match[2]) if match[2] else None


def read_password(path: str) -> str:
    """The first line of a password file."""
    try:
        lines = Path(path).read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise argparse.ArgumentTypeError(f"{path}: cannot read ({getattr(exc, 'strerror', None) or exc})") from None
    if not lines or not lines[0]:
        raise argparse.ArgumentTypeError(f"{path}: the first line (the password) is empty")
    return lines[0]


def topic_word(text: str) -> str:
    """A discovery prefix or node id: letters, digits, '_' and '-' (Home Assistant's rule for ids)."""
    if not re.fullmatch(r"[A-Za-z0-9_-]+", text):
        raise argparse.ArgumentTypeError(f"{text!r}: use only letters, digits, '_' and '-'")
    return text


@dataclasses.dataclass(frozen=True)
class MqttOptions:
    """What the --mqtt options ask for; the password comes from the environment or a file."""

    broker: tuple | None = None          # (host, port or None), from parse_address; None: no MQTT
    user: str | None = None
    password: str | None = None          # read from --mqtt-password-file by the script
    tls: bool = False
    ca: Path | None = None
    prefix: str = "homeassistant"
    node: str = dataclasses.field(default_factory=default_id)


def mqtt_outputs(options: MqttOptions) -> list[Output]:
    """[the MQTT output, on its own thread] when a broker was given, else []."""
    if options.broker is None:
        return []
    if options.password and not options.user:
        raise UserError("--mqtt-password-file needs --mqtt-user")
    host, port = options.broker
    tls = options.tls or options.ca is not None
    password = (options.password or os.environ.get(PASSWORD_ENV)) if options.user else None
    output = MqttOutput(host, port or (8883 if tls else 1883), options.node, options.prefix, options.user,
                        password, tls, options.ca)
    print(f"mqtt: {output.where}, Home Assistant discovery under {options.prefix}/, states and events "
          f"under {options.node}/", file=sys.stderr, flush=True)
    return [Background(output)]
