"""A parent's "not a cry" and "that was a cry": the head refitted at once, kept across a restart,
from the command line, the page's API and a real browser, with a real (small) detector."""
from __future__ import annotations

import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile as sf
from conftest import CORPUS_DATA, MODELS, ROOT, need, run_script

from cry.assemble import load_live_path
from cry.audio import decode
from cry.corpus import baby_id
from cry.decision import State
from cry.detect.feedback import HomeLearning, sample_path
from cry.live_path import play_clip, run
from cry.detect.marks import Marker, mark_file
from cry.stream import array_source


def crying(path, audio, rate) -> int:
    """Windows the live path calls crying when the clip is played on its own."""
    return sum(s.state == State.CRYING for s in play_clip(audio, rate, path).states)


@pytest.fixture(scope="module")
def cries(small_detector, trained_model):
    """Corpus cries of babies the small detector never heard that it calls crying: (path, audio, rate)."""
    detector, detector_file, trained = small_detector
    path = load_live_path(trained_model, detector_file, MODELS)
    found, babies = [], set(trained)
    for wav in sorted(need(CORPUS_DATA).rglob("*.wav"), reverse=True):
        if baby_id(wav) in babies:
            continue
        babies.add(baby_id(wav))
        audio, rate = decode(wav)
        if crying(path, audio, rate) >= 4:
            found.append((wav, audio, rate))
        if len(found) == 5:
            return found
    pytest.fail(f"the small detector calls only {len(found)} held-out cries crying")


def test_a_marked_clip_is_not_crying_next_time_and_after_a_restart_and_other_cries_still_are(
        small_detector, trained_model, cries, tmp_path):
    _, detector_file, _ = small_detector
    assert sample_path(detector_file).is_file()  # train_detector keeps a sample of what the head learnt
    path = load_live_path(trained_model, detector_file, MODELS)
    learning = HomeLearning(path.scorer.detector, detector_file, tmp_path / "feedback")
    (marked, audio, rate), others = cries[0], cries[1:]
    others_before = [crying(path, a, r) for _, a, r in others]

    result = mark_file(marked, "not_cry", path, learning)
    assert result.windows >= 4 and result.crying_before >= 4 and result.crying_after == 0, result
    assert crying(path, audio, rate) == 0  # the next time that sound comes, no crying
    others_after = [crying(path, a, r) for _, a, r in others]
    assert sum(a > 0 for a in others_after) >= len(others) - 1, (others_before, others_after)  # not deaf to cries
    for file in (learning.path, result.clip):
        assert stat.S_IMODE(os.stat(file).st_mode) == 0o600, file
    assert sf.info(result.clip).duration >= len(audio) / rate

    restarted = load_live_path(trained_model, detector_file, MODELS)
    assert crying(restarted, audio, rate) > 0  # a fresh detector, before the marks are applied
    HomeLearning(restarted.scorer.detector, detector_file, tmp_path / "feedback")
    assert crying(restarted, audio, rate) == 0


def test_the_page_marks_an_episode_and_the_last_minute(small_detector, trained_model, cries, tmp_path):
    """POST /api/feedback in process, on what a Marker heard of a stream with a cry in it."""
    from starlette.testclient import TestClient

    from cry.monitor.web_app import create_app
    from cry.monitor.web_state import WebOutput

    _, detector_file, _ = small_detector
    path = load_live_path(trained_model, detector_file, MODELS)
    learning = HomeLearning(path.scorer.detector, detector_file, tmp_path / "feedback")
    _, audio, rate = cries[1]
    stream = np.concatenate([np.zeros(rate, np.float32), audio, np.zeros(20 * rate, np.float32)])
    marker, source = Marker(learning, rate, path.live.window_seconds), array_source(stream, rate, "s", fast=True)
    source.ring.tap = marker.tap
    events = []

    class Events:
        def on_window(self, state):
            pass

        def on_episode(self, event):
            events.append(event)

        def close(self):
            pass

    run(source, path.session(), [marker, Events()])
    assert [e.kind for e in events] == ["start", "end"]
    with TestClient(create_app(WebOutput(), feedback=marker.mark_request), base_url="http://127.0.0.1",
                    headers={"Sec-Fetch-Site": "same-origin"}) as client:
        for body, status, said in ((b"{", 400, "label"), (b'{"label": "maybe", "seconds": 30}', 400, "label: one of"),
                                   (b'{"label": "cry", "seconds": "a lot"}', 400, "label"),
                                   (b'{"label": "not_cry", "episode_start": 12.5}', 409, "no such episode"),
                                   (b"x" * 2000, 413, "small JSON")):
            response = client.post("/api/feedback", content=body)
            assert response.status_code == status and said in response.json()["error"], (body, response.text)
        assert client.post("/api/feedback", content=b'{"label": "cry", "seconds": 30}',
                           headers={"Sec-Fetch-Site": "cross-site"}).status_code == 403
        answer = client.post("/api/feedback", json={"label": "not_cry", "episode_start": events[0].start}).json()
        assert answer["crying_before"] > 0 and answer["crying_after"] == 0 and answer["windows"] > 0, answer
        assert answer["clip"] and sf.info(answer["clip"]).duration > len(audio) / rate
        answer = client.post("/api/feedback", json={"label": "cry", "seconds": 60}).json()
        assert "learnt" in answer["text"] and answer["windows"] > 0, answer
    with TestClient(create_app(WebOutput()), base_url="http://127.0.0.1",
                    headers={"Sec-Fetch-Site": "same-origin"}) as client:
        response = client.post("/api/feedback", json={"label": "cry", "seconds": 60})
        assert response.status_code == 503 and "marking is off" in response.json()["error"]


def test_marking_from_the_command_line(small_detector, trained_model, cries, tmp_path):
    _, detector_file, _ = small_detector
    wav, _, _ = cries[2]
    common = ["real_time_prediction.py", "--model", trained_model, "--detector", detector_file,
              "--pretrained-dir", MODELS, "--feedback-dir", tmp_path / "fb"]
    done = run_script(*common, "--mark-not-cry", wav, ok=(0,))
    assert re.search(r"learnt \d+ windows as not a cry: [1-9]\d* of them were crying before, 0 now", done.stdout), \
        done.stdout
    trace = tmp_path / "trace.csv"
    run_script(*common, "--file", wav, "--fast", "--trace", trace, ok=(0,))
    assert "crying" not in [row.split(",")[2] for row in trace.read_text().splitlines()[1:]]
    for args, said in ((["--mark-cry", tmp_path / "missing.wav"], "missing.wav: no such file"),
                       (["--mark-cry", wav, "--feedback-dir", "none"], "cannot mark sounds: --feedback-dir none"),
                       (["--mark-cry", tmp_path / "trace.csv"], "trace.csv: ")):  # not audio: said after loading
        done = run_script(*common, *args, ok=(1, 2))
        errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and said in errors[0], done.stderr
    bare = tmp_path / "bare.json"  # a detector saved without its training sample: the monitor says so and listens
    shutil.copy(detector_file, bare)
    done = run_script(*common[:4], bare, "--pretrained-dir", MODELS, "--file", wav, "--fast", ok=(0,))
    assert "marking sounds is off: " in done.stderr and "training sample is missing" in done.stderr


def test_browser_not_a_cry_on_an_episode_then_the_same_cry_does_not_alarm(small_detector, trained_model, cries,
                                                                          tmp_path):
    """The script with --serve, playing (in real time) a cry, silence, and the same cry again; in
    Chromium the parent presses "Not a cry" on the first episode: the second is never an episode."""
    from playwright.sync_api import expect, sync_playwright
    from test_web import CHROMIUM, CHROMIUM_ARGS, free_port

    if not os.path.exists(CHROMIUM):
        (pytest.fail if os.environ.get("CI") else pytest.skip)("no Chromium (sh scripts/system-deps.sh test)")
    _, detector_file, _ = small_detector
    _, audio, rate = cries[3]
    gap = np.zeros(int(25 * rate), np.float32)
    sf.write(tmp_path / "night.wav", np.concatenate([gap[:rate], audio, gap, audio, gap[:6 * rate]]), rate)
    port = free_port()
    err = tmp_path / "stderr.txt"
    with open(err, "w") as f:
        proc = subprocess.Popen([sys.executable, str(ROOT / "real_time_prediction.py"), "--model", str(trained_model),
                                 "--detector", str(detector_file), "--pretrained-dir", str(MODELS),
                                 "--feedback-dir", str(tmp_path / "fb"), "--file", str(tmp_path / "night.wav"),
                                 "--serve", f"127.0.0.1:{port}", "--history", str(tmp_path / "h.sqlite"),
                                 "--log", str(tmp_path / "episodes.csv")],
                                cwd=ROOT, stdout=subprocess.DEVNULL, stderr=f, text=True)
    try:
        deadline = time.monotonic() + 60
        while "listening" not in err.read_text():
            assert proc.poll() is None and time.monotonic() < deadline, err.read_text()
            time.sleep(0.05)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page()
            page.goto(f"http://127.0.0.1:{port}/")
            button = page.locator("#timeline li button.not-cry")
            expect(button).to_have_count(1, timeout=40_000)  # the first episode has ended
            button.click()
            expect(page.locator("#mark-status")).to_contain_text(re.compile(r"Learnt: learnt \d+ windows as not a "
                                                                            r"cry: \d+ of them were crying before, "
                                                                            r"0 now; the clip is kept in"))
            expect(page.locator("#timeline li .marked")).to_have_text("marked: not a cry")
            browser.close()
        assert proc.wait(90) == 0, err.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            proc.wait(30)
    starts = [line for line in (tmp_path / "episodes.csv").read_text().splitlines() if ",start," in line]
    assert len(starts) == 1, starts  # the same cry, played again after the mark: no episode
    assert list((tmp_path / "fb" / "clips").glob("*-not_cry.wav"))
    assert "feedback from the page: learnt" in err.read_text()


def test_the_marker_keeps_the_last_minutes_and_the_episodes_not_the_whole_night():
    """An hour of white noise is every window heard: the marker keeps the embeddings of the last
    AUDIO_SECONDS and of the crying windows (what "Not a cry" on an episode marks), so a night
    costs its episodes, not its hours."""
    from cry.decision import State, WindowScores, WindowState
    from cry.detect.marks import AUDIO_SECONDS

    marker = Marker(None, 16000, 3.0)
    hop, embedding = 0.5, np.ones(1024, np.float32)
    for k in range(int(3600 / hop)):
        t = k * hop
        crying = 60 <= t < 120  # a minute of crying, early in the hour
        scores = WindowScores(-30.0, 0.9 if crying else 0.1, "crying" if crying else "noise", embedding=embedding)
        marker.on_window(WindowState(t, t, State.CRYING if crying else State.NOT_CRYING, -30.0,
                                     scores.heard, scores.cry_probability, None, scores=scores))
    kept = len(marker.recent) + len(marker.crying)
    assert len(marker.crying) == 120 and len(marker.recent) <= AUDIO_SECONDS / hop + 1, kept
    assert [w[0] for w in marker.crying] == [60 + hop * i for i in range(120)]  # the episode, in order
