"""Fitted Bose--Einstein yield model ``Y = y0 (1 + A d0)^(-n)`` over ``n`` critical layers."""

from __future__ import annotations

import numpy as np

from ..errors import YieldkitValueError
from .base import YieldModel
from .functions import _log_bose_einstein

__all__ = ["BoseEinsteinYield"]


class BoseEinsteinYield(YieldModel, name="bose-einstein"):
    """Bose--Einstein yield model ``Y = y0 (1 + A d0)^(-n_layers)``, ``d0`` per critical layer.

    Parameters
    ----------
    n_layers : int
        Number of critical layers (>= 1).
    conf_level, ci_method, fit_y0, n_boot, random_state
        See :class:`~yieldkit.models.base.YieldModel`.

    Notes
    -----
    ``d0_`` is the density *per layer* (as in :func:`~yieldkit.models.bose_einstein_yield`);
    the mean number of defects per die is ``n_layers * d0 * A`` (:meth:`defect_lambda`). Counts
    are negative binomial with ``cluster_alpha = n_layers``, which ``cluster_alpha_`` reports.

    References
    ----------
    .. [1] J. E. Price, "A new look at yield of integrated circuits", Proc. IEEE 58(8),
       1290-1291 (1970). doi:10.1109/PROC.1970.7911

    Examples
    --------
    >>> import numpy as np, yieldkit as yk
    >>> rng = np.random.default_rng(2)
    >>> counts = rng.negative_binomial(4, 4 / (4 + 0.8), size=20000)  # 4 layers, 0.2 /cm^2 each, 1 cm^2
    >>> m = yk.BoseEinsteinYield(n_layers=4).fit(counts, area=1.0)
    >>> round(m.d0_, 2), m.defect_lambda(1.0) > 0.75
    (0.2, True)
    """

    _formula = "Y = y0 (1 + A d0)^(-n_layers)"

    def __init__(self, n_layers: int = 1, *, conf_level: float = 0.95, ci_method: str = "auto",
                 fit_y0: bool = True, n_boot: int = 200, random_state=None) -> None:
        super().__init__(conf_level=conf_level, ci_method=ci_method, fit_y0=fit_y0, n_boot=n_boot,
                         random_state=random_state)
        self.n_layers = n_layers

    def _validate_hyper(self, where: str) -> None:
        super()._validate_hyper(where)
        if not (isinstance(self.n_layers, (int, np.integer)) and self.n_layers >= 1):
            raise YieldkitValueError(f"The 'n_layers' argument of BoseEinsteinYield must be an integer >= 1. "
                                     f"Got {self.n_layers!r} instead.")

    @property
    def fixed_cluster_alpha(self) -> float:
        return float(self.n_layers)

    @property
    def mean_factor(self) -> float:
        return float(self.n_layers)

    def _log_p0(self, lam, cluster_alpha):
        return _log_bose_einstein(np.asarray(lam, dtype=float), float(self.n_layers))
