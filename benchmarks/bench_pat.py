"""Benchmark of outlier screening: a 25-wafer lot of ~10,000 dies x 50 tests.

Times, on one in-memory lot:

1. dynamic PAT -- per-lot limits of every test on the good dies (``pat_limits`` with
   ``method="dynamic"``) and the screen of every die against them (``apply_pat``);
2. every geographic rule at once (``geo_pat`` with Z-PAT, reticle, bad-cluster ring, GDBN count,
   opposite sides, weighted and NNR on one test), on the parametric screen's output;

and, for scale, a plain pandas/numpy baseline of the same dynamic-PAT computation (groupby mean and
standard deviation of the good dies' values per lot and test, merge back, flag, collect the inked
dies). Prints the times and the ratio baseline / yieldkit. The target is < 2 s for 1 + 2.

Usage: ``.venv/bin/python benchmarks/bench_pat.py [--dies 10000] [--tests 50] [--wafers 25]``
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def make_lot(n_dies: int, n_tests: int, n_wafers: int, seed: int = 1) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A lot on a round wafer of about ``n_dies`` dies: clustered fails, 50 parametric tests."""
    rng = np.random.default_rng(seed)
    r = int(np.ceil(np.sqrt(n_dies / np.pi))) + 1
    xs, ys = np.meshgrid(np.arange(-r, r + 1), np.arange(-r, r + 1))
    on = (xs + 0.5) ** 2 + (ys + 0.5) ** 2 <= r * r
    order = np.argsort(((xs + 0.5) ** 2 + (ys + 0.5) ** 2)[on], kind="stable")[:n_dies]
    gx, gy = xs[on][order], ys[on][order]
    n = len(gx)
    w = np.repeat(np.arange(n_wafers), n)
    x, y = np.tile(gx, n_wafers), np.tile(gy, n_wafers)
    # clustered fails: a smooth random field per wafer plus random fails
    centres = rng.uniform(-r, r, (n_wafers, 3, 2))
    dist = np.min(np.hypot(x[:, None] - centres[w, :, 0], y[:, None] - centres[w, :, 1]), axis=1)
    p_fail = 0.05 + 0.6 * np.exp(-dist / 4)
    passed = rng.random(len(w)) >= p_fail
    dies = pd.DataFrame({
        "lot_id": pd.array(np.full(len(w), "LOT1", dtype=object), dtype="string[pyarrow]"),
        "wafer_id": pd.array(np.array([f"W{i:02d}" for i in range(n_wafers)], dtype=object)[w], dtype="string[pyarrow]"),
        "die_x": x.astype(np.int32), "die_y": y.astype(np.int32),
        "hbin": np.where(passed, 1, 2).astype(np.int32), "passed": passed,
    })
    m = len(dies)
    mu = rng.uniform(0.5, 2.0, n_tests)
    sd = mu * 0.02
    v = (mu[None, :] + sd[None, :] * rng.standard_normal((m, n_tests))).ravel()
    out = rng.random(len(v)) < 2e-5
    v[out] += 12 * np.tile(sd, m)[out]
    rep = np.repeat(np.arange(m), n_tests)
    tests = pd.DataFrame({
        "lot_id": dies["lot_id"].take(rep).reset_index(drop=True),
        "wafer_id": dies["wafer_id"].take(rep).reset_index(drop=True),
        "die_x": x.astype(np.int32)[rep], "die_y": y.astype(np.int32)[rep],
        "test_num": np.tile(np.arange(100, 100 + n_tests), m).astype(np.int64), "value": v,
    })
    return dies, tests


def baseline(dies: pd.DataFrame, tests: pd.DataFrame, k: float = 6.0) -> set[tuple[str, int, int]]:
    """Dynamic PAT in plain pandas: good dies' values per (lot, test) -> mean +/- k s -> flagged dies."""
    key = ["lot_id", "wafer_id", "die_x", "die_y"]
    t = tests.merge(dies[key + ["passed"]], on=key, how="left")
    good = t[t["passed"]]
    st = good.groupby(["lot_id", "test_num"])["value"].agg(["mean", "std"]).reset_index()
    t = good.merge(st, on=["lot_id", "test_num"], how="left")
    bad = (t["value"] < t["mean"] - k * t["std"]) | (t["value"] > t["mean"] + k * t["std"])
    inked = t.loc[bad, key].drop_duplicates()
    return set(zip(inked["wafer_id"].astype(str), inked["die_x"], inked["die_y"]))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dies", type=int, default=10_000)
    ap.add_argument("--tests", type=int, default=50)
    ap.add_argument("--wafers", type=int, default=25)
    args = ap.parse_args(argv)
    from yieldkit.pat import GEO_RULES, apply_pat, geo_pat, pat_limits

    dies, tests = make_lot(args.dies, args.tests, args.wafers)
    print(f"lot: {args.wafers} wafers x {len(dies) // args.wafers} dies, {args.tests} tests: "
          f"{len(dies):,} dies, {len(tests):,} test rows")
    t0 = time.perf_counter()
    lim = pat_limits(tests, method="dynamic", k=6.0, by="lot_id", dies=dies)
    t1 = time.perf_counter()
    par = apply_pat(dies, tests, lim)
    t2 = time.perf_counter()
    geo = geo_pat(par.table, rules=GEO_RULES, shot=(4, 4), tests=tests, nnr_tests=[100])
    t3 = time.perf_counter()
    base = baseline(dies, tests)
    t4 = time.perf_counter()
    ours = set(zip(par.inked["wafer_id"].astype(str), par.inked["die_x"], par.inked["die_y"]))
    assert ours == base, (len(ours), len(base))
    dpat = t2 - t0
    print(f"dynamic PAT: limits {t1 - t0:.2f} s + screen {t2 - t1:.2f} s = {dpat:.2f} s "
          f"({par.n_good_before - par.n_good_after} dies inked)")
    print(f"geographic rules ({', '.join(GEO_RULES)}): {t3 - t2:.2f} s")
    print(geo.loss_by_rule.to_string(index=False))
    print(f"total: {t3 - t0:.2f} s (target < 2 s)")
    print(f"pandas baseline of dynamic PAT: {t4 - t3:.2f} s; ratio baseline / yieldkit = {(t4 - t3) / dpat:.1f}x "
          "(same inked dies)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
