"""``yieldkit report DIES -o reports/NAME.html``: the self-contained HTML yield report."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report",
        help="write the HTML yield report",
        description="Build one self-contained HTML report (images embedded) from a die file and, "
        "optionally, defect and wafer files.",
    )
    p.add_argument("dies", help="die table (CSV, Parquet, STDF, map file)")
    p.add_argument("--defects", help="defect table (CSV, Parquet, KLARF)")
    p.add_argument("--wafers", help="wafer table with process history")
    p.add_argument("--layout", help="layout JSON (as written by 'yieldkit simulate')")
    p.add_argument("--bin-names", help="JSON object mapping hard bin to name")
    p.add_argument("--title", default="Yield report")
    p.add_argument("--max-maps", type=int, default=200, help="at most this many wafer maps (worst first)")
    p.add_argument("-o", "--output", required=True, help="output HTML file")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .. import WaferLayout, read_defects, read_dies, read_wafers
    from ..report import build_report

    layout = None
    if args.layout:
        layout = WaferLayout.from_dict(json.loads(Path(args.layout).read_text()))
    bin_names = None
    if args.bin_names:
        bin_names = {int(k): str(v) for k, v in json.loads(Path(args.bin_names).read_text()).items()}
    dies = read_dies(args.dies)
    defects = read_defects(args.defects, layout=layout) if args.defects else None
    wafers = read_wafers(args.wafers) if args.wafers else None
    build_report(dies, defects=defects, wafers=wafers, layout=layout, bin_names=bin_names, title=args.title,
                 output=args.output, max_maps=args.max_maps)
    log.info("wrote %s", args.output)
    return 0
