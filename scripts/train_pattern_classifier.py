"""Train the boosted-tree wafer-map pattern classifier alone.

The model shipped as ``load_pretrained("wm811k")`` is written by ``scripts/train_pattern_cnn.py``:
these trees (fitted there on the training part only), temperature-scaled on a calibration part
and with an "unknown" threshold. This script fits the trees on everything that is not held out
and evaluates them, without calibration (``--out`` defaults to ``wm811k_trees.npz`` in the working
directory; ``--update-hash`` is for a deliberate replacement of the shipped file by the bare trees).
``--features`` chooses the feature set (default ``standard``, the shipped one).

Data: the WM-811K development maps in ``../shared/samples/wafermaps/wm811k_dev.parquet`` (see the
data card ``SOURCES.md`` there). Split: a map is held out when ``int(map_sha1[:8], 16) % 5 == 0``
(:func:`yieldkit.classify.pretrained.wm811k_heldout`): about 20 % of the maps, identical maps always
on the same side, no seed needed. The model is trained on the other 80 % only; the held-out part is
what ``benchmarks/bench_classify.py`` evaluates. Boosting seed: ``--seed`` (default 0).

Usage::

    .venv/bin/python scripts/train_pattern_classifier.py [--data DIR] [--out FILE] [--features SET] [--update-hash]

``--update-hash`` writes the new file's SHA-256 into ``yieldkit/classify/pretrained.py``.
WM-811K must be cited as its licence requires; the citation is stored in the model's metadata.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from _training import update_model_hash  # noqa: E402

from yieldkit.classify.pattern import WaferPatternClassifier  # noqa: E402
from yieldkit.classify.pretrained import DATA_CITATION, wm811k_heldout  # noqa: E402

log = logging.getLogger("train_pattern_classifier")

PARAMS = {"max_iter": 200, "learning_rate": 0.15, "max_leaf_nodes": 31, "min_samples_leaf": 20,
          "l2_regularization": 1.0, "max_features": 0.5, "class_weight": "balanced"}


def load_maps(path: Path) -> tuple[pd.DataFrame, list[np.ndarray]]:
    d = pd.read_parquet(path, columns=["wafer_id", "label", "height", "width", "grid", "map_sha1"])
    grids = [np.frombuffer(b, np.uint8).reshape(h, w) for b, h, w in zip(d["grid"], d["height"], d["width"])]
    return d.drop(columns="grid"), grids


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "samples" / "wafermaps")
    ap.add_argument("--out", type=Path, default=Path("wm811k_trees.npz"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--features", choices=("standard", "standard+spot"), default="standard")
    ap.add_argument("--n-threads", type=int, default=1, help="OpenMP threads for fitting (1 is fastest on a busy machine)")
    ap.add_argument("--subset", type=int, default=None, help="train on this many maps only (development)")
    ap.add_argument("--update-hash", action="store_true")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    t0 = time.perf_counter()
    meta_df, grids = load_maps(args.data / "wm811k_dev.parquet")
    y = meta_df["label"].to_numpy()
    held = wm811k_heldout(meta_df["map_sha1"])
    tr = np.flatnonzero(~held)
    if args.subset:
        tr = np.random.default_rng(args.seed).choice(tr, size=min(args.subset, len(tr)), replace=False)
    te = np.flatnonzero(held)
    log.info("maps: %d train, %d held out", len(tr), len(te))
    clf = WaferPatternClassifier(input="features", features=args.features, random_state=args.seed,
                                 n_threads=args.n_threads, **PARAMS)
    X = clf.transform_features(grids)
    t_feat = time.perf_counter() - t0
    log.info("features: %.1f s", t_feat)
    t1 = time.perf_counter()
    clf.fit(X[tr], y[tr])
    t_fit = time.perf_counter() - t1
    log.info("fit: %.1f s", t_fit)
    pred = clf.predict(X[te])
    from sklearn.metrics import accuracy_score, f1_score

    acc = float(accuracy_score(y[te], pred))
    mf1 = float(f1_score(y[te], pred, average="macro"))
    log.info("held-out accuracy %.4f, macro-F1 %.4f", acc, mf1)
    import sklearn

    clf.input = "grids"  # the saved model takes grids and computes its features itself
    clf.feature_names_ = clf._grid_feature_names()
    meta = {
        "name": "wm811k-patterns",
        "trained": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "training_data": "WM-811K development maps (wm811k_dev.parquet, 49,807 maps, 9 classes)",
        "split": "held out when int(map_sha1[:8], 16) % 5 == 0; trained on the rest",
        "n_train": int(len(tr)), "n_heldout": int(len(te)), "seed": args.seed,
        "heldout_accuracy": acc, "heldout_macro_f1": mf1, "features": args.features,
        "train_seconds": round(t_feat + t_fit, 1), "sklearn_version_at_training": sklearn.__version__,
        "data_citation": DATA_CITATION,
        "data_licence": "WM-811K: redistribution with or without modification permitted provided the "
                        "copyright notice and conditions are kept and the two references are cited.",
    }
    digest = clf.save(args.out, meta=meta)
    size = args.out.stat().st_size
    log.info("wrote %s (%.2f MB), sha256 %s", args.out, size / 1e6, digest)
    if args.update_hash:
        update_model_hash("MODEL_SHA256", digest)
    print(json.dumps({"accuracy": acc, "macro_f1": mf1, "fit_s": round(t_fit, 1), "features_s": round(t_feat, 1),
                      "sha256": digest, "bytes": size}, indent=1))
    assert hashlib.sha256(args.out.read_bytes()).hexdigest() == digest
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
