"""A whole night through the live monitor: flat memory, and a history that survives a SIGKILL.

8 hours of audio (a corpus cry every 5 minutes, a minute of low noise after it that the detector
scores, quiet room tone the rest of the time) streamed from a FLAC with --fast, the page served
with 10 event-stream clients reading throughout, MQTT on (Debian's mosquitto, started here on
127.0.0.1, when installed). Resident memory (VmRSS) is read once the first cycle has passed and
the clients are connected (start) and at the end of the 8 hours; then the monitor is SIGKILLed
(a 10-minute quiet tail keeps it running until then) and its SQLite history is checked.
Target: growth at most 20 MB; the history intact, with an episode per cry.

  python benchmarks/bench_night.py --model models/cry_model.keras
"""
from __future__ import annotations

import argparse
import json
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from common import ROOT, print_table, target_row, update_report

import numpy as np  # noqa: E402

from cry.audio import decode, rms_dbfs  # noqa: E402
from cry.files import run_main  # noqa: E402
from cry.params import DEFAULT_DETECTOR, DEFAULT_MODEL  # noqa: E402

CYCLE_SECONDS, NOISE_SECONDS, TAIL_SECONDS = 300, 60, 600


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) / 1024


def write_night(path: Path, hours: float) -> tuple[int, int]:
    """The night as FLAC, cycle by cycle (never all in memory); returns (rate, cries)."""
    import soundfile as sf

    files = sorted((ROOT / "data" / "audio").glob("hungry/*.wav"))[:12]
    cry, rate = decode(max(files, key=lambda p: rms_dbfs(decode(p)[0])))
    rng, cycles = np.random.default_rng(0), int(hours * 3600 / CYCLE_SECONDS)
    with sf.SoundFile(str(path), "w", rate, 1, format="FLAC") as out:
        for _ in range(cycles):
            noise = rng.normal(0, 10 ** (-50 / 20), NOISE_SECONDS * rate)  # -50 dBFS: above the quiet gate
            room = rng.normal(0, 10 ** (-72 / 20), (CYCLE_SECONDS - NOISE_SECONDS) * rate - len(cry))
            out.write(np.concatenate([cry, noise, room]).astype(np.float32))
        out.write(rng.normal(0, 10 ** (-72 / 20), TAIL_SECONDS * rate).astype(np.float32))
    return rate, cycles


def start_broker(folder: Path):
    """(mosquitto on a free port of 127.0.0.1, its port), or (None, None) when it is not installed."""
    mosquitto = shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/usr/local/sbin")
    if mosquitto is None:
        return None, None
    port = free_port()
    (folder / "mosquitto.conf").write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    proc = subprocess.Popen([mosquitto, "-c", str(folder / "mosquitto.conf")], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    for _ in range(100):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return proc, port
        time.sleep(0.05)
    proc.kill()
    return None, None


def read_events(port: int, received: list, stop: threading.Event) -> None:
    """One event-stream client reading everything, counting bytes."""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(b"GET /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        sock.settimeout(1.0)
        while not stop.is_set():
            try:
                chunk = sock.recv(1 << 16)
            except TimeoutError:
                continue
            if not chunk:
                return
            received.append(len(chunk))


def state(port: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/state", timeout=10) as answer:
        return json.load(answer)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=ROOT / DEFAULT_MODEL)
    parser.add_argument("--detector", type=Path, default=ROOT / DEFAULT_DETECTOR)
    parser.add_argument("--hours", type=float, default=8.0, help="default: %(default)s")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        rate, cries = write_night(folder / "night.flac", args.hours)
        broker, broker_port = start_broker(folder)
        port, history = free_port(), folder / "history.sqlite"
        command = [sys.executable, str(ROOT / "real_time_prediction.py"), "--model", str(args.model), "--detector",
                   str(args.detector), "--file", str(folder / "night.flac"), "--fast", "--serve", str(port),
                   "--history", str(history)]
        if broker_port:
            command += ["--mqtt", f"127.0.0.1:{broker_port}", "--mqtt-id", "bench_night"]
        started = time.monotonic()
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=open(folder / "stderr.txt", "w"), cwd=ROOT)
        stop, clients = threading.Event(), []
        try:
            while True:
                time.sleep(0.5)
                if proc.poll() is not None:
                    raise SystemExit(f"the monitor stopped early: {(folder / 'stderr.txt').read_text()[-2000:]}")
                try:
                    seconds = state(port)["stream_seconds"] or 0.0
                except (OSError, KeyError, TypeError):
                    continue
                if not clients:
                    for _ in range(10):
                        received: list = []
                        threading.Thread(target=read_events, args=(port, received, stop), daemon=True).start()
                        clients.append(received)
                elif seconds >= CYCLE_SECONDS and "rss_start" not in locals():
                    rss_start, start_at = rss_mb(proc.pid), seconds
                elif seconds >= args.hours * 3600:
                    rss_end, end_at = rss_mb(proc.pid), seconds
                    break
            proc.send_signal(signal.SIGKILL)
            proc.wait(30)
            wall = time.monotonic() - started
        finally:
            stop.set()
            if proc.poll() is None:
                proc.kill()
            if broker is not None:
                broker.terminate()
        with sqlite3.connect(history) as db:
            intact = db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            episodes, ended = db.execute("SELECT COUNT(*), COUNT(end) FROM episodes").fetchone()
            lasted = [d for (d,) in db.execute("SELECT duration_seconds FROM episodes WHERE end IS NOT NULL")]
    growth = rss_end - rss_start
    rows = [["resident memory after the first cycle (MB)", rss_start, None, None],
            ["resident memory at the end (MB)", rss_end, None, None],
            target_row("growth over the night (MB)", growth, maximum=20.0),
            ["crying episodes in the history after SIGKILL (at least one per cry)",
             f"{episodes} ({ended} ended) of {cries}", None, "yes" if intact and episodes >= cries else "NO"],
            ["their lengths, median and longest (s)", f"{np.median(lasted):.1f}, {max(lasted):.1f}", None, None]]
    print_table(f"A night: {args.hours:g} h of audio --fast in {wall / 60:.1f} min (stream {start_at:.0f} s to "
                f"{end_at:.0f} s), page with 10 event streams ({min(map(sum, clients)) / 1e3:.0f} kB read each at "
                f"least), MQTT {'on' if broker_port else 'off (no mosquitto)'}; SQLite integrity "
                f"{'ok' if intact else 'FAILED'}", ["", "value", "target", "met"], rows)
    figures = {"night_rss_start_mb": rss_start, "night_rss_end_mb": rss_end, "night_rss_growth_mb": growth,
               "night_history_episodes": episodes, "night_cries_played": cries, "night_history_intact": intact,
               "night_minutes": wall / 60, "night_mqtt": bool(broker_port)}
    print(figures)
    update_report(figures)
    return figures


if __name__ == "__main__":
    run_main(lambda: main() and 0)
