"""Defect-level models: the share of defective parts among those that pass test.

Three models relate the defect level DL (the fraction of shipped parts that are defective,
DPPM = 1e6 x DL) to the yield Y and the fault coverage T of the test:

* :func:`williams_brown` -- faults randomly (Poisson) distributed over the dies;
* :func:`agrawal_seth_agrawal` -- a faulty die carries on average ``n0`` faults;
* :func:`negative_binomial_defect_level` -- faults clustered (negative binomial with
  clustering parameter ``cluster_alpha``); tends to Williams-Brown as ``cluster_alpha``
  tends to infinity.

Each has a *fallout* companion: the fraction of all tested dies that the test rejects.
:func:`weighted_fault_coverage` computes the realistic (weighted) coverage of Sousa et al.,
and :func:`dppm_table` lays a grid of results out as a tidy table.

Glossary
--------
yield_ : defect-limited yield, the probability that a die carries no fault [1].
coverage : fault coverage T, the probability that the test detects a given fault [1].
mean_faults : mean number of faults per die, lambda = D0 x A [faults/die].
cluster_alpha : negative-binomial clustering parameter (infinity = no clustering) [1].
n0 : mean number of faults on a faulty die (Agrawal-Seth-Agrawal), n0 >= 1 [1].

Systematic (non-defect) failures, the Y0 of a yield model, are taken to be always detected:
they change the fraction of dies that ships, not the defect level of what ships. Pass the
defect-limited yield Y / Y0 to these functions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from .._validation import as_at_least, as_fraction, as_nonnegative, as_positive, out
from ..errors import YieldkitValueError, check_choice

__all__ = [
    "MODELS",
    "agrawal_seth_agrawal",
    "agrawal_seth_agrawal_fallout",
    "dppm_table",
    "mean_faults_from_yield",
    "negative_binomial_defect_level",
    "negative_binomial_fallout",
    "weighted_fault_coverage",
    "williams_brown",
    "williams_brown_fallout",
]

#: Short names of the defect-level models, as used by ``model=`` arguments and the CLI.
MODELS = ("wb", "asa", "nb")



def _defect_level_columns(dl: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> dict[str, np.ndarray]:
    """The defect-level columns of a result table: ``defect_level``, ``ci_lower``, ``ci_upper`` [1]
    and the same in parts per million, ``dppm``, ``dppm_lower``, ``dppm_upper``."""
    return {"defect_level": dl, "ci_lower": lower, "ci_upper": upper,
            "dppm": 1e6 * dl, "dppm_lower": 1e6 * lower, "dppm_upper": 1e6 * upper}

def williams_brown(yield_: Any, coverage: Any) -> Any:
    """Defect level of Williams and Brown: DL = 1 - Y^(1 - T).

    Parameters
    ----------
    yield_ : array_like
        Defect-limited yield Y, the fraction of dies without a fault [1], in [0, 1].
    coverage : array_like
        Fault coverage T of the test [1], in [0, 1]. Broadcast against ``yield_``.

    Returns
    -------
    float or numpy.ndarray
        Defect level, the fraction of parts passing the test that are defective [1].

    Raises
    ------
    YieldkitValueError
        If ``yield_`` or ``coverage`` lies outside [0, 1].

    Notes
    -----
    Faults are Poisson distributed over the dies with mean lambda = -ln Y and each is detected
    independently with probability T, so a die passes when it has no *detected* fault,
    P(pass) = exp(-lambda T), and DL = 1 - Y / P(pass) = 1 - Y^(1 - T). It is computed as
    ``-expm1((1 - T) * log(Y))``, accurate for T close to 1 and for tiny yields. Limits:
    DL = 0 at T = 1 (also for Y = 0), DL = 1 - Y at T = 0. Valid for unclustered faults;
    under clustering it overestimates the defect level (see
    :func:`negative_binomial_defect_level`).

    References
    ----------
    T. W. Williams and N. C. Brown, "Defect level as a function of fault coverage", IEEE Trans.
    Computers C-30(12), 987-988, 1981. doi:10.1109/TC.1981.1675742

    Examples
    --------
    >>> round(float(williams_brown(0.5, 0.99)) * 1e6, 1)
    6907.5
    >>> williams_brown([0.5, 0.9], 1.0).tolist()
    [0.0, 0.0]
    """
    where = "williams_brown"
    y = as_fraction(yield_, "yield_", where)
    t = as_fraction(coverage, "coverage", where)
    y, t = np.broadcast_arrays(y, t)
    with np.errstate(divide="ignore", invalid="ignore"):
        dl = -np.expm1((1.0 - t) * np.log(y))
    return out(np.where(t >= 1.0, 0.0, dl))


def williams_brown_fallout(yield_: Any, coverage: Any) -> Any:
    """Fallout of the Williams-Brown model: the fraction of dies rejected, 1 - Y^T.

    Parameters
    ----------
    yield_ : array_like
        Defect-limited yield Y [1], in [0, 1].
    coverage : array_like
        Fault coverage T [1], in [0, 1].

    Returns
    -------
    float or numpy.ndarray
        Fraction of all tested dies that fail the test [1].

    Raises
    ------
    YieldkitValueError
        If ``yield_`` or ``coverage`` lies outside [0, 1].

    Notes
    -----
    r(T) = 1 - exp(-lambda T) = 1 - Y^T with lambda = -ln Y, computed as ``-expm1(T log Y)``;
    r(0) = 0 and r(1) = 1 - Y.

    References
    ----------
    T. W. Williams and N. C. Brown, IEEE Trans. Computers C-30(12), 987-988, 1981.
    doi:10.1109/TC.1981.1675742
    """
    where = "williams_brown_fallout"
    y = as_fraction(yield_, "yield_", where)
    t = as_fraction(coverage, "coverage", where)
    y, t = np.broadcast_arrays(y, t)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = -np.expm1(t * np.log(y))
    return out(np.where(t <= 0.0, 0.0, r))


def _asa_escape(y: np.ndarray, t: np.ndarray, n0: np.ndarray) -> np.ndarray:
    """Fraction of all dies that are faulty yet pass: (1 - T)(1 - Y) exp(-(n0 - 1) T)."""
    return (1.0 - t) * (1.0 - y) * np.exp(-(n0 - 1.0) * t)


def agrawal_seth_agrawal(yield_: Any, coverage: Any, n0: Any) -> Any:
    """Defect level of Agrawal, Seth and Agrawal, with n0 faults on an average faulty die.

    Parameters
    ----------
    yield_ : array_like
        Defect-limited yield Y [1], in [0, 1].
    coverage : array_like
        Fault coverage T [1], in [0, 1].
    n0 : array_like
        Mean number of faults on a faulty die [1], >= 1. All three arguments broadcast.

    Returns
    -------
    float or numpy.ndarray
        Defect level [1].

    Raises
    ------
    YieldkitValueError
        If ``yield_`` or ``coverage`` lies outside [0, 1], or ``n0`` is below 1 or not finite.

    Notes
    -----
    The number of faults on a faulty die is 1 + Poisson(n0 - 1); each fault is detected with
    probability T. Averaging (1 - T)^n over that distribution gives the fraction of all dies
    that are faulty but pass, q = (1 - T)(1 - Y) exp(-(n0 - 1) T), and

        DL = q / (Y + q).

    Limits: DL = 0 at T = 1 and DL = 1 - Y at T = 0. With n0 = 1 every faulty die has exactly
    one fault and DL = (1 - T)(1 - Y) / (Y + (1 - T)(1 - Y)); this agrees with Williams-Brown
    to first order in 1 - Y (high yield), not exactly. Larger n0 lowers DL: a die with many
    faults is likely to be caught.

    References
    ----------
    V. D. Agrawal, S. C. Seth and P. Agrawal, "Fault coverage requirement in production
    testing of LSI circuits", IEEE J. Solid-State Circuits SC-17(1), 57-61, 1982.

    Examples
    --------
    >>> round(float(agrawal_seth_agrawal(0.5, 0.99, 1.0)), 6)
    0.009901
    >>> float(agrawal_seth_agrawal(0.5, 0.99, 10.0)) < float(agrawal_seth_agrawal(0.5, 0.99, 1.0))
    True
    """
    where = "agrawal_seth_agrawal"
    y = as_fraction(yield_, "yield_", where)
    t = as_fraction(coverage, "coverage", where)
    n = as_at_least(n0, 1.0, "n0", where)
    y, t, n = np.broadcast_arrays(y, t, n)
    q = _asa_escape(y, t, n)
    with np.errstate(divide="ignore", invalid="ignore"):
        dl = q / (y + q)
    return out(np.where(q > 0.0, dl, 0.0))


def agrawal_seth_agrawal_fallout(yield_: Any, coverage: Any, n0: Any) -> Any:
    """Fallout (fraction of dies rejected) of the Agrawal-Seth-Agrawal model.

    Parameters
    ----------
    yield_ : array_like
        Defect-limited yield Y [1], in [0, 1].
    coverage : array_like
        Fault coverage T [1], in [0, 1].
    n0 : array_like
        Mean number of faults on a faulty die [1], >= 1.

    Returns
    -------
    float or numpy.ndarray
        Fraction of all tested dies that fail the test [1].

    Raises
    ------
    YieldkitValueError
        If an argument is out of range (see :func:`agrawal_seth_agrawal`).

    Notes
    -----
    r(T) = (1 - Y) [1 - (1 - T) exp(-(n0 - 1) T)], computed with ``expm1``/``log1p`` so that it
    stays accurate for small T; r(0) = 0, r(1) = 1 - Y. This is the curve fitted to test
    fallout data to estimate Y and n0 (:class:`~yieldkit.quality.FalloutFit`).

    References
    ----------
    V. D. Agrawal, S. C. Seth and P. Agrawal, IEEE J. Solid-State Circuits SC-17(1), 57-61,
    1982. S. C. Seth and V. D. Agrawal, "Forecasting reject rate of tested LSI chips", IEEE
    Electron Device Letters EDL-2(11), 286-287, 1981.
    """
    where = "agrawal_seth_agrawal_fallout"
    y = as_fraction(yield_, "yield_", where)
    t = as_fraction(coverage, "coverage", where)
    n = as_at_least(n0, 1.0, "n0", where)
    y, t, n = np.broadcast_arrays(y, t, n)
    with np.errstate(divide="ignore"):
        detected = -np.expm1(np.log1p(-t) - (n - 1.0) * t)
    return out((1.0 - y) * detected)


def mean_faults_from_yield(yield_: Any, cluster_alpha: Any = np.inf) -> Any:
    """Mean number of faults per die that gives yield Y under the negative binomial model.

    Parameters
    ----------
    yield_ : array_like
        Defect-limited yield Y [1], in (0, 1].
    cluster_alpha : array_like, default inf
        Clustering parameter [1], > 0; infinity for Poisson (unclustered) faults.

    Returns
    -------
    float or numpy.ndarray
        lambda [faults/die]: alpha (Y^(-1/alpha) - 1), or -ln Y when alpha is infinite.

    Raises
    ------
    YieldkitValueError
        If ``yield_`` is not in (0, 1] or ``cluster_alpha`` is not > 0.

    Notes
    -----
    Inverts Y = (1 + lambda/alpha)^(-alpha) as ``alpha * expm1(-log(Y) / alpha)``.

    Examples
    --------
    >>> round(float(mean_faults_from_yield(0.64, 2.0)), 12)
    0.5
    """
    where = "mean_faults_from_yield"
    y = as_fraction(yield_, "yield_", where)
    if np.any(y <= 0.0):
        raise YieldkitValueError(
            f"The 'yield_' argument of {where} must be in (0, 1]. Got {float(y[y <= 0].ravel()[0])!r} instead."
        )
    a = as_positive(cluster_alpha, "cluster_alpha", where, allow_inf=True)
    y, a = np.broadcast_arrays(y, a)
    log_y = np.log(y)
    with np.errstate(invalid="ignore", over="ignore"):  # lambda overflows to inf for Y -> 0, alpha -> 0
        lam = np.where(np.isinf(a), -log_y, a * np.expm1(-log_y / np.where(np.isinf(a), 1.0, a)))
    return out(lam)


def _nb_log_pass_ratio(lam: np.ndarray, t: np.ndarray, a: np.ndarray) -> np.ndarray:
    """log(Y / P(pass)) = alpha log1p(-lambda (1 - T) / (alpha + lambda)); -lambda (1 - T) at alpha = inf."""
    finite = np.isfinite(a)
    a_safe = np.where(finite, a, 1.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        x = lam * (1.0 - t) / (a_safe + lam)
        # log1p(-x) loses 1 - x when x is near 1; the difference of log1p's is exact there
        log_ratio = np.where(x < 0.5, np.log1p(-x), np.log1p(lam * t / a_safe) - np.log1p(lam / a_safe))
        u = a_safe * log_ratio
    return np.where(finite, u, -lam * (1.0 - t))


def negative_binomial_defect_level(mean_faults: Any, coverage: Any, cluster_alpha: Any = np.inf) -> Any:
    """Defect level under clustered (negative binomial) faults.

    Parameters
    ----------
    mean_faults : array_like
        Mean number of faults per die lambda = D0 x A [faults/die], >= 0.
    coverage : array_like
        Fault coverage T [1], in [0, 1].
    cluster_alpha : array_like, default inf
        Clustering parameter alpha [1], > 0; infinity gives Williams-Brown.

    Returns
    -------
    float or numpy.ndarray
        Defect level [1].

    Raises
    ------
    YieldkitValueError
        If ``mean_faults`` < 0, ``coverage`` outside [0, 1] or ``cluster_alpha`` <= 0.

    Notes
    -----
    Faults per die are negative binomial with mean lambda and clustering alpha; each is
    detected independently with probability T. The undetected faults are again negative
    binomial with mean lambda (1 - T), so P(pass) = (1 + lambda T / alpha)^(-alpha), the yield
    is Y = (1 + lambda / alpha)^(-alpha) and

        DL = 1 - Y / P(pass) = 1 - [(1 + lambda T / alpha) / (1 + lambda / alpha)]^alpha,

    computed as ``-expm1(alpha * log1p(-lambda (1 - T) / (alpha + lambda)))``. As alpha -> inf it
    tends to the Williams-Brown value 1 - exp(-lambda (1 - T)) = 1 - Y^(1 - T). For the same
    yield, clustering lowers the defect level: faulty dies carry several faults and are more
    likely to be caught, so Williams-Brown is pessimistic for clustered faults.

    References
    ----------
    J. T. de Sousa, F. M. Goncalves, J. P. Teixeira, C. Marzocca, F. Corsi and T. W. Williams,
    "Defect level evaluation in an IC design environment", IEEE Trans. CAD 15(10),
    1286-1293, 1996 (defect level for the Poisson and the negative binomial yield models).
    S. C. Seth and V. D. Agrawal, "Characterizing the LSI yield equation from wafer test data",
    IEEE Trans. CAD 3(2), 123-126, 1984.

    Examples
    --------
    >>> round(float(negative_binomial_defect_level(0.5, 0.99, 2.0)) * 1e6)
    3996
    >>> lam = float(mean_faults_from_yield(0.5))
    >>> bool(abs(negative_binomial_defect_level(lam, 0.99, 1e12) - williams_brown(0.5, 0.99)) < 1e-12)
    True
    """
    where = "negative_binomial_defect_level"
    lam = as_nonnegative(mean_faults, "mean_faults", where)
    t = as_fraction(coverage, "coverage", where)
    a = as_positive(cluster_alpha, "cluster_alpha", where, allow_inf=True)
    lam, t, a = np.broadcast_arrays(lam, t, a)
    return out(-np.expm1(_nb_log_pass_ratio(lam, t, a)))


def negative_binomial_fallout(mean_faults: Any, coverage: Any, cluster_alpha: Any = np.inf) -> Any:
    """Fallout (fraction of dies rejected) under clustered (negative binomial) faults.

    Parameters
    ----------
    mean_faults : array_like
        Mean number of faults per die [faults/die], >= 0.
    coverage : array_like
        Fault coverage T [1], in [0, 1].
    cluster_alpha : array_like, default inf
        Clustering parameter [1], > 0.

    Returns
    -------
    float or numpy.ndarray
        Fraction of all tested dies that fail the test [1].

    Raises
    ------
    YieldkitValueError
        If an argument is out of range (see :func:`negative_binomial_defect_level`).

    Notes
    -----
    r(T) = 1 - (1 + lambda T / alpha)^(-alpha), computed as ``-expm1(-alpha log1p(lambda T / alpha))``;
    1 - exp(-lambda T) when alpha is infinite. r(1) = 1 - Y.

    References
    ----------
    S. C. Seth and V. D. Agrawal, IEEE Trans. CAD 3(2), 123-126, 1984.
    """
    where = "negative_binomial_fallout"
    lam = as_nonnegative(mean_faults, "mean_faults", where)
    t = as_fraction(coverage, "coverage", where)
    a = as_positive(cluster_alpha, "cluster_alpha", where, allow_inf=True)
    lam, t, a = np.broadcast_arrays(lam, t, a)
    finite = np.isfinite(a)
    a_safe = np.where(finite, a, 1.0)
    log_pass = np.where(finite, -a_safe * np.log1p(lam * t / a_safe), -lam * t)
    return out(-np.expm1(log_pass))


def weighted_fault_coverage(detected: Any, critical_area: Any, defect_density: Any = 1.0) -> Any:
    """Realistic (weighted) fault coverage: each fault weighted by its likelihood of occurring.

    Parameters
    ----------
    detected : array_like of bool
        Whether the test detects each fault; the last axis runs over faults.
    critical_area : array_like
        Critical area of each fault [cm^2], >= 0; broadcast against ``detected``.
    defect_density : array_like, default 1.0
        Density of the defects that cause each fault [defects/cm^2], >= 0.

    Returns
    -------
    float or numpy.ndarray
        Weighted coverage Omega [1], in [0, 1], reduced over the last axis.

    Raises
    ------
    YieldkitValueError
        If a critical area or density is negative or not finite, or all weights are zero.

    Notes
    -----
    With weights w_i = A_i D_i (the expected number of occurrences of fault i per die),

        Omega = sum_{i detected} w_i / sum_i w_i.

    The yield is Y = exp(-sum_i w_i) and Williams-Brown with Omega in place of T is then exact
    for Poisson faults: DL = 1 - Y^(1 - Omega) = 1 - exp(-sum_{i undetected} w_i). With equal
    weights Omega is the ordinary (unweighted) fault coverage.

    References
    ----------
    J. T. de Sousa, F. M. Goncalves, J. P. Teixeira, C. Marzocca, F. Corsi and T. W. Williams,
    "Defect level evaluation in an IC design environment", IEEE Trans. CAD 15(10),
    1286-1293, 1996.

    Examples
    --------
    >>> float(weighted_fault_coverage([True, False], [3.0, 1.0]))
    0.75
    """
    where = "weighted_fault_coverage"
    det = np.asarray(detected)
    if det.dtype != bool:
        if not np.all(np.isin(det, (0, 1))):
            raise YieldkitValueError(
                f"The 'detected' argument of {where} must be boolean. Got {det.dtype} values instead."
            )
        det = det.astype(bool)
    area = as_nonnegative(critical_area, "critical_area", where)
    dens = as_nonnegative(defect_density, "defect_density", where)
    det, area, dens = np.broadcast_arrays(det, area, dens)
    if det.ndim == 0:
        det, area, dens = det[None], area[None], dens[None]
    w = area * dens
    total = w.sum(axis=-1)
    if np.any(total <= 0.0):
        raise YieldkitValueError(
            f"The 'critical_area' argument of {where} must give a positive total weight "
            f"(critical area x defect density). Got a total of {float(total.min())!r} instead."
        )
    return out(np.where(det, w, 0.0).sum(axis=-1) / total)


def _model_arrays(
    model: str, y: np.ndarray, t: np.ndarray, n0: Any, cluster_alpha: Any, where: str
) -> tuple[np.ndarray, np.ndarray]:
    """Defect level and fallout of ``model`` at yield ``y`` and coverage ``t``."""
    if model == "wb":
        return np.asarray(williams_brown(y, t)), np.asarray(williams_brown_fallout(y, t))
    if model == "asa":
        if n0 is None:
            raise YieldkitValueError(f"The 'n0' argument of {where} is required for model 'asa'. Got None instead.")
        return (
            np.asarray(agrawal_seth_agrawal(y, t, n0)),
            np.asarray(agrawal_seth_agrawal_fallout(y, t, n0)),
        )
    if cluster_alpha is None:
        raise YieldkitValueError(
            f"The 'cluster_alpha' argument of {where} is required for model 'nb'. Got None instead."
        )
    if np.any(y <= 0.0):
        raise YieldkitValueError(f"The 'yield_' argument of {where} must be > 0 for model 'nb'. Got 0.0 instead.")
    lam = mean_faults_from_yield(y, cluster_alpha)
    return (
        np.asarray(negative_binomial_defect_level(lam, t, cluster_alpha)),
        np.asarray(negative_binomial_fallout(lam, t, cluster_alpha)),
    )


def dppm_table(
    yield_: Any,
    coverage: Any,
    model: str | Sequence[str] = "wb",
    *,
    n0: float | None = None,
    cluster_alpha: float | None = None,
) -> pd.DataFrame:
    """Defect level and DPPM on a grid of yields x coverages, as a tidy table.

    Parameters
    ----------
    yield_ : array_like
        Defect-limited yields [1], each in [0, 1] (1-D).
    coverage : array_like
        Fault coverages [1], each in [0, 1] (1-D).
    model : {"wb", "asa", "nb"} or sequence of them, default "wb"
        Williams-Brown, Agrawal-Seth-Agrawal (needs ``n0``) or negative binomial (needs
        ``cluster_alpha``; the mean fault count is derived from the yield).
    n0 : float, optional
        Mean number of faults on a faulty die [1], >= 1, for ``"asa"``.
    cluster_alpha : float, optional
        Clustering parameter [1], > 0, for ``"nb"``.

    Returns
    -------
    pandas.DataFrame
        One row per (model, yield, coverage): ``model``, ``yield``, ``coverage``,
        ``defect_level`` [1], ``dppm`` [parts per million], ``fallout`` [1] (fraction of dies
        rejected by the test), ``n0`` and ``cluster_alpha`` (NaN where unused).

    Raises
    ------
    YieldkitValueError
        If a value is out of range, a model name is unknown, or a model's parameter is missing.

    Examples
    --------
    >>> t = dppm_table([0.5, 0.9], [0.9, 0.99])
    >>> t[["yield", "coverage", "dppm"]].round(0).to_dict("list")["dppm"]
    [66967.0, 6908.0, 10481.0, 1053.0]
    """
    where = "dppm_table"
    models = [model] if isinstance(model, str) else list(model)
    for m in models:
        check_choice(m, MODELS, name="model", where=where)
    y = np.atleast_1d(as_fraction(yield_, "yield_", where)).ravel()
    t = np.atleast_1d(as_fraction(coverage, "coverage", where)).ravel()
    yy, tt = np.meshgrid(y, t, indexing="ij")
    yy, tt = yy.ravel(), tt.ravel()
    frames = []
    for m in models:
        dl, fallout = _model_arrays(m, yy, tt, n0, cluster_alpha, where)
        frames.append(
            pd.DataFrame(
                {
                    "model": m,
                    "yield": yy,
                    "coverage": tt,
                    "defect_level": dl,
                    "dppm": 1e6 * dl,
                    "fallout": fallout,
                    "n0": float(n0) if (m == "asa" and n0 is not None) else np.nan,
                    "cluster_alpha": float(cluster_alpha) if (m == "nb" and cluster_alpha is not None) else np.nan,
                }
            )
        )
    return pd.concat(frames, ignore_index=True)
