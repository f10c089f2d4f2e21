"""Faults a user's machine throws at the scripts: SIGKILL at any moment, a full disk, a
read-only or impossible output folder, and model files that are missing, mismatched or corrupt.

Root ignores file permissions, so "read-only" and "disk full" are real file systems: a small
tmpfs mounted in the test's folder (needs root; the tests skip, saying so, without it) and
remounted read-only or filled. An output path below a regular file (ENOTDIR) needs no root.
"""
import contextlib
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
from badcorpus import cry, write
from conftest import ROOT
from robustness_summary import record
from test_bad_input import complete_png, run

from cry.files import UserError, atomic_output, remove_leftovers
from cry.params import CLASSES, Settings

S = Settings()


# ---- helpers ------------------------------------------------------------------------------

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


# ---- SIGKILL ------------------------------------------------------------------------------

def test_sigkill_preprocess_at_any_moment_then_rerun_completes(tmp_path):
    audio, out = tmp_path / "audio", tmp_path / "out"
    expected = long_recordings(audio)
    # Kill as soon as settings.json exists, then after the first, the 150th and the 400th PNG.
    moments = [lambda: (out / "settings.json").exists()] + [
        lambda n=n: len(visible_pngs(out)) >= n for n in (1, 150, 400)]
    for ready in moments:
        with started(tmp_path / "log", *preprocess_args(audio, out)) as proc:
            kill_when(proc, ready)
            assert group_ends(proc.pid), "pool workers outlived the killed main process"
        broken = [p for p in visible_pngs(out) if not complete_png(p)]
        record(lost=len(broken))                   # (how many were checked depends on timing: not counted)
        assert not broken                          # every PNG a reader can see is whole
    assert 400 <= len(visible_pngs(out)) < len(expected)
    killed_while_writing(out / CLASSES[0] / "rec 0_w0.png", "PNG, half")  # for sure one partial file

    done = run(*preprocess_args(audio, out))
    found = {str(p.relative_to(out)) for p in visible_pngs(out)}
    broken = [p for p in found if not complete_png(out / p)]
    leftovers = [p for p in out.rglob(".*")]
    record(checked=len(found), lost=len(expected - found) + len(broken) + len(leftovers))
    assert done.returncode == 0, done.stdout + done.stderr[-2000:]
    assert found == expected and not broken and not leftovers, leftovers
    written = int(done.stdout.split(" written")[0].rsplit("(", 1)[1])
    assert 0 < written <= len(expected) - 400      # it continued; it did not start again


def test_sigkill_during_an_atomic_write_keeps_the_old_file(tmp_path):
    target = tmp_path / "models" / "m.keras"
    target.parent.mkdir()
    target.write_bytes(b"old model")
    done = killed_while_writing(target, "half of a new model")
    record(checked=1)
    assert done.returncode == -signal.SIGKILL
    assert target.read_bytes() == b"old model"
    assert remove_leftovers(target.parent) == 1    # the half-written temporary, cleared by the next run
    assert [p.name for p in target.parent.iterdir()] == ["m.keras"]


@pytest.fixture(scope="module")
def spectrograms(tmp_path_factory):
    """24 one-window PNGs of 12 babies (2 classes), made by preprocess_model.py."""
    root = tmp_path_factory.mktemp("tiny")
    for i in range(12):
        baby = str(uuid.UUID(int=i + 1))
        write(root / "audio", f"hungry/{baby}-1-hu.wav", cry(3.0, seed=i))
        write(root / "audio", f"tired/{baby}-2-ti.wav", 0.3 * cry(3.0, seed=100 + i)[::-1].copy())
    assert run(*preprocess_args(root / "audio", root / "spectrograms")).returncode == 0
    return root / "spectrograms"


@pytest.fixture(scope="module")
def keras_model():
    from cry.model import build_model
    return build_model("time", S)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_sigkill_training_then_resume_continues_and_old_model_survives(tmp_path, spectrograms, keras_model):
    from cry.model import load_model, save_model

    model = tmp_path / "models" / "m.keras"
    save_model(keras_model, S, {"note": "the old model"}, model)
    old_hash = sha256(model)
    metadata = model.parent / ".m.backup" / "state" / "training_metadata.json"

    def backed_up_epoch() -> int:
        try:
            return json.loads(metadata.read_text())["epoch"]
        except (OSError, ValueError):
            return 0

    args = ["train_model.py", "--data-dir", spectrograms, "--model", model, "--epochs", "3", "--batch-size", "2"]
    with started(tmp_path / "log", *args) as proc:
        kill_when(proc, lambda: backed_up_epoch() >= 1)
    epoch = backed_up_epoch()
    _, info = load_model(model)                    # still the old pair, whole and matching
    record(checked=1)
    assert info["note"] == "the old model" and sha256(model) == old_hash
    assert 1 <= epoch < 3

    done = run(*args, "--resume")
    new, info = load_model(model)
    record(checked=2)
    assert done.returncode == 0, done.stdout[-2000:]
    assert f"Epoch {epoch + 1}/3" in done.stdout and "Epoch 1/3" not in done.stdout
    assert "note" not in info and sha256(model) != old_hash
    assert len(info["history"]["loss"]) == 3       # the epochs before the kill are kept in the history
    assert not (model.parent / ".m.backup").exists()
    assert not [p for p in model.parent.iterdir() if p.name.startswith(".")]
    assert new.predict(np.zeros((1, 128, 128, 3), np.uint8), verbose=0).shape == (1, len(CLASSES))


# ---- models that must be refused ----------------------------------------------------------

def _edit_json(model: Path, change) -> None:
    path = model.with_suffix(".json")
    info = json.loads(path.read_text())
    change(info)
    path.write_text(json.dumps(info))


def _swap_keras(model: Path, data: bytes, update_hash: bool) -> None:
    model.write_bytes(data)
    if update_hash:
        _edit_json(model, lambda info: info.update(sha256=hashlib.sha256(data).hexdigest()))


BAD_MODELS = {  # kind: (how to break a good model pair, words the refusal must contain)
    "model JSON missing": (lambda m: m.with_suffix(".json").unlink(), "m.json: missing"),
    "model JSON truncated": (lambda m: m.with_suffix(".json").write_text('{"model_file": "m.ke'), "unreadable"),
    "model classes reordered": (lambda m: _edit_json(m, lambda i: i["settings"].update(
        classes=list(reversed(CLASSES)))), "classes"),
    "model with an extra class": (lambda m: _edit_json(m, lambda i: i["settings"].update(
        classes=[*CLASSES, "colic"])), "classes"),
    "model from another feature version": (lambda m: _edit_json(m, lambda i: i["settings"].update(
        feature_version=i["settings"]["feature_version"] + 1)), "feature version"),
    "model settings from another code version": (lambda m: _edit_json(m, lambda i: i["settings"].update(
        hop_ms=10)), "another version"),
    "model with other feature settings": (lambda m: _edit_json(m, lambda i: i["settings"].update(
        window_seconds=2.0)), "window_seconds 2.0 != 3.0"),
    "model file missing": (lambda m: m.unlink(), "no such model file"),
    "model file truncated": (lambda m: m.write_bytes(m.read_bytes()[:100_000]), "does not match"),
    "model file with flipped bytes": (lambda m: m.write_bytes(bytes(b ^ 0xFF for b in m.read_bytes()[:64])
                                                              + m.read_bytes()[64:]), "does not match"),
    "corrupt model file with a matching hash": (lambda m: _swap_keras(m, b"PK\x03\x04" + bytes(5000), True),
                                                "cannot load model"),
    "text file as model with a matching hash": (lambda m: _swap_keras(m, b"not a model\n", True),
                                                "cannot load model"),
}


@pytest.mark.parametrize("kind", BAD_MODELS)
def test_load_model_refuses_with_an_explanation(tmp_path, keras_model, kind):
    from cry.model import ModelError, load_model, save_model

    model = tmp_path / "m.keras"
    save_model(keras_model, S, {}, model)
    load_model(model, S)                           # the intact pair loads
    breaks, words = BAD_MODELS[kind]
    breaks(model)
    record(kinds=[kind], checked=1)
    with pytest.raises(ModelError) as refused:
        load_model(model, S)
    assert words in str(refused.value) and "\n" not in str(refused.value)


def test_model_torn_between_its_two_writes_is_refused(tmp_path, keras_model):
    """A crash after the new .keras replaced the old one but before its JSON did."""
    from cry.model import ModelError, build_model, load_model, save_model

    model, other = tmp_path / "m.keras", tmp_path / "other" / "m.keras"
    save_model(keras_model, S, {}, model)
    save_model(build_model("time", S), S, {}, other)  # other initial weights: another file
    model.write_bytes(other.read_bytes())
    record(kinds=["model torn between .keras and .json writes"], faults=1, checked=1)
    with pytest.raises(ModelError, match="does not match m.json"):
        load_model(model)


def test_load_model_runs_no_code_from_the_file(tmp_path):
    """Safe mode: a Lambda layer's Python code is refused, never deserialized, let alone run.
    The control at the end shows the file does carry code that runs when loaded unsafely."""
    import keras

    from cry.model import ModelError, load_model, save_model

    marker = tmp_path / "ran"
    touch = f"open({str(marker)!r}, 'w').close()"  # what a hostile model might run instead
    inputs = keras.Input((S.image_size, S.image_size, 3))
    x = keras.layers.Lambda(lambda t, code: t * float(exec(code) is None), output_shape=inputs.shape[1:],
                            arguments={"code": touch})(inputs)
    outputs = keras.layers.Dense(len(CLASSES), activation="softmax")(keras.layers.GlobalAveragePooling2D()(x))
    model = tmp_path / "m.keras"
    save_model(keras.Model(inputs, outputs), S, {}, model)
    record(kinds=["model with Python code (Lambda layer)"], checked=1)
    with pytest.raises(ModelError, match="Lambda"):
        load_model(model)
    assert not marker.exists()
    unsafe = keras.saving.load_model(model, safe_mode=False)
    unsafe(np.zeros((1, S.image_size, S.image_size, 3), np.float32))
    assert marker.exists()


# ---- full disk, read-only and impossible output folders ----------------------------------

def test_preprocess_on_a_full_disk_says_so_then_completes(tmp_path):
    audio = tmp_path / "audio"
    expected = long_recordings(audio, 4)
    with tmpfs(tmp_path / "disk", "200k") as disk:
        out = disk / "out"
        done = run(*preprocess_args(audio, out))
        errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
        broken = [p for p in visible_pngs(out) if not complete_png(p)]
        record(faults=1, checked=1, lost=len(broken))
        assert done.returncode == 2
        assert len(errors) == 1 and str(out) in errors[0] and "No space left on device" in errors[0], errors
        assert not broken

        remount(disk, "size=64m")                  # space freed: the same command finishes the job
        done = run(*preprocess_args(audio, out))
        found = {str(p.relative_to(out)) for p in visible_pngs(out)}
        leftovers = list(out.rglob(".*"))
        record(checked=len(found), lost=len(expected - found) + len(leftovers))
        assert done.returncode == 0 and found == expected and not leftovers


def test_save_model_on_a_full_disk_keeps_the_old_model(tmp_path, keras_model):
    from cry.model import load_model, save_model

    with tmpfs(tmp_path / "disk", "8m") as disk:
        model = disk / "m.keras"
        save_model(keras_model, S, {"note": "old"}, model)
        old = sha256(model)
        free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
        (disk / "filler").write_bytes(bytes(max(0, free - 64 * 1024)))
        with pytest.raises(UserError, match="No space left on device") as failed:
            save_model(keras_model, S, {"note": "new"}, model)
        _, info = load_model(model)
        record(faults=1, checked=2)
        assert str(model) in str(failed.value)
        assert sha256(model) == old and info["note"] == "old"
        assert sorted(p.name for p in disk.iterdir()) == ["filler", "m.json", "m.keras"]


def test_read_only_output_folder_is_one_clear_error(tmp_path, spectrograms):
    audio = tmp_path / "audio"
    long_recordings(audio, 1)
    with tmpfs(tmp_path / "disk", "16m") as disk:
        assert run(*preprocess_args(audio, disk / "out")).returncode == 0
        before = {p: p.read_bytes() for p in visible_pngs(disk / "out")}
        remount(disk, "ro")
        write(audio, "hungry/new.wav", cry(2.0))
        done = run(*preprocess_args(audio, disk / "out"))
        trained = run("train_model.py", "--data-dir", spectrograms, "--model", disk / "models" / "m.keras")
        record(faults=2, checked=len(before) + 2)
        for result, path in ((done, disk / "out"), (trained, disk / "models")):
            assert result.returncode == 2
            assert result.stderr.strip().splitlines()[-1].startswith(f"error: {path}")
            assert "Read-only file system" in result.stderr
        assert {p: p.read_bytes() for p in visible_pngs(disk / "out")} == before


def test_output_below_a_regular_file_is_one_clear_error(tmp_path, spectrograms):
    """Works without root: no folder can be made inside a file (ENOTDIR)."""
    audio = tmp_path / "audio"
    write(audio, "hungry/a.wav", cry(2.0))
    blocker = tmp_path / "not a folder"
    blocker.write_text("a file where a folder should be\n")
    done = run(*preprocess_args(audio, blocker / "out"))
    started_at = time.monotonic()
    trained = run("train_model.py", "--data-dir", spectrograms, "--model", blocker / "models" / "m.keras")
    record(faults=2, checked=2)
    for result in (done, trained):
        assert result.returncode == 2
        lines = result.stderr.strip().splitlines()
        assert lines[-1].startswith(f"error: {blocker}") and "Not a directory" in lines[-1], lines
    assert time.monotonic() - started_at < 60      # refused before training, not after


def test_outputs_get_normal_permissions(tmp_path):
    """Atomic writes must not leave outputs readable only by their owner (mkstemp's 0600)."""
    with atomic_output(tmp_path / "a.png") as tmp:
        tmp.write_bytes(b"x")
    with open(tmp_path / "b.png", "wb") as f:
        f.write(b"x")
    record(checked=1)
    assert (tmp_path / "a.png").stat().st_mode == (tmp_path / "b.png").stat().st_mode
