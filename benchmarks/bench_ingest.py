"""Ingest benchmark: read_dies + wafer_yield on 10 million die rows against bare pyarrow + numpy.

Generates ~10 million die rows (400 wafers x 25,000 dies) as Parquet, then times, each in a
fresh subprocess so that peak memory is measured per variant:

* yieldkit: ``read_dies`` (alias mapping, dtype coercion, validation, duplicate check) +
  ``wafer_yield`` (tested, good, yield, first-pass yield, Clopper-Pearson interval);
* baseline: ``pyarrow.parquet.read_table`` + ``Table.group_by`` (count and sum of passing
  dies per wafer) + numpy for the yield -- what a user would write by hand.

Prints the times, the ratio and each variant's peak resident memory. Target: within 1.3x of
the baseline and under 3 GB (``bench_hot_paths.py`` compares at 4 million rows, in fresh
processes, wall and CPU time). The imports (pandas, scipy.special and the readers for yieldkit;
``pyarrow.compute`` for the baseline, whose ``pyarrow.parquet`` is imported with this script) are
done before the timed runs and reported apart.

Usage: python benchmarks/bench_ingest.py [--wafers 400] [--dies 25000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

DATA = Path(__file__).resolve().parent / "_data"


def generate(path: Path, n_wafers: int, n_dies: int) -> None:
    rng = np.random.default_rng(0)
    side = int(np.ceil(np.sqrt(n_dies)))
    x = (np.arange(n_dies) % side).astype(np.int32)
    y = (np.arange(n_dies) // side).astype(np.int32)
    n = n_wafers * n_dies
    lots = np.array([f"L{i // 25:04d}" for i in range(n_wafers)])
    wafers = np.array([f"{i % 25 + 1:02d}" for i in range(n_wafers)])
    widx = np.repeat(np.arange(n_wafers), n_dies)
    hbin = np.where(rng.random(n) < 0.88, 1, rng.integers(2, 9, n)).astype(np.int32)
    tbl = pa.table(
        {
            "lot_id": pa.DictionaryArray.from_arrays(pa.array(widx // 25, pa.int32()), pa.array(np.unique(lots))).cast(pa.string()),
            "wafer_id": pa.array(wafers[widx]),
            "die_x": np.tile(x, n_wafers),
            "die_y": np.tile(y, n_wafers),
            "hbin": hbin,
            "sbin": (hbin * 10).astype(np.int32),
        }
    )
    pq.write_table(tbl, path)


def _usage() -> tuple[float, float, float, int]:
    """Wall clock [s], user and system CPU time [s] (all threads) and minor page faults of this process."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return time.perf_counter(), r.ru_utime, r.ru_stime, r.ru_minflt


def import_yieldkit() -> None:
    """What ``yk.read_dies`` and ``yk.wafer_yield`` import on first use (pandas, the readers, scipy.special)."""
    import yieldkit as yk

    yk.read_dies, yk.wafer_yield  # noqa: B018 -- the lazy imports


def import_baseline() -> None:
    """What the baseline uses (pyarrow.parquet is imported with this module)."""
    import pyarrow.compute  # noqa: F401


def run_yieldkit(path: str) -> dict:
    import yieldkit as yk

    t0 = time.perf_counter()
    dies = yk.read_dies(path)
    t1 = time.perf_counter()
    w = yk.wafer_yield(dies)
    t2 = time.perf_counter()
    return {"read": t1 - t0, "yield": t2 - t1, "total": t2 - t0, "wafers": len(w), "mean_yield": float(w["yield"].mean())}


def run_baseline(path: str) -> dict:
    import pyarrow.compute as pc

    t0 = time.perf_counter()
    tbl = pq.read_table(path)
    t1 = time.perf_counter()
    passed = pc.equal(tbl["hbin"], 1)
    tbl = tbl.append_column("passed", passed)
    g = tbl.group_by(["lot_id", "wafer_id"]).aggregate([("passed", "count"), ("passed", "sum")])
    tested = g["passed_count"].to_numpy()
    good = g["passed_sum"].to_numpy()
    y = good / tested
    t2 = time.perf_counter()
    return {"read": t1 - t0, "yield": t2 - t1, "total": t2 - t0, "wafers": len(y), "mean_yield": float(y.mean())}


def child(which: str, path: str, repeat: int) -> None:
    """Run one variant ``repeat`` times in this process; print the best run as JSON.

    The imports come first and are timed apart (``import``, ``import_cpu``); every run reports its
    wall time (``total``), its CPU time (``cpu``: user + system of all threads), its minor page faults
    (``minflt``), and the process's peak resident memory (``peak_rss_mb``; ``import_rss_mb`` after the imports)."""
    imp, fn = (import_yieldkit, run_yieldkit) if which == "yieldkit" else (import_baseline, run_baseline)
    u0 = _usage()
    imp()
    u1 = _usage()
    rss_imports = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    runs = []
    for _ in range(repeat):
        a = _usage()
        r = fn(path)
        b = _usage()
        r.update(user=b[1] - a[1], sys=b[2] - a[2], cpu=b[1] - a[1] + b[2] - a[2], minflt=b[3] - a[3])
        runs.append(r)
    best = min(runs, key=lambda r: r["total"])
    best.update({"import": u1[0] - u0[0], "import_cpu": u1[1] - u0[1] + u1[2] - u0[2], "import_rss_mb": rss_imports,
                 "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024})
    print(json.dumps(best))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--wafers", type=int, default=400)
    ap.add_argument("--dies", type=int, default=25_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--child", choices=("yieldkit", "baseline"))
    ap.add_argument("--path")
    a = ap.parse_args()
    if a.child:
        child(a.child, a.path, a.repeat)
        return 0
    DATA.mkdir(exist_ok=True)
    path = DATA / f"dies_{a.wafers}x{a.dies}.parquet"
    if not path.exists():
        print(f"generating {a.wafers * a.dies:,} die rows -> {path}")
        generate(path, a.wafers, a.dies)
    res = {}
    for which in ("baseline", "yieldkit"):
        out = subprocess.run(
            [sys.executable, __file__, "--child", which, "--path", str(path), "--repeat", str(a.repeat)],
            check=True, capture_output=True, text=True,
        )
        res[which] = json.loads(out.stdout.strip().splitlines()[-1])
    b, y = res["baseline"], res["yieldkit"]
    print(f"rows: {a.wafers * a.dies:,}  wafers: {y['wafers']}")
    print(f"{'':10s} {'read [s]':>9s} {'yield [s]':>9s} {'total [s]':>9s} {'CPU [s]':>8s} {'import [s]':>10s} "
          f"{'peak RSS [MB]':>14s}")
    for name, r in (("baseline", b), ("yieldkit", y)):
        print(f"{name:10s} {r['read']:9.3f} {r['yield']:9.3f} {r['total']:9.3f} {r['cpu']:8.3f} {r['import']:10.3f} "
              f"{r['peak_rss_mb']:14.0f}")
    print(f"ratio yieldkit / baseline: {y['total'] / b['total']:.2f}x (target <= 1.3x); "
          f"peak memory {y['peak_rss_mb'] / 1024:.2f} GB (target < 3 GB)")
    assert abs(b["mean_yield"] - y["mean_yield"]) < 1e-12, "the two variants disagree"
    return 0


if __name__ == "__main__":
    sys.exit(main())
