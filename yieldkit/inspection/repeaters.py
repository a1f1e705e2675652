"""Reticle repeaters: defects at the same position within the exposure field on many shots.

A particle or flaw on the reticle prints on every shot (exposure field) of a layer, so its
defects share one position in field coordinates. :func:`find_repeaters` folds each defect into
its field (the die grid of the layout, ``shot`` dies per field), counts for every small cell of
the field the distinct shots with a defect in it, and calls a cell a repeater when that count is
improbable for random defects.

The threshold is a binomial tail: of the ``S`` shots of the wafer with defects, each holds its
``k_i`` defects uniformly in the field, so it puts one in a cell of area ``a`` with probability
``p_i = 1 - (1 - a / F)^k_i``; the number of shots hitting a cell is about ``Binomial(S, p)``
with ``p`` the mean of the ``p_i``. Cells are tested on four grids shifted by half a cell (so
that a repeater on a cell border is not split); the threshold is the smallest count ``k`` with
``n_cells * P(X >= k) <= alpha`` over all cells of the four grids (Bonferroni), so a wafer of
random defects shows a false repeater with probability at most ``alpha`` (``false_rate_bound``
gives the level reached, the discrete test usually being below ``alpha``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from .._keys import wafer_codes
from ..errors import SchemaError, YieldkitValueError
from ..results import TableResult
from ..schema import STRING

log = logging.getLogger(__name__)

__all__ = ["RepeaterResult", "find_repeaters", "fold_to_field"]

_SEP = 1.0e8  # between groups on one KD-tree [um]


def _shot(shot: Sequence[int], shot_offset: Sequence[int], where: str) -> tuple[int, int, int, int]:
    try:
        sx, sy = (int(v) for v in shot)
        ox, oy = (int(v) for v in shot_offset)
    except (TypeError, ValueError):
        raise YieldkitValueError(f"The 'shot' and 'shot_offset' arguments of {where} must be two integers each. "
                                 f"Got {shot!r} and {shot_offset!r} instead.") from None
    if sx < 1 or sy < 1:
        raise YieldkitValueError(f"The 'shot' argument of {where} must be two integers >= 1. Got {shot!r} instead.")
    return sx, sy, ox, oy


def fold_to_field(
    defects: pd.DataFrame,
    layout,
    *,
    shot: Sequence[int],
    shot_offset: Sequence[int] = (0, 0),
    x_col: str = "x_um",
    y_col: str = "y_um",
) -> pd.DataFrame:
    """Position of each defect within its exposure field, and the field (shot) it is in.

    Parameters
    ----------
    defects : DataFrame
        Defects with wafer-frame positions.
    layout : WaferLayout
        The die grid.
    shot : (int, int)
        Dies per shot in x and y.
    shot_offset : (int, int)
        Die index of a shot's lower-left die, modulo the shot (as
        :func:`yieldkit.maps.reticle_stack`).
    x_col, y_col : str
        Position columns [um].

    Returns
    -------
    DataFrame
        On the index of ``defects``: ``field_x_um``, ``field_y_um`` (from the field's lower-left
        corner) and ``shot_x``, ``shot_y`` (int64, NaN positions give shot 0 and NaN).
    """
    sx, sy, ox, oy = _shot(shot, shot_offset, "fold_to_field")
    w, h = layout.die_pitch_um
    x0, y0 = layout.origin_um
    fx0, fy0 = x0 + ox * w, y0 + oy * h
    fw, fh = sx * w, sy * h
    x = defects[x_col].to_numpy(float) - fx0
    y = defects[y_col].to_numpy(float) - fy0
    with np.errstate(invalid="ignore"):
        qx, qy = np.floor(x / fw), np.floor(y / fh)
    ok = np.isfinite(qx) & np.isfinite(qy)
    return pd.DataFrame({"field_x_um": x - qx * fw, "field_y_um": y - qy * fh,
                         "shot_x": np.where(ok, qx, 0).astype(np.int64),
                         "shot_y": np.where(ok, qy, 0).astype(np.int64)}, index=defects.index)


@dataclass(frozen=True, repr=False)
class RepeaterResult(TableResult):
    """Reticle repeaters found (from :func:`find_repeaters`).

    Attributes
    ----------
    table : DataFrame
        One row per repeater: ``lot_id``, ``wafer_id`` (and the step column), ``field_x_um``,
        ``field_y_um`` (median position in the field), ``n_shots`` (distinct shots with the
        defect), ``n_defects``, ``shots_with_defects``, ``threshold``, ``p_value`` (binomial tail
        of ``n_shots``, before the Bonferroni factor).
    groups : DataFrame
        One row per wafer (and step): ``n_defects``, ``shots_with_defects``, ``p_cell``,
        ``n_cells``, ``threshold``, ``false_rate_bound`` (probability bound of a false repeater).
    is_repeater : ndarray of bool
        Per row of the input, whether the defect belongs to a repeater.
    field : DataFrame
        The folded positions (:func:`fold_to_field`) of the input rows.
    alpha : float
    """

    table: pd.DataFrame
    groups: pd.DataFrame
    is_repeater: np.ndarray
    field: pd.DataFrame
    alpha: float

    def __repr__(self) -> str:
        return f"RepeaterResult(repeaters={len(self.table)}, groups={len(self.groups)}, alpha={self.alpha})"


def find_repeaters(
    defects: pd.DataFrame,
    layout,
    *,
    shot: Sequence[int],
    shot_offset: Sequence[int] = (0, 0),
    tolerance_um: float = 5.0,
    alpha: float = 0.01,
    min_shots: int = 3,
    step_col: str | None = "layer",
    x_col: str = "x_um",
    y_col: str = "y_um",
) -> RepeaterResult:
    """Find reticle repeaters: defects at one field position on improbably many shots.

    Parameters
    ----------
    defects : DataFrame
        Defects (``lot_id``, ``wafer_id``, positions in one frame per wafer, e.g. ``x_ref_um``
        of :func:`~yieldkit.inspection.match_steps`).
    layout : WaferLayout
        The die grid the shots are made of.
    shot, shot_offset : (int, int)
        Dies per shot, and the die index of a shot's lower-left die modulo the shot.
    tolerance_um : float
        Half the cell side [um]: defects of one repeater lie within about this of each other.
    alpha : float
        Per wafer (and step), the bound on the probability of a false repeater.
    min_shots : int
        Fewest distinct shots of a repeater, whatever the threshold.
    step_col : str or None
        Wafers are searched per value of this column when present (an inspection step).
    x_col, y_col : str
        Position columns [um].

    Returns
    -------
    RepeaterResult

    Raises
    ------
    SchemaError
        A needed column is missing.
    YieldkitValueError
        A bad shot, tolerance or alpha.

    Notes
    -----
    See the module notes for the threshold. All wafers are handled at once (cells of all
    wafers and grids are counted with one ``np.unique``); flagged defects within ``2 *
    tolerance_um`` of each other in the field form one repeater.

    Examples
    --------
    >>> from yieldkit.inspection import find_repeaters, match_steps, simulate_inspections
    >>> fab = simulate_inspections(n_lots=1, wafers_per_lot=2, repeaters=1, random_state=6)
    >>> m = match_steps(fab.defects, order=fab.steps).table
    >>> r = find_repeaters(m[m.layer == "M2"], fab.layout, shot=(2, 2), x_col="x_ref_um", y_col="y_ref_um")
    >>> len(r.table)
    2
    """
    where = "find_repeaters"
    sx, sy, ox, oy = _shot(shot, shot_offset, where)
    if not (tolerance_um > 0 and math.isfinite(tolerance_um)):
        raise YieldkitValueError(f"The 'tolerance_um' argument of {where} must be > 0. Got {tolerance_um!r} instead.")
    if not 0 < alpha < 1:
        raise YieldkitValueError(f"The 'alpha' argument of {where} must be in (0, 1). Got {alpha!r} instead.")
    need = ["lot_id", "wafer_id", x_col, y_col]
    missing = [c for c in need if c not in defects.columns]
    if missing:
        raise SchemaError(f"{where} needs column(s) {missing}; found {list(defects.columns)}.", column=missing[0])
    use_step = step_col is not None and step_col in defects.columns
    keys = ["lot_id", "wafer_id", *([str(step_col)] if use_step else [])]
    field = fold_to_field(defects, layout, shot=(sx, sy), shot_offset=(ox, oy), x_col=x_col, y_col=y_col)
    if use_step:
        gkey = defects[keys].astype(str)
        g_all, groups_tbl = _group_codes(gkey, keys)
    else:
        g_all, groups_tbl = wafer_codes(defects)
        groups_tbl = groups_tbl.reset_index(drop=True)
    n_groups = len(groups_tbl)
    u = field["field_x_um"].to_numpy()
    v = field["field_y_um"].to_numpy()
    ok = np.isfinite(u) & np.isfinite(v)
    rows = np.flatnonzero(ok)
    g = np.asarray(g_all, np.int64)[rows]
    u, v = u[rows], v[rows]
    w_pitch, h_pitch = layout.die_pitch_um
    fw, fh = sx * w_pitch, sy * h_pitch
    side = 2.0 * tolerance_um
    ncx, ncy = int(math.ceil(fw / side)) + 1, int(math.ceil(fh / side)) + 1
    n_cells = 4 * ncx * ncy
    # shots with defects and their defect counts, per group
    sx_, sy_ = field["shot_x"].to_numpy()[rows], field["shot_y"].to_numpy()[rows]
    span = 1 << 20
    shot_id = (sx_ + span // 2) * span + (sy_ + span // 2)
    first, gs_inv = _unique_pairs(g, shot_id)
    gs = np.column_stack([g[first], shot_id[first]])
    k_i = np.bincount(gs_inv, minlength=len(first))
    starts = np.searchsorted(gs[:, 0], np.arange(n_groups))  # gs is sorted by group, then shot
    local_shot = gs_inv - starts[g]
    a_over_f = side * side / (fw * fh)
    p_i = -np.expm1(k_i * np.log1p(-min(a_over_f, 1.0)))
    n_shots = np.bincount(gs[:, 0], minlength=n_groups)
    with np.errstate(invalid="ignore", divide="ignore"):
        p_bar = np.bincount(gs[:, 0], weights=p_i, minlength=n_groups) / n_shots
    threshold, bound = _thresholds(n_shots, p_bar, n_cells, alpha, min_shots)
    # distinct shots per (group, grid, cell)
    flagged = np.zeros(len(rows), bool)
    for grid, (dx, dy) in enumerate(((0.0, 0.0), (0.5, 0.0), (0.0, 0.5), (0.5, 0.5))):  # four grids
        cx = np.floor(u / side + dx).astype(np.int64)
        cy = np.floor(v / side + dy).astype(np.int64)
        cell = (g * 4 + grid) * (ncx * ncy) + cx * ncy + cy
        first_cs, _ = _unique_pairs(cell, local_shot)
        uc, cnt = np.unique(cell[first_cs], return_counts=True)
        hot = uc[cnt >= threshold[uc // (4 * ncx * ncy)]]
        flagged |= np.isin(cell, hot)
    is_rep = np.zeros(len(defects), bool)
    is_rep[rows[flagged]] = True
    table = _repeater_table(g[flagged], u[flagged], v[flagged], gs_inv[flagged], groups_tbl, n_shots, threshold,
                            p_bar, 2.0 * tolerance_um)
    groups_out = groups_tbl.copy()
    n_def = np.bincount(g, minlength=n_groups)
    groups_out["n_defects"] = n_def
    groups_out["shots_with_defects"] = n_shots
    groups_out["p_cell"] = p_bar
    groups_out["n_cells"] = n_cells
    groups_out["threshold"] = threshold
    groups_out["false_rate_bound"] = bound
    log.info("%s: %d repeater(s) over %d group(s)", where, len(table), n_groups)
    return RepeaterResult(table=table, groups=groups_out, is_repeater=is_rep, field=field, alpha=float(alpha))


def _unique_pairs(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows of the first occurrence of each distinct pair ``(a, b)`` (non-negative ints), and each
    row's pair number."""
    a = np.asarray(a, np.int64)
    b = np.asarray(b, np.int64)
    if len(a) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    b_min = int(b.min())
    width = int(b.max()) - b_min + 1
    if int(a.max()) < (np.iinfo(np.int64).max // width) - 1 and int(a.min()) >= 0:
        _, first, inv = np.unique(a * width + (b - b_min), return_index=True, return_inverse=True)
        return first, inv.ravel().astype(np.int64)
    o = np.lexsort((b, a))
    new = np.r_[True, (a[o][1:] != a[o][:-1]) | (b[o][1:] != b[o][:-1])]
    inv = np.empty(len(o), np.int64)
    inv[o] = np.cumsum(new) - 1
    return o[new], inv


def _group_codes(gkey: pd.DataFrame, keys: list[str]) -> tuple[np.ndarray, pd.DataFrame]:
    idx = pd.MultiIndex.from_frame(gkey)
    codes, uniq = pd.factorize(idx)
    tbl = pd.DataFrame(list(uniq), columns=keys) if len(uniq) else pd.DataFrame(columns=keys)
    for c in keys:
        tbl[c] = pd.array(tbl[c].astype(str).to_numpy(object), dtype=STRING)
    return codes.astype(np.int64), tbl


def _thresholds(n_shots: np.ndarray, p: np.ndarray, n_cells: int, alpha: float,
                min_shots: int) -> tuple[np.ndarray, np.ndarray]:
    """Smallest count k per group with ``n_cells * P(Binomial(S, p) >= k) <= alpha``, and that level."""
    n_g = len(n_shots)
    if n_g == 0:
        return np.zeros(0, np.int64), np.zeros(0)
    p = np.nan_to_num(p)
    thr = np.full(n_g, max(int(min_shots), 1), np.int64)
    todo = np.ones(n_g, bool)
    k = 1
    while todo.any() and k <= int(n_shots.max(initial=0)) + 1:  # a few counts k, every group at once
        tail = stats.binom.sf(k - 1, n_shots[todo], p[todo])  # P(X >= k)
        done = n_cells * tail <= alpha
        idx = np.flatnonzero(todo)[done]
        thr[idx] = np.maximum(k, thr[idx])
        todo[idx] = False
        k += 1
    thr[todo] = np.maximum(n_shots[todo] + 1, thr[todo])
    level = n_cells * stats.binom.sf(thr - 1, n_shots, p)
    return thr.astype(np.int64), np.minimum(level, 1.0)


def _repeater_table(g: np.ndarray, u: np.ndarray, v: np.ndarray, shot: np.ndarray, groups: pd.DataFrame,
                    n_shots: np.ndarray, threshold: np.ndarray, p_bar: np.ndarray, link_um: float) -> pd.DataFrame:
    cols = [*groups.columns, "field_x_um", "field_y_um", "n_shots", "n_defects", "shots_with_defects",
            "threshold", "p_value"]
    if len(g) == 0:
        out = pd.DataFrame({c: pd.Series(dtype="float64") for c in cols})
        for c in groups.columns:
            out[c] = pd.array([], dtype=STRING)
        return out
    tree = cKDTree(np.column_stack([u + g * _SEP, v]))
    pairs = tree.query_pairs(link_um, output_type="ndarray")
    adj = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(len(g), len(g)))
    _, label = connected_components(adj, directed=False)
    n_lab = int(label.max()) + 1
    grp = np.zeros(n_lab, np.int64)
    grp[label] = g
    order = np.lexsort((u, label))
    cnt = np.bincount(label, minlength=n_lab)
    start = np.r_[0, np.cumsum(cnt)[:-1]]
    mid = start + (cnt - 1) // 2
    med_u = u[order][mid]
    order_v = np.lexsort((v, label))
    med_v = v[order_v][mid]
    first_ls, _ = _unique_pairs(label.astype(np.int64), shot)
    n_sh = np.bincount(label[first_ls], minlength=n_lab)
    out = groups.iloc[grp].reset_index(drop=True)
    out["field_x_um"] = med_u
    out["field_y_um"] = med_v
    out["n_shots"] = n_sh
    out["n_defects"] = cnt
    out["shots_with_defects"] = n_shots[grp]
    out["threshold"] = threshold[grp]
    out["p_value"] = stats.binom.sf(n_sh - 1, n_shots[grp], p_bar[grp])
    return out.sort_values([*groups.columns, "n_shots"], ascending=[True] * len(groups.columns) + [False],
                           kind="stable").reset_index(drop=True)[cols]
