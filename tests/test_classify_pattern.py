"""Wafer grids, features and WaferPatternClassifier on seeded synthetic maps and small real subsets."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from threadpoolctl import threadpool_limits

from yieldkit.classify.features import extract_features, feature_names
from yieldkit.classify.forest import Forest
from yieldkit.classify.grid import as_grids, dies_to_grids, grids_to_dies
from yieldkit.classify.pattern import WaferPatternClassifier
from yieldkit.errors import NotFittedError, SchemaError, YieldkitValueError


def _disc(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    c = (n - 1) / 2
    yy, xx = np.mgrid[0:n, 0:n]
    r = np.hypot(yy - c, xx - c) / (n / 2)
    return r, yy - c, xx - c


def synth(kind: str, rng: np.random.Generator, n: int | None = None) -> np.ndarray:
    """One synthetic wafer grid of the given pattern (0 = no die, 1 = pass, 2 = fail)."""
    n = int(rng.integers(26, 45)) if n is None else n
    r, dy, dx = _disc(n)
    die = r <= 1.0
    fail = rng.random((n, n)) < 0.03
    if kind == "Center":
        fail |= (r < rng.uniform(0.2, 0.35)) & (rng.random((n, n)) < 0.85)
    elif kind == "Edge-Ring":
        fail |= (r > rng.uniform(0.82, 0.9)) & (rng.random((n, n)) < 0.85)
    elif kind == "Scratch":
        a = rng.uniform(0, np.pi)
        off = rng.uniform(-0.3, 0.3) * n / 2
        dist = np.abs(dx * np.sin(a) - dy * np.cos(a) - off)
        along = dx * np.cos(a) + dy * np.sin(a)
        fail |= (dist < 0.6) & (np.abs(along) < rng.uniform(0.3, 0.6) * n / 2)
    elif kind == "Random":
        fail |= rng.random((n, n)) < rng.uniform(0.25, 0.5)
    elif kind != "none":
        raise AssertionError(kind)
    g = np.where(die, np.where(fail, 2, 1), 0).astype(np.uint8)
    return g


KINDS = ("Center", "Edge-Ring", "Scratch", "Random", "none")


def synth_set(rng: np.random.Generator, per_class: int) -> tuple[list[np.ndarray], np.ndarray]:
    grids, labels = [], []
    for k in KINDS:
        for _ in range(per_class):
            grids.append(synth(k, rng))
            labels.append(k)
    return grids, np.array(labels)


# ----------------------------------------------------------------------------- grid conversion
def test_grid_round_trip(rng):
    grids = [synth(k, rng) for k in KINDS]
    dies = grids_to_dies(grids, lot_id="L1", wafer_id=[f"W{i}" for i in range(len(grids))], x0=-5, y0=3)
    assert dies["die_x"].dtype == np.int32 and dies["passed"].dtype == bool
    assert (dies["hbin"] == np.where(dies["passed"], 1, 0)).all()
    wafers, back = dies_to_grids(dies)
    assert list(wafers["wafer_id"]) == [f"W{i}" for i in range(len(grids))]
    for g, b in zip(grids, back):
        # the bounding box of the dies may be smaller than the grid
        rows = np.flatnonzero(g.any(axis=1))
        cols = np.flatnonzero(g.any(axis=0))
        np.testing.assert_array_equal(b, g[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1])
    assert (wafers["n_fail"] == [int((g == 2).sum()) for g in grids]).all()


def test_grid_orientation_and_common_extent():
    d = pd.DataFrame({"lot_id": ["L"] * 4, "wafer_id": ["1", "1", "2", "2"], "die_x": [0, 1, 5, 5],
                      "die_y": [0, 1, 0, 2], "passed": [True, False, True, True]})
    w, g = dies_to_grids(d)
    np.testing.assert_array_equal(g[0], [[0, 2], [1, 0]])  # die_y grows upwards, row 0 on top
    assert g[1].shape == (3, 1)
    w, g = dies_to_grids(d, extent="common")
    assert {x.shape for x in g} == {(3, 6)}
    assert (w["x0"] == 0).all() and (w["y0"] == 0).all()


def test_grid_retests_keep_last():
    d = pd.DataFrame({"lot_id": ["L"] * 2, "wafer_id": ["1"] * 2, "die_x": [0, 0], "die_y": [0, 0],
                      "passed": [False, True], "test_seq": pd.array([1, 2], dtype="Int16")})
    _, g = dies_to_grids(d)
    np.testing.assert_array_equal(g[0], [[1]])


def test_grid_errors():
    with pytest.raises(SchemaError, match="missing column"):
        dies_to_grids(pd.DataFrame({"lot_id": ["L"], "wafer_id": ["1"]}))
    with pytest.raises(YieldkitValueError, match="'extent' argument of dies_to_grids"):
        dies_to_grids(pd.DataFrame(), extent="tight")
    with pytest.raises(YieldkitValueError, match="values 0 \\(no die\\), 1 \\(pass\\), 2 \\(fail\\)"):
        as_grids([np.full((3, 3), 3)])
    with pytest.raises(YieldkitValueError, match="non-empty 2-D grids"):
        as_grids([np.zeros(4)])
    with pytest.raises(YieldkitValueError, match="sequence of 2-D wafer grids"):
        as_grids("abc")
    with pytest.raises(YieldkitValueError, match="one id per grid"):
        grids_to_dies([np.ones((2, 2))] * 2, wafer_id=["a"])


# ----------------------------------------------------------------------------- features
def test_features_shape_finite_and_batch_invariant(rng):
    grids, _ = synth_set(rng, 3)
    grids.append(np.zeros((5, 7), np.uint8))  # no die at all
    grids.append(np.full((4, 4), 2, np.uint8))  # every die fails
    X = extract_features(grids)
    assert X.shape == (len(grids), len(feature_names()))
    assert np.isfinite(X).all()
    # one wafer at a time gives the same rows as the batch
    for i in (0, 5, len(grids) - 1):
        np.testing.assert_allclose(extract_features([grids[i]])[0], X[i], rtol=1e-5, atol=1e-6)


def test_features_do_not_depend_on_batch_mates(rng):
    """Wafers of one shape are featurised together; a wafer's row must not depend on the others."""
    kinds = ["none", "Scratch", "Center", "Random", "Edge-Ring"]
    grids = [synth(k, rng, n=34) for k in kinds]
    grids[0][grids[0] == 2] = 1  # no fail at all
    X = extract_features(grids)
    for i in range(len(grids)):
        np.testing.assert_allclose(extract_features([grids[i]])[0], X[i], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(extract_features([grids[0], grids[0]]), X[[0, 0]], rtol=1e-5, atol=1e-6)


def test_features_known_values(rng):
    """Fail rate, 13-region densities and the largest region of a hand-made grid."""
    g = np.ones((40, 40), np.uint8)
    g[16:24, 16:24] = 2  # an 8x8 block in the centre
    X = extract_features([g])[0]
    f = dict(zip(feature_names(), X))
    assert f["glob_fail_rate"] == pytest.approx(64 / 1600)
    assert f["reg13_8"] == pytest.approx(64 / 64)  # centre block of the 5x5 split is rows/cols 16-23
    assert f["reg13_0"] == 0 and f["reg13_4"] == 0
    assert f["lr_area"] == pytest.approx(64 / 1600)
    assert f["lr_perimeter"] == pytest.approx(32 / 8)
    assert f["lr_solidity"] == pytest.approx(1.0, abs=0.05)
    assert f["lr_eccentricity"] == pytest.approx(0.0, abs=1e-6)
    assert f["lr_radius"] < 0.05
    assert f["lr_fail_share"] == 1.0
    # radon mean profile is symmetric for a centred square
    rm = np.array([f[f"radon_mean_{i}"] for i in range(20)])
    np.testing.assert_allclose(rm, rm[::-1], atol=1e-6)


def test_features_rotation_invariant_groups(rng):
    """Polar profiles and region geometry barely change when the map is rotated by 90 degrees."""
    g = synth("Scratch", rng, n=41)
    a, b = extract_features([g, np.rot90(g)])
    names = np.array(feature_names())
    inv = np.array([n.startswith(("ring_", "edge_", "sect_sorted", "lr_area", "lr_eccentricity", "glob_"))
                    for n in names])
    np.testing.assert_allclose(a[inv], b[inv], atol=0.03)


# ----------------------------------------------------------------------------- forest export
def test_forest_matches_sklearn(rng):
    """The numpy traversal reproduces scikit-learn's own predict_proba (independent implementation)."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    X = rng.normal(size=(600, 6))
    X[rng.random(X.shape) < 0.05] = np.nan
    y3 = np.digitize(X[:, 0] + 0.5 * np.nan_to_num(X[:, 1]) + rng.normal(0, 0.3, 600), [-0.5, 0.5])
    with threadpool_limits(limits=1, user_api="openmp"):
        m = HistGradientBoostingClassifier(max_iter=15, random_state=0).fit(X, y3)
        m2 = HistGradientBoostingClassifier(max_iter=15, random_state=0).fit(X, y3 > 0)
    np.testing.assert_allclose(Forest.from_hgb([m]).predict_proba(X), m.predict_proba(X), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(Forest.from_hgb([m2]).predict_proba(X)[:, 0], m2.predict_proba(X)[:, 1], rtol=1e-9)


# ----------------------------------------------------------------------------- classifier
@pytest.fixture(scope="module")
def synth_data():
    rng = np.random.default_rng(7)
    train = synth_set(rng, 40)
    test = synth_set(rng, 20)
    return train, test


@pytest.fixture(scope="module")
def fitted(synth_data):
    (Xtr, ytr), _ = synth_data
    return WaferPatternClassifier(max_iter=40, min_samples_leaf=5, random_state=0, n_threads=1).fit(Xtr, ytr)


def test_classifier_learns_synthetic_patterns(synth_data, fitted):
    _, (Xte, yte) = synth_data
    pred = fitted.predict(Xte)
    assert np.mean(pred == yte) >= 0.95
    p = fitted.predict_proba(Xte)
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    assert list(fitted.classes_) == sorted(KINDS)


def test_classifier_accepts_die_tables(synth_data, fitted):
    _, (Xte, _) = synth_data
    dies = grids_to_dies(Xte[:6], lot_id="L", wafer_id=[str(i) for i in range(6)])
    np.testing.assert_array_equal(fitted.predict(dies), fitted.predict(Xte[:6]))


def test_classifier_save_load_round_trip(tmp_path, synth_data, fitted):
    _, (Xte, _) = synth_data
    path = tmp_path / "m.npz"
    digest = fitted.save(path, meta={"note": "test"})
    loaded = WaferPatternClassifier.load(path, sha256=digest)
    np.testing.assert_array_equal(loaded.predict(Xte), fitted.predict(Xte))
    np.testing.assert_allclose(loaded.predict_proba(Xte), fitted.predict_proba(Xte))
    assert loaded.metadata_["note"] == "test"
    with pytest.raises(YieldkitValueError, match="SHA-256 mismatch"):
        WaferPatternClassifier.load(path, sha256="0" * 64)
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a model")
    with pytest.raises(YieldkitValueError, match="not a yieldkit pattern model"):
        WaferPatternClassifier.load(bad)


def test_predict_table_with_causes(synth_data, fitted):
    _, (Xte, _) = synth_data
    ids = pd.DataFrame({"lot_id": ["L"] * len(Xte), "wafer_id": [str(i) for i in range(len(Xte))]})
    t = fitted.predict_table(Xte, wafers=ids)
    assert list(t.columns[:4]) == ["lot_id", "wafer_id", "pattern", "probability"]
    assert "candidate_causes" in t.columns
    assert t.loc[t["pattern"] == "Edge-Ring", "process_area"].str.len().gt(0).all()


def test_multilabel_mode(rng):
    """Mixed patterns: Center and Edge-Ring present independently on the same wafer."""
    grids, Y = [], []
    for _ in range(160):
        c, e = rng.random(2) < 0.5
        g = synth("none", rng, n=36)
        r, _, _ = _disc(36)
        if c:
            g[(r < 0.3) & (g > 0)] = 2
        if e:
            g[(r > 0.85) & (g > 0)] = 2
        grids.append(g)
        Y.append((c, e))
    Y = pd.DataFrame(Y, columns=["Center", "Edge-Ring"])
    clf = WaferPatternClassifier(multilabel=True, max_iter=20, min_samples_leaf=5, n_threads=1).fit(grids[:120], Y[:120])
    pred = clf.predict(grids[120:])
    assert pred.shape == (40, 2)
    assert np.mean(pred == Y[120:].to_numpy()) >= 0.95
    assert list(clf.classes_) == ["Center", "Edge-Ring"]


def test_classifier_errors(synth_data):
    (Xtr, ytr), _ = synth_data
    with pytest.raises(NotFittedError, match="not fitted"):
        WaferPatternClassifier().predict(Xtr[:2])
    with pytest.raises(YieldkitValueError, match="'input' argument of WaferPatternClassifier"):
        WaferPatternClassifier(input="pixels").fit(Xtr, ytr)
    with pytest.raises(YieldkitValueError, match="'max_iter' argument of WaferPatternClassifier must be an int >= 1"):
        WaferPatternClassifier(max_iter=0).fit(Xtr, ytr)
    with pytest.raises(YieldkitValueError, match="'learning_rate'"):
        WaferPatternClassifier(learning_rate=2.0).fit(Xtr, ytr)
    with pytest.raises(YieldkitValueError, match="'max_features' argument of WaferPatternClassifier must be in"):
        WaferPatternClassifier(max_features=0).fit(Xtr, ytr)
    with pytest.raises(YieldkitValueError, match="at least 2 classes"):
        WaferPatternClassifier(max_iter=2).fit(Xtr[:3], ["none"] * 3)
    with pytest.raises(YieldkitValueError, match="one label per wafer"):
        WaferPatternClassifier(max_iter=2).fit(Xtr[:3], ["none", "Center"])
    with pytest.raises(YieldkitValueError, match="only one value"):
        WaferPatternClassifier(multilabel=True, max_iter=2).fit(Xtr[:4], np.array([[1, 0]] * 4))


def test_sklearn_estimator_checks():
    """scikit-learn's estimator checks, on precomputed features (where they apply)."""
    from sklearn.utils.estimator_checks import check_estimator

    check_estimator(WaferPatternClassifier(input="features", max_iter=3, min_samples_leaf=1, n_threads=1))


def test_real_wm811k_subset(shared_samples):
    """A small grouped split of real WM-811K maps: the classifier learns well above chance."""
    path = shared_samples / "wafermaps" / "wm811k_dev.parquet"
    if not path.exists():
        pytest.skip("wm811k_dev.parquet absent")
    d = pd.read_parquet(path, columns=["label", "height", "width", "grid", "map_sha1"])
    d = d.drop_duplicates("map_sha1")
    d = d.sample(frac=1.0, random_state=0).groupby("label").head(60)
    grids = [np.frombuffer(b, np.uint8).reshape(h, w) for b, h, w in zip(d["grid"], d["height"], d["width"])]
    y = d["label"].to_numpy()
    idx = np.random.default_rng(0).permutation(len(y))
    tr, te = idx[: len(idx) * 2 // 3], idx[len(idx) * 2 // 3:]
    clf = WaferPatternClassifier(max_iter=60, min_samples_leaf=5, random_state=0, n_threads=1)
    clf.fit([grids[i] for i in tr], y[tr])
    acc = np.mean(clf.predict([grids[i] for i in te]) == y[te])
    assert acc > 0.7  # 9 balanced classes: chance is 0.11


def test_real_mixedwm38_multilabel_subset(shared_samples):
    """Multi-label mode on real mixed-pattern maps (MixedWM38): per-label accuracy well above the base rate."""
    path = shared_samples / "wafermaps" / "mixedwm38_partial_dev.parquet"
    if not path.exists():
        pytest.skip("mixedwm38_partial_dev.parquet absent")
    labels = ["Center", "Donut", "Edge-Loc", "Edge-Ring", "Loc", "Scratch"]
    d = pd.read_parquet(path, columns=["height", "width", "grid", *labels])
    d = d.sample(900, random_state=0)
    grids = [np.frombuffer(b, np.uint8).reshape(h, w) for b, h, w in zip(d["grid"], d["height"], d["width"])]
    Y = d[labels].astype(bool).reset_index(drop=True)
    clf = WaferPatternClassifier(multilabel=True, max_iter=40, min_samples_leaf=5, random_state=0, n_threads=1)
    clf.fit(grids[:600], Y[:600])
    pred = clf.predict(grids[600:])
    truth = Y[600:].to_numpy()
    per_label = (pred == truth).mean(axis=0)
    base = np.maximum(truth.mean(axis=0), 1 - truth.mean(axis=0))
    assert (per_label > base + 0.05).all(), (per_label, base)
    assert per_label.mean() > 0.85


def test_n_models_averages_seeded_models_in_logit_space(rng, tmp_path):
    """n_models=3 predicts the softmax of the mean raw score of the models of seeds 5, 6 and 7."""
    from yieldkit.classify.pattern import WaferPatternClassifier

    grids, y = synth_set(rng, 8)
    kw = {"max_iter": 8, "min_samples_leaf": 3, "max_features": 0.5, "n_threads": 1}
    bag = WaferPatternClassifier(n_models=3, random_state=5, **kw).fit(grids, y)
    singles = [WaferPatternClassifier(random_state=s, **kw).fit(grids, y) for s in (5, 6, 7)]
    X = bag.transform_features(grids)
    raw = np.mean([m.forest_.raw_predict(X) for m in singles], axis=0)
    np.testing.assert_allclose(bag.forest_.raw_predict(X), raw, rtol=0, atol=1e-12)
    p = np.exp(raw - raw.max(axis=1, keepdims=True))
    np.testing.assert_allclose(bag.predict_proba(grids), p / p.sum(axis=1, keepdims=True), rtol=1e-12)
    assert not np.allclose(singles[0].forest_.raw_predict(X), raw)  # the seeds do differ
    bag.save(tmp_path / "bag.npz")
    back = WaferPatternClassifier.load(tmp_path / "bag.npz")
    assert back.n_models == 3
    np.testing.assert_array_equal(back.predict_proba(grids), bag.predict_proba(grids))
    # multi-label: the same averaging per label
    Y = np.c_[np.isin(y, ["Center", "Donut"]), np.isin(y, ["Scratch", "Loc"])]
    mbag = WaferPatternClassifier(multilabel=True, n_models=2, random_state=1, **kw).fit(grids, Y)
    ms = [WaferPatternClassifier(multilabel=True, random_state=s, **kw).fit(grids, Y) for s in (1, 2)]
    np.testing.assert_allclose(mbag.forest_.raw_predict(X), np.mean([m.forest_.raw_predict(X) for m in ms], axis=0),
                               rtol=0, atol=1e-12)
    with pytest.raises(YieldkitValueError, match="n_models"):
        WaferPatternClassifier(n_models=0).fit(grids, y)
