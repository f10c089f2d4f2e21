"""prepare -> preprocess -> train -> evaluate on the real corpus, as a user runs the scripts
(the first three are conftest's session fixtures: corpus_audio, spectrograms, trained_model)."""
import json

import pytest
from conftest import ROOT, run_script

QUICK = ("--bootstrap", "100")  # intervals from 100 resamples, not 1000: what is checked here is their shape
SCRIPTS = ["prepare_data.py", "preprocess_model.py", "train_model.py", "evaluate_model.py",
           "real_time_prediction.py", "export_model.py"]


@pytest.mark.parametrize("script", [s for s in SCRIPTS if (ROOT / s).exists()])
def test_every_script_answers_help(script):
    assert "usage:" in run_script(script, "--help", ok=(0,)).stdout


def test_missing_data_folder_is_one_line(tmp_path):
    done = run_script("preprocess_model.py", "--audio-dir", tmp_path / "nope", "--out-dir", tmp_path / "out", ok=(2,))
    assert done.stderr.strip().count("\n") == 0 and "nope" in done.stderr
    (tmp_path / "empty").mkdir()
    done = run_script("train_model.py", "--detector", "none",
                      "--data-dir", tmp_path / "empty", "--model", tmp_path / "m.keras", ok=(2,))
    assert done.stderr.strip().startswith("error:") and "empty" in done.stderr


def test_train_writes_model_with_its_settings_and_split(trained_model, spectrograms):
    info = json.loads(trained_model.with_suffix(".json").read_text())
    assert info["settings"] == json.loads((spectrograms / "settings.json").read_text())
    sides = [set(info["split"][k]) for k in ("train", "validation", "test")]
    assert not (sides[0] & sides[1] or sides[0] & sides[2] or sides[1] & sides[2])
    assert info["training"]["epochs"] == 1 and info["training"]["filters"] == [32, 64, 128]
    assert trained_model.with_name("m_curves.png").stat().st_size > 0


def test_evaluate_reports_intervals_and_baselines(trained_model, tmp_path):
    done = run_script("evaluate_model.py", "--model", trained_model, "--reports-dir", tmp_path / "reports", *QUICK,
                      ok=(0,))
    assert "cuInit" not in done.stderr and "E0000" not in done.stderr  # TensorFlow on a machine without a GPU
    assert "using the Keras model, no LiteRT export recorded" in done.stderr  # the slower path is said
    report = json.loads((tmp_path / "reports" / "evaluation.json").read_text())
    assert report["bootstrap_resamples"] == 100
    for key in ("accuracy", "balanced_accuracy", "macro_f1", "macro_roc_auc"):
        for level in ("window", "recording"):
            m = report[key][level]
            assert m["ci_low"] <= m["value"] <= m["ci_high"], (key, level, m)
    assert report["baselines"]["majority"]["recording"]["accuracy"]["value"] > 0.5   # mostly "hungry"
    assert report["baselines"]["majority"]["recording"]["balanced_accuracy"]["value"] < 0.3
    assert {p.name for p in (tmp_path / "reports").glob("*.png")} >= {"confusion_recording.png", "per_class_f1.png"}


def test_evaluate_on_an_audio_folder(trained_model, corpus_audio, tmp_path):
    folder = tmp_path / "audio"
    for class_dir in sorted(p for p in corpus_audio.iterdir() if p.is_dir()):
        (folder / class_dir.name).mkdir(parents=True)
        for wav in sorted(class_dir.glob("*.wav"))[:3]:
            (folder / class_dir.name / wav.name).write_bytes(wav.read_bytes())
    run_script("evaluate_model.py", "--model", trained_model, "--audio-dir", folder,
               "--reports-dir", tmp_path / "reports", *QUICK, ok=(0,))
    report = json.loads((tmp_path / "reports" / "evaluation.json").read_text())
    assert report["n_recordings"] == len(list(folder.rglob("*.wav"))) == 21  # 3 of each of the 7 classes


def test_evaluate_refuses_a_model_without_its_json(trained_model, tmp_path):
    lonely = tmp_path / "lonely.keras"
    lonely.write_bytes(trained_model.read_bytes())
    done = run_script("evaluate_model.py", "--model", lonely, ok=(2,))
    assert "lonely.json" in done.stderr and done.stderr.strip().startswith("error:")
