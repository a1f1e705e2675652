"""Defects across inspection steps, checked against simulated truth (yieldkit.inspection).

Truth comes from :func:`yieldkit.inspection.simulate_inspections`: known frame transforms per
wafer and step, known first detection of every defect, known kill probabilities and injected
reticle repeaters.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.spatial import cKDTree

import yieldkit as yk
from yieldkit.errors import SchemaError, YieldkitValueError
from yieldkit.inspection import (
    adder_summary,
    align,
    find_repeaters,
    layer_kill_ratio,
    match_points,
    match_steps,
    simulate_inspections,
)
from yieldkit.layout import WaferLayout
from yieldkit.results import TableResult

JITTER = 0.5  # per-axis sd of the position difference between two inspections [um]


@pytest.fixture(scope="module")
def dense():
    """Three wafers with about 2,000 defects at the second inspection, large rotations."""
    return simulate_inspections(n_lots=1, wafers_per_lot=3, sources=[("A", "particle", 5.0, 0.0),
                                                                      ("B", "particle", 3.5, 0.0)],
                                rotation_urad=500.0, jitter_um=JITTER, detect_prob=0.9, random_state=21)


@pytest.fixture(scope="module")
def fab():
    return simulate_inspections(n_lots=2, wafers_per_lot=15, detect_prob=1.0, jitter_um=JITTER, random_state=8)


@pytest.fixture(scope="module")
def fab_missed():
    return simulate_inspections(n_lots=1, wafers_per_lot=15, detect_prob=0.85, jitter_um=JITTER, random_state=9)


def _truth_b(f):
    tr = f.truth["transforms"]
    return tr[tr.step == "B"].sort_values("wafer_id").reset_index(drop=True)


@pytest.mark.parametrize("model", ["rigid", "similarity", "affine"])
def test_align_recovers_the_transform(dense, model):
    d = dense.defects
    a, b = d[d.layer == "A"], d[d.layer == "B"]
    assert b.groupby("wafer_id").size().min() >= 2000
    al = align(a, b, model=model)
    tr = _truth_b(dense)
    t = al.table
    assert list(t["wafer_id"]) == list(tr["wafer_id"])
    assert np.abs(t["tx_um"] - tr["tx_um"]).max() < 1.0
    assert np.abs(t["ty_um"] - tr["ty_um"]).max() < 1.0
    assert np.abs(t["rotation_urad"] - tr["rotation_rad"] * 1e6).max() < 10.0
    assert np.abs(t["scale"] - 1.0).max() < 1e-4
    assert np.allclose(t["residual_um"], JITTER, rtol=0.15)  # robust sd of the differences
    assert (t["n_pairs"] > 0.8 * t["n_a"]).all()  # the carried-over defects, not the adders
    # applying the transform brings B's carried defects onto A's
    moved = al.apply(b)
    obs = dense.truth["observations"]
    ob = obs[obs.step == "B"].reset_index(drop=True)
    err = np.hypot(moved["x_um"].to_numpy() - ob["x_wafer_um"].to_numpy(),
                   moved["y_um"].to_numpy() - ob["y_wafer_um"].to_numpy())
    assert np.median(err) < 1.5 * JITTER


def test_align_is_robust_to_unmatched_defects(dense):
    """Half of A dropped and 2,000 random defects added to B: the same transform."""
    rng = np.random.default_rng(3)
    d = dense.defects
    a = d[(d.layer == "A")].sample(frac=0.5, random_state=1)
    b = d[d.layer == "B"]
    r = 95_000 * np.sqrt(rng.random(2000))
    th = rng.uniform(0, 2 * np.pi, 2000)
    noise = pd.DataFrame({"lot_id": "L01", "wafer_id": "01", "x_um": r * np.cos(th), "y_um": r * np.sin(th)})
    b = pd.concat([b, noise], ignore_index=True)
    t = align(a, b).table.sort_values("wafer_id").reset_index(drop=True)
    tr = _truth_b(dense)
    assert np.abs(t["tx_um"] - tr["tx_um"]).max() < 1.0
    assert np.abs(t["rotation_urad"] - tr["rotation_rad"] * 1e6).max() < 10.0


def _greedy_oracle(xa, ya, xb, yb, radius):
    """Brute force: every pair within the radius from a KD-tree ball query, taken greedily by
    (distance, row in a, row in b) in a Python loop."""
    tree = cKDTree(np.column_stack([xb, yb]))
    pairs = []
    for i, js in enumerate(tree.query_ball_point(np.column_stack([xa, ya]), radius)):
        for j in js:
            pairs.append((math.hypot(xa[i] - xb[j], ya[i] - yb[j]), i, j))
    pairs.sort()
    used_a, used_b, out = set(), set(), []
    for _, i, j in pairs:
        if i not in used_a and j not in used_b:
            used_a.add(i)
            used_b.add(j)
            out.append((i, j))
    return sorted(out)


@pytest.mark.parametrize("radius", [4 * JITTER, 60.0])
def test_matching_equals_brute_force_oracle(dense, radius):
    """The vectorised matching equals the greedy brute-force oracle, on aligned step data (few
    conflicts) and at a wide radius where many pairs compete."""
    d = dense.defects
    a, b = d[d.layer == "A"], d[d.layer == "B"]
    moved = align(a, b).apply(b)
    (wa, wb), _ = yk._keys.joint_wafer_codes(a, b)
    ia, ib, _ = match_points(wa, a.x_um.to_numpy(), a.y_um.to_numpy(), wb, moved.x_um.to_numpy(),
                             moved.y_um.to_numpy(), radius)
    got = sorted(zip(ia.tolist(), ib.tolist(), strict=True))
    expect = []
    for w in np.unique(wa):
        ra, rb = np.flatnonzero(wa == w), np.flatnonzero(wb == w)
        sub = _greedy_oracle(a.x_um.to_numpy()[ra], a.y_um.to_numpy()[ra], moved.x_um.to_numpy()[rb],
                             moved.y_um.to_numpy()[rb], radius)
        expect += [(int(ra[i]), int(rb[j])) for i, j in sub]
    assert got == sorted(expect)


def test_matching_equals_oracle_on_crowded_points():
    """Dense random points: chains of competing neighbours, where mutual-nearest rounds must repeat."""
    rng = np.random.default_rng(5)
    xa, ya = rng.uniform(0, 300, 800), rng.uniform(0, 300, 800)
    xb, yb = xa + rng.normal(0, 4, 800), ya + rng.normal(0, 4, 800)
    xb, yb = np.r_[xb, rng.uniform(0, 300, 300)], np.r_[yb, rng.uniform(0, 300, 300)]
    ia, ib, _ = match_points(np.zeros(800, int), xa, ya, np.zeros(1100, int), xb, yb, 12.0)
    assert sorted(zip(ia.tolist(), ib.tolist(), strict=True)) == _greedy_oracle(xa, ya, xb, yb, 12.0)
    assert len(set(ia)) == len(ia) and len(set(ib)) == len(ib)


@pytest.mark.parametrize("which", ["fab", "fab_missed"])
@pytest.mark.parametrize("radius", [4 * JITTER, None])
def test_adders_precision_and_recall(request, which, radius):
    """Adders against the truth (first detection) at a radius of 4 sigma of the jitter, and at
    the default radius from the alignment residual; missed detections included."""
    f = request.getfixturevalue(which)
    m = match_steps(f.defects, order=f.steps, radius_um=radius)
    got = m.table["is_adder"].to_numpy()
    truth = f.truth["observations"]["is_adder"].to_numpy()
    tp = (got & truth).sum()
    assert tp / got.sum() >= 0.99 and tp / truth.sum() >= 0.99
    src = m.table["source_step"].astype(str).to_numpy()
    assert (src == f.truth["observations"]["first_seen_step"].to_numpy()).mean() >= 0.99
    # one physical defect keeps one track id
    obs = f.truth["observations"]
    per_track = pd.Series(obs["physical_id"].to_numpy()).groupby(
        [m.table["lot_id"].to_numpy(), m.table["wafer_id"].to_numpy(), m.table["track_id"].to_numpy()]).nunique()
    assert (per_track == 1).mean() >= 0.99
    assert isinstance(m, TableResult) and set(m.alignments["step"]) == set(f.steps[1:])


def test_adder_summary(fab):
    m = match_steps(fab.defects, order=fab.steps)
    s = adder_summary(m, layout=fab.layout)
    assert (s["total"] == s["adders"] + s["carried_over"]).all()
    assert s["total"].sum() == len(fab.defects)
    assert s["adders"].sum() == int(m.table["is_adder"].sum())
    area = math.pi * (fab.layout.usable_radius_um * 1e-4) ** 2
    assert np.allclose(s["adder_density"], s["adders"] / area)
    w = adder_summary(m, by=())
    assert list(w["step"].iloc[:3]) == fab.steps and "adder_density" not in w.columns
    first = w.iloc[0]
    assert first["carried_over"] == 0  # nothing before the first step
    with pytest.raises(SchemaError, match="match_steps"):
        adder_summary(fab.defects)
    with pytest.raises(YieldkitValueError, match="size_bins"):
        adder_summary(m, size_bins=[1.0, 0.5])


def test_layer_kill_ratio_inside_intervals(fab):
    """Joint kill probability per (source step, class) on adders: every truth inside its 95 %
    interval; the layer limited yield inside its interval."""
    lk = layer_kill_ratio(fab.dies, match_steps(fab.defects, order=fab.steps))
    src = fab.truth["sources"].rename(columns={"layer": "source_step"})
    t = lk.table.merge(src.rename(columns={"kill_prob": "true_kill_prob"}), on=["source_step", "defect_class"])
    assert len(t) == len(src)
    truth_k = t["true_kill_prob"].to_numpy()
    assert ((t["kill_prob_ci_lower"].to_numpy() <= truth_k) & (truth_k <= t["kill_prob_ci_upper"].to_numpy())).all()
    assert list(lk.layers["source_step"]) == fab.steps
    ly = src.groupby("source_step")["limited_yield"].prod()
    for _, r in lk.layers.iterrows():
        assert r["ci_lower"] <= ly[r["source_step"]] <= r["ci_upper"]
    # counting every sighting (no matching) would count carried defects again
    raw = yk.kill_ratio(fab.dies, fab.defects, by="layer").table
    assert raw["defects"].sum() > lk.table["defects"].sum()


def test_repeaters_found(dense):
    f = simulate_inspections(n_lots=1, wafers_per_lot=3, repeaters=2, jitter_um=JITTER, random_state=13)
    m = match_steps(f.defects, order=f.steps).table
    last = m[m.layer == f.steps[-1]]
    r = find_repeaters(last, f.layout, shot=(2, 2), x_col="x_ref_um", y_col="y_ref_um")
    truth = f.truth["repeaters"]
    assert len(r.table) == len(truth)
    got = r.table.sort_values(["wafer_id", "field_x_um"]).reset_index(drop=True)
    exp = truth.sort_values(["wafer_id", "field_x_um"]).reset_index(drop=True)
    assert (got["wafer_id"] == exp["wafer_id"]).all()
    assert np.abs(got["field_x_um"] - exp["field_x_um"]).max() < 2.0
    assert np.abs(got["field_y_um"] - exp["field_y_um"]).max() < 2.0
    obs = f.truth["observations"][(m.layer == f.steps[-1]).to_numpy()]
    assert (r.is_repeater == obs["repeater"].to_numpy()).mean() > 0.995
    assert (got["n_shots"] >= got["threshold"]).all()


def test_false_repeater_rate_near_nominal_over_random_wafers():
    """10^4 wafers of uniform random defects: the share of wafers with a (false) repeater is at
    most the test's level and near it (the level reached by the discrete binomial test,
    ``false_rate_bound``, averaged over the wafers)."""
    lay = WaferLayout(diameter_mm=200, die_pitch_um=(6000, 5000), edge_exclusion_mm=3)
    rng = np.random.default_rng(17)
    n_w = 10_000
    n = rng.poisson(100, n_w)
    w = np.repeat(np.arange(n_w), n)
    r = lay.usable_radius_um * np.sqrt(rng.random(len(w)))
    th = rng.uniform(0, 2 * np.pi, len(w))
    d = pd.DataFrame({"lot_id": "L", "wafer_id": w, "x_um": r * np.cos(th), "y_um": r * np.sin(th)})
    res = find_repeaters(d, lay, shot=(2, 2), tolerance_um=300.0, alpha=0.05, min_shots=2)
    rate = res.table["wafer_id"].nunique() / n_w
    level = float(res.groups["false_rate_bound"].mean())
    assert 0.005 < level <= 0.05
    se = math.sqrt(level * (1 - level) / n_w)
    assert rate <= level + 3 * se
    assert rate >= 0.4 * level


def test_errors():
    f = simulate_inspections(n_lots=1, wafers_per_lot=1, random_state=1)
    d = f.defects
    with pytest.raises(YieldkitValueError, match="model"):
        align(d, d, model="projective")
    with pytest.raises(SchemaError, match="x_um"):
        align(d.drop(columns=["x_um"]), d)
    with pytest.raises(YieldkitValueError, match="order"):
        match_steps(d, order=["M1", "V1"])
    with pytest.raises(YieldkitValueError, match="radius_um"):
        match_steps(d, radius_um=-1.0)
    with pytest.raises(YieldkitValueError, match="shot"):
        find_repeaters(d, f.layout, shot=(0, 2))
    with pytest.raises(YieldkitValueError, match="alpha"):
        find_repeaters(d, f.layout, shot=(2, 2), alpha=2.0)


def test_dask_equals_in_memory():
    """Matching, adders, repeaters and the budget on a Dask frame partitioned by wafer (threaded
    scheduler) equal the in-memory results."""
    dask = pytest.importorskip("dask")
    dd = pytest.importorskip("dask.dataframe")
    from yieldkit.budget import yield_budget, yield_budget_dask
    from yieldkit.inspection.dask import adder_summary_dask, find_repeaters_dask, match_steps_dask

    f = simulate_inspections(n_lots=2, wafers_per_lot=2, repeaters=1, random_state=6)

    def by_wafer(df):
        parts = [g.reset_index(drop=True) for _, g in df.groupby(["lot_id", "wafer_id"], sort=False, observed=True)]
        return dd.concat([dd.from_pandas(p, npartitions=1, sort=False) for p in parts])

    with dask.config.set(scheduler="threads"):
        ddf = by_wafer(f.defects)
        assert ddf.npartitions == 4
        mem = match_steps(f.defects, f.steps).table
        lazy = match_steps_dask(ddf, f.steps)
        pd.testing.assert_frame_equal(lazy.compute().reset_index(drop=True), mem)
        pd.testing.assert_frame_equal(adder_summary_dask(lazy, layout=f.layout, order=f.steps),
                                      adder_summary(mem, layout=f.layout, order=f.steps))
        last = mem[mem.layer == "M2"].reset_index(drop=True)
        kw = {"shot": (2, 2), "x_col": "x_ref_um", "y_col": "y_ref_um"}
        r = find_repeaters(last, f.layout, **kw)
        t, g = find_repeaters_dask(by_wafer(last), f.layout, **kw)
        assert len(t) == 4
        pd.testing.assert_frame_equal(t, r.table)
        pd.testing.assert_frame_equal(g, r.groups)
        b = yield_budget(f.dies, mem, systematic=0.97, parametric_bins=[6, 7])
        bd = yield_budget_dask(by_wafer(f.dies), by_wafer(mem), systematic=0.97, parametric_bins=[6, 7])
        pd.testing.assert_frame_equal(bd.table, b.table)
        assert (bd.observed_yield, bd.tested_dies) == (b.observed_yield, b.tested_dies)
        with pytest.raises(YieldkitValueError, match="spans several partitions"):
            match_steps_dask(dd.from_pandas(f.defects, npartitions=3, sort=False), f.steps)
        with pytest.raises(YieldkitValueError, match="in memory"):
            yield_budget_dask(by_wafer(f.dies), systematic="fit")
