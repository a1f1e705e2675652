"""Fitted negative-binomial yield model ``Y = y0 (1 + A d0 / alpha)^(-alpha)``."""

from __future__ import annotations

import numpy as np

from .base import YieldModel
from .functions import _log_nb

__all__ = ["NegativeBinomialYield"]


class NegativeBinomialYield(YieldModel, name="nb"):
    """Negative-binomial (clustered) yield model ``Y = y0 (1 + A d0 / cluster_alpha)^(-cluster_alpha)``.

    Parameters
    ----------
    conf_level, ci_method, fit_y0, n_boot, random_state
        See :class:`~yieldkit.models.base.YieldModel`; from counts the intervals are profile
        likelihood intervals by default (the upper limit of ``cluster_alpha`` may be ``inf``).

    Attributes
    ----------
    d0_ : float
        Mean defect density [defects/cm^2].
    cluster_alpha_ : float
        Clustering parameter [1]; ``inf`` when the counts are not over-dispersed (the divisor-n
        variance does not exceed the mean), with a :class:`~yieldkit.errors.BoundaryWarning`.
    y0_, params_, cov_, ci_, loglik_, aic_, bic_, n_obs_, converged_, area_
        See :class:`~yieldkit.models.base.YieldModel`.

    Notes
    -----
    From counts the estimate is the NB2 maximum-likelihood estimate with exposure ``A`` (the
    same as a negative-binomial regression with only an intercept and ``log A`` offset; its
    ``alpha`` is ``1 / cluster_alpha``), found through the profile score in ``log cluster_alpha``
    on the histogram of counts.

    References
    ----------
    .. [1] C. H. Stapper, "On yield, fault distributions, and clustering of particles",
       IBM J. Res. Dev. 30(3), 326-338 (1986). doi:10.1147/rd.303.0326
    .. [2] A. C. Cameron, P. K. Trivedi, Regression Analysis of Count Data, 2nd ed.,
       Cambridge University Press (2013), ch. 3. doi:10.1017/CBO9781139013567

    Examples
    --------
    >>> import numpy as np, yieldkit as yk
    >>> rng = np.random.default_rng(7)
    >>> counts = rng.poisson(rng.gamma(2.0, 0.5 / 2.0, size=20000))
    >>> m = yk.NegativeBinomialYield().fit(counts, area=1.0)
    >>> print(f"{m.d0_:.2f} {m.cluster_alpha_:.1f}")
    0.49 2.1
    >>> list(m.summary().columns)
    ['estimate', 'std_err', 'ci_lower', 'ci_upper', 'unit']
    """

    _formula = "Y = y0 (1 + A d0 / cluster_alpha)^(-cluster_alpha)"
    _free_shape = True

    def _log_p0(self, lam, cluster_alpha):
        return _log_nb(np.asarray(lam, dtype=float), np.asarray(cluster_alpha, dtype=float))
