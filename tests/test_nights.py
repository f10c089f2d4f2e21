"""The nights benchmark: what make_nights mixes is where its labels say; --events says what is wrong."""
from __future__ import annotations

import json

import numpy as np
import soundfile as sf
from conftest import run_script

from cry.detect.events import score
from cry.detect.nights import BACKGROUNDS, NightRecipe, write_nights
from cry.detect.sounds import list_clips


def loud_spans(audio: np.ndarray, rate: int, dbfs: float, frame_seconds: float = 0.05) -> list[tuple[float, float]]:
    """A trivial energy detector: runs of frames above dbfs, (start, end) in seconds."""
    n = int(frame_seconds * rate)
    frames = audio[:len(audio) // n * n].reshape(-1, n)
    loud = 10 * np.log10(np.mean(frames.astype(np.float64) ** 2, axis=1) + 1e-12) > dbfs
    edges = np.flatnonzero(np.diff(np.concatenate([[0], loud.astype(int), [0]])))
    return [(a * frame_seconds, b * frame_seconds) for a, b in zip(edges[::2], edges[1::2])]


def test_a_generated_night_has_its_cries_where_its_labels_say(tmp_path):
    """Two 'cries' (a loud harmonic burst train as the cry source) on the near-silent background,
    no other events, no room: every loud frame lies inside a cry label, and each label starts
    with a loud frame."""
    rate = 16000
    t = np.arange(int(1.5 * rate)) / rate
    burst = sum(np.sin(2 * np.pi * 450 * k * t) / k for k in (1, 2, 3)).astype(np.float32) * 0.3
    for kind, audio in (("cry/wail", burst), ("not_cry/tones", 0.2 * np.sin(2 * np.pi * 300 * t))):
        (tmp_path / "sounds" / kind).mkdir(parents=True)
        sf.write(tmp_path / "sounds" / kind / "a.wav", audio, rate)
    clips, _ = list_clips(tmp_path / "sounds")
    recipe = NightRecipe(minutes=2.0, cries=2, cry_seconds=(15.0, 20.0), cry_snr_db=(40.0, 40.0),
                         min_gap_seconds=20.0, events_per_minute=0.0, over_sound_share=0.0, reverb_share=0.0)
    out = write_nights(tmp_path / "nights", [c for c in clips if c.label == 1], [c for c in clips if c.label == 0],
                       recipe=recipe, seed=3, backgrounds=(BACKGROUNDS[0],))
    audio, sr = sf.read(out / "quiet_room_1.wav", dtype="float32")
    assert sr == 16000 and len(audio) == 120 * sr
    labels = [line.split("\t") for line in (out / "quiet_room_1.txt").read_text().splitlines()]
    cries = [(float(a), float(b)) for a, b, label in labels if label == "cry"]
    assert len(cries) == 2 and len(labels) == 2
    spans = loud_spans(audio, sr, BACKGROUNDS[0].dbfs + 20)
    assert spans
    for start, end in spans:
        assert any(a - 0.05 <= start and end <= b + 0.05 for a, b in cries), (start, end, cries)
    for a, b in cries:
        assert 15.0 <= b - a <= 20.0
        assert min(abs(start - a) for start, _ in spans) <= 0.05, (a, spans)
    saved = json.loads((out / "nights.json").read_text())
    assert saved["nights"][0]["cries"] == 2 and saved["recipe"]["minutes"] == 2.0


def test_scoring_counts_caught_latency_false_alarms_and_episodes_per_cry():
    cries = [(10.0, 30.0), (100.0, 120.0), (200.0, 210.0)]
    episodes = [(12.0, 35.0, 13.5), (50.0, 55.0, 51.0), (101.0, 110.0, 104.0), (112.0, 118.0, 113.0)]
    s = score(cries, episodes, 3600.0)
    assert (s["cries"], s["caught"], s["false_alarms"], s["episodes"]) == (3, 2, 1, 4)
    assert s["latencies"] == [3.5, 4.0] and s["episodes_per_caught"] == [1, 2]
    assert abs(s["not_crying_hours"] - (3600 - 50) / 3600) < 1e-9


def test_events_on_a_folder_without_annotations_or_with_a_malformed_one_is_one_error_line(tmp_path):
    (tmp_path / "bare").mkdir()
    sf.write(tmp_path / "bare" / "night.wav", np.zeros(16000, np.float32), 16000)
    bad = tmp_path / "bad"
    bad.mkdir()
    sf.write(bad / "night.wav", np.zeros(16000, np.float32), 16000)
    (bad / "night.txt").write_text("1.0\t5.0\tcry\nsoon\tlater\tcry\n")
    for folder, said in ((tmp_path / "bare", "no recording with an annotation file beside it"),
                         (bad, "night.txt: line 2 is not onset, offset, label"),
                         (tmp_path / "missing", "no such folder")):
        done = run_script("evaluate_model.py", "--events", folder, ok=(2,))
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and said in lines[0], done.stderr
