"""Mixed patterns: every signature of a wafer in predict_table, their causes, and the shipped MixedWM38 model."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from test_classify_pattern import _disc, synth

from yieldkit.classify.causes import attach_causes, pattern_causes
from yieldkit.classify.cnn import CNNPatternClassifier
from yieldkit.classify.pattern import WaferPatternClassifier, signature_names
from yieldkit.errors import YieldkitValueError

EXACT_MATCH_FLOOR = 0.965


def _mixed(rng, n=120):
    grids, Y = [], []
    for _ in range(n):
        c, e = rng.random(2) < 0.5
        g = synth("none", rng, n=36)
        r, _, _ = _disc(36)
        if c:
            g[(r < 0.3) & (g > 0)] = 2
        if e:
            g[(r > 0.85) & (g > 0)] = 2
        grids.append(g)
        Y.append((c, e))
    return grids, pd.DataFrame(Y, columns=["Center", "Edge-Ring"])


def test_signature_names_lists_every_label_above_threshold():
    p = np.array([[0.6, 0.9, 0.1], [0.2, 0.1, 0.3], [0.5, 0.0, 0.0]])
    assert signature_names(p, ["Center", "Scratch", "Loc"]) == ["Scratch + Center", "none", "Center"]
    assert signature_names(p, ["Center", "Scratch", "Loc"], threshold=0.25) == ["Scratch + Center", "Loc", "Center"]


def test_multilabel_predict_table_lists_every_signature_with_causes(rng):
    grids, Y = _mixed(rng, 160)
    clf = WaferPatternClassifier(multilabel=True, max_iter=20, min_samples_leaf=5, n_threads=1).fit(grids[:120], Y[:120])
    t = clf.predict_table(grids[120:], wafers=pd.DataFrame({"lot_id": ["L"] * 40, "wafer_id": [str(i) for i in range(40)]}))
    assert list(t.columns[:4]) == ["lot_id", "wafer_id", "pattern", "n_patterns"]
    truth = Y[120:].to_numpy()
    both = truth.all(axis=1)
    pats = t["pattern"].astype(str).to_numpy()
    assert np.mean([set(p.split(" + ")) == {"Center", "Edge-Ring"} for p in pats[both]]) >= 0.9
    assert np.mean(pats[~truth.any(axis=1)] == "none") >= 0.9
    assert (t["n_patterns"].to_numpy() == (clf.predict_proba(grids[120:]) >= 0.5).sum(axis=1)).all()
    ok = t[pats == "Center + Edge-Ring"]
    causes = pattern_causes().set_index("pattern")["candidate_causes"]
    if len(ok):
        assert ok["candidate_causes"].iloc[0] == causes["Center"] + " | " + causes["Edge-Ring"]


def test_image_features_option_round_trips(rng, tmp_path):
    """features='standard+image' adds the 13 x 13 fail-density image; a saved model keeps the option."""
    from yieldkit.classify.features import feature_names, image_features

    grids, Y = _mixed(rng, 80)
    clf = WaferPatternClassifier(multilabel=True, features="standard+image", max_iter=10, min_samples_leaf=5,
                                 n_threads=1).fit(grids, Y)
    assert clf.n_features_in_ == len(feature_names()) + 169
    img = image_features([grids[0]])[0].reshape(13, 13)
    assert img.max() <= 1 and (img[6, 6] == 1.0) == bool(Y.loc[0, "Center"])
    path = tmp_path / "m.npz"
    clf.save(path)
    back = WaferPatternClassifier.load(path)
    assert back.features == "standard+image"
    np.testing.assert_allclose(back.predict_proba(grids[:5]), clf.predict_proba(grids[:5]))
    with pytest.raises(YieldkitValueError, match="'features' argument"):
        WaferPatternClassifier(features="pixels").fit(grids, Y)


def test_attach_causes_of_a_mixed_pattern():
    t = attach_causes(pd.DataFrame({"pattern": ["Scratch + Center", "Scratch", "none", "Unknown + Other"]}))
    areas = pattern_causes().set_index("pattern")["process_area"]
    assert t["process_area"].tolist() == [areas["Scratch"] + " | " + areas["Center"], areas["Scratch"], "", ""]


MIXED_LABELS = ["Center", "Donut", "Edge-Loc", "Edge-Ring", "Loc", "Scratch"]


def test_shipped_mixedwm38_model_file_hash_size_and_metadata():
    import hashlib
    from importlib import resources

    from yieldkit.classify import pretrained

    data = resources.files("yieldkit.classify").joinpath("data", pretrained.MIXED_MODEL_FILE).read_bytes()
    assert hashlib.sha256(data).hexdigest() == pretrained.MIXED_MODEL_SHA256
    assert len(data) < 5_000_000 and not data.startswith(b"\x80")  # a few MB, not a pickle
    clf = pretrained.load_pretrained("mixedwm38")
    assert isinstance(clf, CNNPatternClassifier) and clf.multilabel and clf.size == 52
    assert list(clf.classes_) == MIXED_LABELS and clf.features is None
    meta = clf.metadata_
    assert "doi:10.1109/TSM.2020.3020985" in meta["data_citation"] and "map_sha1" in meta["split"]
    assert meta["heldout_exact_match"] >= EXACT_MATCH_FLOOR
    assert min(meta["heldout_f1"].values()) >= 0.98 and len(meta["heldout_exact_match_per_combination"]) == 36


def test_tampered_mixedwm38_model_is_refused(monkeypatch):
    from yieldkit.classify import pretrained

    monkeypatch.setattr(pretrained, "MIXED_MODEL_SHA256", "1" * 64)
    with pytest.raises(pretrained.ModelIntegrityError, match="mixedwm38_patterns.npz has SHA-256"):
        pretrained.load_pretrained("mixedwm38")
    with pytest.raises(YieldkitValueError, match="'name' argument of load_pretrained"):
        pretrained.load_pretrained("wm38")


@pytest.fixture(scope="module")
def heldout_mixed(shared_samples):
    from yieldkit.classify.pretrained import wm811k_heldout

    path = shared_samples / "wafermaps" / "mixedwm38_partial_dev.parquet"
    if not path.exists():
        pytest.skip("mixedwm38_partial_dev.parquet absent")
    d = pd.read_parquet(path, columns=["label", "height", "width", "grid", "map_sha1", *MIXED_LABELS])
    d = d[wm811k_heldout(d["map_sha1"])].groupby("label").head(8)  # every combination, never seen in training
    grids = [np.frombuffer(b, np.uint8).reshape(h, w) for b, h, w in zip(d["grid"], d["height"], d["width"])]
    return d.reset_index(drop=True), grids


def test_shipped_mixedwm38_model_on_heldout_maps(heldout_mixed):
    from yieldkit.classify.pretrained import load_pretrained

    d, grids = heldout_mixed
    pred = load_pretrained("mixedwm38").predict(grids).astype(bool)
    assert (pred == d[MIXED_LABELS].to_numpy()).all(axis=1).mean() >= 0.9


def test_analysis_lists_every_signature_with_the_multilabel_model(heldout_mixed):
    """analyze(pattern_model='mixedwm38'): a wafer with three signatures shows all three."""
    import yieldkit as yk
    from yieldkit.classify.grid import grids_to_dies

    d, grids = heldout_mixed
    pick = [int(np.flatnonzero(d["label"] == lab)[0]) for lab in ("C-EL-S", "Normal", "D-L")]
    dies = grids_to_dies([grids[i] for i in pick], lot_id="L1", wafer_id=["1", "2", "3"])
    res = yk.analyze(dies, pattern_model="mixedwm38")
    pats = res.patterns["pattern"].astype(str).tolist()
    assert set(pats[0].split(" + ")) == {"Center", "Edge-Loc", "Scratch"}
    assert pats[1] == "none" and set(pats[2].split(" + ")) == {"Donut", "Loc"}
    assert res.patterns["n_patterns"].tolist() == [3, 0, 2]
    assert " | " in res.patterns["candidate_causes"].iloc[0]
    default = yk.analyze(dies)  # the default stays the single-label WM-811K model
    assert "probability" in default.patterns.columns and " + " not in "".join(default.patterns["pattern"].astype(str))


def test_cli_classify_with_the_multilabel_model(heldout_mixed, tmp_path):
    from yieldkit.classify.grid import grids_to_dies
    from yieldkit.cli import main

    d, grids = heldout_mixed
    pick = [int(np.flatnonzero(d["label"] == lab)[0]) for lab in ("C-ER-S", "L")]
    src = tmp_path / "dies.csv"
    grids_to_dies([grids[i] for i in pick], lot_id="A", wafer_id=["1", "2"]).to_csv(src, index=False)
    out = tmp_path / "pred.csv"
    assert main(["-q", "classify", str(src), "--model", "mixedwm38", "-o", str(out)]) == 0
    pred = pd.read_csv(out)
    assert set(pred.loc[0, "pattern"].split(" + ")) == {"Center", "Edge-Ring", "Scratch"}
    assert pred.loc[1, "pattern"] == "Loc" and pred["n_patterns"].tolist() == [3, 1]
