"""Yield from critical areas: ``lam = sum_i A_c,i D_i`` over defect mechanisms."""

from __future__ import annotations

import numpy as np

from .._validation import as_nonnegative, as_positive, as_yield_fraction, check_choice
from ..errors import YieldkitValueError
from .functions import _log_nb, _out

__all__ = ["CRITICAL_AREA_MODELS", "critical_area_yield"]

CRITICAL_AREA_MODELS = ("poisson", "nb-independent", "nb-common")


def critical_area_yield(d0, critical_area, *, model: str = "poisson", cluster_alpha=None, y0=1.0):
    """Yield of a die whose defect mechanisms ``i`` have critical areas ``A_c,i`` and densities ``D_i``.

    Parameters
    ----------
    d0 : array_like, shape (..., n_mechanisms)
        Defect density of each mechanism [defects/cm^2] along the last axis.
    critical_area : array_like, shape (..., n_mechanisms)
        Critical area of each mechanism [cm^2], broadcast against ``d0``.
    model : {"poisson", "nb-independent", "nb-common"}
        ``"poisson"``: ``Y = exp(-sum lam_i)``; ``"nb-independent"``: every mechanism has its
        own gamma factor, ``Y = prod_i (1 + lam_i / alpha_i)^(-alpha_i)``; ``"nb-common"``: one
        gamma factor shared by all mechanisms, ``Y = (1 + sum_i lam_i / alpha)^(-alpha)``.
    cluster_alpha : float or array_like, optional
        Clustering parameter(s) [1]: one per mechanism (or a scalar) for ``"nb-independent"``,
        a scalar for ``"nb-common"``. Required for both negative-binomial forms; ``inf`` allowed.
    y0 : float, optional
        Systematic yield in (0, 1] [1].

    Returns
    -------
    float or ndarray
        Yield [1], shape of the broadcast inputs without the last axis.

    Raises
    ------
    YieldkitValueError
        Unknown ``model``, a missing or non-positive ``cluster_alpha``, negative areas or densities.

    Notes
    -----
    ``lam_i = A_c,i D_i`` is the mean number of faults of mechanism ``i``. With a common
    gamma factor the mechanisms are fully correlated in their clustering; with independent
    factors they are not; the common factor gives the higher yield for the same ``lam`` (the
    defects of all mechanisms crowd onto the same dies). Both tend to the
    Poisson form as ``alpha -> inf``.

    References
    ----------
    .. [1] C. H. Stapper, "On yield, fault distributions, and clustering of particles",
       IBM J. Res. Dev. 30(3), 326-338 (1986). doi:10.1147/rd.303.0326

    Examples
    --------
    >>> import yieldkit as yk
    >>> round(yk.critical_area_yield([1.0, 0.4], [0.2, 0.5]), 6)
    0.67032
    >>> round(yk.critical_area_yield([1.0, 0.4], [0.2, 0.5], model="nb-common", cluster_alpha=2.0), 6)
    0.694444
    """
    where = "critical_area_yield"
    check_choice(model, CRITICAL_AREA_MODELS, name="model", where=where)
    ac = np.atleast_1d(as_nonnegative(critical_area, "critical_area", where))
    d = np.atleast_1d(as_nonnegative(d0, "d0", where))
    lam = ac * d
    yy0 = as_yield_fraction(y0, "y0", where)
    if model == "poisson":
        return _out(yy0 * np.exp(-lam.sum(axis=-1)))
    if cluster_alpha is None:
        raise YieldkitValueError(f"The 'cluster_alpha' argument of {where} is required for model={model!r}.")
    a = as_positive(cluster_alpha, "cluster_alpha", where, allow_inf=True)
    if model == "nb-common":
        if a.ndim != 0:
            raise YieldkitValueError(
                f"The 'cluster_alpha' argument of {where} must be a scalar for model='nb-common'. "
                f"Got shape {a.shape} instead."
            )
        return _out(yy0 * np.exp(_log_nb(lam.sum(axis=-1), a)))
    return _out(yy0 * np.exp(_log_nb(lam, a).sum(axis=-1)))
