"""Integer keys over canonical tables: wafer codes and die keys, computed without row loops.

Grouping by two string columns is the most frequent operation in yieldkit and the slowest
one in plain pandas. These helpers factorize ``lot_id`` and ``wafer_id`` once and combine
them into dense int64 codes that numpy can ``bincount`` over.

The codes of a table are remembered for as long as its (immutable) Arrow string buffers
live, so that validating a die table and then summarising it factorizes the identifiers only
once.
"""

from __future__ import annotations

import weakref
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .schema import STRING

__all__ = ["dictionary_codes", "die_keys", "duplicated_keys", "remember_codes", "wafer_codes"]

_CACHE: dict[tuple[int, int], tuple[Any, Any, np.ndarray, pd.DataFrame]] = {}
_CACHE_SIZE = 8


def _arrow_buffer(s: pd.Series) -> Any:
    """The immutable pyarrow array behind an Arrow-backed string column, else None."""
    return getattr(s.array, "_pa_array", None)


_COLUMN_CACHE: dict[int, tuple[Any, np.ndarray, np.ndarray]] = {}


def _cached_codes(s: pd.Series) -> tuple[np.ndarray, np.ndarray] | None:
    """The remembered factorization of an Arrow-backed column, if any."""
    buf = _arrow_buffer(s)
    if buf is None:
        return None
    hit = _COLUMN_CACHE.get(id(buf))
    if hit is not None and hit[0]() is buf:
        return hit[1], hit[2]
    return None


def _factorize(s: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Codes (-1 for missing) and uniques of a column; Arrow strings via pyarrow's dictionary encoding."""
    buf = _arrow_buffer(s)
    if buf is not None:
        hit = _cached_codes(s)
        if hit is not None:
            return hit
        enc = pa.chunked_array(buf).dictionary_encode().unify_dictionaries()
        codes, uniques = dictionary_codes(enc)
        remember_codes(s, codes, uniques)
        return codes, uniques
    codes, uniques = pd.factorize(s, use_na_sentinel=True)
    return codes.astype(np.int64, copy=False), np.asarray(uniques, dtype=object)


def dictionary_codes(chunked: Any) -> tuple[np.ndarray, np.ndarray]:
    """int64 codes (-1 for null) and uniques of a dictionary-encoded pyarrow ChunkedArray whose
    chunks share one dictionary (``unify_dictionaries``)."""
    if chunked.num_chunks == 0:
        return np.zeros(0, np.int64), np.zeros(0, dtype=object)
    arr = chunked.chunk(0) if chunked.num_chunks == 1 else pa.concat_arrays(chunked.chunks)
    idx = arr.indices
    if idx.null_count:
        idx = idx.fill_null(-1)
    codes = idx.to_numpy(zero_copy_only=False).astype(np.int64)
    uniques = arr.dictionary.to_numpy(zero_copy_only=False).astype(object)
    return codes, uniques


def remember_codes(s: pd.Series, codes: np.ndarray, uniques: np.ndarray) -> None:
    """Remember the factorization of an Arrow-backed column for as long as its buffer lives."""
    buf = _arrow_buffer(s)
    if buf is None:
        return
    try:
        ref = weakref.ref(buf)
    except TypeError:
        return
    codes.flags.writeable = False
    if len(_COLUMN_CACHE) >= 2 * _CACHE_SIZE:
        _COLUMN_CACHE.pop(next(iter(_COLUMN_CACHE)))
    _COLUMN_CACHE[id(buf)] = (ref, codes, uniques)


def wafer_codes(df: pd.DataFrame, lot: str = "lot_id", wafer: str = "wafer_id") -> tuple[np.ndarray, pd.DataFrame]:
    """Dense code per row for its (lot, wafer), in order of first appearance.

    Returns
    -------
    codes : ndarray of int64
        ``codes[i]`` indexes the rows of ``wafers``. Treat it as read-only.
    wafers : DataFrame
        One row per distinct (lot_id, wafer_id), in order of first appearance.
    """
    la, wa = _arrow_buffer(df[lot]), _arrow_buffer(df[wafer])
    key = (id(la), id(wa))
    if la is not None and wa is not None:
        hit = _CACHE.get(key)
        if hit is not None and hit[0]() is la and hit[1]() is wa and len(hit[2]) == len(df):
            return hit[2], hit[3].copy()
    if _cached_codes(df[lot]) is not None and _cached_codes(df[wafer]) is not None:
        codes, wafers = _hash_codes(df, lot, wafer)  # the column codes are known: no string work at all
    else:
        runs = _run_codes(df, lot, wafer) if la is not None and wa is not None else None
        codes, wafers = runs if runs is not None else _hash_codes(df, lot, wafer)
    if la is not None and wa is not None:
        try:
            refs = (weakref.ref(la), weakref.ref(wa))
        except TypeError:
            return codes, wafers
        codes.flags.writeable = False
        if len(_CACHE) >= _CACHE_SIZE:
            _CACHE.pop(next(iter(_CACHE)))
        _CACHE[key] = (refs[0], refs[1], codes, wafers.copy())
    return codes, wafers


def _hash_codes(df: pd.DataFrame, lot: str, wafer: str) -> tuple[np.ndarray, pd.DataFrame]:
    """Wafer codes by factorizing both identifier columns."""
    lc, lu = _factorize(df[lot])
    wc, wu = _factorize(df[wafer])
    base = len(wu) + 1
    combined = lc * base + wc
    codes, uniq = _factorize_ints(combined)
    wafers = pd.DataFrame(
        {
            lot: pd.array(lu[uniq // base], dtype=STRING),
            wafer: pd.array(wu[uniq % base], dtype=STRING),
        }
    )
    codes = codes.astype(np.int64, copy=False)
    return codes, wafers


def _factorize_ints(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Dense codes (order of first appearance) and uniques of int64 values; a table stored wafer by
    wafer is done from its runs (one comparison of neighbours), anything else by hashing."""
    n = len(v)
    if n > 1:
        starts = np.flatnonzero(v[1:] != v[:-1]) + 1
        if len(starts) <= n // 16:
            starts = np.r_[0, starts]
            run_codes, uniq = pd.factorize(v[starts])
            return np.repeat(run_codes.astype(np.int64), np.diff(np.r_[starts, n])), np.asarray(uniq, dtype=np.int64)
    codes, uniq = pd.factorize(v)
    return codes.astype(np.int64, copy=False), np.asarray(uniq, dtype=np.int64)


def _changes(buf: Any) -> np.ndarray | None:
    """``buf[i + 1] != buf[i]`` of an Arrow string array without nulls (None otherwise)."""
    if buf.null_count:
        return None
    n = len(buf)
    return pc.not_equal(buf.slice(1), buf.slice(0, n - 1)).to_numpy(zero_copy_only=False)


def _run_codes(df: pd.DataFrame, lot: str, wafer: str) -> tuple[np.ndarray, pd.DataFrame] | None:
    """Wafer codes of a table stored wafer by wafer, from its runs.

    Die tables hold each wafer's rows in one or a few contiguous runs. Comparing each row with
    the previous one (a string comparison, no hashing) finds the runs; only the first row of
    each run is factorized. Same codes and wafer order as hashing; None when the table is not
    run-structured (then hashing is cheaper).
    """
    n = len(df)
    if n < 2:
        return None
    la, wa = _arrow_buffer(df[lot]), _arrow_buffer(df[wafer])
    head = min(n, 4096)
    pl, pw = _changes(la.slice(0, head)), _changes(wa.slice(0, head))
    if pl is None or pw is None or int((pl | pw).sum()) > head // 16:
        return None
    lc, wc = _changes(la), _changes(wa)
    if lc is None or wc is None:
        return None
    starts = np.flatnonzero(lc | wc) + 1
    if len(starts) > n // 16:
        return None
    starts = np.r_[0, starts]
    run_codes, wafers = _hash_codes(df.iloc[starts][[lot, wafer]].reset_index(drop=True), lot, wafer)
    return np.repeat(run_codes, np.diff(np.r_[starts, n])), wafers


def die_keys(df: pd.DataFrame) -> np.ndarray:
    """One int64 per row identifying (lot, wafer, die_x, die_y); dense when the grid is compact.

    A row without a die position (missing ``die_x`` or ``die_y``: a part tested without a
    wafer location) gets a key of its own, so it is never taken for another row's retest.
    """
    codes, wafers = wafer_codes(df)
    sx, sy = df["die_x"], df["die_y"]
    x = sx.to_numpy(na_value=0) if sx.hasnans else sx.to_numpy()
    y = sy.to_numpy(na_value=0) if sy.hasnans else sy.to_numpy()
    if len(x) == 0:
        return np.zeros(0, np.int64)
    xmin, xmax, ymin, ymax = int(x.min()), int(x.max()), int(y.min()), int(y.max())
    nx, ny = xmax - xmin + 1, ymax - ymin + 1
    # int32 arithmetic when every key fits (half the memory traffic), in place after one allocation
    kt: Any = np.int32 if len(wafers) * nx * ny < 2**31 - 1 else np.int64
    keys = codes.astype(kt)
    keys *= kt(nx)
    keys += x.astype(kt, copy=False)
    keys -= kt(xmin)
    keys *= kt(ny)
    keys += y.astype(kt, copy=False)
    keys -= kt(ymin)
    keys = keys.astype(np.int64, copy=False)  # callers combine keys with other integers
    if sx.hasnans or sy.hasnans:
        na = sx.isna().to_numpy() | sy.isna().to_numpy()
        keys = np.where(na, int(keys.max()) + 1 + np.cumsum(na), keys)
    return keys


def duplicated_keys(keys: np.ndarray) -> np.ndarray:
    """Boolean mask of rows whose key appeared on an earlier row.

    Uses a counting pass when the keys are dense (no hashing), and pandas' hash table
    otherwise; the mask is only built when a duplicate exists.
    """
    n = len(keys)
    if n == 0:
        return np.zeros(0, bool)
    kmin, kmax = int(keys.min()), int(keys.max())
    if kmin >= 0 and kmax < max(4 * n, 1 << 20):
        counts = np.bincount(keys, minlength=kmax + 1)
        if counts.max() <= 1:
            return np.zeros(n, bool)
    return pd.Series(keys).duplicated(keep="first").to_numpy()
