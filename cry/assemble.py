"""Where the wings meet: the live path built from the model files, for every script that listens.

The monitor, the page's upload, the clip and night reports and the scan all need the same thing
(the reason model as a predictor, the detector with its live settings, the reason rule that
held-out babies allowed); this is the one place that builds it, so none of them can build a
slightly different one.
"""
from __future__ import annotations

import sys
from pathlib import Path

from cry.live_path import LivePath, Scorer
from cry.params import LiveSettings


def load_live_path(model_path: Path, detector_path: Path | None, pretrained_dir: Path | None = None,
                   reason_threshold: float | None = None) -> LivePath:
    """The live path of these files. detector_path None: the reason model alone decides crying
    (the monitor before the detector), with the default live settings."""
    from cry.detect.detector import describe, load_detector
    from cry.reason.predictor import load_predictor

    detector = None if detector_path is None else load_detector(Path(detector_path), pretrained_dir)
    reasons = load_predictor(Path(model_path))
    live = detector.live if detector is not None else LiveSettings()
    if detector is not None:
        print(f"detector: {describe(detector)}", file=sys.stderr)
    return LivePath(Scorer(reasons, live, detector), reasons.info.reason_rule(reason_threshold))
