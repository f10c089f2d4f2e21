"""How the detector's design was chosen, reproducibly: each candidate recipe measured by source.

`evaluate_model.py --detector-cv` runs this and writes reports/detector_design.{json,md}, the
README's design table. Training columns (the corpus and the generated sounds) come from grouped
5-fold cross-validation by source, with the head and its threshold fitted inside each fold's
training sources; the real-room columns come from a head trained on all of those and tested on
the sounds tree (`--sounds`), which none of the recipes saw. Every clip goes through the live
decision rule with the live settings, exactly as cry.detect.training fits the shipped detector.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from cry.corpus import OTHER_CRY_TAGS
from cry.detect import detector as det
from cry.detect.sounds import Clip
from cry.detect.training import clip_outcome, clip_tables, fit_with_threshold, folds, window_probabilities
from cry.files import write_json, write_text
from cry.params import LiveSettings

ZERO_SHOT_SCORE = 0.5


@dataclasses.dataclass(frozen=True)
class Design:
    """One candidate recipe: the band YAMNet hears, and the head's gates (or YAMNet alone)."""

    name: str
    band_hz: int | None = det.BAND_HZ
    floor: float = det.FLOOR
    rival_ratio: float = det.RIVAL_RATIO
    zero_shot: bool = False

    @property
    def rule(self) -> dict:
        return {"floor": self.floor, "rival_ratio": self.rival_ratio}


DESIGNS = (
    Design("YAMNet zero-shot, full band", band_hz=None, zero_shot=True),
    Design("head alone (logistic regression on the mean embedding), 4 kHz", floor=0.0, rival_ratio=0.0),
    Design("head + YAMNet's cry trace, 4 kHz", rival_ratio=0.0),
    Design("+ rival gate x2, 4 kHz (shipped)"),
    Design("+ rival gate x2, full band", band_hz=None),
    Design("+ rival gate x4, 4 kHz", rival_ratio=4.0),
)


def cross_validate(tables: list[dict], clips: list[Clip], design: Design, live: LiveSettings, n_folds: int = 5,
                   seed: int = 0) -> tuple[np.ndarray, list[float]]:
    """Leave-source-out outcomes [n_clips, 2] (any crying answer, episodes) of the whole recipe (head
    and threshold tuned inside each fold's training sources), and the fold thresholds."""
    result, thresholds = np.zeros((len(clips), 2), int), []
    for train, test in folds(clips, n_folds, seed):
        threshold, probabilities = fitted([tables[i] for i in train], [clips[i] for i in train],
                                          [tables[i] for i in test], design, live, seed)
        thresholds.append(threshold)
        for i, p in zip(test, probabilities):
            result[i] = clip_outcome(p, tables[i]["heard"], threshold, live)
    return result, thresholds


def fitted(train_tables: list[dict], train_clips: list[Clip], test_tables: list[dict], design: Design,
           live: LiveSettings, seed: int = 0) -> tuple[float, list[np.ndarray]]:
    """(threshold, window probabilities of each test clip) of the recipe fitted on the training clips;
    zero-shot: "Baby cry" above ZERO_SHOT_SCORE in a window's patch."""
    if design.zero_shot:
        return ZERO_SHOT_SCORE, [t["baby_cry"] for t in test_tables]
    head, threshold = fit_with_threshold(train_tables, train_clips, live, seed, **design.rule)
    return threshold, [window_probabilities(head, t) for t in test_tables]


def folder_rates(clips: list[Clip], result: np.ndarray, seed: int = 0, n_boot: int = 500) -> dict:
    """Per sub-folder: clips, sources, crying_clips, share, and a 90% interval of the share from
    resampling its sources (clips of one source rise and fall together)."""
    rng, rates = np.random.default_rng(seed), {}
    for folder in sorted({c.folder for c in clips}):
        index = [i for i, c in enumerate(clips) if c.folder == folder]
        by_source = {}
        for i in index:
            by_source.setdefault(clips[i].source, []).append(result[i, 0])
        sums = np.array([(sum(v), len(v)) for v in by_source.values()], float)
        boot = [sums[pick, 0].sum() / sums[pick, 1].sum()
                for pick in rng.integers(len(sums), size=(n_boot, len(sums)))]
        crying = int(result[index, 0].sum())
        rates[folder] = {"clips": len(index), "sources": len(by_source), "crying_clips": crying,
                         "share": round(crying / len(index), 4),
                         "interval_90": [round(float(q), 4) for q in np.percentile(boot, [5, 95])]}
    return rates


def is_corpus_cry(folder: str) -> bool:
    """A folder of corpus cries: a class folder (its uploads/ too) or an other-tag tree's (cry/dont_know...)."""
    return ((folder.startswith("corpus/") and not folder.startswith("corpus/silence"))
            or folder.removeprefix("cry/") in OTHER_CRY_TAGS.values())


def origin_of(folder: str) -> str:
    """Where a corpus cry came from: the cleaned folder, or a decoded original upload."""
    return "uploads" if folder.endswith("/uploads") or not folder.startswith("corpus/") else "cleaned folder"


def group_of(clip: Clip) -> str:
    """The design table's training columns: corpus cries, corpus room tone, cry mixes, generated not-crying."""
    if clip.folder.startswith("corpus/silence"):
        return "corpus room tone"
    if is_corpus_cry(clip.folder):
        return "corpus cries"
    return "cry mixes" if clip.label == 1 else "generated not-crying"


def false_alarms_per_hour(clips: list[Clip], tables: list[dict], result: np.ndarray) -> float:
    """Crying episodes per hour of the not-crying clips' own audio (without the padding)."""
    index = [i for i, c in enumerate(clips) if c.label == 0]
    hours = sum(float(tables[i]["seconds"]) for i in index) / 3600
    return round(float(result[index, 1].sum() / hours), 2) if hours else 0.0


def design_row(design: Design, train: tuple[list[Clip], list[dict]], sounds: tuple[list[Clip], list[dict]],
               live: LiveSettings, seed: int = 0) -> dict:
    """One recipe's row: training columns by cross-validation, real-room columns held out."""
    (train_clips, train_tables), (sound_clips, sound_tables) = train, sounds
    cv, thresholds = cross_validate(train_tables, train_clips, design, live, seed=seed)
    cries = [i for i, c in enumerate(train_clips) if is_corpus_cry(c.folder)]
    groups = {}
    for i, clip in enumerate(train_clips):
        groups.setdefault(group_of(clip), []).append(cv[i, 0])
    threshold, probabilities = fitted(train_tables, train_clips, sound_tables, design, live, seed)
    held_out = np.array([clip_outcome(p, t["heard"], threshold, live) for p, t in zip(probabilities, sound_tables)],
                        int).reshape(-1, 2)
    return {"design": design.name, "band_hz": design.band_hz, "floor": design.floor,
            "rival_ratio": design.rival_ratio, "cv_thresholds": thresholds, "threshold": threshold,
            "training": {g: round(float(np.mean(v)), 4) for g, v in sorted(groups.items())},
            "training_folders": folder_rates(train_clips, cv, seed),
            "corpus_cries_by_origin": folder_rates([dataclasses.replace(train_clips[i], folder=origin_of(
                train_clips[i].folder)) for i in cries], cv[cries], seed) if cries else {},
            "real_room": folder_rates(sound_clips, held_out, seed),
            "real_room_false_alarms_per_hour": false_alarms_per_hour(sound_clips, sound_tables, held_out)}


def design_report(train_clips: list[Clip], sound_clips: list[Clip], yamnet, live: LiveSettings,
                  out_dir: Path, cache_dir: Path | None = None, designs=DESIGNS, seed: int = 0) -> dict:
    """Every design's row, written to out_dir/detector_design.json and .md. Returns the report."""
    tables = {}
    for band in sorted({d.band_hz for d in designs}, key=str):
        tables[band] = (clip_tables(train_clips, yamnet, band, live, cache_dir, f"training clips, band {band}"),
                        clip_tables(sound_clips, yamnet, band, live, cache_dir, f"real-room clips, band {band}"))
    rows = [design_row(d, (train_clips, tables[d.band_hz][0]), (sound_clips, tables[d.band_hz][1]), live, seed)
            for d in designs]
    report = {"live_path": live.to_dict(), "seed": seed, "rows": rows}
    write_json(report, Path(out_dir) / "detector_design.json")
    write_text(design_markdown(report), Path(out_dir) / "detector_design.md")
    return report


def design_markdown(report: dict) -> str:
    """The design table: share of clips with any crying answer per column, and false alarms per hour."""
    rows = report["rows"]
    train_cols = list(rows[0]["training"])
    room_cols = list(rows[0]["real_room"])
    lines = ["| design | " + " | ".join(train_cols + [c.split("/", 1)[-1] for c in room_cols]) + " | false alarms/h |",
             "|---|" + "---|" * (len(train_cols) + len(room_cols) + 1)]
    for r in rows:
        cells = [f"{r['training'][c]:.1%}" for c in train_cols] + [f"{r['real_room'][c]['share']:.1%}"
                                                                     for c in room_cols]
        lines.append(f"| {r['design']} | " + " | ".join(cells) + f" | {r['real_room_false_alarms_per_hour']:.1f} |")
    shipped = next((r for r in rows if "shipped" in r["design"]), rows[-1])
    corpus = {f.split("/", 1)[1]: v["share"] for f, v in shipped["training_folders"].items() if is_corpus_cry(f)}
    if "corpus cries" in shipped["training"]:
        lines += ["", f"Corpus cries detected by the shipped design, cross-validated by source: "
                      f"{shipped['training']['corpus cries']:.1%} ("
                  + ", ".join(f"{c} {share:.0%}" for c, share in corpus.items()) + ")."]
        lines += [f"By origin: {origin} {v['crying_clips']}/{v['clips']} cries from {v['sources']} babies, "
                  f"{v['share']:.1%} [90%: {v['interval_90'][0]:.1%}, {v['interval_90'][1]:.1%}] (babies resampled)."
                  for origin, v in shipped.get("corpus_cries_by_origin", {}).items()]
    return "\n".join(lines) + "\n"
