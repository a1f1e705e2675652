"""Integer keys over canonical tables: wafer codes, die keys and die-position lookup, without row loops.

Grouping by two string columns is the most frequent operation in yieldkit and the slowest
one in plain pandas. These helpers factorize ``lot_id`` and ``wafer_id`` once and combine
them into dense int64 codes that numpy can ``bincount`` over; the spatial functions match
wafers across two tables and look dies up by position with the same codes.

The codes of a table are remembered in one small cache for as long as its (immutable) Arrow
string buffers live, so that validating a die table and then summarising it factorizes the
identifiers only once.
"""

from __future__ import annotations

import warnings
import weakref
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .errors import DataQualityWarning, SchemaError, check_choice

__all__ = [
    "BLOCK", "dense_die_keys", "dictionary_codes", "die_keys", "duplicated_keys", "joint_wafer_codes", "lookup_rows",
    "position_codes", "remember_codes", "run_slices", "unique_dies", "wafer_codes", "wafer_groups", "wafer_runs",
]

# The dtype of every string column, public as yieldkit.schema.STRING. It lives here, the lowest layer
# that builds string columns, because schema imports this module.
STRING = pd.StringDtype("pyarrow")

# The one cache: keyed by the ids of the Arrow buffers a value was computed from (one buffer: a
# column's factorization; two: the wafer codes of a lot and a wafer column). An id can be reused
# once its object is gone, so each entry keeps weak references to its buffers and a hit must find
# the very same objects alive.
_CACHE: dict[tuple[int, ...], tuple[tuple[Any, ...], Any]] = {}
_CACHE_SIZE = 24


def _recall(bufs: tuple[Any, ...]) -> Any:
    """The value remembered for these buffers, or None."""
    hit = _CACHE.get(tuple(id(b) for b in bufs))
    if hit is None or any(ref() is not b for ref, b in zip(hit[0], bufs)):
        return None
    return hit[1]


def _remember(bufs: tuple[Any, ...], value: Any) -> None:
    """Remember ``value`` for as long as all of ``bufs`` live (oldest entry evicted first)."""
    try:
        refs = tuple(weakref.ref(b) for b in bufs)
    except TypeError:
        return
    if len(_CACHE) >= _CACHE_SIZE:
        try:  # other threads (Dask's threaded scheduler) may evict the same entry at the same time
            _CACHE.pop(next(iter(_CACHE)), None)
        except (RuntimeError, StopIteration):
            pass
    _CACHE[tuple(id(b) for b in bufs)] = (refs, value)


def _arrow_buffer(s: pd.Series) -> Any:
    """The immutable pyarrow array behind an Arrow-backed string column, else None."""
    return getattr(s.array, "_pa_array", None)


def _cached_codes(s: pd.Series) -> tuple[np.ndarray, np.ndarray] | None:
    """The remembered factorization of an Arrow-backed column, if any."""
    buf = _arrow_buffer(s)
    return None if buf is None else _recall((buf,))


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
    """Codes (-1 for null) and uniques of a dictionary-encoded pyarrow ChunkedArray whose chunks
    share one dictionary (``unify_dictionaries``).

    The codes keep the dictionary's signed index type (int32 as Parquet and ``dictionary_encode``
    give them: half the memory of int64); a chunk without nulls is used without a copy, several
    chunks are joined in one allocation.
    """
    if chunked.num_chunks == 0:
        return np.zeros(0, np.int64), np.zeros(0, dtype=object)
    parts = []
    for chunk in chunked.chunks:
        idx = chunk.indices
        if idx.null_count:
            idx = idx.fill_null(-1)
        part = idx.to_numpy(zero_copy_only=False)
        parts.append(part if part.dtype.kind == "i" else part.astype(np.int64))
    codes = parts[0] if len(parts) == 1 else np.concatenate(parts)
    uniques = chunked.chunk(0).dictionary.to_numpy(zero_copy_only=False).astype(object)
    return codes, uniques


def remember_codes(s: pd.Series, codes: np.ndarray, uniques: np.ndarray) -> None:
    """Remember the factorization of an Arrow-backed column for as long as its buffer lives."""
    buf = _arrow_buffer(s)
    if buf is None:
        return
    codes.flags.writeable = False
    _remember((buf,), (codes, uniques))


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
    if la is not None and wa is not None:
        hit = _recall((la, wa))
        if hit is not None and len(hit[0]) == len(df):
            return hit[0], hit[1].copy()
    runs = wafer_runs(df, lot, wafer)
    if runs is not None:
        starts, run_codes, wafers = runs
        codes = np.repeat(run_codes, np.diff(np.r_[starts, len(df)]))
    else:
        codes, wafers = _hash_codes(df, lot, wafer)
    if la is not None and wa is not None:
        codes.flags.writeable = False
        _remember((la, wa), (codes, wafers.copy()))
    return codes, wafers


def _hash_codes(df: pd.DataFrame, lot: str, wafer: str) -> tuple[np.ndarray, pd.DataFrame]:
    """Wafer codes by factorizing both identifier columns."""
    lc, lu = _factorize(df[lot])
    wc, wu = _factorize(df[wafer])
    base = len(wu) + 1
    combined = lc.astype(np.int64)  # one row-sized temporary, combined in place
    combined *= base
    combined += wc
    codes, uniq = _factorize_ints(combined)
    del combined
    return codes.astype(np.int64, copy=False), _wafer_table(lot, wafer, lu, wu, uniq, base)


def _wafer_table(lot: str, wafer: str, lu: np.ndarray, wu: np.ndarray, uniq: np.ndarray, base: int) -> pd.DataFrame:
    """The distinct wafers of combined column codes ``uniq`` (``lot_code * base + wafer_code``)."""
    return pd.DataFrame(
        {
            lot: pd.array(lu[uniq // base], dtype=STRING),
            wafer: pd.array(wu[uniq % base], dtype=STRING),
        }
    )


class _Runs:
    """The marker of a cache entry holding the wafer runs of two identifier columns."""


_RUNS = _Runs()


def wafer_runs(
    df: pd.DataFrame, lot: str = "lot_id", wafer: str = "wafer_id"
) -> tuple[np.ndarray, np.ndarray, pd.DataFrame] | None:
    """The wafers of a table stored wafer by wafer, as runs of rows: no per-row array at all.

    Returns ``(starts, run_codes, wafers)``: the first row of each run of rows of one wafer
    (ascending, ``starts[0] == 0``), the wafer code of each run (int64, as :func:`wafer_codes`
    gives it to every row of the run), and the wafers in order of first appearance. A wafer may
    have several runs. None when the identifiers are not Arrow strings or the table is not
    stored wafer by wafer (more than one row in 16 starts a run); then use :func:`wafer_codes`.
    Remembered as long as the identifier columns live.
    """
    la, wa = _arrow_buffer(df[lot]), _arrow_buffer(df[wafer])
    if la is None or wa is None or len(df) < 2:
        return None
    hit = _recall((la, wa, _RUNS))
    if hit is not None:
        return None if hit[0] is None else (hit[0][0], hit[0][1], hit[0][2].copy())
    lcodes, wcodes = _cached_codes(df[lot]), _cached_codes(df[wafer])
    if lcodes is not None and wcodes is not None:  # the column codes are known: no string work at all
        (lc, lu), (wc, wu) = lcodes, wcodes
        starts = _code_runs(lc, wc)
        if starts is None:
            found = None
        else:
            base = len(wu) + 1
            run_codes, uniq = pd.factorize(lc[starts].astype(np.int64) * base + wc[starts])
            found = (starts, run_codes.astype(np.int64), _wafer_table(lot, wafer, lu, wu, np.asarray(uniq), base))
    else:
        found = _string_runs(df, lot, wafer)
    if found is not None:
        for a in found[:2]:
            a.flags.writeable = False
    _remember((la, wa, _RUNS), (found,))
    return None if found is None else (found[0], found[1], found[2].copy())


def _code_runs(a: np.ndarray, b: np.ndarray) -> np.ndarray | None:
    """First rows of the runs of equal ``(a, b)`` pairs, or None when the runs are many (more than
    one row in 16 starts one: a table not stored wafer by wafer)."""
    n = len(a)
    if n < 2:
        return None
    head = min(n, 4096)
    if int(((a[1:head] != a[: head - 1]) | (b[1:head] != b[: head - 1])).sum()) > head // 16:
        return None
    change = a[1:] != a[:-1]
    change |= b[1:] != b[:-1]
    starts = np.flatnonzero(change)
    del change
    if len(starts) > n // 16:
        return None
    return np.r_[0, starts + 1]


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


def _string_runs(df: pd.DataFrame, lot: str, wafer: str) -> tuple[np.ndarray, np.ndarray, pd.DataFrame] | None:
    """The runs of a table stored wafer by wafer (as :func:`wafer_runs`), from its strings.

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
    firsts = pd.DataFrame({lot: _take_rows(la, starts), wafer: _take_rows(wa, starts)})
    run_codes, wafers = _hash_codes(firsts, lot, wafer)
    return starts, run_codes, wafers


def _take_rows(buf: Any, rows: np.ndarray) -> pd.arrays.ArrowStringArray:
    """The values at ``rows`` (ascending) of an Arrow string column, chunk by chunk (a take over a
    chunked array would first concatenate all its chunks)."""
    chunks = buf.chunks if isinstance(buf, pa.ChunkedArray) else [buf]
    bounds = np.cumsum([0] + [len(c) for c in chunks])
    which = np.searchsorted(bounds, rows, side="right") - 1
    parts = [chunks[c].take(pa.array(rows[which == c] - bounds[c])) for c in np.unique(which)]
    return pd.arrays.ArrowStringArray(pa.chunked_array(parts, type=buf.type).cast(pa.large_string()))


def _rows_wafers(df: pd.DataFrame) -> tuple[tuple[np.ndarray, np.ndarray, pd.DataFrame] | None, np.ndarray | None, int]:
    """The wafer of every row of a die table as ``(runs, codes, n_wafers)``: its runs
    (:func:`wafer_runs`) when the table is stored wafer by wafer and its per-row codes are not
    remembered yet (so none are made), else the per-row codes of :func:`wafer_codes`."""
    la, wa = _arrow_buffer(df["lot_id"]), _arrow_buffer(df["wafer_id"])
    known = la is not None and wa is not None and _recall((la, wa)) is not None
    runs = None if known else wafer_runs(df)
    if runs is not None:
        return runs, None, len(runs[2])
    codes, wafers = wafer_codes(df)
    return None, codes, len(wafers)


def run_slices(starts: np.ndarray, i: int, j: int) -> tuple[int, int, np.ndarray]:
    """The runs (first rows ``starts``, ascending, ``starts[0] == 0``) that meet rows ``i .. j - 1``:
    ``(first, last, bounds)``, runs ``first .. last - 1``, their first rows within the block
    (``bounds[0] == 0``)."""
    first = int(np.searchsorted(starts, i, side="right")) - 1  # the run holding row i
    last = int(np.searchsorted(starts, j, side="left"))
    bounds = starts[first:last] - i
    bounds[0] = 0
    return first, last, bounds


def die_keys(df: pd.DataFrame, *, narrow: bool = False) -> np.ndarray:
    """One int64 per row identifying (lot, wafer, die_x, die_y); dense when the grid is compact.

    A row without a die position (missing ``die_x`` or ``die_y``: a part tested without a
    wafer location) gets a key of its own, so it is never taken for another row's retest.
    ``narrow=True`` gives int32 keys when every key fits (half the memory), for callers that
    only compare or sort them; the default int64 keys may be combined with other integers.
    """
    runs, codes, n_w = _rows_wafers(df)
    sx, sy = df["die_x"], df["die_y"]
    x = sx.to_numpy(na_value=0) if sx.hasnans else sx.to_numpy()
    y = sy.to_numpy(na_value=0) if sy.hasnans else sy.to_numpy()
    if len(x) == 0:
        return np.zeros(0, np.int64)
    xmin, xmax, ymin, ymax = int(x.min()), int(x.max()), int(y.min()), int(y.max())
    nx, ny = xmax - xmin + 1, ymax - ymin + 1
    # int32 arithmetic when every key fits (half the memory traffic), in place after one allocation
    kt: Any = np.int32 if n_w * nx * ny < 2**31 - 1 else np.int64
    if runs is not None:
        starts, run_codes, _ = runs
        keys = np.repeat((run_codes * nx - xmin).astype(kt), np.diff(np.r_[starts, len(x)]))
    else:
        assert codes is not None
        keys = codes.astype(kt)
        keys *= kt(nx)
        keys -= kt(xmin)
    keys += x.astype(kt, copy=False)
    keys *= kt(ny)
    keys += y.astype(kt, copy=False)
    keys -= kt(ymin)
    if not narrow:
        keys = keys.astype(np.int64, copy=False)  # callers combine keys with other integers
    if sx.hasnans or sy.hasnans:
        na = sx.isna().to_numpy() | sy.isna().to_numpy()
        keys = np.where(na, int(keys.max()) + 1 + np.cumsum(na), keys)
    return keys


#: rows per block of the block-wise passes (a small key buffer instead of a row-sized one)
BLOCK = 1 << 18


def unique_dies(df: pd.DataFrame) -> bool:
    """Whether no (lot, wafer, die_x, die_y) appears on two rows, decided block by block.

    The die keys of a block of rows at a time mark a table of all possible keys (one byte per
    die of the wafers' bounding box), so no row-sized key array is made. Only for a table whose
    every row has a die position and whose keys are dense; False whenever unsure (a missing
    position, a sparse key space) and when a die repeats: then :func:`die_keys` and
    :func:`duplicated_keys` find the rows.
    """
    n = len(df)
    sx, sy = df["die_x"], df["die_y"]
    if n == 0 or sx.hasnans or sy.hasnans:
        return False
    runs, codes, n_w = _rows_wafers(df)
    x, y = sx.to_numpy(), sy.to_numpy()
    xmin, ymin = int(x.min()), int(y.min())
    nx, ny = int(x.max()) - xmin + 1, int(y.max()) - ymin + 1
    space = n_w * nx * ny
    if space >= max(4 * n, 1 << 20) or space >= 2**31 - 1:
        return False
    seen = np.zeros(space, bool)
    base = None if runs is None else (runs[1] * nx - xmin).astype(np.int32)  # the key of each run's wafer
    for i in range(0, n, BLOCK):
        j = min(i + BLOCK, n)
        if runs is not None and base is not None:
            first, last, bounds = run_slices(runs[0], i, j)
            k = np.repeat(base[first:last], np.diff(np.r_[bounds, j - i]))
        else:
            assert codes is not None
            k = codes[i:j].astype(np.int32)
            k *= np.int32(nx)
            k -= np.int32(xmin)
        k += x[i:j]
        k *= np.int32(ny)
        k += y[i:j]
        k -= np.int32(ymin)
        seen[k] = True
    return int(np.count_nonzero(seen)) == n


def duplicated_keys(keys: np.ndarray) -> np.ndarray:
    """Boolean mask of rows whose key appeared on an earlier row.

    Uses a marking pass when the keys are dense (no hashing, one byte per possible key, keys of
    any integer type without a converted copy), and pandas' hash table otherwise; the mask is
    only built when a duplicate exists.
    """
    n = len(keys)
    if n == 0:
        return np.zeros(0, bool)
    kmin, kmax = int(keys.min()), int(keys.max())
    if kmin >= 0 and kmax < max(4 * n, 1 << 20):
        seen = np.zeros(kmax + 1, bool)
        seen[keys] = True
        if int(np.count_nonzero(seen)) == n:
            return np.zeros(n, bool)
    return pd.Series(keys).duplicated(keep="first").to_numpy()


def joint_wafer_codes(*tables: pd.DataFrame) -> tuple[list[np.ndarray], pd.DataFrame]:
    """Wafer codes of several tables in one code space (order of first appearance across them)."""
    if len(tables) == 1:
        codes, wafers = wafer_codes(tables[0])
        return [codes], wafers
    first, wafers = wafer_codes(tables[0])
    out = [first]
    n_known = len(wafers)
    for t in tables[1:]:
        # factorize the (usually smaller) table, then match its distinct wafers to the known ones
        c, u = wafer_codes(t)
        known = pd.MultiIndex.from_arrays([wafers["lot_id"].to_numpy(object), wafers["wafer_id"].to_numpy(object)])
        q = pd.MultiIndex.from_arrays([u["lot_id"].to_numpy(object), u["wafer_id"].to_numpy(object)])
        hit = known.get_indexer(q)
        new = hit < 0
        hit[new] = n_known + np.arange(int(new.sum()))
        if new.any():
            wafers = pd.concat([wafers, u.loc[new]], ignore_index=True)
            n_known = len(wafers)
        out.append(hit[c].astype(np.int64))
    return out, wafers


def wafer_groups(
    defects: pd.DataFrame, level: str, where: str, wafers: pd.DataFrame | None = None
) -> tuple[np.ndarray, pd.DataFrame, np.ndarray]:
    """Group code per defect, the groups, and the number of wafers in each group (the area divisor).

    ``wafers`` lists the inspected wafers (``lot_id``, ``wafer_id``: a wafer or die table,
    repeats allowed), so that wafers without defects count; without it only the wafers that
    appear in ``defects`` are known. Defects of wafers missing from ``wafers`` are kept (their
    wafers are added) with a :class:`DataQualityWarning`.
    """
    check_choice(level, ("wafer", "lot", "pooled"), name="level", where=where)
    if wafers is None:
        (w,), table = joint_wafer_codes(defects)
    else:
        for col in ("lot_id", "wafer_id"):
            if col not in wafers.columns:
                raise SchemaError(f"The 'wafers' argument of {where} needs the column {col!r}", column=col)
        (_, w), table = joint_wafer_codes(wafers, defects)
        n_listed = len(wafer_codes(wafers)[1])
        if len(table) > n_listed:
            warnings.warn(
                f"{where}: {len(table) - n_listed} wafer(s) with defects are not in 'wafers'; they are "
                "counted as inspected",
                DataQualityWarning,
                stacklevel=3,
            )
    if level == "wafer":
        return w, table, np.ones(len(table))
    if level == "lot":
        lc, lots = pd.factorize(table["lot_id"])
        groups = pd.DataFrame({"lot_id": pd.array(np.asarray(lots, dtype=object), dtype=STRING)})
        return lc[w].astype(np.int64), groups, np.bincount(lc, minlength=len(groups)).astype(float)
    return np.zeros(len(w), np.int64), pd.DataFrame(index=[0]), np.array([float(len(table))])


def position_codes(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, pd.DataFrame]:
    """Dense code per (die_x, die_y) pair, and the distinct positions (sorted by y, then x)."""
    x = np.asarray(x)
    y = np.asarray(y)
    if len(x) == 0:
        return np.zeros(0, np.int64), pd.DataFrame({"die_x": np.zeros(0, np.int32), "die_y": np.zeros(0, np.int32)})
    xmin, ymin = int(x.min()), int(y.min())
    nx = int(x.max()) - xmin + 1
    flat = y.astype(np.int64)  # (y - ymin) * nx + (x - xmin), one die-sized temporary at a time
    flat -= ymin
    flat *= nx
    np.add(flat, x, out=flat, casting="unsafe")
    flat -= xmin
    space = nx * (int(y.max()) - ymin + 1)
    if space <= 4 * len(flat) + 1_000_000:  # a die grid: mark the positions present, no sorting
        present = np.bincount(flat, minlength=space) > 0
        uniq = np.flatnonzero(present)
        lut = np.cumsum(present) - 1
        codes = lut[flat]
    else:
        uniq, codes = np.unique(flat, return_inverse=True)
    del flat
    pos = pd.DataFrame({"die_x": (uniq % nx + xmin).astype(np.int32), "die_y": (uniq // nx + ymin).astype(np.int32)})
    return codes.astype(np.int64).ravel(), pos


def dense_die_keys(
    w_tab: np.ndarray, x_tab: np.ndarray, y_tab: np.ndarray,
    w_q: np.ndarray, x_q: np.ndarray, y_q: np.ndarray, valid_q: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int] | None:
    """Keys ``(wafer * ny + y) * nx + x`` in the table's bounding box of dies, for table and queries.

    Returns ``(k_tab, k_q, ok_q, space)``: ``ok_q`` marks the valid queries inside the box (their
    keys are meaningful), ``space`` the number of possible keys; None when ``space`` is large
    compared with the data (then use :func:`lookup_rows`).
    """
    n_tab = len(w_tab)
    if n_tab == 0:
        return None
    xmin, xmax = int(x_tab.min()), int(x_tab.max())
    ymin, ymax = int(y_tab.min()), int(y_tab.max())
    nx, ny = xmax - xmin + 1, ymax - ymin + 1
    n_w = int(w_tab.max()) + 1
    space = n_w * nx * ny
    if space > 4 * (n_tab + len(w_q)) + 1_000_000:
        return None
    # int32 arithmetic when the key space allows it (half the memory traffic of int64)
    kt: Any = np.int32 if space < 2**31 - 1 else np.int64
    k_tab: np.ndarray = w_tab.astype(kt)
    k_tab *= kt(ny)  # in place from here on
    k_tab += y_tab.astype(kt, copy=False)
    k_tab -= kt(ymin)
    k_tab *= kt(nx)
    k_tab += x_tab.astype(kt, copy=False)
    k_tab -= kt(xmin)
    ok = valid_q & (x_q >= xmin) & (x_q <= xmax) & (y_q >= ymin) & (y_q <= ymax) & (w_q >= 0) & (w_q < n_w)
    k_q = ((w_q[ok] * ny + (y_q[ok] - ymin)) * nx + (x_q[ok] - xmin)).astype(np.int64, copy=False)
    return k_tab, k_q, ok, space


def lookup_rows(
    w_tab: np.ndarray, x_tab: np.ndarray, y_tab: np.ndarray,
    w_q: np.ndarray, x_q: np.ndarray, y_q: np.ndarray, valid_q: np.ndarray | None = None,
) -> np.ndarray:
    """Row of the table holding each query (wafer code, die_x, die_y); -1 where there is none.

    The table's keys must be unique. A dense lookup array is used when the key space is small
    compared with the data, a sorted search otherwise.
    """
    n_q = len(w_q)
    res = np.full(n_q, -1, dtype=np.int64)
    if len(w_tab) == 0 or n_q == 0:
        return res
    ok = np.ones(n_q, bool) if valid_q is None else np.asarray(valid_q, bool).copy()
    xmin, xmax = int(x_tab.min()), int(x_tab.max())
    ymin, ymax = int(y_tab.min()), int(y_tab.max())
    ok &= (x_q >= xmin) & (x_q <= xmax) & (y_q >= ymin) & (y_q <= ymax) & (w_q >= 0)
    nx, ny = xmax - xmin + 1, ymax - ymin + 1
    n_w = int(max(w_tab.max(), w_q.max() if n_q else 0)) + 1
    ok &= w_q < n_w
    k_tab = (w_tab.astype(np.int64) * ny + (y_tab - ymin)) * nx + (x_tab - xmin)
    k_q = (np.where(ok, w_q, 0).astype(np.int64) * ny + (np.where(ok, y_q, ymin) - ymin)) * nx + (
        np.where(ok, x_q, xmin) - xmin
    )
    space = n_w * nx * ny
    if space <= 4 * (len(w_tab) + n_q) + 1_000_000:
        dense = np.full(space, -1, dtype=np.int64)
        dense[k_tab] = np.arange(len(k_tab))
        res[ok] = dense[k_q[ok]]
    else:
        order = np.argsort(k_tab, kind="stable")
        ks = k_tab[order]
        pos = np.searchsorted(ks, k_q[ok])
        pos_c = np.minimum(pos, len(ks) - 1)
        hit = ks[pos_c] == k_q[ok]
        res[ok] = np.where(hit, order[pos_c], -1)
    return res
