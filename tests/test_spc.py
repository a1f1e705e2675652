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
    c = u_chart(t, exposure_col="area")
    assert c.centre == pytest.approx(32 / 6)
    assert c.table["ucl"].iloc[0] == pytest.approx(10.232313, abs=1e-6)
    assert c.table["lcl"].iloc[0] == pytest.approx(0.434354, abs=1e-6)
    np.testing.assert_allclose(c.table["value"], [5.0, 5.6, 8 / 1.5])
    assert c.statistic == "defects_per_cm2"
    # LCL floors at zero
    assert (u_chart(pd.DataFrame({"n_defects": [0, 1, 2]})).table["lcl"] == 0).all()


def _reference_rules(z: list[float]) -> dict[str, list[bool]]:
    """Every run rule by its published wording, checked over every stretch of the series.

    Western Electric rules as in Montgomery (2009), sec. 5.3 (sensitizing rules); Nelson (1984),
    tests 1-8.
    "k in a row": every stretch of k consecutive points meeting the condition flags its
    last point. "k of m on one side": every stretch of at most m consecutive points (so the
    start of the series counts) holding k points beyond the limit on one side flags the last
    of those k points. "Beyond" is strict; a NaN point meets no condition, so it is never
    beyond, never within, and no run passes through it.
    """
    n = len(z)
    out = {rule: [False] * n for rule in
           ("WE1", "WE2", "WE3", "WE4", "N1", "N2", "N3", "N4", "N5", "N6", "N7", "N8")}

    def in_a_row(rule, k, condition):
        for start in range(n - k + 1):
            if all(condition(x) for x in z[start:start + k]):
                out[rule][start + k - 1] = True

    def k_of_m(rule, k, m, beyond):
        for start in range(n):
            for length in range(1, m + 1):
                stretch = range(start, min(start + length, n))
                hits = [i for i in stretch if beyond(z[i])]
                if len(hits) >= k:
                    out[rule][hits[-1]] = True

    def steadily(rule, k, step):
        for start in range(n - k + 1):
            pts = z[start:start + k]
            if all(step(b - a) for a, b in zip(pts, pts[1:])):
                out[rule][start + k - 1] = True

    for rule in ("WE1", "N1"):
        in_a_row(rule, 1, lambda x: abs(x) > 3)
    for rule in ("WE2", "N5"):
        k_of_m(rule, 2, 3, lambda x: x > 2)
        k_of_m(rule, 2, 3, lambda x: x < -2)
    for rule in ("WE3", "N6"):
        k_of_m(rule, 4, 5, lambda x: x > 1)
        k_of_m(rule, 4, 5, lambda x: x < -1)
    for rule, k in (("WE4", 8), ("N2", 9)):
        in_a_row(rule, k, lambda x: x > 0)
        in_a_row(rule, k, lambda x: x < 0)
    steadily("N3", 6, lambda d: d > 0)
    steadily("N3", 6, lambda d: d < 0)
    for start in range(n - 14 + 1):  # N4: 14 points, each step opposite in sign to the one before
        steps = [b - a for a, b in zip(z[start:start + 14], z[start + 1:start + 14])]
        if all(s * t < 0 for s, t in zip(steps, steps[1:])):
            out["N4"][start + 13] = True
    in_a_row("N7", 15, lambda x: abs(x) < 1)
    in_a_row("N8", 8, lambda x: abs(x) > 1)
    return out


def _random_series(rng: np.random.Generator) -> np.ndarray:
    """Short and long series with drifts, shifts, ties on the zone edges and missing points."""
    n = int(rng.choice([rng.integers(0, 16), rng.integers(16, 80)]))
    kind = rng.choice(["in control", "near centre", "drifting", "shifted", "alternating", "ramp"])
    if kind == "in control":  # rounded to halves so that z = 1, 2, 3 and equal neighbours occur
        z = np.round(rng.normal(0, 1.3, n) * 2) / 2
    elif kind == "near centre":
        z = rng.normal(0, 0.45, n)
    elif kind == "drifting":
        z = np.cumsum(rng.normal(0, 0.5, n)) * 0.4 + rng.normal(0, 0.8, n)
    elif kind == "shifted":  # patterns from the first point to the last
        z = rng.normal(rng.choice([-1.8, 1.8]), 0.9, n)
    elif kind == "alternating":
        z = np.where(np.arange(n) % 2, 1.0, -1.0) * rng.uniform(0.2, 2.5, n)
    else:
        z = np.arange(n) * rng.choice([-0.3, 0.3]) + rng.normal(0, 0.05, n)
    z[rng.random(n) < 0.04] = np.nan
    if n and rng.random() < 0.2:
        z[rng.integers(0, n)] = rng.choice([-4.0, 4.0])
    return z


def test_rules_match_reference(rng):
    """Every rule on 400 random series, first and last points included, against the reference."""
    for _ in range(400):
        z = _random_series(rng)
        got = pd.concat([western_electric_rules(z), nelson_rules(z)], axis=1)
        assert len(got) == len(z)
        for rule, expected in _reference_rules(z.tolist()).items():
            np.testing.assert_array_equal(got[rule].to_numpy(), expected, err_msg=f"{rule} on {z.tolist()}")


def test_k_of_m_rules_at_the_start_of_the_series():
    """2 of 3 beyond 2 sigma and 4 of 5 beyond 1 sigma count from the first point.

    The same pattern one point later was always flagged; at the start it was missed.
    """
    for shift in range(3):
        z = np.r_[np.zeros(shift), 2.5, 2.5, np.zeros(3)]
        for flags in (western_electric_rules(z)["WE2"], nelson_rules(z)["N5"]):
            assert flags.tolist() == [i == shift + 1 for i in range(len(z))]
        assert western_electric_rules(-z)["WE2"].tolist() == [i == shift + 1 for i in range(len(z))]
    z = [2.5, 0.0, -2.5, 2.5]  # 2 of 3 needs both on one side: 2.5, 0, -2.5 / 0, -2.5, 2.5 are not
    assert not western_electric_rules(z)["WE2"].any()
    z = [1.5, 1.5, 0.0, 1.5, 1.5, 0.0, 0.0]  # 4 of the first 5, flagged at the 4th beyond
    assert western_electric_rules(z)["WE3"].tolist() == [False, False, False, False, True, False, False]
    z = [1.5, 1.5, 1.5, 1.5]  # a series shorter than the window
    assert nelson_rules(z)["N6"].tolist() == [False, False, False, True]
    assert western_electric_rules([2.5, 2.5])["WE2"].tolist() == [False, True]


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
        u_chart(pd.DataFrame({"n_defects": [0] * n, "area": np.linspace(1.0, 2.0, n)}), exposure_col="area"),
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
    fab = yk.simulate_fab(n_lots=2, wafers_per_lot=25, cluster_alpha=50.0, random_state=3,
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
        u_chart(pd.DataFrame({"n_defects": [1], "a": [0.0]}), exposure_col="a")
    with pytest.raises(YieldkitValueError, match="sigma_level"):
        u_chart(pd.DataFrame({"n_defects": [1]}), sigma_level=0)


def test_laney_sigma_z_by_hand_and_limits():
    """Laney (2002): z_i = (p_i - p_bar)/sigma_i, sigma_z = mean moving range of z / 1.128,
    limits p_bar +/- 3 sigma_i sigma_z -- recomputed by hand on a small table."""
    t = pd.DataFrame({"tested": [200, 150, 300, 250, 100], "good": [180, 120, 285, 200, 95]})
    c = p_chart(t, laney=True)
    p_bar = t["good"].sum() / t["tested"].sum()
    s = np.sqrt(p_bar * (1 - p_bar) / t["tested"].to_numpy())
    z = (t["good"] / t["tested"] - p_bar).to_numpy() / s
    sz = np.mean(np.abs(np.diff(z))) / 1.128
    assert c.sigma_z == pytest.approx(sz, rel=1e-12)
    np.testing.assert_allclose(c.table["ucl"], np.minimum(1, p_bar + 3 * s * sz), rtol=1e-12)
    assert p_chart(t).sigma_z == 1.0


def test_laney_charts_stop_flagging_overdispersed_but_stable_processes(rng):
    """Wafer yields that vary beta-binomially (stable, but more than binomial): the classic p-chart
    flags most wafers, Laney's p'-chart about as few as chance; on purely binomial data sigma_z ~ 1."""
    n = np.full(400, 900)
    p = rng.beta(40, 8, 400)  # mean 0.83, sd 0.05 between wafers
    good = rng.binomial(n, p)
    t = pd.DataFrame({"tested": n, "good": good})
    classic, laney = p_chart(t, rules="none"), p_chart(t, rules="none", laney=True)
    out = lambda ch: ((ch.table["value"] > ch.table["ucl"]) | (ch.table["value"] < ch.table["lcl"])).mean()  # noqa: E731
    assert out(classic) > 0.3 and out(laney) < 0.02 and laney.sigma_z > 2
    binom = pd.DataFrame({"tested": n, "good": rng.binomial(n, 0.83)})
    assert 0.85 < p_chart(binom, laney=True).sigma_z < 1.15
    counts = pd.DataFrame({"n_defects": rng.negative_binomial(2, 2 / (2 + 50.0), 400)})
    assert out(u_chart(counts, rules="none")) > 0.3 and out(u_chart(counts, rules="none", laney=True)) < 0.03
