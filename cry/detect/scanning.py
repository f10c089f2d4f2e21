"""Scanning many recordings: what to scan, pieces through an executor, one decision per recording, resumable.

Every recording is cut into pieces (cry.detect.scan), the pieces of all recordings go through
one executor (this process, a local pool, a Ray cluster: cry.cluster) with a bounded number in
flight, and come back in order, so each recording is decided as its pieces arrive and memory
stays flat however long it is. A recording is finished when its marker (<name>.scan.json, written
last, atomically) is there for the same recording and the same detector: a rerun skips it, and a
run that is killed leaves the recording it was on to be scanned again, never half of its files.
"""
from __future__ import annotations

import dataclasses
import functools
import itertools
import json
import os
import sys
from pathlib import Path

from tqdm import tqdm

from cry.audio import AudioError, list_audio_files
from cry.detect.scan import Piece, PieceScores, decide, plan_pieces, score_piece
from cry.detect.scan_report import Segments, write_recording
from cry.files import UserError, remove_leftovers, sha256_of, write_json, write_text

MARKER = ".scan.json"
SCAN_VERSION = 1  # bump when what a scan writes changes: older markers are then scanned again


@dataclasses.dataclass(frozen=True)
class ScanModels:
    """The files the live path is built from, absolute, so that any worker on any node finds them."""

    detector: str
    pretrained_dir: str | None = None

    @classmethod
    def of(cls, detector: Path, pretrained_dir: Path | None) -> ScanModels:
        pretrained = None if pretrained_dir is None else str(Path(pretrained_dir).resolve())
        return cls(str(Path(detector).resolve()), pretrained)


@dataclasses.dataclass(frozen=True)
class ScanJob:
    models: ScanModels
    piece: Piece


@functools.lru_cache(maxsize=2)
def live_path_of(models: ScanModels):
    """The live path with the detector alone (cry.assemble), built once per process."""
    from cry import runtime
    from cry.assemble import load_live_path

    runtime.setup()
    return load_live_path(None, Path(models.detector), None if models.pretrained_dir is None else
                          Path(models.pretrained_dir))


def score_job(job: ScanJob) -> PieceScores:
    """What a worker runs: one piece through the live path of the job's models."""
    return score_piece(live_path_of(job.models), job.piece)


def find_recordings(inputs: list[Path]) -> list[tuple[Path, str]]:
    """(recording, its name in the output folder) of every recording given or below a folder given:
    names are paths relative to the recordings' common folder, so two days of one child never meet."""
    found = []
    for item in inputs:
        if Path(item).is_dir():
            found += list_audio_files(Path(item))
        elif Path(item).is_file():
            found.append(Path(item))
        else:
            raise UserError(f"{item}: no such file or folder")
    found = sorted({p.resolve() for p in found})
    if not found:
        raise UserError(f"no recordings found in {', '.join(map(str, inputs))}")
    common = Path(os.path.commonpath([p.parent for p in found]))
    return [(p, str(p.relative_to(common))) for p in found]


def fingerprint(recording: Path, models: ScanModels, live) -> dict:
    """What a finished scan of a recording depends on."""
    stat = recording.stat()
    return {"scan_version": SCAN_VERSION, "recording": str(recording), "size": stat.st_size,
            "mtime_ns": stat.st_mtime_ns, "detector_sha256": sha256_of(Path(models.detector)), "live": live.to_dict()}


def read_marker(path: Path, expected: dict) -> dict | None:
    """The marker of a finished scan when it matches `expected`, else None."""
    try:
        marker = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return marker if isinstance(marker, dict) and marker.get("made_from") == expected else None


def say_error(message: str) -> None:
    tqdm.write(f"error: {message}", file=sys.stderr)


def scan(recordings: list[tuple[Path, str]], out_dir: Path, models: ScanModels, executor,
         piece_seconds: float) -> tuple[list[dict], int]:
    """Scan every recording not finished yet; (the markers of all finished ones, in order, and how
    many recordings failed). Writes each recording's files and marker under out_dir."""
    path = live_path_of(models)
    if remove_leftovers(out_dir) if Path(out_dir).is_dir() else 0:
        print(f"removed the half-written files of a run that was stopped, in {out_dir}", file=sys.stderr)
    markers, todo, failed = {}, [], 0
    for recording, name in recordings:
        made_from = fingerprint(recording, models, path.live)
        marker = read_marker(out_dir / (name + MARKER), made_from)
        if marker is not None:
            markers[name] = marker
            continue
        try:
            todo.append((recording, name, made_from, plan_pieces(recording, path.live, piece_seconds)))
        except AudioError as exc:
            say_error(f"{recording}: {exc}")
            failed += 1
    if len(markers):
        print(f"{len(markers)} recordings scanned before, skipped", file=sys.stderr)
    by_name = {str(recording): (name, made_from) for recording, name, made_from, _ in todo}
    jobs = (ScanJob(models, piece) for *_, pieces in todo for piece in pieces)
    hours = sum(p.seconds for *_, pieces in todo for p in pieces) / 3600
    with tqdm(total=hours, unit="h", desc="hours of audio", bar_format="{l_bar}{bar}| {n:.2f}/{total:.2f} h "
              "[{elapsed}<{remaining}]", file=sys.stderr) as bar:
        results = itertools.groupby(_in_order(executor, jobs), key=lambda r: r.piece.recording)
        for recording, pieces in results:
            name, made_from = by_name[recording]
            marker = finish(path, out_dir, name, made_from, _checked(pieces, bar))
            if isinstance(marker, str):
                say_error(f"{recording}: {marker}")
                failed += 1
            else:
                markers[name] = marker
    return [markers[name] for _, name in recordings if name in markers], failed


def _in_order(executor, jobs):
    from cry.cluster import in_order

    return in_order(executor, score_job, jobs)


class PieceFailed(Exception):
    pass


def _checked(pieces, bar):
    """The pieces of one recording, the bar moved on by each; PieceFailed at the first that failed."""
    for piece in pieces:
        if piece.error is not None:
            raise PieceFailed(piece.error)
        bar.update(piece.piece.seconds / 3600)
        yield piece


def finish(path, out_dir: Path, name: str, made_from: dict, pieces) -> dict | str:
    """Decide a recording over its pieces, write its files and then its marker; the marker, or why
    the recording failed (its earlier files, if any, stay as they were)."""
    segments = Segments(path.live.episode_start_windows)
    try:
        seconds = decide(path, pieces, [segments])
    except PieceFailed as exc:
        return str(exc)
    stem = Path(out_dir) / name
    write_recording(stem, name, segments.segments, seconds)
    marker = {"made_from": made_from, "name": name, "seconds": round(seconds, 4),
              "segments": [dataclasses.astuple(s) for s in segments.segments]}
    write_json(marker, stem.with_name(stem.name + MARKER))
    return marker


def agreement_with_annotations(recordings: list[tuple[Path, str]], markers: list[dict],
                               out_dir: Path) -> dict[str, dict]:
    """Where a scanned recording has an annotation file beside it (cry.detect.events), how its
    segments agree with it: name -> its row of the --events scoring, and agreement.json and .md
    over all of them. A bad annotation file is one error line; its recording has no row."""
    from cry.detect import events

    by_name, rows = {name: recording for recording, name in recordings}, {}
    for marker in markers:
        notes = events.annotation_file(by_name[marker["name"]])
        if notes is None:
            continue
        try:
            annotated = events.read_annotations(notes)
        except UserError as exc:
            say_error(str(exc))
            continue
        spans = [(onset, offset, said) for onset, offset, said, _ in marker["segments"]]
        rows[marker["name"]] = events.recording_row(marker["name"], "all", marker["seconds"], annotated, spans)
    if rows:
        report = {**events.agreement(list(rows.values())), "recordings": list(rows.values()),
                  "onset_collar_seconds": events.ONSET_COLLAR_SECONDS}
        write_json(report, Path(out_dir) / "agreement.json")
        write_text(events.markdown(report), Path(out_dir) / "agreement.md")
    return rows
