"""Fitted Seeds (exponential-density) yield model ``Y = y0 / (1 + A d0)``."""

from __future__ import annotations

import numpy as np

from .base import YieldModel
from .functions import _log_seeds

__all__ = ["SeedsYield"]


class SeedsYield(YieldModel, name="seeds"):
    """Seeds' yield model ``Y = y0 / (1 + A d0)``: an exponential density distribution.

    The negative binomial with ``cluster_alpha = 1`` (``cluster_alpha_`` reports 1.0);
    counts are geometric with mean ``A d0``. Parameters and attributes as in
    :class:`~yieldkit.models.base.YieldModel`.

    Examples
    --------
    >>> import numpy as np, yieldkit as yk
    >>> rng = np.random.default_rng(3)
    >>> counts = rng.poisson(rng.exponential(0.3, size=10000))
    >>> m = yk.SeedsYield().fit(counts, area=1.0)
    >>> round(m.d0_, 2), m.cluster_alpha_
    (0.3, 1.0)
    """

    _formula = "Y = y0 / (1 + A d0)"

    @property
    def fixed_cluster_alpha(self) -> float:
        return 1.0

    def _log_p0(self, lam, cluster_alpha):
        return _log_seeds(np.asarray(lam, dtype=float))
