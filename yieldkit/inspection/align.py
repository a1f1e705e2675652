"""Coordinate alignment of two inspections of the same wafers, and one-to-one point matching.

Two inspection tools report a wafer's defects in frames that differ by an offset (typically
5-40 um) and a small rotation. :func:`align` estimates, per wafer, the transform that maps the
second table's positions into the first's frame:

``p_a = M p_b + t``  with ``M`` a rotation (``"rigid"``), a scaled rotation (``"similarity"``)
or any 2 x 2 matrix (``"affine"``).

The estimate is robust to defects seen by one tool only (adders, misses): an initial offset is
the mode of the offset votes of every pair closer than ``max_offset_um``, then nearest-neighbour
pairs are refitted with iteratively trimmed least squares (closed-form Umeyama/Procrustes for
rigid and similarity, normal equations for affine), trimming pairs beyond 3.5 robust
standard deviations. All wafers are processed at once: each wafer's points are shifted far
apart on one KD-tree, and the per-wafer fits are sums taken with ``np.bincount``.

References
----------
Umeyama, S. (1991). Least-squares estimation of transformation parameters between two point
patterns. IEEE Trans. Pattern Anal. Mach. Intell. 13(4), 376-380. doi:10.1109/34.88573
"""

from __future__ import annotations

import logging
import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

from .._keys import joint_wafer_codes
from ..errors import DataQualityWarning, SchemaError, YieldkitValueError, check_choice
from ..results import TableResult
from ..schema import STRING

log = logging.getLogger(__name__)

__all__ = ["MODELS", "Alignment", "align", "apply_transform", "match_points"]

MODELS = ("rigid", "similarity", "affine")
_SEP = 1.0e7  # um between two wafers' points on the shared KD-tree (far beyond any wafer and radius)
_RAYLEIGH_MEDIAN = math.sqrt(2.0 * math.log(2.0))  # median of |d| / sigma for an isotropic 2-D normal d
_TRANSFORM_COLS = ("a11", "a12", "a21", "a22", "tx_um", "ty_um")


@dataclass(frozen=True, repr=False)
class Alignment(TableResult):
    """Per-wafer transforms from the second table's frame into the first's (from :func:`align`).

    Attributes
    ----------
    table : DataFrame
        One row per wafer: ``lot_id``, ``wafer_id``, ``a11, a12, a21, a22`` (the matrix ``M``),
        ``tx_um, ty_um`` (the offset ``t``), ``rotation_urad``, ``scale``, ``residual_um`` (robust
        per-axis standard deviation of the matched pairs' residuals), ``n_pairs`` (pairs in the
        final fit), ``n_a``, ``n_b``.
    model : str
        ``"rigid"``, ``"similarity"`` or ``"affine"``.
    """

    table: pd.DataFrame
    model: str

    def __repr__(self) -> str:
        r = self.table["residual_um"]
        return (f"Alignment(model={self.model!r}, wafers={len(self.table)}, "
                f"median residual={float(r.median()) if len(r) else float('nan'):.3g} um)")

    def apply(self, defects: pd.DataFrame, *, x_col: str = "x_um", y_col: str = "y_um") -> pd.DataFrame:
        """Positions of ``defects`` (second table's frame) in the first table's frame.

        Returns a DataFrame with ``x_um``, ``y_um`` on the index of ``defects`` (NaN for wafers
        without a transform).
        """
        (w, tw), _ = joint_wafer_codes(defects, self.table)
        params = np.full((int(max(w.max(initial=-1), tw.max(initial=-1))) + 1, 6), np.nan)
        params[tw] = self.table[list(_TRANSFORM_COLS)].to_numpy(float)
        x, y = apply_transform(params[w], defects[x_col].to_numpy(float), defects[y_col].to_numpy(float))
        return pd.DataFrame({"x_um": x, "y_um": y}, index=defects.index)


def apply_transform(params: np.ndarray, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``M p + t`` for rows of ``params`` (``a11, a12, a21, a22, tx, ty``), one row per point."""
    p = np.asarray(params, dtype=np.float64)
    return p[:, 0] * x + p[:, 1] * y + p[:, 4], p[:, 2] * x + p[:, 3] * y + p[:, 5]


def _identity(n: int) -> np.ndarray:
    out = np.zeros((n, 6))
    out[:, 0] = out[:, 3] = 1.0
    return out


def _group_median(g: np.ndarray, v: np.ndarray, n_groups: int) -> np.ndarray:
    """Median of ``v`` within each group code (NaN for empty groups), without a loop."""
    out = np.full(n_groups, np.nan)
    if len(v) == 0:
        return out
    o = np.lexsort((v, g))
    gs, vs = g[o], v[o]
    cnt = np.bincount(gs, minlength=n_groups)
    start = np.r_[0, np.cumsum(cnt)[:-1]]
    has = cnt > 0
    lo = start[has] + (cnt[has] - 1) // 2
    hi = start[has] + cnt[has] // 2
    out[has] = 0.5 * (vs[lo] + vs[hi])
    return out


def fit_transforms(g: np.ndarray, xa: np.ndarray, ya: np.ndarray, xb: np.ndarray, yb: np.ndarray,
                   n_groups: int, model: str) -> np.ndarray:
    """Least-squares transforms ``a ~ M b + t`` per group code; rows of ``(a11, a12, a21, a22, tx, ty)``.

    Groups with too few pairs (2 for rigid/similarity, 3 for affine) or a singular design get NaN.
    """
    n = np.bincount(g, minlength=n_groups).astype(float)
    out = np.full((n_groups, 6), np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        mxa = np.bincount(g, xa, n_groups) / n
        mya = np.bincount(g, ya, n_groups) / n
        mxb = np.bincount(g, xb, n_groups) / n
        myb = np.bincount(g, yb, n_groups) / n
    dxa, dya, dxb, dyb = xa - mxa[g], ya - mya[g], xb - mxb[g], yb - myb[g]
    if model in ("rigid", "similarity"):
        sxx = np.bincount(g, dxb * dxa + dyb * dya, n_groups)
        sxy = np.bincount(g, dxb * dya - dyb * dxa, n_groups)
        theta = np.arctan2(sxy, sxx)
        c, s = np.cos(theta), np.sin(theta)
        scale = np.ones(n_groups)
        if model == "similarity":
            with np.errstate(invalid="ignore", divide="ignore"):
                scale = np.hypot(sxx, sxy) / np.bincount(g, dxb * dxb + dyb * dyb, n_groups)
        m = np.column_stack([scale * c, -scale * s, scale * s, scale * c])
        ok = n >= 2
    else:
        # centred normal equations: [Sxx Sxy; Sxy Syy] per group, one right-hand side per output axis
        a = np.stack([np.bincount(g, dxb * dxb, n_groups), np.bincount(g, dxb * dyb, n_groups),
                      np.bincount(g, dxb * dyb, n_groups), np.bincount(g, dyb * dyb, n_groups)], axis=1)
        a = a.reshape(n_groups, 2, 2)
        rhs = np.stack([np.bincount(g, dxb * dxa, n_groups), np.bincount(g, dyb * dxa, n_groups),
                        np.bincount(g, dxb * dya, n_groups), np.bincount(g, dyb * dya, n_groups)], axis=1)
        rhs = rhs.reshape(n_groups, 2, 2).transpose(0, 2, 1)  # columns: x target, y target
        det = a[:, 0, 0] * a[:, 1, 1] - a[:, 0, 1] * a[:, 1, 0]
        ok = (n >= 3) & (np.abs(det) > 1e-12 * np.maximum(a[:, 0, 0] * a[:, 1, 1], 1e-300))
        sol = np.full((n_groups, 2, 2), np.nan)
        if ok.any():
            sol[ok] = np.linalg.solve(a[ok], rhs[ok])  # sol[:, :, k]: coefficients of output axis k
        m = np.column_stack([sol[:, 0, 0], sol[:, 1, 0], sol[:, 0, 1], sol[:, 1, 1]])
    out[:, :4] = m
    out[:, 4] = mxa - (m[:, 0] * mxb + m[:, 1] * myb)
    out[:, 5] = mya - (m[:, 2] * mxb + m[:, 3] * myb)
    out[~ok] = np.nan
    return out


def match_points(
    wa: np.ndarray, xa: np.ndarray, ya: np.ndarray, wb: np.ndarray, xb: np.ndarray, yb: np.ndarray,
    radius_um: float | np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Match points of ``a`` and ``b`` one to one within a radius, group by group (vectorised).

    Parameters
    ----------
    wa, wb : ndarray of int
        Group (wafer) code of each point; only points of the same group match.
    xa, ya, xb, yb : ndarray of float
        Positions [um], in one frame.
    radius_um : float or ndarray
        Largest distance of a match [um], one value or one per group code.

    Returns
    -------
    ia, ib, dist : ndarray
        Matched rows of ``a`` and ``b`` and their distance, by increasing ``ia``.

    Notes
    -----
    The matching is the greedy one: of all candidate pairs within the radius, ordered by
    distance (ties by the row in ``a``, then in ``b``), a pair is taken when neither point is
    taken yet. It is computed without a loop over pairs as iterated mutual nearest neighbours
    (a pair that is the best of both its points is in the greedy matching; remove both points
    and repeat), which gives the same matching for a strict order of the pairs.
    """
    wa, wb = np.asarray(wa, np.int64), np.asarray(wb, np.int64)
    xa, ya, xb, yb = (np.asarray(v, np.float64) for v in (xa, ya, xb, yb))
    n_g = int(max(wa.max(initial=-1), wb.max(initial=-1))) + 1
    r = np.broadcast_to(np.asarray(radius_um, dtype=np.float64), (max(n_g, 1),)) if np.ndim(radius_um) == 0 \
        else np.asarray(radius_um, dtype=np.float64)
    empty = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0))
    fa = np.isfinite(xa) & np.isfinite(ya)
    fb = np.isfinite(xb) & np.isfinite(yb)
    if not fa.any() or not fb.any() or not np.isfinite(r).any():
        return empty
    ra, rb = np.flatnonzero(fa), np.flatnonzero(fb)
    r_max = float(np.nanmax(r))
    ta = cKDTree(np.column_stack([xa[ra] + wa[ra] * _SEP, ya[ra]]))
    tb = cKDTree(np.column_stack([xb[rb] + wb[rb] * _SEP, yb[rb]]))
    sdm = ta.sparse_distance_matrix(tb, r_max, output_type="ndarray")
    i, j, d = ra[sdm["i"]], rb[sdm["j"]], sdm["v"]
    keep = d <= r[wa[i]]
    i, j, d = i[keep], j[keep], d[keep]
    taken_a = np.zeros(len(xa), bool)
    taken_b = np.zeros(len(xb), bool)
    out_a, out_b, out_d = [], [], []
    while len(i):  # rounds of mutual nearest neighbours: few, each over all remaining pairs at once
        oa = np.lexsort((j, d, i))
        best_a = np.zeros(len(i), bool)
        best_a[oa[np.r_[True, i[oa][1:] != i[oa][:-1]]]] = True
        ob = np.lexsort((i, d, j))
        best_b = np.zeros(len(i), bool)
        best_b[ob[np.r_[True, j[ob][1:] != j[ob][:-1]]]] = True
        mutual = best_a & best_b
        out_a.append(i[mutual])
        out_b.append(j[mutual])
        out_d.append(d[mutual])
        taken_a[i[mutual]] = True
        taken_b[j[mutual]] = True
        left = ~taken_a[i] & ~taken_b[j]
        i, j, d = i[left], j[left], d[left]
    ia, ib, dd = np.concatenate(out_a), np.concatenate(out_b), np.concatenate(out_d)
    o = np.argsort(ia, kind="stable")
    return ia[o], ib[o], dd[o]


def _initial_offset(wa: np.ndarray, xa: np.ndarray, ya: np.ndarray, wb: np.ndarray, xb: np.ndarray,
                    yb: np.ndarray, n_groups: int, max_offset: float, bin_um: float) -> np.ndarray:
    """Per group, the mode of ``a - b`` over all pairs closer than ``max_offset`` (histogram votes)."""
    off = np.zeros((n_groups, 2))
    ta = cKDTree(np.column_stack([xa + wa * _SEP, ya]))
    tb = cKDTree(np.column_stack([xb + wb * _SEP, yb]))
    sdm = tb.sparse_distance_matrix(ta, max_offset, output_type="ndarray")
    if len(sdm) == 0:
        return off
    i, j = sdm["i"], sdm["j"]
    g = wb[i]
    dx, dy = xa[j] - xb[i], ya[j] - yb[i]
    nb = int(math.ceil(2 * max_offset / bin_um)) + 3  # one empty bin on each side: no spill between groups
    ix = np.floor((dx + max_offset) / bin_um).astype(np.int64) + 1
    iy = np.floor((dy + max_offset) / bin_um).astype(np.int64) + 1
    key = (g * nb + ix) * nb + iy
    # smooth the votes over the 3 x 3 neighbourhood so that a mode split between bins still wins
    sx, sy = np.meshgrid([-1, 0, 1], [-1, 0, 1])
    spread = (key[:, None] + (sx.ravel() * nb + sy.ravel())[None, :]).ravel()
    uk, cnt = np.unique(spread, return_counts=True)
    ug = uk // (nb * nb)
    o = np.lexsort((-cnt, ug))
    first = o[np.r_[True, ug[o][1:] != ug[o][:-1]]]
    best = uk[first]
    cx = np.zeros(n_groups)
    cy = np.zeros(n_groups)
    cx[ug[first]] = ((best // nb) % nb - 1 + 0.5) * bin_um - max_offset
    cy[ug[first]] = (best % nb - 1 + 0.5) * bin_um - max_offset
    # refine: mean vote within 1.5 bins of the mode
    near = (np.abs(dx - cx[g]) <= 1.5 * bin_um) & (np.abs(dy - cy[g]) <= 1.5 * bin_um)
    cnt_n = np.bincount(g[near], minlength=n_groups).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        mx = np.bincount(g[near], dx[near], n_groups) / cnt_n
        my = np.bincount(g[near], dy[near], n_groups) / cnt_n
    has = cnt_n > 0
    off[has, 0], off[has, 1] = mx[has], my[has]
    return off


def align_arrays(
    wa: np.ndarray, xa: np.ndarray, ya: np.ndarray, wb: np.ndarray, xb: np.ndarray, yb: np.ndarray, n_groups: int,
    *, model: str = "rigid", max_offset_um: float = 100.0, n_iter: int = 30, trim: float = 3.5,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-group transforms ``b -> a`` from positions and group codes (the engine of :func:`align`).

    Returns ``params`` (n_groups, 6), the robust per-axis residual ``sigma`` [um] and the number
    of pairs of the final fit per group.
    """
    fa = np.isfinite(xa) & np.isfinite(ya)
    fb = np.isfinite(xb) & np.isfinite(yb)
    wa, xa, ya = wa[fa], xa[fa], ya[fa]
    wb, xb, yb = wb[fb], xb[fb], yb[fb]
    params = _identity(n_groups)
    sigma = np.full(n_groups, np.nan)
    n_pairs = np.zeros(n_groups, np.int64)
    if len(xa) == 0 or len(xb) == 0:
        return np.full((n_groups, 6), np.nan), sigma, n_pairs
    bin_um = max(max_offset_um / 20.0, 1.0)
    off = _initial_offset(wa, xa, ya, wb, xb, yb, n_groups, max_offset_um, bin_um)
    params[:, 4:] = off
    radius = np.full(n_groups, max_offset_um)
    scale = np.array([1e5, 1e5, 1e5, 1e5, 1.0, 1.0])  # 1e-5 of the matrix weighs as 1 um of offset
    before = params.copy()
    for it in range(n_iter):
        px, py = apply_transform(params[wb], xb, yb)
        ia, ib, d = match_points(wa, xa, ya, wb, px, py, radius)
        g = wa[ia]
        s = _group_median(g, d, n_groups) / _RAYLEIGH_MEDIAN
        keep = d <= np.maximum(trim * s[g], 1e-9)
        new = fit_transforms(g[keep], xa[ia[keep]], ya[ia[keep]], xb[ib[keep]], yb[ib[keep]], n_groups, model)
        bad = ~np.isfinite(new).all(axis=1)
        new[bad] = params[bad]
        change = np.nanmax(np.abs(new - params) * scale, initial=0.0)
        # trimming can flip a borderline pair in and out: a return to the fit of two rounds ago ends too
        cycle = np.nanmax(np.abs(new - before) * scale, initial=0.0)
        before, params = params, new
        n_pairs = np.bincount(g[keep], minlength=n_groups)
        # the next radius: wide while the fit settles, then a few residual sigmas
        px2, py2 = apply_transform(params[wb[ib]], xb[ib], yb[ib])
        r2 = np.hypot(xa[ia] - px2, ya[ia] - py2)
        sigma = _group_median(g, r2, n_groups) / _RAYLEIGH_MEDIAN
        target = np.where(np.isfinite(sigma), np.maximum(8.0 * sigma, 1e-6), max_offset_um)
        radius = np.maximum(target, radius / 2.0) if it < 3 else target
        if it >= 3 and (change < 1e-3 or cycle < 1e-6):
            break
    none = n_pairs < (3 if model == "affine" else 2)
    params[none] = np.nan
    return params, sigma, n_pairs


def _positions(defects: pd.DataFrame, name: str, x_col: str, y_col: str, where: str) -> None:
    missing = [c for c in ("lot_id", "wafer_id", x_col, y_col) if c not in defects.columns]
    if missing:
        raise SchemaError(f"The {name!r} table of {where} needs column(s) {missing} (positions in its tool's "
                          f"frame); found {list(defects.columns)}.", column=missing[0])


def align(
    defects_a: pd.DataFrame,
    defects_b: pd.DataFrame,
    *,
    model: str = "rigid",
    max_offset_um: float = 100.0,
    x_col: str = "x_um",
    y_col: str = "y_um",
) -> Alignment:
    """Estimate, per wafer, the transform from ``defects_b``'s frame into ``defects_a``'s.

    Parameters
    ----------
    defects_a, defects_b : DataFrame
        Defect tables of the same wafers from two inspections (``lot_id``, ``wafer_id``,
        positions); the defects need not correspond (adders and misses are expected).
    model : {"rigid", "similarity", "affine"}
        Rotation and offset; plus a common scale; or a general linear map and offset.
    max_offset_um : float
        Largest offset (plus rotation displacement at the wafer edge) expected between the two
        frames [um].
    x_col, y_col : str
        Position columns [um].

    Returns
    -------
    Alignment
        ``.table`` one row per wafer present in both tables; ``.apply(defects_b)`` maps positions.

    Raises
    ------
    SchemaError
        A table lacks a needed column.
    YieldkitValueError
        A bad ``model`` or ``max_offset_um``.

    Notes
    -----
    ``rotation_urad = atan2(a21, a11) * 1e6``; ``scale = sqrt(det M)``. The residual is the robust
    per-axis standard deviation ``median(|r|) / sqrt(2 ln 2)`` of the final pairs' residuals ``r``:
    for two inspections with independent jitter it is the jitter of the difference.

    Examples
    --------
    >>> from yieldkit.inspection import align, simulate_inspections
    >>> fab = simulate_inspections(n_lots=1, wafers_per_lot=1, random_state=2)
    >>> d = fab.defects
    >>> al = align(d[d.layer == "M1"], d[d.layer == "V1"])
    >>> float(al.table["residual_um"].iloc[0]) < 1.0
    True
    """
    where = "align"
    check_choice(model, MODELS, name="model", where=where)
    if not (max_offset_um > 0 and math.isfinite(max_offset_um)):
        raise YieldkitValueError(f"The 'max_offset_um' argument of align must be > 0. Got {max_offset_um!r} instead.")
    _positions(defects_a, "defects_a", x_col, y_col, where)
    _positions(defects_b, "defects_b", x_col, y_col, where)
    (wa, wb), wafers = joint_wafer_codes(defects_a, defects_b)
    n_g = len(wafers)
    params, sigma, n_pairs = align_arrays(wa, defects_a[x_col].to_numpy(float), defects_a[y_col].to_numpy(float),
                                          wb, defects_b[x_col].to_numpy(float), defects_b[y_col].to_numpy(float),
                                          n_g, model=model, max_offset_um=max_offset_um)
    na = np.bincount(wa, minlength=n_g)
    nb = np.bincount(wb, minlength=n_g)
    both = (na > 0) & (nb > 0)
    table = _alignment_table(wafers, params, sigma, n_pairs, na, nb)[both].reset_index(drop=True)
    _warn_unaligned(table, where)
    return Alignment(table=table, model=model)


def _alignment_table(wafers: pd.DataFrame, params: np.ndarray, sigma: np.ndarray, n_pairs: np.ndarray,
                     na: np.ndarray, nb: np.ndarray) -> pd.DataFrame:
    t = pd.DataFrame({"lot_id": pd.array(wafers["lot_id"].astype(str).to_numpy(), dtype=STRING),
                      "wafer_id": pd.array(wafers["wafer_id"].astype(str).to_numpy(), dtype=STRING)})
    for k, c in enumerate(_TRANSFORM_COLS):
        t[c] = params[:, k]
    t["rotation_urad"] = np.arctan2(params[:, 2], params[:, 0]) * 1e6
    with np.errstate(invalid="ignore"):
        t["scale"] = np.sqrt(params[:, 0] * params[:, 3] - params[:, 1] * params[:, 2])
    t["residual_um"] = sigma
    t["n_pairs"] = n_pairs.astype(np.int64)
    t["n_a"] = na.astype(np.int64)
    t["n_b"] = nb.astype(np.int64)
    return t


def _warn_unaligned(table: pd.DataFrame, where: str) -> None:
    bad = ~np.isfinite(table["tx_um"].to_numpy(float))
    if bad.any():
        first: Any = table.loc[bad].iloc[0]
        warnings.warn(f"{where}: no transform for {int(bad.sum())} wafer(s) (too few defects seen by both "
                      f"inspections within the offset), e.g. {first['lot_id']}/{first['wafer_id']}",
                      DataQualityWarning, stacklevel=3)
