"""Corpus tags, real silence clips, and splits that never put one baby on two sides."""
from pathlib import Path

import numpy as np
import soundfile as sf
from conftest import tone

from cry.corpus import baby_id
from cry.reason.data import Windows, grouped_folds, split_by_baby
from cry.params import CLASSES, Settings
from cry.corpus import class_of, extract_silence

ID = "0D1AD73E-4C5E-45F3-85C4-9A3CB71E8856"


def test_reason_tags_map_to_classes():
    assert class_of(Path(f"discomfort/{ID}-1430742197-1.0-m-04-ch.wav")) == "cold_hot"
    assert class_of(Path(f"discomfort/{ID}-1430742197-1.0-m-04-dc.wav")) == "discomfort"
    assert class_of(Path(f"hungry/{ID}-1430742197-1.0-m-04-hu.wav")) == "hungry"
    assert class_of(Path(f"tired/{ID}-x.wav")) == "tired"            # no tag: the folder decides
    assert class_of(Path(f"lonely/{ID}-1-1.0-m-04-lo.wav")) is None   # neither known


def test_baby_id_ignores_case():
    assert baby_id(f"a/{ID}-1-1.0-m-04-hu.wav") == baby_id(f"b/{ID.lower()}-2-1.7-f-48-bp.wav")


def test_silence_comes_from_the_quiet_stretch_only():
    rate = 8000
    rng = np.random.default_rng(1)
    room = rng.normal(0, 0.001, 4 * rate).astype(np.float32)
    audio = np.concatenate([tone(450, 2, rate, 0.5), room, tone(500, 1, rate, 0.5)])
    clip = extract_silence(audio, rate)
    assert clip is not None and 3.5 * rate <= len(clip) <= 4 * rate
    assert np.abs(clip).max() < 0.01                                  # no cry leaked in
    assert extract_silence(tone(450, 7, rate, 0.5), rate) is None     # a cry throughout: no silence


def test_prepare_real_corpus(corpus_audio):
    """prepare_data.py made corpus_audio (conftest), exit status 0."""
    made = {c: sorted((corpus_audio / c).glob("*.wav")) for c in CLASSES}
    assert all(made[c] for c in CLASSES), {c: len(v) for c, v in made.items()}
    assert all("-ch" in p.name for p in made["cold_hot"])
    recording_babies = {baby_id(p) for c in CLASSES if c != "silence" for p in made[c]}
    assert {baby_id(p) for p in made["silence"]} <= recording_babies
    x, rate = sf.read(made["silence"][0])
    assert len(x) >= 3 * rate and np.sqrt(np.mean(x ** 2)) < 0.05


def corpus_like_windows(corpus) -> Windows:
    """Windows labelled like the real corpus files, five per recording."""
    rows = []
    for wav in sorted(corpus.rglob("*.wav")):
        label = CLASSES.index(class_of(wav))
        rows += [(f"{wav.stem}_w{k}.png", label, wav.stem, baby_id(wav)) for k in range(5)]
    return Windows(*(np.array(c) for c in zip(*rows)))


def test_split_and_folds_are_baby_disjoint(corpus):
    windows = corpus_like_windows(corpus)
    split = split_by_baby(windows, seed=0)
    sides = [set(split.train), set(split.validation), set(split.test)]
    assert not (sides[0] & sides[1] or sides[0] & sides[2] or sides[1] & sides[2])
    assert set().union(*sides) == set(windows.babies)
    test_labels = windows.labels[np.isin(windows.babies, split.test)]
    assert len(set(test_labels)) >= 4                  # stratified: not only "hungry"
    folds = grouped_folds(windows, 5, seed=3)
    assert sum(len(f) for f in folds) == len(set(windows.babies))
    assert len(set().union(*map(set, folds))) == len(set(windows.babies))


def test_preprocess_drops_windows_of_a_recording_that_got_shorter(tmp_path):
    import os
    import time

    from preprocess_model import main as preprocess_main

    audio, out = tmp_path / "audio", tmp_path / "png"
    (audio / "hungry").mkdir(parents=True)
    sf.write(audio / "hungry" / "baby.wav", tone(450, 7, 8000), 8000)
    sf.write(audio / "hungry" / "baby_windy.wav", tone(450, 7, 8000), 8000)   # shares the prefix
    assert preprocess_main(["--audio-dir", str(audio), "--out-dir", str(out), "--workers", "1"]) == 0
    assert len(list((out / "hungry").glob("baby_w[0-9]*.png"))) == 5
    sf.write(audio / "hungry" / "baby.wav", tone(450, 4, 8000), 8000)
    later = time.time() + 5
    os.utime(audio / "hungry" / "baby.wav", (later, later))
    assert preprocess_main(["--audio-dir", str(audio), "--out-dir", str(out), "--workers", "1"]) == 0
    assert sorted(p.name for p in (out / "hungry").glob("baby_w[0-9]*.png")) == ["baby_w0.png", "baby_w1.png"]
    assert len(list((out / "hungry").glob("baby_windy_w*.png"))) == 5


def test_windows_of_one_recording_are_one_baby_even_with_short_names(tmp_path):
    from cry.reason.data import index_spectrograms
    from cry.features import indices_to_png, window_to_indices

    settings = Settings()
    for k in range(3):
        indices = window_to_indices(np.zeros(settings.window_samples, np.float32), settings)
        indices_to_png(indices, settings.colormap, tmp_path / "hungry" / f"cry1_w{k}.png")
    windows = index_spectrograms(tmp_path)
    assert len(windows) == 3 and len(set(windows.babies)) == 1 and set(windows.recordings) == {"hungry/cry1"}
