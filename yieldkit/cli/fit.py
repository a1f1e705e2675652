"""``yieldkit fit INPUT``: fit and compare yield models, save the chosen fit, plot it.

INPUT may be:

* a counts table (CSV/Parquet) with an ``n_defects`` column (or ``--count-col``), e.g. the
  output of ``yieldkit.die_defect_counts`` or a one-column list of per-die counts
  (``--route counts``, the default);
* a die table (``--route window``): read with :func:`yieldkit.read_dies`;
* a defect table or KLARF file (``--route counts`` with ``--dies DIES``): counted per die with
  :func:`yieldkit.die_defect_counts`; a KLARF file alone is counted on its inspected dies (its
  sample test plan, else every die of its layout) with its die pitch as the die area;
* a product table with ``die_area_cm2, tested, good`` (``--route die-size``).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from ._common import add_salvage_argument, emit_table, on_error, stages

log = logging.getLogger(__name__)

_MODELS = ("all", "poisson", "nb", "murphy", "seeds", "bose-einstein")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "fit",
        help="fit and compare yield models (counts, window method, die sizes)",
        description="Fit yield models by one route, print the comparison table (best first), save the "
        "chosen fit as JSON and draw observed vs fitted values. INPUT: a counts table (n_defects column), "
        "a defect table with --dies, a die table (--route window) or a die_area_cm2/tested/good table "
        "(--route die-size).",
    )
    p.add_argument("input", help="counts, defect, die or product table (CSV, Parquet; KLARF for defects)")
    p.add_argument("--route", choices=("counts", "window", "die-size"), default="counts")
    p.add_argument("--model", choices=_MODELS, default="all", help="model to fit and save (default all; "
                   "the best by AIC is saved)")
    p.add_argument("--area", type=float, help="die area [cm^2] (counts and window routes; default for a KLARF: "
                   "its die pitch)")
    p.add_argument("--count-col", default="n_defects", help="count column of a counts table")
    p.add_argument("--dies", help="die table or layout JSON, to count defects per die from a defect table "
                   "(default for a KLARF: its inspected dies)")
    p.add_argument("--n-layers", type=int, default=1, help="critical layers of the Bose-Einstein model")
    p.add_argument("--pooling", choices=("die", "wafer", "lot"), default="die", help="counts route: unit of a count")
    p.add_argument("--conf-level", type=float, default=0.95)
    p.add_argument("--format", choices=("table", "csv", "json"), default="table", help="output format")
    p.add_argument("-o", "--output", help="write the chosen fit as JSON here")
    p.add_argument("--plot", help="draw observed vs fitted values to this PNG")
    add_salvage_argument(p)
    p.set_defaults(func=run)


def _read_counts(args: argparse.Namespace):
    import pandas as pd

    from ..errors import YieldkitValueError
    from ..io.registry import sniff_format
    from ..io.tabular import read_table

    path = Path(args.input)
    fmt = sniff_format(path) if path.is_file() else None
    if args.dies or fmt in ("klarf", "stdf", "e142", "g85", "textmap"):
        from .. import read_defects, read_dies

        try:
            from ..maps import die_defect_counts
        except ImportError as exc:  # pragma: no cover - depends on the installed modules
            raise YieldkitValueError(f"counting defects per die needs yieldkit.maps.die_defect_counts ({exc})") from None
        if not args.dies and fmt == "klarf":
            return _klarf_counts(args, path)
        if not args.dies:
            raise YieldkitValueError(f"{path}: a defect file needs --dies (a die table or a layout JSON) to "
                                     "count defects on every inspected die")
        dies_path = Path(args.dies)
        if dies_path.suffix.lower() == ".json":
            from ._common import load_layout

            target = load_layout(dies_path)
            area = target.die_area_cm2
        else:
            target = read_dies(dies_path, on_error=on_error(args))
            area = args.area
        table = die_defect_counts(target, read_defects(path, layout=target if not isinstance(target, pd.DataFrame) else None,
                                                       on_error=on_error(args))).table
        return table, args.area or area
    table, _, _ = read_table(path, "die", None, on_error(args))
    if args.count_col not in table.columns:
        if table.shape[1] == 1:
            table = table.rename(columns={table.columns[0]: args.count_col})
        else:
            lower = {str(c).lower(): c for c in table.columns}
            if args.count_col.lower() in lower:
                table = table.rename(columns={lower[args.count_col.lower()]: args.count_col})
    return table, args.area


def _klarf_counts(args: argparse.Namespace, path: Path):  # -> (DataFrame, float | None)
    """Defects per inspected die of a KLARF file alone, and its die area [cm^2]."""
    from ..analysis import inspected_die_table
    from ..errors import YieldkitValueError
    from ..maps import die_defect_counts
    from ._files import layout_for, read_source

    data = read_source(path, on_error(args))
    layout = layout_for(path, data, None)
    dies = inspected_die_table(data.defects, layout, inspected_dies=data.inspected_dies, wafers=data.wafers)
    if dies is None:
        raise YieldkitValueError(f"{path}: the file has no sample test plan and no die pitch, so its inspected dies "
                                 "are unknown; give them with --dies (a die table or a layout JSON)")
    area = args.area or (None if layout is None else layout.die_area_cm2)
    if area is None:
        raise YieldkitValueError(f"{path}: the KLARF gives no die pitch (DiePitch), so the die area is unknown; "
                                 "give it with --area (cm^2)")
    if args.area is None and area is not None:
        log.info("%s: die area %.4g cm^2 from the die pitch; %d inspected dies", path, area, len(dies))
    return die_defect_counts(dies, data.defects).table, area


def run(args: argparse.Namespace) -> int:
    from ..errors import YieldkitValueError
    from ..models import compare_models, save_fit

    models = "all" if args.model == "all" else [args.model]
    kw: dict = {}
    if args.route == "counts":
        data, area = _read_counts(args)
        kw = {"count_col": args.count_col, "pooling": args.pooling}
    elif args.route == "window":
        from .. import read_dies

        data, area = read_dies(args.input, on_error=on_error(args)), args.area
    else:
        from ..io.tabular import read_table

        data, _, _ = read_table(Path(args.input), "wafer", None, on_error(args))
        data.columns = [str(c).lower() for c in data.columns]
        area = None
    if args.route != "die-size" and area is None:
        raise YieldkitValueError("--area (the die area in cm^2) is required for the counts and window routes")
    with stages(args, ["fitting"]) as step:
        step("fitting")
        comparison = compare_models(data, area, route=args.route, models=models, n_layers=args.n_layers,
                                    conf_level=args.conf_level, **kw)
    table, fitted = comparison.table, comparison.models
    if not fitted:
        raise YieldkitValueError("no model could be fitted: " + "; ".join(table["error"].astype(str)))
    shown = table.drop(columns=["warnings"]) if args.format == "table" else table
    emit_table(shown, args.format)
    best = table["model"].iloc[0] if args.model == "all" else args.model
    chosen = fitted.get(best)
    for w in table.loc[table["warnings"].astype(bool), ["model", "warnings"]].itertuples():
        log.warning("%s: %s", w.model, w.warnings)
    if args.output and chosen is not None:
        save_fit(chosen, args.output)
        log.info("saved the %s fit to %s", best, args.output)
    if args.plot:
        from ..plotting.export import save_figure
        from ..plotting.models import plot_fit

        order = [fitted[m] for m in table["model"] if m in fitted]
        ax = plot_fit(order, table=data if args.route == "die-size" else None)
        save_figure(ax, args.plot, dpi=120, format="png")
    return 0
