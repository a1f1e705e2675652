"""Tests of fallout curves: building them from a die table and fitting ASA / clustered models."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from yieldkit.errors import (
    BoundaryWarning,
    DataQualityWarning,
    NotFittedError,
    SchemaError,
    YieldkitValueError,
)
from yieldkit.quality import (
    FalloutFit,
    agrawal_seth_agrawal,
    agrawal_seth_agrawal_fallout,
    fallout_curve,
    negative_binomial_defect_level,
    negative_binomial_fallout,
)

TESTS = pd.DataFrame({"test_num": [100, 200, 300, 400, 500, 600],
                      "coverage": [0.3, 0.55, 0.75, 0.88, 0.95, 0.98]})


def _simulate_dies(rng, faults):
    """First failing test of each die: each fault is caught by the first test whose cumulative coverage
    exceeds its uniform detection threshold, so the earliest is the minimum of N uniforms (Beta(1, N))."""
    cov = TESTS["coverage"].to_numpy()
    n = faults.astype(float)
    with np.errstate(divide="ignore"):
        u_min = np.where(n > 0, -np.expm1(np.log(rng.random(n.size)) / np.where(n > 0, n, 1.0)), np.inf)
    k = np.searchsorted(cov, u_min, side="left")
    first = pd.array([TESTS["test_num"].iloc[i] if i < len(cov) else pd.NA for i in k], dtype="Int64")
    return pd.DataFrame({"first_fail_test": first, "n_faults": faults})


def test_noiseless_curves_recover_parameters():
    t = TESTS["coverage"].to_numpy()
    asa = FalloutFit("asa").fit(pd.DataFrame({"coverage": t, "fail_fraction": agrawal_seth_agrawal_fallout(0.8, t, 4.0)}),
                                n_tested=50_000)
    assert asa.yield_ == pytest.approx(0.8, rel=1e-5) and asa.n0_ == pytest.approx(4.0, rel=1e-4)
    assert asa.dppm_ == pytest.approx(1e6 * float(agrawal_seth_agrawal(0.8, 0.98, 4.0)), rel=1e-3)
    nb = FalloutFit("nb").fit(pd.DataFrame({"coverage": t, "fail_fraction": negative_binomial_fallout(0.4, t, 1.5)}),
                              n_tested=50_000)
    assert nb.mean_faults_ == pytest.approx(0.4, rel=1e-4) and nb.cluster_alpha_ == pytest.approx(1.5, rel=1e-3)
    assert nb.yield_ == pytest.approx((1 + 0.4 / 1.5) ** -1.5, rel=1e-5)
    assert nb.predict_fallout(0.5) == pytest.approx(negative_binomial_fallout(0.4, 0.5, 1.5), rel=1e-4)


def test_monte_carlo_clustered_fallout(rng):
    """Seeded simulation with known truth (lambda = 0.6, alpha = 1.2, 40,000 dies): the clustered fit's
    intervals cover lambda, alpha and the simulated escape rate at the final coverage."""
    lam, alpha = 0.6, 1.2
    faults = rng.negative_binomial(alpha, alpha / (alpha + lam), size=40_000)
    dies = _simulate_dies(rng, faults)
    curve = fallout_curve(dies, TESTS).table
    assert curve["fail_fraction"].to_numpy() == pytest.approx(
        negative_binomial_fallout(lam, TESTS["coverage"].to_numpy(), alpha), abs=0.006)
    fit = FalloutFit("nb").fit(curve)
    assert fit.n_tested_ == 40_000
    summ = fit.summary()
    for name, truth in (("mean_faults", lam), ("cluster_alpha", alpha)):
        assert summ.loc[name, "ci_lower"] <= truth <= summ.loc[name, "ci_upper"], name
    ships = dies["first_fail_test"].isna()
    escape = float((ships & (dies["n_faults"] > 0)).sum() / ships.sum())
    exact = float(negative_binomial_defect_level(lam, 0.98, alpha))
    dl = fit.defect_level()
    assert dl["ci_lower"][0] <= exact <= dl["ci_upper"][0]
    assert dl["ci_lower"][0] <= escape <= dl["ci_upper"][0]
    assert summ.loc["dppm", "estimate"] == pytest.approx(fit.dppm_)
    assert list(summ.columns) == ["estimate", "std_err", "ci_lower", "ci_upper", "unit"]


def test_monte_carlo_asa_fallout(rng):
    """Agrawal-Seth-Agrawal truth (Y = 0.75, n0 = 3): faulty dies carry 1 + Poisson(2) faults."""
    y, n0, n = 0.75, 3.0, 40_000
    faulty = rng.random(n) >= y
    faults = np.where(faulty, 1 + rng.poisson(n0 - 1, n), 0)
    fit = FalloutFit("asa").fit(fallout_curve(_simulate_dies(rng, faults), TESTS))
    summ = fit.summary()
    assert summ.loc["yield", "ci_lower"] <= y <= summ.loc["yield", "ci_upper"]
    assert summ.loc["n0", "ci_lower"] <= n0 <= summ.loc["n0", "ci_upper"]
    exact = 1e6 * float(agrawal_seth_agrawal(y, 0.98, n0))
    assert summ.loc["dppm", "ci_lower"] <= exact <= summ.loc["dppm", "ci_upper"]
    assert "FalloutFit(model='asa', yield=" in repr(fit)


def test_boundaries_warn_and_hold():
    t = TESTS["coverage"].to_numpy()
    with pytest.warns(BoundaryWarning, match=r"n0 = 1"):
        fit = FalloutFit("asa").fit(pd.DataFrame({"coverage": t, "fail_fraction": agrawal_seth_agrawal_fallout(0.8, t, 1.0)}),
                                    n_tested=10_000)
    assert fit.n0_ == 1.0 and fit.yield_ == pytest.approx(0.8, rel=1e-6)
    assert math.isnan(fit.summary().loc["n0", "std_err"])
    assert np.isfinite(fit.summary().loc["dppm", "ci_upper"])
    with pytest.warns(BoundaryWarning, match=r"cluster_alpha = inf"):
        fit = FalloutFit("nb").fit(pd.DataFrame({"coverage": t, "fail_fraction": -np.expm1(-0.3 * t)}), n_tested=10_000)
    assert fit.cluster_alpha_ == math.inf and fit.mean_faults_ == pytest.approx(0.3, rel=1e-6)


def test_without_n_tested_intervals_are_nan():
    t = TESTS["coverage"].to_numpy()
    fit = FalloutFit("asa").fit(pd.DataFrame({"coverage": t, "fail_fraction": agrawal_seth_agrawal_fallout(0.8, t, 2.0)}))
    assert fit.yield_ == pytest.approx(0.8, rel=1e-5)
    assert fit.cov_.isna().all(axis=None)
    assert fit.defect_level()[["ci_lower", "ci_upper"]].isna().all(axis=None)


def test_fallout_curve_table_and_systematic_screen():
    dies = pd.DataFrame({"first_fail_test": [1, 2, None, None, 2, 0, None, 0],
                         "passed": [False, False, True, True, False, False, True, False]})
    tests = pd.DataFrame({"test_num": [0, 1, 2], "coverage": [0.0, 0.5, 0.9]})
    res = fallout_curve(dies, tests)
    curve = res.table
    assert curve["test_num"].tolist() == [1, 2]
    assert curve["n_fail"].tolist() == [1, 2]
    assert curve["n_tested"].tolist() == [6, 6]
    assert curve["fail_fraction"].tolist() == pytest.approx([1 / 6, 3 / 6])
    assert (res.n_systematic, res.n_dropped) == (2, 0)


def test_fallout_curve_errors_and_warnings():
    tests = pd.DataFrame({"test_num": [1, 2], "coverage": [0.5, 0.9]})
    with pytest.warns(DataQualityWarning, match=r"contradicts 'first_fail_test'"):
        curve = fallout_curve(pd.DataFrame({"first_fail_test": [1, None, None], "passed": [False, False, True]}), tests)
    assert curve.n_dropped == 1 and curve.table["n_tested"][0] == 2
    with pytest.raises(SchemaError, match=r"lacks column\(s\) \['first_fail_test'\]"):
        fallout_curve(pd.DataFrame({"x": [1]}), tests)
    with pytest.raises(SchemaError, match=r"'tests' table of fallout_curve lacks"):
        fallout_curve(pd.DataFrame({"first_fail_test": [1]}), tests.rename(columns={"coverage": "cov"}))
    with pytest.raises(YieldkitValueError, match=r"names tests absent from the tests table. Got \[7\]"):
        fallout_curve(pd.DataFrame({"first_fail_test": [1, 7]}), tests)
    with pytest.raises(YieldkitValueError, match=r"must be non-decreasing in test order"):
        fallout_curve(pd.DataFrame({"first_fail_test": [1]}), tests.assign(coverage=[0.9, 0.5]))
    with pytest.raises(YieldkitValueError, match=r"'coverage' argument of fallout_curve must be in \[0, 1\]"):
        fallout_curve(pd.DataFrame({"first_fail_test": [1]}), tests.assign(coverage=[0.5, 1.5]))
    with pytest.raises(YieldkitValueError, match=r"must not repeat"):
        fallout_curve(pd.DataFrame({"first_fail_test": [1]}), tests.assign(test_num=[1, 1]))


def test_fit_errors():
    good = pd.DataFrame({"coverage": [0.5, 0.9], "fail_fraction": [0.1, 0.15]})
    with pytest.raises(NotFittedError, match="not fitted"):
        FalloutFit().defect_level()
    with pytest.raises(YieldkitValueError, match=r"'model' argument of FalloutFit must be one of 'asa', 'nb'"):
        FalloutFit("wb").fit(good)
    with pytest.raises(YieldkitValueError, match=r"'conf_level' argument of FalloutFit must be in \(0, 1\)"):
        FalloutFit(conf_level=2).fit(good)
    with pytest.raises(SchemaError, match=r"lacks column\(s\) \['fail_fraction'\]"):
        FalloutFit().fit(good[["coverage"]])
    with pytest.raises(YieldkitValueError, match=r"strictly increasing values in \(0, 1\]"):
        FalloutFit().fit(good.assign(coverage=[0.9, 0.5]))
    with pytest.raises(YieldkitValueError, match=r"'fail_fraction' argument of FalloutFit.fit must be non-decreasing"):
        FalloutFit().fit(good.assign(fail_fraction=[0.2, 0.1]))
    with pytest.raises(YieldkitValueError, match=r"'fail_fraction' argument of FalloutFit.fit must be in \[0, 1\]"):
        FalloutFit().fit(good.assign(fail_fraction=[0.2, 1.1]))
    with pytest.raises(YieldkitValueError, match=r"'n_tested' argument of FalloutFit.fit must be > 0. Got 0"):
        FalloutFit().fit(good, n_tested=0)
