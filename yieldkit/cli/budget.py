"""``yieldkit budget DIES --defects ...``: the yield-loss budget as a table or an HTML page."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from ._common import bin_list, emit_table

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "budget",
        help="yield-loss budget: systematic, defect (per layer and class), parametric and remainder",
        description="Split the yield loss 1 - Y of a die table into the systematic yield (window method), "
        "defect-limited yields per layer and class (joint kill model on the defects; several defect files "
        "are matched across steps first, so each defect counts once, at the step that added it), "
        "parametric bins and the remainder. The losses are log shares of 1 - Y and add up to it exactly. "
        "The format follows the -o extension (.html: waterfall, table and impact Pareto).",
        epilog="examples:\n  yieldkit budget dies.parquet --defects M1.klarf V1.klarf M2.klarf -o budget.html\n"
        "  yieldkit budget dies.csv --defects scan.csv --systematic 0.95 --parametric-bins 6,7 -o budget.csv",
    )
    p.add_argument("dies", help="die table (STDF, CSV, Parquet, maps)")
    p.add_argument("--defects", nargs="+", help="defect files; several: inspections of successive steps, in order")
    p.add_argument("--layout", help="layout JSON (die area for the window method); default: the files' own")
    p.add_argument("--systematic", default="fit",
                   help="'fit' (window method, needs the die area), a known Y0 such as 0.95, or 'none'")
    p.add_argument("--parametric-bins", type=bin_list, default=(),
                   help="parametric hard bins in test order, comma-separated (e.g. 6,7)")
    p.add_argument("--by", default="layer,defect_class", help="defect component columns (default layer,defect_class)")
    p.add_argument("--radius", type=float, help="match radius across steps [um] (default from the alignment)")
    p.add_argument("--price-per-die", type=float, help="value of a good die, for the impact Pareto")
    p.add_argument("--conf-level", type=float, default=0.95, help="confidence level of the intervals")
    p.add_argument("--seed", type=int, default=0, help="seed of the window method's bootstrap")
    p.add_argument("--title", default="Yield-loss budget", help="title of the HTML page")
    p.add_argument("--format", choices=("table", "csv", "json"), default="table", help="stdout format")
    p.add_argument("-o", "--output", help="write .html, .csv, .json or .xlsx instead of printing")
    p.set_defaults(func=run)


def _systematic(text: str) -> Any:
    from ..errors import YieldkitValueError

    t = text.strip().lower()
    if t in ("fit", "none"):
        return None if t == "none" else "fit"
    try:
        return float(t)
    except ValueError:
        raise YieldkitValueError(f"The '--systematic' argument of yieldkit budget must be 'fit', 'none' or a "
                                 f"yield such as 0.95. Got {text!r} instead.") from None


def run(args: argparse.Namespace) -> int:
    from .. import read_dies
    from ..budget import impact_pareto, yield_budget
    from ..errors import YieldkitValueError
    from ..inspection import match_steps
    from .adders import files_layout, read_steps

    systematic = _systematic(args.systematic)
    layout = files_layout(args.layout, [args.dies, *(args.defects or [])])
    dies = read_dies(args.dies)
    by = [c.strip() for c in args.by.split(",") if c.strip()]
    defects = None
    extra = []
    if args.defects:
        defects, order = read_steps(list(args.defects), layout)
        if len(order) > 1:
            m = match_steps(defects, order, radius_um=args.radius)
            defects = m.table
            log.info("matched %d defects over %d steps: %d adders", len(defects), len(order),
                     int(defects["is_adder"].sum()))
    area = layout.die_area_cm2 if layout is not None and not layout.inferred else None
    if systematic == "fit" and area is None:
        raise YieldkitValueError("--systematic fit (the window method) needs the die area: give --layout (or files "
                                 "that carry their layout, such as KLARF), or a known yield with --systematic 0.95, "
                                 "or --systematic none.")
    budget = yield_budget(dies, defects, systematic=systematic, by=by, parametric_bins=args.parametric_bins,
                          die_area_cm2=area, conf_level=args.conf_level, random_state=args.seed)
    if not args.output:
        emit_table(budget.table, args.format)
        return 0
    ext = Path(args.output).suffix.lower()
    if ext in (".html", ".htm"):
        from ..report.budget import build_budget_report

        if defects is not None and "is_adder" in defects.columns:
            from ..inspection import adder_summary

            extra.append(("Adders per step", adder_summary(defects, by=()).groupby("step", sort=False)[
                ["total", "adders", "carried_over"]].sum().reset_index()))
        build_budget_report(budget, title=args.title, output=args.output, price_per_die=args.price_per_die,
                            extra=extra)
        log.info("wrote %s", args.output)
    elif ext in (".csv", ".json", ".xlsx"):
        emit_table(budget.table, "table", args.output)
    else:
        raise YieldkitValueError(f"The '-o' argument of yieldkit budget must end in .html, .csv, .json or .xlsx. "
                                 f"Got {args.output!r} instead.")
    if args.price_per_die is not None:
        log.info("top component: %s", impact_pareto(budget, price_per_die=args.price_per_die).iloc[0]["category"])
    return 0
