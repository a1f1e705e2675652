"""``yieldkit adders K1 K2 K3``: defects of several inspection steps matched, adders per wafer and step."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from ._common import emit_table

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "adders",
        help="match the defects of several inspection steps: source step and adders per wafer and step",
        description="Read the defect files of one set of wafers inspected after several process steps (in "
        "process order), align every step's tool frame to the first, match the defects one to one and write "
        "the adders (defects new at each step) per wafer, step, class and size bin.",
        epilog="examples:\n  yieldkit adders M1.klarf V1.klarf M2.klarf -o adders.csv\n"
        "  yieldkit adders scans.parquet --order M1,V1,M2 --matched matched.parquet",
    )
    p.add_argument("inputs", nargs="+", help="defect files (KLARF, CSV, Parquet), in process order")
    p.add_argument("--order", help="step order, comma-separated (default: the files' order, then first appearance)")
    p.add_argument("--radius", type=float, help="match radius [um] (default: 4 sigma of the alignment residual)")
    p.add_argument("--model", choices=("rigid", "similarity", "affine"), default="rigid",
                   help="transform between tool frames (default rigid)")
    p.add_argument("--max-offset", type=float, default=100.0, help="largest offset between tool frames [um]")
    p.add_argument("--by", default="defect_class,size_bin",
                   help="further summary columns, comma-separated (default defect_class,size_bin; '' for none)")
    p.add_argument("--layout", help="layout JSON (for the adder density)")
    p.add_argument("--matched", help="also write every defect with source_step and is_adder (.csv or .parquet)")
    p.add_argument("--alignments", help="also write the per-wafer transforms and residuals (.csv)")
    p.add_argument("--shot", type=_pair, help="dies per exposure shot NX,NY: also look for reticle repeaters")
    p.add_argument("--shot-offset", type=_pair, default=(0, 0), help="die index of a shot's lower-left die (default 0,0)")
    p.add_argument("--repeaters", help="write the reticle repeaters (.csv; needs --shot)")
    p.add_argument("--field-map", help="draw the field-stacked defect map with the repeaters (.png; needs --shot)")
    p.add_argument("--format", choices=("table", "csv", "json"), default="table", help="stdout format")
    p.add_argument("-o", "--output", help="write the summary (.csv, .json, .xlsx) instead of printing")
    p.set_defaults(func=run)


def _pair(text: str) -> tuple[int, int]:
    """argparse type of ``--shot``: two integers such as ``2,3``."""
    try:
        a, b = (int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected two integers such as 2,3; got {text!r}") from None
    return a, b


def read_steps(paths: list[str], layout: Any) -> tuple[Any, list[str]]:
    """The defect files as one table with a ``layer`` per step, and the step order (files' order).

    A file without a ``layer`` column, or whose layer repeats another file's, is named after the file.
    """
    import pandas as pd

    from .. import read_defects
    from ..schema import STRING

    tables: list[Any] = []
    order: list[str] = []
    for path in paths:
        d = read_defects(path, layout=layout)
        layers = list(pd.unique(d["layer"].dropna().astype(str))) if "layer" in d.columns else []
        if not layers or set(layers) & set(order):
            name = Path(path).stem
            d = d.assign(layer=pd.array([name] * len(d), dtype=STRING))
            layers = [name]
            log.info("%s: step named %r after the file", path, name)
        order += layers
        tables.append(d)
    return pd.concat(tables, ignore_index=True), order


def files_layout(given: str | None, paths: list[str]) -> Any:
    """The layout of ``--layout``, else the one the files share (KLARF, STDF, maps), else None."""
    from ._common import load_layout
    from ._files import common_layout, file_layouts, read_source

    if given:
        return load_layout(given)
    found: dict = {}
    for path in paths:
        try:
            found.update(file_layouts(read_source(path)))
        except Exception as exc:  # a table format without a layout: nothing to learn from it
            log.debug("%s: no layout (%s)", path, exc)
    return common_layout(found, loose=True) if found else None


def run(args: argparse.Namespace) -> int:
    from ..inspection import adder_summary, match_steps
    from ._common import write_text

    layout = files_layout(args.layout, list(args.inputs))
    defects, order = read_steps(args.inputs, layout)
    if args.order:
        order = [s.strip() for s in args.order.split(",") if s.strip()]
    m = match_steps(defects, order, radius_um=args.radius, model=args.model, max_offset_um=args.max_offset)
    by = [c.strip() for c in args.by.split(",") if c.strip()]
    if "size_bin" in by and "size_um" not in defects.columns:
        by.remove("size_bin")
    summary = adder_summary(m, by=by, layout=layout)
    if args.matched:
        _write_table(m.table, args.matched)
    if args.alignments:
        write_text(args.alignments, m.alignments.to_csv(index=False))
    if args.repeaters or args.field_map:
        _repeaters(args, m.table, layout)
    emit_table(summary, args.format, args.output)
    n_add = int(m.table["is_adder"].sum())
    log.info("%d defects over %d steps: %d adders, %d carried over", len(m.table), len(order), n_add,
             len(m.table) - n_add)
    return 0


def _write_table(df: Any, path: str) -> None:
    from ..errors import YieldkitValueError

    ext = Path(path).suffix.lower()
    if ext == ".parquet":
        from .. import write_parquet

        write_parquet(df, path)
    elif ext == ".csv":
        from .. import write_csv

        write_csv(df, path)
    else:
        raise YieldkitValueError(f"The '--matched' argument of yieldkit adders must end in .csv or .parquet. "
                                 f"Got {path!r} instead.")


def _repeaters(args: argparse.Namespace, matched: Any, layout: Any) -> None:
    from ..errors import YieldkitValueError
    from ..inspection import find_repeaters

    if args.shot is None or layout is None:
        raise YieldkitValueError("--repeaters and --field-map need --shot and a layout (a KLARF's own, or --layout).")
    r = find_repeaters(matched, layout, shot=args.shot, shot_offset=args.shot_offset, x_col="x_ref_um",
                       y_col="y_ref_um")
    if args.repeaters:
        from .. import write_csv

        write_csv(r.table, args.repeaters)
    if args.field_map:
        from ..plotting.export import new_axes, save_figure
        from ..plotting.inspection import plot_field_stack

        w, h = layout.die_pitch_um
        ax = plot_field_stack(r, field_size_um=(args.shot[0] * w, args.shot[1] * h), ax=new_axes((5.5, 5.0)),
                              title=f"Field-stacked defects: {len(r.table)} repeater(s)")
        save_figure(ax, args.field_map, dpi=110)
    log.info("%d reticle repeater(s)", len(r.table))
