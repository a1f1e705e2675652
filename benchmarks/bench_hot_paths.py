"""The single-machine hot paths side by side, in one run, each against its bare reference.

* ingest: ``read_dies`` + ``wafer_yield`` on ``--rows`` Parquet die rows (default 4 million) against
  ``pyarrow.parquet.read_table`` + Arrow grouping + numpy (see ``bench_ingest.py``); each run of
  each variant in a fresh subprocess, the two in turn, best of ``--runs`` (default 5) each. Wall
  time and CPU time (user + system, all threads) of the timed region, its page faults and the
  child's peak RSS; the imports are done before the timed region and printed apart (with them
  the ratio is printed too). Target ratio <= 1.3 in wall time on a quiet machine; on a loaded one
  the CPU-time ratio is the fair figure;
* fit: the negative-binomial fit of ``--counts`` per-die defect counts (default 1 million)
  against statsmodels' ``NegativeBinomial`` (see ``bench_models.py``); target speed-up >= 200;
* clustering: ``clustering_stats`` (199 permutations) on ``--dies`` dies (default 10 million;
  ``simulate_fab`` wafers of 923 dies, 0.2 defects per die, as ``bench_scale.py``), CPU time in a
  fresh subprocess, with all permutations and with ``sequential=True``, against the CPU time of
  the implementation before the wafer-batch rewrite (``--before``: 124 s at 10 million dies on
  this 2-core machine, commit ce942b6); target speed-up >= 5.

Usage: ``python benchmarks/bench_hot_paths.py [--rows 4000000] [--counts 1000000] [--dies 10000000] [--repeat 3]
[--runs 5] [--only ingest|fit|clustering] [--data DIR]`` (``--dies 0`` leaves the clustering out; ``--only``
runs one part alone and may be repeated).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def ingest(rows: int, runs: int, data: Path) -> dict[str, dict[str, float]]:
    """Best of ``runs`` fresh processes per variant (in turn) of yieldkit and of the baseline on ``rows`` die rows.

    Per variant: ``wall`` and ``cpu`` (user + system of all threads) of the timed region, the
    imports before it (``import``), the whole child's CPU time including interpreter start and
    imports (``child_cpu``, from ``RUSAGE_CHILDREN``), minor page faults of the timed region, peak
    RSS [MB] of the child and its RSS after the imports; each the best (lowest) over the runs.
    """
    n_dies = 25_000
    n_wafers = max(1, rows // n_dies)
    path = data / f"dies_{n_wafers}x{n_dies}.parquet"
    if not path.exists():
        sys.path.insert(0, str(HERE))
        from bench_ingest import generate

        data.mkdir(parents=True, exist_ok=True)
        generate(path, n_wafers, n_dies)
    keys = ("wall", "cpu", "user", "sys", "import", "child_cpu", "minflt", "peak_rss_mb", "import_rss_mb")
    best = {which: dict.fromkeys(keys, math.inf) for which in ("baseline", "yieldkit")}
    means = {}
    for _ in range(runs):  # the two in turn, so that both see the same load of a shared machine
        for which in best:
            r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
            out = subprocess.run([sys.executable, str(HERE / "bench_ingest.py"), "--child", which, "--path",
                                  str(path), "--repeat", "1"], check=True, capture_output=True, text=True)
            r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            r["wall"] = r["total"]
            r["child_cpu"] = r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime
            means[which] = r["mean_yield"]
            for k in keys:
                best[which][k] = min(best[which][k], r[k])
    assert abs(means["yieldkit"] - means["baseline"]) < 1e-12, "the two variants disagree"
    return best


def fit(n: int, repeat: int) -> tuple[float, float, float]:
    """Best time [s] of yieldkit's and statsmodels' NB fit, and the relative difference of d0."""
    import statsmodels.api as sm

    import yieldkit as yk

    rng = np.random.default_rng(2026)
    area, d0, alpha = 0.5, 0.8, 1.7
    counts = rng.poisson(rng.gamma(alpha, d0 / alpha, size=n) * area)
    yk.NegativeBinomialYield(ci_method="wald").fit(counts[:1000], area=area)  # imports, warm-up
    t_yk, fitted = math.inf, None
    for _ in range(repeat):
        t0 = time.perf_counter()
        fitted = yk.NegativeBinomialYield(ci_method="wald").fit(counts, area=area)
        t_yk = min(t_yk, time.perf_counter() - t0)
    sm.NegativeBinomial(counts[:1000], np.ones((1000, 1)), exposure=np.full(1000, area)).fit(disp=0)
    t0 = time.perf_counter()
    res = sm.NegativeBinomial(counts, np.ones((n, 1)), exposure=np.full(n, area), loglike_method="nb2").fit(
        disp=0, method="newton", maxiter=100, tol=1e-12)
    t_sm = time.perf_counter() - t0
    assert fitted is not None
    return t_yk, t_sm, abs(fitted.d0_ / math.exp(res.params[0]) - 1)


def clustering(n_dies: int, data: Path) -> dict[str, float]:
    """CPU and wall time [s] of ``clustering_stats`` on about ``n_dies`` dies, each variant in a fresh process."""
    n_lots = max(1, round(n_dies / (923 * 25)))
    path = data / f"fab_{n_lots}lots.parquet"
    if not path.exists():
        import pandas as pd

        import yieldkit as yk
        from yieldkit.layout import WaferLayout

        layout = WaferLayout(diameter_mm=200, die_pitch_um=(6000, 5000), edge_exclusion_mm=3)
        parts = []
        for first in range(0, n_lots, 40):
            k = min(40, n_lots - first)
            fab = yk.simulate_fab(n_lots=k, wafers_per_lot=25, d0=0.2 / 0.3, layout=layout, random_state=first)
            lots = {f"L{i + 1:04d}": f"L{first + i + 1:06d}" for i in range(k)}
            d = fab.dies[["lot_id", "wafer_id", "die_x", "die_y", "passed"]]
            parts.append(d.assign(lot_id=d["lot_id"].map(lots).astype("string")))
        data.mkdir(parents=True, exist_ok=True)
        pd.concat(parts, ignore_index=True).to_parquet(path)
    out = {}
    for sequential in (False, True):
        res = subprocess.run([sys.executable, __file__, "--child-clustering", str(path)]
                             + (["--sequential"] if sequential else []), check=True, capture_output=True, text=True)
        r = json.loads(res.stdout.strip().splitlines()[-1])
        key = "sequential" if sequential else "full"
        out[key], out[key + "_wall"], out["dies"], out["wafers"] = r["cpu"], r["wall"], r["dies"], r["wafers"]
    return out


def _child_clustering(path: str, sequential: bool) -> None:
    import pandas as pd

    from yieldkit.spatial import clustering_stats

    dies = pd.read_parquet(path)
    clustering_stats(dies.iloc[:50_000], sequential=sequential)  # imports, warm-up
    c0, t0 = time.process_time(), time.perf_counter()
    res = clustering_stats(dies, sequential=sequential)
    cpu, wall = time.process_time() - c0, time.perf_counter() - t0
    print(json.dumps({"cpu": cpu, "wall": wall, "dies": len(dies), "wafers": len(res)}))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=4_000_000, help="die rows of the ingest comparison")
    ap.add_argument("--counts", type=int, default=1_000_000, help="per-die counts of the fit comparison")
    ap.add_argument("--dies", type=int, default=10_000_000, help="dies of the clustering comparison (0: left out)")
    ap.add_argument("--before", type=float, default=124.0,
                    help="CPU time [s] of clustering_stats before the rewrite at --dies (124 s at 10 million dies)")
    ap.add_argument("--repeat", type=int, default=3, help="timed repeats of the fit comparison")
    ap.add_argument("--runs", type=int, default=5, help="fresh processes per variant of the ingest comparison")
    ap.add_argument("--only", action="append", choices=("ingest", "fit", "clustering"),
                    help="run this part alone (repeatable; default: all three)")
    ap.add_argument("--data", default=str(HERE / "_data"), help="directory of the generated Parquet files")
    ap.add_argument("--child-clustering", help=argparse.SUPPRESS)
    ap.add_argument("--sequential", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child_clustering:
        _child_clustering(a.child_clustering, a.sequential)
        return 0
    parts = set(a.only or ("ingest", "fit", "clustering"))
    if "ingest" in parts:
        ing = ingest(a.rows, max(a.runs, 1), Path(a.data))
        y, b = ing["yieldkit"], ing["baseline"]
        print(f"read_dies + wafer_yield, {a.rows:,} rows: best of {a.runs} fresh processes per variant, in turn "
              f"(load average {os.getloadavg()[0]:.2f})")
        print(f"{'':10s} {'wall [s]':>9s} {'CPU [s]':>8s} {'user [s]':>9s} {'sys [s]':>8s} {'faults':>8s} "
              f"{'peak RSS [MB]':>14s} {'(imports)':>9s} {'import [s]':>10s} {'child CPU [s]':>13s}")
        for name, r in (("yieldkit", y), ("baseline", b)):
            print(f"{name:10s} {r['wall']:9.3f} {r['cpu']:8.3f} {r['user']:9.3f} {r['sys']:8.3f} {r['minflt']:8.0f} "
                  f"{r['peak_rss_mb']:14.0f} {r['import_rss_mb']:9.0f} {r['import']:10.3f} {r['child_cpu']:13.3f}")
        print(f"ratio yieldkit / baseline: wall {y['wall'] / b['wall']:.2f}x, CPU {y['cpu'] / b['cpu']:.2f}x "
              f"(target <= 1.3x of pyarrow + numpy; imports apart: with them, wall "
              f"{(y['wall'] + y['import']) / (b['wall'] + b['import']):.2f}x, whole-child CPU "
              f"{y['child_cpu'] / b['child_cpu']:.2f}x)")
    if "fit" in parts:
        f_yk, f_sm, diff = fit(a.counts, a.repeat)
        print(f"{'hot path':44s} {'yieldkit [s]':>12s} {'reference [s]':>13s} {'ratio':>8s}  target")
        print(f"{'NB fit, ' + format(a.counts, ',') + ' counts':44s} {f_yk:12.4f} {f_sm:13.3f} "
              f"{f_sm / f_yk:7.0f}x  >= 200x faster than statsmodels (d0 agrees to {diff:.1e})")
    if a.dies and "clustering" in parts:
        c = clustering(a.dies, Path(a.data))
        for key, label in (("full", "all 199 permutations"), ("sequential", "sequential=True")):
            print(f"{'clustering_stats, ' + format(int(c['dies']), ',') + ' dies, CPU':44s} {c[key]:12.2f} "
                  f"{a.before:13.1f} {a.before / c[key]:7.1f}x  >= 5x faster than before ({label}; "
                  f"wall {c[key + '_wall']:.1f} s, {int(c['wafers']):,} wafers)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
