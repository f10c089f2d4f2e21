"""prepare -> preprocess -> train -> evaluate on the real corpus, as a user runs the scripts."""
import json
import subprocess
import sys

import pytest
from conftest import ROOT

SCRIPTS = ["prepare_data.py", "preprocess_model.py", "train_model.py", "evaluate_model.py",
           "real_time_prediction.py", "export_model.py"]


def run(*args, ok=(0,)):
    done = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode in ok, done.stderr[-3000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    return done


@pytest.mark.parametrize("script", [s for s in SCRIPTS if (ROOT / s).exists()])
def test_every_script_answers_help(script):
    assert "usage:" in run(script, "--help").stdout


def test_missing_data_folder_is_one_line(tmp_path):
    done = run("preprocess_model.py", "--audio-dir", str(tmp_path / "nope"), "--out-dir", str(tmp_path / "out"), ok=(2,))
    assert done.stderr.strip().count("\n") == 0 and "nope" in done.stderr
    (tmp_path / "empty").mkdir()
    done = run("train_model.py", "--data-dir", str(tmp_path / "empty"), "--model", str(tmp_path / "m.keras"), ok=(2,))
    assert done.stderr.strip().startswith("error:") and "empty" in done.stderr


@pytest.fixture(scope="module")
def trained(corpus, tmp_path_factory):
    """One short training on the real corpus, shared by the tests below."""
    root = tmp_path_factory.mktemp("pipeline")
    audio, spectrograms, model = root / "audio", root / "spectrograms", root / "models" / "m.keras"
    run("prepare_data.py", "--source", str(corpus), "--out-dir", str(audio))
    run("preprocess_model.py", "--audio-dir", str(audio), "--out-dir", str(spectrograms))
    run("train_model.py", "--data-dir", str(spectrograms), "--model", str(model), "--epochs", "1")
    return root, spectrograms, model


def test_train_writes_model_with_its_settings_and_split(trained):
    root, spectrograms, model = trained
    info = json.loads(model.with_suffix(".json").read_text())
    assert info["settings"] == json.loads((spectrograms / "settings.json").read_text())
    sides = [set(info["split"][k]) for k in ("train", "validation", "test")]
    assert not (sides[0] & sides[1] or sides[0] & sides[2] or sides[1] & sides[2])
    assert (root / "models" / "m_curves.png").stat().st_size > 0


def test_evaluate_reports_intervals_and_baselines(trained):
    root, spectrograms, model = trained
    run("evaluate_model.py", "--model", str(model), "--reports-dir", str(root / "reports"))
    report = json.loads((root / "reports" / "evaluation.json").read_text())
    for key in ("accuracy", "balanced_accuracy", "macro_f1", "macro_roc_auc"):
        for level in ("window", "recording"):
            m = report[key][level]
            assert m["ci_low"] <= m["value"] <= m["ci_high"], (key, level, m)
    assert report["baselines"]["majority"]["recording"]["accuracy"]["value"] > 0.5   # mostly "hungry"
    assert report["baselines"]["majority"]["recording"]["balanced_accuracy"]["value"] < 0.3
    assert {p.name for p in (root / "reports").glob("*.png")} >= {"confusion_recording.png", "per_class_f1.png"}


def test_evaluate_on_an_audio_folder(trained, corpus):
    root, _, model = trained
    run("evaluate_model.py", "--model", str(model), "--audio-dir", str(root / "audio"),
        "--reports-dir", str(root / "reports_audio"))
    report = json.loads((root / "reports_audio" / "evaluation.json").read_text())
    assert report["n_recordings"] > 400


def test_evaluate_refuses_a_model_without_its_json(trained, tmp_path):
    _, _, model = trained
    lonely = tmp_path / "lonely.keras"
    lonely.write_bytes(model.read_bytes())
    done = run("evaluate_model.py", "--model", str(lonely), ok=(2,))
    assert "lonely.json" in done.stderr and done.stderr.strip().startswith("error:")


def test_cross_validation_writes_cv_json_and_an_experiment_row(trained):
    root, spectrograms, _ = trained
    out = root / "cv"
    run("evaluate_model.py", "--cv", "2", "--epochs", "1", "--data-dir", str(spectrograms), "--reports-dir", str(out),
        "--experiments-file", str(out / "experiments.md"), "--audio-dir-for-baseline", str(root / "audio"))
    cv = json.loads((out / "cv.json").read_text())
    for key in ("cry_vs_silence_auc", "reasons_macro_auc", "reasons_macro_f1"):
        assert cv[key]["ci_low"] <= cv[key]["value"] <= cv[key]["ci_high"], key
        assert cv["baselines"]["majority"][key]["ci_low"] <= cv["baselines"]["majority"][key]["value"]
    assert 0 <= cv["ece_after_scaling"] <= 1
    assert cv["baselines"]["majority"]["cry_vs_silence_auc"]["value"] == 0.5
    assert cv["baselines"]["mfcc_logistic_regression"]["cry_vs_silence_auc"]["value"] > 0.9   # loudness separates them
    folds = json.loads((out / "cv_folds.json").read_text())["folds"]
    assert not set(folds[0]) & set(folds[1])
    table = (out / "experiments.md").read_text()
    assert table.count("--cv 2") == 1 and table.count("baseline:") == 2 and "sampling, augment spec" in table
