"""Listen to the microphone and say, live, whether a baby is crying and, as far as the model honestly knows, why.

Every hop (the detector's live settings: a 3 s window every 0.5 s) the newest window goes through
the package's live path (cry.live_path): too quiet -> "quiet" (no model call); not a cry ->
"not crying" and what was heard; a cry -> "crying" with the reason only where held-out babies
showed the model knows it, otherwise "reason not known" (no guesses shown). Answers go to the terminal and, when
asked, to a CSV of episodes, a per-window trace, the web page, MQTT and phone notifications. A
microphone that is lost or gives only digital zeros is "not listening" on all of them, and is
retried until it is back. SIGTERM and SIGHUP stop it as Ctrl-C does.

  python real_time_prediction.py                          # default microphone
  python real_time_prediction.py --list-devices
  python real_time_prediction.py --file cry.wav --fast --log events.csv
  python real_time_prediction.py --serve 0.0.0.0:8000 --notify-file ~/.config/cry-notify.txt
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

from cry import runtime
from cry.assemble import load_live_path
from cry.detect.feedback import DEFAULT_FOLDER as FEEDBACK_DIR
from cry.deafness import ZEROS_SECONDS, Deafness
from cry.files import UserError, run_main
from cry.live_path import run
from cry.detect import marks
from cry.monitor import mqtt, mqtt_config, notify, web
from cry.monitor.alerts import Alerts
from cry.monitor.outputs import EpisodeLog, TerminalLine, Trace
from cry.monitor.recording import Recording, check_recording_path
from cry.monitor.sources import MicrophoneSource, import_sounddevice
from cry.params import DEFAULT_DETECTOR, DEFAULT_MODEL
from cry.pretrained import PRETRAINED_DIR
from cry.stream import RING_SECONDS, file_source


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="default: %(default)s")
    parser.add_argument("--list-devices", action="store_true", help="list audio devices and exit")
    parser.add_argument("--device", help="input device number or part of its name (default: the system's)")
    parser.add_argument("--file", type=Path, help="play this recording through the same path instead")
    parser.add_argument("--fast", action="store_true", help="with --file: as fast as possible, not real time")
    parser.add_argument("--threshold", type=float, help="claim a reason from this share of the cry up (default: "
                        "the model's, from validation babies); reasons are claimed at all only where held-out "
                        "babies showed skill, else 'reason not known'")
    parser.add_argument("--deaf-after", type=float, default=ZEROS_SECONDS, metavar="SECONDS",
                        help="say 'not listening' on every output when the microphone has given only digital "
                        "zeros this long (muted, or a dead input; a lost device is said at once and retried "
                        "until it is back) (default: %(default)s)")
    parser.add_argument("--duration", type=float, help="stop after listening this many seconds (of audio)")
    parser.add_argument("--log", type=Path, help="append crying episodes (start, end, reason) to this CSV")
    parser.add_argument("--trace", type=Path, help="write every window's state and scores to this CSV")
    parser.add_argument("--save-audio", type=Path, help="write what was heard to this .wav (or .flac), at the "
                        "device rate, as it is heard: a killed monitor leaves a playable WAV")
    parser.add_argument("--detector", default=str(DEFAULT_DETECTOR), help="the crying detector (YAMNet + a trained "
                        "head, with the live settings it was tuned under), or 'none': the reason model alone "
                        "decides crying (default: %(default)s)")
    parser.add_argument("--pretrained-dir", type=Path, help=f"YAMNet's folder (default: {PRETRAINED_DIR})")
    home = parser.add_argument_group("it learns this home: a parent's 'not a cry' and 'that was a cry' (also "
                                     "buttons on the page) refit the detector at once; clips stay on this machine")
    home.add_argument("--feedback-dir", default=str(FEEDBACK_DIR), metavar="DIR",
                      help="the marks and marked clips (0600), applied at every start; 'none': no learning "
                      "(default: %(default)s)")
    home.add_argument("--mark-not-cry", action="append", default=[], type=Path, metavar="FILE",
                      help="learn this recording as not a cry (a false alarm), then exit (repeatable)")
    home.add_argument("--mark-cry", action="append", default=[], type=Path, metavar="FILE",
                      help="learn this recording as a cry (a missed one), then exit (repeatable)")
    page, defaults = parser.add_argument_group("web page (a parent's view on a phone)"), web.PageOptions()
    page.add_argument("--serve", metavar="[HOST:]PORT", help="serve the page while listening, on 127.0.0.1 unless "
                      "HOST is given (e.g. 0.0.0.0:8000 for the phones of this network: a token is then required)")
    page.add_argument("--token", default=os.environ.get("CRY_WEB_TOKEN"), help="required by the page and its "
                      "API (default: $CRY_WEB_TOKEN, else none on 127.0.0.1 and a random one, printed with the "
                      "address, elsewhere)")
    page.add_argument("--history", type=Path, help=f"keep crying episodes in this SQLite file "
                      f"(default with --serve: {web.DEFAULT_HISTORY})")
    page.add_argument("--alert-after", type=float, default=defaults.alert_after_seconds,
                      help="alert (the page, and --notify) when an episode has lasted this many seconds "
                      "(default: %(default)s)")
    page.add_argument("--alert-cooldown", type=float, default=defaults.alert_cooldown_seconds,
                      help="at most one alert per this many seconds (default: %(default)s)")
    page.add_argument("--max-upload-mb", type=float, default=defaults.max_upload_mb,
                      help="largest recording the page accepts (default: %(default)s)")
    phone = parser.add_argument_group("phone notifications (apprise: ntfy, Telegram, Pushover, Signal, e-mail, "
                                      "webhooks...), by the alert rules above, and when the monitor stops hearing")
    phone.add_argument("--notify", action="append", default=[], metavar="URL", help="send to this apprise URL "
                       "(repeatable), e.g. ntfy://my-baby-topic; a URL holding a secret (token, password) is refused "
                       "here: use --notify-file or $" + notify.URLS_ENV)
    phone.add_argument("--notify-file", action="append", default=[], type=Path, metavar="FILE",
                       help="send to the URLs in FILE, one a line, '#' comments (repeatable)")
    sensors, defaults = parser.add_argument_group("MQTT (a Home Assistant sensor, found by MQTT discovery)"), \
        mqtt_config.MqttOptions()
    sensors.add_argument("--mqtt", metavar="HOST[:PORT]", type=mqtt_config.parse_address,
                         help="publish to this broker (port 1883, or 8883 with TLS)")
    sensors.add_argument("--mqtt-user", metavar="USER", help=f"user name; the password comes from the environment "
                         f"variable {mqtt_config.PASSWORD_ENV} or --mqtt-password-file, never from the command line")
    sensors.add_argument("--mqtt-password-file", dest="mqtt_password", metavar="FILE", type=mqtt_config.read_password,
                         help="the password: the first line of FILE")
    sensors.add_argument("--mqtt-tls", action="store_true", help="connect with TLS, checking the broker's "
                         "certificate")
    sensors.add_argument("--mqtt-ca", type=Path, metavar="FILE", help="the CA certificate that signs the broker's "
                         "(implies --mqtt-tls; default: the system's)")
    sensors.add_argument("--mqtt-prefix", metavar="PREFIX", type=mqtt_config.topic_word, default=defaults.prefix,
                         help="Home Assistant's discovery prefix (default: %(default)s)")
    sensors.add_argument("--mqtt-id", metavar="ID", type=mqtt_config.topic_word,
                         help="names the topics and Home Assistant's unique ids: keep it to keep the entities; "
                         "give each monitor its own (default: one made on the first start and kept in "
                         f"{defaults.id_file}, or beside --history)")
    sensors.add_argument("--name", help="the device's name in Home Assistant (default: from --mqtt-id, e.g. "
                         f"nursery_2 -> 'Nursery 2'; {mqtt_config.DEFAULT_NAME!r} for the generated id)")
    args = parser.parse_args(argv)
    args.detector_path = None if args.detector == "none" else Path(args.detector)
    args.feedback_dir = None if args.feedback_dir == "none" else Path(args.feedback_dir)
    return args


def early_outputs(args) -> tuple[list, list, web.Page]:
    """(the MQTT output, the notification services, the page): each checked, so that a wrong value
    is one error line before the model loads."""
    id_file = args.history.parent / mqtt_config.DEFAULT_ID_FILE.name if args.history else mqtt_config.DEFAULT_ID_FILE
    sensors = mqtt.mqtt_outputs(mqtt_config.MqttOptions(args.mqtt, args.mqtt_user, args.mqtt_password, args.mqtt_tls,
                                                        args.mqtt_ca, args.mqtt_prefix, args.mqtt_id, args.name,
                                                        id_file))
    phones = notify.notify_services(args.notify, args.notify_file, os.environ)
    if phones and min(args.alert_after, args.alert_cooldown) < 0:
        raise UserError("--alert-after and --alert-cooldown must be >= 0")
    page = web.Page(web.PageOptions(args.serve, args.token, args.history, args.alert_after, args.alert_cooldown,
                                    args.max_upload_mb))
    return sensors, phones, page


def all_outputs(args, path, sensors: list, phones: list, page: web.Page, marker: marks.Marker | None) -> list:
    """Every output asked for, in the order they are told (and closed)."""
    outputs = [TerminalLine()] + ([marker] if marker else [])
    if args.log:
        outputs.append(EpisodeLog(args.log))
    if args.trace:
        outputs.append(Trace(args.trace))
    outputs += page.outputs(path, marker)  # the episode history and the page, when asked
    outputs += sensors
    name = args.name or (mqtt_config.device_name(args.mqtt_id) if args.mqtt_id else mqtt_config.DEFAULT_NAME)
    return outputs + notify.notify_outputs(phones, Alerts(args.alert_after, args.alert_cooldown), name)


def fan_out(taps: list):
    """One tap for the ring from several (or None)."""
    if len(taps) <= 1:
        return taps[0] if taps else None
    return lambda samples: [tap(samples) for tap in taps]


def mark_files(args) -> int:
    """--mark-cry / --mark-not-cry: each recording through the live path, learnt, and said."""
    if args.feedback_dir is None or args.detector_path is None:
        raise UserError("cannot mark sounds: " + ("--feedback-dir none" if args.feedback_dir is None
                                                  else "no detector (--detector none)"))
    for file in args.mark_cry + args.mark_not_cry:  # now, not after the models have loaded
        if not file.is_file():
            raise UserError(f"{file}: no such file")
    path = load_live_path(args.model, args.detector_path, args.pretrained_dir, args.threshold)
    learning = marks.home_learning(path, args.detector_path, args.feedback_dir, needed=True)
    for label, files in (("cry", args.mark_cry), ("not_cry", args.mark_not_cry)):
        for file in files:
            print(f"{file}: {marks.mark_file(file, label, path, learning).text()}")
    print(f"wrote {learning.path}", file=sys.stderr)
    return 0


def main(argv=None) -> int:
    args = parse_args(argv)
    runtime.setup()
    runtime.stop_like_ctrl_c()  # systemd's and docker's SIGTERM, a closed terminal's SIGHUP
    if args.list_devices:
        print(import_sounddevice().query_devices())
        return 0
    if args.deaf_after <= 0:
        raise UserError("--deaf-after must be > 0 seconds")
    if args.save_audio:  # now, not after a night of listening
        check_recording_path(args.save_audio)
    if args.mark_cry or args.mark_not_cry:
        return mark_files(args)
    device = int(args.device) if args.device and args.device.isdigit() else args.device
    source = file_source(args.file, args.fast) if args.file else MicrophoneSource(device)  # fails fast
    sensors, phones, page = early_outputs(args)  # checked (broker connected, port taken) before the model loads
    path = load_live_path(args.model, args.detector_path, args.pretrained_dir, args.threshold)
    if path.live.window_seconds > RING_SECONDS:
        raise UserError(f"windows of {path.live.window_seconds} s exceed the {RING_SECONDS} s buffer")
    session = path.session()
    warm_up = np.full(int(path.live.window_seconds * source.samplerate), 0.1, np.float32)
    path.scorer(warm_up, source.samplerate)  # the models' first call is slow: not on the first answer
    path.scorer.reasons(path.scorer.reason_window(warm_up, source.samplerate))  # nor on the first cry

    learning = marks.home_learning(path, args.detector_path, args.feedback_dir, needed=False)
    marker = marks.Marker(learning, source.samplerate, path.live.window_seconds) if learning else None
    recording = Recording(args.save_audio, source.samplerate) if args.save_audio else None
    source.ring.tap = fan_out([tap for tap in (recording and recording.write, marker and marker.tap) if tap])
    outputs = all_outputs(args, path, sensors, phones, page, marker)
    print(f"listening to {source.label} at {source.samplerate} Hz, an answer every {path.live.hop_seconds:g} s; "
          f"Ctrl-C (or SIGTERM) ends", file=sys.stderr, flush=True)
    why = run(source, session, outputs, args.duration, None if args.file else Deafness(args.deaf_after))
    for output in outputs:
        output.close()
    print(f"{why}: {source.ring.total / source.samplerate:.1f} s heard, {session.decision.episodes} crying episodes, "
          f"{source.ring.overflows} input overflows", file=sys.stderr)
    for output in outputs:
        if getattr(output, "path", None):
            print(f"wrote {output.path}", file=sys.stderr)
    if recording is not None:
        recording.close()
    if why == "stalled" or (why == "ended" and not args.file):
        print("error: the input device stopped delivering audio (unplugged, or taken by another program?)",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    run_main(main)
