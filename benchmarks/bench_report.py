"""Benchmark: analysis and HTML report for 25 lots (625 wafers) of simulated data.

Prints the time of the analysis, of the report build and the share spent plotting.
Run: ``.venv/bin/python benchmarks/bench_report.py [--max-maps N]``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import yieldkit as yk
from yieldkit.analysis import analyze
from yieldkit.report import build_report


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--lots", type=int, default=25)
    ap.add_argument("--wafers-per-lot", type=int, default=25)
    ap.add_argument("--max-maps", type=int, default=200)
    args = ap.parse_args()
    t0 = time.perf_counter()
    fab = yk.simulate_fab(n_lots=args.lots, wafers_per_lot=args.wafers_per_lot, retest_rate=0.01,
                          signature_rate=0.2, random_state=2026)
    t1 = time.perf_counter()
    res = analyze(fab.dies, fab.defects, fab.wafers, fab.layout, fab.bin_names)
    t2 = time.perf_counter()
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "bench.html"
        timing: dict[str, float] = {}
        build_report(res, title="benchmark", output=out, max_maps=args.max_maps, timings=timing)
        size = out.stat().st_size
    t3 = time.perf_counter()
    n_w = args.lots * args.wafers_per_lot
    print(f"simulate: {t1 - t0:.1f} s ({len(fab.dies)} die results, {len(fab.defects)} defects, {n_w} wafers)")
    print(f"analyze:  {t2 - t1:.1f} s (sections left out: {len(res.notes)})")
    print(f"report:   {t3 - t2:.1f} s, of which plotting {timing['plotting_s']:.1f} s "
          f"({100 * timing['plotting_s'] / max(t3 - t2, 1e-9):.0f} %), {args.max_maps} maps, {size / 1e6:.1f} MB")
    total = t3 - t1
    print(f"analysis + report: {total:.1f} s ({'OK' if total < 60 else 'OVER'} the 60 s budget)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
