"""The Donate-a-Cry corpus: who each recording is from, what its tag means, and its room tone.

A file name starts with the 36-character app-install id (one id ~ one baby, compared
case-insensitively), then the recording's timestamp (ms on Android, s on iOS), and ends with
the parent's reason tag. The same name, with its own suffix, is used by the cleaned folder's
WAV and by the original upload it was made from, so (id, timestamp) names one recording in
both. Room tone ("silence") is cut from each recording's own quiet stretches, so it keeps the
baby id and the phone's sound. The original uploads are prepared by cry.uploads.
"""
from __future__ import annotations

import io
import os
import shutil
import tempfile
import urllib.request
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np
from tqdm import tqdm

from cry.audio import AudioError, decode, list_audio_files
from cry.files import UserError, atomic_output
from cry.params import CLASSES

CORPUS_URL = "https://github.com/gveres/donateacry-corpus/archive/refs/heads/master.zip"
CLEANED_FOLDER = "donateacry_corpus_cleaned_and_updated_data"
UPLOAD_BUCKETS = ("donateacry-android-upload-bucket", "donateacry-ios-upload-bucket")  # 3gp (AMR-NB), caf (IMA ADPCM)
TAG_TO_CLASS = {"bp": "belly_pain", "hu": "hungry", "ch": "cold_hot", "ti": "tired",
                "dc": "discomfort", "bu": "burping"}
# Cries whose tag is none of the classes: the detector may learn them as cries, the reason model never sees them.
OTHER_CRY_TAGS = {"dk": "dont_know", "lo": "lonely", "sc": "scared"}

# Energy gate for room tone: 50 ms frames this far below the recording's loud level,
# and quiet in absolute terms too, in runs long enough not to be a gap between sobs.
FRAME_SECONDS = 0.05
QUIET_BELOW_LOUD_DB = 30.0
QUIET_MAX_DBFS = -35.0
MIN_RUN_SECONDS = 0.25
MIN_SILENCE_SECONDS = 3.0


def baby_id(path: str | os.PathLike) -> str:
    """The 36-character app-install id that starts a corpus file name (one id ~ one baby)."""
    return Path(path).name[:36].lower()


def tag_of(path: str | os.PathLike) -> str:
    """The parent's reason tag: the name's last '-' field without its suffixes ('...-ti.caf.caf' -> 'ti')."""
    return Path(path).name.rsplit("-", 1)[-1].split(".")[0].lower()


def recording_key(path: str | os.PathLike) -> tuple[str, str] | None:
    """(baby id, timestamp as written): one recording, in the cleaned folder and the uploads alike;
    None for a name that does not start with an app-install id and a timestamp."""
    name = Path(path).name
    stamp = name[37:].split("-", 1)[0]
    if len(name) < 38 or name[36] != "-" or not stamp.replace(".", "", 1).isdigit():
        return None
    return baby_id(name), stamp


def class_of(path: Path) -> str | None:
    """Class from the reason tag at the end of the name (-ch -> cold_hot), else the folder."""
    tag = tag_of(path)
    if tag in TAG_TO_CLASS:
        return TAG_TO_CLASS[tag]
    return Path(path).parent.name if Path(path).parent.name in CLASSES else None


def quiet_frames(audio: np.ndarray, rate: int) -> np.ndarray:
    """Boolean per 50 ms frame: room tone rather than crying. Returns bool [n_frames]."""
    size = max(1, int(FRAME_SECONDS * rate))
    n = len(audio) // size
    if n == 0:
        return np.zeros(0, bool)
    frames = audio[:n * size].reshape(n, size).astype(np.float64)
    db = 10 * np.log10(np.maximum(np.mean(frames ** 2, axis=1), 1e-12))
    loud = np.percentile(db, 95)
    return (db < loud - QUIET_BELOW_LOUD_DB) & (db < QUIET_MAX_DBFS)


def extract_silence(audio: np.ndarray, rate: int) -> np.ndarray | None:
    """Join a recording's quiet runs into one clip of real room tone, or None if too little.

    Runs shorter than MIN_RUN_SECONDS are dropped, and one frame is trimmed at each end
    of a run so that no onset or tail of a cry leaks in.
    """
    quiet = quiet_frames(audio, rate)
    size = max(1, int(FRAME_SECONDS * rate))
    min_run = int(MIN_RUN_SECONDS / FRAME_SECONDS)
    pieces, start = [], None
    for i, q in enumerate(np.append(quiet, False)):
        if q and start is None:
            start = i
        elif not q and start is not None:
            if i - start >= min_run + 2:
                pieces.append(audio[(start + 1) * size:(i - 1) * size])
            start = None
    clip = np.concatenate(pieces) if pieces else np.zeros(0, audio.dtype)
    return clip if len(clip) >= MIN_SILENCE_SECONDS * rate else None


def download_corpus(cache_dir: Path, url: str = CORPUS_URL) -> Path:
    """Download and unpack the corpus archive once, cleaned folder and upload buckets (verified by
    the zip's checksums, and that both are in it)."""
    root = Path(cache_dir) / "donateacry-corpus-master"
    if (root / CLEANED_FOLDER).is_dir() and all((root / b).is_dir() for b in UPLOAD_BUCKETS):
        return root
    Path(cache_dir).mkdir(parents=True, exist_ok=True)
    print(f"downloading {url}")
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            total = int(response.headers.get("Content-Length") or 0) or None
            buffer = io.BytesIO()
            with tqdm(total=total, unit="B", unit_scale=True, desc="corpus") as bar:
                while chunk := response.read(1 << 16):
                    buffer.write(chunk)
                    bar.update(len(chunk))
    except OSError as exc:
        raise UserError(f"{url}: download failed ({exc}); give a local copy with --source DIR") from None
    try:
        with zipfile.ZipFile(buffer) as archive:
            if (bad := archive.testzip()) is not None:
                raise UserError(f"{url}: corrupt archive member {bad}; try again")
            members = archive.namelist()
            if not any(f"/{CLEANED_FOLDER}/" in m and m.lower().endswith(".wav") for m in members):
                raise UserError(f"{url}: archive has no {CLEANED_FOLDER}/ wav files")
            missing = [b for b in UPLOAD_BUCKETS if not any(f"/{b}/" in m and not m.endswith("/") for m in members)]
            if missing:
                raise UserError(f"{url}: archive has no {', '.join(missing)}/ files")
            with tempfile.TemporaryDirectory(dir=cache_dir) as tmp:
                archive.extractall(tmp, members)
                shutil.rmtree(root, ignore_errors=True)  # an older, partial copy
                shutil.move(str(Path(tmp) / members[0].split("/")[0]), root)
    except zipfile.BadZipFile:
        raise UserError(f"{url}: download is not a zip archive; try again") from None
    return root


def find_cleaned_folder(source: Path) -> Path:
    """Accept the repository root or the cleaned-data folder itself."""
    for folder in (Path(source) / CLEANED_FOLDER, Path(source)):
        if folder.is_dir() and any(class_of(p) for p in list_audio_files(folder)):
            return folder
    raise UserError(f"{source}: no Donate-a-Cry recordings found (expected {CLEANED_FOLDER}/<reason>/*.wav)")


def find_upload_buckets(cleaned_folder: Path) -> list[Path]:
    """The upload buckets beside the cleaned folder (its parent is the repository's root), those present."""
    root = Path(cleaned_folder).parent if Path(cleaned_folder).name == CLEANED_FOLDER else Path(cleaned_folder)
    return [root / b for b in UPLOAD_BUCKETS if (root / b).is_dir()]


def _copy_atomic(src: Path, dst: Path) -> None:
    if dst.exists() and dst.stat().st_size == src.stat().st_size:
        return
    with atomic_output(dst) as tmp:
        shutil.copyfile(src, tmp)


def write_wav(audio: np.ndarray, rate: int, path: Path) -> None:
    """16-bit PCM WAV at the audio's own rate, written atomically."""
    import soundfile as sf

    with atomic_output(path) as tmp:
        sf.write(tmp, audio, rate, subtype="PCM_16", format="WAV")


def write_silence(audio: np.ndarray, rate: int, folder: Path, stem: str) -> bool:
    """The recording's room tone (extract_silence) as folder/<stem>-silence.wav; False when it has too little."""
    clip = extract_silence(audio, rate)
    if clip is not None:
        write_wav(clip, rate, Path(folder) / f"{stem}-silence.wav")
    return clip is not None


def prepare_cleaned(folder: Path, out_dir: Path) -> tuple[Counter, list[str]]:
    """Copy each recording of the cleaned folder to out_dir/<class>/ and cut a silence clip from
    its quiet parts. Returns the counts per class and a 'path: reason' line per file skipped."""
    counts, skipped = Counter(), []
    for src in tqdm(list_audio_files(folder), desc="recordings", unit="file"):
        label = class_of(src)
        if label is None:
            skipped.append(f"{src}: unknown reason tag and folder")
            continue
        try:
            audio, rate = decode(src)
        except AudioError as exc:
            skipped.append(f"{src}: {exc}")
            continue
        _copy_atomic(src, out_dir / label / src.name)
        counts[label] += 1
        if write_silence(audio, rate, out_dir / "silence", src.stem):
            counts["silence"] += 1
    return counts, skipped
