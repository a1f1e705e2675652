"""Paretos: counts against pandas groupby, Other folding, kill weighting, bin names, retests."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import yieldkit as yk
from yieldkit.errors import SchemaError, YieldkitValueError
from yieldkit.killratio import kill_ratio
from yieldkit.pareto import OTHER, bin_pareto, pareto, retest_recovery, size_bins


@pytest.fixture(scope="module")
def fab():
    return yk.simulate_fab(n_lots=2, wafers_per_lot=4, retest_rate=0.02, random_state=5)


def test_counts_match_pandas_groupby(fab):
    """Counts, shares and cumulative shares equal an independent pandas value_counts."""
    p = pareto(fab.defects)
    ref = fab.defects["defect_class"].value_counts()
    assert dict(zip(p["category"], p["count"])) == ref.to_dict()
    assert p["count"].is_monotonic_decreasing
    np.testing.assert_allclose(p["share"], p["count"] / len(fab.defects))
    np.testing.assert_allclose(p["cum_share"], np.cumsum(p["count"]) / len(fab.defects))
    # vital few: up to and including the first category reaching 80 %
    k = int(np.argmax(p["cum_share"].to_numpy() >= 0.8))
    assert p["vital_few"].tolist() == [True] * (k + 1) + [False] * (len(p) - k - 1)


def test_grouped_counts_match_groupby_and_other(fab):
    p = pareto(fab.defects, group="lot_id", top=2)
    ref = fab.defects.groupby(["lot_id", "defect_class"]).size()
    for lot, sub in p.groupby("lot_id"):
        assert sub["category"].tolist()[-1] == OTHER
        assert sub["count"].sum() == ref[lot].sum()
        top2 = ref[lot].sort_values(ascending=False).iloc[:2]
        assert sub["count"].iloc[:2].tolist() == top2.tolist()
        assert sub["cum_share"].iloc[-1] == pytest.approx(1.0)


def test_layer_and_size_bins(fab):
    p = pareto(fab.defects, by="layer")
    assert dict(zip(p["category"], p["count"])) == fab.defects["layer"].value_counts().to_dict()
    s = pareto(fab.defects, by="size_bin")
    ref = size_bins(fab.defects["size_um"]).value_counts()
    assert dict(zip(s["category"], s["count"])) == ref.to_dict()
    assert size_bins(pd.Series([0.1, 0.0999, np.nan]), (0.1, 1)).tolist() == ["0.1-1 um", "<0.1 um", "size unknown"]


def test_kill_weighted_matches_kill_ratio(fab):
    """With dies, the Pareto's kill columns equal kill_ratio's, and ranking by impact sorts KR*dies."""
    p = pareto(fab.defects, dies=fab.dies, weight="kill").set_index("category")
    kr = kill_ratio(fab.dies, fab.defects, method="contingency").table.set_index("category")
    for c in kr.index:
        assert p.loc[c, "kill_ratio"] == pytest.approx(kr.loc[c, "kill_ratio"], nan_ok=True)
        assert p.loc[c, "limited_yield"] == pytest.approx(kr.loc[c, "limited_yield"])
        assert p.loc[c, "impact"] == pytest.approx(kr.loc[c, "kill_ratio"] * kr.loc[c, "dies_affected"])
    assert p["impact"].is_monotonic_decreasing
    assert p.loc["nuisance", "impact"] < p.loc["particle", "impact"]


def test_group_by_lot_uses_the_lots_dies(fab):
    """Per lot, the kill ratio is the one computed on that lot's tables alone."""
    p = pareto(fab.defects, dies=fab.dies, group="lot_id")
    lot = "L0002"
    one = kill_ratio(fab.dies[fab.dies["lot_id"] == lot], fab.defects[fab.defects["lot_id"] == lot],
                     method="contingency").table.set_index("category")
    sub = p[p["lot_id"] == lot].set_index("category")
    for c in one.index:
        assert sub.loc[c, "kill_ratio"] == pytest.approx(one.loc[c, "kill_ratio"])
        assert sub.loc[c, "dies_affected"] == one.loc[c, "dies_affected"]


def test_density_weight(fab):
    p = pareto(fab.defects, dies=fab.dies, weight="density", die_area_cm2=0.3)
    n = len(yk.final_results(fab.dies))
    np.testing.assert_allclose(p["density"], p["count"] / (n * 0.3))


def test_pareto_errors(fab):
    with pytest.raises(YieldkitValueError, match="'weight'"):
        pareto(fab.defects, weight="area")
    with pytest.raises(YieldkitValueError, match="needs the die table"):
        pareto(fab.defects, weight="kill")
    with pytest.raises(YieldkitValueError, match="die_area_cm2"):
        pareto(fab.defects, dies=fab.dies, weight="density")
    with pytest.raises(YieldkitValueError, match="'top'"):
        pareto(fab.defects, top=0)
    with pytest.raises(SchemaError, match="'by' column 'tool'"):
        pareto(fab.defects, by="tool")
    with pytest.raises(SchemaError, match="'group'"):
        pareto(fab.defects, group="product")


def test_bin_pareto_matches_groupby_and_names(fab):
    final = yk.final_results(fab.dies)
    bp = bin_pareto(fab.dies, bin_names=fab.bin_names)
    ref = final.loc[~final["passed"], "hbin"].value_counts()
    assert dict(zip(bp["category"], bp["count"])) == ref.to_dict()
    assert set(bp["name"]) <= set(fab.bin_names.values())
    np.testing.assert_allclose(bp["yield_loss"], bp["count"] / len(final))
    assert 1 not in bp["category"].tolist()
    # STDF-style bins table: kind/bin/name
    table = pd.DataFrame({"kind": ["hard", "soft"], "bin": [2, 2], "name": ["HB_FUNC", "SB_FUNC"]})
    assert "HB_FUNC" in bin_pareto(fab.dies, bin_names=table)["name"].tolist()
    fp = bin_pareto(fab.dies, first_pass=True)
    assert 5 in fp["category"].tolist() and 5 not in bp["category"].tolist()
    with pytest.raises(YieldkitValueError, match="'by'"):
        bin_pareto(fab.dies, by="xbin")
    with pytest.raises(YieldkitValueError, match="bin_names"):
        bin_pareto(fab.dies, bin_names=[1, 2])


def test_retest_recovery_against_truth(fab):
    """The simulator's contact fails (bin 5) recover at retest unless the die truly fails."""
    r = retest_recovery(fab.dies, bin_names=fab.bin_names).set_index("category")
    first = yk.first_pass_results(fab.dies)
    n5 = int((first["hbin"] == 5).sum())
    assert r.loc[5, "first_pass_fails"] == n5 and r.loc[5, "retested"] == n5
    final = yk.final_results(fab.dies)
    w = yk.wafer_yield(fab.dies)
    assert (w["good"] - w["first_pass_good"]).sum() == r["recovered"].sum()
    assert r.loc[5, "name"] == "CONTINUITY"
    assert final["passed"].sum() - first["passed"].sum() == r.loc[5, "recovered"]


def test_plot_pareto_draws_the_ranking_weight(fab):
    """Without value=, the bars are the column the table was ranked by (read from its shares)."""
    from yieldkit.plotting.pareto import plot_pareto

    kill = pareto(fab.defects, dies=fab.dies, weight="kill")
    assert kill.attrs == {}
    ax = plot_pareto(kill)
    np.testing.assert_allclose([b.get_height() for b in ax.patches], kill["impact"].to_numpy(dtype=float))
    assert ax.get_ylabel() == "impact"
    count = pareto(fab.defects, dies=fab.dies)
    ax = plot_pareto(count)
    np.testing.assert_allclose([b.get_height() for b in ax.patches], count["count"].to_numpy(dtype=float))
    assert ax.get_ylabel() == "count"
