"""Shared fixtures: the real corpus copy beside the repository, made once per session into
audio, spectrograms and a short-trained model through the scripts; generated audio; the
virtual microphone."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CORPUS = Path(os.environ.get("CRY_CORPUS", ROOT.parent / "shared" / "donateacry-corpus"))
# The local copy of the pretrained models (no internet here): prepare_data.py takes it with --models-source.
PRETRAINED = Path(os.environ.get("CRY_PRETRAINED", ROOT.parent / "shared" / "models"))


SHARED = ROOT.parent / "shared"
MODELS, SOUNDS = PRETRAINED, SHARED / "sounds"
CORPUS_DATA = CORPUS / "donateacry_corpus_cleaned_and_updated_data"


def need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} not found (the shared corpus, models and sounds beside the repository)")
    return path


@pytest.fixture(scope="session")
def corpus() -> Path:
    """The local Donate-a-Cry copy; tests that need it skip, saying why, where it is absent."""
    if not (CORPUS / "donateacry_corpus_cleaned_and_updated_data").is_dir():
        pytest.skip(f"Donate-a-Cry corpus not found at {CORPUS} (set CRY_CORPUS)")
    return CORPUS


def run_script(*args, ok=None, timeout: float = 600) -> subprocess.CompletedProcess:
    """python <script> <args> from the repository root, as a user runs it; never a traceback,
    and with ok, an exit status among those."""
    done = subprocess.run([sys.executable, *map(str, args)], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)
    assert "Traceback" not in done.stderr + done.stdout, done.stderr[-3000:]
    if ok is not None:
        assert done.returncode in ok, done.stderr[-3000:]
    return done


@pytest.fixture(scope="session")
def corpus_audio(corpus, tmp_path_factory) -> Path:
    """The corpus's cleaned folder as prepare_data.py lays it out (<class>/*.wav, with silence clips),
    made once. The uploads are left out (--no-uploads) to keep the suite's trainings short; tests/test_uploads.py
    prepares real uploads of the copy through the same script."""
    audio = tmp_path_factory.mktemp("corpus") / "audio"
    run_script("prepare_data.py", "--source", corpus, "--out-dir", audio, "--models-source", PRETRAINED,
               "--models-dir", audio.parent / "pretrained", "--no-uploads", ok=(0,))
    return audio


@pytest.fixture(scope="session")
def spectrograms(corpus_audio) -> Path:
    """corpus_audio through preprocess_model.py: <class>/<recording>_w<k>.png and settings.json."""
    out = corpus_audio.parent / "spectrograms"
    run_script("preprocess_model.py", "--audio-dir", corpus_audio, "--out-dir", out, ok=(0,))
    return out


@pytest.fixture(scope="session")
def trained_model(spectrograms) -> Path:
    """models/m.keras (+ .json, _curves.png) trained by train_model.py for one epoch on spectrograms.
    Shared: copy it before changing it or anything beside it."""
    model = spectrograms.parent / "models" / "m.keras"
    run_script("train_model.py", "--detector", "none",
               "--data-dir", spectrograms, "--model", model, "--epochs", "1", ok=(0,))
    return model


@pytest.fixture(scope="session")
def fresh_model():
    """A freshly built (untrained) default model with the default settings; do not train it."""
    from cry.reason.model import build_model
    from cry.params import Settings

    return build_model(Settings())


@pytest.fixture(scope="session")
def small_detector(yamnet, tmp_path_factory):
    """A detector trained by train_detector on a small tree: 30 corpus cries (one per baby, the
    first babies in name order) against generated speech, music, noise and tones. Returns
    (detector, its file, the babies it was trained on). Shared: copy the file before changing it."""
    import soundfile as sf

    from cry.corpus import baby_id
    from cry.detect import synth
    from cry.detect import training as dt

    if not (shutil.which("espeak-ng") and shutil.which("sox")):
        pytest.skip("espeak-ng and sox are needed to generate not-crying sounds (scripts/system-deps.sh)")
    root, rate = tmp_path_factory.mktemp("detector") / "train", 16000
    babies = {}
    for path in sorted(need(CORPUS_DATA).rglob("*.wav")):
        babies.setdefault(baby_id(path), path)
    trained = sorted(babies)[:30]
    for path in (babies[b] for b in trained):
        (root / "cry" / "corpus").mkdir(parents=True, exist_ok=True)
        shutil.copy(path, root / "cry" / "corpus" / path.name)
    rng = np.random.default_rng(0)
    voices = ["en-us+m1", "en-us+f2", "fr-fr+f4", "de+m3", "es+Annie", "it+klatt", "hu+m7", "pl+f1"]
    negatives = [("speech", synth.speak("Good morning, did you sleep well tonight?", v, 50, 160)) for v in voices]
    negatives += [("music", synth.played(rng)) for _ in range(4)] + [("music", synth.music(rng)) for _ in range(3)]
    negatives += [("noise", synth.noise(k, 4 * rate, rng)) for k in ("white", "pink", "brown", "fan")]
    negatives += [("tones", synth.tone(rng)) for _ in range(4)]
    for i, (kind, audio) in enumerate(negatives):
        (root / "not_cry" / kind).mkdir(parents=True, exist_ok=True)
        sf.write(str(root / "not_cry" / kind / f"{kind}_{i}.wav"), synth.at_level(audio, -26.0), rate)
    out = root.parent / "cry_detector.json"
    detector = dt.train_detector([root], out, yamnet=yamnet)
    return detector, out, set(trained)


def save_probe_model(model, path: Path) -> Path:
    """Save a hand-made Keras model as train_model.py saves one: default settings, no calibration
    (one temperature of 1), reasons "uncertain" below a share of 0.5 and never claimed."""
    from cry.params import Settings
    from cry.reason.info import Calibration, ModelInfo
    from cry.reason.model_files import save_model

    save_model(model, ModelInfo("", "", Settings(), calibration=Calibration(two_level=False), uncertain_threshold=0.5),
               path)
    return path


def tone(freq_hz: float, seconds: float, rate: int, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (amplitude * np.sin(2 * np.pi * freq_hz * t)).astype(np.float32)


# ---- virtual microphone (scripts/virtual-mic.sh; recipe in /work/shared/docs/virtual-microphone.md) ----
# A PulseAudio null sink whose monitor is the default input, so sounddevice records whatever
# paplay plays into it. Each pytest session gets its own daemon and directory (two sessions on
# one machine never stop each other's), unless VMIC_DIR names one that is already running.
# PULSE_SERVER must be set before PortAudio initialises (import sounddevice), hence at import time.
import threading  # noqa: E402

VMIC_SCRIPT = ROOT / "scripts" / "virtual-mic.sh"
VMIC_DIR = os.environ.setdefault("VMIC_DIR", f"/tmp/virtual-mic-{os.getpid()}")
os.environ.setdefault("PULSE_SERVER", f"unix:{VMIC_DIR}/pulse.sock")
os.environ.setdefault("VMIC_RATE", "44100")  # the rate PortAudio's pulse device opens at: no resampling in between
_vmic = {"started": False, "problem": None}


def pytest_configure(config):
    """Start the virtual microphone before test modules (and so sounddevice) are imported, and
    before pytest-xdist starts its workers, which inherit PULSE_SERVER and use this one."""
    if hasattr(config, "workerinput") or os.path.exists(f"{VMIC_DIR}/pid"):
        return  # a worker, or started by CI or the user: use it, leave it running
    if not (shutil.which("pulseaudio") and shutil.which("paplay")):
        _vmic["problem"] = "pulseaudio/paplay not installed (sh scripts/system-deps.sh test installs them)"
        return
    done = subprocess.run(["sh", str(VMIC_SCRIPT), "start"], capture_output=True, text=True)
    if done.returncode:
        _vmic["problem"] = f"virtual-mic.sh start failed: {(done.stderr or done.stdout).strip()[-300:]}"
    _vmic["started"] = True  # stop also cleans up after a failed start


def pytest_unconfigure(config):
    if _vmic["started"]:
        subprocess.run(["sh", str(VMIC_SCRIPT), "stop"], check=False)


class MicFeed:
    """Plays WAV files into the virtual microphone (real time, in the background)."""

    def __init__(self):
        self._stop = threading.Event()
        self._threads, self._procs = [], []

    def play(self, wav, loop: bool = False) -> None:
        def run():
            while not self._stop.is_set():
                p = subprocess.Popen(["paplay", "-d", "mic_feed", str(wav)])
                self._procs.append(p)
                p.wait()
                if not loop:
                    break
        t = threading.Thread(target=run, daemon=True)
        t.start()
        self._threads.append(t)

    def stop(self) -> None:
        """Stop only the paplay processes this feed started."""
        self._stop.set()
        for p in self._procs:
            if p.poll() is None:
                p.terminate()
                p.wait(5)
        for t in self._threads:
            t.join(5)


def virtual_mic_or_skip() -> None:
    """Skip (saying why) when no virtual microphone could be made; on CI (CI set) that is a failure."""
    problem = _vmic["problem"] or (None if os.path.exists(f"{VMIC_DIR}/pid") else "virtual microphone not running")
    if problem:
        (pytest.fail if os.environ.get("CI") else pytest.skip)(f"no virtual microphone: {problem}")


def pytest_collection_modifyitems(config, items):
    """Under pytest-xdist (make test: -n auto --dist loadgroup) a module's tests run on one worker
    (its module fixtures, a Ray cluster or generated recordings, are made once), and the tests that
    play into the one shared virtual microphone run on one worker, one after another."""
    for item in items:
        shared_microphone = "mic_feed" in getattr(item, "fixturenames", ())
        item.add_marker(pytest.mark.xdist_group("virtual_microphone" if shared_microphone else item.module.__name__))


@pytest.fixture
def mic_feed():
    virtual_mic_or_skip()
    feed = MicFeed()
    yield feed
    feed.stop()


pytest_plugins = ["robustness_summary"]  # prints the robustness figure (tests/robustness_summary.py)


# ---- a small crying detector, trained once ----------------------------------------------------

@pytest.fixture(scope="session")
def yamnet():
    from cry.yamnet import YamnetModel

    return YamnetModel.from_folder(need(MODELS))


