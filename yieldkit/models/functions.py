"""Closed-form yield models: the probability that a die of a given area has no killer defect.

Each function is vectorised over its arguments (numpy broadcasting), takes the defect
density ``d0`` [defects/cm^2] and the die (or critical) area ``area`` [cm^2], and an optional
systematic (gross) yield ``y0`` that multiplies the defect-limited yield. Models are named
here by their formula; textbook attributions differ (Seeds' name is given to both
``1/(1 + A D0)`` and ``exp(-sqrt(A D0))``).

Glossary (used throughout :mod:`yieldkit.models`):

==============  =====================================================================
name            meaning [unit]
==============  =====================================================================
d0              mean killer-defect density [defects/cm^2] (per layer for Bose--Einstein)
area            die area or critical area [cm^2]
lam             mean number of killer defects per die, ``d0 * area`` [1]
cluster_alpha   negative-binomial clustering parameter; ``inf`` means no clustering [1]
y0              systematic (gross, non-random) yield in (0, 1] [1]
yield\\_         fraction of good dies in [0, 1] [1]
==============  =====================================================================

Every inverse (``*_d0``) returns the density that gives ``yield_`` for ``area``; yields equal
to ``y0`` give 0 and a zero yield gives ``inf``.
"""

from __future__ import annotations

import numpy as np

from .._validation import as_nonnegative, as_positive, as_yield_fraction, check_choice
from ..errors import YieldkitValueError

__all__ = [
    "bose_einstein_d0",
    "bose_einstein_yield",
    "log_murphy_factor",
    "moore_d0",
    "moore_yield",
    "murphy_d0",
    "murphy_yield",
    "negative_binomial_d0",
    "negative_binomial_yield",
    "poisson_d0",
    "poisson_yield",
    "price_d0",
    "price_yield",
    "seeds_d0",
    "seeds_yield",
]

MURPHY_KINDS = ("triangular", "rectangular")


# --------------------------------------------------------------------------- checks
def _out(x: np.ndarray):
    x = np.asarray(x, dtype=float)
    return float(x) if x.ndim == 0 else x


def _lam(d0, area, where: str) -> np.ndarray:
    """Mean defects per die ``lam = d0 * area`` from the checked arguments."""
    return as_nonnegative(d0, "d0", where) * as_nonnegative(area, "area", where)


def _yield_from_log(log_p0, y0, where: str):
    """``y0 * exp(log_p0)`` with ``y0`` checked, as a float or an array."""
    return _out(as_yield_fraction(y0, "y0", where) * np.exp(log_p0))


def _log_target(yield_, y0, where: str) -> np.ndarray:
    """log(yield_/y0) <= 0, validated."""
    y = np.asarray(yield_, dtype=float)
    y0a = as_yield_fraction(y0, "y0", where)
    if np.any(np.isnan(y) | (y < 0) | (y > y0a)):
        raise YieldkitValueError(
            f"The 'yield_' argument of {where} must be in [0, y0]. Got {yield_!r} instead (y0 = {y0!r})."
        )
    with np.errstate(divide="ignore"):
        return np.minimum(np.log(y) - np.log(y0a), 0.0)


# ----------------------------------------------------------------- log-yield kernels
def log_murphy_factor(x) -> np.ndarray:
    """``log((1 - exp(-x)) / x)`` for ``x >= 0``, accurate for tiny and huge ``x`` (0 at x = 0).

    Uses the series ``-x/2 + x^2/24 - x^4/2880`` below ``x = 1e-3`` and ``expm1`` above.
    """
    x = np.asarray(x, dtype=float)
    small = x < 1e-3
    xs = np.where(small, 1.0, x)
    with np.errstate(divide="ignore", invalid="ignore"):
        big = np.log(-np.expm1(-xs)) - np.log(xs)
    ser = -x / 2 + x * x / 24 - x**4 / 2880
    return np.where(small, ser, big)


def _log_poisson(lam: np.ndarray) -> np.ndarray:
    """``-lam``: the Poisson log-yield."""
    return -lam


def _log_seeds(lam: np.ndarray) -> np.ndarray:
    """``-log1p(lam)``: Seeds' log-yield."""
    return -np.log1p(lam)


def _log_bose_einstein(lam: np.ndarray, n_layers) -> np.ndarray:
    """``-n log1p(lam)`` with ``lam`` the mean defects per die of one layer."""
    return -n_layers * np.log1p(lam)


def _log_nb(lam: np.ndarray, cluster_alpha: np.ndarray) -> np.ndarray:
    """``-a log1p(lam/a)``, and ``-lam`` where ``a`` is infinite."""
    inf = np.isinf(cluster_alpha)
    a = np.where(inf, 1.0, cluster_alpha)
    with np.errstate(invalid="ignore"):
        v = -a * np.log1p(lam / a)
    return np.where(inf, -lam, v)


def _log_murphy(lam: np.ndarray, kind: str) -> np.ndarray:
    if kind == "triangular":
        return 2.0 * log_murphy_factor(lam)
    return log_murphy_factor(2.0 * lam)


def _check_kind(kind: str, where: str) -> str:
    return check_choice(kind, MURPHY_KINDS, name="kind", where=where)


# ----------------------------------------------------------------------- forwards
def poisson_yield(d0, area, y0=1.0):
    """Poisson yield ``Y = Y0 exp(-A D0)``.

    Parameters
    ----------
    d0 : array_like
        Killer-defect density [defects/cm^2], >= 0.
    area : array_like
        Die (critical) area [cm^2], >= 0.
    y0 : array_like, optional
        Systematic yield in (0, 1] [1]. Default 1.

    Returns
    -------
    float or ndarray
        Yield in [0, 1] [1].

    Raises
    ------
    YieldkitValueError
        A negative or non-finite ``d0`` or ``area``, or ``y0`` outside (0, 1].

    Notes
    -----
    Defects fall independently and uniformly (no clustering): the number of defects on a die
    is Poisson with mean ``lam = A D0`` and ``Y = P(0)``. Valid for any ``lam >= 0``.

    References
    ----------
    .. [1] C. H. Stapper, F. M. Armstrong, K. Saji, "Integrated circuit yield statistics",
       Proc. IEEE 71(4), 453-470 (1983). doi:10.1109/PROC.1983.12619

    Examples
    --------
    >>> import yieldkit as yk
    >>> round(yk.poisson_yield(0.5, 1.0), 6)
    0.606531
    """
    where = "poisson_yield"
    lam = _lam(d0, area, where)
    return _yield_from_log(_log_poisson(lam), y0, where)


def negative_binomial_yield(d0, area, cluster_alpha, y0=1.0):
    """Negative-binomial (clustered Poisson) yield ``Y = Y0 (1 + A D0 / alpha)^(-alpha)``.

    Parameters
    ----------
    d0 : array_like
        Mean killer-defect density [defects/cm^2], >= 0.
    area : array_like
        Die (critical) area [cm^2], >= 0.
    cluster_alpha : array_like
        Clustering parameter (> 0, ``inf`` allowed) [1]; small means strong clustering.
    y0 : array_like, optional
        Systematic yield in (0, 1] [1].

    Returns
    -------
    float or ndarray
        Yield [1].

    Raises
    ------
    YieldkitValueError
        Out-of-range arguments (``cluster_alpha <= 0``, negative density or area, ...).

    Notes
    -----
    The defect density of a die is gamma distributed with mean ``D0`` and shape
    ``alpha``; the defect count is negative binomial with mean ``lam = A D0`` and variance
    ``lam (1 + lam / alpha)``. Computed as ``exp(-alpha * log1p(lam / alpha))``, which tends
    to the Poisson yield ``exp(-lam)`` as ``alpha -> inf`` (and equals it at ``inf``).
    ``alpha = 1`` gives ``1 / (1 + lam)``.

    References
    ----------
    .. [1] C. H. Stapper, "On yield, fault distributions, and clustering of particles",
       IBM J. Res. Dev. 30(3), 326-338 (1986). doi:10.1147/rd.303.0326

    Examples
    --------
    >>> import yieldkit as yk
    >>> round(yk.negative_binomial_yield(0.5, 1.0, 2.0), 6)
    0.64
    >>> yk.negative_binomial_yield(0.5, 1.0, float("inf")) == yk.poisson_yield(0.5, 1.0)
    True
    """
    where = "negative_binomial_yield"
    lam = _lam(d0, area, where)
    a = as_positive(cluster_alpha, "cluster_alpha", where, allow_inf=True)
    return _yield_from_log(_log_nb(lam, a), y0, where)


def murphy_yield(d0, area, kind: str = "triangular", y0=1.0):
    """Murphy's yield for a triangular or rectangular distribution of the defect density.

    ``triangular``: ``Y = Y0 ((1 - exp(-A D0)) / (A D0))^2``;
    ``rectangular``: ``Y = Y0 (1 - exp(-2 A D0)) / (2 A D0)``.

    Parameters
    ----------
    d0 : array_like
        Mean killer-defect density [defects/cm^2], >= 0.
    area : array_like
        Die area [cm^2], >= 0.
    kind : {"triangular", "rectangular"}
        Shape of the density distribution over dies (both on ``[0, 2 D0]``).
    y0 : array_like, optional
        Systematic yield in (0, 1] [1].

    Returns
    -------
    float or ndarray
        Yield [1]; exactly ``y0`` at ``D0 = 0``.

    Raises
    ------
    YieldkitValueError
        Out-of-range arguments or an unknown ``kind``.

    Notes
    -----
    Computed in log space with ``expm1`` and a series below ``lam = 1e-3``, so it is exact
    to rounding for tiny ``lam`` and exactly 1 at ``lam = 0``. The triangular form agrees
    with the negative binomial with ``alpha = 6`` to second order in ``lam``
    (``1 - lam + 7 lam^2 / 12``).

    References
    ----------
    .. [1] B. T. Murphy, "Cost-size optima of monolithic integrated circuits",
       Proc. IEEE 52(12), 1537-1545 (1964). doi:10.1109/PROC.1964.3442

    Examples
    --------
    >>> import yieldkit as yk
    >>> yk.murphy_yield(0.0, 1.0)
    1.0
    >>> round(yk.murphy_yield(1.0, 1.0), 6)
    0.399576
    """
    where = "murphy_yield"
    _check_kind(kind, where)
    lam = _lam(d0, area, where)
    return _yield_from_log(_log_murphy(lam, kind), y0, where)


def seeds_yield(d0, area, y0=1.0):
    """Seeds' (exponential-density) yield ``Y = Y0 / (1 + A D0)``.

    Parameters
    ----------
    d0 : array_like
        Mean killer-defect density [defects/cm^2], >= 0.
    area : array_like
        Die area [cm^2], >= 0.
    y0 : array_like, optional
        Systematic yield in (0, 1] [1].

    Returns
    -------
    float or ndarray
        Yield [1].

    Notes
    -----
    An exponential distribution of the density over dies; the negative binomial with
    ``alpha = 1``.

    References
    ----------
    .. [1] R. B. Seeds, "Yield, economic, and logistic models for complex digital arrays",
       IEEE Int. Convention Record, part 6, 61-66 (1967).

    Examples
    --------
    >>> import yieldkit as yk
    >>> yk.seeds_yield(1.0, 1.0)
    0.5
    """
    where = "seeds_yield"
    lam = _lam(d0, area, where)
    return _yield_from_log(_log_seeds(lam), y0, where)


def bose_einstein_yield(d0, area, n_layers, y0=1.0):
    """Bose--Einstein yield over ``n`` critical layers ``Y = Y0 (1 + A D0)^(-n)``.

    Parameters
    ----------
    d0 : array_like
        Killer-defect density *per critical layer* [defects/cm^2], >= 0.
    area : array_like
        Die area [cm^2], >= 0.
    n_layers : array_like
        Number of critical layers (> 0) [1].
    y0 : array_like, optional
        Systematic yield in (0, 1] [1].

    Returns
    -------
    float or ndarray
        Yield [1].

    Notes
    -----
    The negative binomial with ``alpha = n`` and total density ``n D0``. With unequal
    layer densities use :func:`price_yield`.

    References
    ----------
    .. [1] J. E. Price, "A new look at yield of integrated circuits", Proc. IEEE 58(8),
       1290-1291 (1970). doi:10.1109/PROC.1970.7911

    Examples
    --------
    >>> import yieldkit as yk
    >>> yk.bose_einstein_yield(0.25, 1.0, 2)
    0.64
    """
    where = "bose_einstein_yield"
    lam = _lam(d0, area, where)
    n = as_positive(n_layers, "n_layers", where)
    return _yield_from_log(_log_bose_einstein(lam, n), y0, where)


def price_yield(d0_per_layer, area, y0=1.0):
    """Price's yield over layers of different densities ``Y = Y0 prod_i 1 / (1 + A D_i)``.

    Parameters
    ----------
    d0_per_layer : array_like, shape (..., n_layers)
        Killer-defect density of each layer [defects/cm^2] along the last axis.
    area : array_like
        Die area [cm^2], broadcast against ``d0_per_layer[..., 0]``.
    y0 : array_like, optional
        Systematic yield in (0, 1] [1].

    Returns
    -------
    float or ndarray
        Yield [1].

    References
    ----------
    .. [1] J. E. Price, "A new look at yield of integrated circuits", Proc. IEEE 58(8),
       1290-1291 (1970). doi:10.1109/PROC.1970.7911

    Examples
    --------
    >>> import yieldkit as yk
    >>> round(yk.price_yield([0.1, 0.2, 0.3], 1.0), 6)
    0.582751
    """
    where = "price_yield"
    d = np.atleast_1d(as_nonnegative(d0_per_layer, "d0_per_layer", where))
    a = as_nonnegative(area, "area", where)
    logy = -np.log1p(np.expand_dims(a, -1) * d).sum(axis=-1)
    return _yield_from_log(logy, y0, where)


def moore_yield(d0, area, y0=1.0):
    """Moore's empirical yield ``Y = Y0 exp(-sqrt(A D0))``.

    Parameters
    ----------
    d0 : array_like
        Killer-defect density [defects/cm^2], >= 0.
    area : array_like
        Die area [cm^2], >= 0.
    y0 : array_like, optional
        Systematic yield in (0, 1] [1].

    Returns
    -------
    float or ndarray
        Yield [1].

    Notes
    -----
    An empirical fit to yields of large dies; not a count distribution, so it is offered
    as a function but not as a fitted class.

    References
    ----------
    .. [1] G. E. Moore, "What level of LSI is right for you?", Electronics 43(4), 126-130 (1970).

    Examples
    --------
    >>> import yieldkit as yk
    >>> round(yk.moore_yield(1.0, 4.0), 6)
    0.135335
    """
    where = "moore_yield"
    lam = _lam(d0, area, where)
    return _yield_from_log(-np.sqrt(lam), y0, where)


# ------------------------------------------------------------------------ inverses
def _area(area, where: str) -> np.ndarray:
    return as_positive(area, "area", where)


def poisson_d0(yield_, area, y0=1.0):
    """Density from a Poisson yield: ``D0 = -ln(Y / Y0) / A`` [defects/cm^2].

    Examples
    --------
    >>> import yieldkit as yk
    >>> round(yk.models.poisson_d0(yk.poisson_yield(0.3, 2.0), 2.0), 12)
    0.3
    """
    where = "poisson_d0"
    r = _log_target(yield_, y0, where)
    return _out(-r / _area(area, where))


def negative_binomial_d0(yield_, area, cluster_alpha, y0=1.0):
    """Density from a negative-binomial yield: ``D0 = alpha ((Y/Y0)^(-1/alpha) - 1) / A``.

    Computed as ``alpha * expm1(-ln(Y/Y0) / alpha) / A``; the Poisson inverse at ``alpha = inf``.
    """
    where = "negative_binomial_d0"
    r = _log_target(yield_, y0, where)
    a = as_positive(cluster_alpha, "cluster_alpha", where, allow_inf=True)
    inf = np.isinf(a)
    af = np.where(inf, 1.0, a)
    with np.errstate(over="ignore", invalid="ignore"):
        lam = np.where(inf, -r, af * np.expm1(-r / af))
    return _out(lam / _area(area, where))


def seeds_d0(yield_, area, y0=1.0):
    """Density from Seeds' yield: ``D0 = (Y0 / Y - 1) / A`` [defects/cm^2]."""
    where = "seeds_d0"
    r = _log_target(yield_, y0, where)
    with np.errstate(over="ignore"):
        return _out(np.expm1(-r) / _area(area, where))


def bose_einstein_d0(yield_, area, n_layers, y0=1.0):
    """Per-layer density from a Bose--Einstein yield: ``D0 = ((Y/Y0)^(-1/n) - 1) / A``."""
    where = "bose_einstein_d0"
    r = _log_target(yield_, y0, where)
    n = as_positive(n_layers, "n_layers", where)
    with np.errstate(over="ignore"):
        return _out(np.expm1(-r / n) / _area(area, where))


def moore_d0(yield_, area, y0=1.0):
    """Density from Moore's yield: ``D0 = ln(Y / Y0)^2 / A`` [defects/cm^2]."""
    where = "moore_d0"
    r = _log_target(yield_, y0, where)
    return _out(r * r / _area(area, where))


def _bisect_log(func, target: np.ndarray, lo: float = -60.0, hi: float = 800.0, n_iter: int = 120) -> np.ndarray:
    """Solve ``func(s) = target`` for ``s = log x`` where ``func`` decreases in ``s`` (vectorised)."""
    lo_a = np.full(target.shape, lo)
    hi_a = np.full(target.shape, hi)
    for _ in range(n_iter):
        mid = 0.5 * (lo_a + hi_a)
        above = func(mid) > target
        lo_a = np.where(above, mid, lo_a)
        hi_a = np.where(above, hi_a, mid)
    return 0.5 * (lo_a + hi_a)


def _log_murphy_of_log(s: np.ndarray, kind: str) -> np.ndarray:
    # log-yield as a function of log(lam); for huge lam the factor is exactly -log(x)
    lam = np.exp(np.minimum(s, 700.0))
    x = lam if kind == "triangular" else 2.0 * lam
    lx = s if kind == "triangular" else s + np.log(2.0)
    v = np.where(x > 40.0, -lx, log_murphy_factor(np.minimum(x, 41.0)))
    return 2.0 * v if kind == "triangular" else v


def murphy_d0(yield_, area, kind: str = "triangular", y0=1.0):
    """Density from Murphy's yield, solved numerically (vectorised bisection in log density).

    Accurate to about 1e-15 relative in ``A D0`` wherever the yield itself carries that
    precision (for ``Y`` within 1e-8 of ``Y0`` the yield's own rounding dominates).

    Examples
    --------
    >>> import yieldkit as yk
    >>> round(yk.models.murphy_d0(yk.murphy_yield(0.7, 1.5), 1.5), 10)
    0.7
    """
    where = "murphy_d0"
    _check_kind(kind, where)
    r = np.asarray(_log_target(yield_, y0, where), dtype=float)
    a = _area(area, where)
    r_b = np.broadcast_to(r, np.broadcast(r, a).shape).astype(float)
    zero = r_b == 0.0
    neg_inf = np.isneginf(r_b)
    t = np.where(zero | neg_inf, -1.0, r_b)
    s = _bisect_log(lambda s: _log_murphy_of_log(s, kind), t)
    lam = np.where(zero, 0.0, np.where(neg_inf, np.inf, np.exp(s)))
    return _out(lam / a)


def price_d0(yield_, area, weights, y0=1.0):
    """Scale of Price's layer densities from a yield: ``D_i = s w_i`` with ``Y = Y0 prod 1/(1 + A s w_i)``.

    Parameters
    ----------
    yield_ : array_like
        Yield [1].
    area : float
        Die area [cm^2].
    weights : array_like, shape (n_layers,)
        Relative layer densities (> 0) [1]; with equal weights ``s`` is the per-layer density.

    Returns
    -------
    float or ndarray
        ``s`` [defects/cm^2]; the layer densities are ``s * weights``.
    """
    where = "price_d0"
    r = np.asarray(_log_target(yield_, y0, where), dtype=float)
    a = float(_area(area, where))
    w = np.atleast_1d(as_positive(weights, "weights", where))
    zero = r == 0.0
    neg_inf = np.isneginf(r)
    t = np.where(zero | neg_inf, -1.0, r)

    def f(s):
        return -np.log1p(a * np.exp(np.minimum(s, 700.0))[..., None] * w).sum(axis=-1)

    s = _bisect_log(f, t, lo=-80.0, hi=700.0)
    return _out(np.where(zero, 0.0, np.where(neg_inf, np.inf, np.exp(s))))
