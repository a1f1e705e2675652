"""Fitted Murphy yield model (triangular or rectangular density distribution)."""

from __future__ import annotations

import numpy as np

from ..errors import YieldkitValueError
from .base import YieldModel
from .functions import MURPHY_KINDS, _log_murphy

__all__ = ["MurphyYield"]


class MurphyYield(YieldModel):
    """Murphy's yield model: ``Y = y0 ((1 - e^{-A d0}) / (A d0))^2`` (triangular) or
    ``Y = y0 (1 - e^{-2 A d0}) / (2 A d0)`` (rectangular).

    Parameters
    ----------
    kind : {"triangular", "rectangular"}
        Distribution of the defect density over dies (on ``[0, 2 d0]``).
    conf_level, ci_method, fit_y0, n_boot, random_state
        See :class:`~yieldkit.models.base.YieldModel`.

    Notes
    -----
    From counts the likelihood is that of the Poisson count mixed over the density
    distribution: rectangular ``P(k) = P(k+1, 2 mu) / (2 mu)``; triangular
    ``P(k) = [(k+1)(2 P(k+2, mu) - P(k+2, 2 mu)) + 2 mu (P(k+1, 2 mu) - P(k+1, mu))] / mu^2``, with
    ``P`` the regularised lower incomplete gamma function and ``mu = A d0``. Both are evaluated in
    log space (a series where ``P`` underflows; the equivalent upper-gamma form where ``mu`` is
    large against ``k``), so that the likelihood stays exact for tiny mean counts per die.
    ``cluster_alpha_`` is ``inf`` (the model has no clustering parameter).

    References
    ----------
    .. [1] B. T. Murphy, "Cost-size optima of monolithic integrated circuits",
       Proc. IEEE 52(12), 1537-1545 (1964). doi:10.1109/PROC.1964.3442

    Examples
    --------
    >>> import numpy as np, yieldkit as yk
    >>> rng = np.random.default_rng(5)
    >>> dens = 0.5 * rng.triangular(0, 1, 2, size=20000)
    >>> m = yk.MurphyYield().fit(rng.poisson(dens * 2.0), area=2.0)
    >>> round(m.d0_, 2)
    0.5
    """

    _model = "murphy"
    _formula = "Y = y0 ((1 - exp(-A d0)) / (A d0))^2"

    def __init__(self, kind: str = "triangular", *, conf_level: float = 0.95, ci_method: str = "auto",
                 fit_y0: bool = True, n_boot: int = 200, random_state=None) -> None:
        super().__init__(conf_level=conf_level, ci_method=ci_method, fit_y0=fit_y0, n_boot=n_boot,
                         random_state=random_state)
        self.kind = kind

    def _validate_hyper(self, where: str) -> None:
        super()._validate_hyper(where)
        if self.kind not in MURPHY_KINDS:
            raise YieldkitValueError(f"The 'kind' argument of MurphyYield must be one of "
                                     f"{', '.join(map(repr, MURPHY_KINDS))}. Got {self.kind!r} instead.")

    def _log_p0(self, lam, cluster_alpha):
        return _log_murphy(np.asarray(lam, dtype=float), self.kind)

    def _count_spec(self):
        return ("murphy", np.nan, 1.0)
