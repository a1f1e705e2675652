"""Similar-wafer search: equality with scikit-learn's brute force, self-match, invariance, exclusions,
gallery round trip and the retrieval scores."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.neighbors import NearestNeighbors

from yieldkit.classify.similar import SimilarWafers, map_hashes, retrieval_scores
from yieldkit.errors import NotFittedError, SchemaError, YieldkitValueError


def _wafer(rng: np.random.Generator, kind: str, size: int = 26) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size]
    c = (size - 1) / 2
    r = np.hypot(yy - c, xx - c) / (size / 2)
    g = np.ones((size, size), np.uint8)
    g[rng.random(g.shape) < 0.03] = 2
    if kind == "center":
        g[r < 0.3 + 0.1 * rng.random()] = 2
    elif kind == "edge":
        g[r > 0.8 - 0.05 * rng.random()] = 2
    elif kind == "scratch":
        a = int(rng.integers(3, size - 3))
        g[np.arange(4, size - 4), np.clip(np.arange(4, size - 4) + a - size // 2, 0, size - 1)] = 2
    elif kind == "loc":
        y0, x0 = rng.integers(4, size - 10, 2)
        g[y0:y0 + 5, x0:x0 + 4] = 2
    g[r > 1.0] = 0
    return g


@pytest.fixture
def gallery(rng):
    kinds = ["center", "edge", "scratch", "loc", "none"]
    grids = [_wafer(rng, kinds[i % 5]) for i in range(60)]
    meta = pd.DataFrame({"lot_id": [f"L{i // 6}" for i in range(60)], "wafer_id": [str(i % 6) for i in range(60)],
                         "label": [kinds[i % 5] for i in range(60)], "cause": [f"c{i % 5}" for i in range(60)],
                         "date": pd.date_range("2026-01-01", periods=60, freq="D")})
    return grids, meta


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
@pytest.mark.parametrize("n_components", [None, 8])
def test_query_equals_sklearn_brute_force(gallery, rng, metric, n_components):
    """The same neighbours and distances as sklearn.neighbors.NearestNeighbors(algorithm='brute')."""
    grids, meta = gallery
    sw = SimilarWafers(representation="features", metric=metric, n_components=n_components, block_size=7)
    sw.fit(grids, meta)
    queries = [_wafer(rng, k) for k in ("center", "edge", "scratch", "loc", "none")]
    res = sw.query(queries, k=6)
    nn = NearestNeighbors(n_neighbors=6, algorithm="brute", metric=metric).fit(sw.vectors_.astype(np.float64))
    dist, idx = nn.kneighbors(sw.transform(queries).astype(np.float64))
    np.testing.assert_array_equal(res.indices, idx)
    np.testing.assert_allclose(res.distances, dist, rtol=1e-6, atol=1e-6)
    t = res.table
    assert len(t) == 30 and t["rank"].tolist()[:6] == [1, 2, 3, 4, 5, 6]
    assert {"label", "cause", "date", "lot_id"} <= set(t.columns)
    assert t["label"].tolist()[:6] == meta["label"].to_numpy()[idx[0]].tolist()


def test_a_gallery_wafer_finds_itself_at_distance_zero_unless_excluded(gallery):
    grids, meta = gallery
    sw = SimilarWafers(representation="features").fit(grids, meta)
    res = sw.query([grids[7], grids[12]], k=3)
    assert res.indices[:, 0].tolist() == [7, 12]
    assert res.distances[:, 0].tolist() == [0.0, 0.0]
    ex = sw.query([grids[7], grids[12]], k=3, exclude_duplicates=True)
    assert 7 not in ex.indices[0] and 12 not in ex.indices[1]
    assert np.all(ex.distances > 0)


def test_exact_duplicates_are_excluded_by_map_hash(gallery):
    grids, meta = gallery
    dup = grids + [grids[3].copy(), grids[3].copy()]
    m = pd.concat([meta, meta.iloc[[3, 3]]], ignore_index=True)
    sw = SimilarWafers(representation="features").fit(dup, m)
    assert sorted(sw.query([grids[3]], k=3).indices[0].tolist()) == [3, 60, 61]
    ex = sw.query([grids[3]], k=3, exclude_duplicates=True)
    assert not {3, 60, 61} & set(ex.indices[0].tolist())
    assert map_hashes([grids[3]])[0] == sw.map_sha1_[60]


def test_exclude_same_lot(gallery):
    grids, meta = gallery
    sw = SimilarWafers(representation="features").fit(grids, meta)
    q = pd.DataFrame({"lot_id": ["L1", "L5"]})
    res = sw.query([grids[7], grids[31]], k=10, exclude_same_lot=True, metadata=q)
    lots = meta["lot_id"].to_numpy()
    assert "L1" not in set(lots[res.indices[0]]) and "L5" not in set(lots[res.indices[1]])
    assert (res.table["query"] == 0).sum() == 10
    with pytest.raises(SchemaError, match="lot_id"):
        sw.query([grids[7]], k=3, exclude_same_lot=True)


def test_exclusions_leave_fewer_than_k(rng):
    grids = [_wafer(rng, "center") for _ in range(4)]
    meta = pd.DataFrame({"lot_id": ["A", "A", "A", "B"]})
    sw = SimilarWafers(representation="features").fit(grids, meta)
    res = sw.query([grids[0]], k=3, exclude_same_lot=True, metadata=pd.DataFrame({"lot_id": ["A"]}))
    assert res.indices[0].tolist() == [3, -1, -1]
    assert np.isinf(res.distances[0, 1:]).all()
    assert len(res.table) == 1


@pytest.mark.parametrize("transform", [lambda g: np.rot90(g, 1), lambda g: np.rot90(g, 2), lambda g: g[:, ::-1],
                                       lambda g: np.rot90(g[::-1], 1)])
def test_a_rotated_copy_is_found_at_rank_one_with_invariance(gallery, transform):
    grids, meta = gallery
    q = np.ascontiguousarray(transform(grids[2]))  # a scratch: orientation matters
    inv = SimilarWafers(representation="features", invariant=True).fit(grids, meta).query([q], k=3)
    assert inv.indices[0, 0] == 2
    assert inv.distances[0, 0] == pytest.approx(0.0, abs=1e-5)


def test_without_invariance_a_rotated_scratch_is_not_at_distance_zero(gallery):
    grids, meta = gallery
    q = np.ascontiguousarray(np.rot90(grids[2], 1))
    res = SimilarWafers(representation="features").fit(grids, meta).query([q], k=1)
    assert res.distances[0, 0] > 0.1


def test_die_tables_in_and_metadata_joined_by_wafer(gallery):
    from yieldkit.classify.grid import grids_to_dies

    grids, meta = gallery
    dies = grids_to_dies(grids[:20], lot_id=meta["lot_id"].tolist()[:20], wafer_id=meta["wafer_id"].tolist()[:20])
    sw = SimilarWafers(representation="features").fit(dies, meta.iloc[::-1])  # order of the metadata is irrelevant
    assert sw.metadata_["label"].tolist() == meta["label"].tolist()[:20]
    res = sw.query(grids_to_dies([grids[4]], lot_id="L0", wafer_id=["4"]), k=2, exclude_same_lot=True)
    assert set(res.table["query_lot_id"]) == {"L0"} and "L0" not in set(res.table["lot_id"])


def test_gallery_round_trip_through_parquet(gallery, tmp_path, rng):
    grids, meta = gallery
    sw = SimilarWafers(representation="features", n_components=5, invariant=True).fit(grids, meta)
    path = tmp_path / "gallery.parquet"
    sw.save(path)
    back = SimilarWafers.load(path)
    assert back.invariant and back.n_components == 5 and back.vectors_.shape == (60, 5)
    q = [_wafer(rng, "edge"), grids[9]]
    a, b = sw.query(q, k=4), back.query(q, k=4)
    np.testing.assert_array_equal(a.indices, b.indices)
    np.testing.assert_allclose(a.distances, b.distances, rtol=1e-6)
    pd.testing.assert_frame_equal(a.table, b.table)
    pd.DataFrame({"x": [1]}).to_parquet(tmp_path / "other.parquet")
    with pytest.raises(YieldkitValueError, match="not a yieldkit similar-wafer gallery"):
        SimilarWafers.load(tmp_path / "other.parquet")


def test_default_representation_uses_the_shipped_classifier(gallery):
    grids, meta = gallery
    sw = SimilarWafers().fit(grids[:20], meta.iloc[:20])
    assert [b[0] for b in sw.blocks_] == ["proba", "features"]
    assert sw.vectors_.shape[1] == 9 + sw.blocks_[1][1]
    assert sw.query([grids[5]], k=1).indices[0, 0] == 5


def test_errors(gallery):
    grids, meta = gallery
    with pytest.raises(NotFittedError):
        SimilarWafers().query(grids[:1])
    with pytest.raises(YieldkitValueError, match="representation"):
        SimilarWafers(representation="pixels").fit(grids, meta)
    with pytest.raises(YieldkitValueError, match="one row per wafer"):
        SimilarWafers(representation="features").fit(grids, meta.iloc[:5])
    sw = SimilarWafers(representation="features").fit(grids, meta)
    with pytest.raises(YieldkitValueError, match="'k'"):
        sw.query(grids[:1], k=0)


def test_query_a_dask_dataframe_by_partition(gallery):
    dd = pytest.importorskip("dask.dataframe")
    from yieldkit.classify.grid import grids_to_dies

    grids, meta = gallery
    sw = SimilarWafers(representation="features").fit(grids, meta)
    dies = grids_to_dies([grids[1], grids[2], grids[3]], lot_id=["Q1", "Q1", "Q2"], wafer_id=["1", "2", "3"])
    parts = [dies[dies["wafer_id"].isin(w)] for w in (["1", "2"], ["3"])]
    ddf = dd.concat([dd.from_pandas(p, npartitions=1) for p in parts])
    res = sw.query(ddf, k=3)
    ref = sw.query(dies, k=3)
    np.testing.assert_array_equal(res.indices, ref.indices)
    assert res.table["query_wafer_id"].tolist() == ref.table["query_wafer_id"].tolist()
    split = dd.from_pandas(dies.sort_values("die_x"), npartitions=2, sort=False)
    with pytest.raises(YieldkitValueError, match="spans several partitions"):
        sw.query(split, k=3)


def test_retrieval_scores_by_hand():
    """precision@k and AP@k checked by hand: a query with neighbours [x, y, x] (relevant x)."""
    s = retrieval_scores(["x", "y"], [["x", "y", "x"], ["x", "x", "y"]], k=3).set_index("class")
    assert s.loc["x", "precision_at_k"] == pytest.approx(2 / 3)
    assert s.loc["x", "map_at_k"] == pytest.approx((1 + 2 / 3) / 2)
    assert s.loc["y", "precision_at_k"] == pytest.approx(1 / 3)
    assert s.loc["y", "map_at_k"] == pytest.approx(1 / 3)
    assert s.loc["micro", "precision_at_k"] == pytest.approx(0.5)
    assert s.loc["macro", "map_at_k"] == pytest.approx(((1 + 2 / 3) / 2 + 1 / 3) / 2)
    with pytest.raises(YieldkitValueError, match="'k'"):
        retrieval_scores(["x"], [["x"]], k=2)


def test_cli_build_gallery_and_query(gallery, tmp_path, capsys):
    from yieldkit.classify.grid import grids_to_dies
    from yieldkit.cli import main

    grids, meta = gallery
    dies = grids_to_dies(grids, lot_id=meta["lot_id"].tolist(), wafer_id=meta["wafer_id"].tolist())
    src = tmp_path / "past.csv"
    dies.to_csv(src, index=False)
    wafers = tmp_path / "wafers.csv"
    meta[["lot_id", "wafer_id", "label", "cause"]].to_csv(wafers, index=False)
    gal = tmp_path / "gallery.parquet"
    assert main(["-q", "similar", str(src), "--build-gallery", str(gal), "--metadata", str(wafers),
                 "--representation", "features", "--invariant"]) == 0
    q = tmp_path / "new.csv"
    grids_to_dies([np.rot90(grids[2]), grids[8]], lot_id="NEW", wafer_id=["1", "2"]).to_csv(q, index=False)
    out = tmp_path / "similar.csv"
    assert main(["-q", "similar", str(q), "--gallery", str(gal), "-k", "3", "-o", str(out)]) == 0
    t = pd.read_csv(out)
    assert len(t) == 6
    first = t[t["rank"] == 1]
    assert first["label"].tolist() == [meta.loc[2, "label"], meta.loc[8, "label"]]
    assert first["cause"].tolist() == ["c2", "c3"] and first["distance"].max() < 1e-5
    assert main(["-q", "similar", str(q), "--gallery", str(gal), "-k", "2", "--format", "csv"]) == 0
    assert "gallery_index" in capsys.readouterr().out


def test_report_lists_the_closest_past_wafers_of_signature_wafers(tmp_path):
    """analyze(similar_gallery=...) -> one row per (signature wafer, past wafer) with the known cause, in the HTML."""
    import yieldkit as yk
    from yieldkit.classify.grid import dies_to_grids
    from yieldkit.report import build_report

    past = yk.simulate_fab(n_lots=2, wafers_per_lot=4, signatures={1: "edge-ring", 5: "edge-ring"}, random_state=3)
    ids, grids = dies_to_grids(past.dies)
    meta = ids[["lot_id", "wafer_id"]].assign(cause=["etch chamber B" if i in (1, 5) else "" for i in range(len(ids))])
    gal = tmp_path / "g.parquet"
    SimilarWafers(representation="features").fit(grids, meta).save(gal)
    fab = yk.simulate_fab(n_lots=1, wafers_per_lot=3, signatures={1: "edge-ring"}, random_state=8)
    res = yk.analyze(fab.dies, layout=fab.layout, similar_gallery=gal)
    sim = res.similar
    assert sim is not None and set(sim["wafer_id"]) == {"02"}
    assert sim["pattern"].eq("Edge-Ring").all() and len(sim) == 5
    assert sim.loc[sim["rank"] == 1, "cause"].item() == "etch chamber B"
    html = build_report(res, max_maps=1)
    assert 'id="similar-table"' in html and "etch chamber B" in html
    assert yk.analyze(fab.dies, layout=fab.layout).similar is None
