"""Build data/audio/<class>/*.wav from the Donate-a-Cry corpus, plus real silence clips.

By default the corpus is downloaded from its public GitHub repository; --source takes a
local copy instead. Every output name starts with the baby (app-install) id, so splits
can keep each baby on one side. Files without a class, or that cannot be decoded, are not
copied: each is printed with its reason, and the exit status is then 1 (else 0; 2 on error).
The pretrained YAMNet is fetched too, into models/pretrained/ (--models-source takes a local copy).
"""
from __future__ import annotations

import argparse
import io
import shutil
import tempfile
import urllib.request
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np
import soundfile as sf
from tqdm import tqdm

from cry.audio import baby_id, decoder_reason, list_audio_files
from cry.files import UserError, atomic_output, run_main
from cry.params import CLASSES
from cry.pretrained import PRETRAINED_DIR, fetch_pretrained

CORPUS_URL = "https://github.com/gveres/donateacry-corpus/archive/refs/heads/master.zip"
CLEANED_FOLDER = "donateacry_corpus_cleaned_and_updated_data"
TAG_TO_CLASS = {"bp": "belly_pain", "hu": "hungry", "ch": "cold_hot", "ti": "tired",
                "dc": "discomfort", "bu": "burping"}

# Energy gate for room tone: 50 ms frames this far below the recording's loud level,
# and quiet in absolute terms too, in runs long enough not to be a gap between sobs.
FRAME_SECONDS = 0.05
QUIET_BELOW_LOUD_DB = 30.0
QUIET_MAX_DBFS = -35.0
MIN_RUN_SECONDS = 0.25
MIN_SILENCE_SECONDS = 3.0


def class_of(path: Path) -> str | None:
    """Class from the reason tag at the end of the name (-ch -> cold_hot), else the folder."""
    tag = path.stem.rsplit("-", 1)[-1].lower()
    if tag in TAG_TO_CLASS:
        return TAG_TO_CLASS[tag]
    return path.parent.name if path.parent.name in CLASSES else None


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


def download_corpus(cache_dir: Path) -> Path:
    """Download and unpack the corpus archive once (verified by its zip checksums)."""
    root = cache_dir / "donateacry-corpus-master"
    if (root / CLEANED_FOLDER).is_dir():
        return root
    print(f"downloading {CORPUS_URL}")
    try:
        with urllib.request.urlopen(CORPUS_URL, timeout=60) as response:
            total = int(response.headers.get("Content-Length") or 0) or None
            buffer = io.BytesIO()
            with tqdm(total=total, unit="B", unit_scale=True, desc="corpus") as bar:
                while chunk := response.read(1 << 16):
                    buffer.write(chunk)
                    bar.update(len(chunk))
    except OSError as exc:
        raise UserError(f"{CORPUS_URL}: download failed ({exc}); give a local copy with --source DIR") from None
    try:
        with zipfile.ZipFile(buffer) as archive:
            if (bad := archive.testzip()) is not None:
                raise UserError(f"{CORPUS_URL}: corrupt archive member {bad}; try again")
            members = [m for m in archive.namelist() if f"/{CLEANED_FOLDER}/" in m]
            if not any(m.lower().endswith(".wav") for m in members):
                raise UserError(f"{CORPUS_URL}: archive has no {CLEANED_FOLDER}/ wav files")
            with tempfile.TemporaryDirectory(dir=cache_dir) as tmp:
                archive.extractall(tmp, members)
                shutil.move(str(Path(tmp) / members[0].split("/")[0]), root)
    except zipfile.BadZipFile:
        raise UserError(f"{CORPUS_URL}: download is not a zip archive; try again") from None
    return root


def find_cleaned_folder(source: Path) -> Path:
    """Accept the repository root or the cleaned-data folder itself."""
    for folder in (source / CLEANED_FOLDER, source):
        if folder.is_dir() and any(class_of(p) for p in list_audio_files(folder)):
            return folder
    raise UserError(f"{source}: no Donate-a-Cry recordings found (expected {CLEANED_FOLDER}/<reason>/*.wav)")


def copy_atomic(src: Path, dst: Path) -> None:
    if dst.exists() and dst.stat().st_size == src.stat().st_size:
        return
    with atomic_output(dst) as tmp:
        shutil.copyfile(src, tmp)


def prepare(folder: Path, out_dir: Path) -> tuple[Counter, list[str]]:
    """Copy each recording to its class folder and cut a silence clip from its quiet parts.
    Returns the counts per class and a 'path: reason' line per file skipped."""
    counts, skipped = Counter(), []
    for src in tqdm(list_audio_files(folder), desc="recordings", unit="file"):
        label = class_of(src)
        if label is None:
            skipped.append(f"{src}: unknown reason tag and folder")
            continue
        try:
            audio, rate = sf.read(src, dtype="float32")
        except Exception as exc:  # any decoder failure; libsndfile says why
            skipped.append(f"{src}: cannot decode audio ({decoder_reason(exc, src)})")
            continue
        copy_atomic(src, out_dir / label / src.name)
        counts[label] += 1
        clip = extract_silence(audio if audio.ndim == 1 else audio.mean(axis=1), rate)
        if clip is not None:
            with atomic_output(out_dir / "silence" / f"{src.stem}-silence.wav") as tmp:
                sf.write(tmp, clip, rate, subtype="PCM_16", format="WAV")
            counts["silence"] += 1
    for line in skipped:
        print(f"skipped: {line}")
    return counts, skipped


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", type=Path, help="local copy of the corpus (default: download it)")
    parser.add_argument("--out-dir", type=Path, default=Path("data/audio"), help="default: %(default)s")
    parser.add_argument("--cache-dir", type=Path, default=Path("data/download"),
                        help="where the download is kept (default: %(default)s)")
    parser.add_argument("--models-source", type=Path, help="local copy of the pretrained model folder "
                        "(default: download YAMNet)")
    parser.add_argument("--models-dir", type=Path, default=PRETRAINED_DIR, help="default: %(default)s")
    args = parser.parse_args(argv)
    for folder in (args.source, args.models_source):
        if folder is not None and not folder.is_dir():
            raise UserError(f"{folder}: no such folder")
    fetch_pretrained(args.models_dir, args.models_source)
    if args.source is None:
        args.cache_dir.mkdir(parents=True, exist_ok=True)
    folder = find_cleaned_folder(args.source or download_corpus(args.cache_dir))
    counts, skipped = prepare(folder, args.out_dir)
    babies = {baby_id(p) for p in list_audio_files(args.out_dir)}
    print("recordings per class: " + ", ".join(f"{c} {counts[c]}" for c in CLASSES))
    print(f"{sum(counts.values())} files from {len(babies)} babies written to {args.out_dir}/, {len(skipped)} skipped")
    return 1 if skipped else 0


if __name__ == "__main__":
    run_main(main)
