"""Parametric tests on Dask: lot shifts, test-bin association and the PAT screen.

The long test table (one row per test result, :func:`yieldkit.read_stdf` with ``tests=True``, or
the ``DATASET_tests/`` of ``yieldkit convert``) is usually far larger than the die table. Its
statistics need whole groups, so it is moved twice at most:

1. **by lot** beside a lot-aligned die table (partition i of both holding the same lots): each
   partition pair is matched die by die (the bin and pass flag of every result's part) and
   screened with the in-memory :func:`yieldkit.pat.screen` -- PAT limits are per lot, and the
   geographic rules per wafer and lot, so each partition's screen is exact;
2. **by test**, as a compact frame (group keys, test, value, bin, pass flag): each partition
   then holds every result of its tests, from which the in-memory kernels compute each lot's
   robust statistics and two-sample tests against the pooled population
   (:func:`yieldkit.parametric.shift`) and each failing bin's AUC and point-biserial
   correlation (:func:`yieldkit.parametric.test_bin_association`).

The client gets small tables (per lot and test, per bin and test, the inked dies), adds the
screen's counts up and finishes each result as the in-memory code does (Benjamini-Hochberg
over all rows, the same sort), so results equal the in-memory ones. A single test's results
must fit in a worker's memory.

Install with ``pip install 'yieldkit[dask]'``.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from ..errors import DataQualityWarning, SchemaError, YieldkitValueError
from .dataset import (
    _KEY,
    _PART_COL,
    DEFAULT_PARTITION_ROWS,
    ORDER_COL,
    ORDER_SHIFT,
    _assign,
    _row_order,
    _shuffle_to,
    open_table,
    wafer_partitions,
)

log = logging.getLogger(__name__)

__all__ = ["open_tests", "screen_dask", "shift_dask", "test_bin_association_dask"]

_ORDER = "_o"  # global order of a test row in the compact frame
_PART = _PART_COL


def _is_dask(obj: Any) -> bool:
    return hasattr(obj, "map_partitions") and hasattr(obj, "npartitions")


def open_tests(source: Any, *, partition_rows: int = DEFAULT_PARTITION_ROWS) -> Any:
    """A long test table as a lazily validated Dask DataFrame.

    Parameters
    ----------
    source : path, glob, list of paths, dask DataFrame or DataFrame
        The hive-partitioned test dataset of ``yieldkit convert`` (``DATASET_tests/``), Parquet
        files of test results, or a frame (see :func:`yieldkit.distributed.open_table` with
        ``kind="tests"``).
    partition_rows : int
        Target rows per partition.

    Returns
    -------
    dask.dataframe.DataFrame
    """
    return open_table(source, "tests", partition_rows=partition_rows)


def _open_dies(source: Any, partition_rows: int) -> Any:
    return open_table(source, "dies", partition_rows=partition_rows)


# ---------------------------------------------------------------------------------------
# lot alignment
# ---------------------------------------------------------------------------------------
def lot_mapping(keys: pd.DataFrame, partition_rows: int) -> tuple[pd.DataFrame, bool]:
    """Wafer -> partition with every lot in one partition, from the per-partition wafer table of
    :func:`~yieldkit.distributed.dataset.wafer_partitions`; True when ``keys`` already is."""
    per_lot = keys.groupby("lot_id", sort=False, observed=True)["part"].nunique()
    if not len(keys) or (per_lot <= 1).all():
        return keys.rename(columns={"part": _PART})[_KEY + [_PART]].drop_duplicates(_KEY), True
    w = _assign(keys, partition_rows)  # wafers in order of first appearance
    lots = w.groupby("lot_id", sort=False, observed=True).agg(rows=("rows", "sum"), first=("first", "min"))
    lots = lots.reset_index().sort_values("first", kind="stable").reset_index(drop=True)
    cum = np.cumsum(lots["rows"].to_numpy()) - lots["rows"].to_numpy()
    lots[_PART] = pd.factorize(cum // max(int(partition_rows), 1))[0].astype(np.int64)
    m = w[_KEY].merge(lots[["lot_id", _PART]], on="lot_id", how="left")
    return m, False


def lot_aligned(dies: Any, tests: Any, *, partition_rows: int = DEFAULT_PARTITION_ROWS,
                keys: pd.DataFrame | None = None) -> tuple[Any, Any]:
    """A lot-aligned pair: no lot spans partitions of ``dies``, and partition i of ``tests`` holds
    the results of exactly the wafers of partition i of ``dies`` (results of wafers without dies
    go to their lot's partition, or, for lots without dies, are spread lot by lot over the
    partitions). ``keys``: the wafer table of ``dies`` when known."""
    keys = wafer_partitions(dies) if keys is None else keys
    mapping, already = lot_mapping(keys, partition_rows)
    n_parts = dies.npartitions if already else (int(mapping[_PART].max()) + 1 if len(mapping) else 1)
    if not already:
        log.info("partitions split some lots: moving %d wafers into %d lot-aligned partitions", len(mapping), n_parts)
        dies = _shuffle_to(dies, mapping, n_parts)
    return dies, _shuffle_to(tests, mapping, n_parts, by_lot=True)


# ---------------------------------------------------------------------------------------
# per lot partition
# ---------------------------------------------------------------------------------------
def _compact(tests: pd.DataFrame, by: Sequence[str], value: str, where: str) -> pd.DataFrame:
    """The finite results of a test partition: ``by``, test, value, name and global order."""
    from ..parametric._table import prepare

    order = tests[ORDER_COL].to_numpy(np.int64) if ORDER_COL in tests.columns else np.arange(len(tests), dtype=np.int64)
    f = prepare(tests.assign(**{_ORDER: order}), by=by, extra=[_ORDER], value=value, where=where)
    cols = [*by, "test_num", "pin", "value", _ORDER] + (["test_name"] if "test_name" in f.columns else [])
    f = f[cols]
    if "test_name" in f.columns:  # Arrow strings on the move; Python strings in the kernels (_test_part)
        f["test_name"] = f["test_name"].astype("string[pyarrow]")
    return f.astype({"test_num": np.int64, "pin": np.int64, "value": np.float64})


_LOW = (np.int64(1) << ORDER_SHIFT) - 1  # the position bits of a row-order value


def _dataset_offsets(dies: Any) -> np.ndarray:
    """The global row number of the first row of each partition of the die table as given (dataset
    order), from the row-order values of a (possibly moved) table: ``offsets[p]`` plus the position
    within partition p is a row's number in the whole table."""
    import dask

    def counts(p: pd.DataFrame, number: int) -> np.ndarray:
        order = _row_order(p, {"number": number})
        return np.bincount(order >> ORDER_SHIFT) if len(order) else np.zeros(0, np.int64)

    got = dask.compute(*[dask.delayed(counts)(p, i) for i, p in enumerate(dies.to_delayed())])
    total = np.zeros(max((len(c) for c in got), default=0), np.int64)
    for c in got:
        total[: len(c)] += c
    return np.concatenate([[0], np.cumsum(total)]).astype(np.int64)


def _part_rows(dies: pd.DataFrame, tests: pd.DataFrame, offsets: np.ndarray) -> np.ndarray:
    """Row of ``dies`` (one partition) of every test row (NaN: none), matched on ``part_index``,
    the part's row in the whole die table in dataset order (as the in-memory function does)."""
    order = dies[ORDER_COL].to_numpy(np.int64)
    number = offsets[order >> ORDER_SHIFT] + (order & _LOW)
    idx = tests["part_index"].to_numpy(dtype=np.float64, na_value=np.nan)
    ok = np.isfinite(idx) & (idx >= 0) & (idx < offsets[-1])
    row = np.full(len(tests), np.nan)
    pos = pd.Index(number).get_indexer(idx[ok].astype(np.int64))
    row[np.flatnonzero(ok)] = np.where(pos >= 0, pos, np.nan)
    return row


def _with_bins(f: pd.DataFrame, dies: pd.DataFrame, tests: pd.DataFrame, bin_col: str, where: str,
               keys: list[str] | None, offsets: np.ndarray | None = None) -> pd.DataFrame:
    """The compact frame with the ``_bin``, ``_good`` of each result's die (``_m``: a die matched),
    matched on the die ``keys``, or on ``part_index`` given the partition ``offsets``."""
    from ..parametric.association import die_bins, die_rows

    n = len(f)
    bins = np.full(n, -1, np.int64)
    good = np.zeros(n, bool)
    matched = np.zeros(n, bool)
    if (keys is not None or offsets is not None) and n and len(dies):
        b, g = die_bins(dies, bin_col, where)
        row = _part_rows(dies, tests, offsets) if offsets is not None else die_rows(dies, tests, keys or [])
        row = row[f.index.to_numpy()]
        ok = np.isfinite(row)
        r = row[ok].astype(np.int64)
        bins[ok] = b[r]
        good[ok] = g[r]
        matched = ok
    return f.assign(_bin=bins, _good=good, _m=matched)


def _lot_part(dies: pd.DataFrame, tests: pd.DataFrame, number: int, *, by: tuple[str, ...], value: str,
              bin_col: str | None, screen_kw: Mapping[str, Any] | None,
              offsets: np.ndarray | None = None) -> dict[str, Any]:
    """Everything needed from one lot-aligned (dies, tests) partition pair; with ``offsets``
    (:func:`_dataset_offsets`) results are matched to dies on ``part_index``."""
    out: dict[str, Any] = {}
    if ORDER_COL not in dies.columns:
        dies = dies.assign(**{ORDER_COL: _row_order(dies, {"number": number})})
    out["lots"] = pd.unique(tests["lot_id"].astype(object)) if "lot_id" in tests.columns and len(tests) else []
    where = "test_bin_association" if bin_col else "shift"
    tests = tests.reset_index(drop=True)
    f = _compact(tests, by, value, where)
    if bin_col is not None:
        from ..parametric.association import unique_die_keys

        keys = unique_die_keys(dies, tests) if len(dies) and len(tests) else []
        out["unique"] = keys is not None or offsets is not None
        f = _with_bins(f, dies, tests, bin_col, "test_bin_association", keys or None,
                       offsets if offsets is not None and "part_index" in tests.columns else None)
        sel = dies[~dies["passed"].to_numpy(dtype=bool, na_value=False)] if "passed" in dies.columns else dies
        b = pd.DataFrame({"bin": sel[bin_col].to_numpy(dtype=np.int64, na_value=-1),
                          "first": sel[ORDER_COL].to_numpy(np.int64)})
        out["fail_bins"] = b.groupby("bin", sort=False).agg(count=("first", "size"), first=("first", "min")).reset_index()
    out["compact"] = f.reset_index(drop=True)
    if screen_kw is not None and len(dies):
        out["screen"] = _screen_part(dies, tests, screen_kw)
    return out


def _screen_part(dies: pd.DataFrame, tests: pd.DataFrame, kw: Mapping[str, Any]) -> dict[str, Any]:
    from ..pat import screen

    s = screen(dies, tests, **kw)
    r = s.result
    t = r.table
    return {"inked": t.loc[t["pat_rule"].notna().to_numpy()].reset_index(drop=True),
            "loss_by_rule": r.loss_by_rule, "loss_by_test": r.loss_by_test, "n_good_before": r.n_good_before,
            "n_good_after": r.n_good_after, "limits": s.limits, "rules": s.rules}


def _compact_meta(tests_meta: pd.DataFrame, by: tuple[str, ...], value: str, with_bins: bool) -> pd.DataFrame:
    f = _compact(tests_meta.iloc[:0], by, value, "shift")
    return f.assign(_bin=np.zeros(0, np.int64), _good=np.zeros(0, bool), _m=np.zeros(0, bool)) if with_bins else f


# ---------------------------------------------------------------------------------------
# per test partition
# ---------------------------------------------------------------------------------------
def _test_part(f: pd.DataFrame, by: tuple[str, ...], do_shift: bool, do_assoc: bool) -> dict[str, Any]:
    """Shift rows (each group against all results of its test) and association rows of the
    tests whose every result is in ``f``."""
    from ..parametric.association import association_rows
    from ..parametric.shift import group_table, reference_stats, reference_values

    f = f.sort_values(_ORDER, kind="stable").reset_index(drop=True)
    if "test_name" in f.columns:
        f["test_name"] = f["test_name"].astype(object)
    out: dict[str, Any] = {}
    if not len(f):
        return out
    if do_shift:
        ref = f[["test_num", "pin", "value"] + (["test_name"] if "test_name" in f.columns else [])]
        out["shift"] = group_table(f.drop(columns=[c for c in ("_bin", "_good", "_m", _ORDER) if c in f.columns]),
                                   by, reference_values(ref))
        out["ref"] = reference_stats(ref)
    if do_assoc:
        m = f[f["_m"].to_numpy(bool)].drop(columns=[*by, _ORDER, "_m"]).reset_index(drop=True)
        if len(m):
            rows = association_rows(m)
            if len(rows):
                out["assoc"] = rows
    return out


def _by_test(parts: list[Any], meta: pd.DataFrame, n_parts: int) -> Any:
    """The compact frames of the lot partitions, moved so that each test is in one partition."""
    import dask.dataframe as dd

    frame = dd.from_delayed(parts, meta=meta, verify_meta=False)
    return frame.shuffle(on="test_num", npartitions=max(1, n_parts))


# ---------------------------------------------------------------------------------------
# reductions
# ---------------------------------------------------------------------------------------
def _shift_result(tests: list[dict[str, Any]], by: tuple[str, ...], effect: float, fdr: float) -> Any:
    from ..parametric.shift import finish_shift

    groups = [t["shift"] for t in tests if t.get("shift") is not None and len(t["shift"])]
    refs = [t["ref"] for t in tests if t.get("ref") is not None and len(t["ref"])]
    if not groups:
        raise YieldkitValueError("shift: the test table holds no finite result")
    table = pd.concat(groups, ignore_index=True).sort_values([*by, "test_num", "pin"], kind="stable")
    ref = pd.concat(refs, ignore_index=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataQualityWarning)  # said once below, as the in-memory code does
        res = finish_shift(table.reset_index(drop=True), ref, by, effect, fdr)
    from ..parametric._table import warn_tests

    rs = res.table["ref_sigma"].to_numpy()
    warn_tests(np.isfinite(rs) & (rs <= 0), res.table, "have no spread in the reference: their shift is NaN", "shift")
    return res


def _association_result(tests: list[dict[str, Any]]) -> pd.DataFrame:
    from ..parametric.association import _COLS, finish_association

    rows = [t["assoc"] for t in tests if t.get("assoc") is not None]
    if not rows:
        return pd.DataFrame({c: [] for c in _COLS})
    out = pd.concat(rows, ignore_index=True)
    pin = out["pin"].astype("Int64").fillna(-1).to_numpy(np.int64)
    order = np.lexsort((out["bin"].to_numpy(np.int64), pin, out["test_num"].to_numpy(np.int64)))
    return finish_association(out.iloc[order].reset_index(drop=True))


def _fail_bin_order(parts: list[dict[str, Any]]) -> pd.Series:
    """``dies.loc[~passed, bin].value_counts()`` from the per-partition counts."""
    got = [p["fail_bins"] for p in parts if p.get("fail_bins") is not None and len(p["fail_bins"])]
    if not got:
        return pd.Series([], dtype=np.int64)
    t = pd.concat(got, ignore_index=True).groupby("bin", sort=False).agg(count=("count", "sum"), first=("first", "min"))
    t = t.sort_values("first", kind="stable")
    return pd.Series(t["count"].to_numpy(np.int64), index=t.index.to_numpy()).sort_values(ascending=False)


def _relabel_tests(inked: pd.DataFrame) -> pd.Series:
    """``pat_tests`` of the inked dies in the in-memory order: a die's failing tests joined in the
    order of their first appearance over the whole die table (dies in input order, tests by
    number), or by number when more than 63 tests failed (as :func:`yieldkit.pat.apply_pat`)."""
    s = inked["pat_tests"]
    has = s.notna().to_numpy()
    if not has.any():
        return s
    ex = s[has].astype(object).str.split(";").explode()
    rows = ex.index.to_numpy()
    lab = ex.to_numpy().astype(str)
    order = inked[ORDER_COL].to_numpy(np.int64)[rows]
    t = pd.DataFrame({"row": rows, "label": lab, "order": order, "num": pd.to_numeric(lab, errors="coerce")})
    first = t.groupby("label", sort=False).agg(order=("order", "min"), num=("num", "first")).reset_index()
    keys = ["order", "num", "label"] if len(first) <= 63 else ["num", "label"]
    first = first.sort_values(keys, kind="stable").reset_index(drop=True)
    rank = pd.Series(np.arange(len(first)), index=first["label"].to_numpy())
    t["rank"] = rank.reindex(t["label"].to_numpy()).to_numpy()
    t = t.sort_values(["row", "rank"], kind="stable")
    joined = t.groupby("row", sort=False)["label"].agg(";".join)
    out = s.astype(object).copy()
    out.iloc[joined.index.to_numpy()] = joined.to_numpy()
    return pd.Series(pd.array(out.to_numpy(), dtype=s.dtype), index=s.index)


def _screen_result(parts: list[dict[str, Any]], by: tuple[str, ...], dies_meta: pd.DataFrame) -> Any:
    from ..pat import PatResult, Screen
    from ..pat.dask import combine_limit_tables

    got = [p["screen"] for p in parts if p.get("screen") is not None]
    if not got:
        raise YieldkitValueError("screen: the die table is empty")
    n_good = sum(int(g["n_good_before"]) for g in got)
    n_after = sum(int(g["n_good_after"]) for g in got)
    lr = pd.concat([g["loss_by_rule"] for g in got], ignore_index=True)
    lr = lr.groupby("rule", sort=False).agg(n_fired=("n_fired", "sum"), n_inked=("n_inked", "sum")).reset_index()
    lr["n_fired"] = lr["n_fired"].astype(np.int64)
    lr["n_inked"] = lr["n_inked"].astype(np.int64)
    lr["loss"] = lr["n_inked"] / n_good if n_good else float("nan")
    lt = _loss_by_test([g["loss_by_test"] for g in got], n_good)
    inked = pd.concat([g["inked"] for g in got], ignore_index=True)
    if ORDER_COL in inked.columns:
        inked = inked.sort_values(ORDER_COL, kind="stable").reset_index(drop=True)
        if "pat_tests" in inked.columns:
            inked["pat_tests"] = _relabel_tests(inked)
        inked = inked.drop(columns=ORDER_COL)
    limits = []
    for k, lim in enumerate(got[0]["limits"]):
        tables = [g["limits"][k].table for g in got if len(g["limits"][k].table)]
        limits.append(replace(lim, table=combine_limit_tables(tables, lim.by) if tables else lim.table))
    res = PatResult(table=inked, loss_by_rule=lr, loss_by_test=lt, n_good_before=n_good, n_good_after=n_after)
    return Screen(result=res, limits=limits, rules=got[0]["rules"])


def _loss_by_test(tables: list[pd.DataFrame], n_good: int) -> pd.DataFrame:
    full = [t for t in tables if len(t)]
    if not full:
        return tables[0]
    t = pd.concat(full, ignore_index=True)
    keys = ["rule", "test_num"] + (["pin"] if "pin" in t.columns else [])
    agg: dict[str, Any] = {"n_fail": ("n_fail", "sum")}
    if "test_name" in t.columns:
        agg["test_name"] = ("test_name", "first")
    out = t.groupby(keys, sort=True, dropna=False).agg(**agg).reset_index()
    out["n_fail"] = out["n_fail"].astype(np.int64)
    out["loss"] = out["n_fail"] / n_good if n_good else np.nan
    out = out.sort_values(["rule", "n_fail"], ascending=[True, False], kind="stable", ignore_index=True)
    return out[[c for c in t.columns if c in out.columns]].astype({c: t[c].dtype for c in t.columns
                                                                   if c in ("test_num", "pin", "test_name")})


# ---------------------------------------------------------------------------------------
# the pass over the test table
# ---------------------------------------------------------------------------------------
@dataclass
class _TestsPass:
    parts: list[dict[str, Any]]
    tests: list[dict[str, Any]]
    dies_meta: pd.DataFrame


def _tests_pass(dies: Any, tests: Any, *, by: tuple[str, ...], value: str = "value", bin_col: str | None,
                screen_kw: Mapping[str, Any] | None, do_shift: bool, partition_rows: int,
                keys: pd.DataFrame | None = None) -> _TestsPass:
    """One lot-aligned pass (matching, screen) and one test-aligned pass (shift, association)."""

    from ..parametric._table import require

    require(tests.columns, [*by, "test_num", value], "shift" if do_shift else "test_bin_association")
    if bin_col is not None or screen_kw is not None:
        for c in ("lot_id", "wafer_id", "die_x", "die_y"):
            if c not in tests.columns:
                raise SchemaError(f"The 'tests' table lacks column {c!r}; it has {', '.join(map(str, tests.columns))}. "
                                  "Expected the long test table of read_stdf(tests=True).", column=c)
    dl, tl = lot_aligned(dies, tests, partition_rows=partition_rows, keys=keys)
    kw = {"by": by, "value": value, "bin_col": bin_col, "screen_kw": screen_kw}
    parts, per_test = _run_passes(dl, tl, tests, kw, do_shift, None)
    if bin_col is not None and "part_index" in tests.columns and not all(p.get("unique", True) for p in parts):
        # the die keys do not identify a die somewhere (retests without test_seq): as in memory,
        # every result is matched on part_index, the row of its part in the die table (dataset order)
        log.info("the die keys do not identify a die: matching test results to dies on part_index")
        parts, per_test = _run_passes(dl, tl, tests, kw, do_shift, _dataset_offsets(dl))
    return _TestsPass(parts=list(parts), tests=list(per_test), dies_meta=dies._meta)


def _run_passes(dl: Any, tl: Any, tests: Any, kw: Mapping[str, Any], do_shift: bool,
                offsets: np.ndarray | None) -> tuple[Any, Any]:
    """The lot-aligned pass and the test-aligned pass over the partition pairs."""
    import dask

    by, value, bin_col = kw["by"], kw["value"], kw["bin_col"]
    lot_parts = [dask.delayed(_lot_part)(dp, tp, i, offsets=offsets, **kw) for i, (dp, tp) in
                 enumerate(zip(dl.to_delayed(), tl.to_delayed(), strict=True))]
    want_tests = do_shift or bin_col is not None
    test_parts: list[Any] = []
    if want_tests:
        meta = _compact_meta(tests._meta, by, value, bin_col is not None)
        compact = [dask.delayed(lambda p: p["compact"])(p) for p in lot_parts]
        moved = _by_test(compact, meta, len(lot_parts))
        test_parts = [dask.delayed(_test_part)(b, by, do_shift, bin_col is not None) for b in moved.to_delayed()]
    return dask.compute(lot_parts, test_parts)


def _dies_and_tests(dies: Any, tests: Any, partition_rows: int) -> tuple[Any, Any]:
    from .dataset import _align

    d = _open_dies(dies, partition_rows)
    t = open_tests(tests, partition_rows=partition_rows)
    d, _, _ = _align(d, None, partition_rows=partition_rows)
    return d, t


# ---------------------------------------------------------------------------------------
# public functions
# ---------------------------------------------------------------------------------------
def shift_dask(
    tests: Any,
    *,
    by: Sequence[str] | str = ("lot_id",),
    effect: float = 1.0,
    fdr: float = 0.01,
    value: str = "value",
    partition_rows: int = DEFAULT_PARTITION_ROWS,
) -> Any:
    """:func:`yieldkit.parametric.shift` of every group against all groups pooled, on Dask.

    The reference is the whole table (the form of the report's parametric section,
    ``shift(tests, tests, by=...)``), which need not fit in memory: the results are moved so
    that each partition holds every result of its tests.

    Parameters
    ----------
    tests : path, glob, dask DataFrame or DataFrame
        The long test table (see :func:`open_tests`).
    by, effect, fdr, value
        As for :func:`yieldkit.parametric.shift`.
    partition_rows : int
        Target rows per partition when a path is read.

    Returns
    -------
    ShiftResult
        Equal to ``shift(tests, tests, by=by, effect=effect, fdr=fdr)`` in memory.
    """
    import dask

    from .._validation import as_fraction, as_nonnegative

    where = "shift_dask"
    eff = float(as_nonnegative(effect, "effect", where))
    rate = float(as_fraction(fdr, "fdr", where))
    by_t: tuple[str, ...] = (by,) if isinstance(by, str) else tuple(by)
    if not by_t:
        raise YieldkitValueError("The 'by' argument of shift_dask must name at least one column (e.g. 'lot_id').")
    t = open_tests(tests, partition_rows=partition_rows)
    from ..parametric._table import require

    require(t.columns, [*by_t, "test_num", value], "shift")
    meta = _compact_meta(t._meta, by_t, value, False)

    def compact(p: pd.DataFrame, partition_info: Mapping[str, Any] | None = None) -> pd.DataFrame:
        p = p.assign(**{ORDER_COL: _row_order(p, partition_info)}) if ORDER_COL not in p.columns else p
        return _compact(p.reset_index(drop=True), by_t, value, "shift").reset_index(drop=True)

    moved = t.map_partitions(compact, meta=meta).shuffle(on="test_num", npartitions=max(1, t.npartitions))
    per_test = dask.compute(*[dask.delayed(_test_part)(b, by_t, True, False) for b in moved.to_delayed()])
    return _shift_result(list(per_test), by_t, eff, rate)


def test_bin_association_dask(
    dies: Any,
    tests: Any,
    *,
    bin: str = "hbin",
    value: str = "value",
    partition_rows: int = DEFAULT_PARTITION_ROWS,
) -> pd.DataFrame:
    """:func:`yieldkit.parametric.test_bin_association` on Dask.

    The results are matched to their dies partition by partition (lot-aligned), then moved so
    that each partition holds every result of its tests; the AUC, means and correlations of
    each (bin, test) are computed there, the q-values over all rows on the client.

    Parameters
    ----------
    dies, tests : path, glob, dask DataFrame or DataFrame
        The die table and the long test table of the same parts; the die keys (``lot_id``,
        ``wafer_id``, ``die_x``, ``die_y``, and ``test_seq`` with retests) identify a die, or, when
        they do not (retests without ``test_seq``), the tests' ``part_index`` does: the row of
        the part in the die table in dataset order (partitions in order, rows in order within
        each), which is the in-memory table's row order when both are read from the same files
        (the parts of a lot must be in its partitions, as the tests are moved lot by lot).
    bin, value
        As for :func:`yieldkit.parametric.test_bin_association`.
    partition_rows : int
        Target rows per partition when the data is read or moved.

    Returns
    -------
    DataFrame
        Equal to the in-memory table.

    Raises
    ------
    SchemaError
        A missing column, or die keys that do not identify a die and tests without
        ``part_index``, as in memory.
    """
    d, t = _dies_and_tests(dies, tests, partition_rows)
    got = _tests_pass(d, t, by=(), value=value, bin_col=bin, screen_kw=None, do_shift=False,
                      partition_rows=partition_rows)
    _check_unique(got.parts)
    return _association_result(got.tests)


test_bin_association_dask.__test__ = False  # type: ignore[attr-defined]  # a function, not a pytest test


def _check_unique(parts: list[dict[str, Any]]) -> None:
    if not all(p.get("unique", True) for p in parts):
        raise SchemaError("test_bin_association_dask: cannot match test results to dies: the die keys (lot_id, "
                          "wafer_id, die_x, die_y, test_seq) do not identify a die and the tests have no part_index "
                          "column")


def screen_dask(
    dies: Any,
    tests: Any,
    *,
    rules: Sequence[str] = ("dpat", "gdbn", "cluster", "zpat"),
    partition_rows: int = DEFAULT_PARTITION_ROWS,
    **kwargs: Any,
) -> Any:
    """:func:`yieldkit.pat.screen` on Dask, lot by lot.

    Each lot-aligned partition of the die table is screened with its test results by the
    in-memory :func:`yieldkit.pat.screen` (limits per lot: ``by`` must be ``("lot_id",)``, the
    default); the losses are added up on the client.

    Parameters
    ----------
    dies, tests : path, glob, dask DataFrame or DataFrame
        The die table and the long test table of the same parts.
    rules, kwargs
        As for :func:`yieldkit.pat.screen`.
    partition_rows : int
        Target rows per partition when the data is read or moved.

    Returns
    -------
    Screen
        Its limits, losses and good-die counts equal the in-memory ones; ``result.table`` holds
        only the inked dies (their rows of the in-memory table, in input order), as the whole
        screened die table would not fit in memory.
    """
    by = kwargs.get("by", ("lot_id",))
    by_t = (by,) if isinstance(by, str) else tuple(by)
    if by_t != ("lot_id",):
        raise YieldkitValueError(f"The 'by' argument of screen_dask must be ('lot_id',): the screen runs lot by lot. "
                                 f"Got {by!r} instead.")
    d, t = _dies_and_tests(dies, tests, partition_rows)
    got = _tests_pass(d, t, by=(), bin_col=None, screen_kw={"rules": tuple(rules), **kwargs}, do_shift=False,
                      partition_rows=partition_rows)
    return _screen_result(got.parts, by_t, got.dies_meta)


# ---------------------------------------------------------------------------------------
# the parametric section of analyze(engine="dask")
# ---------------------------------------------------------------------------------------
def parametric_sections(dies: Any, tests: Any, *, keys: pd.DataFrame | None, conf_level: float, top: int | None,
                        pat_rules: Sequence[str], partition_rows: int, notes: list[str], effect: float = 1.0,
                        fdr: float = 0.01, bins: int = 3, per_bin: int = 3) -> tuple[Any, Any, int]:
    """The parametric section and the PAT screen of ``analyze`` from a wafer-aligned die table
    and a test table (both Dask), with the defaults of
    :func:`yieldkit.parametric.parametric_section` and :func:`yieldkit.pat.screen`.

    Returns the section (None without a finite result), the screen and the number of finite
    results; what the engine could not do as in memory is added to ``notes``.
    """
    from ..parametric import capability
    from ..parametric.section import ParametricSection

    by = ("lot_id",) if "lot_id" in tests.columns else ()
    sub = "wafer_id" if "wafer_id" in tests.columns else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataQualityWarning)
        got = _tests_pass(dies, tests, by=by, bin_col="hbin", screen_kw={"rules": tuple(pat_rules)}, do_shift=bool(by),
                          partition_rows=partition_rows, keys=keys)
    n_finite = sum(len(p["compact"]) for p in got.parts)
    pat = _screen_result(got.parts, ("lot_id",), got.dies_meta)
    if not n_finite:
        return None, pat, 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataQualityWarning)
        cap = capability(tests, by=by, subgroup=sub, conf_level=conf_level).table
    n_tests = int(len(cap[["test_num", "pin"]].drop_duplicates())) if len(cap) else 0
    ranked = cap[np.isfinite(cap["cpk"].to_numpy(np.float64))].sort_values(["cpk", "test_num"], kind="stable")
    worst = (ranked if top is None else ranked.head(top)).reset_index(drop=True)
    shifts, tested = None, 0
    lots = {str(x) for p in got.parts for x in p["lots"]}
    if by and len(lots) > 1:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DataQualityWarning)
            sh = _shift_result(got.tests, by, effect, fdr).table
        tested = int(sh["p_ks"].notna().sum())
        shifts = sh[sh["alarm"].to_numpy(bool)].sort_values("shift_sigma", key=np.abs, ascending=False,
                                                             kind="stable").reset_index(drop=True)
    assoc = _association_result(got.tests)
    if not all(p.get("unique", True) for p in got.parts):
        # no part_index either (retests matched on part_index otherwise): the in-memory engine stops
        # with a SchemaError here; the report goes on without the association
        assoc = assoc.iloc[:0]
        notes.append("test-bin association: the die keys (lot_id, wafer_id, die_x, die_y, test_seq) do not "
                     "identify a die and the test table has no part_index; left out")
    if len(assoc):
        top_bins: list[Any] = _fail_bin_order(got.parts).head(bins).index.tolist()
        assoc = assoc[assoc["bin"].isin(top_bins)]
        assoc = assoc.groupby("bin", sort=False, group_keys=False).head(per_bin)
        order = {b: i for i, b in enumerate(top_bins)}
        assoc = assoc.sort_values("bin", key=lambda s: s.map(order), kind="stable").reset_index(drop=True)
    section = ParametricSection(capability=cap, worst=worst, shifts=shifts, shift_tested=tested, association=assoc,
                                n_tests=n_tests, worst_results=_worst_results(tests, worst))
    return section, pat, n_finite


def _worst_results(t: Any, worst: pd.DataFrame) -> pd.DataFrame:
    """The results of the worst test in its lot (small: one test of one lot)."""
    if not len(worst):
        return t._meta.drop(columns=[ORDER_COL], errors="ignore")
    w = worst.iloc[0]
    sel = t[t["test_num"] == int(w["test_num"])]
    if "lot_id" in worst.columns:
        sel = sel[sel["lot_id"] == w["lot_id"]]
    out = sel.compute()
    if ORDER_COL in out.columns:  # a table regrouped by wafer on the way in: back to its order
        out = out.sort_values(ORDER_COL, kind="stable").drop(columns=ORDER_COL)
    out = out.reset_index(drop=True)
    if pd.notna(w["pin"]) and "pin" in out.columns:
        keep = out["pin"].to_numpy(dtype=np.float64, na_value=np.nan) == float(w["pin"])
        out = out.loc[keep].reset_index(drop=True)
    return out

