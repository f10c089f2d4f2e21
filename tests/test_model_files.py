"""Model files that must be refused, each with a one-line reason: missing, mismatched, corrupt,
torn between its two writes, or carrying Python code."""
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from robustness_summary import record

from cry.reason.model import build_model
from cry.reason.info import ModelInfo
from cry.reason.model_files import ModelError, load_model, save_model
from cry.params import CLASSES, Settings

S = Settings()


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
def test_load_model_refuses_with_an_explanation(tmp_path, fresh_model, kind):
    model = tmp_path / "m.keras"
    save_model(fresh_model, ModelInfo("", "", S), model)
    load_model(model, S)                           # the intact pair loads
    breaks, words = BAD_MODELS[kind]
    breaks(model)
    record(kinds=[kind], checked=1)
    with pytest.raises(ModelError) as refused:
        load_model(model, S)
    assert words in str(refused.value) and "\n" not in str(refused.value)


def test_model_torn_between_its_two_writes_is_refused(tmp_path, fresh_model):
    """A crash after the new .keras replaced the old one but before its JSON did."""
    model, other = tmp_path / "m.keras", tmp_path / "other" / "m.keras"
    save_model(fresh_model, ModelInfo("", "", S), model)
    save_model(build_model(S), ModelInfo("", "", S), other)  # other initial weights: another file
    model.write_bytes(other.read_bytes())
    record(kinds=["model torn between .keras and .json writes"], faults=1, checked=1)
    with pytest.raises(ModelError, match="does not match m.json"):
        load_model(model)


def test_load_model_runs_no_code_from_the_file(tmp_path):
    """Safe mode: a Lambda layer's Python code is refused, never deserialized, let alone run.
    The control at the end shows the file does carry code that runs when loaded unsafely."""
    import keras

    marker = tmp_path / "ran"
    touch = f"open({str(marker)!r}, 'w').close()"  # what a hostile model might run instead
    inputs = keras.Input((S.image_size, S.image_size, 3))
    x = keras.layers.Lambda(lambda t, code: t * float(exec(code) is None), output_shape=inputs.shape[1:],
                            arguments={"code": touch})(inputs)
    outputs = keras.layers.Dense(len(CLASSES), activation="softmax")(keras.layers.GlobalAveragePooling2D()(x))
    model = tmp_path / "m.keras"
    save_model(keras.Model(inputs, outputs), ModelInfo("", "", S), model)
    record(kinds=["model with Python code (Lambda layer)"], checked=1)
    with pytest.raises(ModelError, match="Lambda"):
        load_model(model)
    assert not marker.exists()
    unsafe = keras.saving.load_model(model, safe_mode=False)
    unsafe(np.zeros((1, S.image_size, S.image_size, 3), np.float32))
    assert marker.exists()
