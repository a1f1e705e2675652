"""Commonality analysis on seeded synthetic wafer histories with a known bad chamber, and on null data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from yieldkit.commonality import benjamini_hochberg, commonality
from yieldkit.errors import SchemaError, YieldkitValueError

STEPS = ("litho", "etch", "cmp", "depo")


def simulate_history(rng: np.random.Generator, n_lots: int = 20, per_lot: int = 25,
                     bad: tuple[str, str] | None = ("etch", "ET2/B"), effect: float = 0.06):
    """Wafer table with tool/chamber per step, slot and a start time; yields with an optional bad chamber."""
    n = n_lots * per_lot
    w = pd.DataFrame({
        "lot_id": np.repeat([f"L{i:02d}" for i in range(n_lots)], per_lot),
        "wafer_id": np.tile([f"{j + 1:02d}" for j in range(per_lot)], n_lots),
        "slot": np.tile(np.arange(1, per_lot + 1), n_lots),
        "start_time": pd.Timestamp("2026-01-01") + pd.to_timedelta(np.repeat(np.arange(n_lots) * 7, per_lot), "h"),
    })
    for s in STEPS:
        # tools are assigned per lot, chambers per wafer
        w[f"tool_{s}"] = np.repeat(rng.choice([f"{s[:2].upper()}{k}" for k in (1, 2, 3)], n_lots), per_lot)
        w[f"chamber_{s}"] = rng.choice(["A", "B"], n)
    y = np.clip(0.88 + rng.normal(0, 0.03, n), 0, 1)
    if bad is not None:
        step, level = bad
        hit = (w[f"tool_{step}"] + "/" + w[f"chamber_{step}"]).to_numpy() == level
        y = y - effect * hit
    wy = w[["lot_id", "wafer_id"]].assign(tested=500, **{"yield": y})
    return wy, w


def test_bad_chamber_ranks_first(rng):
    wy, w = simulate_history(rng)
    t = commonality(wy, w, random_state=0).table
    top = t.iloc[0]
    assert top["factor"] == "chamber_etch"
    assert top["worst_level"] == "ET2/B"
    assert top["p_adj"] < 0.01 and top["significant"]
    assert top["yield_delta"] < -0.03
    # the permutation-importance view agrees
    assert t.set_index("factor")["importance"].idxmax() == "chamber_etch"
    assert set(t["factor"]) == {"slot", "start_time"} | {f"{k}_{s}" for s in STEPS for k in ("tool", "chamber")}
    assert list(t["rank"]) == list(range(1, len(t) + 1))


def test_kruskal_and_chi2_match_scipy(rng):
    """The per-factor tests equal scipy's on the same groups (independent computation here)."""
    wy, w = simulate_history(rng)
    res = commonality(wy, w, factors=["tool_cmp"], importance=False)
    t = res.table.iloc[0]
    groups = [wy["yield"][w["tool_cmp"] == lv] for lv in sorted(w["tool_cmp"].unique())]
    h, p = stats.kruskal(*groups)
    assert t["kw_stat"] == pytest.approx(h) and t["kw_p"] == pytest.approx(p)
    bad = wy["yield"] < np.quantile(wy["yield"], 0.25)
    assert res.bad_threshold == np.quantile(wy["yield"], 0.25) and res.fdr == 0.05
    c2, p2, _, _ = stats.chi2_contingency(pd.crosstab(w["tool_cmp"], bad).to_numpy(), correction=False)
    assert t["chi2_stat"] == pytest.approx(c2) and t["chi2_p"] == pytest.approx(p2)


def test_null_false_positive_rate():
    """No factor matters: the share of data sets with any flagged factor stays at the nominal 5 %."""
    rng = np.random.default_rng(123)
    reps = 150
    flagged = 0
    per_test = []
    for _ in range(reps):
        wy, w = simulate_history(rng, n_lots=8, per_lot=25, bad=None)
        t = commonality(wy, w, importance=False).table
        flagged += bool(t["significant"].any())
        per_test.append(t["kw_p"].to_numpy())
    rate = flagged / reps
    # binomial upper bound at 3 standard errors around 0.05
    assert rate <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / reps)
    # raw Kruskal-Wallis p-values are close to uniform under the null
    assert np.mean(np.concatenate(per_test) < 0.05) == pytest.approx(0.05, abs=0.02)


def test_benjamini_hochberg_matches_statsmodels():
    from statsmodels.stats.multitest import multipletests

    p = np.random.default_rng(3).random(40) ** 3
    np.testing.assert_allclose(benjamini_hochberg(p), multipletests(p, method="fdr_bh")[1])
    assert np.isnan(benjamini_hochberg([np.nan, 0.1])[0])


def test_commonality_errors(rng):
    wy, w = simulate_history(rng, n_lots=3)
    with pytest.raises(SchemaError, match="lacks the yield column 'yld'"):
        commonality(wy, w, yield_col="yld")
    with pytest.raises(SchemaError, match="lacks column\\(s\\) lot_id"):
        commonality(wy.drop(columns="lot_id"), w)
    with pytest.raises(SchemaError, match="missing from 'wafers': tool_x"):
        commonality(wy, w, factors=["tool_x"])
    with pytest.raises(SchemaError, match="has no factor columns"):
        commonality(wy, w[["lot_id", "wafer_id"]])
    with pytest.raises(YieldkitValueError, match="'bad_quantile' argument of commonality must be in \\(0, 1\\)"):
        commonality(wy, w, bad_quantile=1.5)
    with pytest.raises(YieldkitValueError, match="'fdr'"):
        commonality(wy, w, fdr=0)
    with pytest.raises(YieldkitValueError, match="'time_windows'"):
        commonality(wy, w, time_windows=1)
    with pytest.raises(SchemaError, match="only 0 wafer"):
        commonality(wy.assign(lot_id="other" + wy["lot_id"]), w)
    with pytest.raises(SchemaError, match="duplicate \\(lot_id, wafer_id\\)"):
        commonality(pd.concat([wy, wy]), w)
