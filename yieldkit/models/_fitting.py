"""Estimation engines behind :class:`~yieldkit.models.base.YieldModel`: counts and binomial cells.

Parameters are optimised on an unconstrained scale (``log d0``, ``log cluster_alpha``,
``logit y0``); covariances are reported on the natural scale by the delta method.
"""

from __future__ import annotations

import functools
import math
import warnings
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import optimize, special, stats

from ..errors import BoundaryWarning, ConvergenceWarning, YieldkitValueError
from ._likelihood import (
    BinomialCells,
    CountCells,
    binomial_loglik,
    nb_fit,
    nb_loglik,
    nb_mean_hat,
    nb_profile_m,
    newton_minimize,
    numerical_hessian,
)

if TYPE_CHECKING:
    from .base import YieldModel

__all__ = ["bootstrap_params", "delta_yield_interval", "fit_binomial", "fit_counts", "garwood"]

_S_LO = -60.0  # log d0 below which a lower limit is reported as 0


@functools.lru_cache(maxsize=64)
def half_chi2(level: float) -> float:
    """Half the ``level`` quantile of chi-square with 1 degree of freedom (the profile-likelihood drop)."""
    return float(stats.chi2.ppf(level, 1)) / 2


@functools.lru_cache(maxsize=64)
def _z(level: float) -> float:
    """The two-sided normal quantile of confidence level ``level``."""
    return float(stats.norm.ppf(0.5 + level / 2))


def garwood(k: float, exposure: float, conf_level: float) -> tuple[float, float]:
    """Exact (Garwood) two-sided interval of a Poisson rate from ``k`` events in ``exposure``."""
    from ..intervals import garwood as _garwood

    lo, hi = _garwood(k, exposure, conf_level)
    return float(lo), float(hi)


# --------------------------------------------------------------------------- counts
def _ll_one(model: YieldModel, c: CountCells):
    """Log-likelihood of d0 for a model without a free shape parameter."""
    if model.negative_binomial_form:
        alpha, factor = model.fixed_cluster_alpha, model.mean_factor
        return lambda d0: nb_loglik(c, factor * d0, alpha)
    return lambda d0: float((c.w * model._count_log_pmf(c.k, c.area * d0, math.inf)).sum())


def _mle_one(model: YieldModel, c: CountCells) -> tuple[float, bool]:
    if c.total == 0:
        return 0.0, True
    if model.negative_binomial_form:
        return nb_mean_hat(c, model.fixed_cluster_alpha) / model.mean_factor, True
    ll = _ll_one(model, c)
    s0 = math.log(c.total / c.exposure)
    r = optimize.minimize_scalar(lambda s: -ll(math.exp(s)), bounds=(s0 - 4, s0 + 4), method="bounded",
                                 options={"xatol": 1e-11})
    return float(math.exp(r.x)), bool(r.success) and abs(r.x - s0) < 3.99


def _root_side(h, s_hat: float, direction: float, limit: float) -> float:
    """Root of the decreasing-away-from-``s_hat`` function ``h`` on one side; ``limit`` if none."""
    step, s = 0.5, s_hat
    for _ in range(60):
        s_new = s + direction * step
        if (direction < 0 and s_new < limit) or (direction > 0 and s_new > limit):
            if h(limit) > 0:
                return limit
            s_new = limit
        if h(s_new) < 0:
            a, b = sorted((s, s_new))
            return float(optimize.brentq(h, a, b, xtol=1e-12))
        s, step = s_new, step * 2
    return limit


def _profile_interval(ll, s_hat: float, ll_hat: float, q: float, s_hi: float = 40.0) -> tuple[float, float]:
    """Profile interval of ``exp(s)`` where ``ll(s)`` is the profile log-likelihood on the log scale."""
    def h(s):
        return ll(s) - (ll_hat - q)

    lo = _root_side(h, s_hat, -1.0, _S_LO)
    hi = _root_side(h, s_hat, +1.0, s_hi)
    return (0.0 if lo <= _S_LO else math.exp(lo)), (math.inf if hi >= s_hi else math.exp(hi))


def _inv_or_nan(H: np.ndarray, who: str) -> np.ndarray:
    try:
        cov = np.linalg.inv(H)
        if not np.all(np.isfinite(cov)) or np.any(np.diag(cov) <= 0):
            raise np.linalg.LinAlgError
        return cov
    except np.linalg.LinAlgError:
        warnings.warn(f"{who}: the information matrix is singular; standard errors are NaN",
                      ConvergenceWarning, stacklevel=4)
        return np.full(H.shape, np.nan)


def _resolve_ci(model: YieldModel, route: str) -> str:
    m = model.ci_method
    if m == "auto":
        if route == "counts":
            return "exact" if model.poisson_form else "profile"
        return "bootstrap" if route == "window" else "wald"
    if m == "exact" and not (route == "counts" and model.poisson_form):
        raise YieldkitValueError(f"ci_method='exact' (Garwood) is for PoissonYield fitted to counts; "
                                 f"{type(model).__name__} by the {route} route needs 'profile', 'wald' or 'bootstrap'.")
    if m == "profile" and route != "counts":
        raise YieldkitValueError(f"ci_method='profile' is available for the counts route; the {route} route "
                                 "offers 'wald' or 'bootstrap'.")
    return m


def _counts_core(model: YieldModel, c: CountCells) -> dict[str, Any]:
    """Point estimates only (used by the fit and by each bootstrap replicate)."""
    if model._free_shape:
        f = nb_fit(c)
        return {"params": {"d0": f.m, "cluster_alpha": f.alpha}, "loglik": f.loglik,
                "converged": f.converged, "at_bound": f.at_bound}
    d0, ok = _mle_one(model, c)
    return {"params": {"d0": d0}, "loglik": _ll_one(model, c)(d0), "converged": ok, "at_bound": False}


def fit_counts(model: YieldModel, c: CountCells, *, with_ci: bool = True) -> dict[str, Any]:
    who = type(model).__name__
    res = _counts_core(model, c)
    level = float(model.conf_level)
    q = half_chi2(level)
    z = _z(level)
    d0 = res["params"]["d0"]
    ll_hat = res["loglik"]
    method = _resolve_ci(model, "counts")
    names = ["d0"] + (["cluster_alpha"] if model._free_shape else [])
    p = len(names)
    lo = np.zeros(p)
    hi = np.full(p, np.nan)
    cov_u = np.full((p, p), np.nan)
    alpha = res["params"].get("cluster_alpha", math.inf)
    if c.total == 0:
        warnings.warn(f"{who}: every count is zero; d0 = 0 with the exact upper limit", BoundaryWarning, stacklevel=4)
        hi[0] = _all_zero_upper(model, c, level)
        if model._free_shape:
            lo[1], hi[1] = 0.0, math.inf
        return {**res, "cov": np.full((p, p), np.nan), "cov_u": cov_u, "ci_lower": lo, "ci_upper": hi,
                "ci_method": "exact"}
    if model._free_shape and math.isinf(alpha):
        warnings.warn(f"{who}: the divisor-n variance of the counts does not exceed their mean; "
                      "cluster_alpha = inf (the Poisson fit)", BoundaryWarning, stacklevel=4)
    # observed information on the unconstrained scale
    if model._free_shape and math.isfinite(alpha):
        def negll(u):
            return -nb_loglik(c, math.exp(u[0]), math.exp(u[1]))
        cov_u = _inv_or_nan(numerical_hessian(negll, np.array([math.log(d0), math.log(alpha)])), who)
    else:
        ll1 = _ll_one(model, c) if not model._free_shape else (lambda d: nb_loglik(c, d, math.inf))
        h = numerical_hessian(lambda u: -ll1(math.exp(u[0])), np.array([math.log(d0)]))
        cov_u[0, 0] = _inv_or_nan(h, who)[0, 0]
    nat = np.array([d0, alpha][:p])
    cov = cov_u * np.outer(nat, nat)
    if method == "exact":
        lo[0], hi[0] = garwood(c.total, c.exposure, level)
    elif method == "wald":
        se = np.sqrt(np.diag(cov_u))
        lo, hi = nat * np.exp(-z * se), nat * np.exp(z * se)
        if model._free_shape and math.isinf(alpha):
            lo[1], hi[1] = _alpha_profile(c, math.inf, ll_hat, q)
    elif method == "profile":
        if model._free_shape:
            lo[0], hi[0] = _profile_interval(lambda s: nb_profile_m(c, math.exp(s)), math.log(d0), ll_hat, q)
            lo[1], hi[1] = _alpha_profile(c, alpha, ll_hat, q)
        else:
            ll1 = _ll_one(model, c)
            lo[0], hi[0] = _profile_interval(lambda s: ll1(math.exp(s)), math.log(d0), ll_hat, q)
    elif method == "bootstrap":
        return {**res, "cov": cov, "cov_u": cov_u, **_bootstrap_ci(model, c, names, level)}
    return {**res, "cov": cov, "cov_u": cov_u, "ci_lower": lo, "ci_upper": hi, "ci_method": method}


def _all_zero_upper(model: YieldModel, c: CountCells, level: float) -> float:
    """Exact upper limit of d0 from all-zero counts: ``P(all zero | d0) = (1 - level) / 2``.

    With every count zero the log-likelihood of any model is ``sum_cells w log P0(area d0)``
    (the model's own yield function; the negative binomial at its boundary ``cluster_alpha = inf``),
    which falls monotonically from 0 at ``d0 = 0``; its root in ``log d0`` is bracketed from the
    Poisson solution outwards.
    """
    target = math.log((1 - level) / 2)

    def h(s: float) -> float:
        lam = c.area * math.exp(s)
        return float((c.w * model._log_p0(lam, model.fixed_cluster_alpha)).sum()) - target

    s0 = math.log(-target / c.exposure)
    lo, hi = s0 - 1.0, s0 + 1.0
    while h(lo) <= 0:
        lo -= 2.0 * (s0 - lo)
    while h(hi) >= 0:
        hi += 2.0 * (hi - s0)
    return math.exp(optimize.brentq(h, lo, hi, xtol=1e-14, rtol=4 * np.finfo(float).eps))


def _alpha_profile(c: CountCells, alpha: float, ll_hat: float, q: float) -> tuple[float, float]:
    def llp(t: float) -> float:
        a = math.exp(t)
        return nb_loglik(c, nb_mean_hat(c, a), a)

    ll_inf = nb_loglik(c, nb_mean_hat(c, math.inf), math.inf)
    if math.isinf(alpha):
        # lower limit only: walk down from a large alpha until the profile drops by q
        lo = _root_side(lambda t: llp(t) - (ll_hat - q), 35.0, -1.0, -30.0)
        return (0.0 if lo <= -30.0 else math.exp(lo)), math.inf
    t_hat = math.log(alpha)
    lo = _root_side(lambda t: llp(t) - (ll_hat - q), t_hat, -1.0, -30.0)
    if ll_inf >= ll_hat - q:
        hi = math.inf
    else:
        ht = _root_side(lambda t: llp(t) - (ll_hat - q), t_hat, +1.0, 36.0)
        hi = math.inf if ht >= 36.0 else math.exp(ht)
    return (0.0 if lo <= -30.0 else math.exp(lo)), hi


# -------------------------------------------------------------------------- binomial
_BOUNDS = {"d0": (-25.0, 10.0), "cluster_alpha": (-8.0, 18.0), "y0": (-15.0, 25.0)}


def _to_nat(names: list[str], u: np.ndarray) -> dict[str, float]:
    out = {}
    for n, v in zip(names, u):
        out[n] = float(special.expit(v)) if n == "y0" else float(math.exp(v))
    return out


def _binomial_logy(model: YieldModel, cells: BinomialCells, par: dict[str, float]) -> np.ndarray:
    alpha = par.get("cluster_alpha", model.fixed_cluster_alpha)
    y0 = par.get("y0", 1.0)
    return math.log(y0) + model._log_p0(cells.exposure * par["d0"], alpha)


def _start(model: YieldModel, cells: BinomialCells, names: list[str]) -> np.ndarray:
    y = (cells.good + 0.5) / (cells.tested + 1.0)
    wts = cells.tested * y / (1 - y)
    X = np.column_stack([np.ones_like(cells.exposure), -cells.exposure]) if "y0" in names else -cells.exposure[:, None]
    beta = np.linalg.lstsq(X * np.sqrt(wts)[:, None], np.log(y) * np.sqrt(wts), rcond=None)[0]
    d0 = max(float(beta[-1]), 1e-6)
    u = {"d0": math.log(d0 * (1.5 if model._free_shape else 1.0)), "cluster_alpha": math.log(2.0),
         "y0": float(special.logit(min(math.exp(min(beta[0], 0.0)), 0.999))) if "y0" in names else 0.0}
    return np.array([u[n] for n in names])


def _binomial_core(model: YieldModel, cells: BinomialCells, names: list[str], u0: np.ndarray | None = None
                   ) -> dict[str, Any]:
    method = getattr(model, "method_", "binomial")

    def negll(u):
        return -binomial_loglik(_binomial_logy(model, cells, _to_nat(names, u)), cells.tested, cells.good)

    bounds = [_BOUNDS[n] for n in names]
    starts = [u0] if u0 is not None else [_start(model, cells, names)]
    if u0 is None and "cluster_alpha" in names:
        ia = names.index("cluster_alpha")
        for a in (0.5, 10.0):
            s = starts[0].copy()
            s[ia] = math.log(a)
            starts.append(s)
    if method == "wls":
        y = (cells.good + 0.5) / (cells.tested + 1.0)
        sw = np.sqrt(cells.tested * y / (1 - y))

        def resid(u):
            return (np.log(y) - _binomial_logy(model, cells, _to_nat(names, u))) * sw

        lb, ub = np.array(bounds).T
        best = min((optimize.least_squares(resid, np.clip(s, lb + 1e-9, ub - 1e-9), bounds=(lb, ub),
                                           xtol=1e-14, ftol=1e-14, gtol=1e-14) for s in starts),
                   key=lambda r: r.cost)
        u_hat, ok = best.x, bool(best.success)
    else:
        lb, ub = np.array(bounds).T
        fits = [newton_minimize(negll, s, lb, ub) for s in starts]
        u_hat, f_hat, ok = min(fits, key=lambda r: r[1])
        if not ok:
            # a narrow curved valley (Y0 against D0) can stall the finite-difference Newton steps:
            # polish with a quasi-Newton search from where it stopped
            res = optimize.minimize(negll, u_hat, method="L-BFGS-B", bounds=list(zip(lb, ub)),
                                    options={"ftol": 1e-15, "gtol": 1e-9, "maxiter": 2000})
            if res.success and res.fun <= f_hat + 1e-9 * (1 + abs(f_hat)):
                u_hat, ok = res.x, True
    at_bound = {n: bool(np.isclose(u_hat[i], bounds[i][1]) or np.isclose(u_hat[i], bounds[i][0]))
                for i, n in enumerate(names)}
    return {"u": u_hat, "params": _to_nat(names, u_hat), "loglik": -negll(u_hat), "converged": ok,
            "at_bound": at_bound, "negll": negll}


def fit_binomial(model: YieldModel, cells: BinomialCells, *, with_ci: bool = True) -> dict[str, Any]:
    who = type(model).__name__
    route = model.route_
    names = model._free_names()
    n_areas = len(np.unique(cells.exposure))
    if n_areas < len(names):
        unit = "block sizes" if route == "window" else "die areas"
        raise YieldkitValueError(f"{who}.{'fit_window' if route == 'window' else 'fit_die_sizes'}: "
                                 f"{len(names)} parameters ({', '.join(names)}) need at least {len(names)} "
                                 f"distinct {unit}; got {n_areas}.")
    if route == "die-size" and model.method_ == "loglinear":
        return _loglinear(model, cells, names)
    infinite_alpha = False
    if "cluster_alpha" in names and route == "window":
        y = cells.good / cells.tested
        e = cells.exposure / cells.exposure.min()
        i1, i2 = np.flatnonzero(np.isclose(e, 1.0)), np.flatnonzero(np.isclose(e, 2.0))
        # the model gives Y(2) y0 >= Y(1)^2; with y0 <= 1, Y(2) < Y(1)^2 contradicts it for every y0
        if len(i1) and len(i2) and y[i2[0]] < y[i1[0]] ** 2:
            warnings.warn(f"{who}: the yield of 2-die blocks is below the square of the die yield, so "
                          "Y(2) y0 < Y(1)^2 for every y0 <= 1 (no clustering); cluster_alpha = inf",
                          BoundaryWarning, stacklevel=4)
            infinite_alpha = True
    fit_names = [n for n in names if not (infinite_alpha and n == "cluster_alpha")]
    res = _binomial_core(model, cells, fit_names)
    if "cluster_alpha" in fit_names and res["at_bound"]["cluster_alpha"] and res["params"]["cluster_alpha"] > 1e6:
        warnings.warn(f"{who}: cluster_alpha ran to infinity (no clustering); refitted with cluster_alpha = inf",
                      BoundaryWarning, stacklevel=4)
        infinite_alpha = True
        fit_names = [n for n in names if n != "cluster_alpha"]
        res = _binomial_core(model, cells, fit_names)
    params = dict(res["params"])
    if infinite_alpha:
        params["cluster_alpha"] = math.inf
    res["params"] = params
    p = len(names)
    cov_u = np.full((p, p), np.nan)
    idx = [names.index(n) for n in fit_names]
    cu = _inv_or_nan(numerical_hessian(res["negll"], res["u"]), who)
    cov_u[np.ix_(idx, idx)] = cu
    jac = np.array([params["y0"] * (1 - params["y0"]) if n == "y0" else params[n] for n in names])
    jac = np.where(np.isfinite(jac), jac, np.nan)
    cov = cov_u * np.outer(jac, jac)
    method = _resolve_ci(model, route)
    level = float(model.conf_level)
    if method == "bootstrap":
        return {**res, "cov": cov, "cov_u": cov_u, **_bootstrap_ci(model, cells, names, level, u0=res["u"],
                                                                        fit_names=fit_names)}
    z = _z(level)
    se = np.sqrt(np.diag(cov_u))
    u_full = np.array([special.logit(params[n]) if n == "y0" else (math.log(params[n])) for n in names])
    lo_u, hi_u = u_full - z * se, u_full + z * se
    lo = np.array([special.expit(v) if n == "y0" else math.exp(v) for n, v in zip(names, lo_u)])
    hi = np.array([special.expit(v) if n == "y0" else math.exp(v) for n, v in zip(names, hi_u)])
    if infinite_alpha:
        ia = names.index("cluster_alpha")
        lo[ia], hi[ia] = np.nan, math.inf
    return {**res, "cov": cov, "cov_u": cov_u, "ci_lower": lo, "ci_upper": hi, "ci_method": "wald"}


def _loglinear(model: YieldModel, cells: BinomialCells, names: list[str]) -> dict[str, Any]:
    """Weighted least squares ``ln Y = ln y0 - A d0`` with weights ``n Y / (1 - Y)``.

    Intervals are Wald intervals on the log scale: ``d0 exp(+-z se(ln d0))`` with
    ``se(ln d0) = se(d0) / d0``, and ``exp(ln y0 +- z se(ln y0))`` for ``y0``. When the free line
    has an intercept above 1 (``ln y0 > 0``), ``y0`` sits on its bound: it is set to 1 with a
    :class:`BoundaryWarning`, ``d0`` is refitted on the line through the origin (the constrained
    least-squares solution) with its interval from that fit, and the ``y0`` interval is the part
    of the free line's interval inside ``(0, 1]``, ``[min(1, exp(ln y0 - z se)), 1]``.
    """
    who = type(model).__name__
    y = (cells.good + 0.5) / (cells.tested + 1.0)
    wts = cells.tested * y / (1 - y)
    fit_y0 = "y0" in names
    level = float(model.conf_level)
    z = _z(level)
    sw = np.sqrt(wts)

    def wls(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        beta = np.linalg.lstsq(X * sw[:, None], np.log(y) * sw, rcond=None)[0]
        return beta, np.linalg.inv((X * wts[:, None]).T @ X)

    X = np.column_stack([-cells.exposure, np.ones_like(y)]) if fit_y0 else -cells.exposure[:, None]
    beta, cov_b = wls(X)
    on_bound = fit_y0 and beta[1] > 0
    if on_bound:
        warnings.warn(f"{who}.fit_die_sizes: the log-linear intercept is above 1 (ln y0 = {beta[1]:.3g}); "
                      "y0 = 1 and d0 from the line through the origin", BoundaryWarning, stacklevel=4)
        y0_lo = min(1.0, math.exp(beta[1] - z * math.sqrt(cov_b[1, 1])))
        beta1, cov1 = wls(-cells.exposure[:, None])
        beta = np.array([beta1[0], 0.0])
        cov_b = np.array([[cov1[0, 0], np.nan], [np.nan, np.nan]])
    d0 = float(beta[0])
    if d0 <= 0:
        raise YieldkitValueError(f"{who}.fit_die_sizes: the log-linear fit gives d0 = {d0:.3g} <= 0 "
                                 "(yield does not fall with die area); use method='binomial'.")
    y0 = float(math.exp(beta[1])) if fit_y0 else 1.0
    se_log_d0 = math.sqrt(cov_b[0, 0]) / d0
    lo = [d0 * math.exp(-z * se_log_d0)]
    hi = [d0 * math.exp(z * se_log_d0)]
    if fit_y0:
        if on_bound:
            lo.append(y0_lo)
            hi.append(1.0)
        else:
            se_log_y0 = math.sqrt(cov_b[1, 1])
            lo.append(math.exp(beta[1] - z * se_log_y0))
            hi.append(min(1.0, math.exp(beta[1] + z * se_log_y0)))
    params = {"d0": d0, **({"y0": y0} if fit_y0 else {})}
    jac = np.array([1.0] + ([y0] if fit_y0 else []))
    cov = cov_b * np.outer(jac, jac)
    logy = math.log(y0) + model._log_p0(cells.exposure * d0, math.inf)
    scale = np.array([d0] + ([y0 * (1 - y0)] if fit_y0 else []))
    with np.errstate(divide="ignore", invalid="ignore"):
        cov_u = cov / np.outer(scale, scale)
    if on_bound:
        cov_u[1, :] = cov_u[:, 1] = np.nan
    return {"params": params, "loglik": binomial_loglik(logy, cells.tested, cells.good), "converged": True,
            "cov": cov, "cov_u": cov_u, "ci_lower": np.array(lo), "ci_upper": np.array(hi), "ci_method": "wald"}


# -------------------------------------------------------------------------- bootstrap
def _replicate(model: YieldModel, cells, names: list[str], u0=None, fit_names=None) -> list[float] | None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            if isinstance(cells, CountCells):
                r = _counts_core(model, cells)
            else:
                fn = fit_names or names
                start = None if u0 is None else np.asarray(u0)[: len(fn)]
                r = _binomial_core(model, cells, fn, start)
                if "cluster_alpha" in names and "cluster_alpha" not in fn:
                    r["params"]["cluster_alpha"] = math.inf
        except (ValueError, FloatingPointError, np.linalg.LinAlgError):
            return None
    if not r["converged"]:
        return None
    return [r["params"].get(n, math.nan) for n in names]


def bootstrap_params(model: YieldModel, n_boot: int, rng: np.random.Generator, u0=None,
                     fit_names=None, cells=None) -> np.ndarray:
    cells = model._cells if cells is None else cells
    names = list(model._free_names())
    if u0 is None and not isinstance(cells, CountCells):
        u0 = np.array([special.logit(model.params_[n]) if n == "y0" else math.log(model.params_[n])
                       for n in names if math.isfinite(model.params_[n])])
        fit_names = [n for n in names if math.isfinite(model.params_[n])]
    rows = [_replicate(model, cells.resample(rng), names, u0, fit_names) for _ in range(n_boot)]
    good = [r for r in rows if r is not None]
    if len(good) < n_boot:
        warnings.warn(f"{type(model).__name__}.bootstrap: {n_boot - len(good)} of {n_boot} replicates failed "
                      "and were dropped", ConvergenceWarning, stacklevel=3)
    return np.array(good, dtype=float).reshape(-1, len(names))


def _bootstrap_ci(model: YieldModel, cells, names: list[str], level: float, u0=None, fit_names=None
                  ) -> dict[str, Any]:
    rng = np.random.default_rng(model.random_state)
    reps = bootstrap_params(model, int(model.n_boot), rng, u0=u0, fit_names=fit_names, cells=cells)
    q = (1 - level) / 2
    lo = np.quantile(reps, q, axis=0, method="inverted_cdf") if len(reps) else np.full(len(names), np.nan)
    hi = np.quantile(reps, 1 - q, axis=0, method="inverted_cdf") if len(reps) else np.full(len(names), np.nan)
    finite = np.all(np.isfinite(reps), axis=1)
    cov = np.cov(reps[finite], rowvar=False).reshape(len(names), len(names)) if finite.sum() > 2 else \
        np.full((len(names), len(names)), np.nan)
    bad_cols = ~np.all(np.isfinite(reps), axis=0)
    cov[bad_cols, :] = np.nan
    cov[:, bad_cols] = np.nan
    return {"ci_lower": lo, "ci_upper": hi, "ci_method": "bootstrap", "replicates": reps, "cov": cov}


def delta_yield_interval(model: YieldModel, area: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    """Delta-method interval of the yield on the logit scale, using the unconstrained covariance."""
    names = list(model.params_.index)
    cov_u = model._cov_u
    ok = np.isfinite(np.diag(cov_u)) if cov_u.size else np.zeros(0, bool)
    nat = {n: float(model.params_[n]) for n in names}
    u = np.array([special.logit(nat[n]) if n == "y0" else math.log(nat[n]) if nat[n] > 0 else -np.inf
                  for n in names])
    z = _z(level)

    def logit_y(uu):
        p = dict(nat)
        for i, n in enumerate(names):
            if ok[i]:
                p[n] = float(special.expit(uu[i])) if n == "y0" else math.exp(uu[i])
        ly = model._log_yield(area, p["d0"], p.get("cluster_alpha", model.cluster_alpha_), p.get("y0", model.y0_))
        return ly - np.log(-np.expm1(ly))

    if not ok.any():
        return np.full(area.shape, np.nan), np.full(area.shape, np.nan)
    base = logit_y(u)
    grads = np.zeros((len(names), len(area)))
    for i in np.flatnonzero(ok):
        h = 1e-6 * max(1.0, abs(u[i]))
        up, dn = u.copy(), u.copy()
        up[i] += h
        dn[i] -= h
        grads[i] = (logit_y(up) - logit_y(dn)) / (2 * h)
    sub = np.ix_(ok, ok)
    var = np.einsum("ia,ij,ja->a", grads[ok], cov_u[sub], grads[ok])
    se = np.sqrt(np.clip(var, 0, None))
    return special.expit(base - z * se), special.expit(base + z * se)
