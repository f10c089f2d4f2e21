"""The corpus's original uploads (3gp, caf): each one used or listed with its reason, never twice.

The cleaned folder is a subset of the uploads, converted; an upload whose (app id, timestamp)
is already there is that recording, so it is not counted again. Every other upload is decoded
(cry.audio: FFmpeg through PyAV reads AMR-NB and IMA ADPCM), screened by a `Screen` (is there a
crying window at all? many uploads are talk, silence or a phone in a pocket), and written as a
WAV at the phone's own rate, named as it was, so its name still starts with the baby id:
a reason tag to out_dir/<class>/uploads/ (with its room tone in out_dir/silence/uploads/), a
cry tagged outside the classes (dk, lo, sc) to other_dir/cry/<tag name>/, a tree the detector
reads as cries and the reason model never sees. What happened to each upload is written to
out_dir/uploads.csv; a rerun decodes and screens only uploads that changed, and removes
outputs of earlier runs that no longer follow from the uploads.
"""
from __future__ import annotations

import csv
import dataclasses
import io
from collections import Counter
from pathlib import Path
from typing import Protocol

import numpy as np
from tqdm import tqdm

from cry.audio import AUDIO_SUFFIXES, AudioError, decode, list_audio_files
from cry.corpus import OTHER_CRY_TAGS, TAG_TO_CLASS, class_of, recording_key, tag_of, write_silence, write_wav
from cry.files import write_text
from cry.params import CLASSES

UPLOADS = "uploads"         # the sub-folder of out_dir/<class>/ that holds decoded uploads
UPLOADS_LIST = "uploads.csv"
USED, OTHER_CRY, IN_CLEANED, NOT_A_CRY, UNUSABLE = (
    "used", "cry for the detector only", "in the cleaned folder", "not a cry", "cannot be used")


class Screen(Protocol):
    """Why a recording holds no crying window, or None when it holds one; `id` names the rule,
    so that a rerun with another rule screens again."""

    id: str

    def __call__(self, audio: np.ndarray, rate: int) -> str | None: ...


@dataclasses.dataclass(frozen=True)
class UploadRow:
    """One upload and what became of it (a row of uploads.csv)."""

    upload: str          # its path below the repository root
    bytes: int
    outcome: str         # USED, OTHER_CRY, IN_CLEANED, NOT_A_CRY or UNUSABLE
    target: str = ""     # class (USED, IN_CLEANED) or other-cry folder (OTHER_CRY)
    silence: bool = False  # a room-tone clip was cut from it
    reason: str = ""
    screen: str = ""     # the Screen.id that decided it (decoded uploads only)
    output: str = ""


@dataclasses.dataclass(frozen=True)
class UploadsResult:
    root: Path           # the repository root the rows' upload paths are below
    rows: tuple[UploadRow, ...]
    reused: int          # uploads decided by an earlier run, not decoded again
    removed: int         # outputs of earlier runs removed

    def count(self, outcome: str) -> int:
        return sum(r.outcome == outcome for r in self.rows)

    def written(self) -> Counter:
        """Recordings written per class or other-cry folder, room-tone clips as "silence"."""
        counts = Counter(r.target for r in self.rows if r.outcome in (USED, OTHER_CRY))
        counts["silence"] += sum(r.silence for r in self.rows)
        return counts

    def problems(self) -> list[str]:
        """'path: reason' of every upload that cannot be used."""
        return [f"{self.root / r.upload}: {r.reason}" for r in self.rows if r.outcome == UNUSABLE]


def recording_stem(name: str) -> str:
    """The name without its audio suffixes ('...-ti.caf.caf' -> '...-ti'; '-1.7-' is no suffix)."""
    while Path(name).suffix.lower() in AUDIO_SUFFIXES:
        name = Path(name).stem
    return name


def outputs(row: UploadRow, out_dir: Path, other_dir: Path) -> list[Path]:
    """The files an upload's row says were written for it."""
    stem = recording_stem(Path(row.upload).name)
    if row.outcome == USED:
        made = [Path(out_dir) / row.target / UPLOADS / f"{stem}.wav"]
    elif row.outcome == OTHER_CRY:
        made = [Path(other_dir) / "cry" / row.target / f"{stem}.wav"]
    else:
        return []
    return made + ([Path(out_dir) / "silence" / UPLOADS / f"{stem}-silence.wav"] if row.silence else [])


def read_list(path: Path) -> dict[str, UploadRow]:
    """upload -> its row in an earlier uploads.csv; empty when there is none or it is unreadable."""
    try:
        with open(path, newline="") as f:
            rows = [UploadRow(r["upload"], int(r["bytes"]), r["outcome"], r["target"], r["silence"] == "1",
                              r["reason"], r["screen"], r["output"]) for r in csv.DictReader(f)]
    except (OSError, KeyError, ValueError, TypeError):
        return {}
    return {r.upload: r for r in rows}


def write_list(rows: list[UploadRow], path: Path) -> None:
    table = io.StringIO()
    writer = csv.writer(table, lineterminator="\n")
    writer.writerow([f.name for f in dataclasses.fields(UploadRow)])
    writer.writerows([[int(v) if isinstance(v, bool) else v for v in dataclasses.astuple(r)] for r in rows])
    write_text(table.getvalue(), path)


def decide(path: Path, row: UploadRow, screen: Screen, out_dir: Path, other_dir: Path) -> UploadRow:
    """Decode and screen one upload not in the cleaned folder, and write what it gives."""
    tag = tag_of(path)
    target = TAG_TO_CLASS.get(tag) or OTHER_CRY_TAGS[tag]
    try:
        audio, rate = decode(path)
    except AudioError as exc:
        return dataclasses.replace(row, outcome=UNUSABLE, reason=str(exc), screen=screen.id)
    if (why := screen(audio, rate)) is not None:
        return dataclasses.replace(row, outcome=NOT_A_CRY, target=target, reason=why, screen=screen.id)
    row = dataclasses.replace(row, outcome=USED if tag in TAG_TO_CLASS else OTHER_CRY, target=target,
                              screen=screen.id)
    write_wav(audio, rate, outputs(row, out_dir, other_dir)[0])
    silence = write_silence(audio, rate, Path(out_dir) / "silence" / UPLOADS, recording_stem(path.name))
    return dataclasses.replace(row, silence=silence)


def prepare_uploads(buckets: list[Path], cleaned_folder: Path, out_dir: Path, other_dir: Path,
                    screen: Screen) -> UploadsResult:
    """Every file of the upload buckets used or listed with its reason (see the module's docstring);
    the list is written to out_dir/uploads.csv."""
    cleaned = {recording_key(p): p for p in list_audio_files(cleaned_folder)}
    earlier = read_list(Path(out_dir) / UPLOADS_LIST)
    files = sorted((p.relative_to(Path(b).parent).as_posix(), p) for b in buckets for p in Path(b).rglob("*")
                   if p.is_file() and not p.name.startswith("."))
    rows, seen, reused = [], {}, 0
    for name, path in tqdm(files, desc="uploads", unit="file"):
        key, tag = recording_key(path), tag_of(path)
        row = UploadRow(name, path.stat().st_size, UNUSABLE)
        if key is None:
            row = dataclasses.replace(row, reason="name does not start with an app-install id and a timestamp")
        elif key in cleaned:
            row = dataclasses.replace(row, outcome=IN_CLEANED, target=class_of(cleaned[key]) or "",
                                      reason=f"the same recording as {cleaned[key].name}")
        elif key in seen:
            row = dataclasses.replace(row, reason=f"the same recording as {seen[key]}")
        elif tag not in TAG_TO_CLASS and tag not in OTHER_CRY_TAGS:
            row = dataclasses.replace(row, reason=f"unknown reason tag {tag!r}")
        elif _still_valid(old := earlier.get(name), row, screen, out_dir, other_dir):
            row, reused = old, reused + 1
        else:
            row = decide(path, row, screen, out_dir, other_dir)
        if key is not None:
            seen.setdefault(key, name)
        made = outputs(row, out_dir, other_dir)
        rows.append(dataclasses.replace(row, output=str(made[0]) if made else ""))
    removed = remove_stale(out_dir, other_dir, {p for r in rows for p in outputs(r, out_dir, other_dir)})
    write_list(rows, Path(out_dir) / UPLOADS_LIST)
    return UploadsResult(Path(buckets[0]).parent if buckets else Path(), tuple(rows), reused, removed)


def _still_valid(old: UploadRow | None, new: UploadRow, screen: Screen, out_dir: Path, other_dir: Path) -> bool:
    """An earlier run decided this same file with this screen, and what it wrote is still there."""
    return (old is not None and old.bytes == new.bytes and old.screen == screen.id
            and old.outcome in (USED, OTHER_CRY, NOT_A_CRY, UNUSABLE)
            and all(p.is_file() for p in outputs(old, out_dir, other_dir)))


def remove_stale(out_dir: Path, other_dir: Path, wanted: set[Path]) -> int:
    """Delete decoded uploads of earlier runs that are not wanted now: left in place they would be
    trained on. Returns how many."""
    folders = [Path(out_dir) / c / UPLOADS for c in CLASSES] + [Path(other_dir) / "cry" / f
                                                                 for f in OTHER_CRY_TAGS.values()]
    stale = [p for f in folders if f.is_dir() for p in list_audio_files(f) if p not in wanted]
    for p in stale:
        p.unlink()
    return len(stale)


def remove_uploads(out_dir: Path, other_dir: Path) -> int:
    """A run without the uploads: every decoded upload of earlier runs and their list removed. Returns how many."""
    (Path(out_dir) / UPLOADS_LIST).unlink(missing_ok=True)
    return remove_stale(out_dir, other_dir, set())
