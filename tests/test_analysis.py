"""analyze(): every table computed once, optional sections degrade only for missing inputs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import yieldkit as yk
from yieldkit.analysis import AnalysisResults, analyze


@pytest.fixture(scope="module")
def fab():
    return yk.simulate_fab(n_lots=2, wafers_per_lot=5, retest_rate=0.01, signature_rate=0.3, random_state=4)


def test_analyze_full(fab):
    r = analyze(fab.dies, fab.defects, fab.wafers, fab.layout, fab.bin_names)
    assert isinstance(r, AnalysisResults)
    w = yk.wafer_yield(fab.dies)
    assert r.summary["wafers"] == 10 and r.summary["dies"] == int(w["tested"].sum())
    assert r.summary["yield"] == pytest.approx(w["good"].sum() / w["tested"].sum())
    assert r.kill_ratios is not None and r.defect_pareto_kill is not None and r.u_chart is not None
    assert r.u_chart.statistic == "defects_per_cm2"
    # stacked map: tested per die position summed over wafers equals the dies tested
    final = yk.final_results(fab.dies)
    ref = (~final["passed"]).groupby([final["die_x"], final["die_y"]]).mean()
    st = r.stacked.set_index(["die_x", "die_y"])["fail_rate"]
    np.testing.assert_allclose(st.to_numpy(), ref.reindex(st.index).to_numpy())
    # control chart in test-time order
    assert len(r.p_chart.table) == 10
    assert "defect Paretos" not in " ".join(r.notes)


def test_analyze_without_defects_notes_sections(fab):
    r = analyze(fab.dies)
    assert r.defect_pareto is None and r.kill_ratios is None and r.u_chart is None and r.models is None
    assert any("no defect table" in n for n in r.notes)
    assert any("commonality" in n for n in r.notes)


def test_u_chart_counts_match_groupby(fab):
    r = analyze(fab.dies, fab.defects, layout=fab.layout)
    ref = fab.defects.groupby(["lot_id", "wafer_id"]).size()
    t = r.u_chart.table.set_index(["lot_id", "wafer_id"])
    np.testing.assert_allclose(t["value"] * t["n"], ref.reindex(t.index).to_numpy())


def test_pattern_classes_per_wafer_and_per_lot(fab):
    """The pretrained classifier names each wafer's signature; the lot table counts them with causes."""
    r = analyze(fab.dies, fab.defects, fab.wafers, fab.layout, fab.bin_names)
    assert r.patterns is not None and len(r.patterns) == 10
    lots = r.pattern_lots
    assert set(lots.columns) >= {"lot_id", "pattern", "wafers", "share", "candidate_causes"}
    assert lots.groupby("lot_id")["wafers"].sum().tolist() == [5, 5]
    names = {"center": "Center", "donut": "Donut", "edge-loc": "Edge-Loc", "edge-ring": "Edge-Ring", "loc": "Loc",
             "scratch": "Scratch", "random": "Random", "near-full": "Near-full", "none": "none"}
    truth = fab.truth["wafers"].set_index(["lot_id", "wafer_id"])["signature"].map(names)
    pred = r.patterns.set_index(["lot_id", "wafer_id"])["pattern"]
    assert (truth != "none").sum() == 3  # center, donut, edge-loc in this seeded fab
    assert (pred.reindex(truth.index) == truth).mean() >= 0.9


def test_clustered_wafers_are_the_signature_wafers():
    """Wafers with a spatial signature are flagged as clustered; random-defect wafers rarely are."""
    fab = yk.simulate_fab(n_lots=1, wafers_per_lot=12, signatures={0: "edge-ring", 1: "center", 2: "scratch"}, random_state=6)
    r = analyze(fab.dies, fab.defects, fab.wafers, fab.layout, fab.bin_names)
    flagged = set(r.clustering["wafer_id"])
    assert {"01", "02"} <= flagged
    assert len(flagged - {"01", "02", "03"}) <= 1
    assert r.clustering_tested == 12


@pytest.mark.parametrize("n_wafers", [1, 2])
def test_commonality_needs_three_wafers_in_both_tables(fab, n_wafers):
    """Fewer than 3 wafers in both the die and the wafer table: the section is left out with a note."""
    keep = fab.wafers[["lot_id", "wafer_id"]].iloc[:n_wafers]
    dies = fab.dies.merge(keep, on=["lot_id", "wafer_id"])
    r = analyze(dies, wafers=fab.wafers, layout=fab.layout)  # the wafer table has all 10 wafers
    assert r.commonality is None
    assert any(f"commonality: {n_wafers} wafer(s) are in both" in n for n in r.notes), r.notes
    r = analyze(fab.dies, wafers=fab.wafers.iloc[:n_wafers], layout=fab.layout)
    assert r.commonality is None and any("commonality" in n for n in r.notes)
    r = analyze(fab.dies, wafers=fab.wafers.iloc[:3], layout=fab.layout)
    assert r.commonality is not None


def test_u_chart_inspected_wafers_without_defects(fab):
    """A wafer inspected with no defect is on the u-chart with zero defects when the caller lists it."""
    key = ["lot_id", "wafer_id"]
    clean = tuple(fab.wafers[key].iloc[2])
    defects = fab.defects[~((fab.defects["lot_id"] == clean[0]) & (fab.defects["wafer_id"] == clean[1]))]
    r = analyze(fab.dies, defects, layout=fab.layout)
    charted = set(map(tuple, r.u_chart.table[key].astype(str).to_numpy()))
    assert len(charted) == 9 and clean not in charted
    assert "treated as not inspected" in r.u_chart_note

    inspected = fab.wafers[key].astype(object)  # e.g. the wafers of a KLARF file; key dtype may differ
    r = analyze(fab.dies, defects, layout=fab.layout, inspected_wafers=inspected)
    t = r.u_chart.table.assign(**{k: r.u_chart.table[k].astype(str) for k in key}).set_index(key)
    assert len(t) == 10 and r.u_chart_note is None
    assert t.loc[clean, "value"] == 0.0
    ref = defects.groupby(key).size()
    ref.index = ref.index.map(lambda k: (str(k[0]), str(k[1])))
    np.testing.assert_allclose((t["value"] * t["n"]).to_numpy(), ref.reindex(t.index, fill_value=0).to_numpy())
    # the same order as the p-chart: wafers are not re-sorted by the join
    assert list(map(tuple, r.u_chart.table[key].astype(str).to_numpy())) == \
        list(map(tuple, r.p_chart.table[key].astype(str).to_numpy()))


def test_u_chart_empty_defect_table_with_inspected_wafers(fab):
    """Inspected wafers and no defect at all: a u-chart of zeros, not 'no defect table'."""
    key = ["lot_id", "wafer_id"]
    r = analyze(fab.dies, fab.defects.iloc[:0], layout=fab.layout, inspected_wafers=fab.wafers[key])
    assert r.u_chart is not None and len(r.u_chart.table) == 10 and r.u_chart.centre == 0.0
    assert r.defect_pareto is None and any("the defect table is empty" in n for n in r.notes)
    with pytest.raises(yk.errors.SchemaError, match="'inspected_wafers' argument of analyze"):
        analyze(fab.dies, fab.defects, inspected_wafers=fab.wafers[["lot_id"]])


def test_parts_without_a_wafer_position_stay_off_the_spatial_sections():
    """Final-test units (no die_x/die_y) count in the yields but not in maps, zones, clustering or patterns."""
    import pandas as pd

    from yieldkit.schema import validate_dies

    raw = pd.DataFrame({"lot": ["L"] * 6, "wafer": ["1"] * 6, "x": [None, None, None, 0, 0, 1],
                        "y": [None, None, None, 0, 0, 0], "bin": [1, 2, 5, 1, 5, 1], "test_seq": [1, 1, 1, 1, 2, 1]})
    dies = validate_dies(raw, missing_xy="unit")
    r = analyze(dies)
    assert r.summary["dies"] == 5
    assert sorted(zip(r.stacked["die_x"], r.stacked["die_y"])) == [(0, 0), (1, 0)]
    assert r.stacked.set_index(["die_x", "die_y"]).loc[(0, 0), "fail_rate"] == 1.0  # the retest's result
    assert r.clustering_tested == 1 and r.patterns is not None
    assert any("3 test record(s) without a wafer position" in n for n in r.notes), r.notes
    r = analyze(validate_dies(raw.assign(x=None, y=None, test_seq=1), missing_xy="unit"))
    assert r.summary["dies"] == 6 and len(r.stacked) == 0
    assert r.zonal is None and r.clustering is None and r.patterns is None
    assert any("no die has a wafer position" in n for n in r.notes), r.notes


def test_too_few_dies_for_yield_models_gives_a_note():
    fab = yk.simulate_fab(n_lots=1, wafers_per_lot=1, d0=20.0, random_state=2)  # every die has defects
    few = fab.dies.iloc[:10]
    keep = fab.defects.merge(few[["die_x", "die_y"]], on=["die_x", "die_y"])
    r = analyze(few, keep, None, fab.layout, fab.bin_names)
    assert r.models is None and any("at least 30" in n for n in r.notes)


def test_sections_pick_the_final_results_once(monkeypatch):
    """With retests, the sections get the final results from analyze (no copy of the die table per
    section), and equal the public functions run on the table with its retests."""
    import yieldkit.yields as ykyields
    from yieldkit.maps import stack_map
    from yieldkit.spatial import clustering_stats

    fab = yk.simulate_fab(n_lots=1, wafers_per_lot=4, retest_rate=0.05, random_state=3)
    assert fab.dies.duplicated(["lot_id", "wafer_id", "die_x", "die_y"]).any()
    picks = []
    pick = ykyields._pick
    monkeypatch.setattr(ykyields, "_pick", lambda d, last: picks.append(last) or pick(d, last))
    res = analyze(fab.dies, fab.defects, fab.wafers, fab.layout, fab.bin_names)
    # analyze's own, then wafer_yield, bin_pareto and retest_recovery, which need the retests
    assert sum(picks) <= 4
    monkeypatch.setattr(ykyields, "_pick", pick)
    pd.testing.assert_frame_equal(res.kill_ratios.table, yk.kill_ratio(fab.dies, fab.defects).table)
    pd.testing.assert_frame_equal(res.defect_pareto_kill, yk.pareto(fab.defects, dies=fab.dies, weight="kill"))
    pd.testing.assert_frame_equal(res.stacked, stack_map(fab.dies, level="pooled"))
    assert res.clustering_tested == len(clustering_stats(fab.dies))
