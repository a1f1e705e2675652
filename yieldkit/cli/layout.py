"""``yieldkit layout FILE -o layout.json``: the wafer layout a file implies.

One layout is written, the form ``--layout`` reads back: that of ``--wafer``, or the one all
wafers of the file share (their die sets joined). A file whose wafers differ in geometry needs
``--wafer``; a file that gives no geometry (CSV, Parquet, a map without die size) is refused.
"""

from __future__ import annotations

import argparse
import logging

from ._common import add_salvage_argument, default_output, on_error, write_json

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "layout",
        help="write the wafer layout (die pitch, wafer size, grid origin) a file implies",
        description="Write the wafer layout a KLARF, STDF (WCR) or wafer-map file implies, as the JSON that "
        "--layout of 'map', 'report' and 'fit' reads: wafer diameter, die pitch, the lower-left corner of die "
        "(0, 0) in the wafer frame, edge exclusion and the dies on the wafer (a KLARF's sample test plan, a "
        "map's dies). With several wafers: the layout they share (die sets joined), or the one of --wafer.",
    )
    p.add_argument("input", help="KLARF, STDF or wafer-map file")
    p.add_argument("--wafer", help="the wafer whose layout to write: WAFER or LOT/WAFER")
    p.add_argument("-o", "--output", help="output JSON (default: next to the input, _layout.json)")
    add_salvage_argument(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import pandas as pd

    from ..errors import YieldkitValueError
    from ._files import common_layout, describe, file_format, file_layouts, parse_wafer, read_source

    data = read_source(args.input, on_error(args))
    if data is None:
        fmt = file_format(args.input) or "directory"
        raise YieldkitValueError(f"{args.input}: a {fmt} file gives no wafer layout (die pitch and wafer size); "
                                 "write one by hand, e.g. {\"diameter_mm\": 300, \"die_pitch_um\": [10000, 10000]}")
    layouts = file_layouts(data)
    if not layouts:
        raise YieldkitValueError(f"{args.input}: the file gives no wafer geometry (no die pitch or wafer size), "
                                 "so it implies no layout; the maps of its dies are drawn in die indices")
    if args.wafer:
        keys = pd.DataFrame(list(layouts), columns=["lot_id", "wafer_id"])
        layout = layouts[parse_wafer(args.wafer, keys, args.input)]
    else:
        layout = common_layout(layouts)
        if layout is None:
            raise YieldkitValueError(f"{args.input}: the wafers have different layouts ({describe(layouts)}); "
                                     "choose one with --wafer LOT/WAFER")
    out = args.output or str(default_output(args.input, "_layout.json"))
    write_json(out, layout.to_dict())
    log.info("wrote %s", out)
    return 0
