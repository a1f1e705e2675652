"""The classify and commonality subcommands, and the classify plots (Agg backend)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from test_classify_pattern import synth, synth_set
from test_commonality import simulate_history

from yieldkit.classify.grid import grids_to_dies
from yieldkit.classify.pattern import WaferPatternClassifier
from yieldkit.cli import main


@pytest.fixture(scope="module")
def small_model(tmp_path_factory):
    rng = np.random.default_rng(11)
    X, y = synth_set(rng, 25)
    clf = WaferPatternClassifier(max_iter=25, min_samples_leaf=5, random_state=0, n_threads=1).fit(X, y)
    path = tmp_path_factory.mktemp("model") / "m.npz"
    digest = clf.save(path)
    return path, digest


def test_cli_classify_with_model_file(tmp_path, small_model, capsys):
    path, digest = small_model
    rng = np.random.default_rng(5)
    kinds = ["Center", "Edge-Ring", "none", "Center"]
    dies = grids_to_dies([synth(k, rng, n=36) for k in kinds], lot_id=["A", "A", "B", "B"],
                         wafer_id=["1", "2", "1", "2"])
    src = tmp_path / "dies.csv"
    dies.to_csv(src, index=False)
    out, summ = tmp_path / "pred.csv", tmp_path / "summary.csv"
    rc = main(["-q", "classify", str(src), "--model", str(path), "--sha256", digest, "-o", str(out),
               "--summary", str(summ)])
    assert rc == 0
    pred = pd.read_csv(out)
    assert list(pred["pattern"]) == kinds
    assert {"lot_id", "wafer_id", "probability", "candidate_causes"} <= set(pred.columns)
    s = pd.read_csv(summ)
    assert s.loc[s["lot_id"] == "A", "wafers"].sum() == 2
    rc = main(["-q", "classify", str(src), "--model", str(path), "--sha256", "f" * 64])
    assert rc == 1
    assert "SHA-256 mismatch" in capsys.readouterr().err
    rc = main(["-q", "classify", str(src), "--model", str(path), "-o", str(tmp_path / "x.txt")])
    assert rc == 1


def test_cli_commonality(tmp_path, rng):
    wy, w = simulate_history(rng, n_lots=12)
    n_die = 200
    good = rng.binomial(n_die, wy["yield"].clip(0, 1).to_numpy())
    idx = np.repeat(np.arange(len(wy)), n_die)
    k = np.tile(np.arange(n_die), len(wy))
    passed = k < good[idx]
    dies = pd.DataFrame({"lot_id": wy["lot_id"].to_numpy()[idx], "wafer_id": wy["wafer_id"].to_numpy()[idx],
                         "die_x": k % 20, "die_y": k // 20, "hbin": np.where(passed, 1, 7)})
    dies.to_csv(tmp_path / "dies.csv", index=False)
    w.to_csv(tmp_path / "wafers.csv", index=False)
    out = tmp_path / "c.csv"
    png = tmp_path / "c.png"
    rc = main(["-q", "commonality", str(tmp_path / "dies.csv"), str(tmp_path / "wafers.csv"), "-o", str(out),
               "--plot", str(png), "--no-importance"])
    assert rc == 0
    t = pd.read_csv(out)
    assert t.loc[0, "factor"] == "chamber_etch" and t.loc[0, "p_adj"] < 0.01
    assert png.stat().st_size > 1000


def test_plots(rng):
    import matplotlib

    from yieldkit.classify.causes import pattern_summary
    from yieldkit.classify.defect import classification_report_table
    from yieldkit.commonality import commonality
    from yieldkit.plotting.classify import plot_commonality, plot_confusion, plot_grid, plot_pattern_counts

    im = plot_grid(synth("Scratch", rng)).images[-1]
    assert isinstance(im, matplotlib.image.AxesImage)
    rep = classification_report_table(["a", "b", "b"], ["a", "a", "b"])
    im = plot_confusion(rep.confusion).images[-1]
    assert im.get_array()[1, 0] == pytest.approx(0.5)
    assert isinstance(rep.plot().images[-1], matplotlib.image.AxesImage)
    wy, w = simulate_history(rng, n_lots=6)
    bars = plot_commonality(commonality(wy, w, importance=False), top=5).containers[0]
    assert len(bars.patches) == 5
    s = pattern_summary(pd.DataFrame({"lot_id": ["A", "A", "B"], "pattern": ["Center", "none", "none"]}))
    drawn = plot_pattern_counts(s).containers
    assert len(drawn) == 2
    matplotlib.pyplot.close("all")
