"""``yieldkit pareto INPUT``: a defect (or bin) Pareto alone, as a table, CSV, HTML or PNG."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from ._common import emit_table, write_text

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "pareto",
        help="Pareto of defects (or of bins) by class, layer, size bin or any column",
        description="Rank the categories of a defect table (or the failing bins of a die table with "
        "--by hbin/sbin) and write the table or chart; the format follows the -o extension.",
    )
    p.add_argument("input", help="defect table (CSV, Parquet, KLARF), or die table with --by hbin|sbin")
    p.add_argument("--by", default="defect_class", help="category column (default defect_class; hbin/sbin: bins)")
    p.add_argument("--weight", choices=("count", "kill", "density"), default="count")
    p.add_argument("--dies", help="die table, needed for --weight kill/density")
    p.add_argument("--layout", help="layout JSON (die area for --weight density)")
    p.add_argument("--group", help="separate Paretos per value of this column (lot_id, layer, ...)")
    p.add_argument("--top", type=int, help="keep the first N categories, fold the rest into Other")
    p.add_argument("--format", choices=("table", "csv", "json"), default="table", help="stdout format")
    p.add_argument("-o", "--output", help="write .csv, .json, .html or .png instead of printing")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:

    from .. import read_defects, read_dies
    from ..errors import YieldkitValueError
    from ..pareto import bin_pareto, pareto
    from ._common import load_layout

    layout = load_layout(args.layout) if args.layout else None
    if args.by in ("hbin", "sbin"):
        table = bin_pareto(read_dies(args.input), by=args.by, top=args.top, group=args.group)
    else:
        dies = read_dies(args.dies) if args.dies else None
        table = pareto(read_defects(args.input, layout=layout), by=args.by, weight=args.weight, dies=dies,
                       top=args.top, group=args.group,
                       die_area_cm2=layout.die_area_cm2 if layout is not None else None)
    if not args.output:
        emit_table(table, args.format)
        return 0
    ext = Path(args.output).suffix.lower()
    if ext in (".csv", ".json"):
        emit_table(table, ext[1:], args.output)
    elif ext in (".png", ".html", ".htm"):
        from ..plotting.export import figure_to_data_uri, new_axes, save_figure
        from ..plotting.pareto import plot_pareto
        from ..report.html import _ENV, _table

        first = table
        if args.group:
            first = table[table[args.group] == table[args.group].iloc[0]]
            log.info("chart of the first group %s=%s; the table holds all", args.group, table[args.group].iloc[0])
        ax = plot_pareto(first, ax=new_axes((7, 4)), title=f"Pareto by {args.by} ({args.weight})")
        if ext == ".png":
            save_figure(ax, args.output, dpi=110)
        else:
            src = figure_to_data_uri(ax, dpi=100)
            html = _ENV.get_template("pareto.html.j2").render(title=f"Pareto by {args.by}", src=src, t=_table(table))
            write_text(args.output, html)
    else:
        raise YieldkitValueError(f"The '-o' argument of yieldkit pareto must end in .csv, .json, .html or .png. "
                                 f"Got {args.output!r} instead.")
    log.info("wrote %s", args.output)
    return 0
