"""Benchmark of the similar-wafer search at gallery scale (the brute-force kernel of SimilarWafers.query).

The representation of a wafer costs the same whatever the gallery size (features of the query
wafers only), so this measures the search alone: ``n`` random gallery vectors of ``d`` dimensions
(e.g. after ``n_components=d``), 100 query wafers, without and with the 8 flips and rotations.
Prints the wall time [s] and the peak traced memory [MiB] of each search.

Usage: ``.venv/bin/python benchmarks/bench_similar.py [--n 1000000] [--d 32] [--k 10]``
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from _timing import timed  # noqa: E402


def main() -> int:
    from yieldkit.classify.similar import SimilarWafers

    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--d", type=int, default=32)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--queries", type=int, default=100)
    args = ap.parse_args()
    rng = np.random.default_rng(2026)
    sw = SimilarWafers(representation="features")
    sw.vectors_ = rng.standard_normal((args.n, args.d)).astype(np.float32)
    ghash = np.arange(args.n)
    for variants in (1, 8):
        Q = rng.standard_normal((args.queries, variants, args.d)).astype(np.float32)
        qhash = -np.arange(1, args.queries + 1)
        (idx, _), dt, peak = timed(lambda Q=Q, qhash=qhash: sw._search(Q, args.k, qhash, ghash, None, None, False))
        assert idx.shape == (args.queries, args.k)
        print(f"[similar] gallery {args.n:,} x {args.d}, {args.queries} queries x {variants} variant(s), k={args.k}: "
              f"{dt:.2f} s ({args.queries / dt:.0f} queries/s), peak {peak:.0f} MiB "
              f"(+ the gallery itself, {sw.vectors_.nbytes / 2**20:.0f} MiB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
