"""Significance tests and false-discovery control shared across yieldkit, vectorised.

Used by zonal yield statistics (:mod:`yieldkit.maps.zones`), commonality analysis
(:mod:`yieldkit.commonality`) and wherever many 2x2 tables or many p-values are
tested at once.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy import special, stats

__all__ = ["benjamini_hochberg", "fisher_exact_2x2", "two_proportion_ztest"]


def benjamini_hochberg(p: Any, groups: Any = None) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (q-values), within each group.

    Parameters
    ----------
    p : array_like
        p-values; NaN entries stay NaN and do not count among the tests.
    groups : array_like of int, optional
        Group of each p-value (e.g. the wafer of each zone); the procedure runs within each
        group. Default: one group.

    Returns
    -------
    ndarray
        Step-up adjusted p-values, monotone within each group and capped at 1.

    Notes
    -----
    With the m p-values of a group sorted ascending, q_(i) = min_{j >= i} p_(j) m / j.
    Rejecting q <= fdr controls the false discovery rate at ``fdr`` for independent or
    positively dependent tests.

    References
    ----------
    Benjamini, Y., & Hochberg, Y. (1995). Controlling the false discovery rate. J. R. Stat.
    Soc. B 57(1), 289-300. https://doi.org/10.1111/j.2517-6161.1995.tb02031.x

    Examples
    --------
    >>> benjamini_hochberg([0.01, 0.04, 0.03]).round(3).tolist()
    [0.03, 0.04, 0.04]
    >>> benjamini_hochberg([0.01, 0.04, 0.03, float("nan")], groups=[0, 0, 1, 1]).round(3).tolist()
    [0.02, 0.04, 0.03, nan]
    """
    p = np.asarray(p, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    if not ok.any():
        return out
    pv = p[ok]
    g = np.zeros(len(pv), np.int64) if groups is None else np.asarray(groups, dtype=np.int64)[ok]
    order = np.lexsort((-pv, g))  # within group, largest p first
    gs = g[order]
    m = np.bincount(g)[gs]
    start = np.r_[0, np.flatnonzero(gs[1:] != gs[:-1]) + 1]
    pos = np.arange(len(pv)) - np.repeat(start, np.diff(np.r_[start, len(pv)]))
    rank = m - pos  # rank of p within its group, ascending
    raw = pv[order] * m / rank
    q_sorted = pd.Series(raw).groupby(gs).cummin().to_numpy()
    q = np.empty(len(pv))
    q[order] = np.minimum(q_sorted, 1.0)
    out[ok] = q
    return out


def fisher_exact_2x2(a: Any, b: Any, c: Any, d: Any) -> np.ndarray:
    """Two-sided Fisher exact test of many 2x2 tables ``[[a, b], [c, d]]`` at once.

    Notes
    -----
    With row sums fixed, ``a`` is hypergeometric; the two-sided p-value sums the
    probabilities of all tables no more likely than the observed one (relative tolerance
    1e-7, as :func:`scipy.stats.fisher_exact`). Evaluated on a 2-D grid of the support, so
    meant for the small counts where the normal approximation fails.

    References
    ----------
    Fisher, R. A. (1922). On the interpretation of chi-square from contingency tables.
    J. R. Stat. Soc. 85(1), 87-94. https://doi.org/10.2307/2340521

    Examples
    --------
    >>> round(float(fisher_exact_2x2([8], [2], [1], [5])[0]), 4)
    0.035
    """
    a, b, c, d = (np.asarray(v, dtype=np.int64).ravel() for v in (a, b, c, d))
    n_tot = a + b + c + d
    k_tot = a + c  # first-column total
    n_row = a + b  # first-row total
    lo = np.maximum(0, n_row - (n_tot - k_tot))
    hi = np.minimum(k_tot, n_row)
    p = np.ones(len(a))
    if len(a) == 0:
        return p
    width = int((hi - lo).max()) + 1
    chunk = max(1, 4_000_000 // width)
    for s in range(0, len(a), chunk):
        sl = slice(s, s + chunk)
        j = lo[sl, None] + np.arange(width)[None, :]
        valid = j <= hi[sl, None]
        lp = stats.hypergeom.logpmf(np.where(valid, j, lo[sl, None]), n_tot[sl, None], k_tot[sl, None], n_row[sl, None])
        lobs = stats.hypergeom.logpmf(a[sl], n_tot[sl], k_tot[sl], n_row[sl])
        keep = valid & (lp <= lobs[:, None] + 1e-7)
        ps = np.minimum(1.0, np.exp(special.logsumexp(np.where(keep, lp, -np.inf), axis=1)))
        p[sl] = np.where(np.isfinite(lobs) & (n_tot[sl] > 0), ps, 1.0)
    return p


def two_proportion_ztest(k1: Any, n1: Any, k2: Any, n2: Any) -> np.ndarray:
    """Two-sided pooled two-proportion z-test of k1/n1 against k2/n2 (1 where undefined)."""
    k1, n1, k2, n2 = (np.asarray(v, dtype=float) for v in (k1, n1, k2, n2))
    with np.errstate(invalid="ignore", divide="ignore"):
        pool = (k1 + k2) / (n1 + n2)
        se = np.sqrt(pool * (1 - pool) * (1 / n1 + 1 / n2))
        z = (k1 / n1 - k2 / n2) / se
    p = 2 * stats.norm.sf(np.abs(z))
    return np.where(se > 0, p, 1.0)
