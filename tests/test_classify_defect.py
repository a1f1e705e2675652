"""DefectClassifier on simulated defect classes with distinct attribute distributions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from yieldkit.classify.defect import DefectClassifier, classification_report_table, defect_features
from yieldkit.errors import NotFittedError, SchemaError, YieldkitValueError


def simulate_defects(rng: np.random.Generator, n: int) -> pd.DataFrame:
    """Four classes: small round particles, long thin scratches at any radius, large residues near the
    centre, pits near the edge. Distributions overlap a little, so recall < 1 is expected."""
    classes = np.array(["particle", "scratch", "residue", "pit"])
    k = rng.choice(4, size=n, p=[0.4, 0.2, 0.25, 0.15])
    size = np.choose(k, [rng.lognormal(np.log(0.25), 0.3, n), rng.lognormal(np.log(5), 0.4, n),
                         rng.lognormal(np.log(2), 0.35, n), rng.lognormal(np.log(0.9), 0.25, n)])
    aspect = np.choose(k, [rng.lognormal(0, 0.15, n), rng.lognormal(np.log(8), 0.3, n),
                           rng.lognormal(np.log(1.5), 0.2, n), rng.lognormal(0, 0.15, n)])
    rr = np.choose(k, [np.sqrt(rng.random(n)), np.sqrt(rng.random(n)), 0.4 * np.sqrt(rng.random(n)),
                       rng.uniform(0.85, 1.0, n)]) * 150_000.0
    phi = rng.uniform(0, 2 * np.pi, n)
    xs = size * np.sqrt(aspect)
    ys = size / np.sqrt(aspect)
    swap = rng.random(n) < 0.5
    return pd.DataFrame({
        "lot_id": "L1", "wafer_id": (np.arange(n) // 200).astype(str), "defect_id": np.arange(n, dtype=np.int64),
        "x_um": rr * np.cos(phi), "y_um": rr * np.sin(phi), "size_um": size,
        "XSIZE": np.where(swap, xs, ys), "YSIZE": np.where(swap, ys, xs),
        "defect_class": classes[k],
    })


def test_defect_features_columns(rng):
    d = simulate_defects(rng, 50)
    F = defect_features(d, wafer_radius_um=150_000)
    assert {"log_size", "aspect", "radius", "cos_angle", "sin_angle", "xrel_um"} <= set(F.columns)
    assert "defect_id" not in F.columns and "XSIZE" in F.columns
    np.testing.assert_allclose(F["radius"], np.hypot(d.x_um, d.y_um) / 150_000)
    assert (F["aspect"] >= 1).all()
    assert F["xrel_um"].isna().all()  # not given -> NaN, handled by the trees


def test_defect_classifier_recovers_simulated_classes(rng):
    train = simulate_defects(rng, 2000)
    test = simulate_defects(rng, 1000)
    clf = DefectClassifier(max_iter=40, random_state=0, n_threads=1).fit(train)
    rep = clf.report(test)
    assert rep.accuracy > 0.93
    per = rep.per_class.set_index("defect_class")
    assert (per["recall"] > 0.85).all() and (per["precision"] > 0.85).all()
    assert rep.confusion.to_numpy().sum() == len(test)
    # the confusion matrix agrees with scikit-learn's metrics (independent implementation)
    from sklearn.metrics import precision_score

    pred = clf.predict(test)
    np.testing.assert_allclose(per.loc[sorted(per.index), "precision"],
                               precision_score(test.defect_class, pred, average=None, labels=sorted(per.index)))
    out = clf.classify(test)
    assert (out["defect_class_pred"].to_numpy() == pred).all()
    assert out["defect_class_pred_prob"].between(0, 1).all()


def test_unclassified_rows_are_left_out(rng):
    d = simulate_defects(rng, 400)
    d.loc[:99, "defect_class"] = "unclassified"
    clf = DefectClassifier(max_iter=10, n_threads=1).fit(d)
    assert "unclassified" not in clf.classes_
    assert clf.report(d).confusion.to_numpy().sum() == 300


def test_report_table_matches_hand_count():
    rep = classification_report_table(["a", "a", "b", "b"], ["a", "b", "b", "b"])
    per = rep.per_class.set_index("defect_class")
    assert per.loc["a", "recall"] == 0.5 and per.loc["a", "precision"] == 1.0
    assert per.loc["b", "precision"] == pytest.approx(2 / 3)
    assert rep.confusion.loc["a", "b"] == 1 and rep.accuracy == 0.75


def test_defect_classifier_errors(rng):
    d = simulate_defects(rng, 100)
    with pytest.raises(NotFittedError, match="not fitted"):
        DefectClassifier().predict(d)
    with pytest.raises(SchemaError, match="needs y or a 'defect_class' column"):
        DefectClassifier().fit(d.drop(columns="defect_class"))
    with pytest.raises(YieldkitValueError, match="at least 2 defect classes"):
        DefectClassifier().fit(d.assign(defect_class="particle"))
    with pytest.raises(YieldkitValueError, match="'max_iter' argument of DefectClassifier"):
        DefectClassifier(max_iter=0).fit(d)
    with pytest.raises(YieldkitValueError, match="'learning_rate'"):
        DefectClassifier(learning_rate=0).fit(d)
    with pytest.raises(YieldkitValueError, match="must be a DataFrame"):
        defect_features(np.zeros((3, 2)))


def test_sklearn_estimator_checks():
    from sklearn.utils.estimator_checks import check_estimator

    check_estimator(DefectClassifier(max_iter=3, n_threads=1))
