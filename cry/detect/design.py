"""How the detector's design is chosen, reproducibly: each candidate recipe measured by source.

`evaluate_model.py --detector-cv --sounds DIR` runs this and writes reports/detector_design.{json,md},
the README's design table. Three views, none of which lets a recipe be scored on a source it
was trained or tuned on:
- training columns: grouped 5-fold cross-validation by source over the corpus and the generated
  sounds (head and threshold fitted inside each fold's training sources);
- real-room columns: each folder of the sounds tree scored by a recipe trained on everything
  else (leave one folder out: a laugh recording is judged by a head that never heard a laugh);
- nights: nights mixed from one half of the sources (cry.detect.nights.source_groups), scored
  through the live decision rule by a recipe trained without that half, then the other way round.
Every clip and night goes through the live path's feature function and decision rule.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from cry.corpus import OTHER_CRY_TAGS
from cry.detect import detector as det
from cry.detect import nights as night_mixer
from cry.detect.nights import NightRecipe
from cry.detect import tuning
from cry.detect.sounds import Clip
from cry.detect.training import clip_outcome, clip_tables, fit_with_threshold, folds, window_probabilities
from cry.files import write_json, write_text
from cry.params import LiveSettings

ZERO_SHOT_SCORE = 0.5


@dataclasses.dataclass(frozen=True)
class Design:
    """One candidate recipe: the band YAMNet hears, the head's gates, what it trains on."""

    name: str
    band_hz: int | None = det.BAND_HZ
    floor: float = det.FLOOR
    rival_ratio: float = det.RIVAL_RATIO
    rivals: tuple = det.RIVALS
    zero_shot: bool = False
    with_sounds: bool = True        # the sounds tree in training (always without the source scored)
    yamnet: str = "coral"

    @property
    def rule(self) -> dict:
        return {"floor": self.floor, "rival_ratio": self.rival_ratio, "rivals": self.rivals}


DESIGNS = (
    Design("YAMNet zero-shot, full band", band_hz=None, zero_shot=True, with_sounds=False),
    Design("before: corpus + generated; rivals laughter, animal x2", rivals=("laughter", "animal"),
           rival_ratio=2.0, with_sounds=False),
    Design("+ the sounds tree in training, same gate", rivals=("laughter", "animal"), rival_ratio=2.0),
    Design("head + cry trace, no rival gate", rival_ratio=0.0),
    Design("rivals laughter, animal, music x2", rival_ratio=2.0),
    Design("rivals laughter, animal, music x2.5 (shipped)"),
    Design("rivals laughter, animal, music x3", rival_ratio=3.0),
    Design("rivals laughter, animal, speech x2.5", rivals=("laughter", "animal", "speech")),
    Design("shipped, full band", band_hz=None),
    Design("shipped, TF Hub's YAMNet", yamnet="tfhub"),
)


def fitted(train_tables: list[dict], train_clips: list[Clip], test_tables: list[dict], design: Design,
           live: LiveSettings, seed: int = 0) -> tuple[float, list[np.ndarray]]:
    """(threshold, window probabilities of each test table) of the recipe fitted on the training clips;
    zero-shot: "Baby cry" above ZERO_SHOT_SCORE in a window's patch."""
    if design.zero_shot:
        return ZERO_SHOT_SCORE, [t["baby_cry"] for t in test_tables]
    head, threshold = fit_with_threshold(train_tables, train_clips, live, seed, **design.rule)
    return threshold, [window_probabilities(head, t) for t in test_tables]


def rates(clips: list[Clip], crying: np.ndarray, key, seed: int = 0, n_boot: int = 500) -> dict:
    """Per key(clip): clips, sources, crying_clips, share, and a 90% interval of the share from
    resampling its sources (the clips of one source, one baby, rise and fall together)."""
    rng, out = np.random.default_rng(seed), {}
    for name in sorted({key(c) for c in clips}):
        by_source = {}
        for c, hit in zip(clips, crying):
            if key(c) == name:
                by_source.setdefault(c.source, []).append(bool(hit))
        sums = np.array([(sum(v), len(v)) for v in by_source.values()], float)
        boot = [sums[pick, 0].sum() / sums[pick, 1].sum()
                for pick in rng.integers(len(sums), size=(n_boot, len(sums)))]
        hits, n = int(sums[:, 0].sum()), int(sums[:, 1].sum())
        out[name] = {"clips": n, "sources": len(by_source), "crying_clips": hits, "share": round(hits / n, 4),
                     "interval_90": [round(float(q), 4) for q in np.percentile(boot, [5, 95])]}
    return out


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


@dataclasses.dataclass
class Material:
    """Clips and nights of one band and YAMNet build, their windows computed once."""

    clips: list[Clip]
    tables: list[dict]
    sound: np.ndarray             # bool [n_clips]: the clip is from the sounds tree
    nights: dict                  # group -> list of tuning.Night
    groups: dict                  # source -> night group


def design_row(design: Design, m: Material, live: LiveSettings, seed: int = 0) -> dict:
    """One recipe's row: training columns by cross-validation, real-room and nights held out."""
    base = [i for i in range(len(m.clips)) if not m.sound[i]]
    cv = np.zeros(len(m.clips), bool)
    for train, test in folds([m.clips[i] for i in base], 5, seed):
        tr, te = [base[i] for i in train], [base[i] for i in test]
        threshold, probs = fitted([m.tables[i] for i in tr], [m.clips[i] for i in tr], [m.tables[i] for i in te],
                                  design, live, seed)
        for i, p in zip(te, probs):
            cv[i] = clip_outcome(p, m.tables[i]["heard"], threshold, live)[0]
    room = np.zeros(len(m.clips), bool)
    for folder in sorted({c.folder for c, s in zip(m.clips, m.sound) if s}):
        te = [i for i, c in enumerate(m.clips) if m.sound[i] and c.folder == folder]
        left_out = set(te)
        tr = [i for i in range(len(m.clips)) if i not in left_out and (design.with_sounds or not m.sound[i])]
        threshold, probs = fitted([m.tables[i] for i in tr], [m.clips[i] for i in tr], [m.tables[i] for i in te],
                                  design, live, seed)
        for i, p in zip(te, probs):
            room[i] = clip_outcome(p, m.tables[i]["heard"], threshold, live)[0]
    cries = [m.clips[i] for i in base if is_corpus_cry(m.clips[i].folder)]
    scored = []
    for group, night_list in m.nights.items():
        tr = [i for i, c in enumerate(m.clips) if m.groups.get(c.source, -1) != group
              and (design.with_sounds or not m.sound[i])]
        threshold, probs = fitted([m.tables[i] for i in tr], [m.clips[i] for i in tr],
                                  [n.table for n in night_list], design, live, seed)
        scored.append(tuning.night_scores(night_list, probs, threshold, live))
    return {"design": design.name, **{k: v for k, v in dataclasses.asdict(design).items() if k != "name"},
            "training": {k: v["share"] for k, v in rates([m.clips[i] for i in base], cv[base], group_of).items()},
            "training_folders": rates([m.clips[i] for i in base], cv[base], lambda c: c.folder),
            "corpus_cries_by_origin": rates(cries, cv[[i for i in base if is_corpus_cry(m.clips[i].folder)]],
                                            lambda c: origin_of(c.folder), seed),
            "real_room": rates([c for c, s in zip(m.clips, m.sound) if s], room[m.sound], lambda c: c.folder),
            "nights": nights_summary(scored)}


def nights_summary(scored: list[dict]) -> dict:
    """The nights columns over both halves (tuning.night_scores of each): None where nothing was caught."""
    overall = [s["overall"] for s in scored]

    def mean(key):
        values = [o[key] for o in overall if o[key] is not None]
        return round(float(np.mean(values)), 3) if values else None
    latencies = [o["latency_p90_seconds"] for o in overall if o["latency_p90_seconds"] is not None]
    return {"cries": sum(o["cries"] for o in overall), "caught": sum(o["caught"] for o in overall),
            "latency_p90_seconds": max(latencies) if latencies else None,
            "false_alarms_per_hour": mean("false_alarms_per_hour"),
            "worst_background_false_alarms_per_hour": max(g["false_alarms_per_hour"] or 0.0 for s in scored
                                                          for g in s["by_group"].values()),
            "episodes_per_caught_cry": mean("episodes_per_caught_cry")}

def material(train_dirs: list[Path], sounds_dir: Path, live: LiveSettings, yamnet_dir: Path | None, band_hz,
             model: str, nights_dir: Path, cache_dir: Path | None, seed: int,
             recipe: NightRecipe = NightRecipe()) -> Material:
    """Everything a design is scored on, for one band and YAMNet build."""
    from cry.detect.training import gather
    from cry.yamnet import YamnetModel

    yamnet = YamnetModel.from_folder(yamnet_dir, model)
    train, sounds = gather(train_dirs), gather([sounds_dir])
    clips = train + sounds
    pool = night_mixer.night_pool(sounds + [c for c in train if c.folder.startswith("corpus/")])
    groups = night_mixer.source_groups(pool)
    nights = {}
    for group in (0, 1):
        folder = Path(nights_dir) / f"group_{group}"
        if not (folder / "nights.json").is_file():
            inside = [c for c in pool if groups[c.source] == group]
            night_mixer.write_nights(folder, [c for c in inside if c.label == 1], [c for c in inside if c.label == 0],
                                     recipe=recipe, seed=seed + group)
        nights[group] = tuning.night_tables(folder, yamnet, band_hz, live, cache_dir)
    tables = clip_tables(clips, yamnet, band_hz, live, cache_dir, f"clips, band {band_hz}, {model}")
    from_sounds = {c.path for c in sounds}
    return Material(clips, tables, np.array([c.path in from_sounds for c in clips]), nights, groups)


def design_report(train_dirs: list[Path], sounds_dir: Path, live: LiveSettings, out_dir: Path,
                  yamnet_dir: Path | None = None, cache_dir: Path | None = None, nights_dir: Path | None = None,
                  designs=DESIGNS, seed: int = 0, recipe: NightRecipe = NightRecipe()) -> dict:
    """Every design's row, written to out_dir/detector_design.json and .md. Returns the report.
    recipe: how the nights are mixed (made once into nights_dir, then reused)."""
    nights_dir = Path(nights_dir or Path(cache_dir or out_dir) / "design_nights")
    made, rows = {}, []
    for design in designs:
        key = (design.band_hz, design.yamnet)
        if key not in made:
            made[key] = material(train_dirs, sounds_dir, live, yamnet_dir, design.band_hz, design.yamnet, nights_dir,
                                 cache_dir, seed, recipe)
        rows.append(design_row(design, made[key], live, seed))
    report = {"live_path": live.to_dict(), "seed": seed, "nights": str(nights_dir), "rows": rows}
    write_json(report, Path(out_dir) / "detector_design.json")
    write_text(design_markdown(report), Path(out_dir) / "detector_design.md")
    return report


def design_markdown(report: dict) -> str:
    """The design table: share of clips with any crying answer per column, then the nights."""
    rows = report["rows"]
    train_cols, room_cols = list(rows[0]["training"]), list(rows[0]["real_room"])
    head = train_cols + [c.split("/", 1)[-1] for c in room_cols] + ["nights: cries caught", "latency p90",
                                                                     "false alarms/h (worst background)",
                                                                     "episodes per cry"]
    lines = ["| design | " + " | ".join(head) + " |", "|---|" + "---|" * len(head)]
    for r in rows:
        n = r["nights"]
        cells = [f"{r['training'][c]:.1%}" for c in train_cols] + [f"{r['real_room'][c]['share']:.1%}"
                                                                     for c in room_cols]
        cells += [f"{n['caught']}/{n['cries']}", "–" if n["latency_p90_seconds"] is None
                  else f"{n['latency_p90_seconds']:.1f} s",
                  f"{n['false_alarms_per_hour'] or 0:.1f} ({n['worst_background_false_alarms_per_hour']:.1f})",
                  "–" if n["episodes_per_caught_cry"] is None else f"{n['episodes_per_caught_cry']:.2f}"]
        lines.append(f"| {r['design']} | " + " | ".join(cells) + " |")
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
