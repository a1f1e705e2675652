"""Likelihood kernels shared by the fitted yield models.

Counts are held as a weighted histogram of ``(k, area)`` cells, so the cost of a likelihood
evaluation depends on the number of distinct counts, not on the number of dies. Pass/fail
data (window blocks, products of different die sizes) are held as binomial cells
``(exposure, tested, good)``. Both keep an optional group-by-cell matrix so that a bootstrap
can resample wafers (groups) instead of dies.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
from scipy import optimize, sparse, special

__all__ = ["BinomialCells", "CountCells", "nb_fit", "nb_log_pmf", "nb_loglik", "nb_mean_hat", "numerical_hessian"]

_CUMSUM_MAX = 200_000


@dataclass(frozen=True)
class CountCells:
    """Weighted histogram of per-unit defect counts ``k`` with exposure ``area`` [cm^2]."""

    k: np.ndarray  # int64
    area: np.ndarray  # float64 [cm^2]
    w: np.ndarray  # float64 weights (number of units in the cell)
    groups: sparse.csr_matrix | None = None  # n_groups x n_cells unit counts

    @classmethod
    def from_arrays(cls, k: np.ndarray, area, group: np.ndarray | None = None) -> CountCells:
        """Histogram of counts ``k`` (int) with exposure ``area`` (scalar or per unit), O(n) by bincount."""
        k = np.asarray(k, dtype=np.int64)
        kmax = int(k.max()) + 1 if k.size else 1
        a = np.asarray(area, dtype=float)
        if a.ndim == 0 or (a.size and np.all(a == a.flat[0])):
            ua = np.array([float(a.flat[0]) if a.size else 1.0])
            ainv = None
        else:
            ua, ainv = np.unique(a, return_inverse=True)
        key = k if ainv is None else ainv.astype(np.int64) * kmax + k
        size = kmax * len(ua)
        if size <= 50_000_000:
            w_all = np.bincount(key, minlength=size)
            ukey = np.flatnonzero(w_all)
            w = w_all[ukey].astype(float)
            cinv = None
        else:
            ukey, cinv = np.unique(key, return_inverse=True)
            w = np.bincount(cinv, minlength=len(ukey)).astype(float)
        groups = None
        if group is not None:
            if cinv is None:
                lookup = np.full(size, -1, dtype=np.int64)
                lookup[ukey] = np.arange(len(ukey))
                cinv = lookup[key]
            gcodes, ginv = np.unique(np.asarray(group), return_inverse=True)
            groups = sparse.csr_matrix(
                (np.ones(len(k)), (ginv.ravel(), cinv.ravel())), shape=(len(gcodes), len(ukey))
            )
        return cls(k=ukey % kmax, area=ua[ukey // kmax], w=w, groups=groups)

    # the cells never change: their sums are computed once (the fits ask for them at every step)
    @functools.cached_property
    def n(self) -> float:
        return float(self.w.sum())

    @functools.cached_property
    def total(self) -> float:
        return float((self.w * self.k).sum())

    @functools.cached_property
    def exposure(self) -> float:
        return float((self.w * self.area).sum())

    @functools.cached_property
    def equal_areas(self) -> bool:
        """Whether every cell has the same exposure (closed-form mean density)."""
        return bool(np.ptp(self.area) == 0)

    def resample(self, rng: np.random.Generator) -> CountCells:
        """Bootstrap replicate: resample groups (wafers) when known, otherwise units."""
        if self.groups is not None:
            ng = self.groups.shape[0]
            draws = np.bincount(rng.integers(0, ng, ng), minlength=ng).astype(float)
            w = np.asarray(self.groups.T @ draws).ravel()
        else:
            n = int(round(self.n))
            w = rng.multinomial(n, self.w / self.w.sum()).astype(float)
        keep = w > 0
        return CountCells(self.k[keep], self.area[keep], w[keep], None)


@dataclass(frozen=True)
class BinomialCells:
    """Pooled pass/fail cells: ``tested`` units of exposure ``exposure`` [cm^2], ``good`` of them good."""

    exposure: np.ndarray
    tested: np.ndarray
    good: np.ndarray
    group_tested: np.ndarray | None = None  # n_groups x n_cells
    group_good: np.ndarray | None = None
    unit_resample: bool = True  # without groups: resample units (binomial) in each cell

    def resample(self, rng: np.random.Generator) -> BinomialCells:
        if self.group_tested is not None and self.group_good is not None:
            ng = self.group_tested.shape[0]
            draws = np.bincount(rng.integers(0, ng, ng), minlength=ng).astype(float)
            return replace(self, tested=draws @ self.group_tested, good=draws @ self.group_good,
                           group_tested=None, group_good=None)
        n = self.tested.astype(np.int64)
        p = np.divide(self.good, self.tested, out=np.zeros_like(self.good, dtype=float), where=self.tested > 0)
        return replace(self, good=rng.binomial(n, p).astype(float))


# ------------------------------------------------------------------ negative binomial
def _log1p_cum(alpha: float, kmax: int) -> np.ndarray:
    """``C[k] = sum_{j<k} log1p(j / alpha)`` for k = 0..kmax."""
    j = np.arange(kmax, dtype=float)
    return np.concatenate(([0.0], np.cumsum(np.log1p(j / alpha))))


def _c_term(k: np.ndarray, alpha: float) -> np.ndarray:
    kmax = int(k.max()) if k.size else 0
    if kmax <= _CUMSUM_MAX:
        return _log1p_cum(alpha, kmax)[k]
    return special.gammaln(k + alpha) - special.gammaln(alpha) - k * np.log(alpha)


def nb_log_pmf(k: np.ndarray, mu: np.ndarray, alpha: float) -> np.ndarray:
    """NB2 log-probability of counts ``k`` with mean ``mu`` and shape ``alpha`` (Poisson at ``inf``)."""
    k = np.asarray(k, dtype=np.int64)
    mu = np.asarray(mu, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        klogmu = np.where(k > 0, k * np.log(mu), 0.0)
    if np.isinf(alpha):
        return klogmu - mu - special.gammaln(k + 1.0)
    l1 = np.log1p(mu / alpha)
    return _c_term(k.ravel(), alpha).reshape(k.shape) - special.gammaln(k + 1.0) - (alpha + k) * l1 + klogmu


def nb_loglik(c: CountCells, m: float, alpha: float) -> float:
    """NB2 log-likelihood with mean ``m * area`` and shape ``alpha`` (Poisson at ``inf``)."""
    return float((c.w * nb_log_pmf(c.k, m * c.area, alpha)).sum())


def _nb_alpha_score(c: CountCells, m: float, alpha: float) -> float:
    """``alpha * d loglik / d alpha`` at fixed mean density ``m``."""
    k, w = c.k, c.w
    mu = m * c.area
    kmax = int(k.max()) if k.size else 0
    if kmax <= _CUMSUM_MAX:
        j = np.arange(kmax, dtype=float)
        cum = np.concatenate(([0.0], np.cumsum(-j / (alpha + j))))  # alpha * sum(1/(a+j) - 1/a)
        dc = cum[k]
    else:
        dc = alpha * (special.digamma(k + alpha) - special.digamma(alpha)) - k
    s = dc - alpha * np.log1p(mu / alpha) + (alpha + k) * mu / (alpha + mu)
    return float((w * s).sum())


def nb_mean_hat(c: CountCells, alpha: float) -> float:
    """MLE of the mean density ``m`` for a fixed ``alpha`` (closed form when all areas are equal)."""
    if c.total == 0:
        return 0.0
    m = c.total / c.exposure
    if np.isinf(alpha) or c.equal_areas:
        return m
    lm = np.log(m)
    for _ in range(100):
        mu = np.exp(lm) * c.area
        f = (c.w * (c.k - mu) * alpha / (alpha + mu)).sum()
        df = -(c.w * mu * alpha * (alpha + c.k) / (alpha + mu) ** 2).sum()
        step = f / df
        lm -= step
        if abs(step) < 1e-14:
            break
    return float(np.exp(lm))


def poisson_excess(c: CountCells) -> float:
    """``sum w ((k - mu)^2 - k)`` at the Poisson fit; ``n (var_n - mean)`` for equal areas."""
    m = c.total / c.exposure if c.exposure > 0 else 0.0
    mu = m * c.area
    return float((c.w * ((c.k - mu) ** 2 - c.k)).sum())


@dataclass(frozen=True)
class NBFit:
    m: float
    alpha: float
    loglik: float
    converged: bool
    at_bound: bool


def _widen_bracket(g: Callable[[float], float], lo: float, hi: float, t_lo: float, t_hi: float, *,
                   step: float) -> tuple[float, float, float, float]:
    """Move ``lo`` down and ``hi`` up by ``step`` (within ``[t_lo, t_hi]``) until the decreasing
    score ``g`` is >= 0 at ``lo`` and <= 0 at ``hi``; return ``lo, g(lo), hi, g(hi)``."""
    glo, ghi = g(lo), g(hi)
    while glo < 0 and lo > t_lo:
        lo = max(lo - step, t_lo)
        glo = g(lo)
    while ghi > 0 and hi < t_hi:
        hi = min(hi + step, t_hi)
        ghi = g(hi)
    return lo, glo, hi, ghi


def nb_fit(c: CountCells, *, t_lo: float = -30.0, t_hi: float = 40.0) -> NBFit:
    """NB2 maximum likelihood through the profile score in ``t = log alpha``.

    ``alpha`` is infinite (Poisson) when the divisor-n variance does not exceed the mean
    (:func:`poisson_excess` <= 0); otherwise the profile score has a single root
    (Aragon, Eberly & Eberly 1992) found with Brent's method.
    """
    if c.total == 0 or poisson_excess(c) <= 0:
        m = nb_mean_hat(c, np.inf)
        return NBFit(m, np.inf, nb_loglik(c, m, np.inf), True, False)

    def g(t: float) -> float:
        a = float(np.exp(t))
        return _nb_alpha_score(c, nb_mean_hat(c, a), a)

    mean = c.total / c.n
    var = float((c.w * (c.k - mean) ** 2).sum() / c.n)
    t0 = float(np.clip(np.log(mean**2 / max(var - mean, 1e-300)), t_lo + 1, t_hi - 1))
    lo, glo, hi, ghi = _widen_bracket(g, t0 - 1.0, t0 + 1.0, t_lo, t_hi, step=3.0)
    if ghi > 0:  # excess too small to resolve: the profile is flat up to infinity
        m = nb_mean_hat(c, np.inf)
        return NBFit(m, np.inf, nb_loglik(c, m, np.inf), True, True)
    if glo < 0:
        a = float(np.exp(t_lo))
        m = nb_mean_hat(c, a)
        return NBFit(m, a, nb_loglik(c, m, a), False, True)
    t, res = optimize.brentq(g, lo, hi, xtol=1e-13, rtol=4 * np.finfo(float).eps, full_output=True)
    a = float(np.exp(t))
    m = nb_mean_hat(c, a)
    return NBFit(m, a, nb_loglik(c, m, a), bool(res.converged), False)




# -------------------------------------------------------------------- numerics
def numerical_hessian(f, x: np.ndarray, step: float = 1e-4, *, relative: bool = True) -> np.ndarray:
    """Central-difference Hessian of a scalar function.

    The step in coordinate ``i`` is ``step * max(1, |x_i|)``, or ``step`` itself when ``relative``
    is false.
    """
    x = np.asarray(x, dtype=float)
    n = len(x)
    h = step * np.maximum(1.0, np.abs(x)) if relative else np.full(n, float(step))
    H = np.empty((n, n))
    f0 = f(x)
    for i in range(n):
        ei = np.zeros(n)
        ei[i] = h[i]
        H[i, i] = (f(x + ei) - 2 * f0 + f(x - ei)) / h[i] ** 2
        for j in range(i + 1, n):
            ej = np.zeros(n)
            ej[j] = h[j]
            H[i, j] = H[j, i] = (
                f(x + ei + ej) - f(x + ei - ej) - f(x - ei + ej) + f(x - ei - ej)
            ) / (4 * h[i] * h[j])
    return H


def binomial_loglik(log_y: np.ndarray, tested: np.ndarray, good: np.ndarray) -> float:
    """``sum good log Y + (tested - good) log(1 - Y)`` with ``log Y`` given (stable near Y = 1)."""
    log_y = np.minimum(log_y, 0.0)
    with np.errstate(divide="ignore"):
        log_1my = np.log(-np.expm1(log_y))
    bad = tested - good
    ll = np.where(good > 0, good * log_y, 0.0) + np.where(bad > 0, bad * log_1my, 0.0)
    return float(ll.sum())


def nb_alpha_hat_at(c: CountCells, m: float, *, t_lo: float = -30.0, t_hi: float = 40.0) -> float:
    """MLE of ``alpha`` at a fixed mean density ``m`` (``inf`` when the excess at ``m`` is <= 0)."""
    mu = m * c.area
    if float((c.w * ((c.k - mu) ** 2 - c.k)).sum()) <= 0:
        return np.inf

    def g(t: float) -> float:
        return _nb_alpha_score(c, m, float(np.exp(t)))

    lo, glo, hi, ghi = _widen_bracket(g, 0.0, 2.0, t_lo, t_hi, step=4.0)
    if ghi > 0:
        return np.inf
    if glo < 0:
        return float(np.exp(t_lo))
    return float(np.exp(optimize.brentq(g, lo, hi, xtol=1e-12)))


def nb_profile_m(c: CountCells, m: float) -> float:
    """Profile log-likelihood of the mean density: the NB log-likelihood maximised over alpha."""
    return nb_loglik(c, m, nb_alpha_hat_at(c, m))


def numerical_gradient(f, x: np.ndarray, step: float = 1e-6) -> np.ndarray:
    x = np.asarray(x, dtype=float)
    g = np.empty(len(x))
    for i in range(len(x)):
        h = step * max(1.0, abs(x[i]))
        e = np.zeros(len(x))
        e[i] = h
        g[i] = (f(x + e) - f(x - e)) / (2 * h)
    return g


def newton_minimize(f, x0: np.ndarray, lower: np.ndarray, upper: np.ndarray, *, max_iter: int = 200
                    ) -> tuple[np.ndarray, float, bool]:
    """Damped Newton minimisation in a box, with finite-difference derivatives (small problems only).

    Falls back to a steepest-descent step where the Hessian is not positive definite.
    Returns ``(x, f(x), converged)``.
    """
    x = np.clip(np.asarray(x0, dtype=float), lower, upper)
    fx = f(x)
    for _ in range(max_iter):
        g = numerical_gradient(f, x)
        H = numerical_hessian(f, x)
        try:
            step = -np.linalg.solve(H, g)
            if not np.all(np.isfinite(step)) or g @ step >= 0:
                raise np.linalg.LinAlgError
        except np.linalg.LinAlgError:
            step = -g / max(1.0, float(np.linalg.norm(g)))
        t = 1.0
        while t > 1e-12:
            xn = np.clip(x + t * step, lower, upper)
            fn = f(xn)
            if np.isfinite(fn) and fn <= fx + 1e-4 * min(0.0, float(g @ (xn - x))):
                break
            t /= 2
        else:
            return x, fx, bool(np.linalg.norm(g) < 1e-4 * max(1.0, abs(fx)))
        done = abs(fx - fn) <= 1e-13 * (1 + abs(fx)) and float(np.max(np.abs(xn - x))) < 1e-8
        x, fx = xn, fn
        if done:
            return x, fx, True
    # out of iterations, typically creeping along a flat direction towards a bound (y0 -> 1):
    # converged when the gradient, less its components pushing out of the box, is negligible
    g = numerical_gradient(f, x)
    g = np.where((np.isclose(x, lower) & (g > 0)) | (np.isclose(x, upper) & (g < 0)), 0.0, g)
    return x, fx, bool(np.linalg.norm(g) < 1e-4 * max(1.0, abs(fx)))
