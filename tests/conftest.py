"""Shared fixtures: the real corpus copy beside the repository, and generated audio."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CORPUS = Path(os.environ.get("CRY_CORPUS", ROOT.parent / "shared" / "donateacry-corpus"))


@pytest.fixture(scope="session")
def corpus() -> Path:
    """The local Donate-a-Cry copy; tests that need it skip, saying why, where it is absent."""
    if not (CORPUS / "donateacry_corpus_cleaned_and_updated_data").is_dir():
        pytest.skip(f"Donate-a-Cry corpus not found at {CORPUS} (set CRY_CORPUS)")
    return CORPUS


def tone(freq_hz: float, seconds: float, rate: int, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (amplitude * np.sin(2 * np.pi * freq_hz * t)).astype(np.float32)
