"""The fault coverage a DPPM target needs: closed-form inverses of the defect-level models."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import special

from .._validation import as_at_least, as_fraction, as_nonnegative, as_positive, out
from ..errors import YieldkitValueError, check_choice
from ..results import TableResult
from .models import MODELS, mean_faults_from_yield

__all__ = ["CoverageRequirement", "required_coverage"]

log = logging.getLogger(__name__)

#: Status labels of :func:`required_coverage` (its table's ``status`` column).
STATUS_MET = "met without test"
STATUS_REACHABLE = "reachable"
STATUS_UNREACHABLE = "needs complete coverage"


def _log_lambertw_exp(log_z: np.ndarray) -> np.ndarray:
    """log W(z) on the principal branch for z = exp(log_z) > 0, without underflow or overflow.

    Small z: W(z) = z (1 - z + ...), so log W = log_z - z to double precision below z = e^-20.
    Large z: Newton on w + log(w) = log_z from the asymptotic start. In between: scipy.
    """
    log_w = np.empty_like(log_z)
    small = log_z < -20.0
    big = log_z > 600.0
    mid = ~small & ~big
    log_w[small] = log_z[small] - np.exp(log_z[small])
    log_w[mid] = np.log(special.lambertw(np.exp(log_z[mid]), 0).real)
    if np.any(big):
        lz = log_z[big]
        w = lz - np.log(lz)
        for _ in range(50):
            step = (w + np.log(w) - lz) / (1.0 + 1.0 / w)
            w = w - step
            if np.all(np.abs(step) <= 1e-15 * w):
                break
        log_w[big] = np.log(w)
    return log_w


def _asa_uncovered(y: np.ndarray, d: np.ndarray, n0: np.ndarray) -> np.ndarray:
    """1 - T solving agrawal_seth_agrawal(Y, T, n0) = d, for 0 < d < 1 - Y.

    DL = q / (Y + q) gives q = d Y / (1 - d), i.e. u exp(-(n0 - 1)(1 - u)) = c with u = 1 - T and
    c = q / (1 - Y). With k = n0 - 1 > 0, u = W(c k e^k) / k (Lambert W); u = c when k = 0.
    Everything is carried in logs so that tiny targets and large n0 neither underflow nor overflow.
    """
    with np.errstate(divide="ignore"):
        log_c = np.log(d) + np.log(y) - np.log1p(-d) - np.log1p(-y)
    k = n0 - 1.0
    u = np.exp(log_c)
    pos = (k > 0.0) & np.isfinite(log_c)
    if np.any(pos):
        kp = k[pos]
        u[pos] = np.exp(_log_lambertw_exp(log_c[pos] + np.log(kp) + kp) - np.log(kp))
    return u


@dataclass(frozen=True, repr=False)
class CoverageRequirement(TableResult):
    """The fault coverage DPPM targets need (from :func:`required_coverage`).

    Attributes
    ----------
    coverage : float or numpy.ndarray
        The smallest coverage T in [0, 1] meeting each target, in the broadcast shape of the
        inputs (a float for scalar inputs).
    table : DataFrame
        One row per (yield, target) pair, flattened: ``model``, ``yield``, ``dppm_target``,
        ``coverage``, ``dppm_at_zero_coverage`` (1e6 (1 - Y), what ships without any test) and
        ``status``: ``"met without test"`` (coverage 0 suffices), ``"reachable"`` (0 < T < 1)
        or ``"needs complete coverage"`` (only T = 1 meets it: a zero target with Y < 1, or a
        target so small that 1 - T underflows).
    model : str
        Defect-level model: ``"wb"``, ``"asa"`` or ``"nb"``.
    """

    coverage: Any
    table: pd.DataFrame
    model: str

    def __repr__(self) -> str:
        counts = self.table["status"].value_counts()
        return (f"CoverageRequirement(model={self.model!r}, targets={len(self.table)}, "
                f"reachable={int(counts.get(STATUS_REACHABLE, 0))}, met={int(counts.get(STATUS_MET, 0))}, "
                f"complete_coverage={int(counts.get(STATUS_UNREACHABLE, 0))})")


def required_coverage(
    yield_: Any,
    dppm_target: Any,
    model: str = "wb",
    *,
    n0: Any = None,
    cluster_alpha: Any = None,
) -> CoverageRequirement:
    """Fault coverage needed to ship at or below a DPPM target.

    Parameters
    ----------
    yield_ : array_like
        Defect-limited yield Y [1], in [0, 1].
    dppm_target : array_like
        Target defect level [parts per million], in [0, 1e6]. Broadcast against ``yield_``.
    model : {"wb", "asa", "nb"}, default "wb"
        Williams-Brown, Agrawal-Seth-Agrawal (needs ``n0``) or negative binomial (needs
        ``cluster_alpha``; the mean fault count is derived from the yield).
    n0 : array_like, optional
        Mean number of faults on a faulty die [1], >= 1 (model ``"asa"``).
    cluster_alpha : array_like, optional
        Clustering parameter [1], > 0, infinity allowed (model ``"nb"``).

    Returns
    -------
    CoverageRequirement
        ``.coverage``: the smallest coverage T in [0, 1] whose defect level does not exceed the
        target (float or array in the broadcast shape); ``.table``: one row per target with
        ``yield``, ``dppm_target``, ``coverage``, ``dppm_at_zero_coverage`` and ``status``.

    Raises
    ------
    YieldkitValueError
        If ``yield_`` is outside [0, 1], ``dppm_target`` outside [0, 1e6], ``model`` unknown, or
        the model's parameter missing or out of range.

    Notes
    -----
    Every model's defect level falls monotonically from 1 - Y at T = 0 to 0 at T = 1, so a
    positive target below 1e6 (1 - Y) is always reached at exactly one T in (0, 1). With
    d = dppm_target / 1e6 the closed forms are

    * Williams-Brown: 1 - T = ln(1 - d) / ln Y (``log1p(-d) / log(Y)``);
    * negative binomial: 1 - T = -(alpha + lambda) expm1(ln(1 - d) / alpha) / lambda, and
      -ln(1 - d) / lambda when alpha is infinite;
    * Agrawal-Seth-Agrawal: with k = n0 - 1 and c = d Y / ((1 - d)(1 - Y)),
      1 - T = W(c k e^k) / k (principal branch of the Lambert W function; 1 - T = c when k = 0),
      evaluated in log space so that large n0 does not overflow.

    All are computed for 1 - T directly, so coverages such as 0.99999 keep their precision.

    Examples
    --------
    >>> round(float(required_coverage(0.5, 6907.5).coverage), 4)
    0.99
    >>> float(required_coverage(0.8, 300000).coverage)
    0.0
    >>> required_coverage(0.85, [100, 1000]).table["status"].tolist()
    ['reachable', 'reachable']
    """
    where = "required_coverage"
    check_choice(model, MODELS, name="model", where=where)
    y = as_fraction(yield_, "yield_", where)
    target = as_nonnegative(dppm_target, "dppm_target", where)
    if np.any(target > 1e6):
        raise YieldkitValueError(
            f"The 'dppm_target' argument of {where} must be in [0, 1e6]. "
            f"Got {float(target[target > 1e6].ravel()[0])!r} instead."
        )
    if model == "asa":
        if n0 is None:
            raise YieldkitValueError(f"The 'n0' argument of {where} is required for model 'asa'. Got None instead.")
        par = as_at_least(n0, 1.0, "n0", where)
    elif model == "nb":
        if cluster_alpha is None:
            raise YieldkitValueError(
                f"The 'cluster_alpha' argument of {where} is required for model 'nb'. Got None instead."
            )
        par = as_positive(cluster_alpha, "cluster_alpha", where, allow_inf=True)
    else:
        par = np.asarray(np.nan)
    y, target, par = np.broadcast_arrays(y, target, par)
    shape = y.shape
    y, target, par = (np.array(x, dtype=np.float64).ravel() for x in (y, target, par))
    d = target / 1e6
    ceiling = 1.0 - y  # defect level without any test
    met = d >= ceiling
    solve = ~met & (d > 0.0)
    u = np.zeros_like(y)  # 1 - T; d == 0 with Y < 1 needs T = 1
    if np.any(solve):
        ys, ds, ps = y[solve], d[solve], par[solve]
        with np.errstate(divide="ignore", invalid="ignore"):
            if model == "wb":
                us = np.log1p(-ds) / np.log(ys)
            elif model == "nb":
                # Y = 0 (every die faulty) needs T = 1: lambda = inf gives 1 - T = 0 below.
                lam = np.full_like(ys, np.inf)
                pos = ys > 0.0
                lam[pos] = mean_faults_from_yield(ys[pos], ps[pos])
                finite = np.isfinite(ps)
                a = np.where(finite, ps, 1.0)
                us = np.where(
                    finite,
                    -(a / lam + 1.0) * np.expm1(np.log1p(-ds) / a),
                    -np.log1p(-ds) / lam,
                )
            else:
                us = _asa_uncovered(ys, ds, ps)
        u[solve] = us
    u = np.clip(u, 0.0, 1.0)
    u[met] = 1.0
    coverage = 1.0 - u
    if np.any(met):
        log.info("%d DPPM target(s) are met without any test (target >= 1e6 (1 - Y)).", int(met.sum()))
    unreachable = ~met & (coverage >= 1.0)
    if np.any(unreachable):
        log.info("%d DPPM target(s) can only be met with complete (T = 1) coverage.", int(unreachable.sum()))
    status = np.where(met, STATUS_MET, np.where(unreachable, STATUS_UNREACHABLE, STATUS_REACHABLE))
    table = pd.DataFrame(
        {
            "model": model,
            "yield": y.ravel(),
            "dppm_target": target.ravel(),
            "coverage": coverage.ravel(),
            "dppm_at_zero_coverage": 1e6 * ceiling.ravel(),
            "status": status.ravel(),
        }
    )
    return CoverageRequirement(out(coverage.reshape(shape)), table, model)
