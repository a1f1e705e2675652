"""Root-cause classifiers: wafer-map failure patterns and defect types.

- :mod:`~yieldkit.classify.grid`: die tables <-> 2-D wafer grids (0 = no die, 1 = pass, 2 = fail).
- :mod:`~yieldkit.classify.features`: size-independent pattern features, vectorised.
- :class:`WaferPatternClassifier`: gradient-boosted failure-pattern classifier (single or multi-label);
  :func:`load_pretrained` returns the model shipped with yieldkit, trained on WM-811K maps.
- :class:`CNNPatternClassifier`: a small CNN (:class:`~yieldkit.classify.cnn.ConvNet`) evaluated in numpy
  on :func:`grid_tensor` images, with the same predict/save/load surface.
- :class:`EnsemblePatternClassifier`: probability average of pattern models, temperature-calibrated,
  with an "unknown" answer; :mod:`~yieldkit.classify.calibration` scores and calibrates them.
- :func:`pattern_causes`, :func:`pattern_summary`: candidate causes of each pattern.
- :class:`SimilarWafers`: the past wafers most similar to new ones (with their known causes);
  :func:`retrieval_scores` measures a retrieval.
- :class:`DefectClassifier`: automatic defect classification from defect attributes.

Submodules are imported lazily.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "dies_to_grids": "grid",
    "grids_to_dies": "grid",
    "extract_features": "features",
    "feature_names": "features",
    "WaferPatternClassifier": "pattern",
    "CNNPatternClassifier": "cnn",
    "EnsemblePatternClassifier": "ensemble",
    "grid_tensor": "cnn",
    "PATTERNS": "pattern",
    "load_pretrained": "pretrained",
    "pattern_causes": "causes",
    "attach_causes": "causes",
    "pattern_summary": "causes",
    "DefectClassifier": "defect",
    "SimilarWafers": "similar",
    "retrieval_scores": "similar",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name == "commonality":  # ranks process factors, not a classifier: moved to yieldkit.commonality
        from .._deprecation import warn_deprecated
        from ..commonality import commonality

        warn_deprecated("yieldkit.classify.commonality is deprecated and will be removed in the next release; "
                        "use yieldkit.commonality.")
        return commonality
    mod = _EXPORTS.get(name)
    if mod is None:
        raise AttributeError(f"module 'yieldkit.classify' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{mod}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
