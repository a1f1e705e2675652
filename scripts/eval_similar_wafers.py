"""Measure similar-wafer retrieval (:class:`yieldkit.classify.SimilarWafers`) on the WM-811K development maps.

Data: ``../shared/samples/wafermaps/wm811k_dev.parquet`` (see ``SOURCES.md`` there; WM-811K must be
cited: Wu, Jang, Chen, IEEE Trans. Semicond. Manuf. 28(1):1-12, 2015, doi:10.1109/TSM.2014.2364237,
and MIR-WM811K, http://mirlab.org/dataset/public/). Exact duplicate maps are removed (first of each
``map_sha1`` kept). Queries: the maps held out of the shipped classifier's training,
``int(map_sha1[:8], 16) % 5 == 0`` (:func:`yieldkit.classify.pretrained.wm811k_heldout`; a split by
map hash, so it needs no seed); gallery: all other maps. Precision@10 and mAP@10 of the query's label
among its 10 nearest gallery maps, per class, for every representation.

Usage::

    .venv/bin/python scripts/eval_similar_wafers.py [--data DIR] [--subset N] [-o scores.csv]
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from yieldkit.classify.pretrained import wm811k_heldout  # noqa: E402
from yieldkit.classify.similar import REPRESENTATIONS, SimilarWafers, retrieval_scores  # noqa: E402

log = logging.getLogger("eval_similar_wafers")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "samples" / "wafermaps")
    ap.add_argument("--subset", type=int, default=None, help="use only this many maps (seed 0; development)")
    ap.add_argument("-k", type=int, default=10)
    ap.add_argument("-o", "--output", type=Path, help="write the per-class scores (CSV)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    d = pd.read_parquet(args.data / "wm811k_dev.parquet", columns=["wafer_id", "label", "height", "width", "grid",
                                                                   "map_sha1"])
    d = d[~d["map_sha1"].duplicated()].reset_index(drop=True)
    if args.subset:
        d = d.sample(n=min(args.subset, len(d)), random_state=0).reset_index(drop=True)
    grids = [np.frombuffer(b, np.uint8).reshape(h, w) for b, h, w in zip(d["grid"], d["height"], d["width"])]
    held = wm811k_heldout(d["map_sha1"])
    gi, qi = np.flatnonzero(~held), np.flatnonzero(held)
    log.info("gallery %d maps, queries %d maps", len(gi), len(qi))
    meta = d[["wafer_id", "label"]]
    y = d["label"].to_numpy()
    out = []
    for rep in reversed(REPRESENTATIONS):
        t0 = time.perf_counter()
        sw = SimilarWafers(representation=rep).fit([grids[i] for i in gi], meta.iloc[gi])
        t1 = time.perf_counter()
        res = sw.query([grids[i] for i in qi], k=args.k, exclude_duplicates=True)
        t2 = time.perf_counter()
        s = retrieval_scores(y[qi], y[gi][res.indices], k=args.k).assign(representation=rep)
        log.info("%s: fit %.0f s, query %.0f s; precision@%d %.3f, macro %.3f", rep, t1 - t0, t2 - t1, args.k,
                 s.set_index("class").loc["micro", "precision_at_k"], s.set_index("class").loc["macro", "precision_at_k"])
        out.append(s)
    table = pd.concat(out, ignore_index=True)
    for col in ("precision_at_k", "map_at_k"):
        wide = table.pivot(index="class", columns="representation", values=col)
        print(f"{col} (k = {args.k})")
        print(wide.round(3).to_string())
    if args.output:
        table.to_csv(args.output, index=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
