"""Monte-Carlo check of the clustered defect level: a fit on simulated yield data predicts the escape rate.

Dies carry negative-binomially clustered faults (mean lambda, clustering alpha); the test detects
each fault independently with probability T. A die ships when no fault is detected; it escapes
when it ships with a fault. A yield model is fitted on one simulated sample, and its predicted
defect level (with its interval) is compared with the escape rate of a large independent
population, the known truth. Williams-Brown, fed the same yield, is off by ~+10 %.

Measured with the seed below (lambda = 0.5, alpha = 2, 20,000 dies fitted, 4e6 dies of truth),
in DPPM: simulated escapes / NegativeBinomialYield prediction [95 % delta interval] / Williams-Brown
  T = 0.9:   39,662 / 40,118 [39,021, 41,244] / 44,104 (+11.2 %)
  T = 0.99:   3,992 /  4,050 [ 3,935,  4,169] /  4,501 (+12.7 %)
  T = 0.999:    396 /    405 [   394,    417] /    451 (+14.0 %)
With the true yield the Williams-Brown excess tends to (1 + l/a) ln(1 + l/a) / (l/a) - 1 = 11.6 %
as T -> 1; for lambda = 1, alpha = 0.5 it is +58 % at T = 0.9 and +65 % at T = 0.999.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import optimize, stats

from yieldkit.quality import defect_level, negative_binomial_defect_level, williams_brown

LAM, ALPHA, AREA = 0.5, 2.0, 1.0  # faults per die, clustering, die area [cm^2]
COVERAGES = (0.9, 0.99, 0.999)
N_FIT, N_TRUTH = 20_000, 4_000_000


def _escape_rates(rng, n, lam, alpha, coverages):
    counts = rng.negative_binomial(alpha, alpha / (alpha + lam), size=n)
    faulty = counts > 0
    rates = []
    for t in coverages:
        undetected = rng.binomial(counts, 1.0 - t)
        ships = undetected == counts
        rates.append((ships & faulty).sum() / ships.sum())
    return np.array(rates)


class _NBCountFit:
    """An independent NB maximum-likelihood fit (scipy.stats.nbinom), with the yield-model attributes."""

    def __init__(self, counts, area):
        values, freq = np.unique(counts, return_counts=True)

        def nll(theta):
            mean, alpha = math.exp(theta[0]), math.exp(theta[1])
            return -np.sum(freq * stats.nbinom.logpmf(values, alpha, alpha / (alpha + mean)))

        res = optimize.minimize(nll, [math.log(counts.mean() + 1e-9), 0.0], method="Nelder-Mead",
                                options={"xatol": 1e-10, "fatol": 1e-10, "maxiter": 4000})
        theta = res.x
        h = 1e-4
        hess = np.empty((2, 2))
        eye = np.eye(2) * h
        for i in range(2):
            for j in range(2):
                hess[i, j] = (nll(theta + eye[i] + eye[j]) - nll(theta + eye[i] - eye[j])
                              - nll(theta - eye[i] + eye[j]) + nll(theta - eye[i] - eye[j])) / (4 * h * h)
        cov_theta = np.linalg.inv(hess)
        mean, alpha = np.exp(theta)
        jac = np.diag([mean / area, alpha])  # d(d0, alpha) / d(log mean, log alpha)
        self.d0_, self.cluster_alpha_, self.y0_, self.area_ = mean / area, alpha, 1.0, area
        self.params_ = pd.Series({"d0": self.d0_, "cluster_alpha": alpha})
        self.cov_ = pd.DataFrame(jac @ cov_theta @ jac.T, index=self.params_.index, columns=self.params_.index)


@pytest.fixture(scope="module")
def simulation():
    rng = np.random.default_rng(20261128)
    fit_counts = rng.negative_binomial(ALPHA, ALPHA / (ALPHA + LAM * AREA), size=N_FIT)
    truth = _escape_rates(rng, N_TRUTH, LAM * AREA, ALPHA, COVERAGES)
    return fit_counts, truth


def _check(fit, fit_counts, truth):
    res = defect_level(fit, list(COVERAGES))
    observed_yield = float(np.mean(fit_counts == 0))
    wb = np.asarray(williams_brown(observed_yield, list(COVERAGES)))
    for i, t in enumerate(COVERAGES):
        lo, hi = res["ci_lower"][i], res["ci_upper"][i]
        assert lo <= truth[i] <= hi, (t, lo, truth[i], hi)
        # the interval is informative: narrower than +/- 15 %
        assert hi / lo < 1.35
        # Williams-Brown with the same yield overestimates the escapes by ~10 % (outside the interval)
        assert wb[i] > hi
        assert 1.05 < wb[i] / truth[i] < 1.18
    return res, wb


def test_clustered_prediction_matches_simulated_escapes_independent_fit(simulation):
    """Seeded Monte Carlo with known truth (lambda = 0.5, alpha = 2): NB fit by scipy.stats.nbinom MLE."""
    fit_counts, truth = simulation
    # the truth population agrees with the closed form itself (4e6 dies; >= 1,000 escapes at T = 0.999)
    exact = negative_binomial_defect_level(LAM * AREA, list(COVERAGES), ALPHA)
    assert truth == pytest.approx(exact, rel=0.06)
    _check(_NBCountFit(fit_counts, AREA), fit_counts, truth)


def test_clustered_prediction_matches_simulated_escapes_yieldkit_fit(simulation):
    """The same check with yieldkit's own NegativeBinomialYield fit on the simulated counts."""
    models = pytest.importorskip("yieldkit.models")
    fit_counts, truth = simulation
    fit = models.NegativeBinomialYield().fit(fit_counts, area=AREA)
    res, _ = _check(fit, fit_counts, truth)
    boot = defect_level(fit, list(COVERAGES), interval="bootstrap", n_boot=200, random_state=3)
    for i in range(len(COVERAGES)):
        assert boot["ci_lower"][i] <= truth[i] <= boot["ci_upper"][i]
        assert boot["ci_lower"][i] == pytest.approx(res["ci_lower"][i], rel=0.1)


def test_defect_level_for_non_negative_binomial_models(rng):
    """Murphy and Bose-Einstein fits: DL = 1 - Y(A) / Y(T A) (detection thins the Poisson mean D A to D T A).

    References: Murphy's triangular density integrated numerically with scipy.integrate.quad;
    Bose-Einstein's closed form 1 - [(1 + T A D0) / (1 + A D0)]^n.
    """
    models = pytest.importorskip("yieldkit.models")
    from scipy import integrate

    counts = rng.poisson(rng.gamma(3.0, 0.4 / 3.0, size=4000))
    area, t = 1.3, np.array([0.9, 0.99, 0.999])
    murphy = models.MurphyYield().fit(counts, area=area)
    d0 = murphy.d0_

    def tri(x):  # triangular density on [0, 2 d0], mode d0
        return np.where(x < d0, x / d0**2, (2 * d0 - x) / d0**2)

    def p0(a):
        return integrate.quad(lambda x: math.exp(-a * x) * tri(x), 0, 2 * d0, points=[d0], epsabs=1e-14)[0]

    expected = [1 - p0(area) / p0(ti * area) for ti in t]
    res = defect_level(murphy, t)
    assert res["defect_level"].to_numpy() == pytest.approx(expected, rel=1e-7)
    assert (res["ci_lower"] < res["defect_level"]).all() and (res["defect_level"] < res["ci_upper"]).all()
    assert res["shipped_fraction"].to_numpy() == pytest.approx(murphy.predict(t * area), rel=1e-12)
    boot = defect_level(murphy, t, interval="bootstrap", n_boot=40, random_state=1)
    assert (boot["ci_lower"] < boot["defect_level"]).all() and (boot["defect_level"] < boot["ci_upper"]).all()

    be = models.BoseEinsteinYield(n_layers=3).fit(counts, area=area)
    n, ad = 3.0, area * be.d0_
    res = defect_level(be, t)
    assert res["defect_level"].to_numpy() == pytest.approx(1 - ((1 + t * ad) / (1 + ad)) ** n, rel=1e-9)
    assert (res["ci_lower"] < res["defect_level"]).all() and (res["defect_level"] < res["ci_upper"]).all()
