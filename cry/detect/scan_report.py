"""What a scan writes for a recording: its crying segments, minutes per hour, a timeline, and a summary row.

A segment is a crying episode as the monitor says it (cry.decision.Decision: from its first
crying window to its last, a cry's pauses inside it), so the segments are what a parent would
have been told, and what `evaluate_model.py --events` scores. Every file is written atomically
and formatted to fixed decimals, so that two scans of the same audio give the same bytes,
wherever their pieces were scored.
"""
from __future__ import annotations

import collections
import csv
import dataclasses
import io
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from cry.detect.events import Episodes
from cry.files import atomic_output, write_text

SEGMENTS_HEADER = ("onset_seconds", "offset_seconds", "duration_seconds", "mean_probability")
HOURLY_HEADER = ("hour", "start_seconds", "audio_minutes", "crying_minutes")


@dataclasses.dataclass(frozen=True)
class Segment:
    onset: float           # stream seconds, where the episode's first crying window ends
    offset: float          # where its last crying window ends
    said: float            # when its start was said (the alert's time)
    mean_probability: float  # the detector's mean over the heard windows from onset to offset

    @property
    def duration(self) -> float:
        return self.offset - self.onset


class Segments(Episodes):
    """The episodes of a recording (as cry.detect.events.Episodes keeps them, for the agreement)
    with the mean cry probability of their heard windows. Memory: the windows of the episode under
    way, and a few before it (an episode is said once it has lasted episode_start_windows)."""

    def __init__(self, start_windows: int):
        super().__init__()
        self.segments: list[Segment] = []
        self._recent = collections.deque(maxlen=start_windows + 1)  # (stream seconds, p) before an episode
        self._open: list[tuple[float, float]] | None = None

    def on_window(self, state) -> None:
        super().on_window(state)
        if state.cry_probability is not None:
            (self._recent if self._open is None else self._open).append((state.stream_seconds, state.cry_probability))

    def on_episode(self, event) -> None:
        super().on_episode(event)
        if event.kind == "start":
            self._open = [w for w in self._recent if w[0] >= event.stream_start_seconds]
            self._recent.clear()
            return
        onset, offset, said = self.spans[-1]
        inside = [p for at, p in self._open or [] if onset <= at <= offset]
        self.segments.append(Segment(onset, offset, said, float(np.mean(inside)) if inside else float("nan")))
        self._open = None


def csv_text(header: tuple, rows: list[tuple]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


def segments_csv(segments: list[Segment]) -> str:
    return csv_text(SEGMENTS_HEADER, [(f"{s.onset:.2f}", f"{s.offset:.2f}", f"{s.duration:.2f}",
                                       f"{s.mean_probability:.4f}") for s in segments])


def audacity_labels(segments: list[Segment]) -> str:
    """An Audacity label track (File > Import > Labels; ELAN imports it as tab-delimited text)."""
    return "".join(f"{s.onset:.2f}\t{s.offset:.2f}\tcrying {s.mean_probability:.2f}\n" for s in segments)


def crying_minutes_per_hour(segments: list[Segment], seconds: float) -> list[tuple[int, float, float]]:
    """(hour, minutes of audio in it, minutes of crying in it) for each hour of the recording; a
    segment across the turn of an hour counts in both."""
    rows = []
    for hour in range(max(1, int(np.ceil(seconds / 3600)))):
        start, end = 3600 * hour, min(3600 * (hour + 1), seconds)
        crying = sum(max(0.0, min(s.offset, end) - max(s.onset, start)) for s in segments)
        rows.append((hour, max(0.0, end - start) / 60, crying / 60))
    return rows


def hourly_csv(rows: list[tuple[int, float, float]]) -> str:
    return csv_text(HOURLY_HEADER, [(h, 3600 * h, f"{audio:.2f}", f"{crying:.2f}") for h, audio, crying in rows])


def timeline_png(name: str, segments: list[Segment], rows: list[tuple[int, float, float]], path: Path) -> Path:
    """Crying minutes per hour as bars, above the segments on the recording's time line."""
    fig = Figure(figsize=(10, 4.5))
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    hours = np.array([h for h, _, _ in rows])
    top.bar(hours + 0.5, [c for _, _, c in rows], width=0.9, color="tab:red")
    top.set(ylabel="crying minutes", title=f"{name}: {sum(c for _, _, c in rows):.1f} minutes of crying in "
                                           f"{sum(a for _, a, _ in rows) / 60:.1f} h, {len(segments)} segments")
    bottom.broken_barh([(s.onset / 3600, max(s.duration, 1.0) / 3600) for s in segments], (0, 1), color="tab:red")
    bottom.set(xlabel="hour of the recording", yticks=[], xlim=(0, max(1, len(rows))))
    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    return path


def write_recording(stem: Path, name: str, segments: list[Segment], seconds: float) -> list[Path]:
    """<stem>.segments.csv, .labels.txt, .hourly.csv and .timeline.png of one recording."""
    rows = crying_minutes_per_hour(segments, seconds)
    paths = [stem.with_name(stem.name + suffix) for suffix in (".segments.csv", ".labels.txt", ".hourly.csv")]
    for text, path in zip((segments_csv(segments), audacity_labels(segments), hourly_csv(rows)), paths):
        write_text(text, path)
    return paths + [timeline_png(name, segments, rows, stem.with_name(stem.name + ".timeline.png"))]


SUMMARY_HEADER = ("recording", "hours", "segments", "crying_minutes", "crying_minutes_per_hour",
                  "longest_segment_minutes", "cries", "caught", "false_alarms", "latency_p50_seconds")


def crying_row(name: str, segments: list[Segment], seconds: float) -> tuple:
    """name, hours, segments, crying minutes (in all, per hour) and the longest segment's minutes."""
    hours, crying = seconds / 3600, sum(s.duration for s in segments) / 60
    return (name, f"{hours:.4f}", len(segments), f"{crying:.2f}", f"{crying / hours:.2f}" if hours else "",
            f"{max((s.duration for s in segments), default=0) / 60:.2f}")


def agreement_cells(row: dict | None) -> tuple:
    """cries, caught, false alarms and median latency of an annotated recording (blank if it is not)."""
    if row is None:
        return "", "", "", ""
    latency = f"{np.median(row['latencies']):.2f}" if row["latencies"] else ""
    return row["cries"], row["caught"], row["false_alarms"], latency


def write_summary(out_dir: Path, markers: list[dict], agreement_rows: dict[str, dict]) -> Path:
    """summary.csv: one row per recording (its agreement where it is annotated), and a row for all."""
    recordings = [(m["name"], [Segment(*s) for s in m["segments"]], m["seconds"]) for m in markers]
    rows = [crying_row(*r) + agreement_cells(agreement_rows.get(r[0])) for r in recordings]
    every = crying_row("all", [s for _, segments, _ in recordings for s in segments], sum(r[2] for r in recordings))
    path = Path(out_dir) / "summary.csv"
    write_text(csv_text(SUMMARY_HEADER, rows + [every + agreement_cells(None)]), path)
    return path
