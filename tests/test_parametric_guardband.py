"""Guard-banded test limits (yieldkit.parametric.guardband)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from yieldkit.errors import DataQualityWarning, SchemaError, YieldkitValueError
from yieldkit.parametric.guardband import bivariate_normal_cdf, guardband, guardband_risks


def test_bivariate_normal_equals_scipy(rng):
    """Owen's-T closed form against scipy.stats.multivariate_normal.cdf (Genz, abseps 1e-8)."""
    h, k = rng.normal(0, 1.5, (2, 40))
    rho = rng.uniform(-0.95, 0.95, 40)
    ours = bivariate_normal_cdf(h, k, rho)
    for i in range(40):
        ref = stats.multivariate_normal([0, 0], [[1, rho[i]], [rho[i], 1]], abseps=1e-8).cdf([h[i], k[i]])
        assert ours[i] == pytest.approx(ref, abs=1e-7)
    assert bivariate_normal_cdf(0.0, 0.0, 0.5) == pytest.approx(1 / 3, abs=1e-15)
    assert bivariate_normal_cdf(np.inf, 1.0, 0.3) == pytest.approx(stats.norm.cdf(1.0), abs=1e-15)
    assert bivariate_normal_cdf(-np.inf, 1.0, 0.3) == 0.0


def test_closed_form_against_monte_carlo():
    """The closed form against a seeded 10^7-draw Monte Carlo (X ~ N(mu, sigma), M = X + N(0, u)),
    drawn in chunks of 10^6: every probability within 3 binomial standard errors."""
    lo, hi, mu, sigma, u = 0.9, 1.1, 1.02, 0.035, 0.012
    tlo, thi = lo + 2 * u, hi - 2 * u
    exact = guardband_risks(lo, hi, tlo, thi, mu, sigma, u)
    rng = np.random.default_rng(12345)
    n_total, chunk = 10_000_000, 1_000_000
    counts = dict.fromkeys(("in_spec", "yield_spec", "yield_test", "false_reject", "escape", "escape_spec"), 0)
    for _ in range(n_total // chunk):
        x = rng.normal(mu, sigma, chunk)
        m = x + rng.normal(0.0, u, chunk)
        ins = (x > lo) & (x < hi)
        pass_spec = (m > lo) & (m < hi)
        pass_test = (m > tlo) & (m < thi)
        counts["in_spec"] += int(ins.sum())
        counts["yield_spec"] += int(pass_spec.sum())
        counts["yield_test"] += int(pass_test.sum())
        counts["false_reject"] += int((ins & ~pass_test).sum())
        counts["escape"] += int((~ins & pass_test).sum())
        counts["escape_spec"] += int((~ins & pass_spec).sum())
    assert exact["escape"] > 1e-5 and exact["escape_spec"] > exact["escape"]  # a case worth testing
    for key, c in counts.items():
        p_hat = c / n_total
        se = np.sqrt(max(float(exact[key]) * (1 - float(exact[key])), 1e-12) / n_total)
        assert abs(p_hat - float(exact[key])) <= 3 * se, (key, p_hat, float(exact[key]), se)


def test_guardband_table_and_pfa():
    lim = pd.DataFrame({"test_num": [1, 2], "lo_limit": [0.9, np.nan], "hi_limit": [1.1, 5.0],
                        "mean": [1.0, 4.0], "sigma_overall": [0.05, 0.3]})
    g = guardband(lim, u=[0.01, 0.1], pfa=0.05)
    assert g.k == pytest.approx(stats.norm.isf(0.05))
    t = g.table
    np.testing.assert_allclose(t["test_hi"], [1.1 - g.k * 0.01, 5.0 - g.k * 0.1])
    assert np.isnan(t["test_lo"].iloc[1])  # one-sided test stays one-sided
    np.testing.assert_allclose(t["sigma_process"], np.sqrt([0.05**2 - 0.01**2, 0.3**2 - 0.1**2]))
    assert (t["escape"] < t["escape_spec"]).all() and (t["yield_loss"] > 0).all()
    # a part measured exactly at the test limit is out of spec with probability pfa
    assert stats.norm.sf((1.1 - t["test_hi"].iloc[0]) / 0.01) == pytest.approx(0.05)
    assert guardband(lim, u=0.0 + 1e-9, k=0).table["yield_loss"].abs().max() < 1e-12


def test_bad_input():
    lim = pd.DataFrame({"lo_limit": [0.9], "hi_limit": [1.1], "mean": [1.0], "sigma_overall": [0.05]})
    with pytest.raises(SchemaError, match="lacks column.*mean"):
        guardband(lim.drop(columns="mean"), u=0.01)
    with pytest.raises(YieldkitValueError, match="not both"):
        guardband(lim, u=0.01, k=2, pfa=0.05)
    with pytest.raises(YieldkitValueError, match="'pfa' argument of guardband must be in"):
        guardband(lim, u=0.01, pfa=0.7)
    with pytest.raises(YieldkitValueError, match="'u' argument of guardband must be > 0"):
        guardband(lim, u=0.0)
    with pytest.raises(YieldkitValueError, match="'k' argument of guardband must be >= 0"):
        guardband(lim, u=0.01, k=-1)
    with pytest.warns(DataQualityWarning, match="closes the test window"):
        guardband(lim, u=0.04, k=3, measured=False)
    with pytest.warns(DataQualityWarning, match="u >= their measured sigma"):
        assert np.isnan(guardband(lim, u=0.06, k=0.5).table["escape"].iloc[0])
