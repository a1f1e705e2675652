"""Tests of yieldkit.quality: defect-level models, their inverses and the fitted-model route."""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

import yieldkit
from yieldkit.errors import ConvergenceWarning, YieldkitValueError
from yieldkit.quality import (
    agrawal_seth_agrawal,
    agrawal_seth_agrawal_fallout,
    defect_level,
    dppm_table,
    mean_faults_from_yield,
    negative_binomial_defect_level,
    negative_binomial_fallout,
    required_coverage,
    weighted_fault_coverage,
    williams_brown,
    williams_brown_fallout,
)

fractions = st.floats(0.0, 1.0, allow_nan=False)
yields = st.floats(1e-6, 1.0 - 1e-6, allow_nan=False)
alphas = st.floats(0.05, 1e3, allow_nan=False)
n0s = st.floats(1.0, 50.0, allow_nan=False)


# -- reference values ---------------------------------------------------------------------


def test_williams_brown_reference():
    """Williams & Brown (1981), IEEE TC C-30(12) 987: Y = 0.5, T = 0.99 gives DL = 0.691 % (6,907 DPPM)."""
    dl = williams_brown(0.5, 0.99)
    assert round(float(dl) * 100, 3) == 0.691
    assert int(float(dl) * 1e6) == 6907  # 6,907.5 DPPM, quoted truncated
    # an independent 50-digit evaluation of 1 - 0.5**0.01
    mpmath.mp.dps = 50
    exact = 1 - mpmath.mpf("0.5") ** (1 - mpmath.mpf("0.99"))
    assert float(dl) == pytest.approx(float(exact), rel=1e-14)


def test_williams_brown_precision_near_full_coverage_and_tiny_yield():
    """Against mpmath (50 digits): T = 1 - 1e-9 and Y = 1e-300 keep full relative precision."""
    mpmath.mp.dps = 50
    for y, t in [(0.9, 1 - 1e-9), (1e-300, 0.999), (1 - 1e-12, 0.5)]:
        exact = -mpmath.expm1((1 - mpmath.mpf(t)) * mpmath.log(mpmath.mpf(y)))
        assert float(williams_brown(y, t)) == pytest.approx(float(exact), rel=1e-9)


def test_williams_brown_edges():
    """Y = 0: DL = 1 below full coverage and 0 at T = 1; Y = 1: DL = 0."""
    assert williams_brown(0.0, 0.5) == 1.0
    assert williams_brown(0.0, 1.0) == 0.0
    assert williams_brown(1.0, 0.3) == 0.0
    assert williams_brown_fallout(0.0, 0.0) == 0.0


def test_negative_binomial_against_scipy_nbinom():
    """DL = 1 - P_NB(0 faults | lambda) / P_NB(0 faults | lambda T), with scipy.stats.nbinom."""
    lam, alpha = np.array([0.1, 0.5, 3.0]), np.array([0.3, 2.0, 50.0])
    t = np.array([0.9, 0.99, 0.999])
    lam_, a_, t_ = np.meshgrid(lam, alpha, t, indexing="ij")

    def p0(mean):
        return stats.nbinom.pmf(0, a_, a_ / (a_ + mean))

    expected = 1 - p0(lam_) / p0(lam_ * t_)
    assert negative_binomial_defect_level(lam_, t_, a_) == pytest.approx(expected, rel=1e-10)
    assert negative_binomial_fallout(lam_, t_, a_) == pytest.approx(1 - p0(lam_ * t_), rel=1e-10)


def test_negative_binomial_precision_against_mpmath():
    """Tiny lambda (1e-12) and T = 1 - 1e-8: relative error below 1e-9 against a 60-digit evaluation."""
    mpmath.mp.dps = 60
    for lam, t, a in [(1e-12, 0.5, 2.0), (0.3, 1 - 1e-8, 0.5), (5.0, 0.999, 1e6)]:
        lm, tm, am = mpmath.mpf(lam), mpmath.mpf(t), mpmath.mpf(a)
        exact = 1 - ((1 + lm * tm / am) / (1 + lm / am)) ** am
        assert float(negative_binomial_defect_level(lam, t, a)) == pytest.approx(float(exact), rel=1e-9)


def test_agrawal_seth_agrawal_against_enumeration():
    """ASA by explicit summation: faulty dies carry 1 + Poisson(n0 - 1) faults, each detected with probability T."""
    y, t = 0.6, 0.95
    for n0 in (1.0, 2.5, 8.0):
        k = np.arange(0, 400)
        pk = stats.poisson.pmf(k, n0 - 1.0)
        escape = (1 - y) * np.sum(pk * (1 - t) ** (k + 1))
        expected = escape / (y + escape)
        assert float(agrawal_seth_agrawal(y, t, n0)) == pytest.approx(expected, rel=1e-12)
        assert float(agrawal_seth_agrawal_fallout(y, t, n0)) == pytest.approx(1 - y - escape, rel=1e-12)


def test_asa_with_n0_one_tends_to_williams_brown_at_high_yield():
    """ASA with n0 = 1 agrees with Williams-Brown to first order in 1 - Y (Agrawal, Seth & Agrawal 1982).

    It is not identical at low yield: with n0 = 1 every faulty die has exactly one fault, while
    Williams-Brown's faulty dies carry a zero-truncated Poisson number of faults.
    """
    t = 0.99
    gaps = []
    for y in (0.9, 0.99, 0.999, 0.9999):
        asa, wb = float(agrawal_seth_agrawal(y, t, 1.0)), float(williams_brown(y, t))
        gaps.append(abs(asa / wb - 1))
        assert abs(asa / wb - 1) < 1.5 * (1 - y)
    assert gaps == sorted(gaps, reverse=True)
    # at Y = 0.5 they differ markedly (9,901 vs 6,907 DPPM)
    assert float(agrawal_seth_agrawal(0.5, 0.99, 1.0)) * 1e6 == pytest.approx(9901, abs=1)


def test_clustering_lowers_defect_level_and_williams_brown_gap():
    """For the same yield, clustering lowers DL; the Williams-Brown excess tends to (1 + l/a) ln(1 + l/a) / (l/a)."""
    lam, alpha = 0.5, 2.0
    y = float((1 + lam / alpha) ** -alpha)
    for t in (0.9, 0.99, 0.999):
        assert negative_binomial_defect_level(lam, t, alpha) < williams_brown(y, t)
    ratio = williams_brown(y, 1 - 1e-9) / negative_binomial_defect_level(lam, 1 - 1e-9, alpha)
    r = lam / alpha
    assert ratio == pytest.approx((1 + r) * math.log1p(r) / r, rel=1e-6)


def test_mean_faults_from_yield():
    """Inverse of Y = (1 + lambda / alpha)^-alpha, and -ln Y at alpha = inf."""
    assert mean_faults_from_yield(0.64, 2.0) == pytest.approx(0.5, rel=1e-12)
    assert mean_faults_from_yield(0.5) == pytest.approx(math.log(2), rel=1e-15)
    with pytest.raises(YieldkitValueError, match=r"'yield_' argument of mean_faults_from_yield must be in \(0, 1\]"):
        mean_faults_from_yield(0.0)


# -- properties ---------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(y=fractions, a=alphas, n0=n0s)
def test_limits_of_every_model(y, a, n0):
    """DL = 0 at full coverage and DL = 1 - Y at zero coverage (STYLE.md property); fallout r(1) = 1 - Y."""
    assert williams_brown(y, 1.0) == 0.0
    assert agrawal_seth_agrawal(y, 1.0, n0) == 0.0
    assert williams_brown(y, 0.0) == pytest.approx(1 - y, abs=1e-15)
    assert agrawal_seth_agrawal(y, 0.0, n0) == pytest.approx(1 - y, abs=1e-15)
    assert agrawal_seth_agrawal_fallout(y, 1.0, n0) == pytest.approx(1 - y, abs=1e-15)
    assert williams_brown_fallout(y, 1.0) == pytest.approx(1 - y, abs=1e-15)
    if y > 1e-6:  # below, lambda = alpha (Y^(-1/alpha) - 1) can overflow for small alpha
        lam = mean_faults_from_yield(y, a)
        assert negative_binomial_defect_level(lam, 1.0, a) == 0.0
        assert negative_binomial_defect_level(lam, 0.0, a) == pytest.approx(1 - y, rel=1e-9, abs=1e-15)
        assert negative_binomial_fallout(lam, 1.0, a) == pytest.approx(1 - y, rel=1e-9, abs=1e-15)


@settings(max_examples=200, deadline=None)
@given(y=yields, t=fractions)
def test_negative_binomial_tends_to_williams_brown(y, t):
    """As cluster_alpha -> inf the clustered model becomes Williams-Brown (exactly at inf)."""
    lam = float(mean_faults_from_yield(y))
    wb = float(williams_brown(y, t))
    assert negative_binomial_defect_level(lam, t, math.inf) == pytest.approx(wb, rel=1e-12, abs=1e-300)
    big = negative_binomial_defect_level(lam, t, 1e9)
    assert big == pytest.approx(wb, rel=1e-6, abs=1e-300)
    # monotone approach: larger alpha, closer to Williams-Brown
    d = [abs(negative_binomial_defect_level(lam, t, a) - wb) for a in (1.0, 10.0, 100.0)]
    assert d[0] >= d[1] >= d[2]


@settings(max_examples=150, deadline=None)
@given(y=yields, t=fractions, n0=n0s)
def test_shipped_fraction_identity(y, t, n0):
    """DL = 1 - Y / (1 - fallout) for each model: the good dies all pass."""
    for dl, r in [
        (williams_brown(y, t), williams_brown_fallout(y, t)),
        (agrawal_seth_agrawal(y, t, n0), agrawal_seth_agrawal_fallout(y, t, n0)),
    ]:
        # the reference side cancels: its absolute error is ~ eps / Y
        assert dl == pytest.approx(1 - y / (1 - r), rel=1e-9, abs=1e-15 / y)


@settings(max_examples=200, deadline=None)
@given(y=st.floats(1e-4, 0.9999), t=st.floats(0.0, 0.99999), a=alphas, n0=st.floats(1.0, 900.0))
def test_required_coverage_inverts_forward(y, t, a, n0):
    """required_coverage(Y, 1e6 DL(Y, T)) = T for every model (relative precision on 1 - T)."""
    lam = float(mean_faults_from_yield(y, a))
    cases = [
        ("wb", {}, williams_brown(y, t)),
        ("asa", {"n0": n0}, agrawal_seth_agrawal(y, t, n0)),
        ("nb", {"cluster_alpha": a}, negative_binomial_defect_level(lam, t, a)),
    ]
    for model, kw, dl in cases:
        if not 1e-300 < dl < 1 - y - 1e-12:  # a subnormal DL carries too few digits
            continue
        got = float(required_coverage(y, 1e6 * dl, model, **kw).coverage)
        assert 1 - got == pytest.approx(1 - t, rel=1e-6, abs=1e-12), model


def test_required_coverage_closed_forms():
    """Williams-Brown: 1 - T = ln(1 - d) / ln Y; Y = 0.5 at 6,907.5 DPPM needs T = 0.99."""
    assert float(required_coverage(0.5, 1e6 * float(williams_brown(0.5, 0.99))).coverage) == pytest.approx(0.99, rel=1e-12)
    assert float(required_coverage(0.85, 100).coverage) == pytest.approx(1 - math.log1p(-1e-4) / math.log(0.85), rel=1e-12)


def test_required_coverage_status_and_edges():
    """Already met -> 0; zero target -> 1 (needs complete coverage); vectorised with a status table."""
    res = required_coverage([0.8, 0.8, 0.8, 1.0, 0.0], [3e5, 100, 0, 0, 100]).table
    assert res["coverage"].tolist()[0] == 0.0 and res["status"][0] == "met without test"
    assert 0 < res["coverage"][1] < 1 and res["status"][1] == "reachable"
    assert res["coverage"][2] == 1.0 and res["status"][2] == "needs complete coverage"
    assert res["coverage"][3] == 0.0 and res["status"][3] == "met without test"
    assert res["coverage"][4] == 1.0 and res["status"][4] == "needs complete coverage"
    # Y -> 0 under clustering: DL -> 1 - T^alpha, so T = (1 - d)^(1/alpha)
    assert float(required_coverage(0.0, 100, "nb", cluster_alpha=2.0).coverage) == pytest.approx((1 - 1e-4) ** 0.5, rel=1e-15)
    assert float(required_coverage(0.0, 100, "nb", cluster_alpha=math.inf).coverage) == 1.0
    # exactly at the no-test defect level
    assert float(required_coverage(0.8, 2e5, "asa", n0=3.0).coverage) == 0.0


def test_required_coverage_large_n0_no_overflow():
    """n0 = 5000 (Lambert W argument ~ e^5000) still inverts."""
    dl = float(agrawal_seth_agrawal(0.7, 0.0005, 5000.0))
    assert float(required_coverage(0.7, 1e6 * dl, "asa", n0=5000.0).coverage) == pytest.approx(0.0005, rel=1e-6)


def test_required_coverage_asa_tiny_targets():
    """Tiny targets keep their relative precision (no underflow to T = 1), on every Lambert-W branch."""
    for n0, target in ((1.0, 1e-3), (20.0, 1e-3), (1.5, 1e-6)):
        t = float(required_coverage(0.9, target, "asa", n0=n0).coverage)
        # T itself is a double near 1: 1 - T carries ~1e-16 / (1 - T) relative error
        assert 0 < 1 - t and float(agrawal_seth_agrawal(0.9, t, n0)) * 1e6 == pytest.approx(target, rel=1e-4)


def test_broadcasting_shapes():
    y = np.array([[0.5], [0.7], [0.9]])
    t = np.array([0.0, 0.5, 0.9, 0.99])
    assert williams_brown(y, t).shape == (3, 4)
    assert agrawal_seth_agrawal(y, t, np.array([1.0, 2.0, 3.0, 4.0])).shape == (3, 4)
    assert required_coverage(y, [10.0, 100.0]).coverage.shape == (3, 2)
    assert np.all(np.diff(williams_brown(y, t), axis=1) <= 0)


def test_weighted_fault_coverage():
    """Sousa et al. (1996): Omega weights faults by critical area x density; WB with Omega is exact for Poisson faults."""
    area = np.array([1e-3, 5e-3, 2e-4, 7e-3])
    dens = np.array([2.0, 0.5, 10.0, 1.0])
    det = np.array([True, False, True, True])
    omega = float(weighted_fault_coverage(det, area, dens))
    w = area * dens
    assert omega == pytest.approx(w[det].sum() / w.sum(), rel=1e-15)
    y = math.exp(-w.sum())
    assert float(williams_brown(y, omega)) == pytest.approx(-math.expm1(-w[~det].sum()), rel=1e-12)
    # equal weights: the ordinary coverage
    assert float(weighted_fault_coverage(det, 1.0)) == 0.75
    # one row per test program
    two = weighted_fault_coverage(np.array([det, ~det]), area, dens)
    assert two.shape == (2,) and two.sum() == pytest.approx(1.0)


def test_dppm_table():
    t = dppm_table([0.5, 0.9], [0.9, 0.99], model=["wb", "asa", "nb"], n0=2.0, cluster_alpha=1.0)
    assert len(t) == 12
    assert list(t.columns) == ["model", "yield", "coverage", "defect_level", "dppm", "fallout", "n0", "cluster_alpha"]
    row = t[(t.model == "wb") & (t["yield"] == 0.5) & (t.coverage == 0.99)]
    assert float(row["dppm"].iloc[0]) == pytest.approx(6907.5, abs=0.1)
    assert t.loc[t.model == "asa", "n0"].eq(2.0).all()


# -- errors -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: williams_brown(1.2, 0.5), r"The 'yield_' argument of williams_brown must be in \[0, 1\]. Got 1.2 instead."),
        (lambda: williams_brown(0.5, 1.2), r"The 'coverage' argument of williams_brown must be in \[0, 1\]. Got 1.2"),
        (lambda: williams_brown(0.5, [0.1, np.nan]), r"'coverage' argument of williams_brown .* Got nan"),
        (lambda: williams_brown("x", 0.5), r"'yield_' argument of williams_brown must be numeric"),
        (lambda: agrawal_seth_agrawal(0.5, 0.5, -1.0), r"'n0' argument of agrawal_seth_agrawal must be >= 1 .* Got -1.0"),
        (lambda: agrawal_seth_agrawal(0.5, 0.5, 0.5), r"'n0' argument .* Got 0.5"),
        (lambda: negative_binomial_defect_level(-0.1, 0.5, 2), r"'mean_faults' argument .* must be >= 0"),
        (lambda: negative_binomial_defect_level(0.1, 0.5, -2.0), r"'cluster_alpha' argument .* must be > 0. Got -2.0"),
        (lambda: negative_binomial_fallout(0.1, 1.5, 2.0), r"'coverage' argument of negative_binomial_fallout"),
        (lambda: required_coverage(0.5, -1.0), r"'dppm_target' argument of required_coverage must be >= 0 .* Got -1.0"),
        (lambda: required_coverage(0.5, 2e6), r"'dppm_target' argument of required_coverage must be in \[0, 1e6\]"),
        (lambda: required_coverage(1.5, 10), r"'yield_' argument of required_coverage must be in \[0, 1\]. Got 1.5"),
        (lambda: required_coverage(0.5, 10, "asa"), r"'n0' argument of required_coverage is required"),
        (lambda: required_coverage(0.5, 10, "nb"), r"'cluster_alpha' argument of required_coverage is required"),
        (lambda: required_coverage(0.5, 10, "xx"), r"'model' argument of required_coverage must be one of 'wb', 'asa', 'nb'"),
        (lambda: weighted_fault_coverage([True], [-1.0]), r"'critical_area' argument of weighted_fault_coverage must be >= 0"),
        (lambda: weighted_fault_coverage([True], [0.0]), r"positive total weight"),
        (lambda: weighted_fault_coverage([2], [1.0]), r"'detected' argument of weighted_fault_coverage must be boolean"),
        (lambda: dppm_table(0.5, 0.9, "asa"), r"'n0' argument of dppm_table is required"),
        (lambda: dppm_table(0.5, 0.9, "nb"), r"'cluster_alpha' argument of dppm_table is required"),
        (lambda: dppm_table(0.5, 0.9, "zz"), r"'model' argument of dppm_table must be one of"),
    ],
)
def test_errors(call, match):
    with pytest.raises(YieldkitValueError, match=match):
        call()


def test_top_level_exports():
    assert yieldkit.williams_brown is williams_brown
    assert yieldkit.required_coverage is required_coverage
    assert yieldkit.defect_level is defect_level
    assert yieldkit.agrawal_seth_agrawal is agrawal_seth_agrawal


# -- from a fitted model (stand-in with the yieldkit.models contract) ------------------------


class StandInFit:
    """The attributes of a fitted yield model: d0_, cluster_alpha_, y0_, area_, params_, cov_, bootstrap."""

    def __init__(self, d0, cluster_alpha=math.inf, y0=1.0, area=1.0, cov=None, draws=None):
        self.d0_, self.cluster_alpha_, self.y0_, self.area_ = d0, cluster_alpha, y0, area
        names = ["d0"] + (["cluster_alpha"] if math.isfinite(cluster_alpha) else []) + (["y0"] if y0 != 1.0 else [])
        values = {"d0": d0, "cluster_alpha": cluster_alpha, "y0": y0}
        self.params_ = pd.Series([values[n] for n in names], index=names)
        cov = np.diag([1e-4] * len(names)) if cov is None else np.asarray(cov)
        self.cov_ = pd.DataFrame(cov, index=names, columns=names)
        self._draws = draws

    def bootstrap(self, n_boot, random_state=None):
        rng = np.random.default_rng(random_state)
        draws = rng.multivariate_normal(self.params_.to_numpy(), self.cov_.to_numpy(), size=n_boot)
        return pd.DataFrame(draws, columns=self.params_.index)


def test_defect_level_from_poisson_fit_matches_williams_brown():
    fit = StandInFit(0.5, area=2.0)
    res = defect_level(fit, [0.9, 0.99, 1.0])
    y = math.exp(-1.0)
    assert res["defect_level"].to_numpy() == pytest.approx(williams_brown(y, [0.9, 0.99, 1.0]), rel=1e-12)
    assert res["yield"].to_numpy() == pytest.approx(y)
    assert res.loc[2, ["ci_lower", "ci_upper", "dppm"]].tolist() == [0.0, 0.0, 0.0]
    assert (res["ci_lower"] <= res["defect_level"]).all() and (res["defect_level"] <= res["ci_upper"]).all()
    # other area: lambda scales
    res2 = defect_level(fit, 0.99, area=[1.0, 4.0])
    assert res2["mean_faults"].tolist() == pytest.approx([0.5, 2.0])


def test_defect_level_all_zero_counts_exact_upper_limit():
    """All-zero counts (d0 = 0): the exact d0 interval [0, -ln(0.025) / exposure] (Garwood 1936)
    maps through the defect level, DL = Williams-Brown 1 - exp(-(1 - T) A d) for the Poisson and
    1 - Y(A d) / Y(T A d) with Murphy's yield; no NaN bounds and no warning, 1e-12."""
    import warnings

    zeros = np.zeros(250, dtype=int)
    t = np.array([0.5, 0.9, 1.0])
    for level in (0.95, 0.9):
        d_up = -math.log((1 - level) / 2) / 100.0
        with pytest.warns(yieldkit.errors.BoundaryWarning):
            fit = yieldkit.PoissonYield().fit(zeros, area=0.4)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            res = defect_level(fit, t, conf_level=level)
        assert res["defect_level"].tolist() == [0.0, 0.0, 0.0]
        assert res["ci_lower"].tolist() == [0.0, 0.0, 0.0]
        assert res["ci_upper"].to_numpy() == pytest.approx(-np.expm1(-(1 - t) * 0.4 * d_up), rel=1e-12)
    with pytest.warns(yieldkit.errors.BoundaryWarning):
        murphy = yieldkit.MurphyYield().fit(zeros, area=0.4)
    d_up = murphy.ci_.loc["d0", "ci_upper"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = defect_level(murphy, t)
    y = yieldkit.murphy_yield
    expected = 1 - y(d_up, 0.4) / y(d_up, t * 0.4)
    assert res["ci_upper"].to_numpy() == pytest.approx(expected, rel=1e-12)
    assert (res["ci_lower"] == 0).all() and res["ci_upper"].iloc[-1] == 0.0


def test_defect_level_y0_convention():
    """Y0 (systematic failures, always detected) scales the shipped fraction, not the defect level."""
    base = defect_level(StandInFit(0.4, 1.5), 0.95)
    with_y0 = defect_level(StandInFit(0.4, 1.5, y0=0.8, cov=np.diag([1e-4, 0.01, 1e-3])), 0.95)
    assert with_y0["defect_level"].iloc[0] == pytest.approx(base["defect_level"].iloc[0], rel=1e-14)
    assert with_y0["shipped_fraction"].iloc[0] == pytest.approx(0.8 * base["shipped_fraction"].iloc[0], rel=1e-14)
    assert with_y0["yield"].iloc[0] == pytest.approx(0.8 * (1 + 0.4 / 1.5) ** -1.5, rel=1e-14)
    assert with_y0["fallout"].iloc[0] == pytest.approx(1 - 0.8 * base["shipped_fraction"].iloc[0], rel=1e-14)


def test_delta_interval_against_numerical_gradient():
    """Delta-method interval equals one built from a central-difference gradient of logit DL."""
    cov = np.array([[4e-4, -1e-3], [-1e-3, 0.09]])
    fit = StandInFit(0.6, 1.2, area=1.5, cov=cov)
    t = 0.97
    res = defect_level(fit, t, conf_level=0.9)

    def logit_dl(p):
        dl = negative_binomial_defect_level(p[0] * 1.5, t, p[1])
        return math.log(dl / (1 - dl))

    p = np.array([0.6, 1.2])
    g = np.array([(logit_dl(p + e) - logit_dl(p - e)) / (2e-6) for e in np.eye(2) * 1e-6])
    se = math.sqrt(g @ cov @ g)
    z = stats.norm.ppf(0.95)
    centre = logit_dl(p)
    assert res["ci_lower"].iloc[0] == pytest.approx(1 / (1 + math.exp(-(centre - z * se))), rel=1e-6)
    assert res["ci_upper"].iloc[0] == pytest.approx(1 / (1 + math.exp(-(centre + z * se))), rel=1e-6)
    assert res.attrs == {}  # the table is the whole result


def test_bootstrap_interval_agrees_with_delta_for_small_variance():
    fit = StandInFit(0.6, 2.0, area=1.0, cov=np.diag([1e-4, 4e-3]))
    delta = defect_level(fit, 0.99)
    boot = defect_level(fit, 0.99, interval="bootstrap", n_boot=4000, random_state=7)
    for col in ("ci_lower", "ci_upper"):
        assert boot[col].iloc[0] == pytest.approx(delta[col].iloc[0], rel=0.02)
    none = defect_level(fit, 0.99, interval=None)
    assert none[["ci_lower", "ci_upper"]].isna().all(axis=None)


def test_defect_level_errors_and_warnings():
    class NotFitted:
        pass

    with pytest.raises(YieldkitValueError, match=r"'fitted_model' argument of defect_level .* without 'd0_'"):
        defect_level(NotFitted(), 0.9)
    fit = StandInFit(0.5)
    with pytest.raises(YieldkitValueError, match=r"'coverage' argument of defect_level must be in \[0, 1\]"):
        defect_level(fit, 1.1)
    with pytest.raises(YieldkitValueError, match=r"'area' argument of defect_level must be > 0"):
        defect_level(fit, 0.9, area=-1.0)
    with pytest.raises(YieldkitValueError, match=r"'interval' argument of defect_level must be one of"):
        defect_level(fit, 0.9, interval="profile")
    with pytest.raises(YieldkitValueError, match=r"'conf_level' argument of defect_level must be in \(0, 1\)"):
        defect_level(fit, 0.9, conf_level=95)
    fit.bootstrap = None
    with pytest.raises(YieldkitValueError, match=r"can be 'bootstrap' only for a model with a bootstrap"):
        defect_level(fit, 0.9, interval="bootstrap")
    nan_fit = StandInFit(0.5, cov=[[np.nan]])
    with pytest.warns(ConvergenceWarning, match="covariance is not finite"):
        res = defect_level(nan_fit, 0.9)
    assert res[["ci_lower", "ci_upper"]].isna().all(axis=None)
    no_area = StandInFit(0.5)
    no_area.area_ = None
    with pytest.raises(YieldkitValueError, match=r"'area' argument of defect_level is required"):
        defect_level(no_area, 0.9)
