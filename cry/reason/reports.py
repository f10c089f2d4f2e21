"""Pictures and tables of the reports: evaluation, training curves, the experiments table.
Each picture is written atomically and its path returned."""
from __future__ import annotations

import datetime
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from cry.files import atomic_output
from cry.params import CLASSES
from cry.reason.metrics import HEADLINE

EXPERIMENTS_HEADER = ("# Experiments (baby-disjoint CV, recording level, 95% CI over babies)\n\n"
                      "| date | variant (command) | cry vs silence AUC | reasons macro AUC | reasons macro-F1 | "
                      "reasons bal. acc. | ECE after scaling (windows) |\n|---|---|---|---|---|---|---|\n")


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    return path


def plot_confusion(matrix: np.ndarray, title: str, path: Path) -> Path:
    """Counts on the left, rows normalised to recall on the right."""
    fig = Figure(figsize=(13, 5.5))
    axes = fig.subplots(1, 2)
    normalised = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    for ax, values, fmt, name in ((axes[0], matrix, "d", "counts"),
                                  (axes[1], normalised, ".2f", "share of true class")):
        ax.imshow(values, cmap="Blues")
        for (i, j), v in np.ndenumerate(values):
            ax.text(j, i, format(v, fmt), ha="center", va="center", fontsize=8,
                    color="white" if v > values.max() / 2 else "black")
        ax.set(xticks=range(len(CLASSES)), yticks=range(len(CLASSES)), xlabel="predicted", ylabel="true",
               title=f"{title}: {name}")
        ax.set_xticklabels(CLASSES, rotation=45, ha="right")
        ax.set_yticklabels(CLASSES)
    return _save(fig, path)


def plot_per_class_f1(per_class: dict, baseline_f1: dict, path: Path) -> Path:
    fig = Figure(figsize=(8, 4))
    ax = fig.subplots()
    x = np.arange(len(CLASSES))
    ax.bar(x - 0.2, [per_class[c]["f1"] for c in CLASSES], 0.4, label="model")
    ax.bar(x + 0.2, [baseline_f1[c]["f1"] for c in CLASSES], 0.4, label="always majority class")
    ax.set(xticks=x, ylabel="F1", ylim=(0, 1), title="per-class F1 (recording level)")
    ax.set_xticklabels(CLASSES, rotation=30, ha="right")
    ax.legend()
    return _save(fig, path)


def plot_reliability(tables: dict[str, list], path: Path) -> Path:
    """Reliability diagram: confidence against accuracy, one line per calibration."""
    fig = Figure(figsize=(5, 5))
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1], "k--", lw=1, label="perfect")
    for name, table in tables.items():
        ax.plot([b["confidence"] for b in table], [b["accuracy"] for b in table], "o-", label=name)
    ax.set(xlabel="confidence (top probability)", ylabel="accuracy", xlim=(0, 1), ylim=(0, 1),
           title="reliability")
    ax.legend()
    return _save(fig, path)


def plot_training_curves(history: dict, path: Path) -> Path:
    """Loss and macro-F1 per epoch, on training and validation data."""
    fig = Figure(figsize=(10, 4))
    axes = fig.subplots(1, 2)
    for ax, key in zip(axes, ("loss", "macro_f1")):
        ax.plot(history[key], label="train")
        ax.plot(history[f"val_{key}"], label="validation")
        ax.set(xlabel="epoch", title=key.replace("_", " "))
        ax.legend()
    return _save(fig, path)


def interval(m: dict) -> str:
    return f"{m['value']:.3f} [{m['ci_low']:.3f}, {m['ci_high']:.3f}]"


def evaluation_pictures(report: dict, reliability: dict[str, list], out: Path) -> list[Path]:
    """Confusion matrices (recordings, windows), per-class F1 beside the majority baseline, and
    the reliability diagram of each calibration in reliability."""
    return [plot_confusion(np.array(report["recording"]["confusion"]), "recordings", out / "confusion_recording.png"),
            plot_confusion(np.array(report["window"]["confusion"]), "windows", out / "confusion_window.png"),
            plot_per_class_f1(report["recording"]["per_class"], report["recording"]["majority_per_class"],
                              out / "per_class_f1.png"),
            plot_reliability(reliability, out / "reliability.png")]


def evaluation_markdown(report: dict) -> str:
    """The evaluation report as Markdown: headline metrics beside the baselines, per class, calibration."""
    lines = [f"# Evaluation of {report['model']}", "",
             f"{report['n_recordings']} recordings ({report['n_windows']} windows) from {report['n_babies']} babies: "
             f"{report['source']}. 95% intervals from resampling babies.", ""]
    for level in ("recording", "window"):
        lines += [f"## {level} level", "", "| metric | model | always majority | chance |", "|---|---|---|---|"]
        for key in HEADLINE:
            lines.append(f"| {key} | " + " | ".join(interval(report[level][kind][key])
                                                   for kind in ("model", "majority", "chance")) + " |")
        lines.append("")
    lines += ["## per class (recording level)", "", "| class | precision | recall | F1 | support |",
              "|---|---|---|---|---|"]
    lines += [f"| {c} | {v['precision']:.2f} | {v['recall']:.2f} | {v['f1']:.2f} | {v['support']} |"
              for c, v in report["recording"]["per_class"].items()]
    cal = report["calibration"]
    lines += ["", f"Calibration (fitted on validation babies): expected calibration error {cal['ece_before']:.3f} "
                  f"before, {cal['ece_after']:.3f} after (window level).", ""]
    return "\n".join(lines)


def experiment_rows(result: dict, table: str) -> str:
    """The rows a cross-validation summary adds to the experiments table: its own, and each
    baseline's unless the table has it already."""
    def row(name, r, ece="") -> str:
        return (f"| {datetime.date.today()} | {name} | {interval(r['cry_vs_silence_auc'])} | "
                f"{interval(r['reasons_macro_auc'])} | {interval(r['reasons_macro_f1'])} | "
                f"{interval(r['reasons_balanced_accuracy'])} | {ece} |\n")
    variant = (f"{result['arch']}, {result['balance']}, augment {result['augment']}, "
               f"{result['settings']['window_seconds']:g} s windows: `{result['command']}`"
               + (f", re-scored: `{result['rescored']}`" if "rescored" in result else ""))
    rows = [row(variant, result, f"{result['ece_after_scaling']:.3f} (temperature only "
                                 f"{result['ece_after_temperature_only']:.3f})")]
    rows += [row(f"baseline: {name} (same folds)", r) for name, r in result["baselines"].items()
             if f"baseline: {name}" not in table]
    return "".join(rows)
