"""The pattern model shipped in the package: integrity check, metadata, and accuracy on held-out maps."""

from __future__ import annotations

import hashlib
import io
import pickle
from importlib import resources

import numpy as np
import pandas as pd
import pytest

from yieldkit.classify import pretrained
from yieldkit.classify.pattern import PATTERNS, WaferPatternClassifier
from yieldkit.classify.pretrained import ModelIntegrityError, load_pretrained, wm811k_heldout
from yieldkit.errors import YieldkitValueError


def test_shipped_file_hash_and_size():
    data = resources.files("yieldkit.classify").joinpath("data", pretrained.MODEL_FILE).read_bytes()
    assert hashlib.sha256(data).hexdigest() == pretrained.MODEL_SHA256
    assert len(data) < 5_000_000  # "a few MB at most"
    assert not data.startswith(b"\x80")  # not a pickle


def test_load_pretrained_metadata():
    clf = load_pretrained()
    assert tuple(clf.classes_) == PATTERNS
    meta = clf.metadata_
    assert "doi:10.1109/TSM.2014.2364237" in meta["data_citation"]
    assert "mirlab.org" in meta["data_citation"]
    assert meta["heldout_accuracy"] >= 0.97 and meta["heldout_macro_f1"] >= 0.92
    assert "map_sha1" in meta["split"]


def test_tampered_model_is_refused(monkeypatch):
    monkeypatch.setattr(pretrained, "MODEL_SHA256", "0" * 64)
    with pytest.raises(ModelIntegrityError, match="SHA-256 .* expected 0{64}"):
        load_pretrained()


def test_missing_model_is_refused(monkeypatch):
    monkeypatch.setattr(pretrained, "MODEL_FILE", "no_such_model.npz")
    with pytest.raises(ModelIntegrityError, match="missing"):
        load_pretrained()


def test_heldout_split_is_by_hash():
    sha = ["a0000005", "a0000005", "00000001", "0000000f"]
    m = wm811k_heldout(sha)
    assert m.tolist() == [True, True, False, True]
    assert wm811k_heldout(sha, fold=1).tolist() == [False, False, True, False]


def test_pretrained_on_heldout_subset(shared_samples):
    """A stratified sample of held-out real maps (never seen in training) is classified well."""
    path = shared_samples / "wafermaps" / "wm811k_dev.parquet"
    if not path.exists():
        pytest.skip("wm811k_dev.parquet absent")
    d = pd.read_parquet(path, columns=["label", "height", "width", "grid", "map_sha1"])
    d = d[wm811k_heldout(d["map_sha1"])]
    d = d.sample(frac=1.0, random_state=1).groupby("label").head(40)
    grids = [np.frombuffer(b, np.uint8).reshape(h, w) for b, h, w in zip(d["grid"], d["height"], d["width"])]
    pred = load_pretrained().predict(grids)
    acc = np.mean(pred == d["label"].to_numpy())
    assert acc > 0.85  # class-balanced sample: the weak classes weigh as much as 'none'


def test_predict_table_on_a_die_table_names_the_wafers():
    """A canonical die table in, one row per wafer out, led by lot_id and wafer_id."""
    import yieldkit as yk
    from yieldkit.classify import load_pretrained

    fab = yk.simulate_fab(n_lots=1, wafers_per_lot=3, signatures={1: "edge-ring"}, random_state=8)
    t = load_pretrained().predict_table(fab.dies, causes=True)
    assert t[["lot_id", "wafer_id"]].values.tolist() == [["L0001", "01"], ["L0001", "02"], ["L0001", "03"]]
    assert t.loc[1, "pattern"] == "Edge-Ring" and "candidate_causes" in t.columns


@pytest.mark.parametrize("kind", ["pickle", "object_npz", "junk"])
def test_bad_model_bytes_message_does_not_suggest_unpickling(kind):
    """A file that fails to load as a model: a short message, numpy's own text only in the cause.

    numpy's errors end in "... when allow_pickle=False"; repeated to the user, they read as
    advice to load an untrusted file with unpickling enabled.
    """
    if kind == "pickle":
        data = pickle.dumps({"format": "yieldkit"})
    elif kind == "object_npz":
        buf = io.BytesIO()
        np.savez(buf, meta_json=np.array([{"a": 1}], dtype=object))
        data = buf.getvalue()
    else:
        data = b"not a model"
    with pytest.raises(YieldkitValueError) as info:
        WaferPatternClassifier.from_bytes(data, source="m.npz")
    assert str(info.value) == "m.npz: not a yieldkit pattern model"
    assert "pickle" not in str(info.value).lower()
    assert info.value.__cause__ is not None


def test_damaged_model_file_is_a_clear_error():
    """A truncated zip is 'not a yieldkit pattern model', not a raw zipfile error."""
    import io
    import zipfile

    from yieldkit.classify import WaferPatternClassifier
    from yieldkit.errors import YieldkitValueError

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("a.npy", b"x" * 10)
    with pytest.raises(YieldkitValueError, match="not a yieldkit pattern model"):
        WaferPatternClassifier.from_bytes(buf.getvalue()[:-10])
