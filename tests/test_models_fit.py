"""Fitting yield models to per-die defect counts: references, intervals, dispersion tests."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, optimize, stats

import yieldkit as yk
from yieldkit.errors import BoundaryWarning, NotFittedError, ParseError, SchemaError, YieldkitValueError
from yieldkit.models import (
    cameron_trivedi_test,
    count_goodness_of_fit,
    dispersion_index_test,
    load_fit,
    poisson_nb_lr_test,
    save_fit,
)


def nb_counts(rng, n, d0, alpha, area):
    return rng.poisson(rng.gamma(alpha, d0 / alpha, size=n) * area)


def test_nb_fit_equals_statsmodels(rng):
    """Reference: statsmodels NegativeBinomial (NB2, intercept only, exposure = area; its alpha is
    1/cluster_alpha), optimised tightly; estimates agree to 1e-6 relative, log-likelihoods to 1e-9."""
    sm = pytest.importorskip("statsmodels.api")
    area = 0.63
    counts = nb_counts(rng, 4000, 0.9, 1.7, area)
    m = yk.NegativeBinomialYield().fit(counts, area=area)
    res = sm.NegativeBinomial(counts, np.ones((len(counts), 1)), exposure=np.full(len(counts), area),
                              loglike_method="nb2").fit(disp=0, method="newton", maxiter=200, tol=1e-14)
    assert m.d0_ == pytest.approx(math.exp(res.params[0]), rel=1e-6)
    assert m.cluster_alpha_ == pytest.approx(1 / res.params[1], rel=1e-6)
    assert m.loglik_ == pytest.approx(res.llf, rel=1e-9)
    # standard error of log d0 from the observed information agrees too
    se_log_d0 = math.sqrt(m.cov_.loc["d0", "d0"]) / m.d0_
    assert se_log_d0 == pytest.approx(res.bse[0], rel=1e-3)


def test_nb_fit_unequal_areas_equals_statsmodels(rng):
    """Per-die exposures that differ: the inner Newton step for d0 at fixed alpha (statsmodels ref, 1e-6)."""
    sm = pytest.importorskip("statsmodels.api")
    area = rng.choice([0.3, 0.7, 1.4], size=3000)
    counts = rng.poisson(rng.gamma(1.2, 0.8 / 1.2, size=3000) * area)
    m = yk.NegativeBinomialYield().fit(counts, area=area)
    res = sm.NegativeBinomial(counts, np.ones((len(counts), 1)), exposure=area,
                              loglike_method="nb2").fit(disp=0, method="newton", maxiter=200, tol=1e-14)
    assert m.d0_ == pytest.approx(math.exp(res.params[0]), rel=1e-6)
    assert m.cluster_alpha_ == pytest.approx(1 / res.params[1], rel=1e-6)


def test_histogram_cost_is_independent_of_dies(rng):
    counts = nb_counts(rng, 200_000, 0.5, 2.0, 1.0)
    m = yk.NegativeBinomialYield(ci_method="wald").fit(counts, area=1.0)
    assert len(m._cells.k) < 40 and m.n_obs_ == 200_000


def test_alpha_infinite_when_variance_not_above_mean():
    """STYLE rule: divisor-n variance <= mean -> cluster_alpha = inf (Poisson), not an optimiser bound."""
    counts = np.array([0, 2] * 50)  # mean 1, divisor-n variance 1
    with pytest.warns(BoundaryWarning, match="does not exceed their mean"):
        m = yk.NegativeBinomialYield().fit(counts, area=2.0)
    assert m.cluster_alpha_ == math.inf
    assert m.d0_ == pytest.approx(0.5, rel=1e-15)
    assert m.ci_.loc["cluster_alpha", "ci_upper"] == math.inf
    assert 0 < m.ci_.loc["cluster_alpha", "ci_lower"] < math.inf
    assert m.predict(1.0) == pytest.approx(math.exp(-0.5), rel=1e-14)
    slightly_over = np.array([0, 2] * 50 + [3])
    assert math.isfinite(yk.NegativeBinomialYield().fit(slightly_over, area=2.0).cluster_alpha_)


def test_all_zero_counts_exact_upper_bound():
    """All zeros: D0 = 0; the upper limit solves P(all zero | d) = (1 - conf)/2, which for the Poisson
    is Garwood's -ln(0.025)/exposure (Garwood 1936); for the other models the yield formula written
    out in the test (Murphy 1964 both kinds, Bose-Einstein (1 + A d)^-n), 1e-10."""
    zeros = np.zeros(250, dtype=int)
    with pytest.warns(BoundaryWarning, match="every count is zero"):
        p = yk.PoissonYield().fit(zeros, area=0.4)
    assert p.d0_ == 0.0
    assert p.ci_.loc["d0", "ci_upper"] == pytest.approx(-math.log(0.025) / 100.0, rel=1e-12)
    with pytest.warns(BoundaryWarning):
        nb = yk.NegativeBinomialYield().fit(zeros, area=0.4)
    assert nb.d0_ == 0.0 and nb.cluster_alpha_ == math.inf
    assert nb.ci_.loc["d0", "ci_upper"] == pytest.approx(p.ci_.loc["d0", "ci_upper"], rel=1e-12)
    with pytest.warns(BoundaryWarning):
        s = yk.SeedsYield().fit(zeros, area=0.4)
    d_up = s.ci_.loc["d0", "ci_upper"]
    assert (1 + 0.4 * d_up) ** -250 == pytest.approx(0.025, rel=1e-9)
    assert p.predict_interval(0.4)["ci_lower"].iloc[0] == pytest.approx(math.exp(-0.4 * p.ci_.loc["d0", "ci_upper"]))
    # every model: P(all zero | d_up) = P0(0.4 d_up)^250 = 0.025, with P0 written out here
    p0 = {
        "triangular": lambda x: ((1 - math.exp(-x)) / x) ** 2,
        "rectangular": lambda x: (1 - math.exp(-2 * x)) / (2 * x),
        "bose-einstein": lambda x: (1 + x) ** -3,
    }
    for name, model in [("triangular", yk.MurphyYield()), ("rectangular", yk.MurphyYield("rectangular")),
                        ("bose-einstein", yk.BoseEinsteinYield(n_layers=3))]:
        with pytest.warns(BoundaryWarning, match="every count is zero"):
            model.fit(zeros, area=0.4)
        assert model.d0_ == 0.0 and model.ci_.loc["d0", "ci_lower"] == 0.0
        d_up = model.ci_.loc["d0", "ci_upper"]
        assert p0[name](0.4 * d_up) ** 250 == pytest.approx(0.025, rel=1e-10), name
        assert model.predict(0.4) == 1.0
        assert model.predict_interval(0.4)["ci_lower"].iloc[0] == pytest.approx(p0[name](0.4 * d_up), rel=1e-12)


def test_poisson_garwood_interval():
    """Garwood (1936) exact interval: 10 events in unit exposure -> (4.7954, 18.3904) at 95 %
    (Ulm 1990, Am. J. Epidemiol. 131:373, table 1)."""
    counts = np.array([3, 2, 0, 5, 0])
    p = yk.PoissonYield().fit(counts, area=0.2)  # exposure 1 cm^2
    lo, hi = p.ci_.loc["d0"]
    assert lo == pytest.approx(4.7954, abs=1e-4)
    assert hi == pytest.approx(18.3904, abs=1e-4)
    assert p.ci_method_ == "exact"


def test_profile_interval_against_independent_scipy_profile(rng):
    """Profile-likelihood interval of cluster_alpha recomputed with scipy.stats.nbinom (equal areas,
    where the profile MLE of the mean is the sample mean for every alpha); 1e-6 relative."""
    counts = nb_counts(rng, 1500, 0.6, 2.2, 1.0)
    m = yk.NegativeBinomialYield().fit(counts, area=1.0)
    kbar = counts.mean()

    def llp(a):
        return stats.nbinom.logpmf(counts, a, a / (a + kbar)).sum()

    target = llp(m.cluster_alpha_) - stats.chi2.ppf(0.95, 1) / 2
    lo = optimize.brentq(lambda a: llp(a) - target, 1e-3, m.cluster_alpha_, xtol=1e-12)
    hi = optimize.brentq(lambda a: llp(a) - target, m.cluster_alpha_, 1e4, xtol=1e-12)
    assert m.ci_.loc["cluster_alpha", "ci_lower"] == pytest.approx(lo, rel=1e-6)
    assert m.ci_.loc["cluster_alpha", "ci_upper"] == pytest.approx(hi, rel=1e-6)
    # the d0 interval brackets the estimate and the Wald (log-scale) one is similar
    w = yk.NegativeBinomialYield(ci_method="wald").fit(counts, area=1.0)
    assert w.ci_.loc["d0", "ci_lower"] == pytest.approx(m.ci_.loc["d0", "ci_lower"], rel=0.02)
    assert w.ci_.loc["d0", "ci_upper"] == pytest.approx(m.ci_.loc["d0", "ci_upper"], rel=0.02)


def test_alpha_upper_limit_can_be_infinite(rng):
    """Weak over-dispersion: the profile of cluster_alpha stays above the cut-off up to infinity."""
    counts = rng.poisson(0.3, size=400)
    counts[:3] += 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BoundaryWarning)
        m = yk.NegativeBinomialYield().fit(counts, area=1.0)
    assert m.ci_.loc["cluster_alpha", "ci_upper"] == math.inf


@pytest.mark.slow
def test_interval_coverage_simulation():
    """Seeded simulation with known truth (d0 = 0.5 /cm^2, cluster_alpha = 2, 600 dies of 1 cm^2):
    95 % profile intervals cover the truth in 92-98 % of 200 repetitions, for both parameters."""
    rng = np.random.default_rng(12345)
    hit_d0 = hit_a = 0
    n_rep = 200
    for _ in range(n_rep):
        counts = nb_counts(rng, 600, 0.5, 2.0, 1.0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", BoundaryWarning)
            m = yk.NegativeBinomialYield().fit(counts, area=1.0)
        lo, hi = m.ci_.loc["d0"]
        hit_d0 += lo <= 0.5 <= hi
        lo, hi = m.ci_.loc["cluster_alpha"]
        hit_a += lo <= 2.0 <= hi
    assert 0.92 <= hit_d0 / n_rep <= 0.98
    assert 0.92 <= hit_a / n_rep <= 0.98


def test_fixed_shape_models_against_scipy(rng):
    """Seeds = geometric (NB with alpha = 1), Bose-Einstein = NB with alpha = n and mean n d0 A
    (scipy.stats.nbinom log-likelihood, 1e-10)."""
    counts = nb_counts(rng, 2000, 0.7, 1.0, 1.3)
    s = yk.SeedsYield().fit(counts, area=1.3)
    mu = s.d0_ * 1.3
    assert s.loglik_ == pytest.approx(stats.nbinom.logpmf(counts, 1, 1 / (1 + mu)).sum(), rel=1e-10)
    assert s.d0_ == pytest.approx(counts.mean() / 1.3, rel=1e-12)
    be = yk.BoseEinsteinYield(n_layers=3).fit(counts, area=1.3)
    mu = 3 * be.d0_ * 1.3
    assert be.loglik_ == pytest.approx(stats.nbinom.logpmf(counts, 3, 3 / (3 + mu)).sum(), rel=1e-10)
    assert be.defect_lambda(1.3) == pytest.approx(counts.mean(), rel=1e-12)
    assert be.predict(1.3) == pytest.approx(yk.bose_einstein_yield(be.d0_, 1.3, 3), rel=1e-14)


@pytest.mark.parametrize("kind", ["triangular", "rectangular"])
def test_murphy_count_pmf_against_quadrature(kind):
    """Murphy count distribution = Poisson mixed over the triangular/rectangular density (scipy.quad, 1e-8)."""
    m = yk.MurphyYield(kind)
    m.d0_, m.cluster_alpha_, m.y0_, m.area_ = 0.8, math.inf, 1.0, 1.5
    m.params_ = pd.Series({"d0": 0.8})
    lam = 1.2
    if kind == "triangular":
        dens = lambda x: (x / lam**2) if x <= lam else (2 * lam - x) / lam**2  # noqa: E731
    else:
        dens = lambda x: 1 / (2 * lam)  # noqa: E731
    ks = np.arange(12)
    ref = [integrate.quad(lambda x, k=k: stats.poisson.pmf(k, x) * dens(x), 0, 2 * lam, points=[lam],
                          epsabs=1e-14)[0] for k in ks]
    np.testing.assert_allclose(m.count_pmf(ks), ref, rtol=1e-8, atol=1e-15)
    assert m.count_pmf(ks)[0] == pytest.approx(yk.murphy_yield(0.8, 1.5, kind), rel=1e-12)


@pytest.mark.parametrize("kind", ["triangular", "rectangular"])
def test_murphy_log_pmf_small_mean_against_mpmath(kind):
    """Reference: mpmath.quad at 30 digits of the Poisson mixed over the triangular / uniform
    density on [0, 2 mu] (rescaled to lam = mu t so the integrand is of order one). log P(k) agrees
    to 1e-13 relative over mu in 1e-12..50 and k in 0..20; e.g. mu = 1e-4, k = 3 gives -29.0175
    (an upper-gamma difference gave -27.43), and mu = 1e-8, k = 0 gives -1.00e-8 (not -1.44e-8)."""
    mpmath = pytest.importorskip("mpmath")
    from yieldkit.models.murphy import murphy_log_pmf

    mpmath.mp.dps = 30

    def ref(k, mu):
        mu = mpmath.mpf(mu)
        if kind == "rectangular":
            v = mpmath.quad(lambda t: t**k * mpmath.exp(-mu * t), [0, 2]) / 2
        else:
            v = (mpmath.quad(lambda t: t ** (k + 1) * mpmath.exp(-mu * t), [0, 1])
                 + mpmath.quad(lambda t: (2 - t) * t**k * mpmath.exp(-mu * t), [1, 2]))
        return float(mpmath.log(v * mu**k / mpmath.factorial(k)))

    mus = [1e-12, 1e-8, 1e-6, 1e-4, 1e-2, 0.3, 1.0, 3.0, 12.0, 50.0]
    ks = [0, 1, 2, 3, 5, 8, 13, 20]
    K, M = (g.ravel() for g in np.meshgrid(ks, mus))
    expected = np.array([ref(int(k), m) for k, m in zip(K, M)])
    np.testing.assert_allclose(murphy_log_pmf(K, M, kind), expected, rtol=1e-13, atol=0)
    assert murphy_log_pmf(np.array([0, 1]), np.zeros(2), kind).tolist() == [0.0, -math.inf]


def test_murphy_fit_small_mean_per_die():
    """100,000 dies of 0.01 cm^2, 15 with one defect and 3 with three: the MLE from the exact
    triangular pmf in mpmath (40 digits, root of the score) is d0 = 0.0240000879686 with
    log-likelihood -228.196194331744 (the upper-gamma difference gave 0.02753 and -228.14)."""
    counts = np.zeros(100_000, dtype=int)
    counts[:15] = 1
    counts[15:18] = 3
    m = yk.MurphyYield().fit(counts, area=0.01)
    assert m.converged_
    assert m.d0_ == pytest.approx(0.0240000879686, rel=1e-7)
    assert m.loglik_ == pytest.approx(-228.196194331744, rel=1e-12)


def test_murphy_fit_recovers_truth(rng):
    dens = 0.5 * rng.triangular(0, 1, 2, size=20000)
    m = yk.MurphyYield().fit(rng.poisson(dens * 2.0), area=2.0)
    lo, hi = m.ci_.loc["d0"]
    assert lo <= 0.5 <= hi and m.converged_


def test_dispersion_tests_against_references(rng):
    """Cameron-Trivedi equals statsmodels' test_poisson_dispersion ("CT nb2" row, 1e-8); the LR test uses
    the boundary-corrected 0.5 P(chi2_1 > LR) (Self & Liang 1987) on statsmodels' log-likelihoods;
    the index of dispersion is (n-1) s^2 / mean against chi2(n-1) (Cox & Lewis 1966)."""
    sm = pytest.importorskip("statsmodels.api")
    from statsmodels.discrete._diagnostics_count import test_poisson_dispersion

    area = 0.8
    counts = nb_counts(rng, 1500, 0.7, 3.0, area)
    pois = sm.Poisson(counts, np.ones((len(counts), 1)), exposure=np.full(len(counts), area)).fit(disp=0)
    ref = test_poisson_dispersion(pois)
    ct = cameron_trivedi_test(counts, area)
    assert ct.statistic == pytest.approx(ref.statistic[3], rel=1e-8)
    assert ct.pvalue == pytest.approx(ref.pvalue[3], rel=1e-6)
    nb = sm.NegativeBinomial(counts, np.ones((len(counts), 1)), exposure=np.full(len(counts), area)).fit(
        disp=0, method="newton", tol=1e-14)
    lr = 2 * (nb.llf - pois.llf)
    r = poisson_nb_lr_test(counts, area)
    assert r.statistic == pytest.approx(lr, rel=1e-6)
    assert r.pvalue == pytest.approx(0.5 * stats.chi2.sf(lr, 1), rel=1e-5)
    d = dispersion_index_test(counts)
    s2 = counts.var(ddof=1)
    assert d.statistic == pytest.approx((len(counts) - 1) * s2 / counts.mean(), rel=1e-12)
    assert d.pvalue < 1e-3
    assert poisson_nb_lr_test(np.array([1, 1, 0, 2]), 1.0).pvalue == 1.0
    with pytest.raises(YieldkitValueError, match="not all zero"):
        dispersion_index_test(np.zeros(5))
    with pytest.raises(YieldkitValueError, match="'form' argument"):
        cameron_trivedi_test(counts, form="nb3")


def test_goodness_of_fit_table(rng):
    counts = nb_counts(rng, 5000, 0.8, 1.5, 1.0)
    nb = yk.NegativeBinomialYield().fit(counts, area=1.0)
    res = count_goodness_of_fit(nb)
    gof = res.table
    assert gof["observed"].sum() == pytest.approx(5000)
    assert gof["expected"].sum() == pytest.approx(5000, rel=1e-9)
    assert gof["expected"].iloc[-1] >= 5
    assert res.zero_fraction_observed == pytest.approx(np.mean(counts == 0))
    assert res.zero_fraction_fitted == pytest.approx(nb.predict(1.0), rel=1e-12)
    assert res.pvalue > 0.001
    pois = yk.PoissonYield().fit(counts, area=1.0)
    assert count_goodness_of_fit(pois).pvalue < 1e-10
    with pytest.raises(NotFittedError, match="counts route"):
        count_goodness_of_fit(yk.PoissonYield())


def _count_table(rng, n_wafers=30, n_dies=200, d0=0.4, alpha=0.8):
    dens = rng.gamma(alpha, d0 / alpha, size=n_wafers)  # wafer-level clustering
    k = rng.poisson(np.repeat(dens, n_dies))
    return pd.DataFrame({
        "lot_id": np.repeat([f"L{i // 10}" for i in range(n_wafers)], n_dies),
        "wafer_id": np.repeat([f"W{i:02d}" for i in range(n_wafers)], n_dies),
        "die_x": np.tile(np.arange(n_dies) % 20, n_wafers), "die_y": np.tile(np.arange(n_dies) // 20, n_wafers),
        "n_defects": k,
    })


def test_information_criteria_count_the_fitted_units(rng):
    """BIC = p log(n) - 2 loglik (Schwarz 1978) with n the units whose likelihood is fitted: dies, or
    wafers / lots when pooled; cluster_alpha counts in p even at its boundary inf, where the
    log-likelihood is the Poisson one (scipy.stats.poisson.logpmf, 1e-12)."""
    table = _count_table(rng)
    for pooling, n_units in [("die", 6000), ("wafer", 30), ("lot", 3)]:
        m = yk.NegativeBinomialYield(ci_method="wald").fit(table, area=0.5, pooling=pooling)
        assert m.n_obs_ == 6000 and m.n_units_ == n_units
        assert m.bic_ == pytest.approx(2 * math.log(n_units) - 2 * m.loglik_, rel=1e-12)
        assert m.n_units_ == n_units and m.summary().attrs == {}
        assert yk.NegativeBinomialYield.from_dict(m.to_dict()).bic_ == pytest.approx(m.bic_, rel=1e-12)
    counts = np.array([0, 2] * 50)
    with pytest.warns(BoundaryWarning):
        nb = yk.NegativeBinomialYield().fit(counts, area=2.0)
    ll = stats.poisson.logpmf(counts, 1.0).sum()
    assert nb.cluster_alpha_ == math.inf and nb.n_params_ == 2
    assert nb.loglik_ == pytest.approx(ll, rel=1e-12)
    assert nb.aic_ == pytest.approx(4 - 2 * ll, rel=1e-12)
    assert nb.bic_ == pytest.approx(2 * math.log(100) - 2 * ll, rel=1e-12)


def test_dataframe_input_exclusion_and_pooling(rng):
    table = _count_table(rng)
    labels = np.where(rng.random(len(table)) < 0.1, "scratch", None)
    table["signature"] = labels
    full = yk.NegativeBinomialYield().fit(table, area=1.0)
    assert full.n_obs_ == len(table) and full.pooling_ == "die"
    sub = yk.NegativeBinomialYield().fit(table, area=1.0, signature="signature")
    ref = yk.NegativeBinomialYield().fit(table["n_defects"].to_numpy()[pd.isna(labels)], area=1.0)
    assert sub.d0_ == pytest.approx(ref.d0_, rel=1e-14) and sub.n_excluded_ == int((~pd.isna(labels)).sum())
    ex = yk.NegativeBinomialYield().fit(table, area=1.0, exclude=~pd.isna(labels))
    assert ex.d0_ == pytest.approx(ref.d0_, rel=1e-14)
    wafer = yk.NegativeBinomialYield().fit(table, area=1.0, pooling="wafer")
    assert wafer.d0_ == pytest.approx(table["n_defects"].sum() / len(table), rel=1e-9)
    assert wafer.pooling_ == "wafer"
    assert "pooling=wafer" in repr(wafer)
    with pytest.raises(YieldkitValueError, match="needs lot_id and wafer_id"):
        yk.NegativeBinomialYield().fit(table["n_defects"].to_numpy(), area=1.0, pooling="lot")
    with pytest.raises(SchemaError, match="no 'n_bad' column"):
        yk.PoissonYield().fit(table, area=1.0, count_col="n_bad")


def test_bootstrap_resamples_wafers(rng):
    """With wafer-level clustering, resampling wafers gives a wider d0 spread than resampling dies."""
    table = _count_table(rng)
    m = yk.NegativeBinomialYield(ci_method="wald").fit(table, area=1.0)
    bw = m.bootstrap(200, random_state=1)
    assert list(bw.columns) == ["d0", "cluster_alpha"] and len(bw) == 200
    md = yk.NegativeBinomialYield(ci_method="wald").fit(table["n_defects"].to_numpy(), area=1.0)
    bd = md.bootstrap(200, random_state=1)
    assert bw["d0"].std() > 2 * bd["d0"].std()
    assert bd["d0"].mean() == pytest.approx(md.d0_, rel=0.02)
    b = yk.NegativeBinomialYield(ci_method="bootstrap", n_boot=50, random_state=3).fit(table, area=1.0)
    assert b.ci_method_ == "bootstrap" and b.ci_.loc["d0", "ci_lower"] < b.d0_ < b.ci_.loc["d0", "ci_upper"]


def test_summary_predict_and_contract(rng):
    counts = nb_counts(rng, 3000, 0.5, 2.0, 1.0)
    for model in yk.models.MODEL_CLASSES:
        est = model().fit(counts, area=1.0)
        s = est.summary()
        assert list(s.columns) == ["estimate", "std_err", "ci_lower", "ci_upper", "unit"]
        assert (s["ci_lower"] <= s["estimate"]).all() and (s["estimate"] <= s["ci_upper"]).all()
        assert set(est.params_.index) == set(est.cov_.index) == set(est.cov_.columns)
        assert est.area_ == 1.0 and est.y0_ == 1.0 and est.converged_
        assert est.aic_ == pytest.approx(2 * est.n_params_ - 2 * est.loglik_)
        pi = est.predict_interval([0.5, 1.0, 4.0])
        assert (pi["ci_lower"] <= pi["yield"]).all() and (pi["yield"] <= pi["ci_upper"]).all()
        assert np.all(np.diff(est.predict(np.array([0.5, 1.0, 4.0]))) < 0)
        assert est.defect_lambda(2.0) == pytest.approx(2.0 * est.mean_factor * est.d0_)
        assert "fitted on 3,000 dies" in repr(est)
        assert model().get_params()["conf_level"] == 0.95


def test_not_fitted_and_bad_arguments():
    with pytest.raises(NotFittedError, match="not fitted yet"):
        yk.PoissonYield().predict(1.0)
    with pytest.raises(YieldkitValueError, match="'area' argument of PoissonYield.fit is required"):
        yk.PoissonYield().fit([1, 2])
    with pytest.raises(YieldkitValueError, match="non-negative integers"):
        yk.PoissonYield().fit([1, -2], area=1.0)
    with pytest.raises(YieldkitValueError, match="non-negative integers"):
        yk.PoissonYield().fit([1, 0.5], area=1.0)
    with pytest.raises(YieldkitValueError, match="'area' argument of NegativeBinomialYield.fit must be > 0"):
        yk.NegativeBinomialYield().fit([1, 2], area=-1.0)
    with pytest.raises(YieldkitValueError, match="'conf_level' argument"):
        yk.PoissonYield(conf_level=95).fit([1, 2], area=1.0)
    with pytest.raises(YieldkitValueError, match="'ci_method' argument of PoissonYield must be one of"):
        yk.PoissonYield(ci_method="hessian").fit([1, 2], area=1.0)
    with pytest.raises(YieldkitValueError, match="'exact' \\(Garwood\\) is for PoissonYield"):
        yk.SeedsYield(ci_method="exact").fit([1, 2], area=1.0)
    with pytest.raises(YieldkitValueError, match="'kind' argument of MurphyYield"):
        yk.MurphyYield("square").fit([1, 2], area=1.0)
    with pytest.raises(YieldkitValueError, match="'n_layers' argument of BoseEinsteinYield"):
        yk.BoseEinsteinYield(n_layers=0).fit([1, 2], area=1.0)
    with pytest.raises(YieldkitValueError, match="'pooling' argument"):
        yk.PoissonYield().fit([1, 2], area=1.0, pooling="site")
    with pytest.raises(YieldkitValueError, match="one entry per row"):
        yk.PoissonYield().fit([1, 2], area=1.0, exclude=[True])
    with pytest.raises(YieldkitValueError, match="'area' argument of PoissonYield.predict must be >= 0"):
        yk.PoissonYield().fit([1, 2], area=1.0).predict(-1)


def test_save_load_round_trip(tmp_path, rng):
    counts = nb_counts(rng, 2000, 0.5, 2.0, 1.0)
    for model in [yk.NegativeBinomialYield(), yk.BoseEinsteinYield(n_layers=3), yk.MurphyYield("rectangular")]:
        model.fit(counts, area=1.0)
        path = save_fit(model, tmp_path / f"{type(model).__name__}.json")
        json.loads(path.read_text(), parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))
        back = load_fit(path)
        assert type(back) is type(model) and back.get_params() == model.get_params()
        pd.testing.assert_frame_equal(back.summary(), model.summary())
        pd.testing.assert_frame_equal(back.predict_interval([0.5, 2.0]), model.predict_interval([0.5, 2.0]))
        with pytest.raises(NotFittedError, match="holds only its estimates"):
            back.bootstrap(10)
    with pytest.warns(BoundaryWarning):
        inf_fit = yk.NegativeBinomialYield().fit(np.array([0, 2] * 10), area=1.0)
    back = yk.NegativeBinomialYield.from_dict(json.loads(json.dumps(inf_fit.to_dict(), allow_nan=False)))
    assert back.cluster_alpha_ == math.inf
    unfitted = yk.models.YieldModel.from_dict(yk.SeedsYield(conf_level=0.9).to_dict())
    assert isinstance(unfitted, yk.SeedsYield) and unfitted.conf_level == 0.9
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ParseError, match="bad.json.*not JSON"):
        load_fit(bad)
    bad.write_text('{"format": "other"}')
    with pytest.raises(ParseError, match="not a yieldkit fit"):
        load_fit(bad)
    with pytest.raises(YieldkitValueError, match="was given a NegativeBinomialYield fit"):
        yk.PoissonYield.from_dict(yk.NegativeBinomialYield().fit(counts, area=1.0).to_dict())
