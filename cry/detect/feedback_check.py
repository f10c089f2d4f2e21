"""Does marking help? A parent marks the first K false alarms of one kind of sound; how many of
the rest of that source still alarm, and are cries still caught?

For each not-crying folder of a sounds tree: a head (and its threshold, tuned as train_model.py
tunes it) trained on everything but that folder, so the sound is new to it as it would be in a
new home; the first K of the folder's clips that alarm (name order: the ones a parent would meet
first) marked "not a cry" with all their heard windows, as the page's button marks an episode,
through cry.detect.feedback.HomeLearning; then every clip judged again by the live decision rule
(cry.detect.training.clip_outcome): the rest of that folder, and the cries of the sounds tree.
Twice: with the shipped gates, and with the rival gate off (a home whose sound YAMNet does not
tell from a cry, where only the marks can help).
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from tqdm import tqdm

from cry.detect import detector as det
from cry.detect import training
from cry.detect.feedback import HomeLearning, sample_of
from cry.files import write_json, write_text
from cry.params import LiveSettings

K_MARKED = 3
RULES = {"shipped gates": {}, "rival gate off": {"rival_ratio": 0.0}}


def alarms(head: det.Head, tables: list[dict], threshold: float, live: LiveSettings) -> np.ndarray:
    """[n] clips with any crying answer under this head, through the live decision rule."""
    probabilities = [training.window_probabilities(head, t) for t in tables]
    return training.outcomes(probabilities, tables, threshold, live)[:, 0].astype(bool)


def folder_row(folder: str, clips: list, tables: list[dict], sound: np.ndarray, yamnet, live: LiveSettings,
               rule: dict, k: int) -> dict:
    """One not-crying folder of the sounds tree, new to the head: marked, and judged again."""
    index = [i for i, c in enumerate(clips) if sound[i] and c.folder == folder]
    train = [i for i in range(len(clips)) if i not in set(index)]
    tr_tables, tr_clips = [tables[i] for i in train], [clips[i] for i in train]
    head, threshold = training.fit_with_threshold(tr_tables, tr_clips, live, **rule)
    cries = [i for i, c in enumerate(clips) if sound[i] and c.label == 1]
    before = alarms(head, tables, threshold, live)
    marked = [i for i in index if before[i]][:k]
    after = before
    if marked:
        with tempfile.TemporaryDirectory() as home:
            detector = det.Detector(head, det.DetectorInfo(threshold, det.BAND_HZ, live), yamnet)
            learning = HomeLearning(detector, None, Path(home), sample_of(*training.training_windows(tr_tables,
                                                                                                     tr_clips)))
            learning.mark("not_cry", np.concatenate([tables[i]["embedding"][tables[i]["heard"]] for i in marked]))
            after = alarms(detector.head, tables, threshold, live)
    rest = [i for i in index if i not in marked]
    return {"folder": folder, "clips": len(index), "marked": len(marked), "rest": len(rest),
            "rest_alarmed_before": int(before[rest].sum()), "rest_alarmed_after": int(after[rest].sum()),
            "cries": len(cries), "cries_caught_before": int(before[cries].sum()),
            "cries_caught_after": int(after[cries].sum())}


def feedback_report(train_dirs: list[Path], sounds: Path, yamnet, live: LiveSettings, reports_dir: Path,
                    k: int = K_MARKED, cache_dir: Path | None = training.CACHE_DIR) -> dict:
    """The table (see the module), written to reports_dir/feedback.{json,md}."""
    train, tree = training.gather([Path(d) for d in train_dirs]), training.gather([Path(sounds)])
    clips = train + tree
    tables = training.clip_tables(clips, yamnet, det.BAND_HZ, live, cache_dir)
    sound = np.array([i >= len(train) for i in range(len(clips))])
    folders = sorted({c.folder for c in tree if c.label == 0})
    jobs = [(name, rule, folder) for name, rule in RULES.items() for folder in folders]
    rows = [{"rule": name, **folder_row(folder, clips, tables, sound, yamnet, live, rule, k)}
            for name, rule, folder in tqdm(jobs, desc="marking", unit="folder")]
    report = {"sounds": str(sounds), "k_marked": k, "live_path": live.to_dict(), "rows": rows}
    write_json(report, Path(reports_dir) / "feedback.json")
    write_text(markdown(report), Path(reports_dir) / "feedback.md")
    return report


def markdown(report: dict) -> str:
    lines = ["| gates | folder (new to the head) | marked \"not a cry\" | the rest alarmed: before | after | "
             "cries of the tree caught: before | after |", "|---|---|---:|---:|---:|---:|---:|"]
    for r in report["rows"]:
        lines.append(f"| {r['rule']} | {r['folder']} | {r['marked']} of {r['clips']} | "
                     f"{r['rest_alarmed_before']} of {r['rest']} | {r['rest_alarmed_after']} | "
                     f"{r['cries_caught_before']} of {r['cries']} | {r['cries_caught_after']} |")
    return "\n".join(lines) + "\n"
