"""Tests of yieldkit.maps.counts: die-level defect counts."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import yieldkit as yk
from yieldkit.errors import DataQualityWarning, SchemaError, YieldkitValueError
from yieldkit.maps import die_defect_density


@pytest.fixture(scope="module")
def fab():
    return yk.simulate_fab(n_lots=2, wafers_per_lot=3, random_state=7, signatures={0: "scratch", 4: "loc"}, retest_rate=0.02)


def _groupby_counts(defects, keys):
    """Reference: pandas groupby over the string keys."""
    d = defects.dropna(subset=["die_x", "die_y"]).copy()
    d["die_x"] = d["die_x"].astype(int)
    d["die_y"] = d["die_y"].astype(int)
    return d.groupby(keys, observed=True).size().rename("ref")


def test_counts_match_simulator_truth(fab):
    """Reference: the simulator's own per-die count (truth['dies'].n_defects), off-die defects aside."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataQualityWarning)
        res = yk.die_defect_counts(fab.dies, fab.defects)
    c = res.table
    assert list(c.columns) == ["lot_id", "wafer_id", "die_x", "die_y", "n_defects", "passed"]
    t = fab.truth["dies"]
    assert len(c) == len(t)
    m = c.merge(t, on=["lot_id", "wafer_id", "die_x", "die_y"], validate="1:1")
    np.testing.assert_array_equal(m["n_defects_x"], m["n_defects_y"])
    assert (c["n_defects"] == 0).sum() > 0  # zero-defect dies are present
    final = yk.final_results(fab.dies)
    m2 = c.merge(final, on=["lot_id", "wafer_id", "die_x", "die_y"])
    np.testing.assert_array_equal(m2["passed_x"], m2["passed_y"])
    n_off = int(fab.defects["die_x"].isna().sum())
    assert res.n_off_die == n_off
    assert int(c["n_defects"].sum()) + n_off == len(fab.defects)


def test_counts_by_class_against_groupby(fab):
    """Reference: pandas groupby(lot, wafer, die_x, die_y, defect_class).size()."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataQualityWarning)
        c = yk.die_defect_counts(fab.layout, fab.defects, by="defect_class").table
    classes = sorted(fab.defects["defect_class"].unique())
    n_w = fab.defects[["lot_id", "wafer_id"]].drop_duplicates().shape[0]
    assert len(c) == n_w * fab.layout.n_dies * len(classes)
    ref = _groupby_counts(fab.defects, ["lot_id", "wafer_id", "die_x", "die_y", "defect_class"])
    m = c.set_index(["lot_id", "wafer_id", "die_x", "die_y", "defect_class"]).join(ref, how="left")
    np.testing.assert_array_equal(m["n_defects"].to_numpy(), m["ref"].fillna(0).to_numpy())
    # every reference row was matched
    assert m["ref"].sum() == ref.sum()


def test_counts_size_bins(fab):
    edges = [0, 0.2, 0.5, np.inf]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataQualityWarning)
        c = yk.die_defect_counts(fab.dies, fab.defects, by="size_um", bins=edges).table
    on = fab.defects.dropna(subset=["die_x"])
    ref = np.histogram(on["size_um"], bins=edges)[0]
    got = c.groupby("size_um", sort=False)["n_defects"].sum()
    assert got.sum() == ref.sum()
    assert sorted(got.to_numpy().tolist()) == sorted(ref.tolist())
    with pytest.raises(YieldkitValueError, match="bins"):
        yk.die_defect_counts(fab.dies, fab.defects, by="size_um", bins=[1, 0])


def test_off_die_defects_reported():
    lay = yk.WaferLayout(diameter_mm=100, die_pitch_um=(20_000, 20_000), edge_exclusion_mm=0)
    d = pd.DataFrame({"lot_id": ["L"] * 4, "wafer_id": ["1", "1", "1", "2"], "defect_id": [1, 2, 3, 1],
                      "x_um": [1.0, 1.0, 49_000.0, 5.0], "y_um": [1.0, 2.0, 0.0, 5.0]})
    with pytest.warns(DataQualityWarning, match="1 of 4 defects fall on no inspected die"):
        res = yk.die_defect_counts(lay, d)
    c = res.table
    assert res.off_die == {("L", "1"): 1}
    assert len(c) == 2 * lay.n_dies
    assert c.loc[(c.wafer_id == "1") & (c.die_x == 0) & (c.die_y == 0), "n_defects"].item() == 2


def test_inspected_die_table_and_missing_wafer():
    plan = pd.DataFrame({"lot_id": ["L"] * 3, "wafer_id": ["1"] * 3, "die_x": [0, 1, 1], "die_y": [0, 0, 0]})
    d = pd.DataFrame({"lot_id": ["L"] * 4, "wafer_id": ["1", "1", "1", "9"], "defect_id": [1, 2, 3, 1],
                      "die_x": pd.array([0, 5, None, 0], dtype="Int32"), "die_y": pd.array([0, 0, None, 0], dtype="Int32")})
    with pytest.warns(DataQualityWarning, match="3 of 4"):
        res = yk.die_defect_counts(plan, d)
    c = res.table
    assert c[["die_x", "die_y", "n_defects"]].to_numpy().tolist() == [[0, 0, 1], [1, 0, 0]]
    assert res.off_die == {("L", "1"): 2, ("L", "9"): 1}
    assert "passed" not in c.columns


def test_counts_errors(fab):
    with pytest.raises(SchemaError, match="x_um, y_um"):
        yk.die_defect_counts(fab.dies, fab.defects[["lot_id", "wafer_id", "x_um", "y_um"]])
    with pytest.raises(SchemaError, match="missing column"):
        yk.die_defect_counts(fab.dies[["lot_id", "die_x"]], fab.defects)
    with pytest.raises(SchemaError, match="'wafer_id'"):
        yk.die_defect_counts(fab.layout, fab.defects[["lot_id", "die_x", "die_y"]])
    with pytest.raises(SchemaError, match="'nope'"):
        yk.die_defect_counts(fab.layout, fab.defects, by="nope")
    with pytest.raises(YieldkitValueError, match="DataFrame or a WaferLayout"):
        yk.die_defect_counts("dies.csv", fab.defects)
    with pytest.raises(SchemaError, match="needs defect positions"):
        yk.die_defect_counts(fab.layout, fab.defects[["lot_id", "wafer_id"]])


def test_density(fab):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataQualityWarning)
        c = yk.die_defect_counts(fab.layout, fab.defects).table
    d = die_defect_density(c, fab.layout)
    np.testing.assert_allclose(d["density_per_cm2"], c["n_defects"] / fab.layout.die_area_cm2)
    with pytest.raises(YieldkitValueError, match="die_area_cm2"):
        die_defect_density(c, -1.0)


def test_joint_wafer_codes_against_concat(fab):
    """Reference: factorizing the concatenated key columns of both tables."""
    from yieldkit._keys import joint_wafer_codes, wafer_codes

    extra = pd.DataFrame({"lot_id": ["ZZ", "L0001"], "wafer_id": ["9", "01"]})
    (a, b), w = joint_wafer_codes(fab.dies, extra)
    # reference: one code space by concatenating the two tables
    s = pd.StringDtype("pyarrow")
    both = pd.DataFrame({c: pd.concat([fab.dies[c].astype(s), extra[c].astype(s)], ignore_index=True)
                         for c in ("lot_id", "wafer_id")})
    codes, rw = wafer_codes(both)
    ra, rb = np.split(codes, [len(fab.dies)])
    np.testing.assert_array_equal(a, ra)
    np.testing.assert_array_equal(b, rb)
    assert w.astype(str).values.tolist() == rw.astype(str).values.tolist()


def test_counts_dense_keys_equal_row_lookup(fab, monkeypatch):
    """Reference: the row-lookup path (lookup_rows + bincount over rows) gives the same counts,
    zero-count dies and off-die report as counting on dense die keys."""
    import yieldkit.maps.counts as counts

    plan = pd.DataFrame({"lot_id": ["L"] * 3, "wafer_id": ["1"] * 3, "die_x": [0, 1, 1], "die_y": [0, 0, 0]})
    d = pd.DataFrame({"lot_id": ["L"] * 4, "wafer_id": ["1", "1", "1", "9"], "defect_id": [1, 2, 3, 1],
                      "die_x": pd.array([0, 5, None, 0], dtype="Int32"), "die_y": pd.array([0, 0, None, 0], dtype="Int32")})

    def run():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DataQualityWarning)
            return [yk.die_defect_counts(fab.dies, fab.defects), yk.die_defect_counts(fab.layout, fab.defects, by="layer"),
                    yk.die_defect_counts(plan, d)]

    dense = run()
    monkeypatch.setattr(counts, "dense_die_keys", lambda *a: None)
    rows = run()
    for a, b in zip(dense, rows, strict=True):
        pd.testing.assert_frame_equal(a.table, b.table)
        assert (a.n_off_die, a.off_die) == (b.n_off_die, b.off_die)
    assert (dense[0].table["n_defects"] == 0).any() and dense[2].n_off_die == 3


def test_counts_do_not_share_memory_with_the_die_table(fab):
    """Writing to the result leaves the die table unchanged."""
    dies = yk.final_results(fab.dies).copy()
    before = dies[["die_x", "passed"]].copy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataQualityWarning)
        c = yk.die_defect_counts(dies, fab.defects).table
    c.loc[0, "die_x"] = 999
    c.loc[0, "passed"] = not bool(c.loc[0, "passed"])
    pd.testing.assert_frame_equal(dies[["die_x", "passed"]], before)
