"""Mixed patterns: every signature of a wafer in predict_table, their causes, and the shipped MixedWM38 model."""

from __future__ import annotations

import numpy as np
import pandas as pd
from test_classify_pattern import _disc, synth

from yieldkit.classify.causes import attach_causes, pattern_causes
from yieldkit.classify.pattern import WaferPatternClassifier, signature_names


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


def test_attach_causes_of_a_mixed_pattern():
    t = attach_causes(pd.DataFrame({"pattern": ["Scratch + Center", "Scratch", "none", "Unknown + Other"]}))
    areas = pattern_causes().set_index("pattern")["process_area"]
    assert t["process_area"].tolist() == [areas["Scratch"] + " | " + areas["Center"], areas["Scratch"], "", ""]
