"""YAMNet: our numpy features against TensorFlow and the waveform model, known signals, model files, download."""
from __future__ import annotations

import dataclasses
import functools
import http.server
import os
import shutil
import subprocess
import sys
import threading
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import ROOT, tone

from cry.audio import resample
from cry.files import UserError
from cry.pretrained import (YAMNET_CLASS_MAP, YAMNET_FILES, YAMNET_MODEL, download, fetch_pretrained, file_problem,
                            yamnet_files)
from cry.yamnet import (BABY_CRY, YamnetModel, YamnetParams, heard_label, log_mel_spectrogram, mel_matrix,
                        pad_waveform, stft_magnitude, waveform_to_log_mel_patches)

SHARED = ROOT.parent / "shared"
MODELS = SHARED / "models"
SOUNDS = SHARED / "sounds"
P = YamnetParams()
RATE_HZ = P.sample_rate_hz
CLIP_SAMPLES = 15600  # the waveform model's fixed input: 0.975 s, one patch


def need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} not found (the shared models and sounds beside the repository)")
    return path


@functools.cache
def load_16k(path: Path) -> np.ndarray:
    audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
    return resample(audio.mean(axis=1), rate, RATE_HZ)


def loudest_clip(path: Path) -> np.ndarray:
    """The loudest 0.975 s of a sound file at 16 kHz (0.25 s steps), zero-padded if shorter. float32 [15600]:
    a quiet gap in a song is not music, and on such gaps both models are unsure of everything."""
    audio = np.pad(load_16k(path), (0, CLIP_SAMPLES))
    starts = range(0, max(1, len(audio) - 2 * CLIP_SAMPLES + 1), RATE_HZ // 4)
    start = max(starts, key=lambda s: float(np.mean(audio[s:s + CLIP_SAMPLES] ** 2)))
    return audio[start:start + CLIP_SAMPLES]


def speech_and_music_clips() -> list[np.ndarray]:
    music = sorted(need(SOUNDS / "not_cry" / "music_and_speech").iterdir())
    digits = sorted(need(SOUNDS / "not_cry" / "speech_digits").glob("*_0.wav"))[:4]
    return [loudest_clip(p) for p in music + digits]


def cry_clips() -> list[np.ndarray]:
    return [loudest_clip(p) for p in sorted(need(SOUNDS / "cry").glob("*/*")) if p.is_file()]


@pytest.fixture(scope="module")
def yamnet() -> YamnetModel:
    return YamnetModel(*yamnet_files(need(MODELS)))


class WaveformModel:
    """yamnet_waveform.tflite (TF Hub YAMNet converted, features computed in the graph), with its insides."""

    def __init__(self, path: Path):
        from ai_edge_litert.interpreter import Interpreter

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # preserve_all_tensors "is for debugging": it is here
            self.interpreter = Interpreter(model_path=str(path), num_threads=1,
                                           experimental_preserve_all_tensors=True)
        self.interpreter.allocate_tensors()
        by_op = {t["name"].split(";")[0].split("/")[1]: t["index"] for t in self.interpreter.get_tensor_details()
                 if t["name"].startswith("yamnet_frames/tf_op_layer_")}
        self._magnitude, self._log_mel = by_op["tf_op_layer_ComplexAbs"], by_op["tf_op_layer_Log"]

    def run(self, waveform: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Scores [521], |STFT| [96, 257] and log-mel [96, 64] of waveform float32 [15600]."""
        it = self.interpreter
        it.set_tensor(it.get_input_details()[0]["index"], waveform.astype(np.float32))
        it.invoke()
        return (it.get_tensor(it.get_output_details()[0]["index"])[0].copy(),
                it.get_tensor(self._magnitude).copy(), it.get_tensor(self._log_mel).copy())


@pytest.fixture(scope="module")
def waveform_model() -> WaveformModel:
    return WaveformModel(need(MODELS / "yamnet_waveform.tflite"))


# ---- features: the official recipe ----

def test_features_match_tf_signal():
    """The mel matrix and the whole log-mel pipeline against tf.signal, which the official features.py uses.
    Measured: mel weights within 8.2e-6; log-mel within 1.8e-3 (float32 rounding in near-empty bands)."""
    tf = pytest.importorskip("tensorflow")
    reference_mel = tf.signal.linear_to_mel_weight_matrix(64, 257, 16000, 125.0, 7500.0).numpy()
    assert np.abs(mel_matrix(P) - reference_mel).max() < 5e-5
    waveforms = [load_16k(p) for p in sorted(need(SOUNDS / "not_cry" / "music_and_speech").iterdir())[:2]]
    waveforms += [load_16k(next(need(SOUNDS / "cry" / "esc50_crying_baby").iterdir())), tone(1000, 2.5, RATE_HZ)]
    for waveform in waveforms:
        padded = pad_waveform(waveform)
        log_mel = tf.math.log(tf.abs(tf.signal.stft(padded, 400, 160, 512)) @ reference_mel + 0.001)
        expected = tf.signal.frame(log_mel, 96, 48, axis=-2).numpy()             # [n, 96, 64]
        ours = waveform_to_log_mel_patches(waveform)
        assert ours.shape == expected.shape and ours.dtype == np.float32
        assert np.abs(ours - expected).max() < 0.01


@pytest.mark.parametrize("n_samples", [0, 1, 400, 15599, 15600, 15601, 23280, 23281, 48000])
def test_patch_count_follows_yamnet_padding(n_samples):
    """One patch for anything up to 0.975 s, then one more per started 0.48 s hop (features.pad_waveform)."""
    expected = 1 + -(-max(0, n_samples - 15600) // 7680)
    patches = waveform_to_log_mel_patches(np.zeros(n_samples, np.float32))
    assert patches.shape == (expected, 96, 64)


def test_stft_matches_the_waveform_model(waveform_model):
    """Framing, periodic Hann window, end padding to 512 and FFT against the float |STFT| tensor inside
    the waveform model: the strongest parity test. Measured: within 2.0e-7 of each clip's peak."""
    for waveform in speech_and_music_clips() + cry_clips()[::4] + [tone(1000, 0.975, RATE_HZ)]:
        _, magnitude, _ = waveform_model.run(waveform)
        ours = stft_magnitude(waveform)
        assert ours.shape == magnitude.shape == (96, 257)
        assert np.abs(ours - magnitude).max() <= 1e-5 * magnitude.max() + 1e-9


def test_log_mel_patch_matches_the_waveform_model(waveform_model):
    """The log-mel patch itself against the waveform model's. Its mel matrix has int8 weights (step 1/127)
    and its matmul quantises |STFT| to int8 per frame, so near-empty bands differ a lot in log terms; in
    linear terms every band is within 4.2% of its frame's peak (measured), asserted at 10%."""
    for waveform in speech_and_music_clips() + cry_clips():
        _, _, log_mel = waveform_model.run(waveform)
        ours = waveform_to_log_mel_patches(waveform)[0]                            # [96, 64]
        linear, reference = np.exp(ours) - P.log_offset, np.exp(log_mel) - P.log_offset
        peak = np.maximum(linear.max(axis=1, keepdims=True), 1e-6)
        assert (np.abs(linear - reference) / peak).max() < 0.1


def test_scores_match_the_waveform_model(yamnet, waveform_model):
    """Our features + the int8 spectra model against the waveform model (float activations), per clip.

    Measured on these clips: speech and music correlation of the 521 scores 0.815-1.000 (median 0.996), the
    same heard_label on all 10. Cries correlate 0.20-1.00 (median 0.80): the two models' quantisation, not
    the features, since the int8 model fed the waveform model's own log-mel agrees with itself fed ours at
    median 0.998 (one clip 0.55: the int8 network turns a few % of mel difference into other scores).
    """
    correlations = []
    for waveform in speech_and_music_clips():
        reference, _, _ = waveform_model.run(waveform)
        scores = yamnet.patches(waveform_to_log_mel_patches(waveform))[0][0]
        correlations.append(np.corrcoef(scores, reference)[0, 1])
        assert heard_label(scores) == heard_label(reference)
    assert np.median(correlations) > 0.98 and min(correlations) > 0.7
    same_model, other_model = [], []
    for waveform in cry_clips():
        reference, _, log_mel = waveform_model.run(waveform)
        scores = yamnet.patches(waveform_to_log_mel_patches(waveform))[0][0]
        same_model.append(np.corrcoef(scores, yamnet.patches(log_mel[None])[0][0])[0, 1])
        other_model.append(np.corrcoef(scores, reference)[0, 1])
    assert np.median(same_model) > 0.95
    assert np.median(other_model) > 0.6


# ---- known signals ----

def test_digital_silence_is_log_of_the_offset_everywhere():
    patches = waveform_to_log_mel_patches(np.zeros(3 * RATE_HZ, np.float32))
    assert patches.shape == (6, 96, 64)
    assert (patches == np.log(np.float32(P.log_offset))).all()


def test_a_1khz_tone_lights_the_band_centred_nearest_1khz():
    edges_mel = np.linspace(1127 * np.log1p(125 / 700), 1127 * np.log1p(7500 / 700), 66)
    centres_hz = 700 * np.expm1(edges_mel[1:-1] / 1127)                       # [64]
    band = int(np.argmin(np.abs(centres_hz - 1000)))
    level = log_mel_spectrogram(tone(1000, 1.0, RATE_HZ)).mean(axis=0)         # [64]
    assert int(np.argmax(level)) == band
    far = np.r_[level[:band - 3], level[band + 4:]]
    assert level[band] - far.max() > 4  # e^4: over 50 times the energy of any band 3 or more away


def test_noise_tone_and_silence_are_not_a_baby_cry_but_a_real_cry_is(yamnet):
    """Measured: white noise, a 1 kHz tone and zeros score 0 in every patch; this ESC-50 cry 0.96 in its best."""
    rng = np.random.default_rng(0)
    for waveform in [(0.1 * rng.standard_normal(3 * RATE_HZ)).astype(np.float32), tone(1000, 3.0, RATE_HZ),
                     np.zeros(3 * RATE_HZ, np.float32)]:
        assert yamnet.waveform(waveform)[0][:, BABY_CRY].max() < 0.1
    cry = load_16k(need(SOUNDS / "cry" / "esc50_crying_baby" / "2-80482-A.ogg"))
    assert yamnet.waveform(cry)[0][:, BABY_CRY].max() > 0.8


def test_heard_labels_of_real_sounds(yamnet):
    cases = {"speech": SOUNDS / "not_cry" / "speech_digits" / "0_george_0.wav",
             "music": SOUNDS / "not_cry" / "music_and_speech" / "Hungarian_Dance_number_5_-_Allegro_in_F_sharp_minor"
                                                               "__string_orchestra_.hq.ogg",
             "crying": SOUNDS / "cry" / "esc50_crying_baby" / "2-80482-A.ogg"}
    for label, path in cases.items():
        scores, _ = yamnet.waveform(load_16k(need(path)))
        assert heard_label(scores.mean(axis=0)) == label, path
    assert heard_label(yamnet.waveform(np.zeros(RATE_HZ, np.float32))[0][0]) == "silence"
    assert yamnet.class_names[BABY_CRY] == "Baby cry, infant cry" and len(yamnet.class_names) == 521


def test_embedding_is_what_the_classifier_reads(yamnet):
    """Recompute the int8 classifier (weights [521, 1024], bias [521]) from the embedding we read: it must give
    the model's logits within half their int8 step (0.154), hence its scores within 0.045."""
    it = yamnet.interpreter
    tensors = it.get_tensor_details()
    weights, = [t for t in tensors if tuple(t["shape"]) == (521, 1024)]
    bias, = [t for t in tensors if tuple(t["shape"]) == (521,)]
    logits = [t for t in tensors if tuple(t["shape"]) == (1, 521) and t["dtype"] == np.int8][0]  # before sigmoid
    w = it.get_tensor(weights["index"]).astype(np.float32) * weights["quantization"][0]
    b = it.get_tensor(bias["index"]) * bias["quantization"][0]
    for waveform in cry_clips()[::5] + speech_and_music_clips()[::4]:
        scores, embeddings = yamnet.patches(waveform_to_log_mel_patches(waveform))
        assert embeddings.shape == (1, 1024) and embeddings.min() >= 0 and embeddings.max() > 0
        scale, zero_point = logits["quantization"]
        model_logits = (it.get_tensor(logits["index"])[0].astype(np.float32) - zero_point) * scale
        assert np.abs(embeddings[0] @ w.T + b - model_logits).max() <= scale / 2 + 1e-3
        assert np.abs(1 / (1 + np.exp(-(embeddings[0] @ w.T + b))) - scores[0]).max() < 0.045


# ---- model files ----

@pytest.fixture
def model_copy(tmp_path) -> Path:
    for name in ("yamnet_spectra_in.tflite", "yamnet_class_map.csv"):
        shutil.copyfile(need(MODELS / name), tmp_path / name)
    return tmp_path


def one_line_error(fn) -> str:
    with pytest.raises(UserError) as caught:
        fn()
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_missing_truncated_or_changed_model_file_says_how_to_get_it(model_copy):
    model = model_copy / YAMNET_MODEL.name
    assert yamnet_files(model_copy) == (model, model_copy / YAMNET_CLASS_MAP.name)
    data = model.read_bytes()
    model.write_bytes(data[:1000])
    message = one_line_error(lambda: yamnet_files(model_copy))
    assert str(model) in message and "truncated: 1000 of 4047424 bytes" in message
    model.write_bytes(data[:100] + bytes([data[100] ^ 1]) + data[101:])
    os.utime(model, ns=(1, 1))  # a new version even where the clock is coarse: the cached check must not hide it
    message = one_line_error(lambda: YamnetModel.from_folder(model_copy))
    assert "wrong SHA-256" in message and "python prepare_data.py --models-source DIR" in message
    (model_copy / YAMNET_CLASS_MAP.name).unlink()
    model.write_bytes(data)
    message = one_line_error(lambda: yamnet_files(model_copy))
    assert YAMNET_CLASS_MAP.name in message and "missing" in message and "prepare_data.py" in message


def run_prepare_data(*args) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "prepare_data.py", *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert "Traceback" not in done.stderr + done.stdout, done.stderr[-3000:]
    return done


def test_prepare_data_refuses_a_bad_models_source_in_one_line(model_copy, tmp_path):
    (model_copy / YAMNET_MODEL.name).write_bytes(b"\0" * 10)
    (tmp_path / "corpus").mkdir()
    done = run_prepare_data("--source", tmp_path / "corpus", "--models-source", model_copy,
                            "--models-dir", tmp_path / "pretrained", "--out-dir", tmp_path / "audio")
    assert done.returncode == 2
    assert done.stderr.strip().startswith("error:") and done.stderr.strip().count("\n") == 0
    assert "truncated: 10 of 4047424 bytes" in done.stderr and YAMNET_MODEL.name in done.stderr
    assert not (tmp_path / "pretrained").exists() or not any((tmp_path / "pretrained").iterdir())


def test_prepare_data_copies_a_good_models_source(tmp_path):
    (tmp_path / "corpus").mkdir()
    done = run_prepare_data("--source", tmp_path / "corpus", "--models-source", need(MODELS),
                            "--models-dir", tmp_path / "pretrained", "--out-dir", tmp_path / "audio")
    assert done.returncode == 2 and "no Donate-a-Cry recordings" in done.stderr  # the models come first
    assert all(file_problem(tmp_path / "pretrained" / f.name, f) is None for f in YAMNET_FILES)


# ---- download ----

@pytest.fixture
def server(tmp_path):
    """An HTTP server on 127.0.0.1 serving tmp_path/served/; yields (folder, base URL)."""
    served = tmp_path / "served"
    served.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *args: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield served, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


def local(pinned, base_url: str):
    return dataclasses.replace(pinned, url=f"{base_url}/{pinned.name}")


def test_download_verifies_and_shows_progress(server, tmp_path, capsys):
    served, base_url = server
    for pinned in YAMNET_FILES:
        shutil.copyfile(need(MODELS / pinned.name), served / pinned.name)
    paths = fetch_pretrained(tmp_path / "pretrained", files=tuple(local(f, base_url) for f in YAMNET_FILES))
    assert [p.name for p in paths] == [f.name for f in YAMNET_FILES]
    assert all(file_problem(p, f) is None for p, f in zip(paths, YAMNET_FILES))
    err = capsys.readouterr().err
    assert "yamnet_spectra_in.tflite: 100%" in err and "4.05M/4.05M" in err  # tqdm's bar, sized from Content-Length
    gone = tuple(local(f, base_url + "/gone") for f in YAMNET_FILES)  # a download now would fail
    assert fetch_pretrained(tmp_path / "pretrained", files=gone) == paths
    assert capsys.readouterr().out.count("already there") == len(YAMNET_FILES)


def test_download_of_wrong_bytes_leaves_nothing(server, tmp_path):
    served, base_url = server
    good = need(MODELS / YAMNET_CLASS_MAP.name).read_bytes()
    (served / YAMNET_CLASS_MAP.name).write_bytes(good.replace(b"Baby cry", b"Baby cr_"))
    dest = tmp_path / "pretrained" / YAMNET_CLASS_MAP.name
    message = one_line_error(lambda: download(local(YAMNET_CLASS_MAP, base_url), dest))
    assert "not saved" in message and "SHA-256" in message
    assert not dest.exists() and not any(dest.parent.iterdir())                  # no temporary file either


def test_failed_download_points_to_models_source(server, tmp_path):
    _, base_url = server
    message = one_line_error(lambda: download(local(YAMNET_MODEL, base_url), tmp_path / YAMNET_MODEL.name))
    assert "download failed" in message and "404" in message and "--models-source DIR" in message
    assert not (tmp_path / YAMNET_MODEL.name).exists()
