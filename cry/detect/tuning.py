"""Choosing the detector's recipe and the episode rules on nights, by source.

The nights' windows go through the detector's one feature function once (cry.detect.detector's
audio_windows: each YAMNet patch once, the quiet gate) and are cached; every candidate head,
threshold and episode rule is then replayed over them through the live decision rule
(cry.decision.Decision) and scored as evaluate_model.py --events scores a night
(cry.detect.events). A head is never scored on nights made of sources it was trained on: the
nights of a group are judged by heads trained without that group's sources.
"""
from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import numpy as np
from tqdm import tqdm

from cry.audio import decode
from cry.decision import Decision, WindowScores
from cry.detect import detector as det
from cry.detect.events import annotated_recordings, read_annotations, score, summarise
from cry.detect.nights import night_backgrounds
from cry.params import LiveSettings


@dataclasses.dataclass
class Night:
    name: str
    background: str
    seconds: float
    cries: list           # (onset, offset) seconds
    table: dict           # det.audio_windows of the whole night
    rate: int


def night_tables(folder: Path, yamnet, band_hz: int | None, live: LiveSettings,
                 cache_dir: Path | None = None) -> list[Night]:
    """Every annotated recording of folder as a Night (its windows computed once, cached)."""
    nights, backgrounds = [], night_backgrounds(folder)
    for audio_path, notes in tqdm(annotated_recordings(folder), desc="night windows", unit="night", leave=False):
        cries = [(e.onset, e.offset) for e in read_annotations(notes) if e.is_cry]
        stat = audio_path.stat()
        key = f"{audio_path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{band_hz}|{det.VERSION}|" \
              f"{sorted(live.to_dict().items())}|{getattr(yamnet, 'name', 'coral')}|2"
        cached = Path(cache_dir) / f"night_{hashlib.sha1(key.encode()).hexdigest()}.npz" if cache_dir else None
        if cached is not None and cached.is_file():
            with np.load(cached) as z:
                table, rate = {k: z[k] for k in z.files if k != "rate"}, int(z["rate"])
        else:
            audio, rate = decode(audio_path)
            table = det.audio_windows(yamnet, audio, rate, band_hz, live)
            if cached is not None:
                cached.parent.mkdir(parents=True, exist_ok=True)
                np.savez(cached, rate=rate, **table)
        seconds = float(table["end"][-1]) / rate if len(table["end"]) else 0.0
        nights.append(Night(audio_path.name, backgrounds.get(audio_path.name, "all"), seconds, cries, table, rate))
    return nights


def replay(probabilities: np.ndarray, night: Night, threshold: float, live: LiveSettings) -> list[tuple]:
    """The night's episodes (onset, offset, said) through the live decision rule."""
    decision, spans, said = Decision(threshold, live), [], {}
    table = night.table
    for p, heard, level, end in zip(probabilities, table["heard"], table["level_dbfs"], table["end"]):
        at = float(end) / night.rate
        _, event = decision.update(WindowScores(float(level), float(p) if heard else None), at, at)
        spans += collect(event, said)
    spans += collect(decision.close(night.seconds, night.seconds), said)
    return spans


def collect(event, said: dict) -> list[tuple]:
    if event is None:
        return []
    if event.kind == "start":
        said[event.start] = event.said_stream_seconds
        return []
    onset = event.stream_start_seconds
    return [(onset, onset + event.duration_seconds, said.pop(event.start, onset))]


def night_scores(nights: list[Night], probabilities: list[np.ndarray], threshold: float,
                 live: LiveSettings) -> dict:
    """summarise() over the nights, overall and by background."""
    rows = [{**score(n.cries, replay(p, n, threshold, live), n.seconds), "group": n.background}
            for n, p in zip(nights, probabilities)]
    groups = sorted({r["group"] for r in rows})
    return {"overall": summarise(rows),
            "by_group": {g: summarise([r for r in rows if r["group"] == g]) for g in groups}}


def meets_targets(result: dict, caught: float = 0.97, latency_p90: float = 5.0, false_alarms: float = 1.0,
                  per_cry: float = 1.2) -> bool:
    """The nights targets: cries caught, onset latency p90, false alarms per hour on every background,
    episodes per caught cry."""
    o = result["overall"]
    return bool(o["caught_share"] is not None and o["caught_share"] >= caught and o["latency_p90_seconds"] is not None
                and o["latency_p90_seconds"] <= latency_p90 and o["episodes_per_caught_cry"] <= per_cry
                and all(g["false_alarms_per_hour"] is not None and g["false_alarms_per_hour"] <= false_alarms
                        for g in result["by_group"].values()))
