"""Fitted Poisson yield model ``Y = y0 exp(-A d0)``."""

from __future__ import annotations

import numpy as np

from .base import YieldModel
from .functions import _log_poisson

__all__ = ["PoissonYield"]


class PoissonYield(YieldModel, name="poisson"):
    """Poisson (unclustered) yield model ``Y = y0 exp(-A d0)``.

    Parameters
    ----------
    conf_level, ci_method, fit_y0, n_boot, random_state
        See :class:`~yieldkit.models.base.YieldModel`. From counts the interval of ``d0`` is the
        exact Garwood interval (``ci_method="auto"``).

    Attributes
    ----------
    d0_ : float
        Defect density [defects/cm^2]: total defects / total area from counts.
    cluster_alpha_ : float
        Always ``inf``.
    y0_ : float
        Systematic yield (1 unless fitted by the window or die-size route).
    params_, cov_, ci_, loglik_, aic_, bic_, n_obs_, converged_, area_, route_, pooling_
        See :class:`~yieldkit.models.base.YieldModel`.

    Examples
    --------
    >>> import numpy as np, yieldkit as yk
    >>> counts = np.random.default_rng(1).poisson(0.4, size=5000)
    >>> m = yk.PoissonYield().fit(counts, area=0.8)
    >>> round(m.d0_, 3), m.summary().loc["d0", "unit"]
    (0.506, 'defects/cm^2')
    >>> round(m.predict(0.8), 3)
    0.667
    """

    _formula = "Y = y0 exp(-A d0)"

    def _log_p0(self, lam, cluster_alpha):
        return _log_poisson(np.asarray(lam, dtype=float))
