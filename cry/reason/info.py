"""What is saved beside a reason model, typed: its settings, training, split, calibration and whether
held-out babies allow reason claims. Written and read only through these objects."""
from __future__ import annotations

import dataclasses

from cry.decision import ReasonRule
from cry.params import CLASSES, Settings, dataclass_to_dict
from cry.reason.params import Training


@dataclasses.dataclass(frozen=True)
class Calibration:
    """Fitted on validation babies (cry.reason.calibration.fit_calibration): Platt scaling of
    silence, a temperature and log-prior shifts for the reasons, and silence's decision threshold.
    two_level False: a model saved before the two-level calibration (one temperature only)."""

    silence_scale: float = 1.0
    silence_shift: float = 0.0
    temperature: float = 1.0
    class_log_bias: tuple = (0.0,) * len(CLASSES)
    silence_threshold: float = 0.5
    two_level: bool = True

    def to_dict(self) -> dict:
        return dataclass_to_dict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Calibration:
        if "silence_scale" not in d:  # saved before the two-level calibration
            return cls(temperature=float(d.get("temperature", 1.0)), two_level=False)
        return cls(float(d["silence_scale"]), float(d["silence_shift"]), float(d["temperature"]),
                   tuple(float(b) for b in d["class_log_bias"]), float(d["silence_threshold"]),
                   bool(d.get("two_level", True)))


@dataclasses.dataclass(frozen=True)
class ReasonClaims:
    """How reason claims at `threshold` fared on held-out babies' cry windows, against naming
    the prior; `allowed` only when the 95% lower bound of their precision beats the prior's."""

    threshold: float
    cry_windows: int
    babies: int
    claimed_share: float
    precision: float | None
    precision_ci_low: float | None
    prior_reason: str
    prior_precision: float | None
    allowed: bool = False

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> ReasonClaims:
        return cls(**{f.name: d.get(f.name) for f in dataclasses.fields(cls) if f.name != "allowed"},
                   allowed=bool(d.get("allowed")))


@dataclasses.dataclass(frozen=True)
class Split:
    """Baby ids on each side; no baby on two."""

    train: tuple
    validation: tuple
    test: tuple

    def to_dict(self) -> dict:
        return {k: list(v) for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> Split:
        return cls(tuple(d["train"]), tuple(d["validation"]), tuple(d["test"]))


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """The model's JSON (<model>.json beside <model>.keras)."""

    model_file: str
    sha256: str                              # of the .keras file: a pair torn apart is refused
    settings: Settings
    training: Training = Training()
    calibration: Calibration = Calibration()
    uncertain_threshold: float = 1.0         # a reason share below this is "uncertain" (validation babies)
    reason_claims: ReasonClaims | None = None
    split: Split | None = None
    seed: int = 0
    data_dir: str = "data/spectrograms"
    epochs_run: int = 0
    history: dict = dataclasses.field(default_factory=dict)
    train_class_counts: tuple = (1,) * len(CLASSES)
    versions: dict = dataclasses.field(default_factory=dict)

    def reason_rule(self, threshold: float | None = None) -> ReasonRule:
        """Reasons claimed only where held-out babies allowed it, from threshold (else the model's) up."""
        allowed = self.reason_claims is not None and self.reason_claims.allowed
        return ReasonRule(self.uncertain_threshold if threshold is None else threshold, allowed,
                          self.reason_claims.precision if allowed else None)

    def to_dict(self) -> dict:
        return {"model_file": self.model_file, "sha256": self.sha256, "classes": list(self.settings.classes),
                "settings": self.settings.to_dict(), "versions": self.versions, "arch": self.training.arch,
                "seed": self.seed, "data_dir": self.data_dir,
                **({"split": self.split.to_dict()} if self.split else {}),
                "training": self.training.to_dict(), "epochs_run": self.epochs_run, "history": self.history,
                "train_class_counts": list(self.train_class_counts), "calibration": self.calibration.to_dict(),
                "uncertain_threshold": self.uncertain_threshold,
                **({"reason_claims": self.reason_claims.to_dict()} if self.reason_claims else {})}

    @classmethod
    def from_dict(cls, d: dict) -> ModelInfo:
        """Raises KeyError, TypeError or ValueError (SettingsMismatch) for a file this code cannot read."""
        calibration = d.get("calibration") or {"temperature": d.get("temperature", 1.0)}
        return cls(model_file=str(d["model_file"]), sha256=str(d["sha256"]), settings=Settings.from_dict(d["settings"]),
                   training=Training.from_dict(d.get("training", {})), calibration=Calibration.from_dict(calibration),
                   uncertain_threshold=float(d.get("uncertain_threshold", 1.0)),
                   reason_claims=ReasonClaims.from_dict(d["reason_claims"]) if d.get("reason_claims") else None,
                   split=Split.from_dict(d["split"]) if d.get("split") else None, seed=int(d.get("seed", 0)),
                   data_dir=str(d.get("data_dir", "data/spectrograms")), epochs_run=int(d.get("epochs_run", 0)),
                   history=dict(d.get("history", {})),
                   train_class_counts=tuple(d.get("train_class_counts", (1,) * len(CLASSES))),
                   versions=dict(d.get("versions", {})))
