"""Per-wafer and per-lot yield, retests, and their intervals."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import yieldkit as yk
from yieldkit.errors import SchemaError


def _dies(rows):
    return yk.read_dies(pd.DataFrame(rows, columns=["lot", "wafer", "x", "y", "bin", "test_seq"]))


def test_final_and_first_pass_results_pick_the_right_insertion():
    d = _dies([
        ("L", "1", 0, 0, 5, 1), ("L", "1", 0, 0, 1, 2),  # recovered at retest
        ("L", "1", 1, 0, 1, 1),
        ("L", "1", 2, 0, 5, 1), ("L", "1", 2, 0, 6, 3), ("L", "1", 2, 0, 7, 2),  # order in file != test order
    ])
    fin = yk.final_results(d).set_index("die_x")["hbin"].to_dict()
    first = yk.first_pass_results(d).set_index("die_x")["hbin"].to_dict()
    assert fin == {0: 1, 1: 1, 2: 6}
    assert first == {0: 5, 1: 1, 2: 5}


def test_wafer_yield_counts_and_interval_against_a_groupby():
    fab = yk.simulate_fab(n_lots=2, wafers_per_lot=4, retest_rate=0.05, random_state=5)
    w = yk.wafer_yield(fab.dies)
    fin = yk.final_results(fab.dies)
    first = yk.first_pass_results(fab.dies)
    g = fin.groupby(["lot_id", "wafer_id"])["passed"].agg(["size", "sum"])
    g1 = first.groupby(["lot_id", "wafer_id"])["passed"].sum()
    m = w.set_index(["lot_id", "wafer_id"])
    assert (m["tested"] == g["size"]).all() and (m["good"] == g["sum"]).all()
    assert (m["first_pass_good"] == g1).all()
    assert (m["first_pass_yield"] <= m["yield"]).all()  # contact fails are recovered at retest
    from scipy.stats import binomtest

    r = w.iloc[0]
    ci = binomtest(int(r["good"]), int(r["tested"])).proportion_ci(0.95, method="exact")
    assert r["ci_lower"] == pytest.approx(ci.low) and r["ci_upper"] == pytest.approx(ci.high)


def test_lot_yield_pools_wafers():
    d = _dies([("A", "1", 0, 0, 1, 1), ("A", "1", 1, 0, 2, 1), ("A", "2", 0, 0, 1, 1), ("B", "1", 0, 0, 2, 1)])
    lots = yk.lot_yield(d).set_index("lot_id")
    assert lots.loc["A", "wafers"] == 2 and lots.loc["A", "tested"] == 3 and lots.loc["A", "good"] == 2
    assert lots.loc["A", "yield"] == pytest.approx(2 / 3)
    assert lots.loc["A", "wafer_yield_mean"] == pytest.approx(0.75)
    assert lots.loc["B", "yield"] == 0.0 and lots.loc["B", "ci_lower"] == 0.0


def test_wafer_yield_without_test_seq_and_bad_input():
    d = yk.read_dies(pd.DataFrame({"lot": ["L"] * 3, "wafer": ["1"] * 3, "x": [0, 1, 2], "y": 0, "bin": [1, 1, 9]}))
    w = yk.wafer_yield(d)
    assert w[["tested", "good"]].iloc[0].tolist() == [3, 2]
    assert w["first_pass_yield"].iloc[0] == w["yield"].iloc[0]
    with pytest.raises(SchemaError, match="missing column"):
        yk.wafer_yield(pd.DataFrame({"lot_id": ["a"]}))


def test_wafer_order_is_first_appearance():
    d = yk.read_dies(pd.DataFrame({"lot": ["B", "A", "B"], "wafer": ["2", "1", "1"], "x": [0, 0, 0], "y": 0, "bin": 1}))
    w = yk.wafer_yield(d)
    assert list(zip(w["lot_id"], w["wafer_id"])) == [("B", "2"), ("A", "1"), ("B", "1")]
    assert np.all(w["yield"] == 1.0)


def test_parts_without_a_wafer_position_are_units_of_their_own():
    """Final-test data: missing die_x/die_y with missing_xy='unit' -- every row counts, none is a retest."""
    from yieldkit.schema import validate_dies

    raw = pd.DataFrame({"lot": ["L"] * 4, "wafer": ["1"] * 4, "x": [None, None, 0, 0], "y": [None, None, 0, 0],
                        "bin": [1, 2, 5, 1], "test_seq": [1, 1, 1, 2]})
    with pytest.raises(SchemaError, match="die_x"):
        validate_dies(raw)
    d = validate_dies(raw, missing_xy="unit")
    assert str(d["die_x"].dtype) == "Int32" and d["die_x"].isna().sum() == 2
    w = yk.wafer_yield(d)
    assert w[["tested", "good", "first_pass_good"]].iloc[0].tolist() == [3, 2, 1]
    assert len(yk.final_results(d)) == 3
    lay = yk.WaferLayout.from_dies(d)
    assert lay.n_dies == 1


def test_spatial_analyses_leave_out_parts_without_a_position():
    """Parts without a wafer position are left out of maps, zones, clustering and grids with a
    warning -- never put at some die (a stacked map must not invent positions)."""
    import warnings

    from yieldkit.classify import dies_to_grids
    from yieldkit.errors import DataQualityWarning
    from yieldkit.maps import stack_map
    from yieldkit.schema import validate_dies
    from yieldkit.spatial import clustering_stats

    d = validate_dies(pd.DataFrame({"lot": ["L"] * 3, "wafer": ["1"] * 3, "x": [None, 0, 1], "y": [None, 0, 0],
                                    "bin": [5, 1, 1]}), missing_xy="unit")
    with pytest.warns(DataQualityWarning, match="1 of 3 rows have no wafer position"):
        st = stack_map(d, level="pooled")
    assert sorted(zip(st["die_x"], st["die_y"])) == [(0, 0), (1, 0)]
    assert st["n_fail"].sum() == 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataQualityWarning)
        z = yk.zonal_yield(d)
        c = clustering_stats(d)
        ids, grids = dies_to_grids(d)
    assert z["tested"].sum() == 2 and c["n_dies"].tolist() == [2]
    assert grids[0].shape == (1, 2) and (grids[0] == 1).all()


def test_wafer_yield_from_runs_equals_the_hashed_table(monkeypatch, rng):
    """A table stored wafer by wafer (counted per run of rows, in blocks) gives the same wafer table, values and
    dtypes, as the same rows shuffled (counted per row)."""
    from yieldkit import yields

    sizes = [37, 50, 13, 64, 29]  # the first wafer comes back as a fifth run
    lots, wafers = ["L1", "L1", "L2", "L2", "L1"], ["01", "02", "01", "02", "01"]
    raw = pd.DataFrame({"lot": np.repeat(lots, sizes), "wafer": np.repeat(wafers, sizes),
                        "x": np.arange(sum(sizes)) % 11, "y": np.arange(sum(sizes)) // 11,
                        "bin": rng.choice([1, 1, 1, 4], sum(sizes))})
    monkeypatch.setattr(yields, "BLOCK", 16)  # runs straddle the blocks
    w = yk.wafer_yield(yk.read_dies(raw))
    order = rng.permutation(len(raw))
    ref = yk.wafer_yield(yk.read_dies(raw.iloc[order].reset_index(drop=True)))
    key = ["lot_id", "wafer_id"]
    pd.testing.assert_frame_equal(w.sort_values(key).reset_index(drop=True),
                                  ref.sort_values(key).reset_index(drop=True))
    assert w[key].values.tolist() == [["L1", "01"], ["L1", "02"], ["L2", "01"], ["L2", "02"]]
    g = raw.assign(ok=raw["bin"] == 1).groupby(["lot", "wafer"], sort=False)["ok"].agg(["size", "sum"])
    assert w["tested"].tolist() == g["size"].tolist() and w["good"].tolist() == g["sum"].tolist()
