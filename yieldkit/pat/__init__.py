"""Outlier screening for outgoing quality: part average testing and statistical bin limits.

- :func:`pat_limits`, :func:`apply_pat`: parametric PAT (static, dynamic, robust, IQR) on the long
  test table (AEC-Q001).
- :func:`geo_pat`, :func:`geo_rule`: geographic PAT on the die table (GDBN, opposite sides, weighted,
  bad-cluster ring, reticle, Z-PAT, nearest-neighbour residual).
- :func:`statistical_limits`, :func:`check_statistical_limits`: statistical yield and bin limits
  (AEC-Q002) per lot or wafer.
- :func:`screen`: the whole flow (static, dynamic, geographic) in one call.
- :func:`screening_effect`: screened fraction and DPPM before and after a screen, from a truth table
  (:func:`yieldkit.simulate_fab` with ``latent=LatentSpec()``).
"""

from .apply import DEFAULT_PAT_BIN, PatResult, apply_pat
from .bins import StatisticalLimits, check_statistical_limits, statistical_limits
from .geographic import DEFAULT_GEO_BIN, GEO_RULES, GeoParams, geo_pat, geo_rule
from .limits import METHODS, QUANTILE_METHODS, PatLimits, load_pat_limits, pat_limits, robust_stats
from .quality import ScreeningEffect, screening_effect
from .screen import RULES, Screen, screen

__all__ = [
    "DEFAULT_GEO_BIN", "DEFAULT_PAT_BIN", "GEO_RULES", "METHODS", "QUANTILE_METHODS", "RULES", "GeoParams",
    "PatLimits", "PatResult", "Screen", "ScreeningEffect", "StatisticalLimits", "apply_pat",
    "check_statistical_limits", "geo_pat", "geo_rule", "load_pat_limits", "pat_limits", "robust_stats", "screen",
    "screening_effect", "statistical_limits",
]
