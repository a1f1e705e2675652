"""Tests of yieldkit.spatial: adjacency, join counts, Moran's I, log odds, runs, DBSCAN clusters."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from statsmodels.sandbox.stats.runs import runstest_1samp

import yieldkit as yk
from yieldkit.errors import SchemaError, YieldkitValueError
from yieldkit.spatial import (
    adjacency_matrix,
    cluster_summary,
    clustering_stats,
    detect_clusters,
    grid_edges,
    join_count_moments,
    morans_i_moments,
)


def _dense_w(x, y, queen=False):
    """Reference adjacency: O(n^2) pairwise Chebyshev/Manhattan distance."""
    dx = np.abs(x[:, None] - x[None, :])
    dy = np.abs(y[:, None] - y[None, :])
    w = (dx + dy == 1) | (queen & (dx == 1) & (dy == 1))
    return w.astype(float)


def _grid(nx, ny):
    xx, yy = np.meshgrid(np.arange(nx), np.arange(ny))
    return xx.ravel(), yy.ravel()


@pytest.mark.parametrize(("nx", "ny", "queen", "n1"), [(3, 3, False, 3), (4, 3, True, 4), (4, 4, False, 5)])
def test_join_count_moments_full_enumeration(nx, ny, queen, n1):
    """Reference: exact mean and variance over every placement of n1 black dies (full enumeration)."""
    x, y = _grid(nx, ny)
    n = len(x)
    w = _dense_w(x, y, queen)
    iu = np.triu_indices(n, 1)
    edges = w[iu] > 0
    ei, ej = iu[0][edges], iu[1][edges]
    combos = np.array(list(itertools.combinations(range(n), n1)))
    b = np.zeros((len(combos), n), bool)
    b[np.arange(len(combos))[:, None], combos] = True
    bb = (b[:, ei] & b[:, ej]).sum(1)
    bw = (b[:, ei] != b[:, ej]).sum(1)
    ww = len(ei) - bb - bw
    deg = w.sum(1)
    m = join_count_moments(n, n1, w.sum(), 2 * w.sum(), 4 * (deg**2).sum())
    for name, v in (("bb", bb), ("bw", bw), ("ww", ww)):
        assert m[f"e_{name}"] == pytest.approx(v.mean(), rel=1e-12)
        assert m[f"var_{name}"] == pytest.approx(v.var(), rel=1e-10)


def test_morans_i_moments_full_permutation():
    """Reference: mean and variance of I over all 9! permutations of the values (randomisation)."""
    x, y = _grid(3, 3)
    w = _dense_w(x, y)
    vals = np.array([0.0, 0, 0, 1, 1, 2, 3, 5, 0])
    perms = vals[np.array(list(itertools.permutations(range(9))))]
    z = perms - perms.mean(1, keepdims=True)
    i_all = 9 / w.sum() * np.einsum("pi,ij,pj->p", z, w, z) / (z**2).sum(1)
    zz = vals - vals.mean()
    b2 = 9 * (zz**4).sum() / ((zz**2).sum()) ** 2
    s0 = w.sum()
    e, var = morans_i_moments(9, s0, 2 * s0, 4 * (w.sum(1) ** 2).sum(), b2)
    assert e == pytest.approx(i_all.mean(), rel=1e-9)
    assert var == pytest.approx(i_all.var(), rel=1e-9)


@pytest.fixture(scope="module")
def fab():
    return yk.simulate_fab(n_lots=1, wafers_per_lot=5, random_state=21, signatures={0: "edge-ring", 1: "scratch", 2: "center"})


def test_clustering_stats_against_direct_formulas(fab):
    """Reference: dense O(n^2) weights per wafer for Moran's I and join counts; statsmodels runs test."""
    counts = yk.die_defect_counts(fab.dies, fab.defects.dropna(subset=["die_x"])).table
    for queen in (False, True):
        res = clustering_stats(fab.dies, contiguity="queen" if queen else "rook")
        res_c = clustering_stats(counts, value_col="n_defects", contiguity="queen" if queen else "rook")
        final = yk.final_results(fab.dies)
        for k, (wid, g) in enumerate(final.groupby("wafer_id", sort=True)):
            x, y = g.die_x.to_numpy(), g.die_y.to_numpy()
            w = _dense_w(x, y, queen)
            b = ~g.passed.to_numpy()
            row = res.iloc[k]
            assert row.wafer_id == wid
            assert row.bb == (w * np.outer(b, b)).sum() / 2
            assert row.bw == (w * np.not_equal.outer(b, b)).sum() / 2
            z = b - b.mean()
            i_ref = len(b) / w.sum() * z @ w @ z / (z @ z)
            assert row.morans_i == pytest.approx(i_ref, rel=1e-12)
            cg = counts[counts.wafer_id == wid]
            v = cg.n_defects.to_numpy(float)
            wc = _dense_w(cg.die_x.to_numpy(), cg.die_y.to_numpy(), queen)
            zc = v - v.mean()
            assert res_c.iloc[k].morans_i == pytest.approx(len(v) / wc.sum() * zc @ wc @ zc / (zc @ zc), rel=1e-12)
            # runs in serpentine order
            order = np.lexsort((np.where(y % 2 == 0, x, -x), y))
            zr, _ = runstest_1samp(b[order].astype(float), cutoff=0.5, correction=False)
            assert row.z_runs == pytest.approx(zr, rel=1e-9)
            # log odds ratio from the pair table
            bb, bw, ww = row.bb, row.bw, row.ww
            assert row.log_odds == pytest.approx(np.log(bb * ww / (bw / 2) ** 2), rel=1e-12)


def test_adjacency_matrix_matches_dense(fab):
    final = yk.final_results(fab.dies)
    g = final[final.wafer_id == "02"]
    a = adjacency_matrix(np.zeros(len(g), int), g.die_x.to_numpy(), g.die_y.to_numpy(), contiguity="queen")
    np.testing.assert_array_equal(a.toarray(), _dense_w(g.die_x.to_numpy(), g.die_y.to_numpy(), True))
    i, j = grid_edges(np.array([0, 1]), np.array([0, 1]), np.array([0, 0]))
    assert len(i) == 0  # dies of different wafers are never neighbours


@pytest.mark.parametrize("contiguity", ["rook", "queen"])
def test_grid_neighbours_match_the_edges_in_any_row_order(fab, rng, contiguity):
    """Reference: grid_edges (hash look-ups). The neighbour table lists every pair once in its forward
    columns and once backwards, by binary search in serpentine order and by look-up in any other order."""
    from yieldkit.spatial.adjacency import grid_neighbours, serpentine_order

    final = yk.final_results(fab.dies)
    w = pd.factorize(final["wafer_id"])[0]
    x, y = final["die_x"].to_numpy(), final["die_y"].to_numpy()
    i, j = grid_edges(w, x, y, contiguity=contiguity)
    expected = {(min(a, b), max(a, b)) for a, b in zip(i.tolist(), j.tolist(), strict=True)}
    for order in (serpentine_order(w, x, y), rng.permutation(len(w))):
        t = grid_neighbours(w[order], x[order], y[order], contiguity=contiguity)
        half = t.shape[1] // 2
        r, c = np.nonzero(t[:, :half] >= 0)
        pairs = {(min(a, b), max(a, b)) for a, b in zip(order[r].tolist(), order[t[r, c]].tolist(), strict=True)}
        assert pairs == expected and len(r) == len(expected)
        rb, cb = np.nonzero(t[:, half:] >= 0)
        np.testing.assert_array_equal(np.sort(t[rb, half + cb]), np.sort(r))  # the backward columns mirror them


def test_clustering_flags_signatures_and_nominal_rate():
    """Seeded simulation with known truth, >= 200 wafers: signatures flagged, random wafers near the nominal 5%."""
    sig = {k: ("edge-ring", "center", "scratch")[k % 3] for k in range(60)}
    fab = yk.simulate_fab(n_lots=10, wafers_per_lot=25, random_state=99, signatures=sig)
    res = clustering_stats(fab.dies, permutations=99)
    truth = fab.truth["wafers"]["signature"].to_numpy()
    m = res.merge(fab.truth["wafers"], on=["lot_id", "wafer_id"])
    for s in ("edge-ring", "center", "scratch"):
        assert m.loc[m.signature == s, "clustered"].mean() >= (0.7 if s == "scratch" else 0.9), s
        assert (m.loc[m.signature == s, "p_i"] < 0.05).mean() >= (0.7 if s == "scratch" else 0.9), s
    none = m.loc[m.signature == "none", "clustered"]
    assert len(none) >= 180
    assert none.sum() <= stats.binom.ppf(0.99, len(none), 0.05)
    assert (truth == "none").sum() == len(none)


def test_permutation_flags_calibrated_with_few_fails():
    """Calibration: 250 random wafers with ~3 % fails, where the normal approximation over-rejects.

    Every permutation flag at the nominal 5 % stays within the binomial 99 % upper bound; the
    power on signature wafers of the same fab stays 1.
    """
    sig = {k: ("edge-ring", "center", "scratch")[k // 6 % 3] for k in range(0, 300, 6)}
    fab = yk.simulate_fab(n_lots=12, wafers_per_lot=25, random_state=5, d0=0.05, y0=0.995, signatures=sig)
    res = clustering_stats(fab.dies, permutations=99, random_state=np.random.default_rng(8))
    assert res.attrs == {}  # the table is the whole result
    m = res.merge(fab.truth["wafers"], on=["lot_id", "wafer_id"])
    none = m[m.signature == "none"]
    assert len(none) >= 200
    bound = stats.binom.ppf(0.99, len(none), 0.05)
    for col in ("p_bb", "p_bw", "p_i", "p_log_odds", "p_runs"):
        assert (none[col] < 0.05).sum() <= bound, col
        assert none[col].min() >= 1 / 100  # (1 + hits) / (1 + R)
    for s in ("edge-ring", "center", "scratch"):
        assert (m.loc[m.signature == s, ["p_bw", "p_i", "p_log_odds"]] < 0.05).to_numpy().mean() >= 0.9, s


def test_permutation_p_value_matches_exact_enumeration():
    """Reference: the exact randomisation p-values of BB, BW, Moran's I and runs over all C(16, 4)
    placements of 4 fails on a 4 x 4 grid; the permutation p-value agrees within 4 Monte Carlo SEs."""
    x, y = _grid(4, 4)
    b = np.zeros(16, bool)
    b[[0, 1, 4, 10]] = True
    d = pd.DataFrame({"lot_id": "L", "wafer_id": "1", "die_x": x, "die_y": y, "passed": ~b})
    r = 4000
    res = clustering_stats(d, permutations=r, random_state=3).iloc[0]
    w = _dense_w(x, y)
    iu = np.triu_indices(16, 1)
    ei, ej = iu[0][w[iu] > 0], iu[1][w[iu] > 0]
    combos = np.array(list(itertools.combinations(range(16), 4)))
    bs = np.zeros((len(combos), 16), bool)
    bs[np.arange(len(combos))[:, None], combos] = True
    bb = (bs[:, ei] & bs[:, ej]).sum(1)
    bw = (bs[:, ei] != bs[:, ej]).sum(1)
    order = np.lexsort((np.where(y % 2 == 0, x, -x), y))
    runs = 1 + (bs[:, order][:, 1:] != bs[:, order][:, :-1]).sum(1)
    obs = {"bb": res.bb, "bw": res.bw, "runs": res.runs}
    exact = {"p_bb": (bb >= obs["bb"]).mean(), "p_bw": (bw <= obs["bw"]).mean(), "p_runs": (runs <= obs["runs"]).mean()}
    for col, p in exact.items():
        assert 0 < p < 0.5
        assert res[col] == pytest.approx(p, abs=4 * np.sqrt(p * (1 - p) / r) + 1 / r), col


def test_permutation_count_map_and_normal_fallback(fab):
    """Count maps are permuted as values; permutations=0 gives the normal approximation of the z scores."""
    counts = yk.die_defect_counts(fab.dies, fab.defects.dropna(subset=["die_x"])).table
    res = clustering_stats(counts, value_col="n_defects", permutations=199, random_state=1)
    again = clustering_stats(counts, value_col="n_defects", permutations=199, random_state=1)
    pd.testing.assert_frame_equal(res, again)
    assert ((res["p_i"] >= 1 / 200) & (res["p_i"] <= 1)).all()
    normal = clustering_stats(counts, value_col="n_defects", permutations=0)
    np.testing.assert_allclose(normal["p_i"], stats.norm.sf(normal["z_i"]))
    np.testing.assert_allclose(normal["p_bw"], stats.norm.cdf(normal["z_bw"]))
    assert normal.attrs == {}
    # the signature wafers are the most significant under both
    assert set(res.nsmallest(2, "p_i")["wafer_id"]) == set(normal.nsmallest(2, "p_i")["wafer_id"])


def test_permutation_p_values_identical_on_any_split_of_the_wafers(fab, rng):
    """Each wafer's permutations come from its own stream (seed and wafer key): the rows of any split of
    the wafers, in any row order, are exactly the rows of the whole table (fail and count maps)."""
    counts = yk.die_defect_counts(fab.dies, fab.defects.dropna(subset=["die_x"])).table
    key = ["lot_id", "wafer_id"]
    for table, kw in ((fab.dies, {}), (counts, {"value_col": "n_defects"})):
        whole = clustering_stats(table, permutations=99, random_state=11, **kw).set_index(key)
        ids = table["wafer_id"].to_numpy()
        for parts in ((["01", "04"], ["02", "03", "05"]), (["05"], ["01", "02", "03", "04"])):
            rows = []
            for part in parts:
                sub = table[np.isin(ids, part)]
                sub = sub.iloc[rng.permutation(len(sub))].reset_index(drop=True)
                rows.append(clustering_stats(sub, permutations=99, random_state=11, **kw))
            split = pd.concat(rows, ignore_index=True).set_index(key).loc[whole.index]
            pd.testing.assert_frame_equal(split, whole, check_exact=True, check_index_type=False)
        other = clustering_stats(table, permutations=99, random_state=12, **kw).set_index(key)
        assert not np.array_equal(other["p_i"].to_numpy(), whole["p_i"].to_numpy())


def test_permutation_p_values_uniform_on_random_maps_and_small_on_a_cluster(rng):
    """Validity: on 400 random 20 x 20 maps (20 % fails) the permutation p-values are close to uniform
    (P(p <= a) within 4 binomial SEs of a, never above a beyond the Monte Carlo error); a solid block of
    fails gets the smallest possible p, 1 / (1 + R)."""
    x, y = _grid(20, 20)
    n_maps, r = 400, 99
    fails = rng.random((n_maps + 1, len(x))) < 0.2
    fails[-1] = (x < 9) & (y < 9)  # one strong cluster: a 9 x 9 block
    d = pd.DataFrame({"lot_id": "L", "wafer_id": np.repeat([f"{i:03d}" for i in range(n_maps + 1)], len(x)),
                      "die_x": np.tile(x, n_maps + 1), "die_y": np.tile(y, n_maps + 1), "passed": ~fails.ravel()})
    res = clustering_stats(d, permutations=r, random_state=5)
    random_maps, block = res.iloc[:-1], res.iloc[-1]
    for col in ("p_bb", "p_bw", "p_i", "p_log_odds", "p_runs"):
        p = random_maps[col].to_numpy()
        for a in (0.05, 0.1, 0.25, 0.5):
            se = np.sqrt(a * (1 - a) / n_maps)
            assert abs((p <= a).mean() - a) <= 4 * se, (col, a)
        assert block[col] == pytest.approx(1 / (1 + r)), col
    assert stats.kstest(random_maps["p_bw"], "uniform").pvalue > 0.001


def test_clustering_stats_errors(fab):
    with pytest.raises(SchemaError, match="passed"):
        clustering_stats(fab.dies.drop(columns="passed"))
    with pytest.raises(YieldkitValueError, match="'contiguity'"):
        clustering_stats(fab.dies, contiguity="bishop")
    with pytest.raises(YieldkitValueError, match="'significance'"):
        clustering_stats(fab.dies, significance=0)
    with pytest.raises(YieldkitValueError, match="'permutations'"):
        clustering_stats(fab.dies, permutations=-1)


def test_detect_clusters_against_truth():
    """Seeded simulation with known truth: clustered defects (truth cluster_id >= 0) are recovered."""
    sig = {k: ("scratch", "loc")[k % 2] for k in range(0, 40, 2)}
    fab = yk.simulate_fab(n_lots=2, wafers_per_lot=20, random_state=4, signatures=sig)
    res = detect_clusters(fab.defects, fab.layout)
    lab = res.table
    t = fab.truth["defects"]["cluster_id"].to_numpy() >= 0
    c = lab["clustered"].to_numpy()
    assert (c & t).sum() / t.sum() >= 0.80  # recall
    assert (c & ~t).sum() / (~t).sum() <= 0.01  # random defects labelled clustered
    summ = cluster_summary(res)
    assert summ["n_defects"].sum() == c.sum()
    assert set(summ["shape"]) <= {"line", "blob"}
    assert (lab.loc[~lab.clustered, "cluster"] == -1).all()
    assert len(res.eps_um) == 40
    assert cluster_summary(lab).equals(summ)


def test_cluster_shapes_synthetic(rng):
    """A line of points is a 'line', a disc a 'blob', sparse background 'random'."""
    t = rng.uniform(0, 40_000, 60)
    line = np.column_stack([t - 20_000, 0.3 * t + rng.normal(0, 200, 60)])
    ang, rad = rng.uniform(0, 2 * np.pi, 60), 3000 * np.sqrt(rng.random(60))
    blob = np.column_stack([40_000 + rad * np.cos(ang), -40_000 + rad * np.sin(ang)])
    bg = rng.uniform(-90_000, 90_000, (80, 2))
    xy = np.vstack([line, blob, bg])
    d = pd.DataFrame({"lot_id": "L", "wafer_id": "1", "x_um": xy[:, 0], "y_um": xy[:, 1]})
    lab = detect_clusters(d).table
    shapes = lab["cluster_shape"].to_numpy()
    assert (shapes[:60] == "line").mean() > 0.9
    assert (shapes[60:120] == "blob").mean() > 0.9
    assert (shapes[120:] == "random").mean() > 0.9
    with pytest.raises(SchemaError, match="'x_um'"):
        detect_clusters(d.drop(columns="x_um"))
    with pytest.raises(YieldkitValueError, match="eps_um"):
        detect_clusters(d, eps_um=-1)


def test_detect_clusters_wafers_independent(rng):
    """Per-wafer labels equal running each wafer alone, on wafers of very different densities.

    A sparse wafer followed by a dense one used to reach into each other's neighbourhoods in
    the side-by-side layout (the spacing accounted for one wafer's width only), so random
    defects of different wafers formed joint clusters.
    """
    radius = 150_000.0
    frames = []
    for k, n in enumerate([3, 3000, 30, 3000, 100, 20_000, 8]):
        ang, rad = rng.uniform(0, 2 * np.pi, n), radius * np.sqrt(rng.random(n))
        xy = np.column_stack([rad * np.cos(ang), rad * np.sin(ang)])
        if k in (1, 4):  # a local blob on two wafers, so that there is something to find
            xy = np.vstack([xy, rng.normal((50_000.0, -30_000.0), 800.0, (40, 2))])
        frames.append(pd.DataFrame({"lot_id": "L", "wafer_id": f"W{k:02d}", "x_um": xy[:, 0], "y_um": xy[:, 1]}))
    res = detect_clusters(pd.concat(frames, ignore_index=True))
    lab = res.table
    assert lab.loc[lab.clustered].groupby("cluster")["wafer_id"].nunique().max() == 1
    for f in frames:
        alone_res = detect_clusters(f)
        alone = alone_res.table
        joint = lab.loc[lab["wafer_id"] == f["wafer_id"].iloc[0]]
        np.testing.assert_array_equal(joint["clustered"].to_numpy(), alone["clustered"].to_numpy())
        # the same partition into clusters, up to the numbering
        pairs = set(zip(joint["cluster"], alone["cluster"], strict=True))
        assert len(pairs) == len(set(alone["cluster"])) == len(set(joint["cluster"]))
        assert res.eps_um[("L", f["wafer_id"].iloc[0])] == alone_res.eps_um[("L", f["wafer_id"].iloc[0])]
    assert lab["clustered"].sum() >= 70


def test_log_odds_nan_on_one_colour_wafers():
    """All-pass, all-fail and single-fail wafers have no log odds (NaN, not a large value).

    BB (or WW) is 0 there whatever the pattern, so the 0.5-corrected ratio measured only the
    correction: an all-pass 30 x 30 wafer read as log odds 8.2 with z = 3.3.
    """
    x, y = _grid(30, 30)
    n = len(x)
    fails = {"pass": [], "fail": list(range(n)), "one": [435], "one_pass": [k for k in range(n) if k != 435],
             "two": [155, 775], "block": [k for k in range(n) if x[k] < 5 and y[k] < 5]}
    frames = []
    for wid, f in fails.items():
        passed = np.ones(n, bool)
        passed[f] = False
        frames.append(pd.DataFrame({"lot_id": "L", "wafer_id": wid, "die_x": x, "die_y": y, "passed": passed}))
    res = clustering_stats(pd.concat(frames, ignore_index=True), permutations=49).set_index("wafer_id")
    for wid in ("pass", "fail", "one", "one_pass"):
        assert np.isnan(res.loc[wid, ["log_odds", "log_odds_se", "p_log_odds"]].astype(float)).all(), wid
    # two interior fails far apart: defined (BB = 0, corrected) and not significant
    assert np.isfinite(res.loc["two", "log_odds"]) and res.loc["two", "p_log_odds"] > 0.5
    blk = res.loc["block"]
    assert blk.log_odds == pytest.approx(np.log(blk.bb * blk.ww / (blk.bw / 2) ** 2), rel=1e-12)
    assert blk.log_odds_se == pytest.approx(np.sqrt(1 / blk.bb + 1 / blk.ww + 4 / blk.bw), rel=1e-12)
    assert blk.p_log_odds <= 0.05
    normal = clustering_stats(pd.concat(frames, ignore_index=True), permutations=0).set_index("wafer_id")
    assert np.isnan(normal.loc["pass", "log_odds"]) and np.isfinite(normal.loc["block", "log_odds"])


def test_sequential_p_values_keep_the_flags_and_the_small_p_values(fab):
    """Besag & Clifford (1991) sequential p-values: with h = ceil(significance (1 + R)) every p-value up to
    h / (1 + R) is the full test's, a stopped one is h / l >= h / R, and ``clustered`` is unchanged (fail and
    count maps); every other column is identical."""
    counts = yk.die_defect_counts(fab.dies, fab.defects.dropna(subset=["die_x"])).table
    big = yk.simulate_fab(n_lots=2, wafers_per_lot=25, random_state=4, signatures={3: "edge-ring", 9: "center"})
    r, h = 99, 5
    for table, kw in ((big.dies, {}), (fab.dies, {}), (counts, {"value_col": "n_defects"})):
        full = clustering_stats(table, permutations=r, random_state=2, **kw)
        seq = clustering_stats(table, permutations=r, random_state=2, sequential=True, **kw)
        pd.testing.assert_series_equal(seq["clustered"], full["clustered"])
        p_cols = [c for c in full.columns if c.startswith("p_")]
        pd.testing.assert_frame_equal(seq.drop(columns=p_cols), full.drop(columns=p_cols), check_exact=True)
        for col in p_cols:
            f, s = full[col].to_numpy(), seq[col].to_numpy()
            np.testing.assert_array_equal(np.isnan(s), np.isnan(f))
            small = f <= h / (1 + r)
            np.testing.assert_array_equal(s[small], f[small])
            rest = ~small & ~np.isnan(f)
            assert (s[rest] >= h / r - 1e-12).all() and (s[rest] <= 1).all(), col
            assert (s[rest] * np.round(h / s[rest]) == pytest.approx(h)), col  # h / l with l an integer
    assert (seq["p_i"] != full["p_i"]).any()  # the rule did stop early


def test_sequential_p_values_valid_on_random_maps_and_identical_on_any_split(rng):
    """Validity: on 400 random 20 x 20 maps the sequential p-values satisfy P(p <= a) <= a within 4 binomial
    SEs (a = 0.05, 0.1, 0.25, 0.5); a solid block of fails still gets 1 / (1 + R); and each wafer's stopping
    depends on its own stream only, so any split of the wafers gives the rows of the whole table."""
    x, y = _grid(20, 20)
    n_maps, r = 400, 99
    fails = rng.random((n_maps + 1, len(x))) < 0.2
    fails[-1] = (x < 9) & (y < 9)
    ids = np.repeat([f"{i:03d}" for i in range(n_maps + 1)], len(x))
    d = pd.DataFrame({"lot_id": "L", "wafer_id": ids, "die_x": np.tile(x, n_maps + 1),
                      "die_y": np.tile(y, n_maps + 1), "passed": ~fails.ravel()})
    res = clustering_stats(d, permutations=r, random_state=5, sequential=True)
    random_maps, block = res.iloc[:-1], res.iloc[-1]
    for col in ("p_bb", "p_bw", "p_i", "p_log_odds", "p_runs"):
        p = random_maps[col].to_numpy()
        for a in (0.05, 0.1, 0.25, 0.5):
            assert (p <= a).mean() <= a + 4 * np.sqrt(a * (1 - a) / n_maps), (col, a)
        assert block[col] == pytest.approx(1 / (1 + r)), col
    part = np.isin(ids, [f"{i:03d}" for i in range(0, n_maps + 1, 3)])
    rows = [clustering_stats(d[m].iloc[::-1].reset_index(drop=True), permutations=r, random_state=5, sequential=True)
            for m in (part, ~part)]
    split = pd.concat(rows).set_index("wafer_id").loc[res["wafer_id"]]
    pd.testing.assert_frame_equal(split, res.set_index("wafer_id"), check_exact=True)
