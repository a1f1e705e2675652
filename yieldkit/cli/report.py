"""``yieldkit report DIES -o reports/NAME.html``: the self-contained HTML yield report."""

from __future__ import annotations

import argparse
import logging

from ._common import (
    add_salvage_argument,
    default_output,
    load_bin_names,
    load_layout,
    non_negative_int,
    on_error,
    progress_enabled,
)

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report",
        help="write the HTML yield report",
        description="Analyse a die file and, optionally, defect and wafer files, and write one "
        "self-contained HTML report (images embedded, nothing fetched from the network).",
    )
    p.add_argument("dies", nargs="+", help="die table(s) (CSV, Parquet, STDF, map files)")
    p.add_argument("--defects", nargs="+", help="defect table(s) (CSV, Parquet, KLARF)")
    p.add_argument("--wafers", help="wafer table with process history")
    p.add_argument("--layout", help="layout JSON (as written by 'yieldkit simulate')")
    p.add_argument("--bin-names", help="JSON object mapping hard bin to name")
    p.add_argument("--title", default="Yield report")
    p.add_argument("--top", type=int, default=10, help="categories per Pareto before 'Other'")
    p.add_argument("--max-maps", type=non_negative_int, default=200, help="at most this many wafer maps (worst first)")
    p.add_argument("--pdf", help="also write the charts to this PDF")
    p.add_argument("-o", "--output", help="output HTML file (default: next to the first die file, .html)")
    add_salvage_argument(p)
    p.set_defaults(func=run)


def load_inputs(args: argparse.Namespace) -> dict:
    """Read the die, defect and wafer files, layout and bin names named on the command line."""
    import pandas as pd

    from .. import read_defects, read_dies, read_wafers

    layout = None
    if getattr(args, "layout", None):
        layout = load_layout(args.layout)
    bin_names = None
    if getattr(args, "bin_names", None):
        bin_names = load_bin_names(args.bin_names)
    oe = on_error(args)
    dies = pd.concat([read_dies(f, on_error=oe) for f in args.dies], ignore_index=True) if len(args.dies) > 1 \
        else read_dies(args.dies[0], on_error=oe)
    defects = None
    if getattr(args, "defects", None):
        parts = [read_defects(f, layout=layout, on_error=oe) for f in args.defects]
        defects = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
    wafers = read_wafers(args.wafers, on_error=oe) if getattr(args, "wafers", None) else None
    return {"dies": dies, "defects": defects, "wafers": wafers, "layout": layout, "bin_names": bin_names}


def run(args: argparse.Namespace) -> int:
    import time

    from ..analysis import analyze
    from ..report import build_report

    started = getattr(args, "started", time.perf_counter())
    args.output = args.output or str(default_output(args.dies[0], ".html"))
    inp = load_inputs(args)
    res = analyze(inp["dies"], inp["defects"], inp["wafers"], inp["layout"], inp["bin_names"], top=args.top)
    build_report(res, title=args.title, output=args.output, max_maps=args.max_maps, pdf=args.pdf,
                 progress=progress_enabled(args))
    if args.pdf:
        log.info("wrote %s", args.pdf)
    log.info("wrote %s (built in %.1f s)", args.output, time.perf_counter() - started)
    return 0
