"""Shared fixtures: a seeded random generator and the real sample files in ../shared/samples."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")

REPO = Path(__file__).resolve().parents[1]


def _samples_dir() -> Path | None:
    env = os.environ.get("YIELDKIT_SAMPLES")
    candidates = [Path(env)] if env else []
    candidates.append(REPO.parent / "shared" / "samples")
    for c in candidates:
        if c.is_dir():
            return c
    return None


@pytest.fixture
def rng() -> np.random.Generator:
    """A seeded generator; tests never touch numpy's global state."""
    return np.random.default_rng(20261128)


@pytest.fixture(scope="session")
def shared_samples() -> Path:
    """The real public sample files (../shared/samples); skips when they are absent."""
    d = _samples_dir()
    if d is None:
        pytest.skip("../shared/samples is not present (set YIELDKIT_SAMPLES to its path)")
    return d
