"""Defect level predicted by a fitted yield model, with confidence intervals."""

from __future__ import annotations

import copy
import logging
import math
import warnings
from typing import Any

import numpy as np
import pandas as pd
from scipy import special, stats

from .._validation import as_fraction, as_positive, check_conf_level
from ..errors import ConvergenceWarning, YieldkitValueError, check_choice
from .models import _defect_level_columns, _nb_log_pass_ratio

__all__ = ["defect_level"]

log = logging.getLogger(__name__)

_WHERE = "defect_level"


def _model_attr(model: Any, name: str, default: Any = None, *, required: bool = False) -> Any:
    value = getattr(model, name, None)
    if value is None:
        if required:
            raise YieldkitValueError(
                f"The 'fitted_model' argument of {_WHERE} must be a fitted yield model with attributes "
                f"d0_ [defects/cm^2], cluster_alpha_, y0_, area_, params_ and cov_. "
                f"Got {type(model).__name__} without {name!r} instead (is it fitted?)."
            )
        return default
    return value


def _point(d0: Any, area: Any, t: Any, alpha: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean faults, log(Y_d / P_pass), log P_pass) with broadcasting."""
    lam = np.asarray(d0, dtype=np.float64) * area
    u = _nb_log_pass_ratio(lam, t, alpha)
    a = np.asarray(alpha, dtype=np.float64)
    finite = np.isfinite(a)
    a_safe = np.where(finite, a, 1.0)
    log_pass = np.where(finite, -a_safe * np.log1p(lam * t / a_safe), -lam * t)
    return lam, u, log_pass


def _logit_gradient(lam: np.ndarray, t: np.ndarray, alpha: float, dl: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """d logit(DL) / d lambda and d logit(DL) / d alpha.

    With u = log(Y / P_pass) = alpha log1p(-x), x = lambda (1 - T) / (alpha + lambda) and
    c = alpha / (alpha + lambda): du/dlambda = -(1 - T) c^2 / (1 - x),
    du/dalpha = log1p(-x) + x c / (1 - x); and d logit(DL) = -du / DL because 1 - DL = e^u.
    """
    if math.isinf(alpha):
        du_dlam = -(1.0 - t) * np.ones_like(lam)
        du_da = np.zeros_like(lam)
    else:
        x = lam * (1.0 - t) / (alpha + lam)
        c = alpha / (alpha + lam)
        du_dlam = -(1.0 - t) * c**2 / (1.0 - x)
        du_da = np.log1p(-x) + x * c / (1.0 - x)
    with np.errstate(divide="ignore", invalid="ignore"):
        return -du_dlam / dl, -du_da / dl


def _uses_closed_form(model: Any) -> bool:
    """Closed form for objects without ``predict`` and for models whose yield is the negative
    binomial one in ``d0_ * area`` and ``cluster_alpha_`` (their ``negative_binomial_form`` with a
    ``mean_factor`` of 1: Poisson, negative binomial, Seeds)."""
    predict = getattr(model, "predict", None)
    if not callable(predict):
        return True
    return bool(getattr(model, "negative_binomial_form", False)) and getattr(model, "mean_factor", None) == 1.0


def _generic(model: Any, values: dict[str, float] | None, area: np.ndarray, t: np.ndarray):
    """(log Y, log P_pass) from the model's own yield function: P_pass(A) = Y(T A).

    ``values`` overrides fitted parameters (``{"d0": ...}`` sets ``d0_`` on a shallow copy).
    """
    m = model
    if values:
        m = copy.copy(model)
        for name, v in values.items():
            setattr(m, f"{name}_", float(v))
    with np.errstate(divide="ignore"):
        log_y = np.log(np.asarray(m.predict(area), dtype=np.float64))
        log_pass = np.log(np.asarray(m.predict(t * area), dtype=np.float64))
    return log_y, log_pass


def defect_level(
    fitted_model: Any,
    coverage: Any,
    area: Any = None,
    *,
    interval: str | None = "delta",
    conf_level: float | None = None,
    n_boot: int = 1000,
    random_state: Any = None,
) -> pd.DataFrame:
    """Defect level and DPPM predicted by a fitted yield model at given fault coverages.

    Parameters
    ----------
    fitted_model : fitted yield model
        Any object with ``d0_`` [defects/cm^2], ``cluster_alpha_`` (``math.inf`` or absent for
        Poisson-like models), ``y0_`` (1.0 when not fitted), ``area_`` (the reference die area
        [cm^2]), ``params_`` (Series indexed by ``"d0"``, ``"cluster_alpha"``, ``"y0"`` as
        applicable) and ``cov_`` (their covariance, natural scale), such as
        :class:`yieldkit.NegativeBinomialYield` or :class:`yieldkit.PoissonYield`. Models with
        another yield function (Murphy, Bose-Einstein) also need ``predict(area)``.
    coverage : array_like
        Fault coverage T [-], in [0, 1].
    area : array_like, optional
        Die area [cm^2], > 0; broadcast against ``coverage``. Defaults to the fit's ``area_``.
    interval : {"delta", "bootstrap", None}, default "delta"
        How the confidence interval is computed: the delta method on the logit of the defect
        level with the fit's ``cov_``, or percentiles over ``fitted_model.bootstrap(n_boot,
        random_state=...)`` parameter draws. None skips intervals (NaN bounds).
    conf_level : float, optional
        Two-sided confidence level in (0, 1); defaults to the model's ``conf_level`` or 0.95.
    n_boot : int, default 1000
        Bootstrap replicates (``interval="bootstrap"``).
    random_state : int or numpy.random.Generator, optional
        Passed to the model's ``bootstrap``.

    Returns
    -------
    pandas.DataFrame
        One row per broadcast (coverage, area): ``coverage``, ``area_cm2``, ``mean_faults``
        (lambda = D0 A), ``yield`` (Y0 x defect-limited yield), ``shipped_fraction`` (dies that
        pass the test), ``fallout`` (1 - shipped_fraction), ``defect_level``, ``ci_lower``,
        ``ci_upper``, ``dppm``, ``dppm_lower``, ``dppm_upper``.

    Raises
    ------
    YieldkitValueError
        If ``fitted_model`` lacks the attributes above (for example, it is not fitted),
        ``coverage`` is outside [0, 1], ``area`` is not > 0, ``interval`` is unknown, or a
        bootstrap is asked of a model without ``bootstrap``.

    Warns
    -----
    ConvergenceWarning
        If the fit's covariance is not finite (intervals are NaN), or bootstrap replicates
        failed and were dropped.

    Notes
    -----
    With lambda = D0 A and clustering alpha, the defect level is the negative binomial one,
    DL = 1 - [(1 + lambda T / alpha) / (1 + lambda / alpha)]^alpha (Williams-Brown with
    Y = exp(-lambda) when alpha is infinite), see
    :func:`~yieldkit.quality.negative_binomial_defect_level`.

    Systematic failures (Y0 < 1) are assumed always detected: they remove a fraction 1 - Y0
    of the dies at test whatever the coverage, so the shipped fraction is
    Y0 (1 + lambda T / alpha)^(-alpha) while the defect level of what ships does not depend on
    Y0.

    Other yield models (Murphy, Bose-Einstein, any model with ``predict(area)``) are mixtures of
    Poisson fault counts over a random defect density; detecting each fault with probability T
    thins the mean from D A to D T A, so P(pass) = Y(T A) and DL = 1 - Y(A) / Y(T A), computed
    from the model's own ``predict`` (Y0 cancels). Fits whose ``negative_binomial_form`` holds with a
    ``mean_factor`` of 1 (Poisson, negative binomial, Seeds, Bose-Einstein with one layer) use the
    closed form above.

    The delta-method interval is expit(logit DL +/- z se), se^2 = g' Sigma g with g the
    gradient of logit DL in the fitted parameters (analytic for the closed form, central
    differences otherwise); it stays in (0, 1). A parameter
    held on its boundary (cluster_alpha = inf) does not contribute. At T = 1 the defect level
    and both bounds are 0. A fit to all-zero counts (d0 = 0, no covariance) has the exact
    interval [0, D0_up] of d0 instead; the defect level rises with d0, so its interval is
    [0, DL(D0_up)] (as for ``predict_interval``).

    References
    ----------
    J. T. de Sousa et al., "Defect level evaluation in an IC design environment", IEEE Trans.
    CAD 15(10), 1286-1293, 1996.

    Examples
    --------
    >>> import math, pandas as pd
    >>> class Fit:  # a stand-in with the attributes of a fitted Poisson yield model
    ...     d0_, cluster_alpha_, y0_, area_ = 0.5, math.inf, 1.0, 1.3862943611198906
    ...     params_ = pd.Series({"d0": 0.5})
    ...     cov_ = pd.DataFrame([[1e-4]], index=["d0"], columns=["d0"])
    >>> res = defect_level(Fit(), 0.99)
    >>> round(float(res["dppm"].iloc[0]), 1)
    6907.5
    """
    interval = check_choice(interval, ("delta", "bootstrap", None), name="interval", where=_WHERE)
    d0 = float(_model_attr(fitted_model, "d0_", required=True))
    alpha_attr = _model_attr(fitted_model, "cluster_alpha_", math.inf)
    alpha = float(alpha_attr)
    y0 = float(_model_attr(fitted_model, "y0_", 1.0))
    if not (d0 >= 0.0 and math.isfinite(d0)):
        raise YieldkitValueError(f"The fitted model's d0_ in {_WHERE} must be >= 0 and finite. Got {d0!r} instead.")
    if not alpha > 0.0:
        raise YieldkitValueError(f"The fitted model's cluster_alpha_ in {_WHERE} must be > 0. Got {alpha!r} instead.")
    if area is None:
        area = _model_attr(fitted_model, "area_")
        if area is None:
            raise YieldkitValueError(
                f"The 'area' argument of {_WHERE} is required when the fitted model has no area_. Got None instead."
            )
    a_arr = as_positive(area, "area", _WHERE)
    t_arr = as_fraction(coverage, "coverage", _WHERE)
    t_arr, a_arr = (np.atleast_1d(x).ravel() for x in np.broadcast_arrays(t_arr, a_arr))
    if conf_level is None:
        conf_level = getattr(fitted_model, "conf_level", None) or 0.95
    level = check_conf_level(conf_level, _WHERE)

    closed = _uses_closed_form(fitted_model)
    if closed:
        lam, u, log_pass = _point(d0, a_arr, t_arr, alpha)
        log_y0 = math.log(y0)
    else:
        log_y_total, log_pass_total = _generic(fitted_model, None, a_arr, t_arr)
        u = log_y_total - log_pass_total
        log_y0 = math.log(y0)
        log_pass = log_pass_total - log_y0
        defect_lambda = getattr(fitted_model, "defect_lambda", None)
        lam = np.asarray(defect_lambda(a_arr), dtype=np.float64) if callable(defect_lambda) else d0 * a_arr
    dl = -np.expm1(u)
    lower = np.full_like(dl, np.nan)
    upper = np.full_like(dl, np.nan)
    zero_upper = _all_zero_upper_d0(fitted_model, d0, level) if interval == "delta" else None
    if zero_upper is not None:
        # d0 = 0 from all-zero counts: DL rises with d0, so the exact d0 interval [0, d_up] maps through
        lower = np.zeros_like(dl)
        if closed:
            _, u_up, _ = _point(zero_upper, a_arr, t_arr, alpha)
        else:
            ly_up, lp_up = _generic(fitted_model, {"d0": zero_upper}, a_arr, t_arr)
            u_up = ly_up - lp_up
        upper = -np.expm1(u_up)
    elif interval == "delta":
        if closed:
            lower, upper = _delta_interval(fitted_model, lam, t_arr, a_arr, alpha, dl, level)
        else:
            lower, upper = _delta_interval_generic(fitted_model, t_arr, a_arr, dl, level)
    elif interval == "bootstrap":
        lower, upper = _bootstrap_interval(fitted_model, a_arr, t_arr, level, n_boot, random_state, closed)
    if interval is not None:
        full = t_arr >= 1.0
        lower[full] = 0.0
        upper[full] = 0.0
    shipped = np.exp(log_y0 + log_pass)
    res = pd.DataFrame(
        {
            "coverage": t_arr,
            "area_cm2": a_arr,
            "mean_faults": lam,
            "yield": np.exp(log_y0 + u + log_pass),
            "shipped_fraction": shipped,
            "fallout": 1.0 - shipped,
            **_defect_level_columns(dl, lower, upper),
        }
    )
    return res


def _all_zero_upper_d0(model: Any, d0: float, level: float) -> float | None:
    """Exact upper limit of d0 of a fit to all-zero counts (``d0_ = 0``) at ``level``, else None.

    Asked of the model's ``zero_count_upper_d0(level)`` when it has one (a yieldkit model recomputes
    it from its counts at another level), else taken from the fit's ``ci_`` at its own level.
    """
    if d0 != 0.0 or getattr(model, "route_", "counts") != "counts":
        return None
    own = getattr(model, "zero_count_upper_d0", None)
    if callable(own):
        upper = own(level)
        return None if upper is None else float(upper)
    ci = getattr(model, "ci_", None)
    model_level = getattr(model, "conf_level", None)
    if ci is not None and model_level == level and "d0" in ci.index:
        upper = float(ci.loc["d0", "ci_upper"])
        return upper if math.isfinite(upper) and upper > 0 else None
    return None


def _delta_interval(
    model: Any, lam: np.ndarray, t: np.ndarray, area: np.ndarray, alpha: float, dl: np.ndarray, level: float
) -> tuple[np.ndarray, np.ndarray]:
    params = _model_attr(model, "params_", required=True)
    cov = _model_attr(model, "cov_", required=True)
    cov = pd.DataFrame(cov)
    names = [n for n in ("d0", "cluster_alpha") if n in pd.Index(params.index)]
    if "cluster_alpha" in names and not math.isfinite(alpha):
        names.remove("cluster_alpha")  # held on its boundary (Poisson limit)
    if "d0" not in names:
        raise YieldkitValueError(
            f"The 'fitted_model' argument of {_WHERE} must have 'd0' in params_. "
            f"Got {list(params.index)!r} instead."
        )
    sigma = cov.loc[names, names].to_numpy(dtype=np.float64)
    g_lam, g_alpha = _logit_gradient(lam, t, alpha, dl)
    grads = [g_lam * area]  # d lambda / d d0 = A
    if "cluster_alpha" in names:
        grads.append(g_alpha)
    g = np.stack(grads, axis=-1)
    if not np.all(np.isfinite(sigma)):
        warnings.warn(
            f"The fit's covariance is not finite; the {_WHERE} intervals are NaN.", ConvergenceWarning, stacklevel=3
        )
    return _logit_interval(dl, g, sigma, level)


def _logit_interval(dl: np.ndarray, g: np.ndarray, sigma: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    """Delta-method interval of the defect level on the logit scale, from the gradient ``g`` of
    logit(DL) in the parameters and their covariance ``sigma``."""
    var = np.einsum("ni,ij,nj->n", g, sigma, g)
    z = stats.norm.ppf(0.5 + level / 2.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        centre = special.logit(dl)
        half = z * np.sqrt(np.maximum(var, 0.0))
    return special.expit(centre - half), special.expit(centre + half)


def _delta_interval_generic(
    model: Any, t: np.ndarray, area: np.ndarray, dl: np.ndarray, level: float
) -> tuple[np.ndarray, np.ndarray]:
    params = _model_attr(model, "params_", required=True)
    cov = pd.DataFrame(_model_attr(model, "cov_", required=True))
    names = [n for n in params.index if n != "y0" and math.isfinite(float(params[n]))]
    sigma = cov.loc[names, names].to_numpy(dtype=np.float64)
    if not np.all(np.isfinite(sigma)):
        warnings.warn(
            f"The fit's covariance is not finite; the {_WHERE} intervals are NaN.", ConvergenceWarning, stacklevel=3
        )
    grads = []
    with np.errstate(divide="ignore", invalid="ignore"):
        for name in names:
            p = float(params[name])
            h = 1e-5 * max(abs(p), 1e-8)
            ly_up, lp_up = _generic(model, {name: p + h}, area, t)
            ly_dn, lp_dn = _generic(model, {name: p - h}, area, t)
            grads.append((special.logit(-np.expm1(ly_up - lp_up)) - special.logit(-np.expm1(ly_dn - lp_dn))) / (2 * h))
    g = np.stack(grads, axis=-1) if grads else np.zeros((t.size, 0))
    return _logit_interval(dl, g, sigma, level)


def _bootstrap_interval(
    model: Any, area: np.ndarray, t: np.ndarray, level: float, n_boot: int, random_state: Any, closed: bool
) -> tuple[np.ndarray, np.ndarray]:
    boot = getattr(model, "bootstrap", None)
    if boot is None or not callable(boot):
        raise YieldkitValueError(
            f"The 'interval' argument of {_WHERE} can be 'bootstrap' only for a model with a bootstrap() "
            f"method. Got {type(model).__name__} instead."
        )
    if int(n_boot) < 2:
        raise YieldkitValueError(f"The 'n_boot' argument of {_WHERE} must be >= 2. Got {n_boot!r} instead.")
    draws = pd.DataFrame(boot(int(n_boot), random_state=random_state))
    if "d0" not in draws.columns:
        raise YieldkitValueError(
            f"The bootstrap draws of the fitted model in {_WHERE} must have a 'd0' column. "
            f"Got {list(draws.columns)!r} instead."
        )
    if not closed:
        rows = []
        for _, row in draws.iterrows():
            values = {k: float(v) for k, v in row.items() if np.isfinite(v)}
            if "d0" not in values:
                continue
            ly, lp = _generic(model, values, area, t)
            rows.append(-np.expm1(ly - lp))
        if len(rows) < len(draws):
            warnings.warn(
                f"{len(draws) - len(rows)} of {len(draws)} bootstrap replicates had no valid estimate and were dropped.",
                ConvergenceWarning,
                stacklevel=3,
            )
        if len(rows) < 2:
            return np.full(t.shape, np.nan), np.full(t.shape, np.nan)
        q = np.quantile(np.asarray(rows), [0.5 - level / 2.0, 0.5 + level / 2.0], axis=0)
        return q[0], q[1]
    d0 = draws["d0"].to_numpy(dtype=np.float64)
    if "cluster_alpha" in draws.columns:
        alpha = draws["cluster_alpha"].to_numpy(dtype=np.float64)
    else:
        alpha = np.full_like(d0, float(getattr(model, "cluster_alpha_", math.inf) or math.inf))
    ok = np.isfinite(d0) & (d0 >= 0) & (alpha > 0)
    if not np.all(ok):
        warnings.warn(
            f"{int((~ok).sum())} of {ok.size} bootstrap replicates had no valid estimate and were dropped.",
            ConvergenceWarning,
            stacklevel=3,
        )
    d0, alpha = d0[ok], alpha[ok]
    if d0.size < 2:
        return np.full(t.shape, np.nan), np.full(t.shape, np.nan)
    _, u, _ = _point(d0[:, None], area[None, :], t[None, :], alpha[:, None])
    dl = -np.expm1(u)
    q = np.quantile(dl, [0.5 - level / 2.0, 0.5 + level / 2.0], axis=0)
    return q[0], q[1]
