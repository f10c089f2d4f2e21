"""Faults a user's machine throws at the scripts: SIGKILL at any moment, a full disk, and a
read-only or impossible output folder (model files that must be refused: test_model_files.py).

Root ignores file permissions, so "read-only" and "disk full" are real file systems: a small
tmpfs mounted in the test's folder (needs root; the tests skip, saying so, without it) and
remounted read-only or filled. An output path below a regular file (ENOTDIR) needs no root.
"""
import json
import os
import signal
import time
import uuid

import numpy as np
import pytest
from badcorpus import cry, write
from conftest import run_script
from faults import (group_ends, kill_when, killed_while_writing, long_recordings, preprocess_args, remount, started,
                    tmpfs, visible_pngs)
from robustness_summary import record
from test_bad_input import complete_png

from cry.files import UserError, atomic_output, remove_leftovers
from cry.reason.info import ModelInfo
from cry.reason.model_files import load_model, save_model, sha256_of
from cry.params import CLASSES, Settings

S = Settings()


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

    done = run_script(*preprocess_args(audio, out))
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
def tiny_spectrograms(tmp_path_factory):
    """24 one-window PNGs of 12 babies (2 classes), made by preprocess_model.py."""
    root = tmp_path_factory.mktemp("tiny")
    for i in range(12):
        baby = str(uuid.UUID(int=i + 1))
        write(root / "audio", f"hungry/{baby}-1-hu.wav", cry(3.0, seed=i))
        write(root / "audio", f"tired/{baby}-2-ti.wav", 0.3 * cry(3.0, seed=100 + i)[::-1].copy())
    run_script(*preprocess_args(root / "audio", root / "spectrograms"), ok=(0,))
    return root / "spectrograms"


def test_sigkill_training_then_resume_continues_and_old_model_survives(tmp_path, tiny_spectrograms, fresh_model):
    model = tmp_path / "models" / "m.keras"
    save_model(fresh_model, ModelInfo("", "", S, seed=7), model)
    old_hash = sha256_of(model)
    metadata = model.parent / ".m.backup" / "state" / "training_metadata.json"

    def backed_up_epoch() -> int:
        try:
            return json.loads(metadata.read_text())["epoch"]
        except (OSError, ValueError):
            return 0

    args = ["train_model.py", "--detector", "none",
            "--data-dir", tiny_spectrograms, "--model", model, "--epochs", "3", "--batch-size", "2"]
    with started(tmp_path / "log", *args) as proc:
        kill_when(proc, lambda: backed_up_epoch() >= 1)
    epoch = backed_up_epoch()
    _, info = load_model(model)                    # still the old pair, whole and matching
    record(checked=1)
    assert info.seed == 7 and sha256_of(model) == old_hash
    assert 1 <= epoch < 3

    done = run_script(*args, "--resume")
    new, info = load_model(model)
    record(checked=2)
    assert done.returncode == 0, done.stdout[-2000:]
    assert f"Epoch {epoch + 1}/3" in done.stdout and "Epoch 1/3" not in done.stdout
    assert "━" not in done.stdout  # in a pipe, a line per epoch: no progress bar per step
    assert info.seed == 0 and sha256_of(model) != old_hash
    assert len(info.history["loss"]) == 3       # the epochs before the kill are kept in the history
    assert not (model.parent / ".m.backup").exists()
    assert not [p for p in model.parent.iterdir() if p.name.startswith(".")]
    assert new.predict(np.zeros((1, 128, 128, 3), np.uint8), verbose=0).shape == (1, len(CLASSES))


# ---- full disk, read-only and impossible output folders ----------------------------------

def test_preprocess_on_a_full_disk_says_so_then_completes(tmp_path):
    audio = tmp_path / "audio"
    expected = long_recordings(audio, 4)
    with tmpfs(tmp_path / "disk", "200k") as disk:
        out = disk / "out"
        done = run_script(*preprocess_args(audio, out))
        errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
        broken = [p for p in visible_pngs(out) if not complete_png(p)]
        record(faults=1, checked=1, lost=len(broken))
        assert done.returncode == 2
        assert len(errors) == 1 and str(out) in errors[0] and "No space left on device" in errors[0], errors
        assert not broken

        remount(disk, "size=64m")                  # space freed: the same command finishes the job
        done = run_script(*preprocess_args(audio, out))
        found = {str(p.relative_to(out)) for p in visible_pngs(out)}
        leftovers = list(out.rglob(".*"))
        record(checked=len(found), lost=len(expected - found) + len(leftovers))
        assert done.returncode == 0 and found == expected and not leftovers


def test_save_model_on_a_full_disk_keeps_the_old_model(tmp_path, fresh_model):
    with tmpfs(tmp_path / "disk", "8m") as disk:
        model = disk / "m.keras"
        save_model(fresh_model, ModelInfo("", "", S, seed=1), model)
        old = sha256_of(model)
        free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
        (disk / "filler").write_bytes(bytes(max(0, free - 64 * 1024)))
        with pytest.raises(UserError, match="No space left on device") as failed:
            save_model(fresh_model, ModelInfo("", "", S, seed=2), model)
        _, info = load_model(model)
        record(faults=1, checked=2)
        assert str(model) in str(failed.value)
        assert sha256_of(model) == old and info.seed == 1
        assert sorted(p.name for p in disk.iterdir()) == ["filler", "m.json", "m.keras"]


def test_read_only_output_folder_is_one_clear_error(tmp_path, tiny_spectrograms):
    audio = tmp_path / "audio"
    long_recordings(audio, 1)
    with tmpfs(tmp_path / "disk", "16m") as disk:
        assert run_script(*preprocess_args(audio, disk / "out")).returncode == 0
        before = {p: p.read_bytes() for p in visible_pngs(disk / "out")}
        remount(disk, "ro")
        write(audio, "hungry/new.wav", cry(2.0))
        done = run_script(*preprocess_args(audio, disk / "out"))
        trained = run_script("train_model.py", "--detector", "none",
                             "--data-dir", tiny_spectrograms, "--model", disk / "models" / "m.keras")
        record(faults=2, checked=len(before) + 2)
        for result, path in ((done, disk / "out"), (trained, disk / "models")):
            assert result.returncode == 2
            assert result.stderr.strip().splitlines()[-1].startswith(f"error: {path}")
            assert "Read-only file system" in result.stderr
        assert {p: p.read_bytes() for p in visible_pngs(disk / "out")} == before


def test_output_below_a_regular_file_is_one_clear_error(tmp_path, tiny_spectrograms):
    """Works without root: no folder can be made inside a file (ENOTDIR)."""
    audio = tmp_path / "audio"
    write(audio, "hungry/a.wav", cry(2.0))
    blocker = tmp_path / "not a folder"
    blocker.write_text("a file where a folder should be\n")
    done = run_script(*preprocess_args(audio, blocker / "out"))
    started_at = time.monotonic()
    trained = run_script("train_model.py", "--detector", "none",
                         "--data-dir", tiny_spectrograms, "--model", blocker / "models" / "m.keras")
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


def test_an_epoch_logged_twice_by_a_resumed_run_counts_once(tmp_path):
    """Killed after an epoch's log line and before its backup, the resumed run trains that epoch
    again and logs it again: the history has each epoch once, the later line, in order."""
    from cry.reason.model import _read_history

    log = tmp_path / "history.csv"
    log.write_text("epoch,loss,val_macro_f1\n0,2.0,0.1\n1,1.5,0.2\n1,1.4,0.25\n2,1.2,0.3\n")
    assert _read_history(log) == {"loss": [2.0, 1.4, 1.2], "val_macro_f1": [0.1, 0.25, 0.3]}
