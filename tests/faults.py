"""Fault injection for the fault tests: scripts started in their own process group and
SIGKILLed at a chosen moment, a small tmpfs that fills up or turns read-only, long recordings."""
import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from badcorpus import cry, write
from conftest import ROOT
from robustness_summary import record

from cry.params import CLASSES


@contextlib.contextmanager
def started(log: Path, *args):
    """A script in its own process group; whatever is left of the group is killed at the end."""
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, *map(str, args)], cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def kill_when(proc, ready, timeout: float = 120) -> None:
    """SIGKILL the script's main process (only) as soon as ready() is true."""
    deadline = time.monotonic() + timeout
    while not ready() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL, "finished before the fault could be injected"
    record(faults=1)


def running_in_group(pgid: int) -> list[int]:
    """Processes of the group still running; zombies (dead, waiting for init to reap them) are not."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            state, _, pgrp = stat.read_text().rsplit(")", 1)[1].split()[:3]
            if int(pgrp) == pgid and state != "Z":
                pids.append(int(stat.parent.name))
    return pids


def group_ends(pgid: int, timeout: float = 1) -> bool:
    """True once nothing of the group runs: pool workers die with their parent, at once,
    rather than finishing their files as orphans while the next run starts."""
    deadline = time.monotonic() + timeout
    while running_in_group(pgid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def killed_while_writing(target: Path, content: str) -> subprocess.CompletedProcess:
    """A process SIGKILLed half-way through atomic_output(target), as by the OOM killer."""
    code = ("import os, signal, sys\nfrom pathlib import Path\nfrom cry.files import atomic_output\n"
            "with atomic_output(Path(sys.argv[1])) as tmp:\n"
            "    tmp.write_bytes(sys.argv[2].encode())\n"
            "    os.kill(os.getpid(), signal.SIGKILL)\n")
    record(faults=1)
    return subprocess.run([sys.executable, "-c", code, str(target), content], cwd=ROOT)


def visible_pngs(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*.png") if not p.name.startswith(".")]


@contextlib.contextmanager
def tmpfs(folder: Path, size: str):
    """A small RAM file system at folder, for a disk that fills up or turns read-only."""
    folder.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                          capture_output=True, text=True)
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs ({done.stderr.strip() or 'mount failed'}); disk-full and "
                    "read-only tests need root")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def remount(folder: Path, options: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{options}", str(folder)], check=True)


def long_recordings(audio: Path, n: int = 12) -> set[str]:
    """n one-minute recordings; returns the PNG names preprocessing must make (58 windows each)."""
    for i in range(n):
        write(audio, f"{CLASSES[i % 2]}/rec {i}.wav", cry(60.0, seed=i))
    return {f"{CLASSES[i % 2]}/rec {i}_w{k}.png" for i in range(n) for k in range(58)}


def preprocess_args(audio: Path, out: Path) -> list:
    return ["preprocess_model.py", "--audio-dir", audio, "--out-dir", out, "--workers", "2"]
