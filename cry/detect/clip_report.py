"""The real-room report: each clip of a cry/ + not_cry/ tree played alone through the live path; who got "crying".

This is what a parent would see: every clip, padded with digital silence as
cry.live_path.play_clip pads it, goes through the live path (quiet gate, detector, reason
model, the decision rule, episodes) with the detector's own live settings. Beside it, YAMNet
alone ("Baby cry" above 0.5 in any patch of the clip): the anchor the detector must beat.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from tqdm import tqdm

from cry.audio import resample
from cry.decision import State
from cry.detect.sounds import Clip, list_clips, load_clip
from cry.files import UserError, write_json, write_text
from cry.live_path import LivePath, play_clip
from cry.yamnet import BABY_CRY

ZERO_SHOT_SCORE = 0.5


def check_sounds_dir(root: Path) -> None:
    """A folder with cry/ or not_cry/ at its top, or one UserError line saying what is wrong."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"--sounds {root}: no such folder")
    if not ((root / "cry").is_dir() or (root / "not_cry").is_dir()):
        raise UserError(f"--sounds {root}: expected cry/ and not_cry/ folders at its top (any sub-folders below "
                        f"them), found {sorted(p.name for p in root.iterdir())[:6] or 'an empty folder'}")


def play(audio: np.ndarray, rate: int, path: LivePath) -> dict:
    """One clip alone through the live path: {crying, episodes, windows}."""
    collect = play_clip(audio, rate, path)
    return {"crying": any(s.state == State.CRYING for s in collect.states),
            "episodes": sum(e.kind == "start" for e in collect.events), "windows": len(collect.states)}


def zero_shot(yamnet, audio: np.ndarray, rate: int) -> bool:
    """YAMNet alone: "Baby cry, infant cry" above ZERO_SHOT_SCORE in any patch of the whole clip (16 kHz, full band)."""
    scores, _ = yamnet.waveform(resample(audio, rate, yamnet.params.sample_rate_hz))
    return bool(scores[:, BABY_CRY].max() > ZERO_SHOT_SCORE)


def summarise(clips: list[Clip], rows: list[dict], key: str) -> dict:
    """Shares of clips with a crying answer (rows[i][key]) per folder and overall."""
    folders = {}
    for clip, row in zip(clips, rows):
        f = folders.setdefault(clip.folder, {"clips": 0, "crying_clips": 0, "no_answer_clips": 0})
        f["clips"] += 1
        f["crying_clips"] += int(row[key])
        f["no_answer_clips"] += int(row.get("windows", 1) == 0)
    for f in folders.values():
        f["share"] = round(f["crying_clips"] / f["clips"], 4)
    cry = [row[key] for c, row in zip(clips, rows) if c.label == 1]
    not_cry = [row[key] for c, row in zip(clips, rows) if c.label == 0]
    return {"folders": dict(sorted(folders.items())),
            "cry_detected_share": round(float(np.mean(cry)), 4) if cry else None,
            "not_cry_alarm_share": round(float(np.mean(not_cry)), 4) if not_cry else None}


def sounds_report(sounds_dir: Path, path: LivePath, yamnet, out_dir: Path = Path("reports"),
                  about: dict | None = None) -> dict:
    """Play every clip of sounds_dir through the live path; write out_dir/sounds.json and sounds.md.
    Returns the report (the JSON's content)."""
    check_sounds_dir(sounds_dir)
    clips, skipped = list_clips(sounds_dir)
    rows = []
    for clip in tqdm(clips, desc="sounds", unit="clip"):
        audio, rate = load_clip(clip.path)
        row = play(audio, rate, path)
        rows.append({**row, "seconds": len(audio) / rate, "zero_shot": zero_shot(yamnet, audio, rate)})
    live, anchor = summarise(clips, rows, "crying"), summarise(clips, rows, "zero_shot")
    not_cry = [r for c, r in zip(clips, rows) if c.label == 0]
    hours = sum(r["seconds"] for r in not_cry) / 3600
    report = {**live,
              "not_cry_false_alarms_per_hour": round(sum(r["episodes"] for r in not_cry) / hours, 2) if hours else None,
              "not_cry_hours": round(hours, 4),
              "yamnet_zero_shot": {**anchor, "rule": f"'Baby cry' score > {ZERO_SHOT_SCORE} in any patch of the clip"},
              "live_path": path.live.to_dict(),
              "skipped": [{"path": str(p), "why": why} for p, why in skipped],
              **(about or {})}
    out_dir = Path(out_dir)
    write_json(report, out_dir / "sounds.json")
    write_text(markdown(report), out_dir / "sounds.md")
    return report


def markdown(report: dict) -> str:
    """The report as a Markdown table: each folder's share of clips answered "crying", live and zero-shot."""
    anchor = report["yamnet_zero_shot"]["folders"]
    lines = ["| sounds | clips | answered \"crying\" (live path, detector) | YAMNet zero-shot |",
             "|---|---:|---:|---:|"]
    for folder, f in report["folders"].items():
        note = f" ({f['no_answer_clips']} too short for one window)" if f["no_answer_clips"] else ""
        lines.append(f"| {folder} | {f['clips']} | {f['share']:.0%}{note} | {anchor[folder]['share']:.0%} |")
    for key, name in (("cry_detected_share", "all crying clips: detected"),
                      ("not_cry_alarm_share", "all not-crying clips: any crying answer")):
        if report[key] is not None:
            lines.append(f"| **{name}** | | **{report[key]:.1%}** | {report['yamnet_zero_shot'][key]:.1%} |")
    if report["not_cry_false_alarms_per_hour"] is not None:
        lines.append(f"| **false alarms per hour of not-crying audio** | | "
                     f"**{report['not_cry_false_alarms_per_hour']:.1f}** | |")
    return "\n".join(lines) + "\n"
