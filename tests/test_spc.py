"""SPC: textbook limits on worked examples, run rules against a brute-force reference."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import yieldkit as yk
from yieldkit.errors import SchemaError, YieldkitValueError
from yieldkit.spc import nelson_rules, p_chart, u_chart, western_electric_rules


def test_p_chart_worked_example():
    """Variable-sample p chart, formulas of Montgomery (2009) sec. 7.2.2; numbers by hand.

    n = 100, 80, 120, 100 with 12, 8, 18, 10 nonconforming: p_bar = 48/400 = 0.12,
    sigma(100) = sqrt(0.12*0.88/100) = 0.0324962, UCL = 0.2174885, LCL = 0.0225115;
    sigma(80) = 0.0363318, UCL = 0.2289954; sigma(120) = 0.0296648, UCL = 0.2089944.
    """
    t = pd.DataFrame({"lot_id": "L", "wafer_id": ["1", "2", "3", "4"], "tested": [100, 80, 120, 100],
                      "good": [88, 72, 102, 90]})
    c = p_chart(t, statistic="fraction_defective")
    assert c.centre == pytest.approx(0.12)
    np.testing.assert_allclose(c.table["ucl"], [0.2174885, 0.2289954, 0.2089944, 0.2174885], atol=1e-7)
    np.testing.assert_allclose(c.table["lcl"], [0.0225115, 0.0110046, 0.0310056, 0.0225115], atol=1e-7)
    np.testing.assert_allclose(c.table["value"], [0.12, 0.10, 0.15, 0.10])
    y = p_chart(t)  # the yield chart mirrors it
    assert y.centre == pytest.approx(0.88)
    np.testing.assert_allclose(y.table["lcl"], 1 - c.table["ucl"], atol=1e-12)
    np.testing.assert_allclose(y.table["z"], -c.table["z"], atol=1e-12)


def test_u_chart_worked_example():
    """u chart with varying exposure (Montgomery 2009 sec. 7.3.3); numbers by hand.

    c = 10, 14, 8 defects on a = 2.0, 2.5, 1.5 cm^2: u_bar = 32/6 = 5.333333,
    sigma_1 = sqrt(5.333333/2) = 1.632993, UCL_1 = 10.232313, LCL_1 = 0.434354.
    """
    t = pd.DataFrame({"n_defects": [10, 14, 8], "area": [2.0, 2.5, 1.5]})
    c = u_chart(t, exposure="area")
    assert c.centre == pytest.approx(32 / 6)
    assert c.table["ucl"].iloc[0] == pytest.approx(10.232313, abs=1e-6)
    assert c.table["lcl"].iloc[0] == pytest.approx(0.434354, abs=1e-6)
    np.testing.assert_allclose(c.table["value"], [5.0, 5.6, 8 / 1.5])
    assert c.statistic == "defects_per_cm2"
    # LCL floors at zero
    assert (u_chart(pd.DataFrame({"n_defects": [0, 1, 2]})).table["lcl"] == 0).all()


def _brute(z: np.ndarray) -> dict[str, np.ndarray]:
    """Reference: each rule by its textbook wording, one point at a time."""
    n = len(z)
    out = {k: np.zeros(n, bool) for k in ("WE1", "WE2", "WE3", "WE4", "N2", "N3", "N4", "N7", "N8")}
    for i in range(n):
        out["WE1"][i] = abs(z[i]) > 3
        for side in (1, -1):
            w = side * z[max(0, i - 2): i + 1]
            if i >= 2 and side * z[i] > 2 and (w > 2).sum() >= 2:
                out["WE2"][i] = True
            w = side * z[max(0, i - 4): i + 1]
            if i >= 4 and side * z[i] > 1 and (w > 1).sum() >= 4:
                out["WE3"][i] = True
            if i >= 7 and np.all(side * z[i - 7: i + 1] > 0):
                out["WE4"][i] = True
            if i >= 8 and np.all(side * z[i - 8: i + 1] > 0):
                out["N2"][i] = True
            if i >= 5 and np.all(side * np.diff(z[i - 5: i + 1]) > 0):
                out["N3"][i] = True
        if i >= 13:
            d = np.diff(z[i - 13: i + 1])
            out["N4"][i] = bool(np.all(d[1:] * d[:-1] < 0))
        if i >= 14:
            out["N7"][i] = bool(np.all(np.abs(z[i - 14: i + 1]) < 1))
        if i >= 7:
            out["N8"][i] = bool(np.all(np.abs(z[i - 7: i + 1]) > 1))
    return out


def test_rules_match_brute_force(rng):
    for _ in range(20):
        z = np.cumsum(rng.normal(0, 0.6, 120)) * 0.3 + rng.normal(0, 1, 120)
        z[rng.integers(0, 120, 3)] = rng.choice([-4, 4], 3)
        we = western_electric_rules(z)
        ne = nelson_rules(z)
        ref = _brute(z)
        for k in ("WE1", "WE2", "WE3", "WE4"):
            np.testing.assert_array_equal(we[k], ref[k], err_msg=k)
        for k in ("N2", "N3", "N4", "N7", "N8"):
            np.testing.assert_array_equal(ne[k], ref[k], err_msg=k)
        np.testing.assert_array_equal(ne["N5"], ref["WE2"])
        np.testing.assert_array_equal(ne["N6"], ref["WE3"])


def test_rules_fire_on_patterns():
    assert nelson_rules(np.r_[np.zeros(5), 1.0 + np.arange(0, 0.6, 0.1)])["N3"].iloc[-1]
    assert nelson_rules(np.tile([1.0, -1.0], 7))["N4"].iloc[-1]
    assert not nelson_rules(np.tile([1.0, -1.0], 7))["N4"].iloc[-2]
    assert western_electric_rules(np.full(8, 0.5))["WE4"].tolist() == [False] * 7 + [True]


def test_flat_chart_violates_no_rule():
    """100 % yield or zero defects on every wafer: sigma = 0, every z is NaN, no rule fires.

    Nelson's N7 ("15 in a row within 1 sigma") must not read the undefined points as z = 0.
    """
    n = 20
    charts = [
        p_chart(pd.DataFrame({"tested": [100] * n, "good": [100] * n})),
        p_chart(pd.DataFrame({"tested": [100] * n, "good": [100] * n}), statistic="fraction_defective"),
        p_chart(pd.DataFrame({"tested": [100] * n, "good": [0] * n})),
        u_chart(pd.DataFrame({"n_defects": [0] * n})),
        u_chart(pd.DataFrame({"n_defects": [0] * n, "area": np.linspace(1.0, 2.0, n)}), exposure="area"),
    ]
    for c in charts:
        assert c.table["z"].isna().all()
        assert c.table["rules"].tolist() == [""] * n, c
        assert len(c.excursions()) == 0
    # a single wafer is a chart too
    assert p_chart(pd.DataFrame({"tested": [100], "good": [97]})).table["rules"].tolist() == [""]


def test_nan_breaks_runs():
    """A NaN point is never flagged and ends every run through it (N3, N4, N7, WE4/N2, N8)."""
    nan = np.nan
    # steadily increasing around a gap: -0.5 .. -0.3, NaN, 0.1, 0.2 is no run of six
    z = np.array([-0.5, -0.4, -0.3, nan, 0.1, 0.2])
    assert not nelson_rules(z)["N3"].any()
    assert not nelson_rules(-z)["N3"].any()
    # alternating 14 points with the 7th missing
    z = np.tile([1.0, -1.0], 7)
    z[6] = nan
    assert not nelson_rules(z)["N4"].any()
    # 15 points within 1 sigma with one missing in the middle, then the run restarts
    z = np.r_[np.full(7, 0.5), nan, np.full(7, -0.5)]
    assert not nelson_rules(z)["N7"].any()
    z = np.r_[z, np.full(8, 0.2)]  # 15 in a row after the gap complete at the last point
    assert nelson_rules(z)["N7"].tolist() == [False] * 22 + [True]
    # runs on one side and beyond 1 sigma
    z = np.r_[np.full(4, 1.5), nan, np.full(5, 1.5)]
    we, ne = western_electric_rules(z), nelson_rules(z)
    assert not we["WE4"].any() and not ne["N2"].any() and not ne["N8"].any()
    # a NaN point itself violates nothing
    z = np.r_[np.full(20, 0.1), nan, np.full(5, 4.0), nan]
    flags = pd.concat([western_electric_rules(z), nelson_rules(z)], axis=1)
    assert not flags.iloc[[20, 26]].to_numpy().any()


def test_excursions_on_simulated_excursion_wafers():
    """Wafers run on a 4x-density excursion tool show up as u-chart excursions."""
    fab = yk.simulate_fab(n_lots=2, wafers_per_lot=25, cluster_alpha=50.0, seed=3,
                          excursion={"step": "etch", "tool": "ETCH02", "d0_factor": 4.0})
    counts = fab.defects.groupby(["lot_id", "wafer_id"], sort=False).size().rename("n_defects").reset_index()
    c = u_chart(counts)
    exc = c.excursions()
    assert len(exc) > 0
    high = exc[exc["value"] > exc["ucl"]]
    truth = fab.truth["wafers"].merge(high, on=["lot_id", "wafer_id"])
    assert len(truth) >= 5 and truth["excursion"].mean() > 0.8
    assert "rules" in exc.columns and (exc["rules"] != "").all()


def test_errors():
    with pytest.raises(SchemaError, match="tested"):
        p_chart(pd.DataFrame({"good": [1]}))
    with pytest.raises(YieldkitValueError, match="'statistic'"):
        p_chart(pd.DataFrame({"tested": [2], "good": [1]}), statistic="ppm")
    with pytest.raises(YieldkitValueError, match="<= 'tested'"):
        p_chart(pd.DataFrame({"tested": [2], "good": [3]}))
    with pytest.raises(YieldkitValueError, match="'rules'"):
        p_chart(pd.DataFrame({"tested": [2], "good": [1]}), rules="iso")
    with pytest.raises(YieldkitValueError, match="exposure > 0"):
        u_chart(pd.DataFrame({"n_defects": [1], "a": [0.0]}), exposure="a")
    with pytest.raises(YieldkitValueError, match="sigma_level"):
        u_chart(pd.DataFrame({"n_defects": [1]}), sigma_level=0)
