"""How the report shows each column: a readable label, its unit and its number format, in one place.

Tables reach the report with the canonical column names of the analysis functions. :data:`COLUMNS`
maps each name to a :class:`ColumnFormat`; a name it does not know is shown as itself (underscores
as spaces) with a format chosen from its dtype. Fractions people read as yields are shown as
percentages with a fixed number of decimals, never in scientific notation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["COLUMNS", "ColumnFormat", "column_format", "format_value"]

#: the number formats a column can have
FORMATS = ("text", "id", "count", "percent", "percent4", "fixed2", "fixed3", "sig3", "pvalue", "ppm", "bool")


@dataclass(frozen=True)
class ColumnFormat:
    """Label, unit and number format of a report column.

    Attributes
    ----------
    label : str
        The header a person reads.
    unit : str
        Shown after the label in brackets (empty: no unit).
    fmt : str
        One of ``text`` (as is), ``id`` (integer without separators: bins, ranks), ``count``
        (integer with thousands separators), ``percent`` (a fraction shown x100 with 2 decimals),
        ``percent4`` (x100, 4 decimals, for small fractions), ``fixed2``/``fixed3`` (decimals),
        ``sig3`` (3 significant digits, no exponent), ``pvalue`` (4 decimals, "< 0.0001" below),
        ``ppm`` (rounded to whole parts per million with separators), ``bool`` (yes/no).
    description : str
        The header's tooltip.
    """

    label: str
    unit: str = ""
    fmt: str = "text"
    description: str = ""

    @property
    def numeric(self) -> bool:
        """True when the column sorts as numbers."""
        return self.fmt not in ("text", "bool")


def _c(label: str, unit: str = "", fmt: str = "text", description: str = "") -> ColumnFormat:
    return ColumnFormat(label, unit, fmt, description)


_PCT = "%"
#: canonical column name -> how the report shows it
COLUMNS: dict[str, ColumnFormat] = {
    # keys
    "lot_id": _c("Lot"), "wafer_id": _c("Wafer"), "zone": _c("Zone"), "model": _c("Model"),
    "category": _c("Category", description="hard bin, or defect class"), "name": _c("Name"),
    "pattern": _c("Pattern", description="failure signature from the pretrained classifier"),
    "factor": _c("Factor", description="process step, tool or chamber"), "worst_level": _c("Worst level"),
    "rank": _c("Rank", fmt="id"), "slot": _c("Slot", fmt="id"), "test_num": _c("Test", fmt="id"),
    "pin": _c("Pin", fmt="id"), "test_name": _c("Test name"), "units": _c("Units"), "rules": _c("Rules broken"),
    "rule": _c("Rule"), "process_area": _c("Process area"), "candidate_causes": _c("Candidate causes"),
    "lr_against": _c("LR test against"), "warnings": _c("Warnings"), "error": _c("Error"),
    # counts
    "wafers": _c("Wafers", fmt="count"), "tested": _c("Tested dies", fmt="count"), "good": _c("Good dies", fmt="count"),
    "first_pass_good": _c("Good at first pass", fmt="count"), "count": _c("Count", fmt="count"),
    "defects": _c("Defects", fmt="count"), "n_defects": _c("Defects", fmt="count"),
    "dies_affected": _c("Dies affected", fmt="count"), "pure_dies": _c("Dies with only this class", fmt="count"),
    "pure_passed": _c("... of which passed", fmt="count"), "first_pass_fails": _c("First-pass fails", fmt="count"),
    "retested": _c("Retested", fmt="count"), "recovered": _c("Recovered", fmt="count"),
    "still_failing": _c("Still failing", fmt="count"), "rest_tested": _c("Rest of wafer tested", fmt="count"),
    "n_dies": _c("Dies", fmt="count"), "n_fail": _c("Failing dies", fmt="count"), "n": _c("n", fmt="count"),
    "n_params": _c("Parameters", fmt="id"), "n_levels": _c("Levels", fmt="count"),
    "n_wafers": _c("Wafers", fmt="count"), "worst_level_wafers": _c("Wafers at worst level", fmt="count"),
    "inspected_dies": _c("Inspected dies", fmt="count"), "bb": _c("BB joins", fmt="count"),
    "bw": _c("BW joins", fmt="count"),
    # yields and fractions (shown in percent)
    "yield": _c("Yield", _PCT, "percent"), "first_pass_yield": _c("First-pass yield", _PCT, "percent"),
    "ci_lower": _c("CI lower", _PCT, "percent", "lower confidence limit"),
    "ci_upper": _c("CI upper", _PCT, "percent", "upper confidence limit"),
    "wafer_yield_mean": _c("Mean wafer yield", _PCT, "percent"),
    "wafer_yield_std": _c("SD of wafer yield", _PCT, "percent"),
    "wafer_yield_min": _c("Lowest wafer yield", _PCT, "percent"),
    "yield_loss": _c("Yield loss", _PCT, "percent"), "share": _c("Share", _PCT, "percent"),
    "cum_share": _c("Cumulative share", _PCT, "percent"), "recovery_rate": _c("Recovery rate", _PCT, "percent"),
    "fraction_affected": _c("Share of dies affected", _PCT, "percent"),
    "y_defective": _c("Yield of dies with the class", _PCT, "percent"),
    "y_clean": _c("Yield of defect-free dies", _PCT, "percent"),
    "limited_yield": _c("Limited yield", _PCT, "percent"),
    "joint_limited_yield": _c("Limited yield (joint)", _PCT, "percent"),
    "rest_yield": _c("Rest of wafer yield", _PCT, "percent"), "diff": _c("Difference", "% points", "percent"),
    "worst_level_yield": _c("Yield at worst level", _PCT, "percent"), "other_yield": _c("Yield elsewhere", _PCT, "percent"),
    "yield_delta": _c("Yield difference", "% points", "percent"),
    "worst_level_bad_share": _c("Low-yield wafers at worst level", _PCT, "percent"),
    "coverage": _c("Fault coverage", _PCT, "percent"), "shipped_fraction": _c("Shipped", _PCT, "percent"),
    "fallout": _c("Fallout", _PCT, "percent"), "defect_level": _c("Defect level", _PCT, "percent4"),
    "probability": _c("Probability", _PCT, "percent"), "y0": _c("Y0", _PCT, "percent", "systematic yield"),
    "fail_rate": _c("Fail rate", _PCT, "percent"),
    # kill ratios (fractions in [0, 1], read as such)
    "kill_ratio": _c("Kill ratio", fmt="fixed3"), "kill_ratio_raw": _c("Kill ratio (raw)", fmt="fixed3"),
    "kr_ci_lower": _c("KR CI lower", fmt="fixed3"), "kr_ci_upper": _c("KR CI upper", fmt="fixed3"),
    "kill_prob": _c("Kill probability (joint)", fmt="fixed3"),
    "kill_prob_ci_lower": _c("Joint CI lower", fmt="fixed3"), "kill_prob_ci_upper": _c("Joint CI upper", fmt="fixed3"),
    "impact": _c("Impact", "dies", "fixed2", "dies killed by the class (kill-weighted count)"),
    # densities and model parameters
    "d0": _c("D0", "/cm²", "sig3", "defect density"), "lambda_per_cm2": _c("λ", "/cm²", "sig3"),
    "density_per_cm2": _c("Density", "/cm²", "sig3"), "area_cm2": _c("Die area", "cm²", "sig3"),
    "inspected_area_cm2": _c("Inspected area", "cm²", "sig3"),
    "cluster_alpha": _c("Cluster α", fmt="sig3", description="negative-binomial clustering parameter (∞: Poisson)"),
    "mean_faults": _c("Mean faults per die", fmt="sig3"), "loglik": _c("Log-likelihood", fmt="fixed2"),
    "aic": _c("AIC", fmt="fixed2"), "bic": _c("BIC", fmt="fixed2"), "lr_stat": _c("LR statistic", fmt="fixed3"),
    "lr_pvalue": _c("LR p-value", fmt="pvalue"),
    "dppm": _c("DPPM", "ppm", "ppm"), "dppm_lower": _c("DPPM lower", "ppm", "ppm"),
    "dppm_upper": _c("DPPM upper", "ppm", "ppm"),
    # tests
    "p_value": _c("p-value", fmt="pvalue"), "q_value": _c("q-value", fmt="pvalue", description="Benjamini-Hochberg"),
    "p_bw": _c("p (BW joins)", fmt="pvalue"), "q_bw": _c("q (BW joins)", fmt="pvalue"),
    "p_i": _c("p (Moran's I)", fmt="pvalue"), "q_i": _c("q (Moran's I)", fmt="pvalue"), "p_runs": _c("p (runs)", fmt="pvalue"),
    "e_bb": _c("Expected BB", fmt="fixed2"), "e_bw": _c("Expected BW", fmt="fixed2"),
    "morans_i": _c("Moran's I", fmt="fixed3"), "log_odds": _c("Log odds", fmt="fixed3"),
    "kw_stat": _c("Kruskal-Wallis H", fmt="fixed3"), "kw_p": _c("KW p", fmt="pvalue"),
    "epsilon_sq": _c("ε²", fmt="fixed3"), "chi2_stat": _c("χ²", fmt="fixed3"), "chi2_p": _c("χ² p", fmt="pvalue"),
    "cramers_v": _c("Cramér's V", fmt="fixed3"), "kw_p_adj": _c("KW p (adjusted)", fmt="pvalue"),
    "chi2_p_adj": _c("χ² p (adjusted)", fmt="pvalue"), "p_adj": _c("p (adjusted)", fmt="pvalue"),
    "significant": _c("Significant", fmt="bool"), "flagged": _c("Flagged", fmt="bool"),
    "vital_few": _c("Vital few", fmt="bool"), "importance": _c("Importance", fmt="sig3"),
    "importance_std": _c("Importance SD", fmt="sig3"),
    # control charts
    "value": _c("Value", fmt="sig3"), "sigma": _c("σ", fmt="sig3"), "lcl": _c("LCL", fmt="sig3"),
    "ucl": _c("UCL", fmt="sig3"), "z": _c("z", fmt="fixed2"),
}


def column_format(name: Any, dtype: Any = None) -> ColumnFormat:
    """How to show column ``name`` (a dtype-based default for names not in :data:`COLUMNS`)."""
    key = str(name)
    if key in COLUMNS:
        return COLUMNS[key]
    if key.startswith("yield@"):  # the model comparison's prediction at the die area
        return ColumnFormat(f"Yield at {key[6:]} cm²", _PCT, "percent", "predicted by the model")
    label = key.replace("_", " ")
    label = label[:1].upper() + label[1:]
    if dtype is None:
        return ColumnFormat(label)
    if pd.api.types.is_bool_dtype(dtype):
        return ColumnFormat(label, fmt="bool")
    if pd.api.types.is_integer_dtype(dtype):
        return ColumnFormat(label, fmt="count")
    if pd.api.types.is_float_dtype(dtype):
        return ColumnFormat(label, fmt="sig3")
    return ColumnFormat(label)


def _missing(v: Any) -> bool:
    if v is None or v is pd.NA or v is pd.NaT:
        return True
    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


def _sig(v: float, digits: int) -> str:
    if v == 0:
        return "0"
    decimals = digits - 1 - math.floor(math.log10(abs(v)))
    if decimals > 6:
        return "< 0.000001" if v > 0 else "> -0.000001"
    return f"{v:,.{max(decimals, 0)}f}"


def format_value(v: Any, fmt: str) -> tuple[str, str | None]:
    """``(text, sort_key)`` of one cell: what a person reads, and the raw number to sort by.

    Missing values show as empty text (sort key None); infinities as ∞.
    """
    if _missing(v):
        return "", None
    if fmt == "bool" or isinstance(v, (bool, np.bool_)):
        return ("yes" if bool(v) else "no"), None
    if fmt == "text" or not isinstance(v, (int, float, np.integer, np.floating)):
        return str(v), None
    x = float(v)
    key = repr(x)
    if math.isinf(x):
        return ("∞" if x > 0 else "−∞"), key
    if fmt == "id":
        return (str(int(x)) if x.is_integer() else _sig(x, 4)), key
    if fmt == "count":
        return (f"{int(x):,}" if x.is_integer() else _sig(x, 4)), key
    if fmt == "percent":
        return f"{100 * x:,.2f}", key
    if fmt == "percent4":
        return f"{100 * x:,.4f}", key
    if fmt == "fixed2":
        return f"{x:,.2f}", key
    if fmt == "fixed3":
        return f"{x:,.3f}", key
    if fmt == "pvalue":
        return ("< 0.0001" if x < 1e-4 else f"{x:.4f}"), key
    if fmt == "ppm":
        return (f"{x:,.0f}" if abs(x) >= 10 else _sig(x, 2)), key
    return _sig(x, 3), key
