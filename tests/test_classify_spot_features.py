"""Multi-scale local fail density (spot_features) against a plain per-die recomputation."""

from __future__ import annotations

import numpy as np
import pytest
from test_classify_pattern import _disc, synth_set
from test_classify_shape_features import _noisy_disc

from yieldkit.classify.features import _spot_sides, spot_feature_names, spot_features
from yieldkit.errors import YieldkitValueError


def _reference(g: np.ndarray) -> np.ndarray:
    """The definition, die by die and box by box (loops: a small grid only)."""
    h, w = g.shape
    die, fail = g > 0, g == 2
    nd = max(int(die.sum()), 1)
    p = fail.sum() / nd
    ys, xs = np.nonzero(die)
    cy, cx = ys.mean(), xs.mean()
    radius = np.sqrt(nd / np.pi)
    out = []
    for k in _spot_sides(h, w):
        r = k // 2
        best, at, hot = -1.0, (0, 0), 0
        for y in range(h):
            for x in range(w):
                if not die[y, x]:
                    continue
                box = (slice(max(y - r, 0), y + r + 1), slice(max(x - r, 0), x + r + 1))
                nb = die[box].sum()
                if nb < 0.6 * k * k:
                    continue
                d = fail[box].sum() / nb
                hot += d > p + 0.3
                if d > best:
                    best, at = d, (y, x)
        best = max(best, 0.0)
        sd = np.sqrt(max(p * (1 - p), 1e-4) / (k * k))
        where = np.hypot(at[0] - cy, at[1] - cx) / radius if best > 0 else -1.0
        out += [best, (best - p) / sd, where, hot / nd]
    return np.array(out)


@pytest.mark.parametrize("shape", [(21, 21), (26, 31), (40, 33)])
def test_spot_equals_the_definition(rng, shape):
    h, w = shape
    for p in (0.0, 0.03, 0.3):
        g = np.where(rng.random(shape) < p, 2, 1).astype(np.uint8)
        g[:3, :5] = 0  # an off-wafer corner
        if p:
            g[h // 3:h // 3 + 4, w // 2:w // 2 + 5] = 2  # a blob
        np.testing.assert_allclose(spot_features([g])[0], _reference(g), rtol=1e-12, atol=1e-12)


def test_spot_finite_and_batch_invariant(rng):
    grids, _ = synth_set(rng, 3)
    grids += [np.zeros((5, 7), np.uint8), np.full((4, 4), 2, np.uint8), np.ones((200, 150), np.uint8)]
    X = spot_features(grids)
    assert X.shape == (len(grids), len(spot_feature_names()))
    assert np.isfinite(X).all()
    for i in range(len(grids)):
        np.testing.assert_array_equal(spot_features([grids[i]])[0], X[i])
    assert spot_features([]).shape == (0, len(spot_feature_names()))
    # no die: nothing found anywhere
    assert (X[len(grids) - 3][[0, 3, 4, 7]] == 0).all()


def test_a_local_blob_stands_out_of_noise_at_its_place(rng):
    g = _noisy_disc(rng, 60, 0.05)
    r, dy, dx = _disc(60)
    blob = np.hypot(dy - 15, dx) < 4  # centred at radius 15 / 30 = 0.5
    g[blob & (r <= 1)] = 2
    f = dict(zip(spot_feature_names(), spot_features([g])[0]))
    noise = dict(zip(spot_feature_names(), spot_features([_noisy_disc(rng, 60, 0.05)])[0]))
    assert f["spot12_max"] == 1.0 and f["spot12_z"] > 15 and noise["spot12_max"] < 0.5
    assert f["spot12_radius"] == pytest.approx(0.5, abs=0.1)
    assert f["spot12_hot_area"] > blob.sum() / (r <= 1).sum() > 0 == noise["spot12_hot_area"]
    assert f["spot5_z"] > 3 * noise["spot5_z"]


def test_spot_bad_grid_is_named():
    with pytest.raises(YieldkitValueError, match="spot_features"):
        spot_features([np.full((5, 5), 3, np.uint8)])


def test_classifier_with_spot_features_round_trip(rng, tmp_path):
    from yieldkit.classify.features import feature_names
    from yieldkit.classify.pattern import WaferPatternClassifier

    grids, y = synth_set(rng, 10)
    clf = WaferPatternClassifier(features="standard+spot", max_iter=10, min_samples_leaf=3, n_threads=1,
                                 random_state=0).fit(grids, y)
    assert clf.n_features_in_ == len(feature_names()) + len(spot_feature_names())
    assert clf.feature_names_[-len(spot_feature_names()):] == spot_feature_names()
    assert np.mean(clf.predict(grids) == y) > 0.9
    clf.save(tmp_path / "m.npz")
    back = WaferPatternClassifier.load(tmp_path / "m.npz")
    assert back.features == "standard+spot"
    np.testing.assert_array_equal(back.predict_proba(grids), clf.predict_proba(grids))
