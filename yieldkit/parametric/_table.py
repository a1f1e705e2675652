"""The long test table as the parametric functions read it: checked columns and test keys.

The long table is what :func:`yieldkit.read_stdf` returns with ``tests=True``: one row per
test result with ``lot_id``, ``wafer_id``, ``die_x``, ``die_y``, ``test_num``, ``test_name``,
``pin`` (MPR pins), ``value``, ``lo_limit``, ``hi_limit``, ``units``, ``passed``. A test is
identified by ``test_num`` and, for multi-pin results, ``pin``.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..errors import DataQualityWarning, SchemaError, YieldkitTypeError

__all__ = ["is_dask", "prepare", "test_keys"]

#: the key of a test in the output tables; ``pin`` -1 stands for "no pin" (PTR results)
TEST_KEYS = ("test_num", "pin")


def is_dask(obj: Any) -> bool:
    """Whether ``obj`` is a Dask DataFrame (without importing dask)."""
    return type(obj).__module__.split(".")[0] in ("dask", "dask_expr") and hasattr(obj, "map_partitions")


def check_frame(tests: Any, where: str, name: str = "tests") -> None:
    if not isinstance(tests, pd.DataFrame) and not is_dask(tests):
        raise YieldkitTypeError(f"The {name!r} argument of {where} must be a pandas or Dask DataFrame (the long "
                                f"test table of read_stdf(tests=True)). Got {type(tests).__name__} instead.")


def require(columns: Iterable[str], need: Sequence[str], where: str, name: str = "tests") -> None:
    """Raise a SchemaError listing the columns of ``need`` missing from ``columns``."""
    have = list(columns)
    miss = [c for c in need if c not in have]
    if miss:
        raise SchemaError(f"The {name!r} table of {where} lacks column(s) {', '.join(miss)}; it has "
                          f"{', '.join(map(str, have[:30]))}{', ...' if len(have) > 30 else ''}. Expected the long "
                          "test table of read_stdf(tests=True).")


def test_keys() -> list[str]:
    return list(TEST_KEYS)


def prepare(tests: pd.DataFrame, *, by: Sequence[str], extra: Sequence[str] = (), value: str = "value",
            where: str) -> pd.DataFrame:
    """A compact frame of the finite results: ``by`` keys, ``test_num``, ``pin`` (-1: none), ``extra``
    columns, ``value`` (float64) and the limits (float64, NaN: none)."""
    need = [*by, "test_num", value, *extra]
    require(tests.columns, list(dict.fromkeys(need)), where)
    out: dict[str, Any] = {}
    for c in dict.fromkeys([*by, *extra]):
        out[c] = tests[c].reset_index(drop=True)  # categoricals and Arrow strings stay as they are
    out["test_num"] = np.asarray(tests["test_num"].astype("int64").to_numpy())
    out["pin"] = (tests["pin"].astype("Int64").fillna(-1).to_numpy(np.int64) if "pin" in tests.columns
                  else np.full(len(tests), -1, np.int64))
    out["value"] = tests[value].to_numpy(dtype=np.float64, na_value=np.nan)
    for c in ("lo_limit", "hi_limit"):
        out[c] = (tests[c].to_numpy(dtype=np.float64, na_value=np.nan) if c in tests.columns
                  else np.full(len(tests), np.nan))
    for c in ("test_name", "units"):
        if c in tests.columns and c not in out:
            out[c] = tests[c].reset_index(drop=True)
    frame = pd.DataFrame(out, index=pd.RangeIndex(len(tests)), copy=False)
    finite = np.isfinite(out["value"])
    return frame if finite.all() else frame[finite]


def warn_tests(mask: np.ndarray, table: pd.DataFrame, what: str, where: str) -> None:
    """One DataQualityWarning naming (some of) the tests where ``mask`` holds."""
    if not np.any(mask):
        return
    nums = pd.unique(table.loc[mask, "test_num"])
    shown = ", ".join(str(int(t)) for t in nums[:10]) + (", ..." if len(nums) > 10 else "")
    warnings.warn(f"{where}: {int(np.sum(mask))} row(s) ({len(nums)} test(s): {shown}) {what}", DataQualityWarning,
                  stacklevel=3)
