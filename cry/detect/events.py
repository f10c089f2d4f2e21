"""Long recordings with annotations, scored as a parent lives them, through the live path.

Any folder of recordings, each with an annotation file beside it (<name>.txt as an Audacity
label track: onset, offset, label, tab-separated; or <name>.csv with the header onset,offset,label).
Events whose label starts with "cry" are the cries; the rest of the time is not crying. Each
recording is streamed from disk through cry.live_path exactly as the monitor hears a file, and
its crying episodes are compared with the cries: cries caught (an episode overlaps the cry), the
time from the cry's start to the episode's start, false alarms per hour of not-crying time
(episodes that overlap no cry), episodes per caught cry, and event-based F1 from sed_eval.
"""
from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

import numpy as np
from tqdm import tqdm

from cry.audio import list_audio_files
from cry.files import UserError, write_json, write_text
from cry.live_path import Output, run
from cry.stream import file_source

ONSET_COLLAR_SECONDS = 5.0  # sed_eval: an episode starting within this of a cry's start is a hit


@dataclasses.dataclass(frozen=True)
class Event:
    onset: float
    offset: float
    label: str

    @property
    def is_cry(self) -> bool:
        return self.label.lower().startswith("cry")


def read_annotations(path: Path) -> list[Event]:
    """The events of an annotation file, or one UserError line naming the file and the bad line."""
    rows = []
    try:
        text = Path(path).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot read the annotations ({getattr(exc, 'strerror', None) or exc})") from None
    lines = [line for line in text.splitlines() if line.strip()]
    if Path(path).suffix.lower() == ".csv":
        reader = csv.DictReader(lines)
        if not reader.fieldnames or not {"onset", "offset", "label"} <= set(reader.fieldnames):
            raise UserError(f"{path}: expected a header onset,offset,label")
        rows = [(i + 2, (r["onset"], r["offset"], r["label"])) for i, r in enumerate(reader)]
    else:
        rows = [(i + 1, line.split("\t")) for i, line in enumerate(lines) if not line.startswith("\\")]
    events = []
    for number, fields in rows:
        try:
            onset, offset, label = float(fields[0]), float(fields[1]), str(fields[2]).strip()
        except (ValueError, IndexError, TypeError):
            raise UserError(f"{path}: line {number} is not onset, offset, label ({fields!r})") from None
        if not (0 <= onset <= offset) or not label:
            raise UserError(f"{path}: line {number}: need 0 <= onset <= offset and a label")
        events.append(Event(onset, offset, label))
    return events


def annotation_file(audio: Path) -> Path | None:
    """The annotation file beside a recording (<name>.txt, else <name>.csv), if there is one."""
    notes = [Path(audio).with_suffix(s) for s in (".txt", ".csv") if Path(audio).with_suffix(s).is_file()]
    return notes[0] if notes else None


def annotated_recordings(folder: Path) -> list[tuple[Path, Path]]:
    """(recording, its annotation file) of every annotated recording below folder."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"--events {folder}: no such folder")
    pairs = [(audio, annotation_file(audio)) for audio in list_audio_files(folder)]
    pairs = [(audio, notes) for audio, notes in pairs if notes is not None]
    if not pairs:
        raise UserError(f"--events {folder}: no recording with an annotation file beside it "
                        "(<name>.txt: onset, offset, label, tab-separated; or <name>.csv)")
    return pairs


class Episodes(Output):
    """Keeps the episodes of a recording as (onset, offset, said) in stream seconds (said: when its
    start was said, the alert's time), and counts windows."""

    def __init__(self):
        self.spans: list[tuple[float, float, float]] = []
        self.windows, self._said = 0, {}

    def on_window(self, state) -> None:
        self.windows += 1

    def on_episode(self, event) -> None:
        if event.kind == "start":
            self._said[event.start] = event.said_stream_seconds
        else:
            onset = event.stream_start_seconds
            self.spans.append((onset, onset + event.duration_seconds, self._said.pop(event.start, onset)))


def overlaps(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def score(cries: list[tuple[float, float]], episodes: list[tuple[float, float, float]], seconds: float) -> dict:
    """What the episodes (onset, offset, said) of one recording did with its cries: the latency of
    a caught cry is from its start to when the first episode overlapping it was said."""
    caught = [[e for e in episodes if overlaps(e, c)] for c in cries]
    false = [e for e in episodes if not any(overlaps(e, c) for c in cries)]
    crying_seconds = sum(min(off, seconds) - on for on, off in cries)
    return {"cries": len(cries), "caught": sum(bool(c) for c in caught),
            "latencies": [max(0.0, min(e[2] for e in got) - cry[0]) for cry, got in zip(cries, caught) if got],
            "episodes_per_caught": [len(got) for got in caught if got], "false_alarms": len(false),
            "not_crying_hours": max(seconds - crying_seconds, 0.0) / 3600, "episodes": len(episodes)}


def recording_row(file: str, group: str, seconds: float, events: list[Event],
                  spans: list[tuple[float, float, float]]) -> dict:
    """One recording's line of the report: its cries, its episodes (onset, offset, said) and score()."""
    cries = [(e.onset, e.offset) for e in events if e.is_cry]
    return {"file": file, "group": group, "seconds": round(seconds, 2), "cry_spans": cries,
            "episode_spans": [(round(a, 2), round(b, 2), round(c, 2)) for a, b, c in spans],
            **score(cries, spans, seconds)}


def agreement(rows: list[dict]) -> dict:
    """The figures over all recordings (with sed_eval's F1) and by group."""
    by_group = {g: summarise([r for r in rows if r["group"] == g]) for g in sorted({r["group"] for r in rows})}
    return {"overall": {**summarise(rows), **event_f1(rows)}, "by_group": by_group}


def event_f1(recordings: list[dict]) -> dict:
    """Event-based (onsets within ONSET_COLLAR_SECONDS) and segment-based (1 s) F1 from sed_eval."""
    import dcase_util
    import sed_eval

    def listed(rows):
        return dcase_util.containers.MetaDataContainer(rows)
    events = sed_eval.sound_event.EventBasedMetrics(["cry"], t_collar=ONSET_COLLAR_SECONDS, evaluate_onset=True,
                                                    evaluate_offset=False)
    segments = sed_eval.sound_event.SegmentBasedMetrics(["cry"], time_resolution=1.0)
    for r in recordings:
        ref = listed([{"event_label": "cry", "onset": a, "offset": b, "filename": r["file"]}
                      for a, b in r["cry_spans"]])
        est = listed([{"event_label": "cry", "onset": a, "offset": b, "filename": r["file"]}
                      for a, b, _ in r["episode_spans"]])
        events.evaluate(ref, est)
        segments.evaluate(ref, est)
    return {"event_f1": events.results_overall_metrics()["f_measure"]["f_measure"],
            "segment_f1": segments.results_overall_metrics()["f_measure"]["f_measure"]}


def summarise(rows: list[dict]) -> dict:
    """The figures over a set of recordings: caught, latency p50/p90, false alarms per hour, episodes per cry."""
    latencies = np.concatenate([r["latencies"] for r in rows]) if rows else np.zeros(0)
    per_caught = np.concatenate([r["episodes_per_caught"] for r in rows]) if rows else np.zeros(0)
    hours, cries = sum(r["not_crying_hours"] for r in rows), sum(r["cries"] for r in rows)
    return {"recordings": len(rows), "cries": cries, "caught": sum(r["caught"] for r in rows),
            "caught_share": round(sum(r["caught"] for r in rows) / cries, 4) if cries else None,
            "latency_p50_seconds": round(float(np.percentile(latencies, 50)), 2) if len(latencies) else None,
            "latency_p90_seconds": round(float(np.percentile(latencies, 90)), 2) if len(latencies) else None,
            "false_alarms": sum(r["false_alarms"] for r in rows), "not_crying_hours": round(hours, 3),
            "false_alarms_per_hour": round(sum(r["false_alarms"] for r in rows) / hours, 2) if hours else None,
            "false_alarms_per_hour_by_recording": [round(r["false_alarms"] / r["not_crying_hours"], 2)
                                                   for r in rows if r["not_crying_hours"]],
            "episodes_per_caught_cry": round(float(per_caught.mean()), 3) if len(per_caught) else None}


def events_report(folder: Path, path, out_dir: Path, groups: dict[str, str] | None = None,
                  about: dict | None = None) -> dict:
    """Every annotated recording of folder through the live path; reports/events.json and .md.
    groups: file name -> group (e.g. the background of a generated night), for a row each."""
    pairs = annotated_recordings(folder)
    rows = []
    for audio, notes in tqdm(pairs, desc="recordings", unit="recording"):
        events = read_annotations(notes)
        collect = Episodes()
        source = file_source(audio, fast=True)
        run(source, path.session(), [collect])
        rows.append(recording_row(str(audio.relative_to(folder)), (groups or {}).get(audio.name, "all"),
                                  source.ring.total / source.samplerate, events, collect.spans))
    report = {**agreement(rows), "recordings": rows, "live_path": path.live.to_dict(),
              "onset_collar_seconds": ONSET_COLLAR_SECONDS, **(about or {})}
    write_json(report, Path(out_dir) / "events.json")
    write_text(markdown(report), Path(out_dir) / "events.md")
    return report


def markdown(report: dict) -> str:
    """The nights table: a row per group and the overall row."""
    lines = ["| recordings | cries caught | onset latency p50 / p90 | false alarms per hour | "
             "episodes per caught cry |",
             "|---|---:|---:|---:|---:|"]
    for name, s in [*report["by_group"].items(), ("**all**", report["overall"])]:
        latency = "–" if s["latency_p50_seconds"] is None else \
            f"{s['latency_p50_seconds']:.1f} s / {s['latency_p90_seconds']:.1f} s"
        fa = "–" if s["false_alarms_per_hour"] is None else f"{s['false_alarms_per_hour']:.1f}"
        per = "–" if s["episodes_per_caught_cry"] is None else f"{s['episodes_per_caught_cry']:.2f}"
        lines.append(f"| {name} ({s['recordings']}) | {s['caught']} of {s['cries']} | {latency} | {fa} | {per} |")
    o = report["overall"]
    lines += ["", f"Event-based F1 (onsets within {report['onset_collar_seconds']:g} s): {o['event_f1']:.3f}; "
                  f"segment-based F1 (1 s): {o['segment_f1']:.3f} (sed_eval)."]
    return "\n".join(lines) + "\n"
