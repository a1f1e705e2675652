"""The single-machine hot paths side by side, in one run, each against its bare reference.

* ingest: ``read_dies`` + ``wafer_yield`` on ``--rows`` Parquet die rows (default 4 million) against
  ``pyarrow.parquet.read_table`` + Arrow grouping + numpy (see ``bench_ingest.py``); each variant in
  a fresh subprocess, best of ``--repeat``; target ratio <= 1.3;
* fit: the negative-binomial fit of ``--counts`` per-die defect counts (default 1 million)
  against statsmodels' ``NegativeBinomial`` (see ``bench_models.py``); target speed-up >= 200.

Usage: ``python benchmarks/bench_hot_paths.py [--rows 4000000] [--counts 1000000] [--repeat 3]``
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def ingest(rows: int, repeat: int, data: Path) -> tuple[float, float]:
    """Best total time [s] of yieldkit and of the baseline on ``rows`` die rows."""
    n_dies = 25_000
    n_wafers = max(1, rows // n_dies)
    path = data / f"dies_{n_wafers}x{n_dies}.parquet"
    if not path.exists():
        sys.path.insert(0, str(HERE))
        from bench_ingest import generate

        data.mkdir(parents=True, exist_ok=True)
        generate(path, n_wafers, n_dies)
    best = {}
    for which in ("baseline", "yieldkit"):
        out = subprocess.run([sys.executable, str(HERE / "bench_ingest.py"), "--child", which, "--path", str(path),
                              "--repeat", str(repeat)], check=True, capture_output=True, text=True)
        best[which] = json.loads(out.stdout.strip().splitlines()[-1])["total"]
    return best["yieldkit"], best["baseline"]


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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=4_000_000, help="die rows of the ingest comparison")
    ap.add_argument("--counts", type=int, default=1_000_000, help="per-die counts of the fit comparison")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--data", default=str(HERE / "_data"), help="directory of the generated Parquet file")
    a = ap.parse_args()
    t_yk, t_base = ingest(a.rows, a.repeat, Path(a.data))
    f_yk, f_sm, diff = fit(a.counts, a.repeat)
    print(f"{'hot path':34s} {'yieldkit [s]':>12s} {'reference [s]':>13s} {'ratio':>8s}  target")
    print(f"{'read_dies + wafer_yield, ' + format(a.rows, ',') + ' rows':34s} {t_yk:12.3f} {t_base:13.3f} "
          f"{t_yk / t_base:7.2f}x  <= 1.3x of pyarrow + numpy")
    print(f"{'NB fit, ' + format(a.counts, ',') + ' counts':34s} {f_yk:12.4f} {f_sm:13.3f} "
          f"{f_sm / f_yk:7.0f}x  >= 200x faster than statsmodels (d0 agrees to {diff:.1e})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
