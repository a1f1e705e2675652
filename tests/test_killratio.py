"""Kill ratio: hand-computed 2x2 tables, the limited-yield identity, recovery of simulated truth."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import yieldkit as yk
from yieldkit.errors import DataQualityWarning, SchemaError, YieldkitValueError
from yieldkit.intervals import wilson
from yieldkit.killratio import joint_kill_ratio, kill_ratio


def _toy() -> tuple[pd.DataFrame, pd.DataFrame]:
    """10 dies on one wafer.

    die x:   0 1 2 3 4 5 | 6 7 | 8 | 9
    defects: - - - - - - | A A | A,B | B,B
    passed:  1 1 1 1 1 0 | 1 0 | 0 | 0
    """
    dies = yk.read_dies(pd.DataFrame({
        "lot": "L1", "wafer": "W1", "x": np.arange(10), "y": 0,
        "bin": [1, 1, 1, 1, 1, 3, 1, 2, 2, 2],
    }))
    defects = yk.read_defects(pd.DataFrame({
        "lot_id": "L1", "wafer_id": "W1", "defect_id": np.arange(1, 7),
        "die_x": [6, 7, 8, 8, 9, 9], "die_y": 0, "xrel_um": 1.0, "yrel_um": 1.0,
        "defect_class": ["A", "A", "A", "B", "B", "B"],
    }))
    return dies, defects


def test_contingency_matches_hand_computed_2x2():
    """Hand-computed 2x2 tables of the toy wafer (docstring of _toy).

    Clean dies: 6, 5 pass -> Y_clean = 5/6. Class A alone: dies 6, 7 -> 1 of 2 pass,
    KR = 1 - (1/2)/(5/6) = 0.4. Class B alone: die 9 -> 0 of 1, KR = 1. Die 8 (A and B) is in
    neither table. Dies affected: A 3 (6, 7, 8), B 2 (8, 9).
    """
    dies, defects = _toy()
    kr = kill_ratio(dies, defects, method="contingency").table.set_index("category")
    assert kr.loc["A", "pure_dies"] == 2 and kr.loc["A", "pure_passed"] == 1
    assert kr.loc["B", "pure_dies"] == 1 and kr.loc["B", "pure_passed"] == 0
    assert kr.loc["A", "y_clean"] == pytest.approx(5 / 6)
    assert kr.loc["A", "kill_ratio"] == pytest.approx(1 - 0.5 / (5 / 6))
    assert kr.loc["B", "kill_ratio"] == pytest.approx(1.0)
    assert kr.loc["A", "dies_affected"] == 3 and kr.loc["B", "dies_affected"] == 2
    assert kr.loc["A", "defects"] == 3 and kr.loc["B", "defects"] == 3
    lo, hi = wilson(1, 2, 0.95)
    assert kr.loc["A", "kr_ci_lower"] == pytest.approx(max(0.0, 1 - float(hi) / (5 / 6)))
    assert kr.loc["A", "kr_ci_upper"] == pytest.approx(min(1.0, 1 - float(lo) / (5 / 6)))


def test_limited_yield_identity_exact(rng):
    """limited yield = 1 - KR * fraction affected, exactly, for every class."""
    fab = yk.simulate_fab(n_lots=1, wafers_per_lot=6, random_state=rng)
    res = kill_ratio(fab.dies, fab.defects, method="contingency")
    kr = res.table
    lhs = kr["limited_yield"].to_numpy()
    rhs = 1 - kr["kill_ratio"].to_numpy() * kr["dies_affected"].to_numpy() / res.tested_dies
    np.testing.assert_allclose(lhs, rhs, rtol=0, atol=1e-15)
    np.testing.assert_allclose(kr["yield_loss"], 1 - kr["limited_yield"], atol=1e-15)


def test_raw_negative_kill_ratio_is_clipped():
    """A class whose dies yield better than clean dies has raw KR < 0, clipped KR = 0."""
    dies = yk.read_dies(pd.DataFrame({"lot": "L", "wafer": "W", "x": np.arange(4), "y": 0, "bin": [1, 2, 1, 1]}))
    defects = yk.read_defects(pd.DataFrame({"lot_id": "L", "wafer_id": "W", "defect_id": [1, 2], "die_x": [2, 3],
                                            "die_y": 0, "xrel_um": 0.0, "yrel_um": 0.0, "defect_class": "N"}))
    kr = kill_ratio(dies, defects, method="contingency").table
    assert kr.loc[0, "kill_ratio_raw"] == pytest.approx(1 - 1 / 0.5)
    assert kr.loc[0, "kill_ratio"] == 0.0


def test_undefined_kill_ratio_is_nan_with_warning():
    """Every defective die carries both classes: no pure dies, KR undefined."""
    dies = yk.read_dies(pd.DataFrame({"lot": "L", "wafer": "W", "x": np.arange(3), "y": 0, "bin": [1, 2, 1]}))
    defects = yk.read_defects(pd.DataFrame({"lot_id": "L", "wafer_id": "W", "defect_id": [1, 2], "die_x": [1, 1],
                                            "die_y": 0, "xrel_um": 0.0, "yrel_um": 0.0, "defect_class": ["A", "B"]}))
    with pytest.warns(DataQualityWarning, match="kill ratio undefined for 2"):
        kr = kill_ratio(dies, defects, method="contingency").table
    assert kr["kill_ratio"].isna().all() and kr["kr_ci_lower"].isna().all()


@pytest.mark.slow
def test_joint_estimate_recovers_simulated_kill_probabilities():
    """Seeded simulation (coverage 1, y0 0.95): each class's true kill probability lies in the
    joint 95 % interval, and Y_clean recovers y0; the contingency KR of single-defect dies
    agrees with the truth within its interval for the big classes."""
    fab = yk.simulate_fab(n_lots=3, wafers_per_lot=25, coverage=1.0, y0=0.95, random_state=11)
    res = kill_ratio(fab.dies, fab.defects)
    kr = res.table.set_index("category")
    truth = fab.truth["classes"].set_index("name")["kill_prob"]
    for c in kr.index:
        k = truth[c]
        assert kr.loc[c, "kill_prob_ci_lower"] <= k <= kr.loc[c, "kill_prob_ci_upper"], c
        assert kr.loc[c, "kill_prob_ci_upper"] - kr.loc[c, "kill_prob_ci_lower"] < 0.1
    lo, hi = res.y_clean_joint_ci
    assert lo <= 0.95 <= hi
    # joint-limited yield: mean of (1 - k)^n is close to the contingency limited yield
    np.testing.assert_allclose(kr["joint_limited_yield"], kr["limited_yield"], atol=2e-3)


def test_joint_handles_mixed_dies_exact_likelihood():
    """On a tiny table the joint fit reaches the maximum of the log-likelihood computed
    independently by a grid search (scipy-free)."""
    counts = np.array([[0, 0]] * 40 + [[1, 0]] * 20 + [[0, 1]] * 20 + [[1, 1]] * 20)
    passed = np.r_[np.ones(36), np.zeros(4), np.ones(10), np.zeros(10), np.ones(15), np.zeros(5),
                   np.ones(6), np.zeros(14)].astype(bool)
    j = joint_kill_ratio(counts, passed)

    def ll(y, k1, k2):
        p = y * (1 - k1) ** counts[:, 0] * (1 - k2) ** counts[:, 1]
        return np.sum(np.where(passed, np.log(p), np.log1p(-p)))

    grid = np.linspace(0.01, 0.99, 99)
    best = max((ll(0.9, a, b), a, b) for a in grid for b in grid)
    assert ll(j["y_clean"], *j["kill_prob"]) >= best[0] - 1e-9
    assert abs(j["kill_prob"][0] - best[1]) < 0.02 and abs(j["kill_prob"][1] - best[2]) < 0.02


def test_capture_rate_correction():
    """Poisson correction f_true = 1 - (1 - f)^(1/r); r = 1 changes nothing."""
    dies, defects = _toy()
    kr = kill_ratio(dies, defects, method="contingency", capture_rate={"A": 0.5}).table.set_index("category")
    assert kr.loc["A", "fraction_affected_corrected"] == pytest.approx(1 - (1 - 0.3) ** 2)
    assert kr.loc["B", "fraction_affected_corrected"] == pytest.approx(0.2)
    assert kr.loc["A", "limited_yield_corrected"] == pytest.approx(1 - 0.4 * 0.51)
    with pytest.raises(YieldkitValueError, match="capture_rate"):
        kill_ratio(dies, defects, capture_rate=1.5)


def test_errors():
    dies, defects = _toy()
    with pytest.raises(YieldkitValueError, match="'method'"):
        kill_ratio(dies, defects, method="bayes")
    with pytest.raises(YieldkitValueError, match="'interval'"):
        kill_ratio(dies, defects, interval="wald")
    with pytest.raises(SchemaError, match="die_x"):
        kill_ratio(dies, defects.drop(columns=["die_x"]))
    with pytest.raises(SchemaError, match="'by' column 'size'"):
        kill_ratio(dies, defects, by="size")


def test_off_die_and_untested_defects_are_left_out_and_counted():
    dies, defects = _toy()
    extra = yk.read_defects(pd.DataFrame({"lot_id": "L1", "wafer_id": "W1", "defect_id": [7, 8],
                                          "die_x": [None, 50], "die_y": [None, 0], "xrel_um": 0.0, "yrel_um": 0.0,
                                          "defect_class": "A"}))
    res = kill_ratio(dies, pd.concat([defects, extra], ignore_index=True), method="contingency")
    assert res.defects_off_die == 1 and res.defects_on_untested_dies == 1
    assert res.table.set_index("category").loc["A", "defects"] == 3
