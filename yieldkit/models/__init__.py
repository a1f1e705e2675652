"""Yield models and their fitting.

Three layers, as in pvlib:

* pure functions of the published models (:func:`poisson_yield`, :func:`negative_binomial_yield`,
  :func:`murphy_yield`, :func:`seeds_yield`, :func:`bose_einstein_yield`, :func:`price_yield`,
  :func:`moore_yield`, :func:`critical_area_yield`) and their inverses (``*_d0``);
* fitted classes in the scikit-learn style (:class:`PoissonYield`, :class:`NegativeBinomialYield`,
  :class:`MurphyYield`, :class:`SeedsYield`, :class:`BoseEinsteinYield`) with three fitting
  routes: per-die defect counts (``fit``), pass/fail maps by the window method (``fit_window``)
  and products of different die sizes (``fit_die_sizes``);
* orchestration: :func:`compare_models`, the dispersion tests, :func:`save_fit`/:func:`load_fit`.

Every fitted class registers under a public name (``class PoissonYield(YieldModel, name="poisson")``);
:func:`model_class` and :func:`registered_models` look them up, so a new model is one new module
(see :mod:`yieldkit.models.base`, "Writing a model").

Units: densities in defects/cm^2, areas in cm^2, yields as fractions. The clustering
parameter is always ``cluster_alpha``; the confidence level is always ``conf_level``.
"""

from __future__ import annotations

from ._persist import load_fit, save_fit
from ._routes import DEFAULT_BLOCKS, block_yields
from .base import YieldModel
from .bose_einstein import BoseEinsteinYield
from .compare import ModelComparison, compare_models, make_model
from .critical_area import critical_area_yield
from .dispersion import (
    GoodnessOfFit,
    TestResult,
    cameron_trivedi_test,
    count_goodness_of_fit,
    dispersion_index_test,
    poisson_nb_lr_test,
)
from .functions import (
    bose_einstein_d0,
    bose_einstein_yield,
    log_murphy_factor,
    moore_d0,
    moore_yield,
    murphy_d0,
    murphy_yield,
    negative_binomial_d0,
    negative_binomial_yield,
    poisson_d0,
    poisson_yield,
    price_d0,
    price_yield,
    seeds_d0,
    seeds_yield,
)
from .histogram import CountHistogram
from .murphy import MurphyYield
from .negative_binomial import NegativeBinomialYield
from .poisson import PoissonYield
from .registry import model_class, registered_models
from .seeds import SeedsYield

MODEL_CLASSES = (PoissonYield, NegativeBinomialYield, MurphyYield, SeedsYield, BoseEinsteinYield)

__all__ = [
    "DEFAULT_BLOCKS",
    "MODEL_CLASSES",
    "BoseEinsteinYield",
    "CountHistogram",
    "GoodnessOfFit",
    "ModelComparison",
    "MurphyYield",
    "NegativeBinomialYield",
    "PoissonYield",
    "SeedsYield",
    "TestResult",
    "YieldModel",
    "block_yields",
    "bose_einstein_d0",
    "bose_einstein_yield",
    "cameron_trivedi_test",
    "compare_models",
    "count_goodness_of_fit",
    "critical_area_yield",
    "dispersion_index_test",
    "load_fit",
    "log_murphy_factor",
    "make_model",
    "model_class",
    "moore_d0",
    "moore_yield",
    "murphy_d0",
    "murphy_yield",
    "negative_binomial_d0",
    "negative_binomial_yield",
    "poisson_d0",
    "poisson_nb_lr_test",
    "poisson_yield",
    "price_d0",
    "price_yield",
    "registered_models",
    "save_fit",
    "seeds_d0",
    "seeds_yield",
]
