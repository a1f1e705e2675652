"""Cluster detection on defect coordinates: DBSCAN with a data-driven radius per wafer.

Random defects (the ones that feed D0) are separated from clustered ones (scratches, local
blobs: signatures). All wafers are run through one DBSCAN call: each wafer's coordinates are
scaled by its own radius and the wafers are laid side by side, each pair of neighbours
apart by the sum of their half-widths plus a margin, so that a unit radius in the scaled
space is each wafer's own ``eps`` and no two wafers ever share a neighbourhood.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import optimize, stats

from .._keys import joint_wafer_codes
from ..errors import SchemaError, YieldkitValueError
from ..results import TableResult
from ..schema import STRING

log = logging.getLogger(__name__)

__all__ = ["DefectClusters", "cluster_summary", "csr_eps", "detect_clusters"]



def csr_eps(n_points: Any, area_um2: Any, *, min_samples: int = 4, tail: float = 0.01) -> np.ndarray:
    """DBSCAN radius at which a point of a uniform (random) pattern is rarely a core point [um].

    Notes
    -----
    Under complete spatial randomness with intensity ``lam = n / A``, the number of other
    points within ``eps`` of a point is Poisson with mean ``mu = lam pi eps^2``. ``mu`` is
    chosen so that ``P(Poisson(mu) >= min_samples - 1) = tail``; then
    ``eps = sqrt(mu / (pi lam))``.
    """
    if not 0 < tail < 1:
        raise YieldkitValueError(f"The 'tail' argument of csr_eps must be in (0, 1). Got {tail!r} instead.")
    k = int(min_samples) - 1
    mu = optimize.brentq(lambda m: stats.poisson.sf(k - 1, m) - tail, 1e-9, 1e3) if k >= 1 else 1.0
    lam = np.asarray(n_points, dtype=float) / np.asarray(area_um2, dtype=float)
    with np.errstate(divide="ignore"):
        return np.sqrt(mu / (np.pi * lam))


@dataclass(frozen=True, repr=False)
class DefectClusters(TableResult):
    """Defects labelled clustered or random, and the radius used per wafer (from :func:`detect_clusters`).

    Attributes
    ----------
    table : DataFrame
        The defects with ``cluster``, ``clustered``, ``cluster_size`` and ``cluster_shape``.
    eps_um : dict
        ``(lot_id, wafer_id)`` to the DBSCAN radius [um] used on that wafer.
    """

    table: pd.DataFrame
    eps_um: dict[tuple[str, str], float] = field(default_factory=dict)

    def __repr__(self) -> str:
        t = self.table
        return (f"DefectClusters(defects={len(t)}, clustered={int(t['clustered'].sum())}, "
                f"clusters={int(t.loc[t['clustered'], 'cluster'].nunique())}, wafers={len(self.eps_um)})")


def detect_clusters(
    defects: pd.DataFrame,
    layout: Any = None,
    *,
    eps_um: float | None = None,
    min_samples: int = 4,
    min_cluster_size: int = 8,
    tail: float = 0.01,
    line_elongation: float = 3.0,
) -> DefectClusters:
    """Label every defect as clustered or random (DBSCAN, data-driven radius per wafer).

    Parameters
    ----------
    defects : DataFrame
        Canonical defect table with ``x_um``, ``y_um`` [um].
    layout : WaferLayout, optional
        Its wafer radius gives the inspected area of the CSR radius; without it the area is
        the disc holding the wafer's farthest defect.
    eps_um : float, optional
        Fixed DBSCAN radius [um] for all wafers (default: :func:`csr_eps` per wafer).
    min_samples : int
        DBSCAN core-point count (the point itself included).
    min_cluster_size : int
        Smaller DBSCAN clusters are relabelled random.
    tail : float
        False core-point probability of a random defect, see :func:`csr_eps`.
    line_elongation : float
        Clusters whose principal-axis ratio reaches this are ``"line"`` (scratch-like),
        others ``"blob"``.

    Returns
    -------
    DefectClusters
        ``.table``: the defects with ``cluster`` (int64, unique over the table, -1 for random),
        ``clustered`` (bool), ``cluster_size`` (0 for random) and ``cluster_shape``
        (``"line"``, ``"blob"`` or ``"random"``); ``.eps_um`` maps ``(lot_id, wafer_id)`` to
        the radius used [um].

    References
    ----------
    Ester, M., Kriegel, H.-P., Sander, J., & Xu, X. (1996). A density-based algorithm for
    discovering clusters in large spatial databases with noise. Proc. KDD-96, 226-231.

    Examples
    --------
    >>> import yieldkit as yk
    >>> fab = yk.simulate_fab(n_lots=1, wafers_per_lot=1, signatures={0: "loc"}, random_state=2)
    >>> lab = detect_clusters(fab.defects, fab.layout).table
    >>> truth = fab.truth["defects"]["cluster_id"].to_numpy() >= 0
    >>> bool((lab["clustered"].to_numpy() == truth).mean() > 0.9)
    True
    """
    from sklearn.cluster import DBSCAN

    for col in ("lot_id", "wafer_id", "x_um", "y_um"):
        if col not in defects.columns:
            raise SchemaError(f"detect_clusters needs the defect column {col!r}", column=col)
    if int(min_samples) < 1 or int(min_cluster_size) < 1:
        raise YieldkitValueError(
            "The 'min_samples' and 'min_cluster_size' arguments of detect_clusters must be >= 1. "
            f"Got {min_samples!r}, {min_cluster_size!r} instead."
        )
    if eps_um is not None and not eps_um > 0:
        raise YieldkitValueError(f"The 'eps_um' argument of detect_clusters must be > 0. Got {eps_um!r} instead.")
    x = defects["x_um"].to_numpy(dtype="float64", na_value=np.nan)
    y = defects["y_um"].to_numpy(dtype="float64", na_value=np.nan)
    ok = np.isfinite(x) & np.isfinite(y)
    (w,), wafers = joint_wafer_codes(defects)
    n_w = len(wafers)
    n_pts = np.bincount(w[ok], minlength=n_w)
    r = np.hypot(x, y)
    if layout is not None:
        radius = np.full(n_w, float(layout.radius_um))
    else:
        radius = np.zeros(n_w)
        np.maximum.at(radius, w[ok], r[ok])
        radius = np.maximum(radius, 1.0)
    eps = np.full(n_w, float(eps_um)) if eps_um is not None else csr_eps(
        np.maximum(n_pts, 1), np.pi * radius**2, min_samples=min_samples, tail=tail)
    reach = radius.copy()
    if ok.any():
        np.maximum.at(reach, w[ok], r[ok])
    # lay wafers side by side in eps-scaled space: wafer k spans offset[k] +- reach/eps, so
    # neighbours are kept apart by both half-widths plus a margin far above the unit radius
    half = reach / eps + 1.0
    offset = np.concatenate([[0.0], np.cumsum(half[:-1] + half[1:] + 10.0)])
    label = np.full(len(x), -1, dtype=np.int64)
    if ok.any():
        pts = np.column_stack([x[ok] / eps[w[ok]] + offset[w[ok]], y[ok] / eps[w[ok]]])
        lab = DBSCAN(eps=1.0, min_samples=int(min_samples)).fit_predict(pts)
        size = np.bincount(lab[lab >= 0]) if (lab >= 0).any() else np.zeros(0, np.int64)
        keep = (lab >= 0) & (size[np.maximum(lab, 0)] >= min_cluster_size) if len(size) else np.zeros(len(lab), bool)
        lab = np.where(keep, lab, -1)
        uniq, dense = np.unique(lab[keep], return_inverse=True)
        lab[keep] = dense
        label[ok] = lab
    clustered = label >= 0
    size = np.bincount(label[clustered]) if clustered.any() else np.zeros(0, np.int64)
    out = defects.copy()
    out["cluster"] = label
    out["clustered"] = clustered
    out["cluster_size"] = np.where(clustered, size[np.maximum(label, 0)] if len(size) else 0, 0).astype(np.int64)
    shape = np.full(len(x), "random", dtype=object)
    if clustered.any():
        summ = _shape_moments(x[clustered], y[clustered], label[clustered], line_elongation)
        shape[clustered] = summ["shape"].to_numpy()[label[clustered]]
    out["cluster_shape"] = pd.array(shape.astype(str), dtype=STRING)
    radii = {(str(a), str(b)): float(e) for a, b, e in zip(wafers["lot_id"], wafers["wafer_id"], eps, strict=True)}
    log.debug("detect_clusters: %d of %d defects clustered in %d clusters", int(clustered.sum()), len(x), len(size))
    return DefectClusters(out, eps_um=radii)


def _shape_moments(x: np.ndarray, y: np.ndarray, lab: np.ndarray, line_elongation: float) -> pd.DataFrame:
    """Centroid, principal axes and shape of every cluster from bincount moments."""
    n = np.bincount(lab).astype(float)
    mx = np.bincount(lab, weights=x) / n
    my = np.bincount(lab, weights=y) / n
    dx, dy = x - mx[lab], y - my[lab]
    sxx = np.bincount(lab, weights=dx * dx) / n
    syy = np.bincount(lab, weights=dy * dy) / n
    sxy = np.bincount(lab, weights=dx * dy) / n
    tr, det = sxx + syy, sxx * syy - sxy**2
    disc = np.sqrt(np.maximum(tr**2 / 4 - det, 0))
    l1, l2 = tr / 2 + disc, np.maximum(tr / 2 - disc, 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        elong = np.sqrt(l1 / l2)
    angle = np.degrees(0.5 * np.arctan2(2 * sxy, sxx - syy)) % 180
    return pd.DataFrame(
        {
            "n_defects": n.astype(np.int64),
            "x_center_um": mx,
            "y_center_um": my,
            "major_um": 4 * np.sqrt(l1),
            "minor_um": 4 * np.sqrt(l2),
            "elongation": elong,
            "angle_deg": angle,
            "shape": np.where(elong >= line_elongation, "line", "blob"),
        }
    )


def cluster_summary(labelled: DefectClusters | pd.DataFrame, *, line_elongation: float = 3.0) -> pd.DataFrame:
    """One row per cluster of :func:`detect_clusters`' output (the result or its table).

    Returns
    -------
    DataFrame
        ``lot_id``, ``wafer_id``, ``cluster``, ``n_defects``, ``x_center_um``,
        ``y_center_um``, ``major_um`` and ``minor_um`` (4 standard deviations along the
        principal axes) [um], ``elongation`` (axis ratio), ``angle_deg`` (of the major axis,
        counter-clockwise from +x), ``shape``.
    """
    if isinstance(labelled, DefectClusters):
        labelled = labelled.table
    for col in ("cluster", "x_um", "y_um", "lot_id", "wafer_id"):
        if col not in labelled.columns:
            raise SchemaError(f"cluster_summary needs the output of detect_clusters (column {col!r} missing)", column=col)
    lab = labelled["cluster"].to_numpy(np.int64)
    m = lab >= 0
    if not m.any():
        cols = ["lot_id", "wafer_id", "cluster", "n_defects", "x_center_um", "y_center_um", "major_um", "minor_um",
                "elongation", "angle_deg", "shape"]
        return pd.DataFrame({c: [] for c in cols})
    s = _shape_moments(labelled["x_um"].to_numpy(float)[m], labelled["y_um"].to_numpy(float)[m], lab[m], line_elongation)
    first = np.unique(lab[m], return_index=True)[1]
    rows = labelled.loc[m].iloc[first]
    s.insert(0, "cluster", np.arange(len(s)))
    s.insert(0, "wafer_id", rows["wafer_id"].astype(STRING).to_numpy())
    s.insert(0, "lot_id", rows["lot_id"].astype(STRING).to_numpy())
    s["shape"] = s["shape"].astype(STRING)
    return s.loc[s["n_defects"] > 0].reset_index(drop=True)
