"""Shared plumbing of the PAT modules: column checks, test keys, and matching test rows to dies."""

from __future__ import annotations

from collections.abc import Sequence

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


def test_codes(tests: pd.DataFrame) -> tuple[np.ndarray, pd.DataFrame]:
    """Dense code per row for its test (``test_num``, and ``pin`` when any row has one).

    Returns the codes and one row per test: ``test_num``, [``pin``], ``test_name`` (the first given).
    """
    num = tests["test_num"].to_numpy(dtype=np.int64)
    has_pin = "pin" in tests.columns and bool(tests["pin"].notna().any())
    key = num * 65537 + (tests["pin"].to_numpy(dtype=np.int64, na_value=-1) + 1) if has_pin else num
    codes, uniq = pd.factorize(key, sort=True)
    codes = codes.astype(np.int64)
    out = pd.DataFrame({"test_num": (uniq // 65537 if has_pin else uniq).astype(np.int64)})
    if has_pin:
        pin = uniq % 65537 - 1
        out["pin"] = pd.array(np.where(pin < 0, 0, pin), dtype="Int32")
        out.loc[pin < 0, "pin"] = pd.NA
    if "test_name" in tests.columns:
        names = tests["test_name"]
        given = names.notna().to_numpy()
        first = pd.Series(np.flatnonzero(given)).groupby(codes[given]).first()
        col = pd.Series(pd.NA, index=range(len(out)), dtype=object)
        col.iloc[first.index.to_numpy()] = names.to_numpy(dtype=object)[first.to_numpy()]
        out["test_name"] = col.astype("string[pyarrow]")
    return codes, out


def die_row_of_tests(dies: pd.DataFrame, tests: pd.DataFrame, rows: np.ndarray | None = None) -> np.ndarray:
    """Row position in ``dies`` of each test row (-1: no such die), matched on lot, wafer, die and
    ``test_seq`` (when both tables have it; a missing ``test_seq`` counts as 1).

    ``rows`` restricts the candidate die rows (e.g. the final results); the answer is still a row
    position in ``dies``.
    """
    d = dies if rows is None else dies.iloc[rows]
    (wd, wt), _ = joint_wafer_codes(d[["lot_id", "wafer_id"]], tests[["lot_id", "wafer_id"]])
    both = "test_seq" in d.columns and "test_seq" in tests.columns
    if both:
        sd = d["test_seq"].to_numpy(dtype=np.int64, na_value=1)
        st = tests["test_seq"].to_numpy(dtype=np.int64, na_value=1)
        m = int(max(sd.max(initial=1), st.max(initial=1))) + 1
        wd = wd * m + sd
        wt = wt * m + st
    xd = d["die_x"].to_numpy(dtype=np.int64, na_value=np.iinfo(np.int32).min)
    yd = d["die_y"].to_numpy(dtype=np.int64, na_value=np.iinfo(np.int32).min)
    xt = tests["die_x"].to_numpy(dtype=np.int64, na_value=np.iinfo(np.int32).min + 1)
    yt = tests["die_y"].to_numpy(dtype=np.int64, na_value=np.iinfo(np.int32).min + 1)
    okd = (xd > np.iinfo(np.int32).min) & (yd > np.iinfo(np.int32).min)
    okt = (xt > np.iinfo(np.int32).min + 1) & (yt > np.iinfo(np.int32).min + 1)
    idx = np.flatnonzero(okd)
    if len(idx) == 0:
        return np.full(len(tests), -1, np.int64)
    hit = lookup_rows(wd[idx], xd[idx], yd[idx], wt, xt, yt, okt)
    out = np.where(hit >= 0, idx[np.maximum(hit, 0)], -1)
    if rows is not None:
        out = np.where(out >= 0, np.asarray(rows)[np.maximum(out, 0)], -1)
    return out.astype(np.int64)
