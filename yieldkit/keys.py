"""Integer keys over canonical tables: wafer codes and die keys, computed without row loops.

Grouping by two string columns is the most frequent operation in yieldkit and the slowest
one in plain pandas. These helpers factorize ``lot_id`` and ``wafer_id`` once (through
pyarrow's dictionary encoding for Arrow-backed strings) and combine them into dense int64
codes that numpy can ``bincount`` over.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["die_keys", "wafer_codes"]


def _factorize(s: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    codes, uniques = pd.factorize(s, use_na_sentinel=True)
    return codes.astype(np.int64, copy=False), np.asarray(uniques, dtype=object)


def wafer_codes(df: pd.DataFrame, lot: str = "lot_id", wafer: str = "wafer_id") -> tuple[np.ndarray, pd.DataFrame]:
    """Dense code per row for its (lot, wafer), in order of first appearance.

    Returns
    -------
    codes : ndarray of int64
        ``codes[i]`` indexes the rows of ``wafers``.
    wafers : DataFrame
        One row per distinct (lot_id, wafer_id), in order of first appearance.
    """
    lc, lu = _factorize(df[lot])
    wc, wu = _factorize(df[wafer])
    base = len(wu) + 1
    combined = lc * base + wc
    codes, uniq = pd.factorize(combined)  # hash-based, order of first appearance
    uniq = np.asarray(uniq, dtype=np.int64)
    wafers = pd.DataFrame(
        {
            lot: pd.array(lu[uniq // base], dtype=pd.StringDtype("pyarrow")),
            wafer: pd.array(wu[uniq % base], dtype=pd.StringDtype("pyarrow")),
        }
    )
    codes = codes.astype(np.int64, copy=False)
    return codes, wafers


def die_keys(df: pd.DataFrame) -> np.ndarray:
    """One int64 per row identifying (lot, wafer, die_x, die_y)."""
    codes, _ = wafer_codes(df)
    x = df["die_x"].to_numpy(dtype="int64", na_value=0)
    y = df["die_y"].to_numpy(dtype="int64", na_value=0)
    if len(x) == 0:
        return np.zeros(0, np.int64)
    x = x - x.min()
    y = y - y.min()
    nx = int(x.max()) + 1
    ny = int(y.max()) + 1
    return (codes * nx + x) * ny + y
