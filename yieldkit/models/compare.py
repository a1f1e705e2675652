"""Fit several yield models by one route and compare them in one table."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from .._validation import check_choice
from ..errors import YieldkitValueError
from ..results import TableResult
from .base import YieldModel
from .registry import model_class

__all__ = ["MODEL_NAMES", "ROUTES", "ModelComparison", "compare_models", "make_model"]

#: The package's models, compared by ``models="all"`` (other registered models are compared when named).
MODEL_NAMES = ("poisson", "nb", "murphy", "seeds", "bose-einstein")
ROUTES = ("counts", "window", "die-size")
#: Routes whose log-likelihood is that of independent data, so that a likelihood-ratio test applies.
_LR_ROUTES = ("counts", "die-size")


@dataclass(frozen=True, repr=False)
class ModelComparison(TableResult):
    """Yield models fitted by one route and ranked (from :func:`compare_models`).

    Attributes
    ----------
    table : DataFrame
        One row per model, best first (columns in :func:`compare_models`).
    models : dict of str to YieldModel
        The fitted models by name (models that failed to fit are absent).
    route : str
        Fitting route: ``"counts"``, ``"window"`` or ``"die-size"``.
    criterion : str
        Ranking criterion: ``"aic"``, ``"bic"`` or ``"loglik"``.
    conf_level : float
        Confidence level of the fits.
    """

    table: pd.DataFrame
    models: dict[str, YieldModel] = field(default_factory=dict)
    route: str = "counts"
    criterion: str = "aic"
    conf_level: float = 0.95

    @property
    def best(self) -> YieldModel | None:
        """The best-ranked fitted model (None when none could be fitted)."""
        for name in self.table.get("model", ()):
            if name in self.models:
                return self.models[name]
        return None

    def __repr__(self) -> str:
        ranked = [m for m in self.table.get("model", ()) if m in self.models]
        return (f"ModelComparison(route={self.route!r}, criterion={self.criterion!r}, ranking={ranked}, "
                f"failed={len(self.table) - len(ranked)})")


def make_model(name: str, **kwargs: Any) -> YieldModel:
    """A model by its registered name: ``poisson``, ``nb``, ``murphy``, ``seeds``, ``bose-einstein``
    or the name of any other :class:`~yieldkit.models.YieldModel` subclass.

    The hyperparameters ``n_layers`` (default 1) and ``kind`` (default ``"triangular"``) go to the
    models that take them; other keywords go to every model.
    """
    cls = model_class(name)
    shared = {"n_layers": kwargs.pop("n_layers", 1), "kind": kwargs.pop("kind", "triangular")}
    accepted = cls._param_names_init()
    return cls(**{k: v for k, v in shared.items() if k in accepted}, **kwargs)


def _fit(model: YieldModel, route: str, data, area, route_kwargs: dict) -> YieldModel:
    if route == "counts":
        return model.fit(data, area=area, **route_kwargs)
    if route == "window":
        return model.fit_window(data, area, **route_kwargs)
    return model.fit_die_sizes(data, **route_kwargs)


def compare_models(
    data,
    area=None,
    *,
    route: str = "counts",
    models: Sequence[str] | str = "all",
    predict_areas: Sequence[float] | None = None,
    criterion: str = "aic",
    n_layers: int = 1,
    kind: str = "triangular",
    conf_level: float = 0.95,
    **route_kwargs: Any,
) -> ModelComparison:
    """Fit several yield models by one route and rank them.

    Parameters
    ----------
    data : array_like or DataFrame
        Per-die counts, a ``die_defect_counts`` table or its :class:`~yieldkit.models.CountHistogram`
        (``route="counts"``), a canonical die table
        (``"window"``), or a ``die_area_cm2, tested, good`` table (``"die-size"``).
    area : float, optional
        Die area [cm^2] (counts and window routes).
    route : {"counts", "window", "die-size"}
        Fitting route.
    models : "all" or sequence of str
        Among ``poisson, nb, murphy, seeds, bose-einstein``.
    predict_areas : sequence of float, optional
        Areas [cm^2] at which to report predicted yields (default: the fit's area, or the
        areas of the die-size table).
    criterion : {"aic", "bic", "loglik"}
        Ranking, best first.
    n_layers, kind : optional
        Hyperparameters of the Bose--Einstein and Murphy models.
    conf_level : float
        Confidence level of the fits.
    **route_kwargs
        Passed to the route's fit method (``count_col``, ``exclude``, ``block_sizes`` ...).

    Returns
    -------
    ModelComparison
        ``.models``: the fitted models by name; ``.table``: one row per model, best first: ``model, n_params, loglik, aic, bic, d0, cluster_alpha, y0,
        lambda_per_cm2`` (mean defects per cm^2: ``n_layers d0`` for Bose--Einstein), ``yield@<A>``
        columns, and for Poisson the likelihood-ratio test against the nesting negative binomial
        (``lr_stat``, ``lr_pvalue`` with the boundary-corrected ``0.5 P(chi2_1 > LR)``) on the counts
        and die-size routes. The window route has no such test: its blocks of different sizes share
        dies, so its block likelihood is not the likelihood of independent data (compare its fits
        by the bootstrap intervals instead).
        Models that fail to fit are listed with an ``error`` message.

    Raises
    ------
    YieldkitValueError
        Unknown route, model name or criterion.

    Examples
    --------
    >>> import numpy as np, yieldkit as yk
    >>> rng = np.random.default_rng(11)
    >>> counts = rng.poisson(rng.gamma(1.5, 0.6 / 1.5, size=8000))
    >>> comp = yk.compare_models(counts, area=1.0, models=["poisson", "nb", "seeds"])
    >>> comp.table["model"].iloc[0], type(comp.best).__name__
    ('nb', 'NegativeBinomialYield')
    """
    check_choice(route, ROUTES, name="route", where="compare_models")
    check_choice(criterion, ("aic", "bic", "loglik"), name="criterion", where="compare_models")
    names = list(MODEL_NAMES) if models == "all" else ([models] if isinstance(models, str) else list(models))
    fitted: dict[str, YieldModel] = {}
    rows: list[dict[str, Any]] = []
    for name in names:
        model = make_model(name, n_layers=n_layers, kind=kind, conf_level=conf_level)
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                _fit(model, route, data, area, dict(route_kwargs))
        except YieldkitValueError as exc:
            rows.append({"model": name, "error": str(exc)})
            continue
        fitted[name] = model
        lam_factor = model.mean_factor
        row: dict[str, Any] = {
            "model": name, "n_params": model.n_params_, "loglik": model.loglik_, "aic": model.aic_,
            "bic": model.bic_, "d0": model.d0_, "cluster_alpha": model.cluster_alpha_, "y0": model.y0_,
            "lambda_per_cm2": lam_factor * model.d0_,
            "warnings": "; ".join(sorted({str(w.message) for w in caught})) or "",
        }
        rows.append(row)
    if predict_areas is None:
        if route == "die-size":
            predict_areas = sorted(np.unique(np.asarray(data["die_area_cm2"] if "die_area_cm2" in data else [], float)))
        elif area is not None and np.ndim(area) == 0:
            predict_areas = [float(area)]
        else:
            predict_areas = []
    for row in rows:
        m = fitted.get(row["model"])
        for a in predict_areas:
            row[f"yield@{a:g}"] = m.predict(a) if m is not None else math.nan
    # the Poisson fit is the negative binomial one on its boundary cluster_alpha = inf
    nesting = next((n for n, m in fitted.items() if m.negative_binomial_form and m._free_shape
                    and m.mean_factor == 1.0), None)
    if route in _LR_ROUTES and nesting is not None:
        for row in rows:
            m = fitted.get(row["model"])
            if m is not None and m.poisson_form:
                lr = max(0.0, 2 * (fitted[nesting].loglik_ - m.loglik_))
                row["lr_stat"], row["lr_pvalue"] = lr, 1.0 if lr == 0 else float(0.5 * stats.chi2.sf(lr, 1))
                row["lr_against"] = nesting
    out = pd.DataFrame(rows)
    if "error" not in out.columns:
        out["error"] = ""
    out["error"] = out["error"].fillna("")
    if criterion in out.columns:
        asc = criterion != "loglik"
        out = out.sort_values(criterion, ascending=asc, na_position="last", kind="stable").reset_index(drop=True)
    return ModelComparison(out, models=fitted, route=route, criterion=criterion, conf_level=conf_level)
