"""Sound clips of a folder tree, each with its label, sub-folder and source id (for splits by source).

Two layouts are read: a sounds tree (`cry/` and `not_cry/` at the top, any sub-folders below,
like ../shared/sounds and what cry.synth writes) and prepare_data.py's corpus folder (one
folder per class; `silence` is not crying, every other class is). The source id is what must
never be on both sides of a split: a baby, a Freesound recording, a home recording, a speaker.
"""
from __future__ import annotations

import csv
import dataclasses
import re
from pathlib import Path

import numpy as np

from cry.audio import AUDIO_SUFFIXES, AudioError, decode, list_audio_files, open_audio
from cry.corpus import baby_id
from cry.files import UserError
from cry.params import CLASSES

LABELS = ("not_cry", "cry")  # label i is LABELS[i]: 1 is crying
SOURCES_FILE = "sources.csv"  # optional, in a sounds tree's top folder: path,source (cry.synth writes it)

_ESC50 = re.compile(r"^\d+-(\d+)-[A-Z]\.\w+$")       # 1-187207-A.ogg: fold, Freesound id, take
_FREESOUND = re.compile(r"^(\d+)__")               # 147793__setuniman__sweet-waltz.ogg: Freesound id, user
_SPEAKER = re.compile(r"^\d+_([A-Za-z]+)_\d+\.\w+$")  # 0_george_0.wav: digit, speaker, take
_BABY = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE)


@dataclasses.dataclass(frozen=True)
class Clip:
    """One sound file and what a split and a report need to know of it."""

    path: Path
    label: int     # 1 crying, 0 not crying
    folder: str    # relative path of its sub-folder, e.g. "cry/esc50_crying_baby" or "corpus/silence"
    source: str    # grouping id, e.g. "freesound:187207", "baby:02c3b725-...", "speaker:george"


def source_of(name: str) -> str:
    """The source a file name shows: a corpus baby, an ESC-50 Freesound id, a recording cut
    into pieces (`Louise_01.m4a_3.wav`), a speaker (`0_george_0.wav`); else the file itself."""
    if _BABY.match(name):
        return f"baby:{baby_id(name)}"
    if m := _ESC50.match(name):
        return f"freesound:{m.group(1)}"
    if m := _FREESOUND.match(name):
        return f"freesound:{m.group(1)}"
    if ".m4a_" in name:
        return f"recording:{name.split('.m4a_')[0].lower()}"
    if m := _SPEAKER.match(name):
        return f"speaker:{m.group(1).lower()}"
    return f"file:{Path(name).stem.lower()}"


def read_sources(root: Path) -> dict[str, str]:
    """path (relative to root, '/'-separated) -> source, from root/sources.csv when there is one."""
    table = Path(root) / SOURCES_FILE
    if not table.is_file():
        return {}
    with open(table, newline="") as f:
        return {row["path"]: row["source"] for row in csv.DictReader(f)}


def list_clips(root: Path) -> tuple[list[Clip], list[tuple[Path, str]]]:
    """(the decodable clips below root, (path, why) of the audio files that are not): a sounds
    tree, or prepare_data.py's corpus folder.

    Raises UserError (one line) for a missing or empty folder, a folder of neither layout, or
    one without a single decodable audio file.
    """
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"{root}: no such folder")
    if (root / "cry").is_dir() or (root / "not_cry").is_dir():
        clips = _tree_clips(root)
    elif any((root / c).is_dir() for c in CLASSES):
        clips = _corpus_clips(root)
    else:
        raise UserError(f"{root}: expected cry/ and not_cry/ folders at its top (or prepare_data.py's class "
                        f"folders); found {sorted(p.name for p in root.iterdir())[:6] or 'nothing'}")
    if not clips:
        raise UserError(f"{root}: no audio files ({', '.join(AUDIO_SUFFIXES)}) below cry/ or not_cry/")
    problems = {c.path: _problem(c.path) for c in clips}
    good = [c for c in clips if problems[c.path] is None]
    if not good:
        raise UserError(f"{root}: none of its {len(clips)} audio files can be decoded "
                        f"({problems[clips[0].path]}: {clips[0].path.name})")
    return good, [(p, why) for p, why in problems.items() if why is not None]


def _tree_clips(root: Path) -> list[Clip]:
    known = read_sources(root)
    clips = []
    for label, top in enumerate(LABELS):
        for path in list_audio_files(root / top) if (root / top).is_dir() else []:
            rel = path.relative_to(root)
            source = known.get(rel.as_posix()) or source_of(path.name)
            clips.append(Clip(path, label, rel.parent.as_posix(), source))
    return clips


def _corpus_clips(root: Path) -> list[Clip]:
    """Class folders; a sub-folder (decoded uploads: <class>/uploads/) is a folder of its own."""
    return [Clip(path, int(c != "silence"), f"corpus/{path.parent.relative_to(root).as_posix()}",
                 f"baby:{baby_id(path)}") for c in CLASSES for path in list_audio_files(root / c)]


def _problem(path: Path) -> str | None:
    """Why the file cannot be used, in a few words (from its header); None when it can."""
    try:
        with open_audio(path) as reader:
            return "no audio samples" if reader.info.frames == 0 else None
    except AudioError as exc:
        return str(exc)


def load_clip(path: Path) -> tuple[np.ndarray, int]:
    """(mono float32 [n], its own sample rate); raises UserError saying why it cannot be used."""
    try:
        return decode(path)
    except AudioError as exc:
        raise UserError(f"{path}: {exc}") from None


def groups(clips: list[Clip]) -> np.ndarray:
    """Each clip's source as an integer [n_clips], for grouped K-fold (same source, same fold)."""
    names = sorted({c.source for c in clips})
    index = {s: i for i, s in enumerate(names)}
    return np.array([index[c.source] for c in clips])
