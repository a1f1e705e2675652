"""Fallout curves: cumulative fail fraction against cumulative fault coverage, and their fit.

As test patterns are applied, the fault coverage T grows and so does the fraction of dies that
have failed. The shape of that curve tells how many faults a faulty die carries (n0 of
Agrawal-Seth-Agrawal, or the clustering of the negative binomial model) and, extrapolated to
T = 1, the yield; together they give the defect level of what ships at the final coverage.
"""

from __future__ import annotations

import logging
import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import optimize, special, stats

from .._deprecation import renamed_kwargs
from .._validation import as_fraction, check_conf_level, out
from ..errors import (
    BoundaryWarning,
    ConvergenceWarning,
    DataQualityWarning,
    NotFittedError,
    SchemaError,
    YieldkitValueError,
    check_choice,
)
from ..models._likelihood import numerical_hessian
from ..results import TableResult
from .models import (
    _defect_level_columns,
    agrawal_seth_agrawal,
    negative_binomial_defect_level,
    negative_binomial_fallout,
)

__all__ = ["FalloutCurve", "FalloutFit", "fallout_curve"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, repr=False)
class FalloutCurve(TableResult):
    """A fallout curve and the dies left out of it (from :func:`fallout_curve`).

    Attributes
    ----------
    table : DataFrame
        One row per test with coverage > 0, in test order: ``test_num``, ``coverage``,
        ``n_fail``, ``cum_fail``, ``n_tested``, ``fail_fraction``.
    n_systematic : int
        Dies left out as systematic failures (failing first at a zero-coverage test).
    n_dropped : int
        Dies dropped because their ``passed`` flag contradicts their first failing test.
    """

    table: pd.DataFrame
    n_systematic: int = 0
    n_dropped: int = 0

    def __repr__(self) -> str:
        n = int(self.table["n_tested"].iloc[0]) if len(self.table) else 0
        return (f"FalloutCurve(tests={len(self.table)}, n_tested={n}, n_systematic={self.n_systematic}, "
                f"n_dropped={self.n_dropped})")


@renamed_kwargs(first_fail_test="first_fail_col", test="test_col", coverage="coverage_col", passed="passed_col")
def fallout_curve(
    dies: pd.DataFrame,
    tests: pd.DataFrame,
    *,
    first_fail_col: str = "first_fail_test",
    test_col: str = "test_num",
    coverage_col: str = "coverage",
    passed_col: str = "passed",
) -> FalloutCurve:
    """Build the fallout curve (cumulative fail fraction against coverage) from a die table.

    Parameters
    ----------
    dies : pandas.DataFrame
        One row per tested die (use first-pass results: a retest hides the first failure).
        Column ``first_fail_col`` holds the number of the first test the die failed, missing
        for a die that passed every test (the STDF reader can supply it from PTR/FTR records).
        An optional boolean column ``passed_col`` is used to catch inconsistent rows.
    tests : pandas.DataFrame
        One row per test, **in the order the tests are applied**: column ``test_col`` (the test
        number) and column ``coverage_col``, the cumulative fault coverage [1] reached after that
        test, non-decreasing and in [0, 1]. Tests with coverage 0 (continuity, parametric
        screens) are treated as catching systematic failures: dies failing first there are
        left out of the curve (see Notes).
    first_fail_col, test_col, coverage_col, passed_col : str
        Column names (default ``first_fail_test``, ``test_num``, ``coverage``, ``passed``).

    Returns
    -------
    FalloutCurve
        ``.table``: one row per test with coverage > 0, in test order: ``test_num``,
        ``coverage``, ``n_fail`` (dies failing first at this test), ``cum_fail``, ``n_tested``
        (dies in the curve) and ``fail_fraction`` (cum_fail / n_tested); ``.n_systematic``
        counts the dies left out as systematic failures, ``.n_dropped`` the inconsistent rows.

    Raises
    ------
    SchemaError
        If a column is missing.
    YieldkitValueError
        If coverages are outside [0, 1] or decrease, test numbers repeat, a die's first
        failing test is not in ``tests``, or no die is left.

    Warns
    -----
    DataQualityWarning
        If dies are marked failed without a first failing test (or passed with one); they are
        dropped.

    Notes
    -----
    Systematic (non-defect) failures are assumed fully detected whatever the fault coverage,
    the convention of :func:`~yieldkit.quality.defect_level`. They are removed so that the
    curve describes the defect-limited population, for which r(0) = 0.

    Examples
    --------
    >>> dies = pd.DataFrame({"first_fail_test": [1, 2, None, None, 2, None]})
    >>> tests = pd.DataFrame({"test_num": [1, 2], "coverage": [0.5, 0.9]})
    >>> fallout_curve(dies, tests).table[["coverage", "cum_fail", "fail_fraction"]].to_dict("list")
    {'coverage': [0.5, 0.9], 'cum_fail': [1, 3], 'fail_fraction': [0.16666666666666666, 0.5]}
    """
    where = "fallout_curve"
    for frame, cols, label in ((dies, (first_fail_col,), "dies"), (tests, (test_col, coverage_col), "tests")):
        missing = [c for c in cols if c not in frame.columns]
        if missing:
            raise SchemaError(
                f"The {label!r} table of {where} lacks column(s) {missing}. Found {list(frame.columns)}.",
                column=missing[0],
            )
    cov = as_fraction(tests[coverage_col].to_numpy(dtype=np.float64), "coverage", where)
    if np.any(np.diff(cov) < 0):
        raise YieldkitValueError(
            f"The 'coverage' column of the tests table of {where} must be non-decreasing in test order. "
            f"Got {cov.tolist()!r} instead."
        )
    ids = tests[test_col]
    if ids.duplicated().any():
        raise YieldkitValueError(
            f"The 'test' column of the tests table of {where} must not repeat. "
            f"Got {ids[ids.duplicated()].tolist()!r} repeated instead."
        )
    ff = dies[first_fail_col]
    has_fail = ff.notna().to_numpy()
    n_dropped = 0
    keep = np.ones(len(dies), dtype=bool)
    if passed_col in dies.columns:
        ok = dies[passed_col].astype("boolean").fillna(True).to_numpy(dtype=bool)
        bad = (~ok & ~has_fail) | (ok & has_fail)
        if bad.any():
            n_dropped = int(bad.sum())
            warnings.warn(
                f"{n_dropped} die(s) have a {passed_col!r} flag that contradicts {first_fail_col!r}; they are dropped.",
                DataQualityWarning,
                stacklevel=2,
            )
            keep &= ~bad
    position = {v: i for i, v in enumerate(ids.tolist())}
    failed_ids = ff[keep & has_fail]
    unknown = sorted({v for v in failed_ids.tolist() if v not in position}, key=str)
    if unknown:
        raise YieldkitValueError(
            f"The {first_fail_col!r} column of {where} names tests absent from the tests table. "
            f"Got {unknown[:10]!r} instead."
        )
    idx = np.array([position[v] for v in failed_ids.tolist()], dtype=np.int64)
    counts = np.bincount(idx, minlength=len(cov))
    screen = cov <= 0.0
    n_systematic = int(counts[screen].sum())
    n_tested = int(keep.sum()) - n_systematic
    if n_tested <= 0:
        raise YieldkitValueError(f"The 'dies' table of {where} must leave at least one die in the curve. Got 0 instead.")
    if n_systematic:
        log.info("%d die(s) failed zero-coverage tests first and are left out as systematic failures.", n_systematic)
    counts = counts[~screen]
    cum = np.cumsum(counts)
    table = pd.DataFrame(
        {
            "test_num": ids.to_numpy()[~screen],
            "coverage": cov[~screen],
            "n_fail": counts,
            "cum_fail": cum,
            "n_tested": n_tested,
            "fail_fraction": cum / n_tested,
        }
    )
    return FalloutCurve(table, n_systematic=n_systematic, n_dropped=n_dropped)


class FalloutFit:
    """Fit a defect-level model to a fallout curve and predict the DPPM at the final coverage.

    Parameters
    ----------
    model : {"asa", "nb"}, default "asa"
        ``"asa"``: Agrawal-Seth-Agrawal, parameters yield Y and n0 (mean faults on a faulty
        die). ``"nb"``: clustered faults, parameters mean_faults lambda and cluster_alpha (the
        yield is derived, Y = (1 + lambda / alpha)^(-alpha)).
    conf_level : float, default 0.95
        Two-sided confidence level of the intervals.

    Attributes
    ----------
    params_ : pandas.Series
        ``yield``, ``n0`` (asa) or ``mean_faults``, ``cluster_alpha`` (nb).
    cov_ : pandas.DataFrame
        Covariance of the free parameters, natural scale (NaN without ``n_tested``).
    yield_, n0_, mean_faults_, cluster_alpha_ : float
        The estimates (``n0_`` NaN for nb; ``mean_faults_`` and ``cluster_alpha_`` NaN for asa).
    final_coverage_ : float
        Coverage of the last point of the curve [1].
    dppm_ : float
        Predicted DPPM at the final coverage.
    loglik_ : float
        Multinomial log-likelihood at the estimate (with ``n_tested`` counts).
    n_tested_ : int or None
        Number of dies behind the curve.

    Notes
    -----
    With a cumulative fallout r(T) and points (T_k, F_k), the dies failing first between
    T_(k-1) and T_k are multinomial with probabilities r(T_k) - r(T_(k-1)) (T_0 = 0, r(0) = 0),
    the dies passing everything with 1 - r(T_K). The estimates maximise that likelihood on
    unbounded scales (logit Y, log(n0 - 1); log lambda, log alpha); the covariance is the
    inverse observed information from n_tested dies, mapped to the natural scale by the delta
    method, and intervals are formed on the unbounded scales. n0 = 1 and cluster_alpha = inf
    are boundaries: an estimate there is refitted with that value fixed, with a
    BoundaryWarning and NaN standard error. The defect-level interval is the delta method on
    logit DL.

    References
    ----------
    S. C. Seth and V. D. Agrawal, "Forecasting reject rate of tested LSI chips", IEEE Electron
    Device Letters EDL-2(11), 286-287, 1981. V. D. Agrawal, S. C. Seth and P. Agrawal, IEEE J.
    Solid-State Circuits SC-17(1), 57-61, 1982. K. Chakraborty and V. D. Agrawal, "Data-driven
    DPPM estimation and adaptive fault coverage calibration", J. Electronic Testing, 2012.
    doi:10.1007/s10836-012-5332-1

    Examples
    --------
    >>> from yieldkit.quality import agrawal_seth_agrawal_fallout
    >>> t = np.array([0.2, 0.4, 0.6, 0.8, 0.95])
    >>> curve = pd.DataFrame({"coverage": t, "fail_fraction": agrawal_seth_agrawal_fallout(0.7, t, 3.0)})
    >>> fit = FalloutFit("asa").fit(curve, n_tested=10000)
    >>> round(fit.yield_, 4), round(fit.n0_, 3)
    (0.7, 3.0)
    """

    _PARAMS = {"asa": ("yield", "n0"), "nb": ("mean_faults", "cluster_alpha")}

    def __init__(self, model: str = "asa", conf_level: float = 0.95) -> None:
        self.model = model
        self.conf_level = conf_level

    def __repr__(self) -> str:
        if not hasattr(self, "params_"):
            return f"FalloutFit(model={self.model!r})"
        body = ", ".join(f"{k}={v:.4g}" for k, v in self.params_.items())
        return f"FalloutFit(model={self.model!r}, {body}, dppm={self.dppm_:.4g})"

    # -- model pieces on the unbounded scale ---------------------------------------------
    def _natural(self, theta: np.ndarray) -> tuple[float, float]:
        if self.model == "asa":
            return float(special.expit(theta[0])), 1.0 + math.exp(theta[1]) if np.isfinite(theta[1]) else 1.0
        return math.exp(theta[0]), math.exp(theta[1]) if np.isfinite(theta[1]) else math.inf

    def _fallout(self, theta: np.ndarray, t: Any) -> np.ndarray:
        # unvalidated forms of agrawal_seth_agrawal_fallout / negative_binomial_fallout (hot loop)
        p1, p2 = self._natural(theta)
        t = np.asarray(t, dtype=np.float64)
        with np.errstate(divide="ignore"):
            if self.model == "asa":
                return (1.0 - p1) * -np.expm1(np.log1p(-t) - (p2 - 1.0) * t)
            if math.isinf(p2):
                return -np.expm1(-p1 * t)
            return -np.expm1(-p2 * np.log1p(p1 * t / p2))

    def _dl(self, theta: np.ndarray, t: Any) -> np.ndarray:
        p1, p2 = self._natural(theta)
        if self.model == "asa":
            return np.asarray(agrawal_seth_agrawal(p1, t, p2))
        return np.asarray(negative_binomial_defect_level(p1, t, p2))

    def _nll(self, theta: np.ndarray) -> float:
        r = np.concatenate(([0.0], self._fallout(theta, self._t)))
        p = np.append(np.diff(r), 1.0 - r[-1])
        w = self._w
        with np.errstate(divide="ignore"):
            terms = np.where(w > 0, w * np.log(np.maximum(p, 1e-300)), 0.0)
        return -float(terms.sum())

    # -- fitting ---------------------------------------------------------------------------
    @renamed_kwargs(coverage="coverage_col", fail_fraction="fail_fraction_col")
    def fit(
        self,
        curve: FalloutCurve | pd.DataFrame,
        *,
        coverage_col: str = "coverage",
        fail_fraction_col: str = "fail_fraction",
        n_tested: int | None = None,
    ) -> FalloutFit:
        """Fit the model to a fallout curve.

        Parameters
        ----------
        curve : FalloutCurve or pandas.DataFrame
            Points of the curve, e.g. from :func:`fallout_curve` (or its table): cumulative coverage [1]
            (strictly increasing, in (0, 1]) and cumulative fail fraction [1] (non-decreasing,
            in [0, 1]).
        coverage_col, fail_fraction_col : str
            Column names.
        n_tested : int, optional
            Number of dies behind the curve; defaults to the ``n_tested`` column when present.
            Without it the estimates are still computed but ``cov_`` and intervals are NaN.

        Returns
        -------
        FalloutFit
            ``self``, fitted.

        Raises
        ------
        SchemaError
            If a column is missing.
        YieldkitValueError
            If the model name, the coverages, the fractions or ``n_tested`` are invalid.
        """
        where = "FalloutFit.fit"
        if isinstance(curve, FalloutCurve):
            curve = curve.table
        check_choice(self.model, tuple(self._PARAMS), name="model", where="FalloutFit")
        level = check_conf_level(self.conf_level, "FalloutFit")
        missing = [c for c in (coverage_col, fail_fraction_col) if c not in curve.columns]
        if missing:
            raise SchemaError(
                f"The 'curve' table of {where} lacks column(s) {missing}. Found {list(curve.columns)}.",
                column=missing[0],
            )
        t = as_fraction(curve[coverage_col].to_numpy(dtype=np.float64), "coverage", where)
        f = as_fraction(curve[fail_fraction_col].to_numpy(dtype=np.float64), "fail_fraction", where)
        if t.size < 2 or np.any(t <= 0.0) or np.any(np.diff(t) <= 0.0):
            raise YieldkitValueError(
                f"The 'coverage' argument of {where} must hold at least two strictly increasing values in (0, 1]. "
                f"Got {t.tolist()!r} instead."
            )
        if np.any(np.diff(f) < 0.0):
            raise YieldkitValueError(
                f"The 'fail_fraction' argument of {where} must be non-decreasing. Got {f.tolist()!r} instead."
            )
        if n_tested is None and "n_tested" in curve.columns:
            n_tested = int(curve["n_tested"].iloc[0])
        if n_tested is not None and not (int(n_tested) > 0):
            raise YieldkitValueError(f"The 'n_tested' argument of {where} must be > 0. Got {n_tested!r} instead.")
        self._t = t
        self._w = np.append(np.diff(np.concatenate(([0.0], f))), 1.0 - f[-1])
        theta, free = self._optimise(f)
        n = None if n_tested is None else int(n_tested)
        cov_theta = np.full((2, 2), np.nan)
        if n is not None:
            idx = np.flatnonzero(free)

            def sub(x: np.ndarray) -> float:
                full = theta.copy()
                full[idx] = x
                return self._nll(full)

            hess = numerical_hessian(sub, theta[idx], relative=False)
            try:
                inv = np.linalg.inv(hess) / n
                if not np.all(np.isfinite(inv)) or np.any(np.diag(inv) <= 0):
                    raise np.linalg.LinAlgError("not positive definite")
                cov_theta[np.ix_(idx, idx)] = inv
            except np.linalg.LinAlgError:
                warnings.warn(
                    "The information matrix of the fallout fit is singular; intervals are NaN.",
                    ConvergenceWarning,
                    stacklevel=2,
                )
        self.theta_ = theta
        self.cov_theta_ = cov_theta
        p1, p2 = self._natural(theta)
        names = self._PARAMS[self.model]
        jac = self._jacobian(theta)
        cov_nat = jac @ cov_theta @ jac.T
        self.params_ = pd.Series([p1, p2], index=list(names), dtype=float)
        self.cov_ = pd.DataFrame(cov_nat, index=list(names), columns=list(names))
        if self.model == "asa":
            self.yield_, self.n0_ = p1, p2
            self.mean_faults_ = self.cluster_alpha_ = math.nan
        else:
            self.mean_faults_, self.cluster_alpha_ = p1, p2
            self.n0_ = math.nan
            self.yield_ = float(1.0 - negative_binomial_fallout(p1, 1.0, p2))
        self.n_tested_ = n
        self.final_coverage_ = float(t[-1])
        self.loglik_ = -self._nll(theta) * (n if n is not None else 1.0)
        self.coverage_ = t
        self.fail_fraction_ = f
        self._level = level
        self.dppm_ = float(1e6 * self._dl(theta, self.final_coverage_))
        return self

    def _optimise(self, f: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Maximum likelihood on the unbounded scale; the shape parameter may sit on its boundary.

        The boundary model (n0 = 1, or cluster_alpha = inf) is fitted first. The estimate is on
        the boundary when moving the shape parameter inside does not lower the negative
        log-likelihood at the boundary fit (the profile score points outward; by the envelope
        theorem the partial derivative is the profile one). Otherwise the full model is fitted
        from several starts.
        """
        t = self._t
        f_last = min(max(float(f[-1]), 1e-9), 0.999)
        boundary = -math.inf if self.model == "asa" else math.inf
        if self.model == "asa":
            first_bounds = (-30.0, 30.0)
            x_lo = special.logit(min(max(1.0 - f_last / t[-1], 1e-9), 1 - 1e-12))
            x_hi = special.logit(1.0 - f_last)
            inside = math.log(1e-6)  # n0 - 1 = 1e-6
        else:
            first_bounds = (-30.0, 10.0)
            x_lo = x_hi = math.log(-math.log1p(-f_last) / t[-1])
            inside = math.log(1e6)  # cluster_alpha = 1e6
        res1 = optimize.minimize_scalar(
            lambda x: self._nll(np.array([x, boundary])),
            bracket=(min(x_lo, x_hi) - 0.5, max(x_lo, x_hi) + 0.5),
            options={"xtol": 1e-12},
        )
        if not (first_bounds[0] < res1.x < first_bounds[1]):  # pragma: no cover - degenerate data
            res1 = optimize.minimize_scalar(lambda x: self._nll(np.array([x, boundary])), bounds=first_bounds,
                                            method="bounded", options={"xatol": 1e-12})
        theta_b = np.array([res1.x, boundary])
        nll_b = self._nll(theta_b)
        if self._nll(np.array([res1.x, inside])) >= nll_b:
            what = "n0 = 1 (one fault per faulty die)" if self.model == "asa" else "cluster_alpha = inf (no clustering)"
            warnings.warn(
                f"The fallout fit puts {what} on its boundary; it is held there and has no standard error.",
                BoundaryWarning,
                stacklevel=3,
            )
            return theta_b, np.array([True, False])
        shapes = (math.log(0.5), math.log(2.0), math.log(10.0)) if self.model == "asa" else (
            math.log(0.5), math.log(2.0), math.log(20.0))
        best = None
        for s2 in shapes:
            res = optimize.minimize(self._nll, np.array([res1.x, s2]), method="BFGS", options={"gtol": 1e-9})
            if best is None or res.fun < best.fun:
                best = res
        assert best is not None
        if best.fun > nll_b:  # pragma: no cover - the boundary fit is better: keep it
            return theta_b, np.array([True, False])
        if not best.success and np.linalg.norm(best.jac) > 1e-5:
            warnings.warn(f"The fallout fit may not have converged: {best.message}", ConvergenceWarning, stacklevel=3)
        return np.asarray(best.x, dtype=np.float64), np.array([True, True])

    def _jacobian(self, theta: np.ndarray) -> np.ndarray:
        """d(natural) / d(theta), diagonal."""
        if self.model == "asa":
            y = special.expit(theta[0])
            return np.diag([y * (1.0 - y), math.exp(theta[1]) if np.isfinite(theta[1]) else 0.0])
        return np.diag([math.exp(theta[0]), math.exp(theta[1]) if np.isfinite(theta[1]) else 0.0])

    def _check_fitted(self) -> None:
        if not hasattr(self, "params_"):
            raise NotFittedError("This FalloutFit instance is not fitted yet. Call 'fit' first.")

    # -- predictions -----------------------------------------------------------------------
    def predict_fallout(self, coverage: Any) -> Any:
        """Fitted fallout r(T), the fraction of dies rejected at coverage T [1]."""
        self._check_fitted()
        t = as_fraction(coverage, "coverage", "FalloutFit.predict_fallout")
        return out(self._fallout(self.theta_, t))

    def _dl_logit_var(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Defect level at ``t`` and the delta-method variance of its logit."""
        dl = self._dl(self.theta_, t)
        free = np.isfinite(self.theta_)
        grad = np.zeros((t.size, 2))
        with np.errstate(divide="ignore", invalid="ignore"):
            for j in np.flatnonzero(free):
                h = 1e-6 * max(1.0, abs(self.theta_[j]))
                e = np.zeros(2)
                e[j] = h
                up = special.logit(self._dl(self.theta_ + e, t))
                down = special.logit(self._dl(self.theta_ - e, t))
                grad[:, j] = (up - down) / (2.0 * h)
        # a parameter held on its boundary is fixed: zero rows and columns
        cov = np.where(np.outer(free, free), self.cov_theta_, 0.0)
        var = np.einsum("ni,ij,nj->n", grad, cov, grad)
        return dl, var

    def defect_level(self, coverage: Any = None) -> pd.DataFrame:
        """Predicted defect level and DPPM with delta-method intervals on the logit scale.

        Parameters
        ----------
        coverage : array_like, optional
            Fault coverage [1], in [0, 1]; defaults to the final coverage of the curve.

        Returns
        -------
        pandas.DataFrame
            ``coverage``, ``defect_level``, ``ci_lower``, ``ci_upper``, ``dppm``,
            ``dppm_lower``, ``dppm_upper`` (NaN bounds without ``n_tested``).
        """
        self._check_fitted()
        if coverage is None:
            coverage = self.final_coverage_
        t = np.atleast_1d(as_fraction(coverage, "coverage", "FalloutFit.defect_level")).ravel()
        dl, var = self._dl_logit_var(t)
        z = stats.norm.ppf(0.5 + self._level / 2.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            centre = special.logit(dl)
            half = z * np.sqrt(var)
            lower = np.where(dl <= 0.0, 0.0, special.expit(centre - half))
            upper = np.where(dl <= 0.0, 0.0, special.expit(centre + half))
        return pd.DataFrame({"coverage": t, **_defect_level_columns(dl, lower, upper)})

    def _natural_j(self, j: int, x: float) -> float:
        if not np.isfinite(x):
            return math.nan
        if j == 0:
            return float(special.expit(x)) if self.model == "asa" else math.exp(x)
        return 1.0 + math.exp(x) if self.model == "asa" else math.exp(x)

    def summary(self) -> pd.DataFrame:
        """Estimates with standard errors and intervals.

        Returns
        -------
        pandas.DataFrame
            Indexed by parameter (the model's two, then ``dppm`` at the final coverage):
            ``estimate, std_err, ci_lower, ci_upper, unit``. Intervals are formed on the
            unbounded scales (logit, log) and mapped back.
        """
        self._check_fitted()
        z = stats.norm.ppf(0.5 + self._level / 2.0)
        units = {"yield": "-", "n0": "faults/faulty die", "mean_faults": "faults/die", "cluster_alpha": "-"}
        rows = []
        for j, name in enumerate(self._PARAMS[self.model]):
            var_nat = float(self.cov_.to_numpy()[j, j])
            se = math.sqrt(var_nat) if var_nat >= 0 else math.nan
            se_t = math.sqrt(self.cov_theta_[j, j]) if self.cov_theta_[j, j] >= 0 else math.nan
            lo = self._natural_j(j, self.theta_[j] - z * se_t)
            hi = self._natural_j(j, self.theta_[j] + z * se_t)
            rows.append((name, float(self.params_[name]), se, lo, hi, units[name]))
        t = np.array([self.final_coverage_])
        dl, var = self._dl_logit_var(t)
        res = self.defect_level().iloc[0]
        se_dppm = float(1e6 * dl[0] * (1.0 - dl[0]) * np.sqrt(var[0]))
        rows.append(("dppm", res["dppm"], se_dppm, res["dppm_lower"], res["dppm_upper"], "parts per million"))
        table = pd.DataFrame(rows, columns=["parameter", "estimate", "std_err", "ci_lower", "ci_upper", "unit"])
        return table.set_index("parameter")
