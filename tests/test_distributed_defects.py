"""The defect analyses on Dask equal the in-memory ones, on several wafer-aligned partitionings.

Reference: the in-memory functions on the same rows (the partitions concatenated in order):
counts exactly, estimates exactly (the Dask path runs the in-memory estimators on the same
sufficient statistics), tables with the same columns, dtypes and row order.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import optimize, stats

import yieldkit as yk
from yieldkit.errors import DataQualityWarning, SchemaError, YieldkitTypeError, YieldkitValueError
from yieldkit.models import CountHistogram, NegativeBinomialYield, compare_models

dd = pytest.importorskip("dask.dataframe")
from yieldkit.distributed import (  # noqa: E402
    compare_models_dask,
    count_histogram_dask,
    defects_per_wafer_dask,
    kill_ratio_dask,
    pareto_dask,
)

SYNC = "synchronous"
AREA = 0.3


def wafer_aligned(dies: pd.DataFrame, defects: pd.DataFrame, k: int, *, interleave: bool = False):
    """Split the wafers of ``dies`` into ``k`` groups and return a wafer-aligned Dask pair.

    Contiguous blocks of wafers (in die-table order), or every k-th wafer with ``interleave``;
    defects of wafers without dies go to the first partition.
    """
    key = ["lot_id", "wafer_id"]
    wafers = dies[key].drop_duplicates().reset_index(drop=True)
    n = len(wafers)
    part = (np.arange(n) % k) if interleave else (np.arange(n) * k // n)
    wafers = wafers.assign(_part=part)

    def label(t: pd.DataFrame) -> np.ndarray:
        m = t[key].merge(wafers, on=key, how="left")["_part"]
        return m.fillna(0).to_numpy(np.int64)

    d_part, f_part = label(dies), label(defects)
    d_frames = [dies[d_part == i].reset_index(drop=True) for i in range(k)]
    f_frames = [defects[f_part == i].reset_index(drop=True) for i in range(k)]
    ddies = dd.from_map(_partition, d_frames, meta=dies.iloc[:0], enforce_metadata=False)
    ddefects = dd.from_map(_partition, f_frames, meta=defects.iloc[:0], enforce_metadata=False)
    return ddies, ddefects


def _partition(frame: pd.DataFrame) -> pd.DataFrame:
    return frame


@pytest.fixture(scope="module")
def fab():
    """About 10^5 dies with retests, defects off the die grid, on untested dies and on a wafer
    without dies, and several wafers without any defect."""
    f = yk.simulate_fab(n_lots=4, wafers_per_lot=25, d0=0.667, retest_rate=0.02, random_state=20261203)
    dies, defects = f.dies, f.defects.copy()
    rng = np.random.default_rng(7)
    # untested dies: drop some dies from the die table (their defects are "on untested dies")
    drop = rng.random(len(dies)) < 0.01
    dies = dies[~drop].reset_index(drop=True)
    # off the die grid (no die position) and outside the grid
    defects = defects.astype({"die_x": "Int32", "die_y": "Int32"})
    defects.loc[defects.index[::97], ["die_x", "die_y"]] = pd.NA
    defects.loc[defects.index[5::211], "die_x"] = 999
    # no defects at all on the wafers of lot 3
    lots = defects["lot_id"].unique()
    defects = defects[defects["lot_id"] != lots[2]]
    # a wafer that has defects but no dies
    ghost = defects.iloc[:7].assign(wafer_id="99")
    defects = pd.concat([defects, ghost], ignore_index=True)
    defects["defect_id"] = np.arange(1, len(defects) + 1)
    return dies, defects


PARTITIONINGS = [(1, False), (3, False), (6, True), (16, False)]


@pytest.fixture(scope="module", params=PARTITIONINGS, ids=lambda p: f"k{p[0]}{'i' if p[1] else ''}")
def pair(request, fab):
    dies, defects = fab
    k, inter = request.param
    d, f = wafer_aligned(dies, defects, k, interleave=inter)
    # the in-memory reference: the same rows in partition order
    return d, f, d.compute(scheduler=SYNC).reset_index(drop=True), f.compute(scheduler=SYNC).reset_index(drop=True)


def _quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataQualityWarning)
        return fn(*args, **kwargs)


# ------------------------------------------------------------------------- counts and models
def test_count_histogram_equals_die_defect_counts(pair):
    d, f, dies, defects = pair
    want = _quiet(yk.die_defect_counts, dies, defects)
    with pytest.warns(DataQualityWarning, match="fall on no inspected die"):
        got = count_histogram_dask(d, f, scheduler=SYNC)
    ref = CountHistogram.from_counts(want)
    pd.testing.assert_frame_equal(got.table, ref.table)
    assert got.n_off_die == want.n_off_die > 0
    assert got.off_die == want.off_die
    assert ("L0001", "99") in got.off_die or any(w == "99" for _, w in got.off_die)
    assert got.n_dies == len(want.table)
    # the pooled histogram is the histogram of the per-die counts
    pooled = got.pooled()
    np.testing.assert_array_equal(pooled["n_dies"], np.bincount(want.table["n_defects"])[pooled["n_defects"]])


def test_partitions_without_defects(fab):
    """Partitions whose defect partition is empty count zero-defect dies."""
    dies, defects = fab
    d, f = wafer_aligned(dies, defects, 8)
    sizes = f.map_partitions(len).compute(scheduler=SYNC)
    assert (sizes == 0).any()
    got = _quiet(count_histogram_dask, d, f, scheduler=SYNC)
    want = _quiet(yk.die_defect_counts, d.compute(scheduler=SYNC), f.compute(scheduler=SYNC))
    pd.testing.assert_frame_equal(got.table, CountHistogram.from_counts(want).table)


def test_empty_partitions():
    """Partitions with neither dies nor defects, and one with only the defects of a wafer without dies."""
    f = yk.simulate_fab(n_lots=1, wafers_per_lot=6, d0=0.667, random_state=2)
    dies, defects = f.dies, f.defects
    d, ff = wafer_aligned(dies, defects, 9)  # 9 partitions for 6 wafers: some empty
    ghost = defects.iloc[:5].assign(wafer_id="99")
    d = dd.from_map(_partition, [p.compute(scheduler=SYNC) for p in d.partitions] + [dies.iloc[:0]],
                    meta=dies.iloc[:0], enforce_metadata=False)
    ff = dd.from_map(_partition, [p.compute(scheduler=SYNC) for p in ff.partitions] + [ghost],
                     meta=defects.iloc[:0], enforce_metadata=False)
    assert 0 in d.map_partitions(len).compute(scheduler=SYNC).tolist()
    D, F = d.compute(scheduler=SYNC).reset_index(drop=True), ff.compute(scheduler=SYNC).reset_index(drop=True)
    want = _quiet(yk.die_defect_counts, D, F)
    got = _quiet(count_histogram_dask, d, ff, scheduler=SYNC)
    pd.testing.assert_frame_equal(got.table, CountHistogram.from_counts(want).table)
    assert got.n_off_die == want.n_off_die == 5
    _assert_kill_ratio_equal(kill_ratio_dask(d, ff, scheduler=SYNC), yk.kill_ratio(D, F))
    pd.testing.assert_frame_equal(_quiet(pareto_dask, ff, dies=d, weight="kill", group="lot_id", scheduler=SYNC),
                                  _quiet(yk.pareto, F, dies=D, weight="kill", group="lot_id"))
    assert defects_per_wafer_dask(ff, scheduler=SYNC)["n_defects"].sum() == len(F)


def test_compare_models_dask_equals_in_memory(pair):
    d, f, dies, defects = pair
    counts = _quiet(yk.die_defect_counts, dies, defects).table
    want = compare_models(counts, area=AREA, conf_level=0.9)
    got = _quiet(compare_models_dask, d, f, area=AREA, conf_level=0.9, scheduler=SYNC)
    pd.testing.assert_frame_equal(got.table, want.table, check_exact=True)
    assert list(got.models) == list(want.models)
    for name, m in want.models.items():
        pd.testing.assert_frame_equal(got.models[name].summary(), m.summary(), check_exact=True)


@pytest.mark.parametrize("pooling", ["die", "wafer", "lot"])
def test_histogram_route_is_byte_identical_in_memory(fab, pooling):
    """Fitting from the histogram gives the very estimates of the per-die route (every model)."""
    dies, defects = fab
    c = _quiet(yk.die_defect_counts, dies, defects)
    hist = CountHistogram.from_counts(c)
    a = compare_models(c.table, area=AREA, pooling=pooling)
    b = compare_models(hist, area=AREA, pooling=pooling)
    pd.testing.assert_frame_equal(a.table, b.table, check_exact=True)
    for name, m in a.models.items():
        assert m.params_.equals(b.models[name].params_)
        pd.testing.assert_frame_equal(m.summary(), b.models[name].summary(), check_exact=True)
        assert (m.n_obs_, m.n_units_, m.n_groups_) == (b.models[name].n_obs_, b.models[name].n_units_,
                                                       b.models[name].n_groups_)


def test_histogram_route_bootstrap_resamples_the_same_wafers(fab):
    dies, defects = fab
    c = _quiet(yk.die_defect_counts, dies, defects)
    kw = {"ci_method": "bootstrap", "n_boot": 20, "random_state": 3}
    a = NegativeBinomialYield(**kw).fit(c.table, area=AREA)
    b = NegativeBinomialYield(**kw).fit(CountHistogram.from_counts(c), area=AREA)
    pd.testing.assert_frame_equal(a.summary(), b.summary(), check_exact=True)


def test_histogram_fit_matches_scipy_nbinom_mle(fab):
    """Reference: scipy.stats.nbinom log-likelihood maximised by scipy.optimize (Nelder-Mead,
    tight tolerances) on the same per-die counts; NB2 with mean d0 * area and shape
    cluster_alpha is nbinom(n=cluster_alpha, p=cluster_alpha / (cluster_alpha + d0 * area))."""
    dies, defects = fab
    k = _quiet(yk.die_defect_counts, dies, defects).table["n_defects"].to_numpy()
    kk, w = np.unique(k, return_counts=True)

    def nll(u):
        mu, a = np.exp(u[0]) * AREA, np.exp(u[1])
        return -float((w * stats.nbinom.logpmf(kk, a, a / (a + mu))).sum())

    r = optimize.minimize(nll, [np.log(k.mean() / AREA), 0.0], method="Nelder-Mead",
                          options={"xatol": 1e-10, "fatol": 1e-12, "maxiter": 5000})
    hist = _quiet(count_histogram_dask, *wafer_aligned(dies, defects, 5), scheduler=SYNC)
    m = NegativeBinomialYield().fit(hist, area=AREA)
    assert m.d0_ == pytest.approx(np.exp(r.x[0]), rel=1e-6)
    assert m.cluster_alpha_ == pytest.approx(np.exp(r.x[1]), rel=1e-5)
    assert m.loglik_ == pytest.approx(-r.fun, rel=1e-12, abs=1e-7)
    per_die = NegativeBinomialYield().fit(k, area=AREA)
    assert (m.d0_, m.cluster_alpha_) == (per_die.d0_, per_die.cluster_alpha_)


def test_histogram_route_rejects_die_masks(fab):
    dies, defects = fab
    hist = CountHistogram.from_counts(_quiet(yk.die_defect_counts, dies, defects))
    with pytest.raises(YieldkitValueError, match="CountHistogram"):
        NegativeBinomialYield().fit(hist, area=AREA, exclude=np.zeros(hist.n_dies, bool))
    with pytest.raises(YieldkitValueError, match="one die area"):
        NegativeBinomialYield().fit(hist, area=np.full(hist.n_dies, AREA))


def test_count_histogram_with_a_layout(fab):
    """With a layout as the inspected dies, as die_defect_counts(layout, defects)."""
    _, defects = fab
    lay = yk.WaferLayout(diameter_mm=200, die_pitch_um=(6000, 5000), edge_exclusion_mm=3)
    f = defects[defects["die_x"].notna()]
    _, ff = wafer_aligned(defects[["lot_id", "wafer_id"]].drop_duplicates(), f, 4)
    want = _quiet(yk.die_defect_counts, lay, ff.compute(scheduler=SYNC))
    got = _quiet(count_histogram_dask, lay, ff, scheduler=SYNC)
    pd.testing.assert_frame_equal(got.table, CountHistogram.from_counts(want).table)
    assert got.n_off_die == want.n_off_die


# ---------------------------------------------------------------------------------- kill ratio
def _assert_kill_ratio_equal(got: yk.KillRatioResult, want: yk.KillRatioResult) -> None:
    pd.testing.assert_frame_equal(got.table, want.table, check_exact=True)
    assert (got.tested_dies, got.defects_off_die, got.defects_on_untested_dies) == (
        want.tested_dies, want.defects_off_die, want.defects_on_untested_dies)
    np.testing.assert_array_equal([got.y_clean_joint, *got.y_clean_joint_ci],
                                  [want.y_clean_joint, *want.y_clean_joint_ci])


def test_kill_ratio_dask_equals_in_memory(pair):
    d, f, dies, defects = pair
    want = yk.kill_ratio(dies, defects, conf_level=0.9)
    got = kill_ratio_dask(d, f, conf_level=0.9, scheduler=SYNC)
    _assert_kill_ratio_equal(got, want)
    assert want.defects_off_die > 0 and want.defects_on_untested_dies > 0


@pytest.mark.parametrize("kw", [{"method": "contingency", "interval": "clopper-pearson"},
                                {"method": "joint", "by": "layer", "capture_rate": 0.8}])
def test_kill_ratio_dask_options(fab, kw):
    dies, defects = fab
    d, f = wafer_aligned(dies, defects, 6, interleave=True)
    want = yk.kill_ratio(d.compute(scheduler=SYNC), f.compute(scheduler=SYNC), **kw)
    _assert_kill_ratio_equal(kill_ratio_dask(d, f, scheduler=SYNC, **kw), want)


def test_kill_ratio_from_patterns_equals_the_per_die_matrix(fab):
    """The in-memory kill ratio (from the pattern table) against joint_kill_ratio on the dense
    per-die count matrix: the same joint estimates; the limited yield to rounding."""
    from yieldkit.killratio import die_defects, joint_kill_ratio

    dies, defects = fab
    res = yk.kill_ratio(dies, defects)
    dd_ = die_defects(dies, defects)
    counts = dd_.counts()
    j = joint_kill_ratio(counts, dd_.passed)
    t = res.table.set_index("category").loc[list(dd_.categories)]
    np.testing.assert_array_equal(t["kill_prob"].to_numpy(), j["kill_prob"])
    np.testing.assert_array_equal(t["kill_prob_ci_upper"].to_numpy(), j["ci_upper"])
    assert res.y_clean_joint == j["y_clean"]
    np.testing.assert_allclose(t["joint_limited_yield"].to_numpy(),
                               np.mean(np.power(1.0 - j["kill_prob"][None, :], counts), axis=0), rtol=1e-12)


# -------------------------------------------------------------------------------------- Pareto
@pytest.mark.parametrize("kw", [
    {},
    {"weight": "kill", "top": 3},
    {"weight": "density", "die_area_cm2": AREA, "group": "lot_id"},
    {"weight": "kill", "group": ["lot_id", "layer"], "top": 2},
    {"by": "size_bin", "group": "layer"},
])
def test_pareto_dask_equals_in_memory(pair, kw):
    d, f, dies, defects = pair
    with_dies = "weight" in kw
    want = _quiet(yk.pareto, defects, dies=dies if with_dies else None, **kw)
    got = _quiet(pareto_dask, f, dies=d if with_dies else None, scheduler=SYNC, **kw)
    pd.testing.assert_frame_equal(got, want, check_exact=True)


def test_pareto_dask_warns_like_in_memory(fab):
    dies, defects = fab
    d, f = wafer_aligned(dies, defects, 3)
    with warnings.catch_warnings(record=True) as w_mem:
        warnings.simplefilter("always")
        yk.pareto(f.compute(scheduler=SYNC), dies=d.compute(scheduler=SYNC), weight="kill", group="wafer_id")
    with warnings.catch_warnings(record=True) as w_dask:
        warnings.simplefilter("always")
        pareto_dask(f, dies=d, weight="kill", group="wafer_id", scheduler=SYNC)
    assert sorted(str(x.message) for x in w_dask) == sorted(str(x.message) for x in w_mem)


# ------------------------------------------------------------------------------ per wafer
def test_defects_per_wafer_dask(pair):
    _, f, _, defects = pair
    got = defects_per_wafer_dask(f, scheduler=SYNC)
    want = defects.groupby(["lot_id", "wafer_id"], sort=False).size().rename("n_defects").reset_index()
    want = want.astype({"lot_id": yk.schema.STRING, "wafer_id": yk.schema.STRING, "n_defects": np.int64})
    pd.testing.assert_frame_equal(got, want)


# --------------------------------------------------------------------------- input contract
def test_pairs_must_have_the_same_partitions(fab):
    dies, defects = fab
    d, f = wafer_aligned(dies, defects, 3)
    _, f4 = wafer_aligned(dies, defects, 4)
    for fn in (count_histogram_dask, kill_ratio_dask):
        with pytest.raises(YieldkitValueError, match="3 die partitions and 4 defect partitions.*align_wafers"):
            fn(d, f4, scheduler=SYNC)
    with pytest.raises(YieldkitValueError, match="same partitions"):
        pareto_dask(f4, dies=d, weight="kill", scheduler=SYNC)
    with pytest.raises(YieldkitValueError, match="same partitions"):
        compare_models_dask(d, f4, area=AREA, scheduler=SYNC)


def test_wafers_not_aligned_are_refused(fab):
    dies, defects = fab
    d, f = wafer_aligned(dies, defects, 3)
    split = dd.from_pandas(dies, npartitions=3, sort=False)  # row blocks: wafers span partitions
    with pytest.raises(YieldkitValueError, match="spans partitions"):
        kill_ratio_dask(split, f, scheduler=SYNC)
    shifted = dd.from_map(lambda i: f.partitions[(i + 1) % 3].compute(scheduler=SYNC), range(3),
                          meta=defects.iloc[:0], enforce_metadata=False)
    with pytest.raises(YieldkitValueError, match="defects of wafer .* are in partition"):
        _quiet(count_histogram_dask, d, shifted, scheduler=SYNC)


def test_bad_inputs(fab):
    dies, defects = fab
    with pytest.raises(YieldkitTypeError, match="must be a Dask DataFrame"):
        kill_ratio_dask([1, 2], defects)
    with pytest.raises(YieldkitValueError, match="needs the die table"):
        pareto_dask(dd.from_pandas(defects, npartitions=2), weight="kill")
    with pytest.raises(SchemaError, match="not in the table"):
        pareto_dask(dd.from_pandas(defects, npartitions=2), group="tool")
    with pytest.raises(YieldkitValueError, match="method"):
        kill_ratio_dask(dies, defects, method="median")
    # pandas frames are one partition each
    got = kill_ratio_dask(dies, defects, scheduler=SYNC)
    _assert_kill_ratio_equal(got, yk.kill_ratio(dies, defects))


def test_on_a_distributed_cluster(fab):
    """The active dask.distributed client runs the tasks."""
    distributed = pytest.importorskip("distributed")
    dies, defects = fab
    d, f = wafer_aligned(dies, defects, 4)
    with distributed.LocalCluster(n_workers=2, processes=False, threads_per_worker=1, dashboard_address=None) as cl, \
            distributed.Client(cl):
        kr = kill_ratio_dask(d, f)
        comp = _quiet(compare_models_dask, d, f, area=AREA, models=["poisson", "nb"])
    _assert_kill_ratio_equal(kr, yk.kill_ratio(dies, defects))
    want = compare_models(_quiet(yk.die_defect_counts, dies, defects).table, area=AREA, models=["poisson", "nb"])
    pd.testing.assert_frame_equal(comp.table, want.table, check_exact=True)


def test_unique_rows_matches_numpy(rng):
    """The pattern table's row keys give numpy's ``unique(axis=0)`` (order and inverse), also
    when the keys would overflow (then numpy's own)."""
    from yieldkit.killratio import _unique_rows

    for m in (rng.poisson(0.4, size=(2000, 6)), rng.poisson(2.0, size=(500, 1)),
              np.array([[2**40, 0, 2**30], [1, 2, 3], [2**40, 0, 2**30]])):
        m = m.astype(np.int64)
        u, inv = _unique_rows(m)
        u2, inv2 = np.unique(m, axis=0, return_inverse=True)
        np.testing.assert_array_equal(u, u2)
        np.testing.assert_array_equal(inv, inv2.ravel())


def test_histogram_of_a_split_table_is_refused(fab):
    dies, defects = fab
    split = _quiet(yk.die_defect_counts, dies, defects, by="defect_class").table
    with pytest.raises(SchemaError, match="several rows for one die"):
        CountHistogram.from_counts(split)


def test_dispersion_tests_take_a_histogram(fab):
    """The count-based tests read the same cells from a histogram as from the per-die table."""
    from yieldkit.models import cameron_trivedi_test, count_goodness_of_fit, dispersion_index_test

    dies, defects = fab
    table = _quiet(yk.die_defect_counts, dies, defects).table
    hist = CountHistogram.from_counts(table)
    assert dispersion_index_test(hist) == dispersion_index_test(table)
    assert cameron_trivedi_test(hist) == cameron_trivedi_test(table)
    m = NegativeBinomialYield().fit(hist, area=AREA)
    pd.testing.assert_frame_equal(count_goodness_of_fit(m, hist).table, count_goodness_of_fit(m, table).table)
