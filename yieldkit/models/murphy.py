"""Fitted Murphy yield model (triangular or rectangular density distribution)."""

from __future__ import annotations

import numpy as np
from scipy import special

from .._validation import check_choice
from .base import YieldModel
from .functions import MURPHY_KINDS, _log_murphy, log_murphy_factor

__all__ = ["MurphyYield", "log_gammainc", "murphy_log_pmf"]

_UNDERFLOW = 1e-250


def log_gammainc(a: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``log P(a, x)``, the log of the regularised lower incomplete gamma function (``x >= 0``).

    Where ``P`` would underflow (``x`` far below ``a``) it is summed in log space from the series
    ``P(a, x) = x^a e^{-x} / Gamma(a + 1) * sum_n x^n / ((a + 1) ... (a + n))`` (positive terms).
    """
    a, x = (np.asarray(v, dtype=float) for v in np.broadcast_arrays(a, x))
    g = special.gammainc(a, x)
    with np.errstate(divide="ignore"):
        out = np.log(g)
    tiny = (g < _UNDERFLOW) & (x > 0)
    if tiny.any():
        aa, xx = a[tiny], x[tiny]
        s = np.ones_like(aa)
        t = np.ones_like(aa)
        for n in range(1, 100_000):
            t = t * xx / (aa + n)
            s += t
            if np.all(t <= 1e-17 * s):
                break
        out[tiny] = aa * np.log(xx) - xx - special.gammaln(aa + 1.0) + np.log(s)
    return out


def murphy_log_pmf(k: np.ndarray, mu: np.ndarray, kind: str) -> np.ndarray:
    """Log-probability of ``k`` defects under Murphy's triangular/rectangular mixing with mean ``mu``.

    The count is Poisson with a mean ``lam`` spread over ``[0, 2 mu]``: uniformly (rectangular),
    ``P(k) = P(k+1, 2 mu) / (2 mu)``, or with the triangular density ``min(lam, 2 mu - lam) / mu^2``,

    ``P(k) = [(k+1) (2 P(k+2, mu) - P(k+2, 2 mu)) + 2 mu (P(k+1, 2 mu) - P(k+1, mu))] / mu^2``

    with ``P`` the regularised lower incomplete gamma function. The triangular sum is taken in
    log space in this lower form (its terms cancel by a factor of at most about ``2k + 3``), or in
    the equivalent upper form ``(k+1)(1 - 2 Q(k+2, mu) + Q(k+2, 2 mu)) + 2 mu (Q(k+1, mu) - Q(k+1, 2 mu))``
    where that cancels less (``mu`` large against ``k``); ``k = 0`` is the closed yield formula.
    Exact at ``mu = 0`` (``P(0) = 1``).
    """
    k, mu = (np.asarray(v, dtype=float) for v in np.broadcast_arrays(k, mu))
    out = np.where(k == 0, 0.0, -np.inf)
    live = (mu > 0) & np.isfinite(mu)
    zero_k = live & (k == 0)
    if kind == "rectangular":
        out[zero_k] = log_murphy_factor(2.0 * mu[zero_k])
        pos = live & (k > 0)
        kk, mm = k[pos], mu[pos]
        out[pos] = log_gammainc(kk + 1.0, 2.0 * mm) - np.log(2.0 * mm)
        return out
    out[zero_k] = 2.0 * log_murphy_factor(mu[zero_k])
    pos = live & (k > 0)
    kk, mm = k[pos], mu[pos]
    l2m = np.log(2.0 * mm)
    # lower form: signed terms with their logs, summed relative to the largest one
    logs = np.stack([np.log(2.0 * (kk + 1.0)) + log_gammainc(kk + 2.0, mm),
                     np.log(kk + 1.0) + log_gammainc(kk + 2.0, 2.0 * mm),
                     l2m + log_gammainc(kk + 1.0, 2.0 * mm),
                     l2m + log_gammainc(kk + 1.0, mm)])
    top = logs.max(axis=0)
    e = np.exp(logs - top)
    s_low = e[0] - e[1] + e[2] - e[3]
    # upper form
    terms = np.stack([kk + 1.0, -2.0 * (kk + 1.0) * special.gammaincc(kk + 2.0, mm),
                      (kk + 1.0) * special.gammaincc(kk + 2.0, 2.0 * mm),
                      2.0 * mm * special.gammaincc(kk + 1.0, mm), -2.0 * mm * special.gammaincc(kk + 1.0, 2.0 * mm)])
    s_up = terms.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        cond_low = e.sum(axis=0) / np.abs(s_low)
        cond_up = np.abs(terms).sum(axis=0) / np.abs(s_up)
        use_up = (cond_up < cond_low) & (s_up > 0)
        log_p = np.where(use_up, np.log(np.where(use_up, s_up, 1.0)),
                         top + np.log(np.where(use_up, 1.0, s_low))) - 2.0 * np.log(mm)
    out[pos] = log_p
    return out


class MurphyYield(YieldModel, name="murphy"):
    """Murphy's yield model: ``Y = y0 ((1 - e^{-A d0}) / (A d0))^2`` (triangular) or
    ``Y = y0 (1 - e^{-2 A d0}) / (2 A d0)`` (rectangular).

    Parameters
    ----------
    kind : {"triangular", "rectangular"}
        Distribution of the defect density over dies (on ``[0, 2 d0]``).
    conf_level, ci_method, fit_y0, n_boot, random_state
        See :class:`~yieldkit.models.base.YieldModel`.

    Notes
    -----
    From counts the likelihood is that of the Poisson count mixed over the density
    distribution: rectangular ``P(k) = P(k+1, 2 mu) / (2 mu)``; triangular
    ``P(k) = [(k+1)(2 P(k+2, mu) - P(k+2, 2 mu)) + 2 mu (P(k+1, 2 mu) - P(k+1, mu))] / mu^2``, with
    ``P`` the regularised lower incomplete gamma function and ``mu = A d0``. Both are evaluated in
    log space (a series where ``P`` underflows; the equivalent upper-gamma form where ``mu`` is
    large against ``k``), so that the likelihood stays exact for tiny mean counts per die.
    ``cluster_alpha_`` is ``inf`` (the model has no clustering parameter).

    References
    ----------
    .. [1] B. T. Murphy, "Cost-size optima of monolithic integrated circuits",
       Proc. IEEE 52(12), 1537-1545 (1964). doi:10.1109/PROC.1964.3442

    Examples
    --------
    >>> import numpy as np, yieldkit as yk
    >>> rng = np.random.default_rng(5)
    >>> dens = 0.5 * rng.triangular(0, 1, 2, size=20000)
    >>> m = yk.MurphyYield().fit(rng.poisson(dens * 2.0), area=2.0)
    >>> round(m.d0_, 2)
    0.5
    """

    _formula = "Y = y0 ((1 - exp(-A d0)) / (A d0))^2"

    def __init__(self, kind: str = "triangular", *, conf_level: float = 0.95, ci_method: str = "auto",
                 fit_y0: bool = True, n_boot: int = 200, random_state=None) -> None:
        super().__init__(conf_level=conf_level, ci_method=ci_method, fit_y0=fit_y0, n_boot=n_boot,
                         random_state=random_state)
        self.kind = kind

    def _validate_hyper(self, where: str) -> None:
        super()._validate_hyper(where)
        check_choice(self.kind, MURPHY_KINDS, name="kind", where="MurphyYield")

    def _log_p0(self, lam, cluster_alpha):
        return _log_murphy(np.asarray(lam, dtype=float), self.kind)

    def _count_log_pmf(self, k, mu, cluster_alpha):
        return murphy_log_pmf(k, mu, self.kind)
