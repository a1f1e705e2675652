"""Yield summaries of a die table: retests, per-wafer and per-lot yield with exact intervals.

A die may be tested more than once (``test_seq`` counts the insertions). The *final* result
at a die is its last insertion, the *first-pass* result its first. Yield is good dies over
tested dies, counted on final results; first-pass yield uses first results.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from ._keys import BLOCK, die_keys, duplicated_keys, run_slices, wafer_codes, wafer_runs
from ._pages import small_pages
from .errors import DataQualityWarning, SchemaError
from .intervals import clopper_pearson

__all__ = ["final_results", "first_pass_results", "lot_yield", "placed", "wafer_yield"]


def _check(dies: pd.DataFrame, where: str) -> None:
    missing = [c for c in ("lot_id", "wafer_id", "die_x", "die_y", "passed") if c not in dies.columns]
    if missing:
        raise SchemaError(
            f"{where} needs a canonical die table (yieldkit.read_dies); missing column(s) {', '.join(missing)}"
        )


def _pick(dies: pd.DataFrame, last: bool) -> np.ndarray:
    """Row positions of the last (or first) insertion at each die, in original order."""
    keys = die_keys(dies, narrow=True)  # compared and sorted only
    if not duplicated_keys(keys).any():
        return np.arange(len(keys))  # one result per die already (e.g. a table of final results)
    seq = dies["test_seq"].to_numpy(dtype="int64", na_value=-1)
    # sort by die then insertion order; stable so ties keep row order
    order = np.lexsort((np.arange(len(keys)), seq, keys))
    k_sorted = keys[order]
    if last:
        sel = np.ones(len(order), bool)
        sel[:-1] = k_sorted[1:] != k_sorted[:-1]
    else:
        sel = np.ones(len(order), bool)
        sel[1:] = k_sorted[1:] != k_sorted[:-1]
    return np.sort(order[sel])


def placed(dies: pd.DataFrame, where: str) -> pd.DataFrame:
    """The rows that have a wafer position (``die_x`` and ``die_y`` present).

    Spatial analyses (maps, zones, clustering, wafer grids) need a position; parts tested
    without one (final test, ``validate_dies(missing_xy="unit")``) are left out of them with a
    :class:`~yieldkit.errors.DataQualityWarning` naming how many -- never put at some die.
    """
    if not (dies["die_x"].hasnans or dies["die_y"].hasnans):
        return dies
    ok = dies["die_x"].notna().to_numpy() & dies["die_y"].notna().to_numpy()
    warnings.warn(
        f"{where}: {int((~ok).sum())} of {len(dies)} rows have no wafer position (missing die_x/die_y) "
        "and are left out of this spatial analysis",
        DataQualityWarning,
        stacklevel=3,
    )
    out = dies[ok].reset_index(drop=True)
    for c in ("die_x", "die_y"):
        out[c] = out[c].to_numpy(dtype=np.int32)
    return out


def final_results(dies: pd.DataFrame) -> pd.DataFrame:
    """Keep the last test result (highest ``test_seq``) at every die.

    A table without ``test_seq`` has one result per die (guaranteed by
    :func:`yieldkit.read_dies`) and is returned unchanged.

    Examples
    --------
    >>> import pandas as pd, yieldkit as yk
    >>> d = yk.read_dies(pd.DataFrame({"lot": ["L"] * 3, "wafer": ["1"] * 3, "x": [0, 0, 1], "y": [0, 0, 0],
    ...                                "bin": [5, 1, 1], "test_seq": [1, 2, 1]}))
    >>> yk.final_results(d)["hbin"].tolist()
    [1, 1]
    """
    _check(dies, "final_results")
    if "test_seq" not in dies.columns:
        return dies
    rows = _pick(dies, last=True)
    if len(rows) == len(dies):
        return dies
    return dies.iloc[rows].reset_index(drop=True)


def first_pass_results(dies: pd.DataFrame) -> pd.DataFrame:
    """Keep the first test result (lowest ``test_seq``) at every die."""
    _check(dies, "first_pass_results")
    if "test_seq" not in dies.columns:
        return dies
    return dies.iloc[_pick(dies, last=False)].reset_index(drop=True)


def _pass_fail_counts(codes: np.ndarray, passed: np.ndarray, n_groups: int) -> np.ndarray:
    """(failed, passed) rows per group: an ``(n_groups, 2)`` int64 array, counted block by block."""
    both = np.zeros(2 * n_groups, np.int64)
    block = max(BLOCK, 8 * n_groups)  # a block's count is O(n_groups): keep it small beside the block's rows
    key = np.empty(min(block, len(codes)), np.int64)
    for i in range(0, len(codes), block):
        k = key[: min(block, len(codes) - i)]
        np.multiply(codes[i : i + block], 2, out=k)
        k += passed[i : i + block]
        both += np.bincount(k, minlength=2 * n_groups)
    return both.reshape(n_groups, 2)


def _run_counts(mask: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """True rows of ``mask`` in each run of rows (runs begin at ``starts``, ascending, ``starts[0] == 0``),
    summed block by block (an int64 copy of a block at a time, not of the whole mask)."""
    out = np.zeros(len(starts), np.int64)
    for i in range(0, len(mask), BLOCK):
        j = min(i + BLOCK, len(mask))
        first, last, bounds = run_slices(starts, i, j)
        out[first:last] += np.add.reduceat(mask[i:j], bounds, dtype=np.int64)
    return out


@small_pages()
def wafer_yield(dies: pd.DataFrame, *, conf_level: float = 0.95) -> pd.DataFrame:
    """Yield of every wafer.

    Parameters
    ----------
    dies : DataFrame
        Canonical die table (retests allowed).
    conf_level : float
        Confidence level of the Clopper-Pearson interval.

    Returns
    -------
    DataFrame
        One row per wafer in order of first appearance: ``lot_id``, ``wafer_id``, ``tested``
        (distinct dies), ``good`` (final result passed), ``yield``, ``first_pass_good``,
        ``first_pass_yield``, ``ci_lower``, ``ci_upper`` (exact interval of ``yield``).

    Examples
    --------
    >>> import pandas as pd, yieldkit as yk
    >>> d = yk.read_dies(pd.DataFrame({"lot": ["L"] * 4, "wafer": ["1"] * 4, "x": [0, 1, 2, 3], "y": [0] * 4,
    ...                                "bin": [1, 1, 1, 3]}))
    >>> yk.wafer_yield(d)[["tested", "good", "yield"]].to_dict("records")
    [{'tested': 4, 'good': 3, 'yield': 0.75}]
    """
    _check(dies, "wafer_yield")
    passed = dies["passed"].to_numpy(dtype=bool)
    retested = "test_seq" in dies.columns and dies["test_seq"].notna().any()
    runs = None if retested else wafer_runs(dies)
    if runs is not None:  # stored wafer by wafer: count per run of rows, no per-row wafer codes
        starts, run_codes, wafers = runs
        n_w = len(wafers)
        lengths = np.diff(np.r_[starts, len(passed)])
        good = np.bincount(run_codes, weights=_run_counts(passed, starts), minlength=n_w)
        tested = np.bincount(run_codes, weights=lengths, minlength=n_w).astype(np.int64)
        fp_good = good
    elif retested:
        codes, wafers = wafer_codes(dies)
        n_w = len(wafers)
        last = _pick(dies, last=True)
        first = _pick(dies, last=False)
        tested = np.bincount(codes[last], minlength=n_w)
        good = np.bincount(codes[last], weights=passed[last], minlength=n_w)
        fp_good = np.bincount(codes[first], weights=passed[first], minlength=n_w)
    else:
        codes, wafers = wafer_codes(dies)
        n_w = len(wafers)
        both = _pass_fail_counts(codes, passed, n_w)
        good = both[:, 1]
        tested = both[:, 0] + good
        fp_good = good
    good = good.astype(np.int64)
    fp_good = np.asarray(fp_good).astype(np.int64)
    lo, hi = clopper_pearson(good, tested, conf_level)
    out = wafers.copy()
    out["tested"] = tested.astype(np.int64)
    out["good"] = good
    with np.errstate(invalid="ignore", divide="ignore"):
        out["yield"] = good / tested
        out["first_pass_good"] = fp_good
        out["first_pass_yield"] = fp_good / tested
    out["ci_lower"] = lo
    out["ci_upper"] = hi
    return out


def lot_yield(dies: pd.DataFrame, *, conf_level: float = 0.95) -> pd.DataFrame:
    """Yield of every lot, pooled over its wafers.

    Returns
    -------
    DataFrame
        ``lot_id``, ``wafers``, ``tested``, ``good``, ``yield`` (pooled), ``first_pass_yield``,
        ``ci_lower``, ``ci_upper`` (Clopper-Pearson on the pooled counts; wafer-to-wafer
        variation makes it optimistic), ``wafer_yield_mean``, ``wafer_yield_std``,
        ``wafer_yield_min``.
    """
    return lots_from_wafers(wafer_yield(dies, conf_level=conf_level), conf_level=conf_level)


def lots_from_wafers(w: pd.DataFrame, *, conf_level: float = 0.95) -> pd.DataFrame:
    """:func:`lot_yield` from a table that :func:`wafer_yield` already computed."""
    g = w.groupby("lot_id", sort=False)
    out = g.agg(
        wafers=("wafer_id", "size"),
        tested=("tested", "sum"),
        good=("good", "sum"),
        first_pass_good=("first_pass_good", "sum"),
        wafer_yield_mean=("yield", "mean"),
        wafer_yield_std=("yield", "std"),
        wafer_yield_min=("yield", "min"),
    ).reset_index()
    with np.errstate(invalid="ignore", divide="ignore"):
        out["yield"] = out["good"] / out["tested"]
        out["first_pass_yield"] = out["first_pass_good"] / out["tested"]
    lo, hi = clopper_pearson(out["good"].to_numpy(), out["tested"].to_numpy(), conf_level)
    out["ci_lower"] = lo
    out["ci_upper"] = hi
    cols = ["lot_id", "wafers", "tested", "good", "yield", "first_pass_yield", "ci_lower", "ci_upper",
            "wafer_yield_mean", "wafer_yield_std", "wafer_yield_min"]
    return out[cols]
