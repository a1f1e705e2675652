"""Train a boosted-tree multi-label (mixed-pattern) classifier on the MixedWM38 development maps.

The model shipped as ``load_pretrained("mixedwm38")`` is the CNN of ``scripts/train_mixed_cnn.py``
(held-out exact match 0.977 against these trees' 0.941); this script trains the boosted-tree
alternative and, with ``--out``, writes it elsewhere (its default still replaces the shipped file).

Data: the MixedWM38 development maps in ``../shared/samples/wafermaps/mixedwm38_partial_dev.parquet``
(see the data card ``SOURCES.md`` there). MixedWM38 must be cited: J. Wang, C. Xu, Z. Yang, J. Zhang,
X. Li, "Deformable Convolutional Networks for Efficient Mixed-Type Wafer Defect Pattern Recognition,"
IEEE Trans. Semicond. Manuf. 33(4), 2020, doi:10.1109/TSM.2020.3020985 (data:
github.com/Junliangwangdhu/WaferMap); the citation is stored in the model's metadata.

Split: a map is held out when ``int(map_sha1[:8], 16) % 5 == 0``
(:func:`yieldkit.classify.pretrained.wm811k_heldout`): about 20 % of the maps, identical maps always
on the same side, no seed needed. The model (one boosted binary model per signature on the pattern
features plus the 13 x 13 fail-density image, ``features="standard+image"``) is trained on the other
80 % only and its figures (exact match, per-label F1) are measured on the held-out maps.
Boosting seed: ``--seed`` (default 0). One thread (``--n-threads``) keeps a shared machine usable.

Usage::

    .venv/bin/python scripts/train_mixed_classifier.py [--data DIR] [--out FILE] [--update-hash]

``--update-hash`` writes the new file's SHA-256 into ``yieldkit/classify/pretrained.py``.
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
from yieldkit.classify.pretrained import MIXED_DATA_CITATION, MIXED_MODEL_FILE, wm811k_heldout  # noqa: E402

log = logging.getLogger("train_mixed_classifier")

# Near-full and Random occur only alone in MixedWM38 and those rows are not in the development maps
# (SOURCES.md), so the model learns the six signatures that combine.
LABELS = ["Center", "Donut", "Edge-Loc", "Edge-Ring", "Loc", "Scratch"]
PARAMS = {"max_iter": 200, "learning_rate": 0.1, "max_leaf_nodes": 31, "min_samples_leaf": 20,
          "l2_regularization": 1.0, "max_features": 0.5}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "samples" / "wafermaps")
    ap.add_argument("--out", type=Path, default=REPO / "yieldkit" / "classify" / "data" / MIXED_MODEL_FILE)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--features", default="standard+image", choices=("standard", "standard+image"))
    ap.add_argument("--max-iter", type=int, default=PARAMS["max_iter"])
    ap.add_argument("--n-threads", type=int, default=1, help="OpenMP threads for fitting")
    ap.add_argument("--update-hash", action="store_true")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    t0 = time.perf_counter()
    d = pd.read_parquet(args.data / "mixedwm38_partial_dev.parquet",
                        columns=["label", "height", "width", "grid", "map_sha1", *LABELS])
    grids = [np.frombuffer(b, np.uint8).reshape(h, w) for b, h, w in zip(d["grid"], d["height"], d["width"])]
    Y = d[LABELS].to_numpy(bool)
    held = wm811k_heldout(d["map_sha1"])
    tr, te = np.flatnonzero(~held), np.flatnonzero(held)
    log.info("maps: %d train, %d held out", len(tr), len(te))
    params = dict(PARAMS, max_iter=args.max_iter)
    clf = WaferPatternClassifier(multilabel=True, features=args.features, random_state=args.seed,
                                 n_threads=args.n_threads, **params)
    X = clf.transform_features(grids)
    t_feat = time.perf_counter() - t0
    log.info("features: %.1f s", t_feat)
    clf.input = "features"
    t1 = time.perf_counter()
    clf.fit(X[tr], pd.DataFrame(Y[tr], columns=LABELS))
    t_fit = time.perf_counter() - t1
    log.info("fit: %.1f s", t_fit)
    from sklearn.metrics import f1_score

    pred = clf.predict(X[te]).astype(bool)
    exact = float((pred == Y[te]).all(axis=1).mean())
    f1 = {lab: round(float(v), 4) for lab, v in zip(LABELS, f1_score(Y[te], pred, average=None), strict=True)}
    hamming = float((pred == Y[te]).mean())
    combos = d["label"].to_numpy()[te]
    per_combo = pd.Series((pred == Y[te]).all(axis=1)).groupby(combos).mean().round(4).to_dict()
    log.info("held-out exact match %.4f, label accuracy %.4f, F1 %s", exact, hamming, f1)
    import sklearn

    clf.input = "grids"  # the saved model takes grids and computes its features itself
    clf.feature_names_ = clf._grid_feature_names()
    meta = {
        "name": "mixedwm38-patterns",
        "trained": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "training_data": "MixedWM38 development maps (mixedwm38_partial_dev.parquet, 19,534 maps, 36 of the 38 "
                         "label combinations; 52 x 52 dies)",
        "split": "held out when int(map_sha1[:8], 16) % 5 == 0; trained on the rest",
        "n_train": int(len(tr)), "n_heldout": int(len(te)), "seed": args.seed,
        "heldout_exact_match": exact, "heldout_label_accuracy": hamming, "heldout_f1": f1,
        "heldout_exact_match_per_combination": per_combo,
        "train_seconds": round(t_feat + t_fit, 1), "sklearn_version_at_training": sklearn.__version__,
        "data_citation": MIXED_DATA_CITATION,
        "data_licence": "MixedWM38: no explicit data licence stated by the authors; research/benchmark use with "
                        "citation.",
    }
    digest = clf.save(args.out, meta=meta)
    size = args.out.stat().st_size
    log.info("wrote %s (%.2f MB), sha256 %s", args.out, size / 1e6, digest)
    if args.update_hash:
        update_model_hash("MIXED_MODEL_SHA256", digest)
    print(json.dumps({"exact_match": exact, "label_accuracy": hamming, "f1": f1, "fit_s": round(t_fit, 1),
                      "features_s": round(t_feat, 1), "sha256": digest, "bytes": size}, indent=1))
    assert hashlib.sha256(args.out.read_bytes()).hexdigest() == digest
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
