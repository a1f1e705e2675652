"""Data preparation of the three fitting routes: counts, window (block) method, die sizes.

Each route turns its input into the cells of :mod:`yieldkit.models._likelihood`; nothing here
fits anything.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from .._keys import wafer_codes
from .._validation import check_choice
from ..errors import DataQualityWarning, SchemaError, YieldkitValueError
from ..yields import final_results
from ._likelihood import BinomialCells, CountCells
from .histogram import CountHistogram

log = logging.getLogger(__name__)

__all__ = ["DEFAULT_BLOCKS", "POOLING_LEVELS", "block_yields", "count_cells", "die_size_cells", "window_cells"]

#: Block shapes (columns, rows) of the window method, smallest first.
DEFAULT_BLOCKS: tuple[tuple[int, int], ...] = ((1, 1), (2, 1), (2, 2), (3, 2), (3, 3), (4, 3), (4, 4))
POOLING_LEVELS = ("die", "wafer", "lot")
_NO_SIGNATURE = {"", "none", "random", "nan", "<na>", "no", "false", "0"}


def _area_scalar(area, where: str) -> float:
    try:
        a = float(area)
    except (TypeError, ValueError):
        raise YieldkitValueError(
            f"The 'area' argument of {where} must be a die area > 0 [cm^2]. Got {area!r} instead."
        ) from None
    if not np.isfinite(a) or a <= 0:
        raise YieldkitValueError(f"The 'area' argument of {where} must be > 0 [cm^2]. Got {area!r} instead.")
    return a


def _mask(value, n: int, name: str, where: str, frame: pd.DataFrame | None) -> np.ndarray:
    if isinstance(value, str):
        if frame is None or value not in frame.columns:
            raise YieldkitValueError(
                f"The {name!r} argument of {where} names column {value!r}, which the input does not have."
            )
        value = frame[value]
    arr = np.asarray(value.to_numpy() if isinstance(value, pd.Series) else value, dtype=object)
    if arr.shape != (n,):
        raise YieldkitValueError(
            f"The {name!r} argument of {where} must have one entry per row ({n}). Got shape {arr.shape} instead."
        )
    return arr


def _signature_mask(labels: np.ndarray) -> np.ndarray:
    s = pd.Series(labels, dtype=object)
    na = s.isna().to_numpy()
    low = s.astype(str).str.strip().str.lower().to_numpy()
    return ~na & ~np.isin(low, list(_NO_SIGNATURE))


def count_cells(
    data,
    area,
    *,
    count_col: str = "n_defects",
    exclude=None,
    signature=None,
    pooling: str = "die",
    where: str = "fit",
) -> tuple[CountCells, dict]:
    """Turn per-die counts (array, ``die_defect_counts`` table or :class:`CountHistogram`) into count cells.

    Returns the cells and a description (``n_dies``, ``n_excluded``, ``pooling``, ``n_wafers``).
    """
    check_choice(pooling, POOLING_LEVELS, name="pooling", where=where)
    if isinstance(data, CountHistogram):
        if exclude is not None or signature is not None:
            raise YieldkitValueError(f"{where}: 'exclude' and 'signature' select dies, which a CountHistogram "
                                     "no longer holds; pass the per-die counts table instead.")
        if np.ndim(area) != 0:
            raise YieldkitValueError(f"The 'area' argument of {where} must be one die area [cm^2] for a "
                                     "CountHistogram. Got an array instead.")
        return data._cells(_area_scalar(area, where), pooling)
    frame = data if isinstance(data, pd.DataFrame) else None
    if frame is not None:
        if count_col not in frame.columns:
            raise SchemaError(
                f"{where}: the table has no {count_col!r} column (found {list(frame.columns)}); "
                "pass count_col= or a plain array of counts",
                column=count_col,
            )
        die_cols = ["lot_id", "wafer_id", "die_x", "die_y"]
        if all(c in frame.columns for c in die_cols) and len(frame):
            from .._keys import die_keys, duplicated_keys

            if duplicated_keys(die_keys(frame)).any():
                extra = [c for c in frame.columns if c not in die_cols + [count_col, "passed"]]
                raise SchemaError(
                    f"{where}: the counts table holds several rows for one die (split by "
                    f"{', '.join(extra) or 'another column'}?); fit one category at a time, e.g. "
                    f"table[table[{(extra or ['defect_class'])[0]!r}] == value]",
                    column=count_col,
                )
        col = frame[count_col]
        raw = (col.to_numpy(dtype=np.int64) if pd.api.types.is_integer_dtype(col) and not col.hasnans
               else col.to_numpy(dtype=float, na_value=np.nan))
    else:
        try:
            raw = np.asarray(data)
            if raw.dtype.kind not in "iu":
                raw = raw.astype(float)
        except (TypeError, ValueError):
            raise YieldkitValueError(
                f"The 'data' argument of {where} must be an array of per-die counts or a DataFrame. "
                f"Got {type(data).__name__} instead."
            ) from None
        if raw.ndim != 1:
            raise YieldkitValueError(
                f"The 'data' argument of {where} must be one-dimensional. Got shape {raw.shape} instead."
            )
    n = len(raw)
    if raw.dtype.kind in "iu":
        bad_any = n > 0 and int(raw.min()) < 0
    else:
        bad_any = bool(np.any(~np.isfinite(raw) | (raw < 0) | (raw != np.round(raw))))
    if bad_any:
        bad = (raw < 0) if raw.dtype.kind in "iu" else (~np.isfinite(raw) | (raw < 0) | (raw != np.round(raw)))
        i = int(np.flatnonzero(bad)[0])
        raise YieldkitValueError(
            f"The counts given to {where} must be non-negative integers. Got {raw[i]!r} at row {i} instead."
        )
    a = _area_scalar(area, where) if np.ndim(area) == 0 else None
    area_arr: Any
    if a is None:
        arr = np.asarray(area, dtype=float)
        if arr.shape != (n,) or np.any(~np.isfinite(arr) | (arr <= 0)):
            raise YieldkitValueError(
                f"The 'area' argument of {where} must be > 0 [cm^2], a scalar or one value per die."
            )
        area_arr = arr
    else:
        area_arr = None
    keep: Any = None  # every die (no mask to build) unless some are excluded
    if exclude is not None or signature is not None:
        keep = np.ones(n, bool)
        if exclude is not None:
            keep &= ~_mask(exclude, n, "exclude", where, frame).astype(bool)
        if signature is not None:
            keep &= ~_signature_mask(_mask(signature, n, "signature", where, frame))
    n_kept = n if keep is None else int(keep.sum())
    n_excl = n - n_kept
    if n_kept == 0:
        raise YieldkitValueError(f"{where}: no dies left to fit ({n} given, {n_excl} excluded).")
    all_kept = n_excl == 0
    k = (raw if all_kept else raw[keep]).astype(np.int64, copy=False)
    if area_arr is None:
        area_arr = np.full(len(k), a) if pooling != "die" else a
    elif not all_kept:
        area_arr = area_arr[keep]
    group = None
    n_groups = None
    if frame is not None and {"lot_id", "wafer_id"} <= set(frame.columns):
        codes, wafers = wafer_codes(frame)
        codes = codes if all_kept else codes[keep]
        if pooling == "lot":
            lot_codes, _ = pd.factorize(wafers["lot_id"])
            codes = np.asarray(lot_codes)[codes]
        group = codes
        n_groups = int(len(np.unique(codes)))
    if pooling != "die":
        if group is None:
            raise YieldkitValueError(
                f"The 'pooling' argument of {where} is {pooling!r}, which needs lot_id and wafer_id columns."
            )
        k = np.bincount(group, weights=k).astype(np.int64)
        area_arr = np.bincount(group, weights=area_arr)
        present = area_arr > 0
        k, area_arr = k[present], area_arr[present]
        group = np.arange(len(k))
    cells = CountCells.from_arrays(k, area_arr, group)
    info = {"n_dies": n_kept, "n_units": int(len(k)), "n_excluded": n_excl, "pooling": pooling,
            "n_groups": n_groups, "area": a}
    return cells, info


def _final_dies(dies: pd.DataFrame, passed_col: str, where: str) -> pd.DataFrame:
    need = ["lot_id", "wafer_id", "die_x", "die_y", passed_col]
    missing = [c for c in need if c not in dies.columns]
    if missing:
        raise SchemaError(
            f"{where}: the die table lacks {missing} (found {list(dies.columns)}); read it with yieldkit.read_dies",
            column=missing[0],
        )
    df = dies[[*need, *(["test_seq"] if "test_seq" in dies.columns else [])]]
    if "test_seq" in df.columns:
        # the same final result as everywhere else (a missing test_seq counts as the first insertion)
        df = final_results(df.rename(columns={passed_col: "passed"}) if passed_col != "passed" else df)
        df = df.rename(columns={"passed": passed_col}) if passed_col != "passed" else df
    codes, _ = wafer_codes(df)
    out = pd.DataFrame({
        "w": codes,
        "x": df["die_x"].to_numpy(dtype=np.int64),
        "y": df["die_y"].to_numpy(dtype=np.int64),
        "p": df[passed_col].to_numpy(dtype=bool, na_value=False),
    })
    dup = out.duplicated(["w", "x", "y"], keep="last")
    if dup.any():  # repeated rows without test_seq: the last row at a die counts
        log.info("%s: %d retest rows superseded by the last result at their die", where, int(dup.sum()))
        out = out[~dup.to_numpy()]
    return out


def block_yields(
    dies: pd.DataFrame,
    block_sizes: Sequence[tuple[int, int]] = DEFAULT_BLOCKS,
    *,
    passed_col: str = "passed",
    per_wafer: bool = False,
) -> pd.DataFrame:
    """Tile every wafer into non-overlapping blocks of dies and count good blocks (window method).

    Tiling: on each wafer, block ``(bx, by)`` groups the dies with
    ``floor((die_x - x_min) / bx), floor((die_y - y_min) / by)`` equal, where ``x_min`` and
    ``y_min`` are the wafer's smallest die indices. A block is kept only when all its
    ``bx * by`` dies were tested (incomplete blocks at the edge or around missing dies are
    dropped); it is good when all its dies passed. The final result at a die counts, as in
    :func:`yieldkit.final_results` (highest ``test_seq``; a missing ``test_seq`` is the first).

    Parameters
    ----------
    dies : DataFrame
        Canonical die table (``lot_id, wafer_id, die_x, die_y, passed``).
    block_sizes : sequence of (int, int)
        Block shapes ``(columns, rows)``.
    passed_col : str
        Pass/fail column.
    per_wafer : bool
        Return one row per wafer and block size instead of pooled rows.

    Returns
    -------
    DataFrame
        ``block_x, block_y, dies_per_block, n_blocks, n_good, block_yield`` (plus ``wafer``, a
        0-based wafer code, when ``per_wafer``).

    Examples
    --------
    >>> import pandas as pd
    >>> from yieldkit.models import block_yields
    >>> d = pd.DataFrame({"lot_id": "L", "wafer_id": "1", "die_x": [0, 1, 0, 1], "die_y": [0, 0, 1, 1],
    ...                   "passed": [True, True, True, False]})
    >>> block_yields(d, [(1, 1), (2, 1), (2, 2)])[["dies_per_block", "n_blocks", "n_good"]].to_numpy().tolist()
    [[1, 4, 3], [2, 2, 1], [4, 1, 0]]
    """
    where = "block_yields"
    sizes = [(int(bx), int(by)) for bx, by in block_sizes]
    if any(bx < 1 or by < 1 for bx, by in sizes):
        raise YieldkitValueError(f"The 'block_sizes' argument of {where} must hold positive (columns, rows).")
    return _block_table(_final_dies(dies, passed_col, where), sizes, per_wafer)


def _block_table(d: pd.DataFrame, sizes: list[tuple[int, int]], per_wafer: bool) -> pd.DataFrame:
    """Block counts of :func:`block_yields` from the final result of each die (``w, x, y, p``)."""
    w, x, y, p = d["w"].to_numpy(), d["x"].to_numpy(), d["y"].to_numpy(), d["p"].to_numpy()
    nw = int(w.max()) + 1 if len(w) else 0
    xmin = np.full(nw, np.iinfo(np.int64).max)
    ymin = np.full(nw, np.iinfo(np.int64).max)
    np.minimum.at(xmin, w, x)
    np.minimum.at(ymin, w, y)
    xr, yr = x - xmin[w], y - ymin[w]
    rows = []
    for bx, by in sizes:
        bxi, byi = xr // bx, yr // by
        span_y = int(byi.max()) + 1 if len(byi) else 1
        span_x = int(bxi.max()) + 1 if len(bxi) else 1
        key = (w * span_x + bxi) * span_y + byi
        uk, inv = np.unique(key, return_inverse=True)
        n_in = np.bincount(inv, minlength=len(uk))
        n_ok = np.bincount(inv, weights=p, minlength=len(uk))
        complete = n_in == bx * by
        good = complete & (n_ok == bx * by)
        bw = uk // (span_x * span_y)
        nb = np.bincount(bw[complete], minlength=nw)
        ng = np.bincount(bw[good], minlength=nw)
        if per_wafer:
            rows.append(pd.DataFrame({"wafer": np.arange(nw), "block_x": bx, "block_y": by,
                                      "dies_per_block": bx * by, "n_blocks": nb, "n_good": ng}))
        else:
            rows.append(pd.DataFrame({"block_x": [bx], "block_y": [by], "dies_per_block": [bx * by],
                                      "n_blocks": [int(nb.sum())], "n_good": [int(ng.sum())]}))
    out = pd.concat(rows, ignore_index=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        out["block_yield"] = out["n_good"] / out["n_blocks"]
    return out


def window_cells(
    dies: pd.DataFrame, area, block_sizes: Sequence[tuple[int, int]], passed_col: str, where: str
) -> tuple[BinomialCells, pd.DataFrame, dict]:
    a = _area_scalar(area, where)
    sizes = [(int(bx), int(by)) for bx, by in block_sizes]
    if any(bx < 1 or by < 1 for bx, by in sizes):
        raise YieldkitValueError(f"The 'block_sizes' argument of {where} must hold positive (columns, rows).")
    final = _final_dies(dies, passed_col, where)
    per = _block_table(final, sizes, per_wafer=True)
    nsz = len(block_sizes)
    nw = len(per) // nsz if nsz else 0
    gt = per["n_blocks"].to_numpy(float).reshape(nsz, nw).T
    gg = per["n_good"].to_numpy(float).reshape(nsz, nw).T
    pooled = per.groupby(["block_x", "block_y", "dies_per_block"], sort=False)[["n_blocks", "n_good"]].sum()
    pooled = pooled.reset_index()
    pooled["block_yield"] = pooled["n_good"] / pooled["n_blocks"].where(pooled["n_blocks"] > 0)
    pooled["block_area_cm2"] = pooled["dies_per_block"] * a
    usable = pooled["n_blocks"].to_numpy() > 0
    if usable.sum() < len(pooled):
        warnings.warn(f"{where}: {int((~usable).sum())} block size(s) have no complete block and are ignored",
                      DataQualityWarning, stacklevel=3)
    cells = BinomialCells(
        exposure=pooled["block_area_cm2"].to_numpy(float)[usable],
        tested=pooled["n_blocks"].to_numpy(float)[usable],
        good=pooled["n_good"].to_numpy(float)[usable],
        group_tested=gt[:, usable], group_good=gg[:, usable],
    )
    info = {"n_dies": len(final), "n_groups": nw, "area": a, "pooling": "wafer"}
    return cells, pooled, info


def die_size_cells(
    table: pd.DataFrame, area_col: str, tested_col: str, good_col: str, where: str
) -> tuple[BinomialCells, dict]:
    if not isinstance(table, pd.DataFrame):
        raise YieldkitValueError(
            f"The 'table' argument of {where} must be a DataFrame with columns {area_col}, {tested_col}, "
            f"{good_col}. Got {type(table).__name__} instead."
        )
    missing = [c for c in (area_col, tested_col, good_col) if c not in table.columns]
    if missing:
        raise SchemaError(f"{where}: missing column(s) {missing} (found {list(table.columns)})", column=missing[0])
    a = table[area_col].to_numpy(dtype=float, na_value=np.nan)
    n = table[tested_col].to_numpy(dtype=float, na_value=np.nan)
    g = table[good_col].to_numpy(dtype=float, na_value=np.nan)
    for name, v, ok in ((area_col, a, a > 0), (tested_col, n, n > 0), (good_col, g, (g >= 0) & (g <= n))):
        bad = ~np.isfinite(v) | ~ok
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise SchemaError(
                f"{where}: column {name!r} has an invalid value {v[i]!r} at row {i} "
                "(need die_area_cm2 > 0, tested > 0, 0 <= good <= tested)",
                column=name, row=i,
            )
    cells = BinomialCells(exposure=a, tested=n, good=g)
    return cells, {"n_dies": int(n.sum()), "n_groups": None, "area": None, "pooling": "product",
                   "n_areas": int(len(np.unique(a)))}
