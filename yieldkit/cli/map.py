"""``yieldkit map INPUT -o OUT``: wafer maps (one wafer, every wafer, or the stacked composite)."""

from __future__ import annotations

import argparse
import logging
import re
import warnings
from pathlib import Path

log = logging.getLogger(__name__)

_FORMATS = (".png", ".svg", ".pdf")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "map",
        help="draw wafer maps (bins, pass/fail or defect density) of a die file",
        description="Draw the wafer map of one wafer, of every wafer (--all, -o is a directory: one PNG per "
        "wafer plus stacked.png) or the stacked composite of all wafers (--stack).",
    )
    p.add_argument("dies", help="die table: CSV, Parquet, STDF, map file")
    p.add_argument("-o", "--output", help="output image (.png, .svg, .pdf), or a directory with --all "
                   "(default: next to the input, .png or _maps/)")
    p.add_argument("--wafer", help="wafer to draw: WAFER or LOT/WAFER (default: the first wafer)")
    p.add_argument("--stack", action="store_true", help="draw the composite of all wafers")
    p.add_argument("--all", action="store_true", help="one image per wafer plus stacked.png into the -o directory")
    p.add_argument("--value", choices=("bin", "pass", "density"), default="bin",
                   help="colour dies by hard bin, pass/fail, or defect density (needs --defects)")
    p.add_argument("--defects", help="defect table (for --value density)")
    p.add_argument("--layout", help="layout JSON (as written by 'yieldkit simulate')")
    p.add_argument("--bin-names", help="JSON mapping hard bin -> name")
    p.add_argument("--dpi", type=int, default=120, help="resolution of raster output (> 0, default 120)")
    p.set_defaults(func=run)


def _slug(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", s)


def run(args: argparse.Namespace) -> int:
    from .. import final_results, read_defects, read_dies
    from ..errors import DataQualityWarning, YieldkitValueError
    from ..io.registry import reader_of, sniff_format
    from ..io.wafermap import read_map
    from ..maps import die_defect_counts, die_defect_density, stack_map
    from ..plotting.export import save_figure
    from ..plotting.maps import plot_stacked_map
    from ..plotting.wafermap import WaferMapDisplay
    from ._common import default_output, load_bin_names, load_layout

    out = Path(args.output) if args.output else default_output(args.dies, "_maps" if args.all else ".png")
    if not args.all and out.suffix.lower() not in _FORMATS:
        raise YieldkitValueError(f"--output must end in one of {', '.join(_FORMATS)} (or use --all with a directory); got {out}")
    if args.dpi <= 0:
        raise YieldkitValueError(f"--dpi must be > 0; got {args.dpi}")
    if args.value == "density" and not args.defects:
        raise YieldkitValueError("--value density needs --defects DEFECTS")
    layout = load_layout(args.layout) if args.layout else None
    bin_names = load_bin_names(args.bin_names) if args.bin_names else None
    entry = reader_of(sniff_format(args.dies)) if Path(args.dies).is_file() else None
    source = read_map(args.dies) if entry is not None and entry.wafer_map else None  # a map: its bin codes
    dies = final_results(source.dies if source is not None else read_dies(args.dies))
    bin_labels = (source.bin_labels or None) if source is not None else None
    value, column = args.value, None
    if args.value == "density":
        defects = read_defects(args.defects, layout=layout)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", DataQualityWarning)
            dies = die_defect_counts(dies, defects, layout=layout).table
        for w in caught:
            log.warning("%s", w.message)
        if layout is not None and not layout.inferred:
            dies = die_defect_density(dies, layout)
            column = "density_per_cm2"
        else:
            column = "n_defects"
        value = "value"

    def stacked(path: Path) -> None:
        st = stack_map(dies, value_col=column) if column else stack_map(dies)
        col = f"mean_{column}" if column else "fail_rate"
        ax = plot_stacked_map(st, value_col=col, layout=layout,
                              title=f"stacked: {col} over {int(st['n_wafers'].max())} wafers")
        save_figure(ax, path, dpi=args.dpi)
        log.info("wrote %s", path)

    def one(lot: str, wafer: str, path: Path) -> None:
        d = dies[(dies["lot_id"] == lot) & (dies["wafer_id"] == wafer)]
        disp = WaferMapDisplay.from_dies(d, value=value, value_col=column, layout=layout, bin_names=bin_names,
                                         bin_labels=bin_labels, title=f"lot {lot} wafer {wafer}")
        save_figure(disp, path, dpi=args.dpi)
        log.info("wrote %s", path)

    wafers = dies[["lot_id", "wafer_id"]].drop_duplicates()
    if args.all:
        for lot, wafer in wafers.itertuples(index=False):  # one figure per wafer
            one(str(lot), str(wafer), out / f"{_slug(str(lot))}_{_slug(str(wafer))}.png")
        stacked(out / "stacked.png")
        return 0
    if args.stack:
        stacked(out)
        return 0
    if args.wafer:
        lot_sel, _, wafer_sel = args.wafer.rpartition("/")
        m = wafers["wafer_id"] == wafer_sel
        if lot_sel:
            m &= wafers["lot_id"] == lot_sel
        sel = wafers[m.to_numpy()]
        if len(sel) == 0:
            raise YieldkitValueError(f"--wafer {args.wafer!r} matches no wafer of {args.dies}")
        if len(sel) > 1:
            raise YieldkitValueError(f"--wafer {args.wafer!r} matches {len(sel)} wafers; give LOT/WAFER")
    else:
        sel = wafers.iloc[:1]
    lot, wafer = (str(v) for v in sel.iloc[0])
    if not args.wafer and len(wafers) > 1:
        log.warning("%s holds %d wafers; drew only lot %s wafer %s. Choose one with --wafer LOT/WAFER, or draw "
                    "every wafer with --all -o DIRECTORY (or the composite with --stack).", args.dies, len(wafers),
                    lot, wafer)
    one(lot, wafer, out)
    return 0
