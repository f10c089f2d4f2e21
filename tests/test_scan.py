"""scan_recordings.py on generated recordings with known cries, and both Ray paths on a real cluster.

The recordings are corpus cries (bouts of several recordings with pauses, as a cry is) over pink
room tone, with a tone that is no cry, in three formats and rates (a 16 kHz WAV with an
annotation file beside it, a 44.1 kHz stereo FLAC, a 22.05 kHz Ogg Vorbis) and a broken file.
The cluster is started once for the module (cry.local_cluster: a head and a worker node on
127.0.0.1) and stopped at its end.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import MODELS, ROOT, run_script, tone

from cry.audio import resample
from cry.detect import synth
from cry.local_cluster import DRIVER_ENV, LocalCluster

# recording -> (rate, channels, seconds, cry onsets)
RECORDINGS = {"home/day.wav": (16000, 1, 200, (30.0, 100.0, 160.0)), "home/night.flac": (44100, 2, 80, (40.0,)),
              "lab/clip.ogg": (22050, 1, 60, (20.0,))}
CRY_SECONDS = 18.0
TONE_AT = (70.0, 80.0)  # in day.wav: a tone, labelled as what it is


@pytest.fixture(scope="module")
def recordings(small_detector, tmp_path_factory) -> tuple[Path, dict]:
    """The recordings (and day.txt, its annotations) made from cries of babies the detector was
    trained on (what is tested is where the scan puts what the detector hears); (folder, name ->
    cry spans in seconds)."""
    from conftest import CORPUS_DATA

    from cry.corpus import baby_id
    from cry.detect.nights import cry_bout
    from cry.detect.sounds import Clip

    _, _, trained = small_detector
    folder, rng = tmp_path_factory.mktemp("recordings"), np.random.default_rng(7)
    clips = [Clip(p, 1, "corpus", baby_id(p)) for p in sorted(CORPUS_DATA.rglob("*.wav")) if baby_id(p) in trained]
    spans = {}
    for name, (rate, channels, seconds, onsets) in RECORDINGS.items():
        audio = synth.at_level(synth.noise("pink", seconds * rate, rng), -55.0)
        for onset in onsets:
            bout = resample(cry_bout(clips[:8], CRY_SECONDS, rng), 16000, rate) * 10 ** (-22 / 20)  # RMS 1 -> -22 dBFS
            audio[int(onset * rate):int(onset * rate) + len(bout)] += bout
        if name.endswith("day.wav"):
            audio[int(TONE_AT[0] * rate):int(TONE_AT[1] * rate)] += tone(440.0, TONE_AT[1] - TONE_AT[0], rate, 0.1)
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(str(path), np.repeat(audio[:, None], channels, axis=1) if channels > 1 else audio, rate)
        spans[name] = [(onset, onset + CRY_SECONDS) for onset in onsets]
    labels = [(a, b, "cry") for a, b in spans["home/day.wav"]] + [(*TONE_AT, "tone")]
    (folder / "home" / "day.txt").write_text("".join(f"{a:.3f}\t{b:.3f}\t{label}\n" for a, b, label in sorted(labels)))
    (folder / "lab" / "broken.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEfmt " + bytes(40))
    return folder, spans


def scan(folder: Path, out: Path, *options: str, env: dict | None = None) -> subprocess.CompletedProcess:
    command = [sys.executable, str(ROOT / "scan_recordings.py"), str(folder), "--out", str(out), *options]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})})


def scan_options(small_detector) -> list[str]:
    return ["--detector", str(small_detector[1]), "--pretrained-dir", str(MODELS)]


def results(out: Path) -> dict[str, bytes]:
    """Every CSV and label track a scan wrote, by its path below out."""
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.suffix in (".csv", ".txt")}


@pytest.fixture(scope="module")
def reference(recordings, small_detector, tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """One scan in one process, every recording in one piece: what every other way must equal."""
    out = tmp_path_factory.mktemp("scan") / "one_pass"
    done = scan(recordings[0], out, "--workers", "1", *scan_options(small_detector))
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    return out, done


def read_csv(path: Path) -> list[dict]:
    import csv

    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_segments_are_where_the_cries_are_and_agree_with_the_annotations(recordings, reference):
    folder, spans = recordings
    out, done = reference
    assert done.returncode == 1  # a file failed, the others were scanned
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "broken.wav" in errors[0], done.stderr
    for name, cries in spans.items():
        segments = read_csv(out / f"{name}.segments.csv")
        found = [(float(s["onset_seconds"]), float(s["offset_seconds"])) for s in segments]
        assert len(found) == len(cries), (name, found, cries)
        for (onset, offset), (cry_on, cry_off) in zip(found, cries):
            assert cry_on <= onset <= cry_on + 6 and cry_off - 6 <= offset <= cry_off + 4, (name, found, cries)
        assert all(float(s["mean_probability"]) > 0.5 for s in segments)
        labels = (out / f"{name}.labels.txt").read_text().splitlines()
        assert [tuple(map(float, line.split("\t")[:2])) for line in labels] == found
        hourly = read_csv(out / f"{name}.hourly.csv")
        assert len(hourly) == 1 and abs(float(hourly[0]["crying_minutes"]) - sum(b - a for a, b in found) / 60) < 0.01
        assert (out / f"{name}.timeline.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = {row["recording"]: row for row in read_csv(out / "summary.csv")}
    assert set(summary) == {*spans, "all"} and int(summary["all"]["segments"]) == 5
    assert (summary["home/day.wav"]["cries"], summary["home/day.wav"]["caught"],
            summary["home/day.wav"]["false_alarms"]) == ("3", "3", "0")
    assert summary["home/night.flac"]["cries"] == ""  # not annotated
    import json

    agreement = json.loads((out / "agreement.json").read_text())["overall"]
    assert (agreement["cries"], agreement["caught"], agreement["false_alarms"], agreement["event_f1"]) == (3, 3, 0, 1.0)
    assert "3 of 3" in (out / "agreement.md").read_text()
    assert f"results in {out}" in done.stderr


def test_a_rerun_does_nothing_and_a_killed_run_leaves_no_partial_file(recordings, reference, small_detector,
                                                                     tmp_path):
    folder, _ = recordings
    out, _ = reference
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    again = scan(folder, out, "--workers", "1", *scan_options(small_detector))
    assert "3 recordings scanned before, skipped" in again.stderr and again.returncode == 1
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file() and p.name not in (
        "summary.csv", "agreement.json", "agreement.md")} == {p: t for p, t in before.items() if p.name not in (
            "summary.csv", "agreement.json", "agreement.md")}

    killed = tmp_path / "killed"
    command = [sys.executable, str(ROOT / "scan_recordings.py"), str(folder), "--out", str(killed), "--workers", "1",
               "--piece-minutes", "0.5", *scan_options(small_detector)]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not list(killed.rglob("*.scan.json")) and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait(10)
    finished = {str(p.relative_to(killed))[:-len(".scan.json")] for p in killed.rglob("*.scan.json")}
    assert 1 <= len(finished) < 3, finished  # killed between two recordings' markers
    reference_files = results(out)
    for path, content in results(killed).items():
        assert content == reference_files[path], path  # whatever is there is whole
    assert not (killed / "summary.csv").exists()
    resumed = scan(folder, killed, "--workers", "1", *scan_options(small_detector))
    assert f"{len(finished)} recordings scanned before, skipped" in resumed.stderr
    assert results(killed) == reference_files
    assert not [p for p in killed.rglob(".*") if p.is_file()]  # no temporary file left behind


def test_pieces_in_a_local_pool_equal_one_pass(recordings, reference, small_detector, tmp_path):
    pooled = scan(recordings[0], tmp_path / "pool", "--workers", "2", "--piece-minutes", "0.5",
                  *scan_options(small_detector))
    assert "2 local worker(s)" in pooled.stderr and pooled.returncode == 1
    assert results(tmp_path / "pool") == results(reference[0])


@pytest.fixture(scope="module")
def cluster():
    with LocalCluster(nodes=2) as started:
        yield started


def test_a_scan_over_a_ray_cluster_equals_one_without(recordings, reference, small_detector, cluster, tmp_path):
    spread = scan(recordings[0], tmp_path / "ray", "--ray", cluster.address, "--piece-minutes", "0.5",
                  *scan_options(small_detector), env=DRIVER_ENV)
    assert f"the Ray cluster at {cluster.address}" in spread.stderr and spread.returncode == 1, spread.stderr[-3000:]
    assert "Traceback" not in spread.stderr
    assert results(tmp_path / "ray") == results(reference[0])


def test_cross_validation_locally_and_over_ray(cluster, corpus_audio, tmp_path):
    """A small --cv 2 --epochs 1 (the corpus's seven folders, 10 recordings of each at most), with
    and without Ray at once: the local run writes cv.json with intervals, each reason on its own,
    the baselines through the same folds, an experiment row, and rescores alike from its saved
    probabilities; over Ray, the same out-of-fold probabilities, raw and calibrated, bit for bit."""
    import json

    audio = tmp_path / "audio"
    for class_dir in sorted(p for p in corpus_audio.iterdir() if p.is_dir()):
        (audio / class_dir.name).mkdir(parents=True)
        for path in sorted(class_dir.glob("*.wav"))[:10]:
            (audio / class_dir.name / path.name).write_bytes(path.read_bytes())
    run_script("preprocess_model.py", "--audio-dir", audio, "--out-dir", tmp_path / "spec", ok=(0,))

    def command(reports: Path, baseline_audio: Path, *more: str) -> list[str]:
        return [sys.executable, str(ROOT / "evaluate_model.py"), "--cv", "2", "--epochs", "1", "--data-dir",
                str(tmp_path / "spec"), "--reports-dir", str(reports), "--experiments-file", str(reports / "exp.md"),
                "--audio-dir-for-baseline", str(baseline_audio), "--pretrained-dir", str(MODELS), "--bootstrap",
                "100", "--augment", "none", "--batch-size", "64", *more]
    local = subprocess.Popen(command(tmp_path / "local", audio), cwd=ROOT, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
    spread = subprocess.run(command(tmp_path / "ray", tmp_path / "none", "--ray", cluster.address), cwd=ROOT,
                            capture_output=True, text=True, timeout=600, env={**os.environ, **DRIVER_ENV})
    local_err = local.communicate(timeout=600)[1]
    assert local.returncode == 0 and spread.returncode == 0, local_err[-2000:] + spread.stderr[-2000:]
    assert "on the Ray cluster at" in spread.stderr
    with np.load(tmp_path / "local" / "cv_predictions.npz") as a, np.load(tmp_path / "ray" / "cv_predictions.npz") as b:
        for key in ("raw", "calibrated", "temperature_only", "validation_raw", "labels", "recordings"):
            assert np.array_equal(a[key], b[key]), key
        windows = len(list((tmp_path / "spec").rglob("*.png")))
        assert a["raw"].shape[1] == windows and not np.allclose(a["raw"], a["raw"][:, :1])  # predictions

    out = tmp_path / "local"
    cv = json.loads((out / "cv.json").read_text())
    for key in ("cry_vs_silence_auc", "reasons_macro_auc", "reasons_macro_f1"):
        assert cv[key]["ci_low"] <= cv[key]["value"] <= cv[key]["ci_high"], key
        assert cv["baselines"]["majority"][key]["ci_low"] <= cv["baselines"]["majority"][key]["value"]
    assert 0 <= cv["ece_after_scaling"] <= 1
    support = cv["reason_support"]                          # each reason on its own: support and AUC with interval
    assert set(support) == {"belly_pain", "hungry", "cold_hot", "tired", "discomfort", "burping"}
    for reason in support:
        assert support[reason]["recordings"] == len(list((audio / reason).glob("*.wav"))), reason
        auc = cv[f"auc_{reason}"]
        assert auc["ci_low"] <= auc["value"] <= auc["ci_high"], reason
        assert f"auc_{reason}" in cv["baselines"]["yamnet_logistic_regression"]
    assert support["cold_hot"]["babies"] < support["cold_hot"]["recordings"] == 7   # 7 recordings of 3 babies
    per_reason = (out / "cv_per_reason.md").read_text()
    assert "| cold_hot | 7 |" in per_reason and "95% interval above 0.5" in per_reason
    assert cv["baselines"]["majority"]["cry_vs_silence_auc"]["value"] == 0.5
    assert cv["baselines"]["mfcc_logistic_regression"]["cry_vs_silence_auc"]["value"] > 0.9   # loudness separates them
    folds = json.loads((out / "cv_folds.json").read_text())["folds"]
    assert not set(folds[0]) & set(folds[1])
    table = (out / "exp.md").read_text()
    assert table.count("--cv 2") == 1 and table.count("baseline:") == 3 and "sampling, augment none" in table

    # Re-scored from the saved probabilities and baseline features alone: no audio needed, the same figures.
    run_script("evaluate_model.py", "--rescore", out, "--experiments-file", out / "exp.md",
               "--audio-dir-for-baseline", tmp_path / "no audio", "--bootstrap", "100", ok=(0,))
    again = json.loads((out / "cv.json").read_text())
    same = {k: v for k, v in again.items() if k != "rescored"}
    assert "rescored" in again and json.dumps(same, sort_keys=True) == json.dumps(cv, sort_keys=True)  # NaN too
    assert (out / "exp.md").read_text().count("re-scored") == 1
