"""Integer keys shared by the spatial functions: wafer codes over two tables and die-position lookup."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd

from ..errors import DataQualityWarning, SchemaError, check_choice
from ..keys import wafer_codes
from ..schema import STRING

__all__ = ["dense_die_keys", "joint_wafer_codes", "lookup_rows", "position_codes", "wafer_groups"]


def _wafer_codes(df: pd.DataFrame) -> tuple[np.ndarray, pd.DataFrame]:
    # keys.wafer_codes uses the same run scan and remembers the codes for the next caller
    return wafer_codes(df)


def joint_wafer_codes(*tables: pd.DataFrame) -> tuple[list[np.ndarray], pd.DataFrame]:
    """Wafer codes of several tables in one code space (order of first appearance across them)."""
    if len(tables) == 1:
        codes, wafers = _wafer_codes(tables[0])
        return [codes], wafers
    first, wafers = _wafer_codes(tables[0])
    out = [first]
    n_known = len(wafers)
    for t in tables[1:]:
        # factorize the (usually smaller) table, then match its distinct wafers to the known ones
        c, u = _wafer_codes(t)
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
    x = np.asarray(x, dtype=np.int64)
    y = np.asarray(y, dtype=np.int64)
    if len(x) == 0:
        return np.zeros(0, np.int64), pd.DataFrame({"die_x": np.zeros(0, np.int32), "die_y": np.zeros(0, np.int32)})
    xmin, ymin = x.min(), y.min()
    nx = int(x.max() - xmin) + 1
    flat = (y - ymin) * nx + (x - xmin)
    uniq, codes = np.unique(flat, return_inverse=True)
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
