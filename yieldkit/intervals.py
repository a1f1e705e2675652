"""Confidence intervals for proportions and Poisson rates, vectorised.

All functions broadcast over array inputs and return ``(lower, upper)`` float arrays.

References
----------
Clopper, C. J. & Pearson, E. S. (1934). The use of confidence or fiducial limits illustrated
in the case of the binomial. Biometrika 26(4), 404-413. doi:10.1093/biomet/26.4.404

Wilson, E. B. (1927). Probable inference, the law of succession, and statistical inference.
JASA 22(158), 209-212. doi:10.1080/01621459.1927.10502953

Garwood, F. (1936). Fiducial limits for the Poisson distribution. Biometrika 28(3/4),
437-442. doi:10.1093/biomet/28.3-4.437
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import special

from ._validation import check_conf_level
from .errors import YieldkitValueError

__all__ = ["clopper_pearson", "garwood", "wilson"]


def _check_kn(k: Any, n: Any, where: str) -> tuple[np.ndarray, np.ndarray]:
    k = np.asarray(k, dtype=np.float64)
    n = np.asarray(n, dtype=np.float64)
    if np.any(n < 0) or np.any(k < 0):
        raise YieldkitValueError(f"The 'k' and 'n' arguments of {where} must be >= 0. Got k={k!r}, n={n!r} instead.")
    if np.any(k > n):
        raise YieldkitValueError(f"The 'k' argument of {where} must not exceed 'n'. Got k={k!r}, n={n!r} instead.")
    return k, n


def clopper_pearson(k: Any, n: Any, conf_level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Exact (Clopper-Pearson) interval for a binomial proportion k/n.

    Parameters
    ----------
    k : array_like
        Successes (e.g. good dies) [1].
    n : array_like
        Trials (e.g. tested dies) [1]; ``n = 0`` gives the interval [0, 1].
    conf_level : float
        Two-sided confidence level.

    Notes
    -----
    lower = B(a/2; k, n-k+1), upper = B(1-a/2; k+1, n-k) with B the beta quantile;
    lower = 0 at k = 0 and upper = 1 at k = n.

    Examples
    --------
    >>> lo, hi = clopper_pearson(0, 10)
    >>> float(lo), round(float(hi), 4)
    (0.0, 0.3085)
    """
    conf_level = check_conf_level(conf_level, "clopper_pearson")
    k, n = _check_kn(k, n, "clopper_pearson")
    a = 1.0 - conf_level
    with np.errstate(invalid="ignore", divide="ignore"):
        lo = np.where(k > 0, special.betaincinv(k, n - k + 1, a / 2), 0.0)
        hi = np.where(k < n, special.betaincinv(k + 1, n - k, 1 - a / 2), 1.0)
    lo = np.where(n > 0, lo, 0.0)
    hi = np.where(n > 0, hi, 1.0)
    return np.asarray(lo, dtype=np.float64), np.asarray(hi, dtype=np.float64)


def wilson(k: Any, n: Any, conf_level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval for a binomial proportion k/n (n = 0 gives [0, 1]).

    Notes
    -----
    (p + z²/2n ± z·sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n) with p = k/n.
    """
    conf_level = check_conf_level(conf_level, "wilson")
    k, n = _check_kn(k, n, "wilson")
    z = special.ndtri(0.5 + conf_level / 2)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = k / n
        den = 1 + z * z / n
        centre = (p + z * z / (2 * n)) / den
        half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
        lo = np.clip(centre - half, 0.0, 1.0)
        hi = np.clip(centre + half, 0.0, 1.0)
    lo = np.where(k == 0, 0.0, lo)
    hi = np.where(k == n, 1.0, hi)
    lo = np.where(n > 0, lo, 0.0)
    hi = np.where(n > 0, hi, 1.0)
    return np.asarray(lo, dtype=np.float64), np.asarray(hi, dtype=np.float64)


def garwood(k: Any, exposure: Any = 1.0, conf_level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Exact (Garwood) interval for a Poisson rate k / exposure.

    Parameters
    ----------
    k : array_like
        Observed count [1].
    exposure : array_like
        Exposure, e.g. inspected area [cm^2]; the interval is for the rate per unit exposure.
    conf_level : float
        Two-sided confidence level.

    Notes
    -----
    lower = chi2(a/2; 2k)/2, upper = chi2(1-a/2; 2k+2)/2, divided by the exposure; lower = 0
    at k = 0.

    Examples
    --------
    >>> lo, hi = garwood(0)
    >>> float(lo), round(float(hi), 4)
    (0.0, 3.6889)
    """
    conf_level = check_conf_level(conf_level, "garwood")
    k = np.asarray(k, dtype=np.float64)
    e = np.asarray(exposure, dtype=np.float64)
    if np.any(k < 0):
        raise YieldkitValueError(f"The 'k' argument of garwood must be >= 0. Got {k!r} instead.")
    if np.any(e <= 0):
        raise YieldkitValueError(f"The 'exposure' argument of garwood must be > 0. Got {e!r} instead.")
    a = 1.0 - conf_level
    # chi2.ppf(q, 2k) / 2 is the gamma(k) quantile
    with np.errstate(invalid="ignore", divide="ignore"):
        lo = np.where(k > 0, special.gammaincinv(np.maximum(k, 1e-300), a / 2), 0.0)
    hi = special.gammaincinv(k + 1, 1 - a / 2)
    return np.asarray(lo / e, dtype=np.float64), np.asarray(hi / e, dtype=np.float64)
