"""The tables of the report's parametric section, computed once from the dies and the test table.

:func:`parametric_section` gathers what the report shows about parametric tests: the worst
tests by Cpk, the lots whose tests shifted against the population, and the tests that best
separate the dies of the top failing bins from the good dies.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..errors import DataQualityWarning
from .association import test_bin_association
from .capability import capability
from .shift import shift

log = logging.getLogger(__name__)

__all__ = ["ParametricSection", "parametric_section"]


@dataclass(frozen=True, repr=False)
class ParametricSection:
    """The parametric results of a report.

    Attributes
    ----------
    capability : DataFrame
        :func:`~yieldkit.parametric.capability` per lot and test (all rows).
    worst : DataFrame
        The ``top`` rows with the lowest Cpk (tests with limits).
    shifts : DataFrame or None
        Alarmed rows of :func:`~yieldkit.parametric.shift`, each lot against all lots pooled
        (None with a single lot).
    shift_tested : int
        Lot-test pairs tested for a shift.
    association : DataFrame
        Per top failing bin, the tests that best separate its dies from the good dies.
    n_tests : int
        Distinct tests with a numeric result.
    worst_results : DataFrame
        The results of the worst test (lowest Cpk) in its lot, for its distribution and maps.
    """

    capability: pd.DataFrame
    worst: pd.DataFrame
    shifts: pd.DataFrame | None
    shift_tested: int
    association: pd.DataFrame
    n_tests: int
    worst_results: pd.DataFrame

    def __repr__(self) -> str:
        n_shift = 0 if self.shifts is None else len(self.shifts)
        return f"ParametricSection({self.n_tests} tests, {n_shift} shift alarm(s), {len(self.association)} test-bin rows)"


def parametric_section(dies: pd.DataFrame, tests: pd.DataFrame, *, conf_level: float = 0.95, top: int | None = 10,
                       effect: float = 1.0, fdr: float = 0.01, bins: int = 3, per_bin: int = 3) -> ParametricSection:
    """Compute the parametric section of a report.

    Parameters
    ----------
    dies : DataFrame
        The die table of the parts in ``tests``.
    tests : DataFrame
        The long test table (:func:`yieldkit.read_stdf` with ``tests=True``).
    conf_level : float
        Confidence level of the capability intervals.
    top : int, optional
        Rows of the worst-Cpk table (all when None).
    effect, fdr : float
        Passed to :func:`~yieldkit.parametric.shift`.
    bins, per_bin : int
        The failing bins with the most parts, and the tests kept for each.

    Returns
    -------
    ParametricSection
    """
    by = ("lot_id",) if "lot_id" in tests.columns else ()
    sub = "wafer_id" if "wafer_id" in tests.columns else None
    with warnings.catch_warnings():
        # tests without limits (characterisation results) are common; the table shows NaN
        warnings.simplefilter("ignore", DataQualityWarning)
        cap = capability(tests, by=by, subgroup=sub, conf_level=conf_level).table
    n_tests = int(len(cap[["test_num", "pin"]].drop_duplicates())) if len(cap) else 0
    ranked = cap[np.isfinite(cap["cpk"].to_numpy(np.float64))].sort_values(["cpk", "test_num"], kind="stable")
    worst = ranked if top is None else ranked.head(top)
    worst = worst.reset_index(drop=True)
    shifts = None
    tested = 0
    if by and tests["lot_id"].nunique() > 1:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DataQualityWarning)
            sh = shift(tests, tests, by=by, effect=effect, fdr=fdr).table  # the reference ignores the lots
        tested = int(sh["p_ks"].notna().sum())
        shifts = sh[sh["alarm"].to_numpy(bool)].sort_values("shift_sigma", key=np.abs, ascending=False,
                                                             kind="stable").reset_index(drop=True)
    assoc = _association(dies, tests, bins, per_bin)
    return ParametricSection(capability=cap, worst=worst, shifts=shifts, shift_tested=tested, association=assoc,
                             n_tests=n_tests, worst_results=_worst_results(tests, worst))


def _worst_results(tests: pd.DataFrame, worst: pd.DataFrame) -> pd.DataFrame:
    if not len(worst):
        return tests.iloc[:0]
    w = worst.iloc[0]
    sel = tests["test_num"].to_numpy() == int(w["test_num"])
    if "lot_id" in worst.columns:
        sel &= (tests["lot_id"] == w["lot_id"]).to_numpy(dtype=bool, na_value=False)
    if pd.notna(w["pin"]) and "pin" in tests.columns:
        sel &= tests["pin"].to_numpy(dtype=np.float64, na_value=np.nan) == float(w["pin"])
    return tests.loc[sel].reset_index(drop=True)


def _association(dies: pd.DataFrame, tests: pd.DataFrame, bins: int, per_bin: int) -> pd.DataFrame:
    a = test_bin_association(dies, tests)
    if not len(a):
        return a
    failing = dies.loc[~dies["passed"].to_numpy(bool), "hbin"] if "passed" in dies.columns else dies["hbin"]
    top_bins: list[Any] = failing.value_counts().head(bins).index.tolist()
    a = a[a["bin"].isin(top_bins)]
    a = a.groupby("bin", sort=False, group_keys=False).head(per_bin)
    order = {b: i for i, b in enumerate(top_bins)}
    return a.sort_values("bin", key=lambda s: s.map(order), kind="stable").reset_index(drop=True)
