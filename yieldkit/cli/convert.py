"""``yieldkit convert INPUT -o OUTPUT``: any readable format to CSV/Parquet, KLARF, E142/G85 or STDF."""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path
from typing import Any

from ..errors import YieldkitValueError
from ._common import add_salvage_argument, default_output, on_error, stages

log = logging.getLogger(__name__)

_TARGETS = ("csv", "parquet", "klarf", "e142", "g85", "stdf", "dataset")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "convert",
        help="convert a die/defect file between formats",
        description="Read any supported file (CSV, Parquet, KLARF, STDF, SEMI E142/G85, text maps; recognised "
        "from the content) and write it as canonical CSV/Parquet, KLARF 1.2/1.8, SEMI E142/G85 XML or STDF. "
        "The output format follows the output name (.csv, .csv.gz, .parquet, .klarf, .xml, .stdf) unless --to "
        "says otherwise. An output ending in '/' (or an existing directory, or --to dataset) is a hive-partitioned "
        "Parquet dataset, lot_id=<lot>/wafer_id=<wafer>/, holding the die table (read it with read_dies or "
        "read_dies_dask); for an STDF input the test results go beside it to DATASET_tests/ (same partitions), "
        "written a chunk at a time at a fixed memory ceiling.",
    )
    p.add_argument("input", help="input file")
    p.add_argument("-o", "--output", help="output file or dataset directory, written atomically (default: next "
                   "to the input, .csv; .parquet for a CSV input; the extension of --to)")
    p.add_argument("--to", choices=_TARGETS, help="output format (default: from the output name; .xml is E142)")
    p.add_argument("--table", choices=("auto", "dies", "defects", "wafers"), default="auto",
                   help="which table to write as CSV/Parquet (default: defects for KLARF, dies otherwise)")
    p.add_argument("--klarf-version", choices=("1.2", "1.8"), default="1.2", help="KLARF version to write")
    p.add_argument("--pitch", nargs=2, type=float, metavar=("W_UM", "H_UM"),
                   help="die pitch [um] for KLARF output when the input has no layout")
    p.add_argument("--diameter", type=float, default=300.0, help="wafer diameter [mm] with --pitch (default 300)")
    p.add_argument("--partition-by", choices=("wafer", "lot"), default="wafer",
                   help="a KLARF file to a directory (-o DATASET/, or a name without extension): a Parquet dataset "
                   "partitioned lot_id=/wafer_id= (default) or lot_id=, streamed wafer by wafer")
    add_salvage_argument(p)
    p.set_defaults(func=run)


_EXTENSIONS = {"csv": ".csv", "parquet": ".parquet", "klarf": ".klarf", "e142": ".xml", "g85": ".g85.xml",
               "stdf": ".stdf", "dataset": "_dataset"}


def _default_output(args: argparse.Namespace) -> str:
    if args.to:
        return str(default_output(args.input, _EXTENSIONS[args.to]))
    from ..io.registry import sniff_format

    csv_in = Path(args.input).is_file() and sniff_format(args.input) == "csv"
    return str(default_output(args.input, ".parquet" if csv_in else ".csv"))


def _target(args: argparse.Namespace) -> str:
    if args.to:
        return str(args.to)
    if str(args.output).endswith(("/", os.sep)) or Path(args.output).is_dir():
        return "dataset"
    name = Path(args.output).name.lower()
    for ext, fmt in ((".csv", "csv"), (".csv.gz", "csv"), (".parquet", "parquet"), (".pq", "parquet"),
                     (".klarf", "klarf"), (".klarf.gz", "klarf"), (".xml", "e142"), (".stdf", "stdf"),
                     (".std", "stdf")):
        if name.endswith(ext):
            return fmt
    raise YieldkitValueError(f"cannot tell the output format from {args.output!r}; pass --to with one of "
                             f"{', '.join(_TARGETS)}")


def _load(args: argparse.Namespace) -> tuple[str, Any]:
    from ..io.registry import read, read_defects, read_dies, read_wafers, reader_options, sniff_format

    fmt = sniff_format(args.input)
    oe = on_error(args)
    if fmt in ("csv", "parquet", "unknown"):
        if args.table == "defects":
            return fmt, read_defects(args.input, on_error=oe)
        if args.table == "wafers":
            return fmt, read_wafers(args.input, on_error=oe)
        return fmt, read_dies(args.input, on_error=oe)
    return fmt, read(args.input, **reader_options(fmt, oe))


def _table(obj: Any, which: str) -> Any:
    import pandas as pd

    if isinstance(obj, pd.DataFrame):
        return obj
    if which == "auto":
        which = "defects" if getattr(obj, "defects", None) is not None and getattr(obj, "dies", None) is None else "dies"
    table = getattr(obj, which, None)
    if table is None:
        raise YieldkitValueError(f"the input holds no {which} table")
    return table


def _layouts(obj: Any, args: argparse.Namespace) -> Any:
    from ..layout import WaferLayout

    if args.pitch:
        return WaferLayout(diameter_mm=args.diameter, die_pitch_um=tuple(args.pitch), edge_exclusion_mm=0.0)
    layouts = getattr(obj, "layouts", None)
    if layouts:
        return layouts
    layout = getattr(obj, "layout", None)
    return layout


def _klarf_dataset(args: argparse.Namespace) -> bool:
    """``convert BIG.klarf -o DATASET/``: the defects as a partitioned Parquet dataset, streamed
    wafer by wafer at fixed memory. False when the output is not a directory (a name ending in
    ``/``, an existing directory, or a name without extension) or the input not KLARF."""
    out = str(args.output)
    folder = out.endswith(("/", os.sep)) or Path(out).is_dir() or (not Path(out).suffix and args.to is None)
    if not folder or args.to not in (None, "parquet"):
        return False
    from ..io.registry import sniff_format

    if not Path(args.input).is_file() or sniff_format(args.input) != "klarf":
        return False
    from ..io.klarf import klarf_to_dataset

    with stages(args, ["converting"]) as step:
        step("converting " + Path(args.input).name)
        n = klarf_to_dataset(args.input, out, partition_by=args.partition_by)
    log.info("wrote %d defect(s) to the dataset %s", n, out)
    return True


def run(args: argparse.Namespace) -> int:
    from ..io.tabular import write_csv, write_parquet

    args.output = args.output or _default_output(args)
    if _klarf_dataset(args):
        return 0
    target = _target(args)
    if target == "dataset":
        return _dataset(args)
    with stages(args, ["reading"]) as step:
        step("reading " + Path(args.input).name)
        src_fmt, obj = _load(args)
    log.info("read %s as %s", args.input, src_fmt)
    if target in ("csv", "parquet"):
        table = _table(obj, args.table)
        (write_csv if target == "csv" else write_parquet)(table, args.output)
        log.info("wrote %d row(s) to %s", len(table), args.output)
        return 0
    if target == "klarf":
        from ..io.klarf import write_klarf

        defects = _table(obj, "defects" if args.table == "auto" else args.table)
        layout = _layouts(obj, args)
        if layout is None:
            raise YieldkitValueError("KLARF output needs the die grid: the input has no layout, pass --pitch W H "
                                     "[--diameter D]")
        write_klarf(defects, args.output, version=args.klarf_version, layout=layout,
                    wafers=getattr(obj, "wafers", None))
        log.info("wrote %d defect(s) to %s", len(defects), args.output)
        return 0
    dies = _table(obj, "dies" if args.table == "auto" else args.table)
    layouts = _layouts(obj, args)
    layout = None
    if isinstance(layouts, dict) and len(layouts) == 1:
        layout = next(iter(layouts.values()))
    elif layouts is not None and not isinstance(layouts, dict):
        layout = layouts
    if target in ("e142", "g85"):
        from ..io.wafermap import write_map

        write_map(dies, args.output, format=target, layout=layout)
    else:
        try:
            from ..io.stdf import write_stdf
        except ImportError:
            raise YieldkitValueError("STDF output is not available in this installation") from None
        write_stdf(dies, args.output, layout=layout)
    log.info("wrote %d die(s) to %s", len(dies), args.output)
    return 0


def _dataset(args: argparse.Namespace) -> int:
    """Write a hive-partitioned Parquet dataset; an STDF file is streamed (dies and tests)."""
    from ..io.partitioned import write_dataset
    from ..io.registry import sniff_format

    fmt = sniff_format(args.input)
    if fmt == "stdf" and args.table in ("auto", "dies"):
        from ..io.stdf.dataset import write_stdf_dataset

        with stages(args, ["reading"]) as step:
            step("converting " + Path(args.input).name)
            f = write_stdf_dataset(args.input, args.output, on_error=on_error(args))
        log.info("wrote %d die(s) and their test results to %s", len(f.dies), args.output)
        return 0
    with stages(args, ["reading"]) as step:
        step("reading " + Path(args.input).name)
        _fmt, obj = _load(args)
    table = _table(obj, args.table)
    write_dataset(table, args.output)
    log.info("wrote %d row(s) to %s", len(table), args.output)
    return 0
