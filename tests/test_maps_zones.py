"""Tests of yieldkit.maps.zones: zone assignment, Fisher/BH helpers, zonal yield and density."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportions_ztest

import yieldkit as yk
from yieldkit.errors import SchemaError, YieldkitValueError
from yieldkit.maps.zones import assign_zones, zonal_density, zonal_yield
from yieldkit.significance import benjamini_hochberg, fisher_exact_2x2, two_proportion_ztest


def _brute_zone(x, y, scheme, R, n=None, radii=None):
    """Reference: per-point Python loop with the textbook definitions."""
    out = []
    for xi, yi in zip(x, y, strict=True):
        r = math.hypot(xi, yi)
        if scheme in ("ring", "rings"):
            n_ = 3 if scheme == "ring" else n
            k = 0
            while k < n_ - 1 and r >= R * math.sqrt((k + 1) / n_):
                k += 1
            out.append(k)
        elif scheme == "radii":
            out.append(sum(r >= b for b in radii))
        elif scheme == "quadrant":
            out.append(0 if xi >= 0 and yi >= 0 else 1 if xi < 0 and yi >= 0 else 2 if xi < 0 and yi < 0 else 3)
        else:
            ang = math.degrees(math.atan2(yi, xi)) % 360
            out.append(min(int(ang // (360 / n)), n - 1))
    return np.array(out)


@pytest.mark.parametrize(
    ("scheme", "n", "radii"),
    [("ring", None, None), ("rings", 7, None), ("quadrant", None, None), ("sector", 6, None), ("radii", None, [20.0, 55.5])],
)
def test_assign_zones_brute_force(rng, scheme, n, radii):
    """Reference: a scalar loop over the points (boundary points included)."""
    x = rng.uniform(-100, 100, 2000)
    y = rng.uniform(-100, 100, 2000)
    x[:4] = [0, 0, -5, 100 * math.sqrt(1 / 3)]
    y[:4] = [0, -3, 0, 0]
    codes, labels = assign_zones(x, y, scheme=scheme, radius_um=100.0, n_zones=n, radii_um=radii)
    np.testing.assert_array_equal(codes, _brute_zone(x, y, scheme, 100.0, n, radii))
    assert codes.max() < len(labels)


def test_assign_zones_errors():
    with pytest.raises(YieldkitValueError, match="'scheme'.*'ring'"):
        assign_zones([0], [0], scheme="donut", radius_um=1)
    with pytest.raises(YieldkitValueError, match="radii_um"):
        assign_zones([0], [0], scheme="radii", radius_um=1, radii_um=[3, 2])
    with pytest.raises(YieldkitValueError, match="n_zones"):
        assign_zones([0], [0], scheme="sector", radius_um=1, n_zones=0)
    with pytest.raises(YieldkitValueError, match="radius_um"):
        assign_zones([0], [0], radius_um=-1)


def test_fisher_against_scipy(rng):
    """Reference: scipy.stats.fisher_exact, table by table."""
    t = rng.integers(0, 15, size=(300, 4))
    t[0] = [0, 0, 0, 0]
    t[1] = [10, 0, 0, 10]
    p = fisher_exact_2x2(*t.T)
    ref = [stats.fisher_exact(row.reshape(2, 2)).pvalue for row in t]
    np.testing.assert_allclose(p, ref, rtol=1e-9, atol=1e-15)


def test_ztest_against_statsmodels(rng):
    """Reference: statsmodels proportions_ztest (pooled variance)."""
    n1, n2 = rng.integers(50, 300, 20), rng.integers(50, 300, 20)
    k1, k2 = rng.binomial(n1, 0.8), rng.binomial(n2, 0.75)
    ref = [proportions_ztest([a, b], [c, d])[1] for a, b, c, d in zip(k1, k2, n1, n2, strict=True)]
    np.testing.assert_allclose(two_proportion_ztest(k1, n1, k2, n2), ref, rtol=1e-10)


def test_bh_against_statsmodels(rng):
    """Reference: statsmodels multipletests(method='fdr_bh') within each group."""
    p = rng.uniform(0, 0.2, 60) ** 2
    g = rng.integers(0, 5, 60)
    q = benjamini_hochberg(p, g)
    for k in range(5):
        m = g == k
        np.testing.assert_allclose(q[m], multipletests(p[m], method="fdr_bh")[1], rtol=1e-12)


@pytest.fixture(scope="module")
def fab():
    return yk.simulate_fab(n_lots=1, wafers_per_lot=6, random_state=11, retest_rate=0.02,
                           signatures={0: "edge-ring", 1: "center", 2: "donut"})


def test_zonal_yield_counts_against_groupby(fab):
    """Reference: pandas groupby of final results by wafer and a brute-force zone."""
    z = zonal_yield(fab.dies, fab.layout, scheme="quadrant")
    final = yk.final_results(fab.dies)
    cx, cy = fab.layout.die_centers(final["die_x"], final["die_y"])
    final = final.assign(zone=np.array(["Q1", "Q2", "Q3", "Q4"])[_brute_zone(cx, cy, "quadrant", 1)])
    ref = final.groupby(["lot_id", "wafer_id", "zone"]).agg(tested_ref=("passed", "size"), good_ref=("passed", "sum"))
    m = z.assign(zone=z["zone"].astype(str)).set_index(["lot_id", "wafer_id", "zone"]).join(ref)
    np.testing.assert_array_equal(m["tested"], m["tested_ref"])
    np.testing.assert_array_equal(m["good"], m["good_ref"])
    lo, _ = stats.beta.interval(0.95, m["good"].iloc[0], m["tested"].iloc[0] - m["good"].iloc[0] + 1)
    assert m["ci_lower"].iloc[0] == pytest.approx(lo, rel=1e-9)


def test_zonal_yield_flags_signatures(fab):
    z = zonal_yield(fab.dies, fab.layout)
    flagged = set(map(tuple, z.loc[z.flagged, ["wafer_id", "zone"]].to_numpy().tolist()))
    assert ("01", "edge") in flagged
    assert ("02", "center") in flagged
    assert any(w == "03" for w, _ in flagged)  # donut: center or middle, by its radius
    assert not any(w in ("04", "05", "06") for w, _ in flagged)
    zb = zonal_yield(fab.dies, fab.layout, flag="both", test="fisher")
    assert zb["flagged"].sum() >= z["flagged"].sum()


def test_zonal_yield_errors(fab):
    with pytest.raises(SchemaError, match="passed"):
        zonal_yield(fab.dies.drop(columns="passed"))
    with pytest.raises(YieldkitValueError, match="'fdr'"):
        zonal_yield(fab.dies, fdr=2)
    with pytest.raises(YieldkitValueError, match="'min_effect'"):
        zonal_yield(fab.dies, min_effect=-1)
    with pytest.raises(YieldkitValueError, match="'test'"):
        zonal_yield(fab.dies, test="chi2")


def test_zonal_density_against_groupby(fab):
    """Reference: pandas groupby of on-die defects by brute-force ring; area from the die count."""
    zd = zonal_density(fab.defects, fab.layout, level="pooled")
    d = fab.defects.dropna(subset=["die_x"])
    cx, cy = fab.layout.die_centers(d["die_x"].astype(int), d["die_y"].astype(int))
    k = np.bincount(_brute_zone(cx, cy, "ring", fab.layout.usable_radius_um), minlength=3)
    np.testing.assert_array_equal(zd["n_defects"], k)
    g = fab.layout.dies()
    nd = np.bincount(_brute_zone(g.x_center_um, g.y_center_um, "ring", fab.layout.usable_radius_um), minlength=3)
    np.testing.assert_allclose(zd["area_cm2"], nd * fab.layout.die_area_cm2 * 6)
    zw = zonal_density(fab.defects, fab.layout, level="wafer")
    assert len(zw) == 18 and zw["n_defects"].sum() == k.sum()
    with pytest.raises(SchemaError, match="'x_um'"):
        zonal_density(fab.defects.drop(columns="x_um"), fab.layout)
    inferred = yk.WaferLayout.from_dies(fab.dies)
    with pytest.raises(YieldkitValueError, match="inferred"):
        zonal_density(fab.defects, inferred)


def test_false_positive_rate_random_wafers():
    """Seeded simulation with known truth: wafers without a signature are rarely flagged."""
    fab = yk.simulate_fab(n_lots=10, wafers_per_lot=25, random_state=5)
    z = zonal_yield(fab.dies, fab.layout)
    per_wafer = z.groupby("wafer_id", observed=True)["flagged"].any()
    rate = z.groupby(["lot_id", "wafer_id"])["flagged"].any().mean()
    assert len(per_wafer) > 0
    assert rate <= 0.05
    assert isinstance(z["zone"].dtype, pd.CategoricalDtype)


def test_zonal_density_counts_defect_free_wafers(fab):
    """A wafer without defects counts in the area when the inspected wafers are given.

    Reference: the on-wafer die area per zone times the 6 inspected wafers; without ``wafers``
    the defect-free wafer is unknown (5 wafers' area, the documented fallback).
    """
    d = fab.defects.loc[fab.defects["wafer_id"] != "04"]
    zp = zonal_density(d, fab.layout, level="pooled", wafers=fab.dies)
    full = zonal_density(fab.defects, fab.layout, level="pooled")
    np.testing.assert_allclose(zp["area_cm2"], full["area_cm2"])
    np.testing.assert_allclose(zonal_density(d, fab.layout, level="pooled")["area_cm2"], full["area_cm2"] * 5 / 6)
    zl = zonal_density(d, fab.layout, level="lot", wafers=fab.dies)
    np.testing.assert_allclose(zl["area_cm2"], full["area_cm2"])
    zw = zonal_density(d, fab.layout, level="wafer", wafers=fab.dies)
    assert len(zw) == 18
    assert (zw.loc[zw["wafer_id"] == "04", "n_defects"] == 0).all()
