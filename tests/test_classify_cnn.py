"""The numpy CNN: grid_tensor, ConvNet against independent implementations, CNNPatternClassifier."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest
from scipy import signal

from yieldkit.classify.cnn import CNNPatternClassifier, ConvNet, grid_tensor, model_from_bytes
from yieldkit.classify.pattern import PatternNotFittedError, WaferPatternClassifier
from yieldkit.errors import NotFittedError, YieldkitValueError


# ---------------------------------------------------------------- independent references
def naive_conv(x, w, b, stride, pad):
    """Explicit loops over output cells (cross-correlation, zero padding), float64."""
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    xp = np.zeros((n, c, h + 2 * pad[0], wd + 2 * pad[1]))
    xp[:, :, pad[0]:pad[0] + h, pad[1]:pad[1] + wd] = x
    oh = (h + 2 * pad[0] - kh) // stride[0] + 1
    ow = (wd + 2 * pad[1] - kw) // stride[1] + 1
    out = np.zeros((n, o, oh, ow))
    for i in range(n):
        for k in range(o):
            for r in range(oh):
                for s in range(ow):
                    patch = xp[i, :, r * stride[0]:r * stride[0] + kh, s * stride[1]:s * stride[1] + kw]
                    out[i, k, r, s] = (patch * w[k]).sum() + b[k]
    return out


def scipy_conv(x, w, b, stride, pad):
    """scipy.signal.correlate per (image, output, input channel), then strided."""
    xp = np.pad(x, ((0, 0), (0, 0), (pad[0], pad[0]), (pad[1], pad[1])))
    out = []
    for img in xp:
        maps = [sum(signal.correlate(img[c], w[k, c], mode="valid") for c in range(w.shape[1])) + b[k]
                for k in range(w.shape[0])]
        out.append(np.stack(maps)[:, ::stride[0], ::stride[1]])
    return np.stack(out)


def naive_maxpool(x, k, s, pad=0):
    n, c, h, w = x.shape
    xp = np.full((n, c, h + 2 * pad, w + 2 * pad), -np.inf)
    xp[:, :, pad:pad + h, pad:pad + w] = x
    oh, ow = (h + 2 * pad - k) // s + 1, (w + 2 * pad - k) // s + 1
    out = np.zeros((n, c, oh, ow))
    for r in range(oh):
        for q in range(ow):
            out[:, :, r, q] = xp[:, :, r * s:r * s + k, q * s:q * s + k].max(axis=(2, 3))
    return out


def _conv_net(w, b, stride, pad):
    return ConvNet({"layers": [{"type": "conv2d", "name": "c", "stride": stride, "padding": pad}, {"type": "flatten"}]},
                   {"c_weight": w, "c_bias": b})


@pytest.mark.parametrize(("stride", "pad", "k"), [(1, 0, 3), (1, 1, 3), (2, 1, 3), (2, 0, 2), ((1, 2), (2, 0), (3, 2))])
def test_conv2d_equals_explicit_loops_and_scipy_correlate(rng, stride, pad, k):
    """Reference: explicit loops over output cells and scipy.signal.correlate; float32 vs float64, rtol 1e-5."""
    kh, kw = (k, k) if isinstance(k, int) else k
    st = (stride, stride) if isinstance(stride, int) else stride
    pd_ = (pad, pad) if isinstance(pad, int) else pad
    x = rng.normal(size=(3, 4, 9, 11))
    w = rng.normal(size=(5, 4, kh, kw))
    b = rng.normal(size=5)
    got = _conv_net(w, b, list(st), list(pd_)).forward(x)
    ref = naive_conv(x, w, b, st, pd_)
    np.testing.assert_allclose(got, ref.reshape(3, -1), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(scipy_conv(x, w, b, st, pd_), ref, rtol=1e-10, atol=1e-10)


def test_pooling_gap_dense_and_relu_equal_references(rng):
    """maxpool (reshape path and strided-window path, padded), relu, GAP and dense against loops/numpy, rtol 1e-5."""
    x = rng.normal(size=(2, 3, 9, 8))
    for k, s, p in ((2, 2, 0), (3, 2, 1), (3, 1, 0)):
        net = ConvNet({"layers": [{"type": "maxpool", "kernel": k, "stride": s, "padding": p}, {"type": "flatten"}]}, {})
        np.testing.assert_allclose(net.forward(x), naive_maxpool(x, k, s, p).reshape(2, -1), rtol=1e-6)
    w = rng.normal(size=(4, 3))
    b = rng.normal(size=4)
    net = ConvNet({"layers": [{"type": "relu"}, {"type": "gap"}, {"type": "dense", "name": "d"}]},
                  {"d_weight": w, "d_bias": b})
    ref = np.maximum(x, 0).mean(axis=(2, 3)) @ w.T + b
    np.testing.assert_allclose(net.forward(x), ref, rtol=1e-5, atol=1e-6)


def test_whole_network_and_chunking_and_feature_branch(rng):
    """A conv-relu-pool-conv-relu-flatten-features-dense net against the references, in chunks of 1, 2 and 64."""
    x = rng.random((5, 2, 12, 12))
    f = rng.normal(size=(5, 3))
    arrays = {"c1_weight": rng.normal(size=(4, 2, 3, 3)), "c1_bias": rng.normal(size=4),
              "c2_weight": rng.normal(size=(6, 4, 3, 3)), "c2_bias": rng.normal(size=6),
              "f_mean": rng.normal(size=3), "f_scale": rng.random(3) + 0.5,
              "d_weight": rng.normal(size=(2, 6 * 3 * 3 + 3)), "d_bias": rng.normal(size=2)}
    spec = {"layers": [{"type": "conv2d", "name": "c1", "padding": 1}, {"type": "relu"},
                       {"type": "maxpool", "kernel": 2},
                       {"type": "conv2d", "name": "c2", "stride": 2, "padding": 1}, {"type": "relu"},
                       {"type": "flatten"}, {"type": "features", "name": "f"}, {"type": "dense", "name": "d"}]}
    net = ConvNet(spec, arrays)
    a = np.maximum(naive_conv(x, arrays["c1_weight"], arrays["c1_bias"], (1, 1), (1, 1)), 0)
    a = np.maximum(naive_conv(naive_maxpool(a, 2, 2), arrays["c2_weight"], arrays["c2_bias"], (2, 2), (1, 1)), 0)
    a = np.c_[a.reshape(5, -1), (f - arrays["f_mean"]) / arrays["f_scale"]]
    ref = a @ arrays["d_weight"].T + arrays["d_bias"]
    for chunk in (1, 2, 64):
        got = net.forward(x, features=f, chunk=chunk)
        assert got.dtype == np.float32 and got.shape == (5, 2)
        np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4)
    back = ConvNet.from_arrays(net.to_arrays("m_"), net.spec, prefix="m_")
    np.testing.assert_array_equal(back.forward(x, features=f), net.forward(x, features=f))
    with pytest.raises(YieldkitValueError, match="pass 'features'"):
        net.forward(x)
    with pytest.raises(YieldkitValueError, match="'features' argument of ConvNet.forward must have shape"):
        net.forward(x, features=f[:, :2])


def test_logits_do_not_depend_on_the_batch(rng):
    """A wafer's logits are bit-identical whether it is predicted alone, in a short batch or in a
    long one (float32 BLAS products of different shapes round differently; every chunk is padded
    to the same shape), so a die table split into partitions gives the in-memory answer."""
    from yieldkit.classify.pretrained import load_pretrained

    clf = load_pretrained("mixedwm38")
    grids = []
    for _ in range(75):
        g = rng.choice(np.array([1, 2], np.uint8), size=(30, 30), p=[0.8, 0.2])
        g[:2] = 0
        grids.append(g)
    net, x = clf.net_, clf._image(grids)
    whole = net.forward(x)
    for step, start in ((1, 0), (7, 3), (32, 5), (45, 0)):
        parts = np.concatenate([net.forward(x[a:a + step]) for a in range(start, len(x), step)])
        np.testing.assert_array_equal(parts, whole[start:])


def test_convnet_spec_errors():
    with pytest.raises(YieldkitValueError, match="non-empty list 'layers'"):
        ConvNet({}, {})
    with pytest.raises(ValueError, match="layers\\[0\\]\\['type'\\]"):
        ConvNet({"layers": [{"type": "softmax"}]}, {})
    with pytest.raises(YieldkitValueError, match="array 'c_bias' of layer 0"):
        ConvNet({"layers": [{"type": "conv2d", "name": "c"}]}, {"c_weight": np.zeros((1, 1, 3, 3))})
    with pytest.raises(YieldkitValueError, match="must be 4-D"):
        ConvNet({"layers": [{"type": "relu"}, {"type": "gap"}]}, {}).forward(np.zeros((2, 3)))


# ---------------------------------------------------------------- grid_tensor
def test_grid_tensor_is_exact_on_integer_ratios(rng):
    g = rng.integers(0, 3, size=(3, 12, 8)).astype(np.uint8)
    fail, die = (g == 2).astype(float), (g > 0).astype(float)
    same = grid_tensor(g[:, :8, :8], size=8)
    np.testing.assert_array_equal(same[:, 0], fail[:, :8, :8])
    np.testing.assert_array_equal(same[:, 1], die[:, :8, :8])
    down = grid_tensor(g[:, :8, :8], size=4)  # 2 x 2 blocks averaged
    np.testing.assert_allclose(down[:, 0], fail[:, :8, :8].reshape(3, 4, 2, 4, 2).mean(axis=(2, 4)), atol=1e-7)
    np.testing.assert_allclose(down[:, 1], die[:, :8, :8].reshape(3, 4, 2, 4, 2).mean(axis=(2, 4)), atol=1e-7)
    up = grid_tensor(list(g[:, :4, :4]), size=12)  # every cell repeated 3 x 3
    np.testing.assert_allclose(up[:, 0], np.kron(fail[:, :4, :4], np.ones((1, 3, 3))), atol=1e-6)
    rect = grid_tensor(g, size=4)  # 3 x 2 blocks
    np.testing.assert_allclose(rect[:, 1], die.reshape(3, 4, 3, 4, 2).mean(axis=(2, 4)), atol=1e-6)
    assert rect.dtype == np.float32 and rect.shape == (3, 2, 4, 4)


def test_grid_tensor_keeps_the_fail_fraction_for_any_ratio(rng):
    grids = [rng.integers(0, 3, size=s).astype(np.uint8) for s in ((13, 17), (52, 52), (7, 5), (100, 61))]
    grids.append(grids[0].copy())  # same shape as the first: resampled in one batch with it
    t = grid_tensor(grids, size=24)
    for g, img in zip(grids, t, strict=True):
        area = g.size / 24**2
        assert img[0].sum() * area == pytest.approx((g == 2).sum(), rel=1e-5)
        assert img[1].sum() * area == pytest.approx((g > 0).sum(), rel=1e-5)
        assert img.min() >= 0 and img.max() <= 1 and (img[0] <= img[1] + 1e-6).all()
    np.testing.assert_array_equal(t[0], t[4])
    assert grid_tensor([], size=8).shape == (0, 2, 8, 8)
    with pytest.raises(YieldkitValueError, match="'size' argument of grid_tensor"):
        grid_tensor(grids, size=0)
    with pytest.raises(YieldkitValueError, match="values 0 \\(no die\\), 1 \\(pass\\), 2 \\(fail\\)"):
        grid_tensor([np.full((4, 4), 3)])


# ---------------------------------------------------------------- the classifier
def _center_net(multilabel=True):
    """Two outputs: a 'Center' detector (fail share of the middle of an 8 x 8 image) and a constant."""
    w = np.zeros((2, 2, 8, 8))
    w[0, 0, 2:6, 2:6] = 1.0
    arrays = {"c_weight": w, "c_bias": np.array([-4.0, -3.0]), "d_weight": np.eye(2) * 2, "d_bias": np.zeros(2)}
    spec = {"layers": [{"type": "conv2d", "name": "c"}, {"type": "flatten"}, {"type": "dense", "name": "d"}]}
    return ConvNet(spec, arrays)


def _grids():
    base = np.ones((16, 16), np.uint8)
    c = base.copy()
    c[5:11, 5:11] = 2
    return [c, base.copy(), c.copy()]


def test_multilabel_predict_and_table_columns():
    clf = CNNPatternClassifier.from_net(_center_net(), ["Center", "Edge-Ring"], size=8, multilabel=True)
    p = clf.predict_proba(_grids())
    assert p.shape == (3, 2) and p[0, 0] > 0.9 and p[1, 0] < 0.01 and (p[:, 1] < 0.01).all()
    np.testing.assert_array_equal(clf.predict(_grids()), [[1, 0], [0, 0], [1, 0]])
    t = clf.predict_table(_grids(), wafers=pd.DataFrame({"lot_id": ["L"] * 3, "wafer_id": ["1", "2", "3"]}))
    assert list(t.columns) == ["lot_id", "wafer_id", "pattern", "n_patterns", "p_Center", "p_Edge-Ring",
                               "process_area", "candidate_causes"]
    assert t["pattern"].astype(str).tolist() == ["Center", "none", "Center"] and t["n_patterns"].tolist() == [1, 0, 1]
    ref = WaferPatternClassifier.predict_table.__doc__
    assert ref is not None and "n_patterns" in ref


def test_softmax_mode_temperature_and_unknown():
    net = _center_net()
    clf = CNNPatternClassifier.from_net(net, ["Center", "none"], size=8)
    p = clf.predict_proba(_grids())
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    assert clf.predict(_grids()).tolist() == ["Center", "none", "Center"]
    t = clf.predict_table(_grids(), causes=False)
    assert list(t.columns) == ["pattern", "probability", "p_Center", "p_none"]
    hot = CNNPatternClassifier.from_net(net, ["Center", "none"], size=8, temperature=100.0)
    assert hot.predict_proba(_grids()).max() < 0.6  # a high temperature flattens the probabilities
    unk = CNNPatternClassifier.from_net(net, ["Center", "none"], size=8, temperature=100.0, unknown_threshold=0.6)
    assert unk.predict(_grids()).tolist() == ["unknown"] * 3
    assert unk.predict_table(_grids())["pattern"].astype(str).tolist() == ["unknown"] * 3
    with pytest.raises(YieldkitValueError, match="'temperature' argument of CNNPatternClassifier"):
        CNNPatternClassifier.from_net(net, ["Center", "none"], temperature=0)
    with pytest.raises(YieldkitValueError, match="2 outputs for 3 classes"):
        CNNPatternClassifier.from_net(net, ["a", "b", "c"])
    with pytest.raises(NotFittedError):
        CNNPatternClassifier().predict(_grids())
    with pytest.raises(PatternNotFittedError):
        CNNPatternClassifier().to_bytes()


def test_die_table_input_gives_one_row_per_wafer():
    from yieldkit.classify.grid import grids_to_dies

    dies = grids_to_dies(_grids(), lot_id="L1", wafer_id=["1", "2", "3"])
    clf = CNNPatternClassifier.from_net(_center_net(), ["Center", "Edge-Ring"], size=8, multilabel=True)
    t = clf.predict_table(dies)
    assert t[["lot_id", "wafer_id"]].astype(str).to_numpy().tolist() == [["L1", "1"], ["L1", "2"], ["L1", "3"]]
    assert t["pattern"].astype(str).tolist() == ["Center", "none", "Center"]


def test_feature_branch_round_trips(rng, tmp_path):
    from yieldkit.classify.features import extract_features, feature_names

    nf = len(feature_names())
    arrays = {"f_mean": np.zeros(nf), "f_scale": np.ones(nf), "d_weight": rng.normal(size=(2, 2 + nf)) * 0.1,
              "d_bias": np.zeros(2)}
    net = ConvNet({"layers": [{"type": "gap"}, {"type": "features", "name": "f"}, {"type": "dense", "name": "d"}]},
                  arrays)
    clf = CNNPatternClassifier.from_net(net, ["Center", "none"], size=8, features="standard")
    g = _grids()
    t = grid_tensor(g, 8).mean(axis=(2, 3))
    ref = np.c_[t, np.nan_to_num(extract_features(g))] @ arrays["d_weight"].T
    np.testing.assert_allclose(clf.decision_function(g), ref, rtol=1e-4, atol=1e-4)
    clf.save(tmp_path / "m.npz")
    back = CNNPatternClassifier.load(tmp_path / "m.npz")
    assert back.features == "standard" and back.feature_names_ == feature_names()
    np.testing.assert_allclose(back.predict_proba(g), clf.predict_proba(g))
    with pytest.raises(YieldkitValueError, match="takes 0 extra features"):
        CNNPatternClassifier.from_net(_center_net(), ["Center", "Edge-Ring"], features="standard")


def test_save_load_round_trip_and_integrity(tmp_path):
    clf = CNNPatternClassifier.from_net(_center_net(), ["Center", "Edge-Ring"], size=8, multilabel=True,
                                        threshold=0.4)
    path = tmp_path / "m.npz"
    digest = clf.save(path, meta={"note": "test"})
    assert digest == hashlib.sha256(path.read_bytes()).hexdigest()
    assert not path.read_bytes().startswith(b"\x80")
    back = CNNPatternClassifier.load(path, sha256=digest.upper())
    assert back.multilabel and back.threshold == 0.4 and back.size == 8 and list(back.classes_) == ["Center", "Edge-Ring"]
    assert back.metadata_["note"] == "test" and back.metadata_["spec"] == clf.net_.spec
    np.testing.assert_array_equal(back.predict_proba(_grids()), clf.predict_proba(_grids()))
    assert isinstance(model_from_bytes(path.read_bytes()), CNNPatternClassifier)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    bad = tmp_path / "bad.npz"
    bad.write_bytes(bytes(data))
    with pytest.raises(YieldkitValueError, match="SHA-256 mismatch"):
        CNNPatternClassifier.load(bad, sha256=digest)
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(YieldkitValueError, match="not a yieldkit CNN pattern model"):
        CNNPatternClassifier.load(tmp_path / "junk.npz")
    trees = WaferPatternClassifier(max_iter=2, min_samples_leaf=1).fit(_grids() * 4, ["Center", "none", "Center"] * 4)
    trees.save(tmp_path / "trees.npz")
    with pytest.raises(YieldkitValueError, match="format 'yieldkit-wafer-pattern-model'"):
        CNNPatternClassifier.load(tmp_path / "trees.npz")
    assert isinstance(model_from_bytes((tmp_path / "trees.npz").read_bytes()), WaferPatternClassifier)


def test_cli_classify_reads_a_saved_cnn_model(tmp_path):
    """``yieldkit classify --model PATH`` takes a CNN model file too, with the SHA-256 check."""
    from yieldkit.classify.grid import grids_to_dies
    from yieldkit.cli import main

    clf = CNNPatternClassifier.from_net(_center_net(), ["Center", "Edge-Ring"], size=8, multilabel=True)
    path = tmp_path / "cnn.npz"
    digest = clf.save(path)
    src = tmp_path / "dies.csv"
    grids_to_dies(_grids(), lot_id="A", wafer_id=["1", "2", "3"]).to_csv(src, index=False)
    out = tmp_path / "pred.csv"
    assert main(["-q", "classify", str(src), "--model", str(path), "--sha256", digest, "-o", str(out)]) == 0
    pred = pd.read_csv(out)
    assert pred["pattern"].tolist() == ["Center", "none", "Center"] and pred["n_patterns"].tolist() == [1, 0, 1]
    assert main(["-q", "classify", str(src), "--model", str(path), "--sha256", "f" * 64]) != 0


def test_the_shipped_cnn_runs_without_torch():
    """Loading and running the shipped CNN imports no deep-learning framework."""
    import subprocess
    import sys

    code = ("import sys, numpy as np\n"
            "from yieldkit.classify.pretrained import load_pretrained\n"
            "clf = load_pretrained('mixedwm38')\n"
            "clf.predict(np.ones((1, 52, 52), np.uint8))\n"
            "bad = [m for m in ('torch', 'tensorflow', 'jax', 'onnxruntime') if m in sys.modules]\n"
            "assert not bad, bad\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=300)


def test_box_margin_gives_the_training_layout_for_cut_grids(rng):
    """box_margin=1: a 52 x 52 map with an empty first row and column and its 51 x 51 cut (as a die table
    gives it) make the same image, equal to the raw map's grid_tensor."""
    g = np.zeros((52, 52), np.uint8)
    g[1:, 1:] = rng.integers(1, 3, size=(51, 51))
    g[1:6, 1:6] = 0
    net = ConvNet({"layers": [{"type": "flatten"}, {"type": "dense", "name": "d"}]},
                  {"d_weight": rng.normal(size=(1, 2 * 52 * 52)), "d_bias": np.zeros(1)})
    clf = CNNPatternClassifier.from_net(net, ["Center"], size=52, multilabel=True, box_margin=1)
    raw = grid_tensor([g], 52)
    np.testing.assert_array_equal(clf._image([g, g[1:, 1:]]), np.r_[raw, raw])
    np.testing.assert_allclose(clf.decision_function([g[1:, 1:]]), net.forward(raw), rtol=1e-6)
    tall = np.ones((6, 4), np.uint8)  # padded to a centred 6 x 6 square, then resampled to 5 (size 6 - margin 1)
    img = CNNPatternClassifier.from_net(net, ["Center"], size=6, multilabel=True, box_margin=1)._image([tall])
    assert img[0, 1, 0].sum() == 0 and img[0, 1, :, 0].sum() == 0 and img[0, 1].sum() == pytest.approx(25 * 24 / 36, rel=1e-5)
    with pytest.raises(YieldkitValueError, match="'box_margin' argument"):
        CNNPatternClassifier.from_net(net, ["Center"], size=52, box_margin=52)
