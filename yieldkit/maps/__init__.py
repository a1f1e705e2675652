"""Spatial maps of defects and yield: die-level counts, densities, zones, kernel density, stacking."""

from __future__ import annotations

from .counts import DieDefectCounts, die_defect_counts, die_defect_density
from .density import DefectKDE, defect_kde, radial_profile
from .stacking import bin_frequency, reticle_stack, stack_map
from .zones import (
    ZONE_SCHEMES,
    assign_zones,
    benjamini_hochberg,
    fisher_exact_2x2,
    zonal_density,
    zonal_yield,
)

__all__ = [
    "ZONE_SCHEMES",
    "DefectKDE",
    "DieDefectCounts",
    "assign_zones",
    "benjamini_hochberg",
    "bin_frequency",
    "defect_kde",
    "die_defect_counts",
    "die_defect_density",
    "fisher_exact_2x2",
    "radial_profile",
    "reticle_stack",
    "stack_map",
    "zonal_density",
    "zonal_yield",
]
