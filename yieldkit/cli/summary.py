"""``yieldkit summary DIES``: per-wafer (or per-lot) yield table."""

from __future__ import annotations

import argparse

from ._common import add_format_argument, add_salvage_argument, bin_list, emit_table, on_error


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "summary",
        help="per-wafer yield table of a die file",
        description="Per-wafer yield (tested, good, yield, first-pass yield, Clopper-Pearson interval) "
        "of a die file in any supported format (CSV, Parquet, STDF, E142/G85, text maps).",
    )
    p.add_argument("dies", help="die table: CSV, Parquet (file or dataset directory), STDF, map file")
    p.add_argument("--by", choices=("wafer", "lot"), default="wafer", help="one row per wafer (default) or per lot")
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

    dies = read_dies(args.dies, good_bins=args.good_bins, retests=args.retests, on_error=on_error(args))
    table = wafer_yield(dies) if args.by == "wafer" else lot_yield(dies)
    emit_table(table, args.format, args.output)
    return 0
