"""Where the wings meet: the live path built from the model files, for every script that listens.

The monitor, the page's upload, the clip and night reports and the scan all need the same thing
(the reason model as a predictor, the detector with its live settings, the reason rule that
held-out babies allowed); this is the one place that builds it, so none of them can build a
slightly different one.
"""
from __future__ import annotations

import sys
from pathlib import Path

from cry.decision import ReasonRule
from cry.live_path import LivePath, Scorer
from cry.params import LiveSettings


def load_live_path(model_path: Path | None, detector_path: Path | None, pretrained_dir: Path | None = None,
                   reason_threshold: float | None = None) -> LivePath:
    """The live path of these files. detector_path None: the reason model alone decides crying
    (the monitor before the detector), with the default live settings. model_path None: the
    detector alone (a scan, which asks where the crying is and not why: no reason is claimed)."""
    from cry.detect.detector import describe, load_detector
    from cry.files import UserError

    if model_path is None and detector_path is None:
        raise UserError("the live path needs a detector, a reason model, or both")
    detector = None if detector_path is None else load_detector(Path(detector_path), pretrained_dir)
    reasons = None
    if model_path is not None:
        from cry.reason.predictor import load_predictor

        reasons = load_predictor(Path(model_path))
    live = detector.live if detector is not None else LiveSettings()
    if detector is not None:
        print(f"detector: {describe(detector)}", file=sys.stderr)
    rule = ReasonRule() if reasons is None else reasons.info.reason_rule(reason_threshold)
    return LivePath(Scorer(reasons, live, detector), rule)
