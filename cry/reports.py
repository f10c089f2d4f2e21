"""Pictures and tables for the evaluation report; each writes atomically and returns its path."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from cry.files import atomic_output  # noqa: E402
from cry.params import CLASSES  # noqa: E402


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return path


def plot_confusion(matrix: np.ndarray, title: str, path: Path) -> Path:
    """Counts on the left, rows normalised to recall on the right."""
    fig, axes = plt.subplots(1, 2, figsize=(13, 5.5))
    normalised = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    for ax, values, fmt, name in ((axes[0], matrix, "d", "counts"), (axes[1], normalised, ".2f", "share of true class")):
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
    fig, ax = plt.subplots(figsize=(8, 4))
    x = np.arange(len(CLASSES))
    ax.bar(x - 0.2, [per_class[c]["f1"] for c in CLASSES], 0.4, label="model")
    ax.bar(x + 0.2, [baseline_f1[c]["f1"] for c in CLASSES], 0.4, label="always majority class")
    ax.set(xticks=x, ylabel="F1", ylim=(0, 1), title="per-class F1 (recording level)")
    ax.set_xticklabels(CLASSES, rotation=30, ha="right")
    ax.legend()
    return _save(fig, path)


def plot_reliability(tables: dict[str, list], path: Path) -> Path:
    """Reliability diagram: confidence against accuracy, one line per calibration."""
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], "k--", lw=1, label="perfect")
    for name, table in tables.items():
        ax.plot([b["confidence"] for b in table], [b["accuracy"] for b in table], "o-", label=name)
    ax.set(xlabel="confidence (top probability)", ylabel="accuracy", xlim=(0, 1), ylim=(0, 1),
           title="reliability")
    ax.legend()
    return _save(fig, path)


def interval(m: dict) -> str:
    return f"{m['value']:.3f} [{m['ci_low']:.3f}, {m['ci_high']:.3f}]"
