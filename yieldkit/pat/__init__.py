"""Outlier screening for outgoing quality: part average testing and statistical bin limits.

- :func:`pat_limits`, :func:`apply_pat`: parametric PAT (static, dynamic, robust, IQR) on the long
  test table (AEC-Q001).
"""

from .apply import DEFAULT_PAT_BIN, PatResult, apply_pat
from .limits import METHODS, QUANTILE_METHODS, PatLimits, load_pat_limits, pat_limits, robust_stats

__all__ = [
    "DEFAULT_PAT_BIN", "METHODS", "QUANTILE_METHODS", "PatLimits", "PatResult", "apply_pat", "load_pat_limits",
    "pat_limits", "robust_stats",
]
