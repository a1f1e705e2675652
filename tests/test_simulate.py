"""The fab simulator reproduces its own truth."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

import yieldkit as yk
from yieldkit.errors import YieldkitValueError
from yieldkit.simulate import DefectClass, simulate_fab, write_fab


def test_mean_defects_per_die_matches_d0_times_area():
    """Mean per-die count within 3 standard errors of D0*A over many wafers (known truth)."""
    fab = simulate_fab(n_lots=8, wafers_per_lot=25, d0=0.8, cluster_alpha=1.5, random_state=11)
    t = fab.truth["dies"]
    lam = fab.truth["d0"] * fab.truth["die_area_cm2"]
    # wafer-level clustering: the wafer means are the independent units
    wafer_means = t.groupby(["lot_id", "wafer_id"])["n_defects"].mean()
    se = wafer_means.std(ddof=1) / math.sqrt(len(wafer_means))
    assert abs(wafer_means.mean() - lam) < 3 * se
    # the observed defect table holds exactly those defects
    counts = yk.simulate.pd.Series(1, index=fab.defects.index).groupby(
        [fab.defects["lot_id"], fab.defects["wafer_id"], fab.defects["die_x"], fab.defects["die_y"]]
    ).sum()
    assert counts.sum() == t["n_defects"].sum()


def test_die_level_clustering_gives_negative_binomial_counts():
    """clustering='die': counts are NB with variance mu + mu^2/alpha."""
    fab = simulate_fab(n_lots=4, wafers_per_lot=25, d0=2.0, cluster_alpha=0.8, clustering="die", y0=1.0, random_state=3)
    n = fab.truth["dies"]["n_defects"].to_numpy()
    mu = 2.0 * fab.truth["die_area_cm2"]
    var_expected = mu + mu * mu / 0.8
    assert n.mean() == pytest.approx(mu, rel=0.03)
    assert n.var() == pytest.approx(var_expected, rel=0.06)


def test_class_shares_and_kill_rates():
    classes = (DefectClass("a", 0.7, 0.2, 0.3), DefectClass("b", 0.3, 0.9, 1.0))
    fab = simulate_fab(n_lots=4, wafers_per_lot=25, d0=1.0, classes=classes, random_state=8)
    cls = fab.defects["defect_class"].to_numpy()
    killer = fab.truth["defects"]["killer"].to_numpy()
    n = len(cls)
    share_a = np.mean(cls == "a")
    assert abs(share_a - 0.7) < 3 * math.sqrt(0.7 * 0.3 / n)
    for name, kp in (("a", 0.2), ("b", 0.9)):
        k = killer[cls == name]
        assert abs(k.mean() - kp) < 3 * math.sqrt(kp * (1 - kp) / len(k))


def test_systematic_yield_and_coverage():
    """Without defects, yield = Y0; with coverage T a die with k killers escapes w.p. (1-T)^k."""
    fab = simulate_fab(n_lots=2, wafers_per_lot=25, d0=0.0, y0=0.9, random_state=2)
    y = fab.dies["passed"].mean()
    n = len(fab.dies)
    assert abs(y - 0.9) < 3 * math.sqrt(0.09 / n)
    fab = simulate_fab(n_lots=4, wafers_per_lot=25, d0=2.0, y0=1.0, coverage=0.7, random_state=4)
    t = fab.truth["dies"]
    one = t[t["n_killer"] == 1]
    rate = one["escaped"].mean()
    assert abs(rate - 0.3) < 3 * math.sqrt(0.21 / len(one))


def test_signatures_and_excursion_are_recorded():
    fab = simulate_fab(n_lots=1, wafers_per_lot=10, signatures={0: "edge-ring", 1: "center", 2: "scratch"},
                       excursion={"step": "etch", "tool": "ETCH01", "d0_factor": 4.0}, random_state=9)
    tw = fab.truth["wafers"]
    assert tw["signature"].tolist()[:4] == ["edge-ring", "center", "scratch", "none"]
    assert (tw["excursion"] == (fab.wafers["tool_etch"] == "ETCH01")).all()
    # edge-ring fails sit at the edge, center fails in the middle
    d = fab.dies.merge(fab.layout.dies(), on=["die_x", "die_y"])
    r = np.hypot(d["x_center_um"], d["y_center_um"]) / fab.layout.radius_um
    sig = d["hbin"] == 4
    assert r[sig & (d["wafer_id"] == "01")].min() > 0.75
    assert r[sig & (d["wafer_id"] == "02")].max() < 0.4
    # the scratch left a cluster of defects
    cl = fab.truth["defects"]
    assert (cl.loc[cl["wafer_id"] == "03", "cluster_id"] >= 0).sum() >= 25


def test_retests_make_first_pass_yield_lower():
    fab = simulate_fab(n_lots=1, wafers_per_lot=5, retest_rate=0.05, random_state=1)
    assert "test_seq" in fab.dies.columns
    w = yk.wafer_yield(fab.dies)
    assert (w["first_pass_yield"] < w["yield"]).all()
    assert (w["tested"] == fab.layout.n_dies).all()


def test_seeded_runs_are_reproducible_and_write_round_trips(tmp_path):
    a = simulate_fab(n_lots=1, wafers_per_lot=2, random_state=42)
    b = simulate_fab(n_lots=1, wafers_per_lot=2, random_state=42)
    pd.testing.assert_frame_equal(a.dies, b.dies)
    pd.testing.assert_frame_equal(a.defects, b.defects)
    write_fab(a, tmp_path)
    pd.testing.assert_frame_equal(yk.read_dies(tmp_path / "dies.parquet"), a.dies)
    pd.testing.assert_frame_equal(yk.read_dies(tmp_path / "dies.csv"), a.dies)
    back = yk.read_defects(tmp_path / "defects.csv")
    pd.testing.assert_frame_equal(back, a.defects, check_exact=False, rtol=1e-12)
    lay = yk.WaferLayout.from_dict(__import__("json").loads((tmp_path / "layout.json").read_text()))
    assert lay == a.layout


@pytest.mark.parametrize("kw, match", [
    (dict(y0=1.5), "y0"), (dict(coverage=-0.1), "coverage"), (dict(clustering="lot"), "clustering"),
    (dict(signatures={0: "spiral"}), "signatures"), (dict(cluster_alpha=0), "cluster_alpha"),
])
def test_bad_arguments(kw, match):
    with pytest.raises(YieldkitValueError, match=match):
        simulate_fab(n_lots=1, wafers_per_lot=1, **kw)


@pytest.mark.parametrize("systematic", ["die", "wafer"])
def test_block_yields_follow_the_documented_generating_model(systematic):
    """Window-method truth: with wafer-level gamma clustering, a block of m dies is free of killer
    defects with probability (1 + m*A*kD0/alpha)^-alpha; systematic loss multiplies that by y0**m
    (die-level loss) or by y0 (whole wafers lost). Checked on the simulator's own pass/fail maps."""
    from yieldkit.models import block_yields

    fab = simulate_fab(n_lots=8, wafers_per_lot=25, d0=1.0, cluster_alpha=2.0, y0=0.9, systematic=systematic,
                       coverage=1.0, random_state=31)
    t = fab.truth
    a, kd0 = t["die_area_cm2"], t["killer_d0"]
    by = block_yields(fab.dies, [(1, 1), (2, 2), (3, 3)], per_wafer=True)
    for m, g in by.groupby("dies_per_block"):
        wafer_y = g["n_good"] / g["n_blocks"]
        se = wafer_y.std(ddof=1) / math.sqrt(len(wafer_y))
        y_sys = 0.9**m if systematic == "die" else 0.9
        expected = y_sys * (1 + m * a * kd0 / 2.0) ** -2.0
        assert abs(wafer_y.mean() - expected) < 3.5 * se, (m, wafer_y.mean(), expected, se)
    lam_window = t["window_d0"]
    assert lam_window == pytest.approx(kd0 + (-math.log(0.9) / a if systematic == "die" else 0.0))
