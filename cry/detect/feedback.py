"""It learns the home it is in: a parent's "not a cry" and "that was a cry" refit the detector's head.

A marked sound is kept as the YAMNet embeddings of its windows (and, by the monitor, as a clip
on this machine; nothing is ever uploaded). The head is fitted again, in a second or so, on a
sample of the windows it was trained on (saved beside the detector by cry.detect.training) and
every mark so far, the marks weighted up, with the head's own regularisation and standardisation:
so the next such sound in this home does not alarm, and a few marked laughs do not make it deaf
to cries, which the training sample keeps in view. The gates (YAMNet's cry trace, the rivals)
and the threshold stay as they were tuned. Marks are saved, so a restart keeps what was learnt.
"""
from __future__ import annotations

import dataclasses
import sys
import threading
import time
from pathlib import Path

import numpy as np

from cry.detect import detector as det
from cry.files import UserError, atomic_output

MARK_WEIGHT = 20.0  # one marked window counts as this many training windows
MAX_MARKS = 20000   # marked windows kept (the oldest go first): a few weeks of marking at most
LABELS = {"not_cry": 0, "cry": 1}
DEFAULT_FOLDER = Path("data/feedback")


def sample_path(detector_path: Path) -> Path:
    """The training sample saved beside a detector file: <name>.windows.npz."""
    return Path(detector_path).with_suffix(".windows.npz")


def save_sample(path: Path, embeddings: np.ndarray, labels: np.ndarray, n: int = 3000, seed: int = 0) -> None:
    """sample_of the detector's training windows, saved beside it (a few MB)."""
    embedding, label = sample_of(embeddings, labels, n, seed)
    with atomic_output(path) as tmp, open(tmp, "wb") as f:
        np.savez_compressed(f, embedding=embedding, label=label)


def load_sample(detector_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """The training sample saved beside a detector, or one UserError line saying how to get one."""
    try:
        with np.load(sample_path(detector_path)) as z:
            return z["embedding"].astype(np.float32), z["label"].astype(int)
    except (OSError, ValueError, KeyError) as exc:
        raise UserError(f"{sample_path(detector_path)}: the detector's training sample is missing or broken "
                        f"({exc}); retrain with `python train_model.py` to mark sounds") from None


def sample_of(embeddings: np.ndarray, labels: np.ndarray, n: int = 3000, seed: int = 0) -> tuple:
    """A class-stratified sample of a head's training windows: (embeddings float16, labels int8)."""
    rng, keep = np.random.default_rng(seed), []
    for label in (0, 1):
        rows = np.flatnonzero(labels == label)
        keep += list(rng.choice(rows, min(len(rows), n // 2), replace=False))
    keep = np.sort(np.array(keep, int))
    return embeddings[keep].astype(np.float16), labels[keep].astype(np.int8)


@dataclasses.dataclass
class Marks:
    embedding: np.ndarray   # float32 [n, 1024]
    label: np.ndarray       # int [n]
    time: np.ndarray        # float [n]: when each was marked


class HomeLearning:
    """A detector's head refitted on its training sample and a home's marks (see the module)."""

    def __init__(self, detector, detector_path: Path | None, folder: Path = DEFAULT_FOLDER,
                 sample: tuple[np.ndarray, np.ndarray] | None = None):
        """sample: (embeddings, labels) of the head's training windows; default: the one saved beside
        detector_path."""
        self.detector, self.folder = detector, Path(folder)
        self.base_head, self._lock = detector.head, threading.Lock()
        x, y = sample if sample is not None else load_sample(detector_path)
        self.sample = (np.asarray(x, np.float32), np.asarray(y, int))
        self.marks = self._load()
        if len(self.marks.label):
            self._refit()
            print(f"feedback: {len(self.marks.label)} marked windows from {self.folder} applied", file=sys.stderr)

    @property
    def path(self) -> Path:
        return self.folder / "marks.npz"

    def _load(self) -> Marks:
        try:
            with np.load(self.path) as z:
                return Marks(z["embedding"].astype(np.float32), z["label"].astype(int), z["time"])
        except FileNotFoundError:
            return Marks(np.zeros((0, 1024), np.float32), np.zeros(0, int), np.zeros(0))
        except (OSError, ValueError, KeyError) as exc:
            raise UserError(f"{self.path}: unreadable marks ({exc}); move it away to start again") from None

    def mark(self, label: str, embeddings: np.ndarray) -> int:
        """Add windows [n, 1024] as label ("cry" or "not_cry"), save, refit. Returns the marks kept."""
        if label not in LABELS:
            raise ValueError(f"label must be one of {sorted(LABELS)}")
        embeddings = np.asarray(embeddings, np.float32).reshape(-1, 1024)
        if not len(embeddings):
            raise ValueError("nothing to learn from: no window of that sound was heard")
        with self._lock:
            m = self.marks
            self.marks = Marks(np.concatenate([m.embedding, embeddings])[-MAX_MARKS:],
                               np.concatenate([m.label, np.full(len(embeddings), LABELS[label])])[-MAX_MARKS:],
                               np.concatenate([m.time, np.full(len(embeddings), time.time())])[-MAX_MARKS:])
            self.folder.mkdir(parents=True, exist_ok=True)
            with atomic_output(self.path, mode=0o600) as tmp, open(tmp, "wb") as f:
                np.savez_compressed(f, embedding=self.marks.embedding.astype(np.float16), label=self.marks.label,
                                    time=self.marks.time)
            self._refit()
            return len(self.marks.label)

    def _refit(self) -> None:
        """A head like the base one (its standardisation, gates and regularisation), weights refitted."""
        (x, y), marks = self.sample, self.marks
        weight = np.concatenate([np.ones(len(y)), np.full(len(marks.label), MARK_WEIGHT)])
        self.detector.head = det.fit_head(np.concatenate([x, marks.embedding]), np.concatenate([y, marks.label]),
                                          like=self.base_head, sample_weight=weight)
