"""Spatial maps of defects and yield: die-level counts, densities, zones, kernel density, stacking."""

from __future__ import annotations

from .counts import die_defect_counts, die_defect_density

__all__ = ["die_defect_counts", "die_defect_density"]
