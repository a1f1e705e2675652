"""``yieldkit summary FILE``: per-wafer (or per-lot) yield table; defects and density of a KLARF."""

from __future__ import annotations

import argparse

from ._common import add_format_argument, add_salvage_argument, bin_list, emit_table, on_error


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "summary",
        help="per-wafer yield table of a die file; defects and density of a KLARF",
        description="Per-wafer yield (tested, good, yield, first-pass yield, Clopper-Pearson interval) "
        "of a die file in any supported format (CSV, Parquet, STDF, E142/G85, text maps). For a KLARF file: "
        "defects per wafer (or per wafer and class with --by class, per lot with --by lot) with the inspected "
        "dies (the sample test plan, else every die on the wafer), the inspected area (those dies times the "
        "die area) and the defect density [defects/cm^2] with its Garwood interval.",
    )
    p.add_argument("dies", help="die table (CSV, Parquet file or dataset directory, STDF, map file) or KLARF file")
    p.add_argument("--by", choices=("wafer", "lot", "class"), default="wafer",
                   help="one row per wafer (default), per lot, or per wafer and defect class (KLARF)")
    p.add_argument("--good-bins", type=bin_list, metavar="BINS",
                   help="comma-separated hard bins that pass; they win over a pass/fail column "
                   "(default: the file's pass/fail, else bin 1)")
    p.add_argument("--retests", choices=("error", "order"), default="error",
                   help="repeated dies without test_seq: an error, or numbered in file order")
    p.add_argument("-o", "--output", help="write the table to this file instead of stdout (.csv, .json, .xlsx, "
                   "or text in --format)")
    add_salvage_argument(p)
    add_format_argument(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .. import lot_yield, read_dies, wafer_yield
    from ..errors import YieldkitValueError
    from ._files import file_format

    if file_format(args.dies) == "klarf":
        emit_table(_defect_summary(args), args.format, args.output)
        return 0
    if args.by == "class":
        raise YieldkitValueError(f"--by class counts defects per class; {args.dies} is a die file (give a KLARF file, "
                                 "or use --by wafer or --by lot)")
    dies = read_dies(args.dies, good_bins=args.good_bins, retests=args.retests, on_error=on_error(args))
    table = wafer_yield(dies) if args.by == "wafer" else lot_yield(dies)
    emit_table(table, args.format, args.output)
    return 0


def _defect_summary(args: argparse.Namespace):  # -> pd.DataFrame
    """Defects and density of a KLARF file, per wafer, wafer and class, or lot."""
    from ..analysis import defect_density
    from ._files import layout_for, read_source

    data = read_source(args.dies, on_error(args))
    layout = layout_for(args.dies, data, None)
    return defect_density(data.defects, layout, inspected_dies=data.inspected_dies, wafers=data.wafers,
                          by=args.by)
