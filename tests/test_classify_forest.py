"""The numpy tree-ensemble traversal of Forest against a plain per-sample, per-tree walk."""

from __future__ import annotations

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from yieldkit.classify.forest import Forest
from yieldkit.errors import YieldkitValueError


def reference_raw(forest: Forest, X: np.ndarray) -> np.ndarray:
    """Raw scores by walking every tree for every sample, one node at a time: left when
    ``x <= threshold``, or when ``x`` is NaN and the split sends missing values left."""
    out = np.empty((len(X), forest.n_outputs))
    for i, x in enumerate(X):
        score = forest.baseline.copy()
        for t, root in enumerate(forest.roots):
            node = root
            while not forest.is_leaf[node]:
                v = x[forest.feature[node]]
                go_left = forest.missing_left[node] if np.isnan(v) else v <= forest.threshold[node]
                node = forest.left[node] if go_left else forest.right[node]
            score[forest.tree_out[t]] += forest.value[node]
        out[i] = score
    return out


def walked(forest: Forest) -> Forest:
    """The same forest evaluated by the level-by-level walk (the layout for trees of > 64 leaves)."""
    other = Forest.from_arrays(forest.to_arrays())
    other._compile_walk()
    return other


def _data(rng: np.random.Generator, n: int) -> np.ndarray:
    X = rng.normal(size=(n, 5))
    X[rng.random(X.shape) < 0.08] = np.nan
    X[:, 4] = np.round(X[:, 4], 1)  # repeated values: samples fall exactly on thresholds
    return X


def _fit(rng: np.random.Generator, max_leaf_nodes: int, multilabel: bool) -> Forest:
    from sklearn.ensemble import HistGradientBoostingClassifier

    X = _data(rng, 700)
    s = np.nan_to_num(X[:, 0]) + 0.7 * np.nan_to_num(X[:, 1], nan=1.5) - 0.4 * X[:, 4] + rng.normal(0, 0.4, len(X))
    kw = dict(max_iter=6, max_leaf_nodes=max_leaf_nodes, min_samples_leaf=3, random_state=0)
    with threadpool_limits(limits=1, user_api="openmp"):
        if multilabel:
            labels = [s > 0, np.isnan(X[:, 2]) | (X[:, 3] > 0.5), np.nan_to_num(X[:, 1]) < -0.3]
            models = [HistGradientBoostingClassifier(**kw).fit(X, y) for y in labels]
        else:
            models = [HistGradientBoostingClassifier(**kw).fit(X, np.digitize(s, [-0.8, 0.0, 0.8]))]
    return Forest.from_hgb(models)


def _query(rng: np.random.Generator, forest: Forest) -> np.ndarray:
    """Samples with NaN, +-inf and values equal to split thresholds."""
    X = _data(rng, 61)
    split = np.flatnonzero(~forest.is_leaf)
    pick = rng.choice(split, size=40)
    X[rng.integers(0, len(X), 40), forest.feature[pick]] = forest.threshold[pick]
    X[3, 0], X[4, 1], X[5, :] = np.inf, -np.inf, np.nan
    return X


@pytest.mark.parametrize("max_leaf_nodes", [4, 31, 50, 90])
@pytest.mark.parametrize("multilabel", [False, True])
def test_forest_traversal_matches_plain_walk(rng, max_leaf_nodes, multilabel):
    """Multiclass (softmax) and multi-label (sigmoid) forests fitted on features with NaN: the leaf
    bitmask evaluation (trees of <= 32 and <= 64 leaves) and the level walk (larger trees) give
    the raw scores of a plain per-sample walk, whatever the chunk size, and the same bits as each other."""
    forest = _fit(rng, max_leaf_nodes, multilabel)
    assert forest.link == ("sigmoid" if multilabel else "softmax")
    n_leaves = np.bincount(np.searchsorted(forest.roots, np.flatnonzero(forest.is_leaf), side="right") - 1)
    split = ~forest.is_leaf
    assert forest.missing_left[split].any() and not forest.missing_left[split].all()
    assert n_leaves.max() == max_leaf_nodes or max_leaf_nodes == 90 and n_leaves.max() > 64
    assert forest._c_walk == (max_leaf_nodes > 64)
    X = _query(rng, forest)
    ref = reference_raw(forest, X)
    raw = forest.raw_predict(X)
    np.testing.assert_allclose(raw, ref, rtol=0, atol=1e-12)
    for chunk in (1, 7, 8, 9, 60):  # chunk boundaries cut the samples and the blocks of eight
        np.testing.assert_allclose(forest.raw_predict(X, chunk=chunk), ref, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(raw, walked(forest).raw_predict(X))


def test_forest_traversal_edge_cases():
    """A hand-built forest: a single-leaf tree, a split on NaN only (threshold +inf, missing values go
    right), negative zero against a zero threshold, and no samples at all."""
    nan, inf = np.nan, np.inf
    forest = Forest(
        # tree 0: a leaf; tree 1: x0 <= 0 ? (x1 <= inf ? a : b) : c; tree 2: x1 <= 0.5 (missing left) ? d : e
        feature=[0, 0, 1, 0, 0, 0, 1, 0, 0],
        threshold=[0.0, 0.0, inf, 0.0, 0.0, 0.0, 0.5, 0.0, 0.0],
        left=[0, 2, 4, 0, 0, 0, 7, 0, 0],
        right=[0, 3, 5, 0, 0, 0, 8, 0, 0],
        is_leaf=[True, False, False, True, True, True, False, True, True],
        value=[0.25, 0, 0, 4.0, 1.0, 2.0, 0, 8.0, 16.0],
        missing_left=[False, False, False, False, False, False, True, False, False],
        roots=[0, 1, 6], tree_out=[0, 1, 1], baseline=[0.5, -1.0], link="sigmoid")
    X = np.array([[-1.0, 0.2], [-0.0, nan], [0.0, inf], [nan, 3.0], [1e-300, -inf], [-inf, 0.5]])
    expected = np.array([[0.75, 8.0], [0.75, 9.0], [0.75, 16.0], [0.75, 19.0], [0.75, 11.0], [0.75, 8.0]])
    np.testing.assert_array_equal(reference_raw(forest, X), expected)
    np.testing.assert_array_equal(forest.raw_predict(X), expected)
    np.testing.assert_array_equal(walked(forest).raw_predict(X), expected)
    assert forest.raw_predict(np.empty((0, 2))).shape == (0, 2)


def test_average_of_forests_is_the_mean_raw_score():
    """Forest.average: trees side by side, leaf values / k, mean baseline -> the mean of the raw scores."""
    rng = np.random.default_rng(3)
    X = rng.normal(size=(400, 6))
    X[rng.random(X.shape) < 0.05] = np.nan
    y = np.where(X[:, 0] > 0.3, "a", np.where(np.nan_to_num(X[:, 1]) > 0, "b", "c"))
    from sklearn.ensemble import HistGradientBoostingClassifier

    fs = [Forest.from_hgb([HistGradientBoostingClassifier(max_iter=15, max_features=0.5, random_state=s).fit(X, y)])
          for s in range(3)]
    avg = Forest.average(fs)
    np.testing.assert_allclose(avg.raw_predict(X), np.mean([f.raw_predict(X) for f in fs], axis=0), rtol=0, atol=1e-12)
    back = Forest.from_arrays(avg.to_arrays())
    np.testing.assert_array_equal(back.raw_predict(X), avg.raw_predict(X))
    binary = Forest.from_hgb([HistGradientBoostingClassifier(max_iter=5).fit(X, y == "a")])
    with pytest.raises(YieldkitValueError, match="one link"):
        Forest.average([fs[0], binary])
    with pytest.raises(YieldkitValueError, match="at least one"):
        Forest.average([])
