"""Live prediction: buffering and decisions with synthetic callbacks, the script on files, and the
script on a real input device (the virtual microphone playing a corpus recording)."""
from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
import types
from pathlib import Path

import numpy as np
from conftest import save_probe_model
import pytest
import soundfile as sf

from cry import stream as streams
from cry.audio import resample, rms_dbfs
from cry.decision import Decision, ReasonRule, State, WindowScores, WindowState, reason_shares
from cry.files import UserError
from cry.live_path import Collect, deliver
from cry.monitor import sources
from cry.params import CLASSES, LiveSettings, Settings
from cry.reason.windows import load_audio

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = [sys.executable, str(ROOT / "real_time_prediction.py"), "--detector", "none"]  # the probe models decide
# Live vs offline probabilities of the same window may differ by this much. Measured: 0.005
# (16-bit samples in PulseAudio, resampling per window instead of per file). For scale, with
# the probe model below: windows of one recording differ by up to ~0.75, and the same windows
# misplaced by 10 ms by ~0.09. (If PulseAudio has to resample, 8k -> 16k -> 44.1k: ~0.04.)
TOLERANCE = 0.02


def flags(overflow=False):
    return types.SimpleNamespace(input_overflow=overflow)


# ---- ring buffer, decisions, episodes: no audio device, no model -----------------------------

def test_ring_buffer_keeps_newest_samples_across_odd_blocks_and_counts_overflows():
    stream = np.random.default_rng(0).standard_normal(5000).astype(np.float32)
    ring = streams.RingBuffer(1000, keep=True)
    window, end = ring.read_last(300)
    assert end == 0 and not window.any()  # before any sample: zeros
    position = 0
    for i, size in enumerate([1, 7, 333, 0, 999, 1000, 1500, 61, 1099]):  # odd, empty, > capacity
        block = stream[position:position + size, None]  # [frames, channels], like sounddevice
        ring.callback(block, size, None, flags(overflow=i % 3 == 0))
        position += size
        window, end = ring.read_last(700)
        assert end == position == ring.total
        expected = np.concatenate([np.zeros(max(0, 700 - position), np.float32),
                                   stream[max(0, position - 700):position]])
        np.testing.assert_array_equal(window, expected)
    assert ring.overflows == 3
    np.testing.assert_array_equal(np.concatenate(ring.kept)[-1000:], stream[position - 1000:position])


def scores(cry_probability, reasons=None, level=-20.0, heard="crying"):
    return WindowScores(level, cry_probability, heard, None if reasons is None else np.asarray(reasons, float))


def decision(cry_threshold=0.5, threshold=1.0, allowed=False, smooth=4) -> Decision:
    """The voting rule alone: an episode ends at the first window without a crying vote."""
    live = LiveSettings(smooth_windows=smooth, episode_end_seconds=0.0)
    return Decision(cry_threshold, live, ReasonRule(threshold, allowed))


def states_of(decision, *window_scores) -> list[State]:
    return [decision.update(s)[0].state for s in window_scores]


def test_decision_votes_over_heard_windows_and_claims_a_reason_only_when_allowed():
    hungry = np.array([0.05, 0.7, 0.05, 0.05, 0.05, 0.05, 0.05])
    decider = decision(threshold=0.6, allowed=True)
    quiet, _ = decider.update(WindowScores(-70.0))  # the energy gate: no model call, no vote
    assert (quiet.state, quiet.heard, quiet.cry_probability) == (State.QUIET, "quiet", None)
    state, start = decider.update(scores(0.9, hungry))
    assert state.state == State.CRYING and state.reason == "hungry" and start.kind == "start"
    assert state.guesses[0] == ("hungry", pytest.approx(0.7 / 0.95, abs=1e-3)) and len(state.guesses) == 3
    # one window that is not a cry among cries does not end the crying (majority of 4, a tie stays crying)
    assert states_of(decider, scores(0.9, hungry), scores(0.1, heard="speech"), scores(0.1, heard="speech"),
                     scores(0.1, heard="speech")) == [State.CRYING, State.CRYING, State.CRYING, State.NOT_CRYING]
    assert decider.update(scores(0.1, heard="music"))[0].heard == "music"  # says what was heard
    # not allowed to claim (no held-out skill): the reason is not known, and no guesses are shown at all
    unsure, _ = decision(threshold=0.6, allowed=False, smooth=1).update(scores(0.9, hungry))
    assert (unsure.reason, unsure.guesses, unsure.reason_text) == (None, (), "reason not known")
    # allowed, a claim: said with how often such claims were right on babies it never heard
    sure, _ = Decision(0.5, LiveSettings(smooth_windows=1), ReasonRule(0.6, True, 0.72)).update(scores(0.9, hungry))
    assert sure.reason_text == "probably hungry (right 7 times in 10 for babies it never heard)"
    # allowed, but the share is below the threshold fitted on validation: uncertain too
    vague = np.array([0.2, 0.25, 0.15, 0.1, 0.1, 0.1, 0.1])
    vague_state, _ = decision(threshold=0.6, allowed=True, smooth=1).update(scores(0.9, vague))
    assert vague_state.reason is None and vague_state.reason_text == "reason uncertain" and vague_state.guesses
    # the threshold is strict: at it, not crying
    assert decision(smooth=1).update(scores(0.5, hungry))[0].state == State.NOT_CRYING


def test_silence_clears_the_votes_and_the_threshold_alone_claims_no_reason():
    """A cry, a long silence, then speech: the old crying votes must not call the speech a cry."""
    decider = decision()
    assert states_of(decider, *[scores(0.9)] * 4) == [State.CRYING] * 4
    assert states_of(decider, *[WindowScores(-80.0)] * 10) == [State.QUIET] * 10
    assert states_of(decider, scores(0.01, heard="speech")) == [State.NOT_CRYING]
    hungry = np.array([0.05, 0.7, 0.05, 0.05, 0.05, 0.05, 0.05])
    for rule, claimed in ((ReasonRule(0.3, allowed=False), None), (ReasonRule(0.6, allowed=True), "hungry")):
        state, _ = Decision(0.5, LiveSettings(smooth_windows=1, episode_end_seconds=0.0), rule).update(
            scores(0.9, hungry))
        assert state.reason == claimed


def test_an_output_that_fails_is_dropped_and_the_others_go_on(capsys):
    class Broken:
        def on_window(self, state):
            raise BrokenPipeError("the pipe closed")

    kept, collect = Broken(), Collect()
    outputs = [kept, collect]
    state = WindowState(1000.0, 0.0, State.QUIET, -80.0, "quiet", None, None)
    deliver(outputs, "on_window", state)
    deliver(outputs, "on_window", state)
    assert outputs == [collect] and len(collect.states) == 2
    assert capsys.readouterr().err.count("Broken stopped (BrokenPipeError") == 1


def test_episodes_start_and_end_with_the_reason_over_the_episode():
    """The episode's reason is the rule's claim on the mean shares of all its crying windows."""
    decider = decision(threshold=0.5, allowed=True, smooth=1)
    hungry, tired = np.eye(7)[1] * 0.6 + 0.4 / 7, np.eye(7)[3] * 0.9 + 0.1 / 7
    assert decider.update(WindowScores(-80.0), 0.0, 1000.0)[1] is None
    _, start = decider.update(scores(0.9, hungry), 1.0, 1001.0)
    assert (start.kind, start.stream_start_seconds, start.end) == ("start", 1.0, None)
    for t in (1.5, 2.0, 2.5):
        assert decider.update(scores(0.9, tired), t, 1000.0 + t)[1] is None
    _, end = decider.update(scores(0.1, heard="speech"), 3.0, 1003.0)
    # the episode ends at its last crying window (2.5 s), said at the first window without crying
    assert (end.kind, end.reason, end.duration_seconds, end.start, end.end, end.said_stream_seconds,
            decider.episodes) == ("end", "tired", 1.5, 1001.0, 1002.5, 3.0, 1)
    mean_shares = np.mean([reason_shares(hungry)[0]] + [reason_shares(tired)[0]] * 3, axis=0)  # not display guesses
    assert end.guesses[0] == ("tired", round(float(mean_shares[3]), 3))
    assert decider.close(1004.0, 4.0) is None  # nothing open
    closed = decision(threshold=0.5, allowed=False, smooth=1)
    closed.update(scores(0.9, hungry), 5.0, 1005.0)
    last = closed.close(1009.0, 9.0)  # listening ended mid-cry: the episode ends at its last crying window
    assert (last.kind, last.duration_seconds, last.reason, last.guesses, last.reason_text) == (
        "end", 0.0, None, (), "reason not known")


class Loud:
    """A scorer that hears anything above -40 dBFS as a cry (the decision rule is what is tested)."""

    def __init__(self, live: LiveSettings):
        self.live, self.cry_threshold = live, 0.5

    def __call__(self, window, rate, end=None, cache=None):
        level = rms_dbfs(window)
        return WindowScores(level) if level < -60 else WindowScores(level, 0.9 if level > -40 else 0.1, "noise")


def test_a_cry_with_pauses_is_one_episode_and_cries_a_minute_apart_are_two():
    """Through the live path with the shipped episode rules: a cry of 1 s bursts with 3 s pauses
    of silence between them is one episode, and two such cries 60 s apart are two; ending an
    episode at the first window without crying would make one per burst."""
    from cry.live_path import LivePath, analyse

    rate = 8000
    burst = np.random.default_rng(2).uniform(-0.5, 0.5, rate).astype(np.float32)
    cry = np.concatenate([np.concatenate([burst, np.zeros(3 * rate, np.float32)]) for _ in range(6)])
    audio = np.concatenate([np.zeros(2 * rate, np.float32), cry, np.zeros(60 * rate, np.float32), cry])
    shipped = LiveSettings()
    events = analyse(audio, rate, LivePath(Loud(shipped))).events
    assert [e.kind for e in events] == ["start", "end", "start", "end"]
    first_end = events[1]
    # from the first window that holds the first burst (2-3 s) to the last that holds the last (22-23 s)
    assert first_end.stream_start_seconds == pytest.approx(3.0) and 20.0 <= first_end.duration_seconds <= 23.0
    eager = analyse(audio, rate, LivePath(Loud(shipped.replace(episode_end_seconds=0.0)))).events
    assert sum(e.kind == "start" for e in eager) >= 6


def test_missing_portaudio_is_one_clear_line(monkeypatch):
    class NoPortAudio:  # what `import sounddevice` does when libportaudio2 is not installed
        def find_spec(self, name, path=None, target=None):
            if name == "sounddevice":
                raise OSError("PortAudio library not found")

    monkeypatch.delitem(sys.modules, "sounddevice", raising=False)
    monkeypatch.setattr(sys, "meta_path", [NoPortAudio(), *sys.meta_path])
    with pytest.raises(UserError, match="install it .*libportaudio2"):
        sources.import_sounddevice()


class Stalled:
    """An input stream that is still 'active' but delivers nothing, like an unplugged USB microphone."""
    samplerate, active, fast, ring = 8000, True, False, streams.RingBuffer(8000)


def test_listen_classifies_every_hop_of_a_file_and_notices_a_stalled_device(monkeypatch, tmp_path):
    rate, audio = 8000, np.random.default_rng(1).uniform(-0.5, 0.5, 8000 * 5).astype(np.float32)
    sf.write(tmp_path / "x.wav", audio, rate, subtype="FLOAT")
    source = streams.file_source(tmp_path / "x.wav", fast=True)
    seen = []
    why = streams.listen(source, lambda end, w: seen.append((end, w.copy())), 3.0, 0.5)
    assert why == "ended" and [end for end, _ in seen] == [24000, 28000, 32000, 36000, 40000]
    for end, window in seen:  # the window is exactly the file's samples, whatever the block size
        np.testing.assert_array_equal(window, audio[end - 24000:end])
    monkeypatch.setattr(streams, "STALL_SECONDS", 0.2)
    assert streams.listen(Stalled(), None, 3.0, 0.5) == "stalled"


# ---- the script, with a probe model ---------------------------------------------------------

@pytest.fixture(scope="module")
def probe_model(tmp_path_factory):
    """A small random model whose output moves a lot with its input image, so any difference
    between the live and offline pipelines shows in the probabilities. Seconds to build."""
    import keras
    from keras import layers

    from cry.reason.model_files import load_model

    keras.utils.set_random_seed(0)
    inputs = keras.Input((128, 128, 3))
    x = layers.Flatten()(layers.AveragePooling2D(8)(layers.Rescaling(1 / 127.5, offset=-1)(inputs)))
    outputs = layers.Dense(len(CLASSES), activation="softmax",
                           kernel_initializer=keras.initializers.RandomNormal(stddev=0.3))(x)
    path = tmp_path_factory.mktemp("probe") / "probe.keras"
    save_probe_model(keras.Model(inputs, outputs), path)
    return path, load_model(path)[0]


def read_trace(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def offline_probabilities(model, audio: np.ndarray, ends: list[int], settings: Settings) -> np.ndarray:
    """The offline pipeline: window_to_image + model on windows of `audio` (model rate) ending at `ends`."""
    from cry.features import window_to_image
    from cry.reason.model import predict_probabilities

    n = settings.window_samples
    padded = np.concatenate([np.zeros(n, np.float32), audio, np.zeros(n, np.float32)])
    images = np.stack([window_to_image(padded[n + e - n:n + e], settings) for e in ends])
    return predict_probabilities(model, images)


def loud_recording(corpus: Path) -> Path:
    """A real cry, the loudest of a few (a quiet one would sit on the energy gate)."""
    files = sorted((corpus / "donateacry_corpus_cleaned_and_updated_data" / "hungry").glob("*.wav"))[:12]
    return max(files, key=lambda p: rms_dbfs(sf.read(p, dtype="float32")[0]))


def test_file_mode_matches_offline_and_refuses_a_broken_model(probe_model, corpus, tmp_path):
    path, model = probe_model
    wav, settings = loud_recording(corpus), Settings()
    done = subprocess.run([*SCRIPT, "--model", str(path), "--file", str(wav), "--fast", "--trace",
                           str(tmp_path / "trace.csv"), "--log", str(tmp_path / "log.csv")],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"wrote {tmp_path / 'log.csv'}" in done.stderr
    rows = [r for r in read_trace(tmp_path / "trace.csv") if r["cry_probability"] != ""]  # the model was asked
    rate = sf.info(wav).samplerate
    assert len(rows) >= 5
    heard = np.array([[float(r[c]) for c in CLASSES] for r in rows])
    ends = [round(float(r["stream_seconds"]) * settings.sample_rate_hz) for r in rows]
    offline = offline_probabilities(model, load_audio(wav, settings), ends, settings)
    # Same samples, only resampled per window instead of per file: differences are tiny.
    assert np.abs(heard - offline).max() < 0.01
    assert rate != settings.sample_rate_hz  # so the comparison covers the resampling

    (tmp_path / "probe.keras").write_bytes(path.read_bytes())  # a model without its JSON
    done = subprocess.run([*SCRIPT, "--model", str(tmp_path / "probe.keras"), "--file", str(wav)],
                          capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert done.returncode == 2 and done.stderr.strip().splitlines()[-1].startswith("error: ")
    assert "Traceback" not in done.stderr and "missing" in done.stderr

    for bad in (tmp_path / "no" / "such" / "folder.wav", tmp_path / "heard.mp3"):  # refused before listening
        done = subprocess.run([*SCRIPT, "--model", str(path), "--file", str(wav), "--save-audio", str(bad)],
                              capture_output=True, text=True, cwd=ROOT, timeout=60)
        assert done.returncode == 2 and str(bad) in done.stderr and "listening" not in done.stderr


# ---- the script on a real input device --------------------------------------------------------

def start_listening(args: list[str], env=None) -> subprocess.Popen:
    """Start the script and return once it says it is listening (the stream is running)."""
    proc = subprocess.Popen([*SCRIPT, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=ROOT, env=env)
    for line in proc.stderr:
        if line.startswith("listening"):
            return proc
    out, err = proc.communicate(timeout=10)
    pytest.fail(f"the script did not start listening (status {proc.returncode}):\n{err[-2000:]}")


def test_live_microphone_matches_offline_predictions_and_reports_silence(mic_feed, probe_model, corpus, tmp_path):
    """Digital silence, then a corpus cry, then silence again, through PulseAudio -> ALSA -> PortAudio."""
    from scipy.signal import correlate

    path, model = probe_model
    wav, settings = loud_recording(corpus), Settings()
    lead, seconds = 3.5, sf.info(wav).duration  # lead, and 4.5 s after: full windows of silence
    # Played at the sink's rate (VMIC_RATE, 44.1 kHz as the device's default rate: conftest), so
    # PulseAudio's own low-quality resampler stays out of the comparison; the copy stays in tmp_path.
    original, original_rate = sf.read(wav, dtype="float32", always_2d=True)
    feed, feed_rate = tmp_path / "feed.wav", int(os.environ.get("VMIC_RATE", 44100))
    sf.write(feed, resample(original.mean(axis=1), original_rate, feed_rate), feed_rate, subtype="FLOAT")
    trace, heard = tmp_path / "trace.csv", tmp_path / "heard.wav"
    proc = start_listening(["--model", str(path), "--duration", f"{lead + seconds + 4.5}", "--trace", str(trace),
                            "--save-audio", str(heard), "--log", str(tmp_path / "log.csv")])
    time.sleep(lead)
    mic_feed.play(feed)
    out, err = proc.communicate(timeout=lead + seconds + 30)
    assert proc.returncode == 0, err[-2000:]

    # Where did the cry land in what the script heard? Cross-correlate at the device rate.
    recorded, rate = sf.read(heard, dtype="float32")
    reference = resample(original.mean(axis=1), original_rate, rate)
    xc = correlate(recorded, reference, mode="valid", method="fft")  # recorded is longer
    lag = int(np.argmax(xc))
    segment = recorded[lag:lag + len(reference)]
    assert np.corrcoef(segment, reference)[0, 1] > 0.99, "the virtual microphone did not carry the recording"

    rows = read_trace(trace)
    assert len(rows) >= 20
    ends = np.array([round(float(r["stream_seconds"]) * rate) for r in rows])
    window = int(settings.window_seconds * rate)
    before = [r for r, e in zip(rows, ends) if e <= lag]  # nothing but the feed's digital silence
    after = [r for r, e in zip(rows, ends) if e - window >= lag + len(reference)]
    assert len(before) >= 1 and len(after) >= 1
    # below the quiet gate: no model asked (after the cry, the episode outlasts it: it ends after 15 s)
    assert all(r["heard"] == "quiet" and r["cry_probability"] == "" for r in before + after)
    assert all(r["state"] == "quiet" for r in before)
    assert sum(" quiet (" in line for line in out.splitlines()) >= len(before)

    # The live per-window probabilities equal the offline ones of the same recording, placed at the lag.
    heard_rows = [(r, e) for r, e in zip(rows, ends) if r["cry_probability"] != ""]  # the model was asked
    assert len(heard_rows) >= 8
    lag_model_rate = round(lag * settings.sample_rate_hz / rate)
    audio = np.concatenate([np.zeros(lag_model_rate, np.float32), load_audio(wav, settings)])
    offline = offline_probabilities(model, audio, [round(e * settings.sample_rate_hz / rate) for _, e in heard_rows],
                                    settings)
    heard = np.array([[float(r[c]) for c in CLASSES] for r, _ in heard_rows])
    difference = np.abs(heard - offline).max()
    assert difference < TOLERANCE, f"live and offline probabilities differ by up to {difference:.3f}"
    assert np.abs(heard - heard.mean(axis=0)).max() > 4 * TOLERANCE  # the comparison can tell windows apart


def test_live_says_a_vanished_sound_server_and_listens_again_when_it_is_back(probe_model, tmp_path):
    """The daemon behind the input device is stopped while listening, then started again: one
    warning, "not listening" on every window meanwhile, and listening again by itself."""
    from conftest import VMIC_SCRIPT, virtual_mic_or_skip

    virtual_mic_or_skip()
    env = dict(os.environ, VMIC_DIR=str(tmp_path / "vmic"), PULSE_SERVER=f"unix:{tmp_path}/vmic/pulse.sock")
    subprocess.run(["sh", str(VMIC_SCRIPT), "start"], env=env, check=True, timeout=30)
    try:
        proc = start_listening(["--model", str(probe_model[0]), "--duration", "60"], env=env)
        time.sleep(1.0)
    finally:
        subprocess.run(["sh", str(VMIC_SCRIPT), "stop"], env=env, timeout=30)  # our own daemon only
    try:
        time.sleep(3.0)
        subprocess.run(["sh", str(VMIC_SCRIPT), "start"], env=env, check=True, timeout=30)
        time.sleep(4.0)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        subprocess.run(["sh", str(VMIC_SCRIPT), "stop"], env=env, timeout=30)
    assert proc.returncode == 0, err[-2000:]
    assert err.count("warning: input device") == 1 and "the input device is gone" in err and "Traceback" not in err
    assert "back after" in err and "listening again" in err
    lines = [line.split(None, 3)[-1] for line in out.splitlines()]
    deaf = [line.startswith("NOT LISTENING: the input device is gone") for line in lines]
    assert sum(deaf) >= 4 and not deaf[-1]  # said every hop while lost, and no more once back


def test_no_input_device_is_one_clear_line(probe_model, tmp_path):
    env = dict(os.environ, PULSE_SERVER=f"unix:{tmp_path}/nothing.sock")  # no daemon, so no PulseAudio input
    count = subprocess.run([sys.executable, "-c", "import sounddevice as sd; print(sum(d['max_input_channels'] > 0 "
                            "for d in sd.query_devices()))"], capture_output=True, text=True, env=env, timeout=30)
    if count.stdout.strip() != "0":
        pytest.skip(f"this machine has input devices besides the virtual microphone ({count.stdout.strip()})")
    done = subprocess.run([*SCRIPT, "--model", str(probe_model[0]), "--duration", "1"],
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=60)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("error: no audio input device found")
