"""The monitor as Home Assistant sensors over MQTT: discovery, retained states, a last will, episode events.

Topics, for a monitor whose id is NODE (--mqtt-id) and a discovery prefix PREFIX (--mqtt-prefix):

    PREFIX/binary_sensor/NODE/{crying,problem}/config   discovery configs (JSON, retained), one per
    PREFIX/sensor/NODE/{state,reason,level}/config      entity, all of one device (cry.monitor.mqtt_config);
    PREFIX/event/NODE/event/config                      republished on every connect
    NODE/availability   "online" / "offline" (retained; "offline" is also the last will, so a killed
                        monitor goes unavailable)
    NODE/crying         "ON" / "OFF"                                  (retained, on change)
    NODE/state          "quiet" / "not crying" / "crying" / "not listening"  (retained, on change)
    NODE/reason         "reason not known" (held-out babies showed no skill), "probably ...", or "not crying"
    NODE/level          dBFS, e.g. "-42.5"                            (retained, rate-limited)
    NODE/problem        "ON" while the monitor is not listening (input lost, or only digital zeros)
    NODE/event          {"event_type": "start"|"end", ...EpisodeEvent} (JSON, not retained)

A clean stop publishes crying "OFF", reason "not crying" and a state that is not "crying" before
"offline", so nothing retained says crying once the monitor is gone.
paho's network loop runs on its own thread and reconnects with backoff; publish() only queues.
"""
from __future__ import annotations

import contextlib
import json
import os
import ssl
import sys
import threading
import time
from pathlib import Path

from cry.decision import EpisodeEvent, State, WindowState
from cry.files import UserError
from cry.live_path import Output
from cry.monitor.mqtt_config import PASSWORD_ENV, PROBLEM, MqttOptions, discovery, episode_payload, \
    software_version, stored_id
from cry.monitor.outputs import Background

KEEPALIVE_SECONDS = 20    # after a network loss the broker sends the last will within 1.5x this
CONNECT_SECONDS = 5.0     # at start: how long to wait for the broker's answer (bad credentials are fatal)
REFRESH_SECONDS = 10.0    # a small change of the level or of the reason's shares waits this long
LEVEL_STEP_DB = 1.0       # a level change this large is published at once
NOT_CRYING = State.NOT_CRYING.text  # the reason sensor's value outside crying (an empty payload is ignored by HA)
AUTH_REFUSALS = ("Bad user name or password", "Not authorized")


class MqttOutput(Output):
    """Publishes every answer as retained sensor states (on change), and each episode's start and end.

    Connects once at start (wrong credentials or a certificate that fails: UserError); an absent
    or restarting broker is said once on stderr and retried in the background with backoff. On
    every (re)connect the discovery configs go out again, and with the next window every state
    and then "online".
    """

    def __init__(self, host: str, port: int, node: str, prefix: str = "homeassistant", user: str | None = None,
                 password: str | None = None, tls: bool = False, ca: Path | None = None, name: str | None = None):
        import paho.mqtt.client as mqtt

        self.where, self.node = f"{host}:{port}", node
        self.configs = discovery(prefix, node, name, software_version())
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
        self._send(PROBLEM, "ON" if state.state == State.NOT_LISTENING else "OFF", state.time)
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
        """Not crying, then offline: an automation waiting for "crying off" runs, and a client that
        ignores availability does not see crying forever."""
        self.closing = True
        if self.sent:  # each only if it changes; in order before "offline" (one connection, one queue)
            now = time.time()
            self._send("crying", "OFF", now)
            self._send("reason", NOT_CRYING, now)
            if self.sent["state"][0] == State.CRYING.text:
                self._send("state", State.NOT_CRYING.text, now)
        info = self.client.publish(self.topic("availability"), "offline", qos=1, retain=True)
        if self.client.is_connected():
            with contextlib.suppress(ValueError, RuntimeError):
                info.wait_for_publish(2.0)
        self.client.disconnect()
        self.client.loop_stop()


def mqtt_outputs(options: MqttOptions) -> list[Output]:
    """[the MQTT output, on its own thread] when a broker was given, else []."""
    if options.broker is None:
        return []
    if options.password and not options.user:
        raise UserError("--mqtt-password-file needs --mqtt-user")
    host, port = options.broker
    tls = options.tls or options.ca is not None
    password = (options.password or os.environ.get(PASSWORD_ENV)) if options.user else None
    node = options.node or stored_id(options.id_file)
    output = MqttOutput(host, port or (8883 if tls else 1883), node, options.prefix, options.user,
                        password, tls, options.ca, options.name)
    device = next(iter(output.configs.values()))["device"]["name"]
    print(f"mqtt: {output.where}, Home Assistant discovery under {options.prefix}/ as {device!r}, states and "
          f"events under {node}/" + ("" if options.node else f" (the id kept in {options.id_file})"),
          file=sys.stderr, flush=True)
    return [Background(output)]
