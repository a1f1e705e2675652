"""Test-to-bin association (yieldkit.parametric.test_bin_association)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from yieldkit.errors import SchemaError
from yieldkit.parametric import test_bin_association


def make(rng, n=600):
    dies = pd.DataFrame({"lot_id": "L", "wafer_id": np.repeat(["1", "2"], n // 2), "die_x": np.tile(np.arange(n // 2), 2),
                         "die_y": 0, "hbin": rng.choice([1, 1, 1, 5, 7], n)})
    dies["passed"] = dies["hbin"] == 1
    tests = pd.concat([
        dies[["lot_id", "wafer_id", "die_x", "die_y"]].assign(
            test_num=k, test_name=f"t{k}",
            value=np.round(rng.normal(0, 1, n) + (dies["hbin"] == 5) * 0.6 * k, 1))  # rounded: ties
        for k in (1, 2, 3)], ignore_index=True)
    # dies that stopped early did not run test 3
    tests = tests[~((tests.test_num == 3) & (rng.random(len(tests)) < 0.3))].reset_index(drop=True)
    return dies, tests


def test_auc_and_point_biserial_equal_references(rng):
    """AUC equals the Mann-Whitney U / (n1 n0) of scipy.stats.mannwhitneyu (ties counted half);
    r_pb and p equal scipy.stats.pointbiserialr, over the good dies and the bin's dies that ran the test."""
    dies, tests = make(rng)
    r = test_bin_association(dies, tests)
    assert set(r["bin"]) == {5, 7} and len(r) == 6
    m = tests.merge(dies, on=["lot_id", "wafer_id", "die_x", "die_y"])
    for row in r.itertuples():
        s = m[(m.test_num == row.test_num) & (m.passed | (m.hbin == row.bin))]
        y = (s.hbin == row.bin).to_numpy()
        u = stats.mannwhitneyu(s.value[y], s.value[~y]).statistic
        assert row.auc == pytest.approx(u / (y.sum() * (~y).sum()), rel=1e-12)
        pb = stats.pointbiserialr(y.astype(int), s.value)
        assert row.r_pb == pytest.approx(pb.statistic, rel=1e-9)
        assert row.p == pytest.approx(pb.pvalue, rel=1e-6)
        assert (row.n_fail, row.n_good) == (y.sum(), (~y).sum())
    top = r[r.bin == 5].iloc[0]
    assert top["test_num"] == 3 and top["separation"] > 0.6 and top["test_name"] == "t3"


def test_part_index_when_dies_have_no_position(rng):
    dies, tests = make(rng, n=200)
    tests = tests.merge(dies.reset_index()[["lot_id", "wafer_id", "die_x", "die_y", "index"]]).rename(
        columns={"index": "part_index"})
    ref = test_bin_association(dies, tests)
    unplaced = dies.assign(die_x=pd.array([pd.NA] * len(dies), "Int32"), die_y=pd.array([pd.NA] * len(dies), "Int32"))
    t2 = tests.assign(die_x=pd.array([pd.NA] * len(tests), "Int32"), die_y=pd.array([pd.NA] * len(tests), "Int32"))
    pd.testing.assert_frame_equal(test_bin_association(unplaced, t2), ref)
    with pytest.raises(SchemaError, match="cannot match test results to dies"):
        test_bin_association(unplaced, t2.drop(columns="part_index"))


def test_bad_input(rng):
    dies, tests = make(rng, n=100)
    with pytest.raises(SchemaError, match="'dies' table of test_bin_association lacks column.*hbin"):
        test_bin_association(dies.drop(columns="hbin"), tests)
    with pytest.raises(SchemaError, match="lacks column.*value"):
        test_bin_association(dies, tests.drop(columns="value"))
    assert test_bin_association(dies.assign(passed=True), tests).empty
