"""The core every wing shares: one audio decoder with one policy, no work at import time, the live
settings owning the live path, and fallbacks that are said."""
from __future__ import annotations

import io
import json
import struct
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
from bombs import flac_claiming, float_wav, vorbis
from conftest import CORPUS, ROOT, save_probe_model, tone

from cry.audio import BLOCK_SAMPLES, AudioBudget, AudioError, OverBudget, decode, open_audio
from cry.files import UserError
from cry.live_path import LivePath, Scorer
from cry.params import LiveSettings, Settings


def wav(audio: np.ndarray, rate: int, subtype: str = "PCM_16") -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, audio, rate, subtype=subtype, format="WAV")
    return buffer.getvalue()


def test_a_file_and_its_bytes_decode_alike_mixed_to_the_mean_of_the_channels(tmp_path):
    stereo = np.stack([tone(440, 1.0, 8000, 0.5), tone(660, 1.0, 8000, 0.25)], axis=1)
    (tmp_path / "a.wav").write_bytes(wav(stereo, 8000, "FLOAT"))
    from_file, rate = decode(tmp_path / "a.wav")
    from_bytes, _ = decode(wav(stereo, 8000, "FLOAT"))
    assert rate == 8000 and from_file.dtype == np.float32 and from_file.ndim == 1
    np.testing.assert_array_equal(from_file, from_bytes)
    np.testing.assert_allclose(from_file, stereo.mean(axis=1), atol=1e-7)


def test_nan_and_infinity_are_refused_by_every_reader(tmp_path):
    for bad in (np.nan, np.inf):
        audio = tone(440, 1.0, 8000)
        audio[100] = bad
        (tmp_path / "bad.wav").write_bytes(wav(audio, 8000, "FLOAT"))
        for source in (tmp_path / "bad.wav", (tmp_path / "bad.wav").read_bytes()):
            with pytest.raises(AudioError, match="NaN or infinite"):
                decode(source)


def test_phone_recordings_decode_through_ffmpeg():
    """The corpus's original uploads: AMR-NB in 3GP (Android) and IMA ADPCM in CAF (iOS), which
    libsndfile cannot read."""
    buckets = [CORPUS / "donateacry-android-upload-bucket", CORPUS / "donateacry-ios-upload-bucket"]
    if not all(b.is_dir() for b in buckets):
        pytest.skip(f"the original uploads are not in {CORPUS}")
    for bucket, suffix, rate in zip(buckets, (".3gp", ".caf"), (8000, 16000)):
        for path in sorted(bucket.glob(f"*{suffix}"))[:5]:  # some uploads are nearly silent: the loudest
            audio, got_rate = decode(path)
            with open_audio(path) as reader:
                frames = reader.info.frames
            assert got_rate == rate and abs(len(audio) - frames) <= 0.01 * frames and 2 * rate < len(audio)
            assert np.abs(audio).max() < 2.0  # float decoders (AMR) may overshoot full scale a little
        assert max(np.abs(decode(p)[0]).max() for p in sorted(bucket.glob(f"*{suffix}"))[:5]) > 0.3


def header_claiming(channels: int, rate: int, data_bytes: int) -> bytes:
    """A WAV header (16-bit PCM) that claims the given channels, rate and data length."""
    fmt = struct.pack("<HHIIHH", 1, channels, rate, rate * channels * 2, channels * 2, 16)
    return (b"RIFF" + struct.pack("<I", 36 + data_bytes) + b"WAVEfmt " + struct.pack("<I", 16) + fmt
            + b"data" + struct.pack("<I", data_bytes))


def test_a_header_that_claims_too_much_is_refused_before_decoding():
    many = header_claiming(200, 48000, 200 * 2 * 4800) + bytes(200 * 2 * 4800)  # 0.1 s of 200 channels
    with pytest.raises(AudioError, match="200 channels: at most 64"):
        decode(many)
    fast = header_claiming(1, 10_000_000, 2 * 10_000) + bytes(2 * 10_000)
    with pytest.raises(AudioError, match="at most 384000 Hz"):
        decode(fast)
    long = wav(np.zeros(8000 * 20, np.float32), 8000)
    with pytest.raises(AudioError, match="20 s of audio: at most 10 s"):
        decode(long, AudioBudget(max_seconds=10))
    assert len(decode(long)[0]) == 8000 * 20  # without a budget on the length, it is all read


def test_bombs_are_refused_from_their_headers_and_a_silent_header_is_counted():
    """The probe's bombs (issue 21), small: refused when opened, before a sample is decoded; a
    FLAC that does not say its length (written as a stream) is read through FFmpeg and counted
    as it comes."""
    for data, words in ((vorbis(255), "255 channels: at most 64"),
                        (flac_claiming(655_350, 2, 299), "655350 Hz: at most 384000 Hz"),
                        (flac_claiming(48_000, 1, 36_000), "36000 s of audio: at most 300 s")):
        with pytest.raises(OverBudget, match=words):
            open_audio(data, AudioBudget(max_seconds=300))
    many = AudioBudget(max_seconds=300, max_samples=300 * 48_000 * 2)
    with pytest.raises(OverBudget, match="8 channels at 96000 Hz for 299 s: at most 28.8 million samples"):
        open_audio(flac_claiming(96_000, 8, 299), many)
    silent = flac_claiming(8000, 1, 0, real_seconds=3.0)
    with open_audio(silent) as reader:
        assert reader.info.frames is None  # libsndfile cannot read it: FFmpeg does, without a length
    assert len(decode(silent)[0]) == 3 * 8000
    with pytest.raises(OverBudget, match="more than the limit of 1 s of audio at 8000 Hz"):
        decode(silent, AudioBudget(max_seconds=1))


def test_samples_beyond_any_full_scale_are_refused():
    """A float WAV of 3e38 (finite, but it overflows resampling into infinities): refused with a
    reason; a float file a little beyond full scale is audio."""
    with pytest.raises(AudioError, match=r"samples far beyond full scale \(peak 3e\+38"):
        decode(float_wav(3e38))
    audio, _ = decode(float_wav(2.0))
    assert audio.max() == 2.0


def test_blocks_are_mono_and_bounded_whatever_the_channels():
    eight = np.tile(tone(300, 2.0, 48000)[:, None], (1, 8))
    with open_audio(wav(eight, 48000)) as reader:
        blocks = list(reader.blocks())
        assert all(b.ndim == 1 and len(b) * reader.info.channels <= BLOCK_SAMPLES for b in blocks)
    with open_audio(wav(eight, 48000)) as reader:
        small = list(reader.blocks(0.02))
    assert {len(b) for b in small[:-1]} == {960} and sum(map(len, small)) == 2 * 48000


def test_nothing_changes_when_the_package_is_imported():
    """No work at import time: importing every module leaves the environment, the umask and
    matplotlib's backend as they were, and loads no TensorFlow (the libraries the package imports
    are imported first: scikit-learn, for one, sets environment variables of its own)."""
    code = """
import json, os, pkgutil, importlib, sys
import librosa, matplotlib, numpy, PIL, scipy, sklearn, soundfile, soxr, tqdm
import cry

def umask():
    return next(line for line in open("/proc/self/status") if line.startswith("Umask:"))

def state():  # the backend as set, without resolving it (reading rcParams["backend"] would import pyplot)
    return dict(os.environ), umask(), dict.__getitem__(matplotlib.rcParams, "backend")

before = state()
for info in pkgutil.walk_packages(cry.__path__, "cry."):
    importlib.import_module(info.name)
after = state()
print(json.dumps({"same": before == after, "tensorflow": "tensorflow" in sys.modules,
                  "pyplot": "matplotlib.pyplot" in sys.modules}))
"""
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"same": True, "tensorflow": False, "pyplot": False}


class Predictor:
    """A reason model that records what it was given."""

    silence_threshold = 0.5

    def __init__(self, settings: Settings):
        self.settings, self.seen = settings, []

    def __call__(self, window):
        self.seen.append(window)
        return np.full(7, 1 / 7)


class Loud:
    """A detector for which anything heard is a cry."""

    threshold, band_hz = 0.5, None

    def judge(self, window, rate, end=None, cache=None):
        from cry.detect.detector import Judged

        return Judged(0.9, "crying", np.zeros(1024, np.float32), gated=False)


def test_the_reason_model_judges_the_newest_part_of_the_live_window():
    """With --set window_seconds=2 the reason model gets the newest 2 s of the detector's 3 s window,
    at its own rate; a reason window longer than the live one is refused in one line."""
    short = Predictor(Settings(window_seconds=2.0))
    scorer = Scorer(short, LiveSettings(), Loud())
    window = np.concatenate([np.zeros(8000), tone(500, 2.0, 8000)])  # 3 s at 8 kHz: silence, then a tone
    scores = scorer(window, 8000)
    assert scores.cry_probability == 0.9 and len(short.seen[0]) == short.settings.window_samples
    assert np.sqrt(np.mean(short.seen[0][:1000] ** 2)) > 0.1  # the tone from its start: the silence is left out
    with pytest.raises(UserError, match="longer than the live path's"):
        Scorer(Predictor(Settings(window_seconds=4.0)), LiveSettings(window_seconds=3.0), Loud())
    assert LivePath(scorer).decision().live == LiveSettings()


def test_the_keras_fallback_is_said_once_with_its_reason(tmp_path, capsys):
    import keras

    from cry.reason.predictor import load_predictor

    inputs = keras.Input((128, 128, 3))
    model = keras.Model(inputs, keras.layers.Dense(7, activation="softmax")(keras.layers.Flatten()(
        keras.layers.AveragePooling2D(16)(inputs))))
    path = save_probe_model(model, tmp_path / "probe.keras")
    predictor = load_predictor(path)
    predictor(np.zeros(predictor.settings.window_samples, np.float32))
    err = capsys.readouterr().err
    assert err.count("note:") == 1 and "using the Keras model, no LiteRT export recorded" in err
