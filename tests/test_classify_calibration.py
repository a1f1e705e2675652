"""Scores, calibration and the "unknown" answer on synthetic probabilities with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from yieldkit.classify.calibration import (
    choose_unknown_threshold,
    expected_calibration_error,
    fit_temperature,
    log_softmax,
    pattern_scores,
    reliability_table,
    softmax,
    unknown_coverage,
)
from yieldkit.errors import YieldkitValueError


def _sample_logits(rng: np.random.Generator, n: int, k: int, true_t: float) -> tuple[np.ndarray, np.ndarray]:
    """Logits whose labels are drawn from softmax(logits / true_t): the right temperature is true_t."""
    z = rng.normal(0, 3, (n, k))
    p = softmax(z, true_t)
    u = rng.random(n)[:, None]
    y = (u > np.cumsum(p, axis=1)).sum(axis=1)
    return z, np.minimum(y, k - 1)


def test_softmax_and_log_softmax_agree(rng):
    z = rng.normal(0, 50, (20, 5))
    np.testing.assert_allclose(np.exp(log_softmax(z, 2.0)), softmax(z, 2.0), rtol=1e-12)
    np.testing.assert_allclose(softmax(z).sum(axis=1), 1.0)


@pytest.mark.parametrize("true_t", [0.5, 1.0, 2.5])
def test_fit_temperature_recovers_the_generating_temperature(rng, true_t):
    z, y = _sample_logits(rng, 20000, 6, true_t)
    assert fit_temperature(z, y) == pytest.approx(true_t, rel=0.06)


def test_temperature_scaling_lowers_ece_and_keeps_argmax(rng):
    z, y = _sample_logits(rng, 20000, 6, 2.5)  # raw softmax(z) is over-confident
    t = fit_temperature(z[:10000], y[:10000])
    before = expected_calibration_error(softmax(z[10000:]), y[10000:])
    after = expected_calibration_error(softmax(z[10000:], t), y[10000:])
    assert after < 0.03 < before
    np.testing.assert_array_equal(softmax(z, t).argmax(1), z.argmax(1))


def test_ece_by_hand():
    """Two bins: confidence 0.9 with accuracy 1 (gap 0.1), 0.6 with accuracy 0.5 (gap 0.1)."""
    p = np.array([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.4, 0.6]])
    y = np.array([0, 0, 0, 0])
    t = reliability_table(p, y, n_bins=10)
    assert t["n"].tolist() == [2, 2]
    np.testing.assert_allclose(t["confidence"], [0.6, 0.9])
    np.testing.assert_allclose(t["accuracy"], [0.5, 1.0])
    assert expected_calibration_error(p, y, n_bins=10) == pytest.approx(0.1)
    # perfectly calibrated one-hot predictions
    assert expected_calibration_error(np.eye(3), np.arange(3)) == 0.0


def test_unknown_threshold_reaches_target_on_calibration_and_holds_out_of_sample(rng):
    z, y = _sample_logits(rng, 40000, 5, 1.0)
    p = softmax(z)
    thr = choose_unknown_threshold(p[:20000], y[:20000], target_accuracy=0.95)
    cal = unknown_coverage(p[:20000], y[:20000], thr)
    assert cal["accuracy"] >= 0.95
    # the next lower threshold would miss the target: the coverage is the largest possible
    lower = np.max(p[:20000].max(1)[p[:20000].max(1) < thr])
    assert unknown_coverage(p[:20000], y[:20000], lower)["accuracy"] < 0.95
    test = unknown_coverage(p[20000:], y[20000:], thr)
    assert test["accuracy"] == pytest.approx(0.95, abs=0.01)
    assert 0 < test["coverage"] < 1 and test["unknown_rate"] == pytest.approx(1 - test["coverage"])
    assert test["accuracy"] > test["accuracy_all"]


def test_unknown_threshold_unreachable_target_takes_the_best_accuracy():
    p = np.array([[0.9, 0.1], [0.8, 0.2], [0.7, 0.3]])
    y = np.array([1, 0, 0])  # the most confident is wrong: accuracy 0, 0.5, 2/3 by threshold
    assert choose_unknown_threshold(p, y, target_accuracy=1.0) == 0.7


def test_pattern_scores_against_sklearn(rng):
    from sklearn.metrics import confusion_matrix, f1_score, precision_score, recall_score

    labels = np.array(["a", "b", "c", "d"])
    yt = labels[rng.integers(0, 4, 500)]
    yp = np.where(rng.random(500) < 0.7, yt, labels[rng.integers(0, 4, 500)])
    s = pattern_scores(yt, yp)
    assert s.macro_f1 == pytest.approx(f1_score(yt, yp, average="macro"))
    np.testing.assert_allclose(s.per_class["f1"], f1_score(yt, yp, average=None))
    np.testing.assert_allclose(s.per_class["precision"], precision_score(yt, yp, average=None))
    np.testing.assert_allclose(s.per_class["recall"], recall_score(yt, yp, average=None))
    np.testing.assert_array_equal(s.confusion.to_numpy(), confusion_matrix(yt, yp))
    assert s.accuracy == pytest.approx(np.mean(yt == yp))


def test_pattern_scores_unknown_counts_as_wrong_not_as_a_false_positive():
    s = pattern_scores(["a", "a", "b"], ["a", "unknown", "b"], labels=["a", "b"])
    assert s.per_class.loc["a", "recall"] == 0.5 and s.per_class.loc["a", "precision"] == 1.0
    assert s.confusion.columns.tolist() == ["a", "b", "unknown"]
    assert s.confusion.loc["a", "unknown"] == 1
    assert s.accuracy == pytest.approx(2 / 3)
    assert s.to_dict()["per_class_f1"] == {"a": pytest.approx(2 / 3, abs=1e-4), "b": 1.0}


def test_errors():
    p = np.array([[0.5, 0.5]])
    with pytest.raises(YieldkitValueError, match="'y' argument of expected_calibration_error|'y' argument of reliability"):
        expected_calibration_error(p, np.array([2]))
    with pytest.raises(YieldkitValueError, match="'proba' argument of fit_temperature"):
        fit_temperature(np.zeros(3), np.zeros(3, int))
    with pytest.raises(YieldkitValueError, match="'target_accuracy' argument"):
        choose_unknown_threshold(p, np.array([0]), target_accuracy=0)
    with pytest.raises(YieldkitValueError, match="'n_bins' argument"):
        reliability_table(p, np.array([0]), n_bins=0)
    with pytest.raises(YieldkitValueError, match="same length"):
        pattern_scores(["a"], ["a", "b"])
