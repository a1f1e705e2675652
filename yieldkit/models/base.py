"""The shared base of the fitted yield models: fitting routes, intervals, summary, persistence.

A concrete model (:mod:`~yieldkit.models.poisson`, ...) only states its parameters, its
log-yield ``log P(no defect)`` as a function of ``lam = area * d0``, and its defect-count
distribution. Everything else -- the three fitting routes, profile-likelihood and log-scale
Wald intervals, the wafer bootstrap, ``summary``, ``predict``, JSON round trips -- lives here.

Writing a model
---------------
A new yield model is one module with one subclass, registered under a public name by the class
statement ``class PriceYield(YieldModel, name="price")``; :func:`~yieldkit.models.compare_models`,
:func:`~yieldkit.models.make_model` and :func:`~yieldkit.models.load_fit` then find it. The
subclass states

* ``_formula`` (a class attribute: the yield formula, shown by the ``repr`` of a fitted model)
  and, when ``cluster_alpha`` is estimated, ``_free_shape = True``;
* ``_log_p0(lam, cluster_alpha)``: ``log P(no defect)`` at ``lam = area * d0`` (use the kernels of
  :mod:`yieldkit.models.functions`);
* the count distribution: by default the counts are negative binomial with mean
  ``mean_factor * d0 * area`` and shape ``fixed_cluster_alpha`` (override these two properties);
  a model with another count distribution overrides ``_count_log_pmf(k, mu, cluster_alpha)``;
* its hyperparameters as keyword arguments of ``__init__`` (and their checks in
  ``_validate_hyper``).
"""

from __future__ import annotations

import inspect
import logging
import math
import warnings
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from .._validation import check_choice, check_conf_level
from ..errors import ConvergenceWarning, NotFittedError, YieldkitValueError
from . import _fitting
from ._likelihood import BinomialCells, nb_log_pmf
from ._routes import DEFAULT_BLOCKS, count_cells, die_size_cells, window_cells
from .registry import register_model

log = logging.getLogger(__name__)

__all__ = ["YieldModel"]

UNITS = {"d0": "defects/cm^2", "cluster_alpha": "1", "y0": "1"}
CI_METHODS = ("auto", "profile", "wald", "exact", "bootstrap")


class YieldModel:
    """Base class of the fitted yield models (not used directly).

    Parameters
    ----------
    conf_level : float
        Confidence level of the intervals, in (0, 1). Default 0.95.
    ci_method : {"auto", "profile", "wald", "exact", "bootstrap"}
        How intervals are computed. ``"auto"``: the exact Garwood interval for a Poisson density
        from counts, profile likelihood for the other count fits, log-scale Wald for die sizes,
        a wafer bootstrap for the window method.
    fit_y0 : bool
        Estimate the systematic yield ``y0`` in the window and die-size routes (counts carry no
        information about it, so the counts route always has ``y0 = 1``).
    n_boot : int
        Bootstrap replicates used when ``ci_method`` is (or resolves to) ``"bootstrap"``.
    random_state : int or numpy Generator, optional
        Seed of that bootstrap.
    """

    #: Public name under which the class is registered (``None`` for a class not registered).
    model_name: ClassVar[str | None] = None
    #: The model's yield formula in words of ``A`` (area), ``d0`` and its parameters, for the ``repr``.
    _formula: ClassVar[str] = ""
    _free_shape: ClassVar[bool] = False  # cluster_alpha estimated

    def __init_subclass__(cls, *, name: str | None = None, **kwargs: Any) -> None:
        """Register a concrete model under its public ``name`` (``class M(YieldModel, name="m")``)."""
        super().__init_subclass__(**kwargs)
        cls.model_name = name
        if name is not None:
            register_model(name, cls)

    def __init__(self, *, conf_level: float = 0.95, ci_method: str = "auto", fit_y0: bool = True,
                 n_boot: int = 200, random_state: Any = None) -> None:
        self.conf_level = conf_level
        self.ci_method = ci_method
        self.fit_y0 = fit_y0
        self.n_boot = n_boot
        self.random_state = random_state

    # ------------------------------------------------------------ model hooks
    def _log_p0(self, lam: np.ndarray, cluster_alpha: Any) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    def _count_log_pmf(self, k: np.ndarray, mu: np.ndarray, cluster_alpha: float) -> np.ndarray:
        """Log-probability of ``k`` defects on a unit with mean count ``mu``: negative binomial with
        shape ``cluster_alpha`` (Poisson at ``inf``) unless a model overrides it."""
        return nb_log_pmf(k, mu, cluster_alpha)

    @property
    def fixed_cluster_alpha(self) -> float:
        """The ``cluster_alpha`` the model implies when it does not estimate it [1] (``inf``: Poisson)."""
        return math.inf

    @property
    def mean_factor(self) -> float:
        """Mean defects per die over ``d0 * area`` [1] (the number of layers for Bose--Einstein)."""
        return 1.0

    @property
    def negative_binomial_form(self) -> bool:
        """Whether counts are negative binomial with mean ``mean_factor * d0 * area`` and shape
        ``cluster_alpha`` (Poisson at ``inf``), so that ``Y / y0 = (1 + lam / cluster_alpha)^(-cluster_alpha)``
        with ``lam`` the mean defects per die (:meth:`defect_lambda`). False for a model with its own
        count distribution (Murphy)."""
        return type(self)._count_log_pmf is YieldModel._count_log_pmf

    @property
    def poisson_form(self) -> bool:
        """Whether the model is the Poisson one: ``Y = y0 exp(-d0 area)`` with Poisson counts (which
        allows the exact Garwood interval and the log-linear die-size line)."""
        return (self.negative_binomial_form and not self._free_shape and math.isinf(self.fixed_cluster_alpha)
                and self.mean_factor == 1.0)

    # ------------------------------------------------------------ sklearn-style
    @classmethod
    def _param_names_init(cls) -> list[str]:
        names: list[str] = []
        for klass in reversed(cls.__mro__):
            init = klass.__dict__.get("__init__")
            if init is None or klass is object:
                continue
            for p in inspect.signature(init).parameters.values():
                if p.name != "self" and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and p.name not in names:
                    names.append(p.name)
        return names

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        return {n: getattr(self, n) for n in self._param_names_init()}

    def set_params(self, **params: Any) -> YieldModel:
        valid = self._param_names_init()
        for k, v in params.items():
            if k not in valid:
                raise YieldkitValueError(f"{type(self).__name__} has no parameter {k!r}; valid: {valid}")
            setattr(self, k, v)
        return self

    def _where(self, method: str = "fit") -> str:
        return f"{type(self).__name__}.{method}"

    def _check_fitted(self) -> None:
        if not hasattr(self, "params_"):
            raise NotFittedError(f"This {type(self).__name__} instance is not fitted yet. Call 'fit' first.")

    def _validate_hyper(self, where: str) -> None:
        check_conf_level(self.conf_level, where)
        check_choice(self.ci_method, CI_METHODS, name="ci_method", where=type(self).__name__)
        if not (isinstance(self.n_boot, (int, np.integer)) and self.n_boot >= 10):
            raise YieldkitValueError(
                f"The 'n_boot' argument of {type(self).__name__} must be an integer >= 10. Got {self.n_boot!r} instead."
            )

    # ------------------------------------------------------------ fitting routes
    def fit(self, data, area=None, *, count_col: str = "n_defects", exclude=None, signature=None,
            pooling: str = "die"):
        """Fit the model to per-die defect counts.

        Parameters
        ----------
        data : array_like or DataFrame
            Per-die killer-defect counts, or the table returned by
            :func:`yieldkit.die_defect_counts` (``lot_id, wafer_id, die_x, die_y, n_defects``,
            one row per die; filter it to one ``by`` group first when it is split).
            Or their :class:`~yieldkit.models.CountHistogram` (the same estimates; no
            ``exclude``/``signature`` then, and one scalar ``area``).
        area : float or array_like
            Die area [cm^2] (a scalar, or one value per die).
        count_col : str
            Count column of a DataFrame input. Default ``"n_defects"``.
        exclude : array_like of bool or str, optional
            Dies to leave out (e.g. dies in a clustered signature), or the name of such a column.
        signature : array_like or str, optional
            Signature labels per die (or their column); dies with a label other than missing,
            ``""``, ``"none"`` or ``"random"`` are excluded, so that only random defects are fitted.
        pooling : {"die", "wafer", "lot"}
            The unit whose counts are modelled: each die, or the total count of each wafer (lot)
            with exposure = its number of dies times ``area``. Needs lot_id/wafer_id for wafer/lot.

        Returns
        -------
        self

        Raises
        ------
        YieldkitValueError
            Negative or fractional counts, a missing or non-positive area, bad masks.
        SchemaError
            A DataFrame without ``count_col``.

        Notes
        -----
        Negative-binomial fits maximise the likelihood through the profile score in
        ``log cluster_alpha`` on the histogram of counts (the cost does not grow with the number
        of dies). ``cluster_alpha`` is infinite -- the Poisson fit -- when the divisor-n variance
        of the counts does not exceed their mean. All-zero counts give ``d0 = 0`` with the exact
        upper limit (``P(all zero | d0) = (1 - conf_level)/2``). ``y0`` is 1.
        """
        where = self._where()
        self._validate_hyper(where)
        if area is None:
            raise YieldkitValueError(f"The 'area' argument of {where} is required: the die area [cm^2].")
        cells, info = count_cells(data, area, count_col=count_col, exclude=exclude, signature=signature,
                                  pooling=pooling, where=where)
        self._set_route("counts", cells, info)
        return self._finish(_fitting.fit_counts(self, cells, with_ci=True))

    def fit_window(self, dies: pd.DataFrame, area, *, block_sizes: Sequence[tuple[int, int]] = DEFAULT_BLOCKS,
                   method: str = "binomial", passed_col: str = "passed"):
        """Fit the model to pass/fail maps by the window (block) method.

        Every wafer is tiled into non-overlapping blocks of ``bx x by`` dies (see
        :func:`~yieldkit.models.block_yields`); block yields are pooled over wafers and
        ``Y(m) = y0 * P0(m * area * d0)`` is fitted to the yields of blocks of ``m`` dies.

        Parameters
        ----------
        dies : DataFrame
            Canonical die table (``lot_id, wafer_id, die_x, die_y, passed``).
        area : float
            Die area [cm^2].
        block_sizes : sequence of (int, int)
            Block shapes (columns, rows); at least as many distinct sizes as free parameters.
        method : {"binomial", "wls"}
            Binomial likelihood of the pooled block counts, or weighted least squares of
            ``ln Y(m)`` with weights ``n Y / (1 - Y)``.
        passed_col : str
            Pass/fail column.

        Returns
        -------
        self

        Raises
        ------
        YieldkitValueError
            Fewer distinct block sizes than parameters, a bad ``method`` or ``area``.
        SchemaError
            A die table without the needed columns.

        Notes
        -----
        Blocks of different sizes share dies, so the likelihood is not that of independent data:
        intervals come from a wafer-level bootstrap (``ci_method="auto"``). Under the model
        ``Y(2) / y0 >= (Y(1) / y0)^2``, i.e. ``Y(2) y0 >= Y(1)^2``, for every finite
        ``cluster_alpha``. Since ``y0 <= 1``, observed block yields with ``Y(2) < Y(1)^2`` break it
        for every admissible ``y0`` (fitted or 1): the negative binomial is then fitted with
        ``cluster_alpha = inf`` and a :class:`BoundaryWarning`. Otherwise ``cluster_alpha`` and
        ``y0`` are estimated together from all block sizes, and an estimate that runs to infinity
        is refitted with ``cluster_alpha = inf`` (also with a warning); the two-block rule is not
        re-applied at the fitted ``y0``, whose estimate uses the larger blocks as well.

        References
        ----------
        .. [1] C. H. Stapper, F. M. Armstrong, K. Saji, "Integrated circuit yield statistics",
           Proc. IEEE 71(4), 453-470 (1983). doi:10.1109/PROC.1983.12619
        """
        where = self._where("fit_window")
        self._validate_hyper(where)
        check_choice(method, ("binomial", "wls"), name="method", where=where)
        cells, table, info = window_cells(dies, area, block_sizes, passed_col, where)
        self._set_route("window", cells, info, method=method)
        self.block_table_ = table
        return self._finish(_fitting.fit_binomial(self, cells, with_ci=True))

    def fit_die_sizes(self, table: pd.DataFrame, *, method: str = "binomial", area_col: str = "die_area_cm2",
                      tested_col: str = "tested", good_col: str = "good"):
        """Fit the model to the yields of products with different die areas.

        Parameters
        ----------
        table : DataFrame
            One row per product: ``die_area_cm2`` [cm^2], ``tested`` and ``good`` die counts
            (``product`` and other columns are carried along, not used).
        method : {"binomial", "loglinear"}
            Binomial likelihood (every model), or the classic weighted least-squares line
            ``ln Y = ln y0 - A d0`` (Poisson only).
        area_col, tested_col, good_col : str
            Column names.

        Returns
        -------
        self

        Raises
        ------
        YieldkitValueError
            Fewer distinct areas than parameters; ``loglinear`` for a non-Poisson model.
        SchemaError
            Missing columns or invalid values (naming column and row).

        Notes
        -----
        The log-linear line reports log-scale Wald intervals (``d0 exp(+-z se / d0)``, never
        negative). An intercept above 1 puts ``y0`` on its bound: ``y0 = 1`` with a
        :class:`BoundaryWarning`, ``d0`` from the weighted line through the origin, and the ``y0``
        interval is the part of the free line's interval inside ``(0, 1]``.
        """
        where = self._where("fit_die_sizes")
        self._validate_hyper(where)
        check_choice(method, ("binomial", "loglinear"), name="method", where=where)
        if method == "loglinear" and not self.poisson_form:
            raise YieldkitValueError(f"The 'method' argument of {where}: 'loglinear' is the Poisson line; "
                                     f"{type(self).__name__} needs method='binomial'.")
        cells, info = die_size_cells(table, area_col, tested_col, good_col, where)
        self._set_route("die-size", cells, info, method=method)
        return self._finish(_fitting.fit_binomial(self, cells, with_ci=True))

    # ------------------------------------------------------------ bookkeeping
    def _set_route(self, route: str, cells, info: dict, method: str = "mle") -> None:
        for attr in list(vars(self)):
            if attr.endswith("_") and not attr.startswith("_"):
                delattr(self, attr)
        self._cells = cells
        self.route_ = route
        self.method_ = method
        self.pooling_ = info.get("pooling")
        self.area_ = info.get("area")
        self.n_obs_ = int(info.get("n_dies") or 0)
        self.n_units_ = int(info.get("n_units") or self.n_obs_)
        self.n_groups_ = info.get("n_groups")
        self.n_excluded_ = int(info.get("n_excluded", 0))

    def _free_names(self) -> list[str]:
        names = ["d0"]
        if self._free_shape:
            names.append("cluster_alpha")
        if self.route_ != "counts" and self.fit_y0:
            names.append("y0")
        return names

    def _finish(self, res: dict):
        names = self._free_names()
        est = res["params"]
        self.d0_ = float(est["d0"])
        self.cluster_alpha_ = float(est.get("cluster_alpha", self.fixed_cluster_alpha))
        self.y0_ = float(est.get("y0", 1.0))
        index = pd.Index(names)  # one index for the three tables (building it is most of their cost)
        self.params_ = pd.Series([float(est[n]) for n in names], index=index, name="estimate", dtype=float)
        cov = np.asarray(res["cov"], dtype=float)
        self.cov_ = pd.DataFrame(cov, index=index, columns=index.copy())
        self._cov_u = np.asarray(res.get("cov_u", np.full((len(names), len(names)), np.nan)), dtype=float)
        self.ci_ = pd.DataFrame({"ci_lower": res["ci_lower"], "ci_upper": res["ci_upper"]}, index=index.copy(),
                                dtype=float)
        self.ci_method_ = res["ci_method"]
        self.loglik_ = float(res["loglik"])
        self.n_params_ = len(names)
        n_eff = max(self.n_units_, 1)
        self.aic_ = 2 * self.n_params_ - 2 * self.loglik_
        self.bic_ = self.n_params_ * math.log(n_eff) - 2 * self.loglik_
        self.converged_ = bool(res["converged"])
        self._replicates = res.get("replicates")
        if not self.converged_:
            warnings.warn(f"{type(self).__name__}: the optimiser did not converge", ConvergenceWarning, stacklevel=3)
        return self

    # ------------------------------------------------------------ results
    def summary(self) -> pd.DataFrame:
        """Parameter table: ``estimate, std_err, ci_lower, ci_upper, unit`` (one row per parameter).

        The fit's other results are the model's attributes: ``route_``, ``pooling_``, ``n_obs_``
        (dies), ``n_units_`` (the units whose likelihood was fitted: dies, or wafers / lots when
        pooled), ``loglik_``, ``aic_``, ``bic_``, ``ci_method_``.

        Notes
        -----
        ``aic = 2 p - 2 loglik`` and ``bic = p log(n_units) - 2 loglik``, with ``p`` the number of
        free parameters of the model (``n_params_``). ``cluster_alpha`` counts as a parameter even
        when its estimate is on the boundary ``inf`` (the fit searched over it; the Poisson fit is
        then a negative binomial one with one more parameter and the same log-likelihood).
        """
        self._check_fitted()
        names = list(self.params_.index)
        se = np.sqrt(np.clip(np.diag(self.cov_.to_numpy()), 0, None))
        se = np.where(np.isnan(np.diag(self.cov_.to_numpy())), np.nan, se)
        out = pd.DataFrame({
            "estimate": self.params_.to_numpy(),
            "std_err": se,
            "ci_lower": self.ci_["ci_lower"].to_numpy(),
            "ci_upper": self.ci_["ci_upper"].to_numpy(),
            "unit": [UNITS[n] for n in names],
        }, index=pd.Index(names, name="parameter"))
        return out

    def _log_yield(self, area, d0: float, cluster_alpha: float, y0: float) -> np.ndarray:
        lam = np.asarray(area, dtype=float) * d0
        return math.log(y0) + self._log_p0(lam, cluster_alpha)

    def _check_area(self, area, method: str) -> np.ndarray:
        a = np.asarray(area, dtype=float)
        if np.any(~np.isfinite(a) | (a < 0)):
            raise YieldkitValueError(
                f"The 'area' argument of {self._where(method)} must be >= 0 [cm^2]. Got {area!r} instead.")
        return a

    def log_yield(self, area):
        """Natural log of the predicted yield, ``log y0 + log P0(area * d0)`` [1], at area(s) ``area`` [cm^2]."""
        self._check_fitted()
        a = self._check_area(area, "log_yield")
        ly = self._log_yield(a, self.d0_, self.cluster_alpha_, self.y0_)
        return float(ly) if np.ndim(ly) == 0 else ly

    def predict(self, area):
        """Predicted yield ``y0 * P0(area * d0)`` [1] for die area(s) ``area`` [cm^2]."""
        self._check_fitted()
        a = self._check_area(area, "predict")
        y = np.exp(self._log_yield(a, self.d0_, self.cluster_alpha_, self.y0_))
        return float(y) if y.ndim == 0 else y

    def defect_lambda(self, area):
        """Mean number of killer defects per die of area ``area`` [cm^2] (``d0 * area``; ``n d0 area`` for
        Bose--Einstein)."""
        self._check_fitted()
        a = self._check_area(area, "defect_lambda")
        lam = self.mean_factor * self.d0_ * a
        return float(lam) if np.ndim(lam) == 0 else lam

    def predict_interval(self, area, conf_level: float | None = None) -> pd.DataFrame:
        """Predicted yield with a confidence interval at each area.

        Returns a DataFrame ``area_cm2, yield, ci_lower, ci_upper``. The interval is mapped
        from the interval of ``d0`` when ``d0`` is the only free parameter (exact for the Garwood
        interval), from bootstrap replicates when the fit has them, and otherwise by the delta
        method on the logit of the yield.
        """
        self._check_fitted()
        level = self.conf_level if conf_level is None else check_conf_level(conf_level, self._where("predict_interval"))
        a = np.atleast_1d(self._check_area(area, "predict_interval")).astype(float)
        y = np.atleast_1d(self.predict(a))
        names = list(self.params_.index)
        if self._replicates is not None and len(self._replicates):
            reps = np.asarray(self._replicates, dtype=float)
            col = {n: reps[:, i] for i, n in enumerate(names)}
            d0 = col["d0"][:, None]
            ca = col.get("cluster_alpha", np.full(len(reps), self.cluster_alpha_))[:, None]
            y0 = col.get("y0", np.full(len(reps), self.y0_))[:, None]
            ys = np.exp(np.log(y0) + self._log_p0(a[None, :] * d0, ca))
            q = (1 - level) / 2
            lo, hi = np.nanquantile(ys, q, axis=0), np.nanquantile(ys, 1 - q, axis=0)
        elif names == ["d0"] and level == self.conf_level:
            d_lo, d_hi = (float(v) for v in self.ci_.loc["d0"].to_numpy())
            lo = np.exp(self._log_yield(a, d_hi, self.cluster_alpha_, self.y0_)) if np.isfinite(d_hi) else np.zeros_like(a)
            hi = np.exp(self._log_yield(a, d_lo, self.cluster_alpha_, self.y0_))
        else:
            lo, hi = _fitting.delta_yield_interval(self, a, level)
        return pd.DataFrame({"area_cm2": a, "yield": y, "ci_lower": lo, "ci_upper": hi})

    def bootstrap(self, n_boot: int = 1000, random_state: Any = None) -> pd.DataFrame:
        """Parameter estimates on bootstrap replicates of the fitted data, one row per replicate.

        Wafers are resampled when the fit knows them (a ``die_defect_counts`` table, the window
        method); otherwise dies (per-die counts, the dies of each product). Replicates that do
        not converge are dropped with a :class:`ConvergenceWarning`.

        Raises
        ------
        NotFittedError
            Before ``fit``, or on a model restored by ``from_dict`` (which holds no data).
        """
        self._check_fitted()
        if getattr(self, "_cells", None) is None:
            raise NotFittedError(f"{type(self).__name__}.bootstrap needs the fitted data; a model loaded "
                                 "from a file holds only its estimates. Refit it.")
        if not (isinstance(n_boot, (int, np.integer)) and n_boot >= 1):
            raise YieldkitValueError(f"The 'n_boot' argument of {self._where('bootstrap')} must be an integer >= 1. "
                                     f"Got {n_boot!r} instead.")
        rng = np.random.default_rng(random_state)
        reps = _fitting.bootstrap_params(self, int(n_boot), rng)
        return pd.DataFrame(reps, columns=list(self.params_.index))

    # ------------------------------------------------------------ repr / persistence
    def __repr__(self) -> str:
        name = type(self).__name__
        if not hasattr(self, "params_"):
            hyper = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items()
                              if v != inspect.signature(type(self).__init__).parameters[k].default)
            return f"{name}({hyper})"
        est = ", ".join(f"{k}={v:.4g}" for k, v in self.params_.items())
        what = f"{self.n_obs_:,} dies" if self.route_ != "die-size" else f"{self.n_obs_:,} dies of {len(self._cells_or_empty())} products"
        formula = f"; {self._formula}" if self._formula else ""
        return f"<{name}: {est}; fitted on {what} by the {self.route_} route, pooling={self.pooling_}{formula}>"

    def _cells_or_empty(self):
        c = getattr(self, "_cells", None)
        return c.exposure if isinstance(c, BinomialCells) else []

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable description of the model and its fit (non-finite numbers as strings)."""
        from ._persist import model_to_dict

        return model_to_dict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> YieldModel:
        """Rebuild a model (fitted or not) from :meth:`to_dict` output."""
        from ._persist import model_from_dict

        return model_from_dict(d, expected=cls)

    # ------------------------------------------------------------ count-route diagnostics
    def count_pmf(self, k, area=None) -> np.ndarray:
        """Fitted probability of ``k`` defects on a die of ``area`` [cm^2] (default: the fit's area)."""
        self._check_fitted()
        a = self.area_ if area is None else area
        if a is None:
            raise YieldkitValueError(f"The 'area' argument of {self._where('count_pmf')} is required for this fit.")
        k = np.asarray(k, dtype=np.int64)
        mu = self.mean_factor * self.d0_ * float(a) * np.ones(k.shape)
        return np.exp(self._count_log_pmf(k, mu, self.cluster_alpha_))

    def zero_count_upper_d0(self, conf_level: float | None = None) -> float | None:
        """Exact upper limit of ``d0`` [defects/cm^2] of a fit to all-zero counts, else None.

        ``P(all zero | d0) = (1 - conf_level) / 2`` on the fitted data; a model loaded from a file
        (which holds no data) gives the limit of its own ``ci_`` at its own level only.
        """
        self._check_fitted()
        level = self.conf_level if conf_level is None else check_conf_level(conf_level, self._where("zero_count_upper_d0"))
        if self.d0_ != 0.0 or self.route_ != "counts":
            return None
        cells = getattr(self, "_cells", None)
        if cells is not None and cells.total == 0:
            return _fitting._all_zero_upper(self, cells, level)
        upper = float(self.ci_.loc["d0", "ci_upper"])
        return upper if level == self.conf_level and math.isfinite(upper) and upper > 0 else None

