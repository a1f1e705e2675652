"""``yieldkit commonality DIES WAFERS``: rank process tools, chambers, slots and time windows by low yield."""

from __future__ import annotations

import argparse
import logging

from ._common import add_salvage_argument, emit_table, on_error

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "commonality",
        help="rank process-history factors (tool_*, chamber_*, slot, times) by association with low yield",
        description="Wafer yield from the die table, joined to the wafer table; Kruskal-Wallis and chi-square "
        "per factor, Benjamini-Hochberg across factors, random-forest permutation importance.",
    )
    p.add_argument("dies", help="die table (CSV, Parquet, STDF, ...)")
    p.add_argument("wafers", help="wafer table with lot_id, wafer_id and tool_<step>/chamber_<step>/slot/... columns")
    p.add_argument("--factors", help="comma-separated factor columns (default: tool_*, chamber_*, slot, *_time)")
    p.add_argument("--bad-threshold", type=float, help="yield below which a wafer is bad (default: lower quartile)")
    p.add_argument("--fdr", type=float, default=0.05, help="false-discovery rate for 'significant' (default 0.05)")
    add_salvage_argument(p)
    p.add_argument("--no-importance", action="store_true", help="skip the random-forest importance (faster)")
    p.add_argument("-o", "--output", help="write the ranked table (.csv or .json)")
    p.add_argument("--plot", help="write the ranking chart (.png)")
    p.add_argument("--format", choices=("table", "csv", "json"), default="table", help="stdout format")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .. import read_dies, read_wafers, wafer_yield
    from ..commonality import commonality
    from ..errors import YieldkitValueError

    factors = [f.strip() for f in args.factors.split(",") if f.strip()] if args.factors else None
    result = commonality(wafer_yield(read_dies(args.dies, on_error=on_error(args))),
                         read_wafers(args.wafers, on_error=on_error(args)), factors=factors,
                         bad_threshold=args.bad_threshold, fdr=args.fdr, importance=not args.no_importance)
    table = result.table
    if args.output:
        ext = args.output.rsplit(".", 1)[-1].lower()
        if ext not in ("csv", "json"):
            raise YieldkitValueError(f"The '-o' argument of yieldkit commonality must end in .csv or .json. "
                                     f"Got {args.output!r} instead.")
        emit_table(table, ext, args.output)
    else:
        cols = ["rank", "factor", "worst_level", "worst_level_yield", "yield_delta", "p_adj", "significant",
                "importance"]
        emit_table(table[cols], args.format)
    if args.plot:
        from ..plotting.classify import plot_commonality
        from ..plotting.export import save_figure

        save_figure(plot_commonality(result), args.plot, dpi=110, format="png")
        log.info("wrote %s", args.plot)
    return 0
