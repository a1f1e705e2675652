"""Shared plumbing of the PAT modules: column checks, test keys, and matching test rows to dies."""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from .._keys import joint_wafer_codes, lookup_rows
from ..errors import SchemaError

__all__ = ["die_row_of_tests", "need_columns", "test_codes"]

DIE_KEYS = ("lot_id", "wafer_id", "die_x", "die_y")


def need_columns(df: pd.DataFrame, cols: Sequence[str], *, what: str, where: str) -> None:
    """Raise a SchemaError naming the missing columns of ``df`` and the ones found."""
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise SchemaError(
            f"The {what!r} argument of {where} lacks column(s) {', '.join(missing)}; "
            f"found {', '.join(map(str, df.columns[:30]))}",
            column=missing[0],
        )


def _dense_codes(key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Codes (in sorted order of the values) and sorted uniques of int64 values: a counting pass
    when their range is small, hashing otherwise."""
    if len(key) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    lo, hi = int(key.min()), int(key.max())
    if hi - lo < 4 * len(key) + (1 << 20):
        present = np.zeros(hi - lo + 1, bool)
        present[key - lo] = True
        rank = np.cumsum(present) - 1
        return rank[key - lo], np.flatnonzero(present) + lo
    codes, uniq = pd.factorize(key, sort=True)
    return codes.astype(np.int64), np.asarray(uniq, dtype=np.int64)


def test_codes(tests: pd.DataFrame) -> tuple[np.ndarray, pd.DataFrame]:
    """Dense code per row for its test (``test_num``, and ``pin`` when any row has one), in
    sorted order of the tests.

    Returns the codes and one row per test: ``test_num``, [``pin``], ``test_name`` (the first given).
    """
    num = tests["test_num"].to_numpy(dtype=np.int64)
    has_pin = "pin" in tests.columns and bool(tests["pin"].notna().any())
    key = num * 65537 + (tests["pin"].to_numpy(dtype=np.int64, na_value=-1) + 1) if has_pin else num
    codes, uniq = _dense_codes(key)
    out = pd.DataFrame({"test_num": (uniq // 65537 if has_pin else uniq).astype(np.int64)})
    if has_pin:
        pin = uniq % 65537 - 1
        out["pin"] = pd.array(np.where(pin < 0, 0, pin), dtype="Int32")
        out.loc[pin < 0, "pin"] = pd.NA
    if "test_name" in tests.columns:
        first = pd.Series(tests["test_name"].array).groupby(codes).first()  # the first given (skips missing)
        col = pd.Series(pd.NA, index=range(len(out)), dtype="string[pyarrow]")
        col.iloc[first.index.to_numpy()] = first.astype("string[pyarrow]").to_numpy()
        out["test_name"] = col
    return codes, out


def lot_codes(df: pd.DataFrame) -> tuple[np.ndarray, pd.DataFrame]:
    """Code per row of its lot (lots sorted by name) through the (cached) wafer codes."""
    from .._keys import wafer_codes

    wc, wafers = wafer_codes(df)
    lc, lots = pd.factorize(wafers["lot_id"].astype(str), sort=True)
    return np.asarray(lc, dtype=np.int64)[wc], pd.DataFrame({"lot_id": pd.array(np.asarray(lots, dtype=object),
                                                                                dtype="string[pyarrow]")})


def ints(s: pd.Series, missing: int) -> np.ndarray:
    """An integer column as a numpy array (its own width), ``missing`` where it is missing."""
    if s.hasnans:
        return s.to_numpy(dtype=np.int64, na_value=missing)
    arr = s.to_numpy()
    return arr if arr.dtype.kind in "iu" else arr.astype(np.int64)


def floats(s: pd.Series) -> np.ndarray:
    """A numeric column as float64, NaN where missing."""
    arr = s.to_numpy()
    return arr if arr.dtype == np.float64 else s.to_numpy(dtype=np.float64, na_value=np.nan)


def die_row_of_tests(dies: pd.DataFrame, tests: pd.DataFrame, rows: np.ndarray | None = None) -> np.ndarray:
    """Row position in ``dies`` of each test row (-1: no such die), matched on lot, wafer, die and
    ``test_seq`` (when both tables have it; a missing ``test_seq`` counts as 1).

    ``rows`` restricts the candidate die rows (e.g. the final results); the answer is still a row
    position in ``dies``. A test table stored part by part (each part's tests in one run, as STDF
    writes them) is matched run by run: one look-up per part, not per test row.
    """
    (wd_all, wt), _ = joint_wafer_codes(dies, tests)
    d = dies if rows is None else dies.iloc[rows]
    wd = wd_all if rows is None else wd_all[rows]
    both = "test_seq" in d.columns and "test_seq" in tests.columns
    nan_x = np.iinfo(np.int32).min
    xd = ints(d["die_x"], nan_x)
    yd = ints(d["die_y"], nan_x)
    xt = ints(tests["die_x"], nan_x + 1)
    yt = ints(tests["die_y"], nan_x + 1)
    if both:
        sd = ints(d["test_seq"], 1).astype(np.int64)
        st = ints(tests["test_seq"], 1).astype(np.int64)
        m = int(max(sd.max(initial=1), st.max(initial=1))) + 1
        wd = wd * m + sd
        wt = wt * m + st
    okd = (xd > nan_x) & (yd > nan_x)
    idx = np.flatnonzero(okd)
    if len(idx) == 0 or len(tests) == 0:
        return np.full(len(tests), -1, np.int64)
    # runs of rows of one part: look up the first row of each run only
    n = len(wt)
    change = (wt[1:] != wt[:-1]) | (xt[1:] != xt[:-1]) | (yt[1:] != yt[:-1])
    starts = np.r_[0, np.flatnonzero(change) + 1]
    okt = (xt[starts] > nan_x + 1) & (yt[starts] > nan_x + 1)
    hit = lookup_rows(wd[idx], xd[idx].astype(np.int64), yd[idx].astype(np.int64), wt[starts],
                      xt[starts].astype(np.int64), yt[starts].astype(np.int64), okt)
    hit = np.where(hit >= 0, idx[np.maximum(hit, 0)], -1)
    if rows is not None:
        hit = np.where(hit >= 0, np.asarray(rows)[np.maximum(hit, 0)], -1)
    return np.repeat(hit, np.diff(np.r_[starts, n])).astype(np.int64)


_PART_LENGTH: list[tuple[Any, tuple[int, ...], int | None]] = []


def part_length(tests: pd.DataFrame) -> int | None:
    """:func:`_part_length`, remembered for the last table while it lives (limits and screening
    of one table ask twice)."""
    if _PART_LENGTH:
        ref, shape, m = _PART_LENGTH[0]
        if ref() is tests and shape == tests.shape:
            return m
    m = _part_length(tests)
    try:
        _PART_LENGTH[:] = [(weakref.ref(tests), tests.shape, m)]
    except TypeError:
        pass
    return m


def _same_at(s: pd.Series, first: np.ndarray, last: np.ndarray) -> bool:
    """Whether a column holds the same value at rows ``first`` and ``last`` (pairwise)."""
    arr = getattr(s.array, "_pa_array", None)
    if arr is not None:
        import pyarrow as pa
        import pyarrow.compute as pc

        a, b = arr.take(pa.array(first)), arr.take(pa.array(last))
        return bool(pc.all(pc.equal(a, b)).as_py()) and a.null_count == 0
    return bool((s.iloc[first].reset_index(drop=True) == s.iloc[last].reset_index(drop=True)).fillna(False).all())


def _part_length(tests: pd.DataFrame) -> int | None:
    """The number of tests per part when the table is *rectangular*: stored part by part, every
    part with the same tests in the same order (one row each, no MPR pins) -- the usual layout of a
    datalog. None otherwise. Checks whole columns, compares strings only at part boundaries."""
    n = len(tests)
    if n == 0 or ("pin" in tests.columns and bool(tests["pin"].notna().any())):
        return None
    num = ints(tests["test_num"], -1)
    again = np.flatnonzero(num == num[0])
    m = int(again[1]) if len(again) > 1 else n
    if n % m or len(np.unique(num[:m])) != m:
        return None
    if not (num.reshape(-1, m) == num[:m]).all():
        return None
    for c in ("die_x", "die_y", "test_seq"):
        if c in tests.columns:
            a = ints(tests[c], np.iinfo(np.int32).min).reshape(-1, m)
            if not (a == a[:, :1]).all():
                return None
    first, last = np.arange(0, n, m), np.arange(m - 1, n, m)
    for c in ("lot_id", "wafer_id"):
        if not _same_at(tests[c], first, last):
            return None
    return m


def part_table(tests: pd.DataFrame, m: int) -> pd.DataFrame:
    """One row per part of a rectangular test table (its key columns)."""
    cols = [c for c in ("lot_id", "wafer_id", "die_x", "die_y", "test_seq") if c in tests.columns]
    return tests[cols].iloc[::m].reset_index(drop=True)
