"""``yieldkit simulate OUT_DIR``: write a simulated fab (dies, defects, wafers, truth)."""

from __future__ import annotations

import argparse
import logging
import math

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "simulate",
        help="write a simulated fab with known truth",
        description="Simulate wafer-sort bins, inspection defects and process history with known "
        "defect density, clustering, systematic yield, signatures and fault coverage; write CSV and "
        "Parquet tables plus truth.json into OUT_DIR.",
    )
    p.add_argument("out_dir")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--lots", type=int, default=3)
    p.add_argument("--wafers-per-lot", type=int, default=25)
    p.add_argument("--d0", type=float, default=0.5, help="defect density [defects/cm2]")
    p.add_argument("--cluster-alpha", type=float, default=2.0, help="clustering parameter (inf: none)")
    p.add_argument("--clustering", choices=("wafer", "die", "none"), default="wafer")
    p.add_argument("--y0", type=float, default=0.95, help="systematic yield")
    p.add_argument("--signature-rate", type=float, default=0.2, help="share of wafers with a failure signature")
    p.add_argument("--coverage", type=float, default=0.99, help="test fault coverage")
    p.add_argument("--retest-rate", type=float, default=0.01, help="share of dies retested after a contact fail")
    p.add_argument("--excursion", default="etch:ETCH02:B:3",
                   help="STEP:TOOL[:CHAMBER[:FACTOR]] raising D0 on that tool, or 'none'")
    p.add_argument("--format", dest="formats", action="append", choices=("csv", "parquet"),
                   help="table formats to write (repeatable; default both)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..simulate import simulate_fab, write_fab

    excursion = None
    if args.excursion and args.excursion.lower() != "none":
        parts = args.excursion.split(":")
        excursion = {"step": parts[0], "tool": parts[1] if len(parts) > 1 else None}
        if len(parts) > 2 and parts[2]:
            excursion["chamber"] = parts[2]
        if len(parts) > 3:
            excursion["d0_factor"] = float(parts[3])
        if excursion["tool"] is None:
            del excursion["tool"]
    fab = simulate_fab(
        n_lots=args.lots,
        wafers_per_lot=args.wafers_per_lot,
        d0=args.d0,
        cluster_alpha=math.inf if args.cluster_alpha == math.inf else args.cluster_alpha,
        clustering=args.clustering,
        y0=args.y0,
        signature_rate=args.signature_rate,
        coverage=args.coverage,
        retest_rate=args.retest_rate,
        excursion=excursion,
        random_state=args.seed,
    )
    paths = write_fab(fab, args.out_dir, formats=tuple(args.formats or ("csv", "parquet")))
    log.info("%r", fab)
    for p in paths:
        log.info("wrote %s", p)
    return 0
