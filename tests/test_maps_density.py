"""Tests of yieldkit.maps.density and yieldkit.maps.stacking."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy.stats import gaussian_kde

import yieldkit as yk
from yieldkit.errors import DataQualityWarning, SchemaError, YieldkitValueError
from yieldkit.maps.density import defect_kde, radial_profile
from yieldkit.maps.stacking import bin_frequency, reticle_stack, stack_map


@pytest.mark.parametrize("bandwidth", ["scott", "silverman", 1500.0])
def test_kde_against_scipy(rng, bandwidth):
    """Reference: scipy.stats.gaussian_kde evaluated on the grid (same covariance rule); tol 1% of peak."""
    xy = rng.multivariate_normal([1000, -500], [[4e6, 1.5e6], [1.5e6, 2e6]], size=120)
    d = pd.DataFrame({"lot_id": "L", "wafer_id": "1", "x_um": xy[:, 0], "y_um": xy[:, 1]})
    k = defect_kde(d, grid_size=160, bandwidth=bandwidth)
    if isinstance(bandwidth, float):
        # isotropic reference: direct sum of Gaussians
        X, Y = np.meshgrid(k.x_um, k.y_um)
        ref = np.exp(-((X[..., None] - xy[:, 0]) ** 2 + (Y[..., None] - xy[:, 1]) ** 2) / (2 * bandwidth**2)).sum(-1)
        ref = ref / (2 * np.pi * bandwidth**2) * 1e8
    else:
        kd = gaussian_kde(xy.T, bw_method=bandwidth)
        np.testing.assert_allclose(k.bandwidth[0], kd.covariance, rtol=1e-10)
        X, Y = np.meshgrid(k.x_um, k.y_um)
        ref = kd(np.vstack([X.ravel(), Y.ravel()])).reshape(X.shape) * len(xy) * 1e8
    assert np.abs(k.density[0] - ref).max() <= 0.01 * ref.max()


def test_kde_per_wafer_integrates_to_counts():
    fab = yk.simulate_fab(n_lots=1, wafers_per_lot=3, random_state=2)
    big = 2.5 * fab.layout.radius_um  # wide enough to hold the kernels' tails
    k = defect_kde(fab.defects, level="wafer", grid_size=128, extent_um=(-big, big, -big, big))
    assert k.density.shape == (3, 128, 128)
    cell = (k.x_um[1] - k.x_um[0]) * (k.y_um[1] - k.y_um[0]) * 1e-8
    np.testing.assert_allclose(k.density.sum(axis=(1, 2)) * cell, k.n_defects, rtol=0.03)
    with pytest.raises(YieldkitValueError, match="'bandwidth'"):
        defect_kde(fab.defects, bandwidth="wide")
    with pytest.raises(YieldkitValueError, match="'grid_size'"):
        defect_kde(fab.defects, grid_size=2)
    with pytest.raises(SchemaError, match="'x_um'"):
        defect_kde(fab.defects.drop(columns="x_um"))


def test_radial_profile_against_direct_count(rng):
    """Reference: numpy histogram of r^2 (equal-area rings) and the annulus area pi (r2^2 - r1^2)."""
    lay = yk.WaferLayout(diameter_mm=200, die_pitch_um=(5000, 5000))
    r = 100_000 * np.sqrt(rng.random(5000))
    t = rng.uniform(0, 2 * np.pi, 5000)
    d = pd.DataFrame({"lot_id": "L", "wafer_id": np.repeat(["1", "2"], 2500), "x_um": r * np.cos(t), "y_um": r * np.sin(t)})
    p = radial_profile(d, lay, n_rings=4)
    edges = 100_000 * np.sqrt(np.arange(5) / 4)
    np.testing.assert_array_equal(p["n_defects"], np.histogram(r, bins=edges)[0])
    np.testing.assert_allclose(p["area_cm2"], 2 * np.pi * np.diff(edges**2) * 1e-8)
    # uniform disc: equal density in every ring, within the Garwood intervals
    true = 2500 / (np.pi * 1e10 * 1e-8)
    assert ((p["ci_lower"] < true) & (true < p["ci_upper"])).all()
    pw = radial_profile(d, lay, n_rings=4, level="wafer")
    assert len(pw) == 8 and pw["n_defects"].sum() == 5000
    with pytest.raises(YieldkitValueError, match="'n_rings'"):
        radial_profile(d, lay, n_rings=0)
    with pytest.raises(YieldkitValueError, match="'level'"):
        radial_profile(d, lay, level="die")


@pytest.fixture(scope="module")
def fab():
    return yk.simulate_fab(n_lots=2, wafers_per_lot=4, random_state=8, retest_rate=0.03, signatures={1: "edge-ring"})


def test_stack_map_against_groupby(fab):
    """Reference: pandas groupby over final results by (lot, die_x, die_y)."""
    s = stack_map(fab.dies, level="lot")
    final = yk.final_results(fab.dies)
    ref = final.assign(fail=~final.passed).groupby(["lot_id", "die_x", "die_y"]).agg(
        n_ref=("fail", "size"), fail_ref=("fail", "mean")).reset_index()
    m = s.merge(ref, on=["lot_id", "die_x", "die_y"], validate="1:1")
    assert len(m) == len(s) == len(ref)
    np.testing.assert_array_equal(m["n_wafers"], m["n_ref"])
    np.testing.assert_allclose(m["fail_rate"], m["fail_ref"], rtol=1e-12)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataQualityWarning)
        c = yk.die_defect_counts(fab.dies, fab.defects).table
    sc = stack_map(c, value_col="n_defects")
    ref2 = c.groupby(["die_x", "die_y"])["n_defects"].mean().rename("ref").reset_index()
    m2 = sc.merge(ref2, on=["die_x", "die_y"])
    np.testing.assert_allclose(m2["mean_n_defects"], m2["ref"], rtol=1e-12)
    with pytest.raises(YieldkitValueError, match="'level'"):
        stack_map(fab.dies, level="wafer")


def test_bin_frequency_against_groupby(fab):
    """Reference: pandas value counts per die position."""
    f = bin_frequency(fab.dies)
    final = yk.final_results(fab.dies)
    ref = final.groupby(["die_x", "die_y", "hbin"]).size().rename("ref").reset_index()
    m = f.merge(ref, on=["die_x", "die_y", "hbin"], how="left")
    np.testing.assert_array_equal(m["n"], m["ref"].fillna(0))
    np.testing.assert_allclose(f.groupby(["die_x", "die_y"])["frequency"].sum(), 1.0)


def test_reticle_stack_against_groupby(fab):
    """Reference: pandas groupby on (die mod shot) positions."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataQualityWarning)
        c = yk.die_defect_counts(fab.dies, fab.defects).table
    r = reticle_stack(c, shot=(3, 2), offset=(1, -1), die_area_cm2=0.3)
    ref = c.assign(sx=(c.die_x - 1) % 3, sy=(c.die_y + 1) % 2).groupby(["sy", "sx"]).agg(
        n=("passed", "size"), y=("passed", "mean"), k=("n_defects", "sum"))
    np.testing.assert_array_equal(r["n_dies"], ref["n"])
    np.testing.assert_allclose(r["yield"], ref["y"], rtol=1e-12)
    np.testing.assert_allclose(r["density"], ref["k"] / ref["n"] / 0.3, rtol=1e-12)
    with pytest.raises(YieldkitValueError, match="'shot'"):
        reticle_stack(c, shot=(0, 2))
    with pytest.raises(SchemaError, match="'passed' or 'n_defects'"):
        reticle_stack(c.drop(columns=["passed", "n_defects"]), shot=(2, 2))


def _uniform_disc(rng, n, radius):
    r, t = radius * np.sqrt(rng.random(n)), rng.uniform(0, 2 * np.pi, n)
    return r * np.cos(t), r * np.sin(t)


def test_kde_pooled_is_per_wafer_and_edge_corrected(rng):
    """Uniform defects on the usable disc: the corrected map is flat up to the edge (Diggle 1985).

    Reference: the true intensity n / (pi R_usable^2) per wafer; a pooled or lot map is the mean
    over its wafers (not their sum), and each map integrates to its defects per wafer. The
    uncorrected map falls off within a bandwidth of the edge (about 0.6 of the centre there).
    """
    lay = yk.WaferLayout(diameter_mm=200, die_pitch_um=(5000, 5000), edge_exclusion_mm=3)
    ru, n, h = lay.usable_radius_um, 20_000, 6000.0
    parts = []
    for wid in ("1", "2", "3"):
        x, y = _uniform_disc(rng, n, ru)
        parts.append(pd.DataFrame({"lot_id": "L", "wafer_id": wid, "x_um": x, "y_um": y}))
    d = pd.concat(parts, ignore_index=True)
    true = n / (np.pi * ru**2 * 1e-8)
    k = defect_kde(d, lay, bandwidth=h, grid_size=128)
    assert k.edge_corrected and k.n_wafers.tolist() == [3.0]
    X, Y = np.meshgrid(k.x_um, k.y_um)
    r = np.hypot(X, Y)
    cell = (k.x_um[1] - k.x_um[0]) * (k.y_um[1] - k.y_um[0]) * 1e-8
    centre, edge = r < ru - 3 * h, (r <= ru) & (r > ru - h)
    dens = k.density[0]
    assert np.isnan(dens[r > ru]).all() and np.isfinite(dens[r <= ru]).all()
    assert abs(dens[centre].mean() / true - 1) < 0.02
    assert abs(dens[edge].mean() / true - 1) < 0.04
    # integrates to the defects of one wafer over the usable disc
    assert abs(np.nansum(dens) * cell / n - 1) < 0.02
    # agrees with radial_profile (a ring inside the usable disc), and per-wafer maps average to it
    ring = radial_profile(d, yk.WaferLayout(diameter_mm=2 * ru / 1000, die_pitch_um=(5000, 5000), edge_exclusion_mm=0),
                          n_rings=1)
    assert abs(dens[r <= ru].mean() / ring["density"].iloc[0] - 1) < 0.02
    kw = defect_kde(d, lay, bandwidth=h, grid_size=128, level="wafer")
    np.testing.assert_allclose(kw.density.mean(axis=0), dens, rtol=1e-9)
    kl = defect_kde(d, lay, bandwidth=h, grid_size=128, level="lot")
    np.testing.assert_allclose(kl.density[0], dens, rtol=1e-9)
    # without the correction: biased low at the edge, and no NaN
    raw = defect_kde(d, lay, bandwidth=h, grid_size=128, edge_correction=False)
    assert not raw.edge_corrected and np.isfinite(raw.density).all()
    assert raw.density[0][edge].mean() / true < 0.75
    assert abs(raw.density[0][centre].mean() / true - 1) < 0.02


def test_defect_free_wafer_counts_in_the_area():
    """One of three wafers has no defects: with ``wafers=`` its area counts (3 discs, not 2).

    Reference: the disc area pi R^2 per inspected wafer; without ``wafers`` only the two wafers
    with defects are known (the documented fallback, 1.5 times too high here).
    """
    fab = yk.simulate_fab(n_lots=1, wafers_per_lot=3, random_state=1)
    lay = fab.layout
    d = fab.defects.loc[fab.defects["wafer_id"] != "02"]
    disc_cm2 = np.pi * lay.radius_um**2 * 1e-8
    p = radial_profile(d, lay, n_rings=1, wafers=fab.dies)
    assert p["area_cm2"].iloc[0] == pytest.approx(3 * disc_cm2)
    assert p["n_defects"].iloc[0] == (np.hypot(d["x_um"], d["y_um"]) < lay.radius_um).sum()
    p2 = radial_profile(d, lay, n_rings=1)
    assert p2["area_cm2"].iloc[0] == pytest.approx(2 * disc_cm2)
    pw = radial_profile(d, lay, n_rings=2, level="wafer", wafers=fab.wafers)
    assert pw["wafer_id"].tolist() == ["01", "01", "02", "02", "03", "03"]
    assert pw.loc[pw["wafer_id"] == "02", "n_defects"].tolist() == [0, 0]
    k = defect_kde(d, lay, grid_size=64, wafers=fab.wafers)
    k2 = defect_kde(d, lay, grid_size=64)
    assert k.n_wafers.tolist() == [3.0]
    np.testing.assert_allclose(k.density * 3, k2.density * 2, rtol=1e-12)
    kw = defect_kde(d, lay, grid_size=64, level="wafer", wafers=fab.wafers)
    assert kw.density.shape[0] == 3 and np.nanmax(kw.density[1]) == 0
    with pytest.warns(DataQualityWarning, match="not in 'wafers'"):
        radial_profile(fab.defects, lay, wafers=fab.wafers.iloc[:2])
    with pytest.raises(SchemaError, match="'wafer_id'"):
        radial_profile(d, lay, wafers=fab.wafers[["lot_id"]])


def test_bin_frequency_missing_bins(fab):
    """A nullable soft bin with missing values counts them as the bin "missing" (no crash).

    Reference: pandas value counts per die position with dropna=False.
    """
    final = yk.final_results(fab.dies)
    sbin = pd.array(final["hbin"].to_numpy(), dtype="Int32")
    sbin[::7] = pd.NA
    d = final.assign(sbin=sbin)
    f = bin_frequency(d, bin_col="sbin")
    assert "missing" in set(f["sbin"])
    ref = (d.assign(sbin=d["sbin"].astype(object).where(d["sbin"].notna(), "missing"))
           .groupby(["die_x", "die_y", "sbin"]).size().rename("ref").reset_index())
    m = f.merge(ref, on=["die_x", "die_y", "sbin"], how="left")
    np.testing.assert_array_equal(m["n"], m["ref"].fillna(0))
    assert m["ref"].sum() == len(d)
    np.testing.assert_allclose(f.groupby(["die_x", "die_y"])["frequency"].sum(), 1.0)
