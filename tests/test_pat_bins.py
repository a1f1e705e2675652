"""Statistical yield and bin limits (AEC-Q002), yieldkit.pat.bins."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from yieldkit.errors import SchemaError, YieldkitValueError
from yieldkit.pat import check_statistical_limits, statistical_limits


def _lots(rng, n_lots=8, n=400, p_bin3=0.05, p_bin7=0.002, prefix="R", wafers=2):
    frames = []
    for i in range(n_lots):
        for w in range(wafers):
            u = rng.random(n)
            hbin = np.where(u < p_bin3, 3, np.where(u < p_bin3 + p_bin7, 7, 1))
            frames.append(pd.DataFrame({"lot_id": f"{prefix}{i}", "wafer_id": str(w), "die_x": np.arange(n),
                                        "die_y": 0, "hbin": hbin}))
    d = pd.concat(frames, ignore_index=True)
    d["passed"] = d["hbin"] == 1
    return d


def test_normal_limits_are_mean_minus_plus_k_sigma(rng):
    ref = _lots(rng)
    lim = statistical_limits(ref)
    y = ref.groupby("lot_id")["passed"].mean()
    f3 = ref.assign(b=ref["hbin"] == 3).groupby("lot_id")["b"].mean()
    t = lim.table.set_index(lim.table["kind"].astype(str) + lim.table["bin"].fillna(-1).astype(str))
    assert t.loc["yield-1", "limit_1"] == pytest.approx(y.mean() - 3 * y.std(ddof=1))
    assert t.loc["yield-1", "limit_2"] == pytest.approx(y.mean() - 4 * y.std(ddof=1))
    assert t.loc["bin3", "limit_1"] == pytest.approx(f3.mean() + 3 * f3.std(ddof=1))
    assert t.loc["bin3", "limit_2"] == pytest.approx(f3.mean() + 4 * f3.std(ddof=1))
    assert lim.n_lots == 8 and lim.level == "lot"


def test_poisson_bin_limits_equal_scipy_quantiles(rng):
    """Reference: scipy.stats.poisson.ppf at the normal tail probabilities Phi(3), Phi(4)."""
    ref = _lots(rng)
    lim = statistical_limits(ref, method="poisson")
    row = lim.table[lim.table["bin"] == 7].iloc[0]
    n_bar = lim.mean_dies
    rate = ((ref["hbin"] == 7).sum()) / len(ref)
    assert row["rate"] == pytest.approx(rate)
    for col, kk in (("limit_1", 3), ("limit_2", 4)):
        assert row[col] * n_bar == pytest.approx(stats.poisson.ppf(stats.norm.cdf(kk), rate * n_bar))
    # per unit: a lot flagged exactly when its count exceeds the scipy quantile at its size
    prod = _lots(rng, n_lots=3, prefix="P", p_bin7=0.03, n=300, wafers=1)
    flags = check_statistical_limits(prod, lim)
    b7 = flags[flags["bin"] == 7]
    q1 = stats.poisson.ppf(stats.norm.cdf(3), rate * b7["n"].to_numpy())
    q2 = stats.poisson.ppf(stats.norm.cdf(4), rate * b7["n"].to_numpy())
    want = np.where(b7["count"] > q2, 2, np.where(b7["count"] > q1, 1, 0))
    np.testing.assert_array_equal(b7["tier"].to_numpy(), want)
    assert b7["tier"].max() >= 1  # fifteen times the reference rate is flagged


def test_robust_limits_ignore_one_bad_reference_lot(rng):
    ref = _lots(rng)
    bad = ref["lot_id"] == "R0"
    ref.loc[bad & (rng.random(len(ref)) < 0.4), ["hbin", "passed"]] = [3, False]
    normal = statistical_limits(ref).table
    robust = statistical_limits(ref, method="robust").table
    assert robust["limit_1"].iloc[0] > normal["limit_1"].iloc[0]  # yield limit not dragged down
    # the tiers flag a low-yield production wafer
    prod = _lots(rng, n_lots=2, prefix="P", wafers=1)
    prod.loc[(prod["lot_id"] == "P1") & (rng.random(len(prod)) < 0.3), ["hbin", "passed"]] = [3, False]
    lim = statistical_limits(ref, method="robust", level="wafer")
    f = check_statistical_limits(prod, lim)
    y = f[f["kind"] == "yield"].set_index("lot_id")
    assert y.loc["P1", "tier"] == 2 and y.loc["P0", "tier"] == 0
    assert list(f.columns[:2]) == ["lot_id", "wafer_id"]


def test_bin_limit_errors(rng):
    ref = _lots(rng, n_lots=5)
    with pytest.raises(YieldkitValueError, match="at least 6 reference lots.*holds 5"):
        statistical_limits(ref)
    ref = _lots(rng)
    with pytest.raises(YieldkitValueError, match="'method' argument of statistical_limits must be one of"):
        statistical_limits(ref, method="weibull")
    with pytest.raises(YieldkitValueError, match="'k' argument of statistical_limits"):
        statistical_limits(ref, k=(4, 3))
    with pytest.raises(SchemaError, match="lacks column.*passed"):
        statistical_limits(ref.drop(columns="passed"))
    with pytest.raises(YieldkitValueError, match="must be StatisticalLimits"):
        check_statistical_limits(ref, {"yield": 0.9})
