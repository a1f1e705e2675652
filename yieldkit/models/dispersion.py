"""Over-dispersion tests and goodness of fit for per-die defect counts.

A Poisson fit assumes the variance of the counts equals their mean; clustering makes it
larger. These tests say whether the negative binomial is needed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from .._validation import check_choice
from ..errors import NotFittedError, YieldkitValueError
from ..results import TableResult
from ._likelihood import CountCells, nb_fit, nb_loglik
from ._routes import count_cells

__all__ = [
    "GoodnessOfFit",
    "TestResult",
    "cameron_trivedi_test",
    "count_goodness_of_fit",
    "dispersion_index_test",
    "poisson_nb_lr_test",
]


@dataclass(frozen=True)
class TestResult:
    """Result of a test: statistic, p-value, degrees of freedom (if any) and a short description."""

    name: str
    statistic: float
    pvalue: float
    df: float | None = None
    alternative: str = ""

    def to_series(self) -> pd.Series:
        return pd.Series({"statistic": self.statistic, "pvalue": self.pvalue, "df": self.df,
                          "alternative": self.alternative}, name=self.name)


@dataclass(frozen=True, repr=False)
class GoodnessOfFit(TableResult):
    """Observed against fitted count frequencies and Pearson's chi-square (from :func:`count_goodness_of_fit`).

    Attributes
    ----------
    table : DataFrame
        ``count, label, observed, expected``: one row per count class, the last one ``>= k``.
    chi2 : float
        Pearson's chi-square statistic.
    df : int
        Degrees of freedom: classes - 1 - fitted parameters.
    pvalue : float
        ``P(chi2_df > chi2)`` (NaN when ``df`` <= 0).
    zero_fraction_observed, zero_fraction_fitted : float
        Share of defect-free dies in the data and under the fitted model.
    """

    table: pd.DataFrame
    chi2: float
    df: int
    pvalue: float
    zero_fraction_observed: float
    zero_fraction_fitted: float

    def __repr__(self) -> str:
        return (f"GoodnessOfFit(classes={len(self.table)}, chi2={self.chi2:.4g}, df={self.df}, "
                f"pvalue={self.pvalue:.4g})")


def _cells(counts, area, count_col: str, where: str) -> CountCells:
    return count_cells(counts, 1.0 if area is None else area, count_col=count_col, where=where)[0]


def dispersion_index_test(counts, area=None, *, count_col: str = "n_defects") -> TestResult:
    """Index-of-dispersion test: ``D = sum (k - kbar)^2 / kbar`` against chi-square(n - 1).

    Parameters
    ----------
    counts : array_like or DataFrame
        Per-die defect counts (equal die areas), or a ``die_defect_counts`` table.
    area : float, optional
        Ignored except for validation (the test is scale-free for equal areas).
    count_col : str
        Count column of a DataFrame.

    Returns
    -------
    TestResult
        ``statistic = D``, ``df = n - 1``, one-sided p-value ``P(chi2 > D)`` (over-dispersion).

    Raises
    ------
    YieldkitValueError
        Fewer than two dies, or all counts zero.

    References
    ----------
    .. [1] D. R. Cox, P. A. W. Lewis, The Statistical Analysis of Series of Events, Methuen (1966).

    Examples
    --------
    >>> from yieldkit.models import dispersion_index_test
    >>> r = dispersion_index_test([0, 0, 1, 0, 5, 0, 0, 3])
    >>> round(r.statistic, 3), r.df
    (22.111, 7)
    """
    c = _cells(counts, area, count_col, "dispersion_index_test")
    n, mean = c.n, c.total / c.n
    if n < 2 or mean == 0:
        raise YieldkitValueError("dispersion_index_test needs at least two dies and a count that is not all zero.")
    d = float((c.w * (c.k - mean) ** 2).sum() / mean)
    return TestResult("index of dispersion", d, float(stats.chi2.sf(d, n - 1)), int(n - 1), "var > mean")


def cameron_trivedi_test(counts, area=1.0, *, count_col: str = "n_defects", form: str = "nb2") -> TestResult:
    """Cameron--Trivedi regression test of Poisson dispersion.

    With the Poisson fit ``mu = A d0``, regress ``z = ((k - mu)^2 - k) / mu`` without intercept on
    ``mu`` (``form="nb2"``: variance ``mu (1 + a mu)``) or on a constant (``"nb1"``: ``mu (1 + a)``);
    the statistic is the t-ratio of the slope, referred to the standard normal.

    Returns
    -------
    TestResult
        Statistic and two-sided normal p-value (as statsmodels'
        ``test_poisson_dispersion``, rows "CT nb2" / "CT nb1 HC3" differ only in covariance).

    References
    ----------
    .. [1] A. C. Cameron, P. K. Trivedi, "Regression-based tests for overdispersion in the
       Poisson model", J. Econometrics 46(3), 347-364 (1990). doi:10.1016/0304-4076(90)90014-K
    """
    check_choice(form, ("nb2", "nb1"), name="form", where="cameron_trivedi_test")
    c = _cells(counts, area, count_col, "cameron_trivedi_test")
    if c.total == 0:
        raise YieldkitValueError("cameron_trivedi_test: every count is zero.")
    mu = c.total / c.exposure * c.area
    z = ((c.k - mu) ** 2 - c.k) / mu
    x = mu if form == "nb2" else np.ones_like(mu)
    sxx = float((c.w * x * x).sum())
    beta = float((c.w * x * z).sum()) / sxx
    rss = float((c.w * (z - beta * x) ** 2).sum())
    se = math.sqrt(rss / (c.n - 1) / sxx)
    t = beta / se
    return TestResult(f"Cameron-Trivedi {form}", t, float(2 * stats.norm.sf(abs(t))), None,
                      "mu (1 + a mu)" if form == "nb2" else "mu (1 + a)")


def poisson_nb_lr_test(counts, area=1.0, *, count_col: str = "n_defects") -> TestResult:
    """Likelihood-ratio test of Poisson (``cluster_alpha = inf``) against the negative binomial.

    The null lies on the boundary of the parameter space, so the LR statistic is a 50:50
    mixture of chi-square(0) and chi-square(1): ``p = 0.5 P(chi2_1 > LR)`` (1 when LR = 0).

    References
    ----------
    .. [1] S. G. Self, K.-Y. Liang, "Asymptotic properties of maximum likelihood estimators and
       likelihood ratio tests under nonstandard conditions", JASA 82(398), 605-610 (1987).
       doi:10.1080/01621459.1987.10478472

    Examples
    --------
    >>> from yieldkit.models import poisson_nb_lr_test
    >>> poisson_nb_lr_test([0, 1, 0, 1, 1, 0], area=1.0).pvalue
    1.0
    """
    c = _cells(counts, area, count_col, "poisson_nb_lr_test")
    f = nb_fit(c)
    ll0 = nb_loglik(c, c.total / c.exposure if c.exposure else 0.0, math.inf)
    lr = max(0.0, 2 * (f.loglik - ll0))
    p = 1.0 if lr == 0 else float(0.5 * stats.chi2.sf(lr, 1))
    return TestResult("Poisson vs negative binomial LR", lr, p, 1, "cluster_alpha < inf")


def count_goodness_of_fit(model, counts=None, area=None, *, count_col: str = "n_defects",
                          min_expected: float = 5.0) -> GoodnessOfFit:
    """Observed vs fitted frequencies of each defect count, with Pearson's chi-square.

    Classes ``k = 0, 1, ...`` are merged from the top into a final ``>= k`` class until every
    expected frequency is at least ``min_expected``.

    Parameters
    ----------
    model : fitted yield model
        Fitted by the counts route (defaults to its own data and area).
    counts, area : optional
        Other per-die counts (equal areas) to test the fitted model on.

    Returns
    -------
    GoodnessOfFit
        ``.table``: ``count, label, observed, expected`` rows; beside it ``chi2``, ``df``
        (classes - 1 - fitted parameters), ``pvalue``, ``zero_fraction_observed`` and
        ``zero_fraction_fitted``.

    Raises
    ------
    NotFittedError
        The model is not fitted by the counts route (or holds no data and none is given).
    YieldkitValueError
        Per-die areas that differ (classes need one area).
    """
    if getattr(model, "route_", None) != "counts":
        raise NotFittedError("count_goodness_of_fit needs a model fitted by the counts route (model.fit(counts, area=...)).")
    if counts is not None:
        c = count_cells(counts, model.area_ if area is None else area, count_col=count_col,
                        where="count_goodness_of_fit")[0]
    else:
        stored = getattr(model, "_cells", None)
        if stored is None:
            raise NotFittedError("count_goodness_of_fit: the model holds no data (loaded from a file); pass counts=.")
        c = stored
    if np.ptp(c.area) != 0:
        raise YieldkitValueError("count_goodness_of_fit needs dies of one area.")
    a = float(c.area[0])
    n = c.n
    kmax = int(c.k.max())
    ks = np.arange(kmax + 1)
    obs = np.bincount(c.k, weights=c.w, minlength=kmax + 1)
    p = model.count_pmf(ks, a)
    exp = n * p
    exp_tail = n * max(0.0, 1.0 - p.sum())
    # merge from the top into a ">= k" class
    last = kmax
    tail_obs, tail_exp = 0.0, exp_tail
    while last > 0 and (exp[last] + tail_exp) < min_expected:
        tail_obs += obs[last]
        tail_exp += exp[last]
        last -= 1
    labels = [str(k) for k in range(last)] + [f">={last}"]
    o = np.concatenate([obs[:last], [obs[last] + tail_obs]])
    e = np.concatenate([exp[:last], [exp[last] + tail_exp]])
    chi2 = float(((o - e) ** 2 / np.where(e > 0, e, np.nan)).sum())
    df = len(o) - 1 - model.n_params_
    table = pd.DataFrame({"count": np.arange(len(o)), "label": labels, "observed": o, "expected": e})
    return GoodnessOfFit(table, chi2=chi2, df=df, pvalue=float(stats.chi2.sf(chi2, df)) if df > 0 else math.nan,
                         zero_fraction_observed=float(obs[0] / n), zero_fraction_fitted=float(p[0]))
