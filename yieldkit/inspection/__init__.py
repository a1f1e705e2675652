"""Defects across inspection steps: alignment, step matching, adders, per-layer kill ratio, repeaters.

* :func:`align` -- per-wafer transform between two inspection tools' frames, with its residual;
* :func:`match_steps` -- one-to-one matching across cumulative inspections: every defect's
  ``source_step`` and ``is_adder``; :func:`adder_summary` per wafer and step;
* :func:`layer_kill_ratio` -- kill ratio per (source step, class) on adders, limited yield per layer;
* :func:`find_repeaters` -- reticle repeaters with a binomial-tail threshold;
* :func:`simulate_inspections` -- cumulative inspections with known truth;
* :mod:`yieldkit.inspection.dask` -- the per-wafer functions on Dask frames partitioned by wafer.
"""

from .align import Alignment, align, match_points
from .layers import LayerKillRatio, layer_kill_ratio
from .repeaters import RepeaterResult, find_repeaters, fold_to_field
from .simulate import DEFAULT_SOURCES, InspectionFab, simulate_inspections
from .steps import DEFAULT_SIZE_BINS, StepMatch, adder_summary, match_steps

__all__ = [
    "DEFAULT_SIZE_BINS",
    "DEFAULT_SOURCES",
    "Alignment",
    "InspectionFab",
    "LayerKillRatio",
    "RepeaterResult",
    "StepMatch",
    "adder_summary",
    "align",
    "find_repeaters",
    "fold_to_field",
    "layer_kill_ratio",
    "match_points",
    "match_steps",
    "simulate_inspections",
]
