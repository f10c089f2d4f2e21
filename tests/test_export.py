"""LiteRT export and the fast paths give the Keras model's numbers; the fast features give
librosa's pixels. Tiny freshly built models (32x32 images) keep this quick."""
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import tone

import export_model
from cry.features import indices_to_png, reference_window_to_image, window_to_image, window_to_indices
from cry.files import write_json
from cry.reason.litert import LiteRTModel, to_litert
from cry.reason.predictor import fastest_model
from cry.reason.model import build_model, predict_probabilities
from cry.reason.info import ModelInfo
from cry.reason.model_files import load_model, save_model
from cry.params import CLASSES, Settings
from cry.reason.params import ARCHITECTURES, Training

SMALL = Settings(image_size=32)


def decisive_model(arch: str):
    """A fresh model (the same for every run) whose softmax is sharpened, so top classes differ by clear margins."""
    import keras

    keras.utils.set_random_seed(0)
    model = build_model(SMALL, Training(arch=arch))
    last = model.get_layer("probabilities")
    last.kernel.assign(last.kernel * 30.0)
    return model


def images(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_litert_export_matches_keras(arch):
    model, x = decisive_model(arch), images(12)
    keras_p = np.asarray(model(x, training=False))
    lite_p = LiteRTModel.from_keras(model)(x)
    assert lite_p.shape == (12, len(CLASSES)) and lite_p.dtype == np.float32
    np.testing.assert_allclose(lite_p, keras_p, atol=1e-5)
    assert (lite_p.argmax(1) == keras_p.argmax(1)).all()


def test_int8_export_is_smaller_and_close():
    model, x = decisive_model("time"), images(12)
    full, int8 = to_litert(model, "float32"), to_litert(model, "int8")
    assert len(int8) < len(full) / 2
    assert np.abs(LiteRTModel(int8)(x) - np.asarray(model(x, training=False))).max() < 0.1
    with pytest.raises(ValueError, match="weights"):
        to_litert(model, "int4")


def test_predict_probabilities_matches_model_call():
    model, x = decisive_model("time"), images(7, seed=1)
    expected = np.asarray(model(x, training=False))
    np.testing.assert_allclose(predict_probabilities(model, x, batch_size=3), expected, atol=1e-6)
    np.testing.assert_allclose(predict_probabilities(LiteRTModel.from_keras(model), x), expected, atol=1e-5)
    assert predict_probabilities(model, x[:0]).shape == (0, len(CLASSES))


def tiny_spectrograms(data) -> None:
    """One window PNG of noise per class, each from its own baby, as preprocessing writes them."""
    write_json(SMALL.to_dict(), data / "settings.json")
    rng = np.random.default_rng(0)
    for k, name in enumerate(CLASSES):
        window = rng.normal(0, 0.1 * (k + 1), SMALL.window_samples).astype(np.float32)
        indices_to_png(window_to_indices(window, SMALL), SMALL.colormap, data / name / f"{k:036d}_w0.png")


def test_export_script_writes_files_and_checks_parity(tmp_path):
    data = tmp_path / "spectrograms"
    tiny_spectrograms(data)
    model_path = tmp_path / "tiny.keras"
    save_model(decisive_model("time"), ModelInfo("", "", SMALL, data_dir=str(data)), model_path)

    assert export_model.main(["--model", str(model_path), "--weights", "float32", "float16"]) == 0
    assert (tmp_path / "tiny.tflite").is_file() and (tmp_path / "tiny_float16.tflite").is_file()
    assert (tmp_path / "tiny_litert.json").is_file()
    assert export_model.main(["--model", str(model_path), "--min-agreement", "1.01"]) == 1  # the check can fail

    # the live path of a model with a matching export imports no TensorFlow, Keras, librosa or scikit-learn
    import subprocess
    import sys

    heavy = ("tensorflow", "keras", "librosa", "sklearn", "numba")
    code = (f"import sys, numpy as np; from cry.assemble import load_live_path; "
            f"p = load_live_path({str(model_path)!r}, None); p.scorer(np.full(48000, 0.1, np.float32), 16000); "
            f"print(type(p.scorer.reasons.model).__name__, sorted(set({heavy!r}) & set(sys.modules)))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parents[1])
    assert done.stdout.strip() == "LiteRTModel []", done.stderr[-2000:]


def test_export_elsewhere_is_found_and_one_kind_keeps_the_others(tmp_path):
    data = tmp_path / "spectrograms"
    tiny_spectrograms(data)
    model_path = tmp_path / "models" / "tiny.keras"
    save_model(decisive_model("time"), ModelInfo("", "", SMALL, data_dir=str(data)), model_path)
    out = tmp_path / "exports"
    assert export_model.main(["--model", str(model_path), "--out-dir", str(out)]) == 0
    assert export_model.main(["--model", str(model_path), "--out-dir", str(out), "--weights", "int8"]) == 0
    record = json.loads((tmp_path / "models" / "tiny_litert.json").read_text())
    assert set(record["exports"]) == {"float32", "int8"} and (out / "tiny.tflite").is_file()
    _, info = load_model(model_path)
    assert isinstance(fastest_model(model_path, info), LiteRTModel)


@pytest.mark.parametrize("signal", ["silence", "tone", "quiet noise", "loud noise", "clipped"])
def test_fast_features_give_librosa_pixels(signal):
    s = Settings()
    n, rng = s.window_samples, np.random.default_rng(3)
    window = {"silence": np.zeros(n, np.float32),
              "tone": tone(700, s.window_seconds, s.sample_rate_hz),
              "quiet noise": rng.normal(0, 1e-3, n).astype(np.float32),
              "loud noise": rng.normal(0, 0.3, n).astype(np.float32),
              "clipped": np.clip(rng.normal(0, 3, n), -1, 1).astype(np.float32)}[signal]
    assert np.array_equal(window_to_image(window, s), reference_window_to_image(window, s))
