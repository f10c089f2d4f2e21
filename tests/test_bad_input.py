"""Broken and unusual recordings mixed among good ones, through the scripts as a user runs them.

The corpus comes from badcorpus.py. Every good file must become complete PNGs; every bad one
must be named once, with its reason, on stdout and in skipped.csv; no traceback anywhere.
"""
import csv
from pathlib import Path

import numpy as np
import pytest
from badcorpus import FOLDER_KINDS, cry, make_bad_corpus, write
from conftest import PRETRAINED, run_script
from PIL import Image
from robustness_summary import record

from cry.features import png_to_image, window_to_image
from cry.params import Settings

S = Settings()


def preprocess(audio: Path, out: Path):
    return run_script("preprocess_model.py", "--audio-dir", audio, "--out-dir", out, "--workers", "2")


def complete_png(path: Path) -> bool:
    """A whole PNG of the model's size: PIL verifies the chunk CRCs, then decodes every row."""
    try:
        with Image.open(path) as im:
            im.verify()
        with Image.open(path) as im:
            im.load()
            return im.size == (128, 128)
    except Exception:
        return False


def expected_pngs(cases) -> set[str]:
    return {f"{Path(c.path).with_suffix('')}_w{k}.png" for c in cases for k in range(c.windows)}


@pytest.fixture(scope="module")
def bad_run(tmp_path_factory):
    """The corpus preprocessed twice: the second run must find everything up to date."""
    root = tmp_path_factory.mktemp("bad")
    cases = make_bad_corpus(root / "audio")
    first = preprocess(root / "audio", root / "out")
    times = {p: p.stat().st_mtime_ns for p in (root / "out").rglob("*.png")}
    second = preprocess(root / "audio", root / "out")
    record(kinds=[c.kind for c in cases] + list(FOLDER_KINDS))
    return root, cases, first, second, times


def test_every_good_file_becomes_complete_pngs(bad_run):
    root, cases, first, _, _ = bad_run
    out = root / "out"
    found = {str(p.relative_to(out)) for p in out.rglob("*.png")}
    expected = expected_pngs(cases)
    broken = [p for p in found if not complete_png(out / p)]
    record(checked=len(found), lost=len(expected - found) + len(broken))
    assert found == expected, (sorted(expected - found), sorted(found - expected))
    assert not broken
    good = [c for c in cases if c.windows]
    assert f"{len(good)} files -> {len(expected)} windows" in first.stdout


def test_every_bad_file_is_named_once_with_its_reason(bad_run):
    root, cases, first, _, _ = bad_run
    bad = {str(root / "audio" / c.path): c for c in cases if not c.windows}
    lines = [line for line in first.stdout.splitlines() if line.startswith("skipped: ")]
    with open(root / "out" / "skipped.csv", newline="") as f:
        rows = list(csv.reader(f))[1:]
    unexplained = [p for p, c in bad.items()
                   if sum(line.startswith(f"skipped: {p}: ") for line in lines) != 1
                   or not any(r[0] == p and c.reason in r[1].lower() for r in rows)]
    record(checked=len(lines) + len(rows), lost=len(unexplained))
    assert first.returncode == 1, first.stderr[-2000:]
    assert not unexplained, unexplained
    assert len(lines) == len(rows) == len(bad)        # nothing good was reported as skipped
    assert f"{len(bad)} skipped" in first.stdout
    for line in lines:
        assert line.count("\n") == 0 and len(line) < 400


def test_unusual_audio_looks_like_the_plain_recording(bad_run):
    """Other bit depths, rates, channels, codecs and names of one cry give nearly its picture:
    closer to it than a fifth of the way to the picture of silence."""
    root, cases, _, _, _ = bad_run

    def picture(case):
        return png_to_image(root / "out" / f"{Path(case.path).with_suffix('')}_w0.png").astype(float)

    plain = next(c for c in cases if c.path == "hungry/plain.wav")
    reference = picture(plain)
    silence = window_to_image(np.zeros(S.window_samples, np.float32), S).astype(float)
    same = [c for c in cases if c.plain_cry and c is not plain]
    far = [c.kind for c in same if np.abs(picture(c) - reference).mean() > 0.2 * np.abs(silence - reference).mean()]
    record(checked=len(same))
    assert len(same) > 20 and not far, far


def test_rerun_redoes_nothing_and_keeps_every_png(bad_run):
    root, cases, first, second, times = bad_run
    now = {p: p.stat().st_mtime_ns for p in (root / "out").rglob("*.png")}
    record(checked=len(now), lost=len(set(times) - set(now)))
    assert now == times                             # none deleted, none rewritten
    assert second.returncode == 1 and " 0 written" in second.stdout.replace("(", " ")
    assert second.stdout.count("skipped: ") == first.stdout.count("skipped: ")


def test_empty_class_folder_is_noted(bad_run):
    _, _, first, _, _ = bad_run
    assert "note: no spectrograms for class(es) silence" in first.stdout


def test_no_hidden_or_temporary_files_left(bad_run):
    root = bad_run[0]
    leftovers = [p for p in (root / "out").rglob(".*")]
    record(lost=len(leftovers))
    assert not leftovers


@pytest.mark.parametrize("layout", ["no class folders", "no audio at all"])
def test_nothing_to_do_is_exit_2_with_one_line(tmp_path, layout):
    audio = tmp_path / "audio"
    (audio / "lullabies").mkdir(parents=True)
    if layout == "no class folders":
        write(audio, "lullabies/song.wav", cry(2.0))
    else:
        (audio / "lullabies/notes.txt").write_text("no audio here\n")
    done = preprocess(audio, tmp_path / "out")
    record(kinds=[f"audio folder with {layout}"], checked=1)
    assert done.returncode == 2
    assert done.stderr.strip().startswith("error:") and str(audio) in done.stderr
    assert done.stderr.strip().count("\n") == 0


def test_prepare_data_copies_decodable_files_and_names_the_rest(tmp_path):
    cases = make_bad_corpus(tmp_path / "source")
    done = run_script("prepare_data.py", "--source", tmp_path / "source", "--out-dir", tmp_path / "audio",
                      "--models-source", PRETRAINED, "--models-dir", tmp_path / "pretrained")
    skipped = {line.split(": ")[1] for line in done.stdout.splitlines() if line.startswith("skipped: ")}
    copied = {p.name for p in (tmp_path / "audio").rglob("*") if p.is_file()}
    source = {c.path: str(tmp_path / "source" / c.path) for c in cases}
    undecodable = {source[c.path] for c in cases if "decode" in c.reason or "empty" in c.reason}
    lost = [c.path for c in cases if Path(c.path).name not in copied and source[c.path] not in skipped]
    record(checked=len(cases), lost=len(lost))
    assert done.returncode == 1
    assert not lost, lost
    assert undecodable <= skipped                     # not copied: preprocessing would only skip them
    assert not {Path(p).name for p in undecodable} & copied


def test_deleted_recording_loses_its_pngs_and_no_other(tmp_path):
    for k in range(3):
        write(tmp_path / "audio", f"hungry/baby{k}.wav", cry(4.0, seed=k))
    assert preprocess(tmp_path / "audio", tmp_path / "out").returncode == 0
    before = sorted(p.name for p in (tmp_path / "out").rglob("*.png"))
    (tmp_path / "audio" / "hungry" / "baby1.wav").unlink()
    done = preprocess(tmp_path / "audio", tmp_path / "out")
    after = sorted(p.name for p in (tmp_path / "out").rglob("*.png"))
    assert done.returncode == 0 and "removed" in done.stdout
    assert after == [n for n in before if not n.startswith("baby1_")] and len(after) < len(before)
