"""yieldkit: semiconductor yield and defect analytics.

Ingest die and defect tables (CSV, Parquet, KLARF, STDF, SEMI E142/G85 maps) into one
canonical data model, build spatial defect-density maps, fit yield models, rank defect
types, classify wafer-map signatures and predict outgoing quality.

The public names below are imported lazily, so ``import yieldkit`` stays fast and a
command-line call pays only for what it uses.
"""

from __future__ import annotations

import importlib
import logging
import sys
import types
from typing import Any

from ._version import __version__

logging.getLogger(__name__).addHandler(logging.NullHandler())

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    # data model, ingestion, layout (foundation)
    "WaferLayout": "yieldkit.layout",
    "read_dies": "yieldkit.io.registry",
    "read_defects": "yieldkit.io.registry",
    "read_wafers": "yieldkit.io.registry",
    "write_parquet": "yieldkit.io.tabular",
    "write_csv": "yieldkit.io.tabular",
    "final_results": "yieldkit.yields",
    "first_pass_results": "yieldkit.yields",
    "wafer_yield": "yieldkit.yields",
    "lot_yield": "yieldkit.yields",
    "simulate_fab": "yieldkit.simulate",
    # file formats
    "read": "yieldkit.io.registry",
    "read_klarf": "yieldkit.io.klarf",
    "write_klarf": "yieldkit.io.klarf",
    "read_stdf": "yieldkit.io.stdf",
    "write_stdf": "yieldkit.io.stdf",
    "read_map": "yieldkit.io.wafermap",
    "write_map": "yieldkit.io.wafermap",
    # spatial
    "die_defect_counts": "yieldkit.maps",
    "zonal_yield": "yieldkit.maps",
    "stack_map": "yieldkit.maps",
    "clustering_stats": "yieldkit.spatial",
    "detect_clusters": "yieldkit.spatial",
    "DieDefectCounts": "yieldkit.maps",
    "DefectClusters": "yieldkit.spatial",
    # yield models
    "poisson_yield": "yieldkit.models",
    "negative_binomial_yield": "yieldkit.models",
    "murphy_yield": "yieldkit.models",
    "seeds_yield": "yieldkit.models",
    "bose_einstein_yield": "yieldkit.models",
    "price_yield": "yieldkit.models",
    "moore_yield": "yieldkit.models",
    "critical_area_yield": "yieldkit.models",
    "PoissonYield": "yieldkit.models",
    "NegativeBinomialYield": "yieldkit.models",
    "MurphyYield": "yieldkit.models",
    "SeedsYield": "yieldkit.models",
    "BoseEinsteinYield": "yieldkit.models",
    "compare_models": "yieldkit.models",
    "ModelComparison": "yieldkit.models",
    # Pareto, kill ratio
    "pareto": "yieldkit.pareto",
    "bin_pareto": "yieldkit.pareto",
    "kill_ratio": "yieldkit.killratio",
    "KillRatioResult": "yieldkit.killratio",
    "retest_recovery": "yieldkit.pareto",
    "p_chart": "yieldkit.spc",
    "u_chart": "yieldkit.spc",
    "ControlChart": "yieldkit.spc",
    "analyze": "yieldkit.analysis",
    # root cause
    "commonality": "yieldkit.commonality",
    "CommonalityResult": "yieldkit.commonality",
    # outgoing quality
    "williams_brown": "yieldkit.quality",
    "agrawal_seth_agrawal": "yieldkit.quality",
    "required_coverage": "yieldkit.quality",
    "CoverageRequirement": "yieldkit.quality",
    "defect_level": "yieldkit.quality",
    # results with scalars beside their table
    "TableResult": "yieldkit.results",
    # yield-loss budget, defects across inspection steps
    "yield_budget": "yieldkit.budget",
    "YieldBudget": "yieldkit.budget",
    "impact_pareto": "yieldkit.budget",
    "entitlement": "yieldkit.budget",
    "Entitlement": "yieldkit.budget",
    "match_steps": "yieldkit.inspection",
    "StepMatch": "yieldkit.inspection",
    "adder_summary": "yieldkit.inspection",
    "find_repeaters": "yieldkit.inspection",
    "RepeaterResult": "yieldkit.inspection",
}

__all__ = ["__version__", *sorted(_EXPORTS)]


_SUBMODULES = {
    "classify", "cli", "errors", "io", "layout", "maps", "models", "plotting",
    "quality", "report", "results", "schema", "simulate", "spatial", "yields", "intervals", "distributed",
    "inspection", "budget",
}


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES and name not in _EXPORTS:
        return importlib.import_module(f"yieldkit.{name}")
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'yieldkit' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


class _Package(types.ModuleType):
    """The package module. Importing a submodule sets the package attribute of the same name;
    where a public function shares its module's name (``yieldkit.pareto``), the function wins."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _EXPORTS and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
