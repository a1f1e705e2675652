"""``yieldkit map INPUT -o OUT``: wafer maps (one wafer, every wafer, or the stacked composite).

The maps use the input's own geometry (a KLARF's die grid, an STDF WCR, the die size of a map
file: real die pitch, wafer outline, notch) unless ``--layout`` is given. A KLARF input is
drawn as a defect map: defects at their positions on the die grid, coloured by class and sized
by defect size.
"""

from __future__ import annotations

import argparse
import logging
import re
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._common import add_salvage_argument, on_error

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

_FORMATS = (".png", ".svg", ".pdf")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "map",
        help="draw wafer maps (bins, pass/fail or defect density) of a die file, or the defect map of a KLARF",
        description="Draw the wafer map of one wafer, of every wafer (--all, -o is a directory: one PNG per "
        "wafer plus stacked.png) or the stacked composite of all wafers (--stack). The file's own layout (die "
        "pitch, wafer size) is used unless --layout is given. A KLARF file is drawn as a defect map: defects "
        "on the die grid, coloured by class, sized by defect size (--stack overlays every wafer).",
    )
    p.add_argument("dies", help="die table (CSV, Parquet, STDF, map file) or a KLARF defect file")
    p.add_argument("-o", "--output", help="output image (.png, .svg, .pdf), or a directory with --all "
                   "(default: next to the input, .png or _maps/)")
    p.add_argument("--wafer", help="wafer to draw: WAFER or LOT/WAFER (default: the first wafer)")
    p.add_argument("--stack", action="store_true", help="draw the composite of all wafers")
    p.add_argument("--all", action="store_true", help="one image per wafer plus stacked.png into the -o directory")
    p.add_argument("--value", choices=("bin", "pass", "density"), default="bin",
                   help="colour dies by hard bin, pass/fail, or defect density (needs --defects)")
    p.add_argument("--defects", help="defect table (for --value density)")
    p.add_argument("--layout", help="layout JSON (as written by 'yieldkit layout' or 'yieldkit simulate'); default: "
                   "the input's own")
    p.add_argument("--bin-names", help="JSON mapping hard bin -> name")
    p.add_argument("--dpi", type=int, default=120, help="resolution of raster output (> 0, default 120)")
    add_salvage_argument(p)
    p.set_defaults(func=run)


def _slug(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", s)


def run(args: argparse.Namespace) -> int:
    from .. import final_results, read_defects, read_dies
    from ..errors import DataQualityWarning, YieldkitValueError
    from ..maps import die_defect_counts, die_defect_density, stack_map
    from ..plotting.export import save_figure
    from ..plotting.maps import plot_stacked_map
    from ..plotting.wafermap import WaferMapDisplay
    from ._common import default_output, load_bin_names, load_layout
    from ._files import canonical_dies, file_format, layout_for, read_source

    out = Path(args.output) if args.output else default_output(args.dies, "_maps" if args.all else ".png")
    if not args.all and out.suffix.lower() not in _FORMATS:
        raise YieldkitValueError(f"--output must end in one of {', '.join(_FORMATS)} (or use --all with a directory); got {out}")
    if args.dpi <= 0:
        raise YieldkitValueError(f"--dpi must be > 0; got {args.dpi}")
    given = load_layout(args.layout) if args.layout else None
    if file_format(args.dies) == "klarf":
        return _defect_maps(args, out, given)
    if args.value == "density" and not args.defects:
        raise YieldkitValueError("--value density needs --defects DEFECTS")
    bin_names = load_bin_names(args.bin_names) if args.bin_names else None
    data = read_source(args.dies, on_error(args))  # a format with its own reader: its layouts and bin codes
    raw = canonical_dies(data)
    dies = final_results(raw if raw is not None else read_dies(args.dies, on_error=on_error(args)))
    if len(dies) and (dies["die_x"].isna() | dies["die_y"].isna()).all():
        raise YieldkitValueError(f"{args.dies}: no die has a wafer position (final-test data: parts without die "
                                 "coordinates), so there is no wafer map to draw; 'summary' and 'report' work on it")
    common = layout_for(args.dies, data, given)  # --layout wins
    bin_labels = getattr(data, "bin_labels", None) or None
    value, column = args.value, None
    if args.value == "density":
        defects = read_defects(args.defects, layout=common, on_error=on_error(args))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", DataQualityWarning)
            dies = die_defect_counts(dies, defects, layout=common).table
        for w in caught:
            log.warning("%s", w.message)
        if common is not None and not common.inferred:
            dies = die_defect_density(dies, common)
            column = "density_per_cm2"
        else:
            column = "n_defects"
        value = "value"

    def stacked(path: Path) -> None:
        st = stack_map(dies, value_col=column) if column else stack_map(dies)
        col = f"mean_{column}" if column else "fail_rate"
        ax = plot_stacked_map(st, value_col=col, layout=common,
                              title=f"stacked: {col} over {int(st['n_wafers'].max())} wafers")
        save_figure(ax, path, dpi=args.dpi)
        log.info("wrote %s", path)

    def one(lot: str, wafer: str, path: Path) -> None:
        d = dies[(dies["lot_id"] == lot) & (dies["wafer_id"] == wafer)]
        lay = layout_for(args.dies, data, given, (lot, wafer))
        disp = WaferMapDisplay.from_dies(d, value=value, value_col=column, layout=lay, bin_names=bin_names,
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
    lot, wafer = _choose(args, wafers)
    one(lot, wafer, out)
    return 0


def _choose(args: argparse.Namespace, wafers: pd.DataFrame) -> tuple[str, str]:
    """The wafer of --wafer, or the first one (saying so when there are more)."""
    from ..errors import YieldkitValueError
    from ._files import parse_wafer

    if len(wafers) == 0:
        raise YieldkitValueError(f"{args.dies} holds no wafer to draw")
    if args.wafer:
        return parse_wafer(args.wafer, wafers, args.dies)
    lot, wafer = (str(v) for v in wafers.iloc[0])
    if len(wafers) > 1:
        log.warning("%s holds %d wafers; drew only lot %s wafer %s. Choose one with --wafer LOT/WAFER, or draw "
                    "every wafer with --all -o DIRECTORY (or the composite with --stack).", args.dies, len(wafers),
                    lot, wafer)
    return lot, wafer


def _defect_maps(args: argparse.Namespace, out: Path, given: Any) -> int:
    """Defect maps of a KLARF file: one wafer, every wafer (--all) or all wafers overlaid (--stack)."""

    from ..errors import YieldkitValueError
    from ..plotting.export import save_figure
    from ..plotting.maps import DefectMapDisplay
    from ..schema import complete_positions
    from ._files import layout_for, read_source

    if args.value != "bin" or args.defects:
        raise YieldkitValueError(f"{args.dies} is a defect file (KLARF): it is drawn as a defect map; --value and "
                                 "--defects apply to die files")
    data = read_source(args.dies, on_error(args))
    defects = data.defects
    if given is None and len(defects) and ("x_um" not in defects.columns or not defects["x_um"].notna().any()):
        raise YieldkitValueError(f"{args.dies}: the KLARF gives no die pitch (DiePitch), so its defects have no "
                                 "place on the wafer; give the layout with --layout LAYOUT.json")
    wafers = data.wafers[["lot_id", "wafer_id"]].astype(str).drop_duplicates().reset_index(drop=True)

    def draw(d: pd.DataFrame, lay: Any, title: str, path: Path) -> None:
        if given is not None and len(d):
            d = complete_positions(d.drop(columns=[c for c in ("x_um", "y_um") if c in d.columns]), given)
        disp = DefectMapDisplay.from_defects(d, lay, title=title)
        save_figure(disp, path, dpi=args.dpi)
        log.info("wrote %s", path)

    def of(lot: str, wafer: str) -> pd.DataFrame:
        return defects[(defects["lot_id"].astype(str) == lot) & (defects["wafer_id"].astype(str) == wafer)]

    def title(lot: str, wafer: str) -> str:
        return f"lot {lot} wafer {wafer}: {len(of(lot, wafer))} defects"

    if args.all:
        for lot, wafer in wafers.itertuples(index=False):
            draw(of(lot, wafer), layout_for(args.dies, data, given, (lot, wafer)), title(lot, wafer),
                 out / f"{_slug(lot)}_{_slug(wafer)}.png")
        draw(defects, layout_for(args.dies, data, given), f"{len(defects)} defects on {len(wafers)} wafers",
             out / "stacked.png")
        return 0
    if args.stack:
        draw(defects, layout_for(args.dies, data, given), f"{len(defects)} defects on {len(wafers)} wafers", out)
        return 0
    lot, wafer = _choose(args, wafers)
    draw(of(lot, wafer), layout_for(args.dies, data, given, (lot, wafer)), title(lot, wafer), out)
    return 0
