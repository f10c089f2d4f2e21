"""The corpus's original uploads: recognised when already in the cleaned folder, tags mapped (dk, lo, sc
to the detector only), screened by YAMNet, decoding errors one line each, a rerun does no work twice;
the download unpacks the upload buckets."""
from __future__ import annotations

import csv
import dataclasses
import http.server
import io
import shutil
import threading
import zipfile
from pathlib import Path

import pytest
import soundfile as sf
from conftest import PRETRAINED, run_script

from cry.corpus import CLEANED_FOLDER, UPLOAD_BUCKETS, class_of, download_corpus, recording_key, tag_of
from cry.files import UserError
from cry.uploads import IN_CLEANED, NOT_A_CRY, OTHER_CRY, UNUSABLE, USED, prepare_uploads, recording_stem

ANDROID, IOS = UPLOAD_BUCKETS
IN_CLEANED_HU = "af30880e-5f98-4dc0-b37a-be6b21fa0ba3-1431240037389-1.7-m-26-hu"   # also in the cleaned folder
# Real uploads not in the cleaned folder, and what the screen made of them on the developers' copy.
CRIES = {f"{ANDROID}/999bf14b-e417-4b44-b746-9253f81efe38-1430972820020-1.7-m-26-bu.3gp": "burping",
         f"{IOS}/F95D4BCE-2FB0-4A0C-A058-BFB0674539AF-1430897884-1.0-f-72-ti.caf": "tired",
         f"{ANDROID}/6bd76f21-f279-4c46-9453-58c95e7b2475-1430767960952-1.7-m-72-dk.3gp": "dont_know"}
NOT_CRIES = (f"{ANDROID}/c8fa621d-f18e-485d-9b23-c44fadb6e1d3-1430724173566-1.7-m-04-hu.3gp",   # no crying heard
             f"{ANDROID}/0c8f14a9-6999-485b-97a2-913c1cbf099c-1431028874252-1.7-m-26-sc.3gp")   # all quiet
BROKEN = {f"{ANDROID}/11111111-2222-3333-4444-555555555555-1430000000000-1.7-m-04-hu.3gp": b"",
          f"{IOS}/AAAAAAAA-BBBB-CCCC-DDDD-EEEEEEEEEEEE-1430000000-1.0-f-04-ti.caf": b"not audio at all\n" * 20}
UNKNOWN_TAG = f"{ANDROID}/99999999-2222-3333-4444-555555555555-1430000000001-1.7-m-04-xx.3gp"


def test_tags_names_and_keys():
    ios = "CF7F6316-019B-4B3C-9EE1-A62EB5F1D0EE-1426958010-1.0-96274EC9-59EB-49E3-96F3-A24D498FB7C3-f-26-ti.caf.caf"
    assert tag_of(ios) == "ti" and class_of(Path(ios)) == "tired" and recording_stem(ios).endswith("-f-26-ti")
    assert recording_stem("x-1.7-m-04-hu.3gp") == "x-1.7-m-04-hu"                     # '1.7' is no suffix
    assert class_of(Path(f"discomfort/{IN_CLEANED_HU[:-2]}ch.wav")) == "cold_hot"
    for tag in ("dk", "lo", "sc"):                                                      # cries, never a class
        assert class_of(Path(f"x/{IN_CLEANED_HU[:-2]}{tag}.3gp")) is None
    upload, cleaned = f"{IN_CLEANED_HU}.3gp", f"hungry/{IN_CLEANED_HU.upper()}.wav"
    assert recording_key(upload) == recording_key(cleaned) == (IN_CLEANED_HU[:36], "1431240037389")
    assert recording_key("1-187207-A.ogg") is None


@dataclasses.dataclass
class CountingScreen:
    """The real screen, counting the recordings it was asked about."""

    screen: object
    calls: int = 0

    @property
    def id(self) -> str:
        return self.screen.id

    def __call__(self, audio, rate):
        self.calls += 1
        return self.screen(audio, rate)


@pytest.fixture(scope="module")
def screen():
    from cry.detect.screen import CryScreen
    from cry.yamnet import YamnetModel

    if not PRETRAINED.is_dir():
        pytest.skip(f"{PRETRAINED} not found (the shared models beside the repository)")
    return CountingScreen(CryScreen(YamnetModel.from_folder(PRETRAINED)))


@pytest.fixture()
def small_corpus(corpus, tmp_path) -> Path:
    """A repository copy with one cleaned recording and eight uploads: the cleaned one's own upload,
    three cries, two non-cries, an empty and a text file, and an unknown tag."""
    root = tmp_path / "corpus"
    cleaned = root / CLEANED_FOLDER / "hungry"
    cleaned.mkdir(parents=True)
    shutil.copy(corpus / CLEANED_FOLDER / "hungry" / f"{IN_CLEANED_HU}.wav", cleaned)
    for name in (f"{ANDROID}/{IN_CLEANED_HU}.3gp", *CRIES, *NOT_CRIES):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(corpus / name, root / name)
    for name, data in BROKEN.items():
        (root / name).write_bytes(data)
    shutil.copy(root / NOT_CRIES[0], root / UNKNOWN_TAG)
    return root


def rows_of(result) -> dict[str, object]:
    return {r.upload: r for r in result.rows}


def test_every_upload_is_used_or_listed_and_a_rerun_does_no_work_twice(small_corpus, screen, tmp_path):
    out, other = tmp_path / "audio", tmp_path / "other"
    buckets = [small_corpus / b for b in UPLOAD_BUCKETS]
    screen.calls = 0
    result = prepare_uploads(buckets, small_corpus / CLEANED_FOLDER, out, other, screen)
    rows = rows_of(result)
    assert len(rows) == 9 and screen.calls == 5          # the cleaned one, the broken and the unknown: not screened
    assert rows[f"{ANDROID}/{IN_CLEANED_HU}.3gp"].outcome == IN_CLEANED
    for name, target in CRIES.items():
        assert (rows[name].outcome, rows[name].target) == (OTHER_CRY if target == "dont_know" else USED, target)
        written = Path(rows[name].output)
        assert written.name.startswith(Path(name).name[:36]) and written.suffix == ".wav"
        assert sf.info(written).samplerate == (16000 if name.startswith(IOS) else 8000)   # the phone's own rate
    assert Path(rows[next(iter(CRIES))].output).parent == out / "burping" / "uploads"
    assert Path(rows[f"{ANDROID}/6bd76f21-f279-4c46-9453-58c95e7b2475-1430767960952-1.7-m-72-dk.3gp"].output
                ).parent == other / "cry" / "dont_know"                                     # never a reason class
    assert not list(out.glob("dont_know*"))
    for name in NOT_CRIES:
        assert rows[name].outcome == NOT_A_CRY and rows[name].reason.startswith("no crying window")
        assert not rows[name].output
    assert "quiet" in rows[NOT_CRIES[1]].reason
    problems = result.problems()
    assert len(problems) == 3 and all("\n" not in p for p in problems)       # one line per file
    assert {p.split(": ", 1)[0] for p in problems} == {str(small_corpus / n) for n in (*BROKEN, UNKNOWN_TAG)}
    assert all(rows[name].outcome == UNUSABLE for name in (*BROKEN, UNKNOWN_TAG))
    assert "empty file" in rows[next(iter(BROKEN))].reason and "xx" in rows[UNKNOWN_TAG].reason
    with open(out / "uploads.csv", newline="") as f:
        assert {r["upload"]: r["outcome"] for r in csv.DictReader(f)} == {k: r.outcome for k, r in rows.items()}

    made = {p: p.stat().st_mtime_ns for p in [*out.rglob("*.wav"), *other.rglob("*.wav")]}
    screen.calls = 0
    again = prepare_uploads(buckets, small_corpus / CLEANED_FOLDER, out, other, screen)
    assert screen.calls == 0 and again.reused == 7 and len(again.problems()) == 3   # errors still said, each once
    assert {p: p.stat().st_mtime_ns for p in made} == made and rows_of(again) == rows

    (small_corpus / NOT_CRIES[0]).unlink()                   # an upload gone: its row goes too
    shutil.copy(small_corpus / NOT_CRIES[1], small_corpus / next(iter(CRIES)))   # one changed: screened again
    third = rows_of(prepare_uploads(buckets, small_corpus / CLEANED_FOLDER, out, other, screen))
    assert screen.calls == 1 and NOT_CRIES[0] not in third
    assert third[next(iter(CRIES))].outcome == NOT_A_CRY
    assert not list((out / "burping" / "uploads").glob("*.wav"))                  # its old output removed


def test_prepare_data_takes_the_uploads_by_default_and_not_with_no_uploads(small_corpus, tmp_path):
    out, other = tmp_path / "audio", tmp_path / "other"
    args = ("prepare_data.py", "--source", small_corpus, "--out-dir", out, "--other-cries-dir", other,
            "--models-source", PRETRAINED, "--models-dir", tmp_path / "pretrained")
    done = run_script(*args, ok=(1,))                         # 1: some uploads cannot be used, each said
    lines = done.stdout.splitlines()
    for name in (*BROKEN, UNKNOWN_TAG):
        assert sum(name in line for line in lines if line.startswith("skipped: ")) == 1
    assert "2 used for the reasons, 1 cries for the detector only (dont_know 1" in done.stdout
    assert "2 not cries, 3 cannot be used" in done.stdout
    assert "hungry 1, cold_hot 0, tired 1," in done.stdout and "burping 1" in done.stdout
    assert len(list(out.rglob("uploads/*.wav"))) >= 2 and len(list(other.rglob("*.wav"))) == 1
    done = run_script(*args, "--no-uploads", ok=(0,))
    assert "removed" in done.stdout and not list(out.rglob("uploads/*.wav")) and not list(other.rglob("*.wav"))
    assert not (out / "uploads.csv").exists() and len(list((out / "hungry").glob("*.wav"))) == 1


def serve_once(data: bytes):
    """An HTTP server on 127.0.0.1 that answers every GET with data; returns (url, server)."""
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}/master.zip", server


def archive_of(root: Path, keep=lambda rel: True) -> bytes:
    """root zipped as GitHub zips a repository: everything below one top folder."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted(root.rglob("*")):
            if path.is_file() and keep(path.relative_to(root).as_posix()):
                archive.write(path, f"donateacry-corpus-master/{path.relative_to(root).as_posix()}")
    return buffer.getvalue()


def test_the_download_unpacks_the_upload_buckets_and_refuses_an_archive_without_them(small_corpus, tmp_path):
    url, server = serve_once(archive_of(small_corpus))
    try:
        root = download_corpus(tmp_path / "cache", url)
    finally:
        server.shutdown()
    assert (root / CLEANED_FOLDER / "hungry" / f"{IN_CLEANED_HU}.wav").is_file()
    assert all((root / name).read_bytes() == (small_corpus / name).read_bytes() for name in (*CRIES, *NOT_CRIES))
    url, server = serve_once(archive_of(small_corpus, keep=lambda rel: not rel.startswith(IOS)))
    try:
        with pytest.raises(UserError, match=f"no {IOS}/ files"):
            download_corpus(tmp_path / "cache2", url)
    finally:
        server.shutdown()
