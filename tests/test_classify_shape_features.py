"""Line, blob and ring features (shape_features) on hand-made and seeded synthetic maps."""

from __future__ import annotations

import numpy as np
import pytest
from test_classify_pattern import _disc, synth, synth_set

from yieldkit.classify.features import shape_feature_names, shape_features


def _f(g: np.ndarray) -> dict[str, float]:
    return dict(zip(shape_feature_names(), shape_features([g])[0]))


def _noisy_disc(rng: np.random.Generator, n: int, p: float) -> np.ndarray:
    r, _, _ = _disc(n)
    return np.where(r <= 1, np.where(rng.random((n, n)) < p, 2, 1), 0).astype(np.uint8)


def test_shape_finite_and_batch_invariant(rng):
    grids, _ = synth_set(rng, 3)
    grids += [np.zeros((5, 7), np.uint8), np.full((4, 4), 2, np.uint8), np.ones((200, 150), np.uint8)]
    X = shape_features(grids)
    assert X.shape == (len(grids), len(shape_feature_names()))
    assert np.isfinite(X).all()
    for i in (0, 7, len(grids) - 3, len(grids) - 1):
        np.testing.assert_allclose(shape_features([grids[i]])[0], X[i], rtol=1e-6, atol=1e-9)
    assert shape_features([]).shape == (0, len(shape_feature_names()))


def test_a_scratch_stands_out_of_noise(rng):
    """A thin line through 6 % random fails: one sharp radon peak; the noise alone gives none."""
    noise = _noisy_disc(rng, 60, 0.06)
    line = noise.copy()
    idx = np.arange(12, 48)
    line[idx, idx // 3 + 15] = 2  # a slanted scratch
    a, b = _f(noise), _f(line)
    assert b["hough_peak"] > 2 * a["hough_peak"] and b["hough_peak_ratio"] > 1.6 * a["hough_peak_ratio"]
    assert b["hough_angle_peak"] > 2 * a["hough_angle_peak"]
    assert b["hough_second"] < 0.6 < a["hough_second"]


def test_a_local_blob_is_found_where_it_is(rng):
    g = _noisy_disc(rng, 50, 0.02)
    r, dy, dx = _disc(50)
    blob = np.hypot(dy - 12, dx) < 5  # centred at radius 12 / 25 = 0.48
    g[blob & (r <= 1)] = 2
    f = _f(g)
    assert f["blob5_max"] > 0.9 and f["blob5_excess"] > 0.8
    assert f["blob_largest_radius"] == pytest.approx(0.48, abs=0.08)
    assert f["blob_n_hot"] == 1
    share = blob.sum() / (r <= 1).sum()
    assert share < f["blob_largest_share"] < 2.5 * share  # the 5 x 5 window widens the blob by its margin
    # no blob in pure noise
    assert _f(_noisy_disc(rng, 50, 0.02))["blob_n_hot"] == 0


def test_a_donut_covers_the_band_and_a_centre_does_not(rng):
    g = _noisy_disc(rng, 60, 0.02)
    r, _, _ = _disc(60)
    donut = g.copy()
    donut[(r > 0.4) & (r < 0.65)] = 2
    centre = synth("Center", rng, n=60)
    fd, fc = _f(donut), _f(centre)
    assert fd["ringp_band_coverage"] == 1.0 and fc["ringp_band_coverage"] < 0.5
    assert fd["ringp_peak_radius"] == pytest.approx(0.52, abs=0.12)
    assert fd["ringp_peak_contrast"] > 0.5 and fd["ringp_hole"] > 0.5


def test_classifier_with_shape_features_round_trip(rng, tmp_path):
    from yieldkit.classify.features import feature_names
    from yieldkit.classify.pattern import WaferPatternClassifier

    grids, y = synth_set(rng, 10)
    clf = WaferPatternClassifier(features="standard+shape", max_iter=10, min_samples_leaf=3, n_threads=1,
                                 random_state=0).fit(grids, y)
    assert clf.n_features_in_ == len(feature_names()) + len(shape_feature_names())
    assert clf.feature_names_[-len(shape_feature_names()):] == shape_feature_names()
    assert np.mean(clf.predict(grids) == y) > 0.9
    clf.save(tmp_path / "m.npz")
    back = WaferPatternClassifier.load(tmp_path / "m.npz")
    np.testing.assert_allclose(back.predict_proba(grids), clf.predict_proba(grids))
