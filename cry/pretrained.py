"""Pretrained model files (YAMNet): pinned downloads or a local copy, checked by size and SHA-256."""
from __future__ import annotations

import dataclasses
import hashlib
import shutil
import urllib.request
from pathlib import Path

from tqdm import tqdm

from cry.files import UserError, atomic_output, sha256_of

PRETRAINED_DIR = Path("models/pretrained")
HOW_TO_GET = ("get it with `python prepare_data.py` (downloads it) "
              "or `python prepare_data.py --models-source DIR` (copies a local copy)")


@dataclasses.dataclass(frozen=True)
class PinnedFile:
    """A file we only accept byte for byte: where it comes from and what it must hash to."""
    name: str
    url: str
    size_bytes: int
    sha256: str


# Google's YAMNet (Apache-2.0), two builds: Coral's int8 model that takes log-mel patches, and the
# TF Hub lite model (int8 inside, float in and out) that takes the 16 kHz waveform; and the 521 class names.
YAMNET_MODEL = PinnedFile(
    "yamnet_spectra_in.tflite",
    "https://raw.githubusercontent.com/google-coral/coralmicro/c9f665b0a8b973d35cb9d383b3e92e9f14b4dd72"
    "/models/yamnet_spectra_in.tflite",
    4047424, "0a266465c46718f3fcc4137366be82882a8c93bfcc4f0278581a11d11dddcdf9")
YAMNET_CLASS_MAP = PinnedFile(
    "yamnet_class_map.csv",
    "https://raw.githubusercontent.com/tensorflow/models/dbeeb148f10adf723067040eedcccda00bdce1e8"
    "/research/audioset/yamnet/yamnet_class_map.csv",
    14096, "cdf24d193e196d9e95912a2667051ae203e92a2ba09449218ccb40ef787c6df2")
YAMNET_TFHUB = PinnedFile(
    "yamnet_classifier_float_io.tflite",
    "https://raw.githubusercontent.com/tensorflow/tflite-support/dd3362ea685bb7ab1f7268c81ec567d3b720ae57"
    "/tensorflow_lite_support/cc/test/testdata/task/audio/yamnet_audio_classifier_with_metadata.tflite",
    4126810, "10c95ea3eb9a7bb4cb8bddf6feb023250381008177ac162ce169694d05c317de")
YAMNET_MODELS = {"coral": YAMNET_MODEL, "tfhub": YAMNET_TFHUB}  # a detector names the one it was trained on
YAMNET_FILES = (YAMNET_MODEL, YAMNET_TFHUB, YAMNET_CLASS_MAP)

_VERIFIED: set[tuple] = set()  # (path, inode, size, mtime_ns) already hashed in this process


def file_problem(path: Path, pinned: PinnedFile) -> str | None:
    """Why `path` is not the pinned file (missing, truncated, wrong SHA-256...), or None if it is.

    The hash is checked once per process and file version: callers may ask on every start.
    """
    path = Path(path)
    if not path.is_file():
        return "missing"
    stat = path.stat()
    if stat.st_size < pinned.size_bytes:
        return f"truncated: {stat.st_size} of {pinned.size_bytes} bytes"
    if stat.st_size > pinned.size_bytes:
        return f"wrong size: {stat.st_size} bytes, expected {pinned.size_bytes}"
    key = (str(path.resolve()), stat.st_ino, stat.st_size, stat.st_mtime_ns)
    if key not in _VERIFIED:
        try:
            if sha256_of(path) != pinned.sha256:
                return "wrong SHA-256"
        except OSError as exc:
            return f"unreadable ({exc.strerror or exc})"
        _VERIFIED.add(key)
    return None


def yamnet_files(folder: Path = PRETRAINED_DIR, model: str = "coral") -> tuple[Path, Path]:
    """The verified YAMNet build `model` (a YAMNET_MODELS key) and the class map in `folder`, or one
    UserError line saying how to get them."""
    wanted = (YAMNET_MODELS[model], YAMNET_CLASS_MAP)
    paths = tuple(Path(folder) / pinned.name for pinned in wanted)
    for path, pinned in zip(paths, wanted):
        if problem := file_problem(path, pinned):
            raise UserError(f"{path}: {problem}; {HOW_TO_GET}")
    return paths


def download(pinned: PinnedFile, dest: Path) -> Path:
    """Download pinned.url to dest with a progress bar; bytes that are not the pinned file are never kept."""
    digest, size_bytes = hashlib.sha256(), 0
    with atomic_output(dest) as tmp:
        try:
            with urllib.request.urlopen(pinned.url, timeout=60) as response, open(tmp, "wb") as out:
                total = int(response.headers.get("Content-Length") or 0) or None
                with tqdm(total=total, unit="B", unit_scale=True, desc=pinned.name) as bar:
                    while chunk := response.read(1 << 16):
                        out.write(chunk)
                        digest.update(chunk)
                        size_bytes += len(chunk)
                        bar.update(len(chunk))
        except OSError as exc:
            raise UserError(f"{pinned.url}: download failed ({exc}); "
                            "give a local copy of the model folder with --models-source DIR") from None
        if (size_bytes, digest.hexdigest()) != (pinned.size_bytes, pinned.sha256):
            raise UserError(f"{pinned.url}: got {size_bytes} bytes with SHA-256 {digest.hexdigest()[:12]}..., "
                            f"expected {pinned.size_bytes} bytes with {pinned.sha256[:12]}...; not saved")
    return Path(dest)


def copy_verified(pinned: PinnedFile, source_dir: Path, dest: Path) -> Path:
    """Copy source_dir/<name> to dest if it is the pinned file; otherwise one UserError line."""
    source = Path(source_dir) / pinned.name
    if problem := file_problem(source, pinned):
        raise UserError(f"{source}: {problem}; the models source folder must hold the pinned {pinned.name} "
                        f"(or omit --models-source to download it)")
    with atomic_output(dest) as tmp:
        shutil.copyfile(source, tmp)
    return Path(dest)


def fetch_pretrained(dest_dir: Path = PRETRAINED_DIR, source_dir: Path | None = None,
                     files: tuple[PinnedFile, ...] = YAMNET_FILES) -> list[Path]:
    """Make dest_dir hold the pinned files: kept if already right, else copied from source_dir or downloaded."""
    paths = []
    for pinned in files:
        dest = Path(dest_dir) / pinned.name
        if file_problem(dest, pinned) is None:
            print(f"{dest}: already there, SHA-256 verified")
        elif source_dir is not None:
            copy_verified(pinned, source_dir, dest)
            print(f"{dest}: copied from {source_dir}, SHA-256 verified")
        else:
            print(f"downloading {pinned.url}")
            download(pinned, dest)
        paths.append(dest)
    return paths
