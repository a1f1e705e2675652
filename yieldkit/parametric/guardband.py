"""Test limits tightened for measurement uncertainty (guard-banding), with their risks.

A measured value is the true value plus measurement error. Testing at the spec limits lets
parts just outside them pass (escapes, consumer's risk); :func:`guardband` moves the test
limits inwards by k u (or by the k of a specific false-accept probability) and gives, for a
normal process, the yield lost to the band, the false rejects and the escapes, in closed form.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import special, stats

from .._validation import as_nonnegative
from ..errors import DataQualityWarning, YieldkitValueError
from ..results import TableResult
from ._table import require

__all__ = ["GuardbandResult", "bivariate_normal_cdf", "guardband", "guardband_risks"]

_BIG = 38.0  # |z| beyond which Phi is 0 or 1 in double precision


def bivariate_normal_cdf(h: Any, k: Any, rho: Any) -> np.ndarray:
    """P(Z1 <= h, Z2 <= k) for standard normals with correlation ``rho``, vectorised.

    Notes
    -----
    Owen's (1956) closed form through his T function:
    Phi2(h, k; rho) = [Phi(h) + Phi(k)] / 2 - T(h, a_h) - T(k, a_k) - beta, with
    a_h = (k - rho h) / (h sqrt(1 - rho^2)), a_k likewise, and beta = 1/2 when h k < 0 (or
    h k = 0 with h + k < 0), else 0. Valid for |rho| < 1; infinite limits are allowed.

    References
    ----------
    Owen, D. B. (1956). Tables for computing bivariate normal probabilities. Ann. Math.
    Statist. 27(4), 1075-1090. https://doi.org/10.1214/aoms/1177728074

    Examples
    --------
    >>> round(float(bivariate_normal_cdf(0.0, 0.0, 0.5)), 12)  # 1/4 + arcsin(rho) / (2 pi)
    0.333333333333
    """
    h = np.clip(np.asarray(h, dtype=float), -_BIG, _BIG)
    k = np.clip(np.asarray(k, dtype=float), -_BIG, _BIG)
    rho = np.asarray(rho, dtype=float)
    tiny = 1e-300
    hh = np.where(h == 0, tiny, h)
    kk = np.where(k == 0, tiny, k)
    s = np.sqrt(1.0 - rho**2)
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        ah = (k - rho * h) / (hh * s)
        ak = (h - rho * k) / (kk * s)
    beta = np.where((h * k < 0) | ((h * k == 0) & (h + k < 0)), 0.5, 0.0)
    out = 0.5 * special.ndtr(h) + 0.5 * special.ndtr(k) - special.owens_t(h, ah) - special.owens_t(k, ak) - beta
    # at the origin the limit depends on the direction: Sheppard's 1/4 + arcsin(rho) / (2 pi)
    out = np.where((h == 0) & (k == 0), 0.25 + np.arcsin(rho) / (2 * np.pi), out)
    return np.clip(out, 0.0, 1.0)


def _rect(x1: Any, x2: Any, m1: Any, m2: Any, mu: Any, sigma: Any, u: Any) -> np.ndarray:
    """P(x1 < X < x2, m1 < M < m2) with X ~ N(mu, sigma^2) and M = X + N(0, u^2)."""
    sm = np.sqrt(sigma**2 + u**2)
    rho = sigma / sm
    a1, a2 = (x1 - mu) / sigma, (x2 - mu) / sigma
    b1, b2 = (m1 - mu) / sm, (m2 - mu) / sm
    F = bivariate_normal_cdf
    return np.clip(F(a2, b2, rho) - F(a1, b2, rho) - F(a2, b1, rho) + F(a1, b1, rho), 0.0, 1.0)


def guardband_risks(lo_limit: Any, hi_limit: Any, test_lo: Any, test_hi: Any, mean: Any, sigma: Any,
                    u: Any) -> dict[str, np.ndarray]:
    """Probabilities of a normal process tested with measurement error, per part.

    Parameters
    ----------
    lo_limit, hi_limit : array_like
        Spec limits (NaN or -/+inf: none).
    test_lo, test_hi : array_like
        Test limits applied to the measured value.
    mean, sigma : array_like
        The true process [same unit as the limits]; sigma > 0.
    u : array_like
        Standard measurement uncertainty (the sigma of the error), > 0.

    Returns
    -------
    dict of ndarray
        ``in_spec`` P(X in spec), ``yield_spec`` P(M in spec): the yield tested at the spec
        limits, ``yield_test`` P(M in the test limits), ``yield_loss`` = yield_spec -
        yield_test (lost to the band), ``false_reject`` P(X in spec, M outside the test limits),
        ``escape`` P(X outside spec, M inside the test limits) and ``escape_spec`` the same when
        testing at the spec limits.
    """
    lo = np.nan_to_num(np.asarray(lo_limit, dtype=float), nan=-np.inf)
    hi = np.nan_to_num(np.asarray(hi_limit, dtype=float), nan=np.inf)
    tlo = np.nan_to_num(np.asarray(test_lo, dtype=float), nan=-np.inf)
    thi = np.nan_to_num(np.asarray(test_hi, dtype=float), nan=np.inf)
    mu, s, u = (np.asarray(v, dtype=float) for v in (mean, sigma, u))
    sm = np.sqrt(s**2 + u**2)
    in_spec = special.ndtr((hi - mu) / s) - special.ndtr((lo - mu) / s)
    yield_spec = special.ndtr((hi - mu) / sm) - special.ndtr((lo - mu) / sm)
    yield_test = np.where(thi > tlo, special.ndtr((thi - mu) / sm) - special.ndtr((tlo - mu) / sm), 0.0)
    both = _rect(lo, hi, tlo, thi, mu, s, u)
    both_spec = _rect(lo, hi, lo, hi, mu, s, u)
    return {
        "in_spec": in_spec, "yield_spec": yield_spec, "yield_test": yield_test,
        "yield_loss": yield_spec - yield_test, "false_reject": np.clip(in_spec - both, 0.0, 1.0),
        "escape": np.clip(yield_test - both, 0.0, 1.0), "escape_spec": np.clip(yield_spec - both_spec, 0.0, 1.0),
    }


@dataclass(frozen=True, repr=False)
class GuardbandResult(TableResult):
    """Result of :func:`guardband`.

    Attributes
    ----------
    table : DataFrame
        The input rows' keys, ``lo_limit``, ``hi_limit``, ``mean``, ``sigma_process``, ``u``,
        ``guard`` (k u), ``test_lo``, ``test_hi`` and the probabilities of
        :func:`guardband_risks`, with ``escape_ppm`` and ``escape_spec_ppm``.
    k : float
        Guard-band multiplier of u.
    """

    table: pd.DataFrame
    k: float

    def __repr__(self) -> str:
        return f"GuardbandResult({len(self.table)} tests, k={self.k:.4g})"


def guardband(
    limits: pd.DataFrame,
    *,
    u: Any,
    k: float | None = None,
    pfa: float | None = None,
    sigma: str = "sigma_overall",
    measured: bool = True,
) -> GuardbandResult:
    """Tighten test limits by k u and give the yield loss and escapes of a normal process.

    Parameters
    ----------
    limits : DataFrame
        One row per test with ``lo_limit``, ``hi_limit`` (NaN: none), ``mean`` and the
        ``sigma`` column, e.g. the table of :func:`yieldkit.parametric.capability`.
    u : float, array_like or str
        Standard measurement uncertainty (gauge repeatability and reproducibility sigma) per
        test, or the name of a column holding it [unit of the test], > 0.
    k : float, optional
        Guard band in multiples of ``u`` (default 2: a 95 % expanded uncertainty).
    pfa : float, optional
        Instead of ``k``: the probability that a part measured at a test limit is out of spec
        (specific false-accept risk), so that k = z_{1 - pfa}.
    sigma : str
        Column of the process sigma.
    measured : bool
        Whether ``sigma`` was measured through the same gauge (then the true process sigma is
        sqrt(sigma^2 - u^2)).

    Returns
    -------
    GuardbandResult

    Raises
    ------
    SchemaError
        When a needed column is missing.
    YieldkitValueError
        Both ``k`` and ``pfa`` given, ``k`` < 0, ``pfa`` outside (0, 0.5], ``u`` not > 0.

    Warns
    -----
    DataQualityWarning
        When the guard band closes the test window, or u is not smaller than the measured sigma.

    Notes
    -----
    With X ~ N(mean, sigma_p^2) the true value and M = X + e, e ~ N(0, u^2), the measured value,
    the test limits are [LSL + k u, USL - k u]. Escapes P(X outside spec, M inside the test
    limits) and false rejects are bivariate normal rectangle probabilities (correlation
    sigma_p / sqrt(sigma_p^2 + u^2)), computed in closed form with Owen's T function
    (:func:`bivariate_normal_cdf`). The specific-risk guard band follows ASME B89.7.3.1 / ISO
    14253-1: a part measured at the test limit is out of spec with probability Phi(-k).

    References
    ----------
    ASME B89.7.3.1-2001, Guidelines for decision rules: considering measurement uncertainty in
    determining conformance to specifications.
    Owen, D. B. (1956). Ann. Math. Statist. 27(4), 1075-1090. https://doi.org/10.1214/aoms/1177728074

    Examples
    --------
    >>> import pandas as pd
    >>> lim = pd.DataFrame({"test_num": [1], "lo_limit": [0.9], "hi_limit": [1.1], "mean": [1.0],
    ...                     "sigma_overall": [0.04]})
    >>> g = guardband(lim, u=0.01, k=2)
    >>> g.table[["test_lo", "test_hi"]].round(3).to_numpy().tolist()
    [[0.92, 1.08]]
    >>> bool(g.table["escape"].iloc[0] < g.table["escape_spec"].iloc[0])
    True
    """
    where = "guardband"
    require(limits.columns, ["lo_limit", "hi_limit", "mean", sigma], where, name="limits")
    if k is not None and pfa is not None:
        raise YieldkitValueError("Give one of the 'k' and 'pfa' arguments of guardband, not both.")
    if pfa is not None:
        p = float(pfa)
        if not 0.0 < p <= 0.5:
            raise YieldkitValueError(f"The 'pfa' argument of guardband must be in (0, 0.5]. Got {pfa!r} instead.")
        kk = float(stats.norm.isf(p))
    else:
        kk = float(as_nonnegative(2.0 if k is None else k, "k", where))
    uu = limits[u].to_numpy(np.float64) if isinstance(u, str) else np.broadcast_to(
        np.asarray(u, dtype=float), (len(limits),)).copy()
    if isinstance(u, str) and u not in limits.columns:
        require(limits.columns, [u], where, name="limits")
    if np.any(~(uu > 0)):
        bad = uu[~(uu > 0)][0]
        raise YieldkitValueError(f"The 'u' argument of guardband must be > 0. Got {bad!r} instead.")
    lo = limits["lo_limit"].to_numpy(np.float64)
    hi = limits["hi_limit"].to_numpy(np.float64)
    mean = limits["mean"].to_numpy(np.float64)
    s = limits[sigma].to_numpy(np.float64)
    if measured:
        with np.errstate(invalid="ignore"):
            sp = np.sqrt(s**2 - uu**2)
        bad = ~(s > uu)
        if bad.any():
            warnings.warn(f"guardband: {int(bad.sum())} test(s) have u >= their measured sigma: the gauge cannot "
                          "see the process; their risks are NaN", DataQualityWarning, stacklevel=2)
        sp = np.where(bad, np.nan, sp)
    else:
        sp = np.where(s > 0, s, np.nan)
    guard = kk * uu
    tlo = lo + guard
    thi = hi - guard
    closed = (tlo >= thi) & np.isfinite(tlo) & np.isfinite(thi)
    if closed.any():
        warnings.warn(f"guardband: the guard band closes the test window of {int(closed.sum())} test(s) "
                      "(2 k u >= USL - LSL): every part would fail", DataQualityWarning, stacklevel=2)
    risks = guardband_risks(lo, hi, tlo, thi, mean, sp, uu)
    keys = [c for c in limits.columns if c in ("lot_id", "wafer_id", "test_num", "pin", "test_name", "units")]
    table = limits[keys].reset_index(drop=True)
    table = table.assign(lo_limit=lo, hi_limit=hi, mean=mean, sigma_process=sp, u=uu, guard=guard, test_lo=tlo,
                         test_hi=thi, **risks)
    table["escape_ppm"] = 1e6 * table["escape"]
    table["escape_spec_ppm"] = 1e6 * table["escape_spec"]
    return GuardbandResult(table=table, k=kk)
