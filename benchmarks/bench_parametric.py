"""Capability of 10^7 parametric test results: yieldkit against a plain pandas groupby, in one run.

The long test table has 50 tests x 200,000 dies (20 lots of 25 wafers of 400 dies) by default.
yieldkit's :func:`~yieldkit.parametric.capability` computes per (lot, test) the within-wafer and
overall sigma, Cp/Cpk/Pp/Ppk with intervals and ppm; the baseline is what one writes by hand:
``groupby(["lot_id", "test_num"]).value.agg(["count", "mean", "std"])`` and Cpk from it (no
within sigma, no intervals). Prints wall times, the ratio and peak traced memory, and the largest
difference of Ppk between the two.

Usage: ``python benchmarks/bench_parametric.py [--rows 10000000] [--tests 50]``
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
from _timing import timed


def make_table(rows: int, n_tests: int, seed: int = 2026) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n_dies = max(rows // n_tests, 1)
    per_wafer, wafers_per_lot = 400, 25
    die = np.arange(n_dies)
    wafer = die // per_wafer
    lot = wafer // wafers_per_lot
    lots = pd.Categorical.from_codes(np.tile(lot, n_tests), [f"L{i:04d}" for i in range(int(lot.max()) + 1)])
    wafers = pd.Categorical.from_codes(np.tile(wafer % wafers_per_lot, n_tests), [f"{i:02d}" for i in range(25)])
    test = np.repeat(np.arange(n_tests, dtype=np.int64) + 1000, n_dies)
    mu = (test - 1000) * 0.1
    return pd.DataFrame({"lot_id": lots, "wafer_id": wafers, "test_num": test,
                         "value": rng.normal(mu, 1.0), "lo_limit": mu - 4.0, "hi_limit": mu + 4.0})


def baseline(t: pd.DataFrame) -> pd.DataFrame:
    g = t.groupby(["lot_id", "test_num"], observed=True, sort=True)
    s = g["value"].agg(["count", "mean", "std"])
    lim = g[["lo_limit", "hi_limit"]].first()
    s["ppk"] = np.minimum(s["mean"] - lim["lo_limit"], lim["hi_limit"] - s["mean"]) / (3 * s["std"])
    return s.reset_index()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=10_000_000, help="number of test results")
    ap.add_argument("--tests", type=int, default=50, help="number of distinct tests")
    args = ap.parse_args()

    from yieldkit.parametric import capability

    t = make_table(args.rows, args.tests)
    print(f"{len(t):,} test results, {args.tests} tests, {t['lot_id'].nunique()} lots")
    capability(t.head(10_000))  # imports and warm-up outside the timing
    baseline(t.head(10_000))
    res, t_yk, m_yk = timed(lambda: capability(t))
    print(f"yieldkit capability:     {t_yk:8.3f} s  peak {m_yk:8.1f} MiB  ({len(res.table):,} lot-test rows)")
    base, t_pd, m_pd = timed(lambda: baseline(t))
    print(f"pandas groupby baseline: {t_pd:8.3f} s  peak {m_pd:8.1f} MiB")
    print(f"ratio yieldkit / pandas: {t_yk / t_pd:8.2f}x")
    diff = np.nanmax(np.abs(res.table["ppk"].to_numpy() - base["ppk"].to_numpy()))
    print(f"largest |Ppk difference|: {diff:.3g}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
