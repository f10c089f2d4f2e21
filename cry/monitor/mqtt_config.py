"""What the monitor tells Home Assistant about itself: its id, its name, the discovery configs, and the --mqtt options.

The id names the topics and every unique id, so it must not change by itself: without --mqtt-id
one is generated on the first start and kept in a small file (DEFAULT_ID_FILE, beside the
history), so renaming the host keeps the device and its entities, and two boxes that both
call themselves "raspberrypi" are still two devices.
Entity names are short ("Crying", "Reason"): Home Assistant puts the device's name before them.
"""
from __future__ import annotations

import argparse
import dataclasses
import re
import secrets
import subprocess
from pathlib import Path

import cry
from cry.decision import EpisodeEvent, State
from cry.files import UserError, write_text

PASSWORD_ENV = "CRY_MQTT_PASSWORD"
DEFAULT_ID_FILE = Path("data") / "mqtt_id"
DEFAULT_NAME = "Cry monitor"
GENERATED_PREFIX = "cry_monitor_"
MANUFACTURER = "Infant cry monitor (open source)"
PROBLEM = "problem"  # the topic of the binary sensor that is on while the monitor is not listening


def stored_id(path: Path = DEFAULT_ID_FILE) -> str:
    """The id kept in path, made (cry_monitor_ and 8 random hex digits) and kept there on the first start."""
    path = Path(path)
    try:
        kept = path.read_text().strip()
    except FileNotFoundError:
        kept = ""
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot read the monitor's MQTT id ({getattr(exc, 'strerror', None) or exc})"
                        ) from None
    if kept and not re.fullmatch(r"[A-Za-z0-9_-]+", kept):
        raise UserError(f"{path}: not an MQTT id (letters, digits, '_' and '-'); fix it, delete it, or give --mqtt-id")
    if kept:
        return kept
    made = GENERATED_PREFIX + secrets.token_hex(4)
    write_text(made + "\n", path)
    return made


def device_name(node: str) -> str:
    """The default device name: "Cry monitor" for a generated id, else the id in words (nursery_2 -> Nursery 2)."""
    if node.startswith(GENERATED_PREFIX) and re.fullmatch(r"[0-9a-f]{8}", node[len(GENERATED_PREFIX):]):
        return DEFAULT_NAME
    words = re.sub(r"[_-]+", " ", node).strip()
    return words[:1].upper() + words[1:] if words else DEFAULT_NAME


def software_version() -> str:
    """The package's version, with the git commit of this checkout when there is one."""
    try:
        commit = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=Path(cry.__file__).parents[1],
                                capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return f"{cry.__version__} ({commit})" if commit else cry.__version__


def discovery(prefix: str, node: str, name: str | None = None, version: str = "") -> dict[str, dict]:
    """{config topic: Home Assistant discovery payload} for the monitor's entities, all of one device."""
    device = {"identifiers": [node], "name": name or device_name(node), "manufacturer": MANUFACTURER,
              "model": "infant cry classifier"}
    if version:
        device["sw_version"] = version
    common = {"availability_topic": f"{node}/availability", "payload_available": "online",
              "payload_not_available": "offline", "device": device}
    entities = {
        ("binary_sensor", "crying"): {"name": "Crying", "device_class": "sound", "payload_on": "ON",
                                      "payload_off": "OFF", "icon": "mdi:emoticon-cry-outline"},
        ("sensor", "state"): {"name": "State", "device_class": "enum", "options": [s.text for s in State],
                              "icon": "mdi:baby-face-outline"},
        ("sensor", "reason"): {"name": "Reason", "icon": "mdi:comment-question-outline"},
        ("sensor", "level"): {"name": "Sound level", "unit_of_measurement": "dBFS", "state_class": "measurement",
                              "suggested_display_precision": 0, "icon": "mdi:volume-high"},
        ("event", "event"): {"name": "Episode", "event_types": ["start", "end"], "icon": "mdi:baby-bottle"},
        ("binary_sensor", PROBLEM): {"name": "Microphone", "device_class": "problem", "payload_on": "ON",
                                     "payload_off": "OFF", "entity_category": "diagnostic"},
    }
    return {f"{prefix}/{component}/{node}/{key}/config": {**fields, "unique_id": f"{node}_{key}",
                                                          "state_topic": f"{node}/{key}", **common}
            for (component, key), fields in entities.items()}


def episode_payload(event: EpisodeEvent) -> dict:
    """The event topic's JSON: the episode event (with the reason in words), its kind as Home Assistant's event_type."""
    return {"event_type": event.kind, **event.to_dict()}


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
    node: str | None = None              # None: the one kept in id_file (made there on the first start)
    name: str | None = None              # the device's name in Home Assistant; None: device_name(node)
    id_file: Path = DEFAULT_ID_FILE
