"""EnsemblePatternClassifier: averaging, calibration, the unknown answer and the file round trip."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from test_classify_pattern import synth_set

from yieldkit.classify.cnn import CNNPatternClassifier, ConvNet
from yieldkit.classify.ensemble import EnsemblePatternClassifier
from yieldkit.classify.pattern import WaferPatternClassifier
from yieldkit.errors import YieldkitValueError


@pytest.fixture(scope="module")
def members():
    rng = np.random.default_rng(5)
    grids, y = synth_set(rng, 12)
    trees = WaferPatternClassifier(max_iter=15, min_samples_leaf=3, random_state=0, n_threads=1).fit(grids, y)
    k = len(trees.classes_)
    spec = {"layers": [{"type": "conv2d", "name": "c", "padding": 1}, {"type": "relu"}, {"type": "maxpool", "kernel": 2},
                       {"type": "gap"}, {"type": "dense", "name": "d"}]}
    arrays = {"c_weight": rng.normal(0, 1, (4, 2, 3, 3)), "c_bias": np.zeros(4),
              "d_weight": rng.normal(0, 1, (k, 4)), "d_bias": rng.normal(0, 1, k)}
    cnn = CNNPatternClassifier.from_net(ConvNet(spec, arrays), trees.classes_, size=16)
    return trees, cnn, grids, y


def test_average_of_member_probabilities(members):
    trees, cnn, grids, _ = members
    ens = EnsemblePatternClassifier([trees, cnn], weights=[3, 1])
    p = ens.predict_proba(grids)
    np.testing.assert_allclose(p, 0.75 * trees.predict_proba(grids) + 0.25 * cnn.predict_proba(grids), rtol=1e-10)
    assert ens.forest_ is trees.forest_
    assert tuple(ens.classes_) == tuple(trees.classes_)


def test_temperature_keeps_the_ranking_and_softens(members):
    trees, cnn, grids, _ = members
    a = EnsemblePatternClassifier([trees, cnn]).predict_proba(grids)
    b = EnsemblePatternClassifier([trees, cnn], temperature=3.0).predict_proba(grids)
    np.testing.assert_array_equal(a.argmax(1), b.argmax(1))
    assert np.all(b.max(1) <= a.max(1) + 1e-12)
    np.testing.assert_allclose(b.sum(axis=1), 1.0)
    # softmax(log(p) / T) by hand
    e = a ** (1 / 3.0)
    np.testing.assert_allclose(b, e / e.sum(axis=1, keepdims=True), rtol=1e-9)


def test_unknown_answer_below_threshold(members):
    trees, cnn, grids, _ = members
    ens = EnsemblePatternClassifier([trees, cnn], unknown_threshold=0.9)
    p = ens.predict_proba(grids)
    pred = ens.predict(grids)
    low = p.max(1) < 0.9
    assert low.any() and (~low).any()
    assert (pred[low] == "unknown").all()
    np.testing.assert_array_equal(pred[~low], ens.classes_[p.argmax(1)][~low])
    t = ens.predict_table(grids, causes=False)
    assert t["pattern"].tolist() == pred.tolist()
    np.testing.assert_allclose(t["probability"], p.max(1))


def test_file_round_trip(members, tmp_path):
    trees, cnn, grids, _ = members
    ens = EnsemblePatternClassifier([trees, cnn], weights=[0.4, 0.6], temperature=1.3, unknown_threshold=0.5)
    digest = ens.save(tmp_path / "m.npz", meta={"note": "x", "members": "ignored", "temperature": 9.0})
    back = EnsemblePatternClassifier.load(tmp_path / "m.npz", sha256=digest)
    np.testing.assert_allclose(back.predict_proba(grids), ens.predict_proba(grids), rtol=1e-12)
    assert back.metadata_["note"] == "x" and back.unknown_threshold == 0.5 and back.temperature == 1.3
    assert isinstance(back.members[0], WaferPatternClassifier) and isinstance(back.members[1], CNNPatternClassifier)
    data = (tmp_path / "m.npz").read_bytes()
    assert not data.startswith(b"\x80")  # not a pickle
    with pytest.raises(YieldkitValueError, match="SHA-256 mismatch"):
        EnsemblePatternClassifier.load(tmp_path / "m.npz", sha256="0" * 64)
    with pytest.raises(YieldkitValueError, match="not a yieldkit ensemble pattern model"):
        EnsemblePatternClassifier.from_bytes(trees.to_bytes())
    with pytest.raises(YieldkitValueError, match="not a yieldkit pattern model"):
        EnsemblePatternClassifier.from_bytes(b"junk")


def test_die_table_input(members):
    import yieldkit as yk

    trees, cnn, _, _ = members
    fab = yk.simulate_fab(n_lots=1, wafers_per_lot=2, random_state=3)
    t = EnsemblePatternClassifier([trees, cnn]).predict_table(fab.dies, causes=False)
    assert t[["lot_id", "wafer_id"]].values.tolist() == [["L0001", "01"], ["L0001", "02"]]
    assert isinstance(t, pd.DataFrame) and len(t) == 2


def test_errors(members):
    trees, cnn, _, _ = members
    with pytest.raises(YieldkitValueError, match="'weights' argument"):
        EnsemblePatternClassifier([trees, cnn], weights=[1.0])
    with pytest.raises(YieldkitValueError, match="'weights' argument"):
        EnsemblePatternClassifier([trees, cnn], weights=[0, 0])
    with pytest.raises(YieldkitValueError, match="'temperature' argument"):
        EnsemblePatternClassifier([trees], temperature=0)
    with pytest.raises(YieldkitValueError, match="'unknown_threshold' argument"):
        EnsemblePatternClassifier([trees], unknown_threshold=1.5)
    with pytest.raises(YieldkitValueError, match="'members' argument"):
        EnsemblePatternClassifier([])
    other = CNNPatternClassifier.from_net(cnn.net_, [f"k{i}" for i in range(len(cnn.classes_))], size=16)
    with pytest.raises(YieldkitValueError, match="same classes"):
        EnsemblePatternClassifier([trees, other])
    with pytest.raises(AttributeError, match="no boosted-tree member"):
        _ = EnsemblePatternClassifier([cnn]).forest_
