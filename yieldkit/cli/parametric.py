"""``yieldkit parametric DATALOG.stdf -o capability.csv``: capability, shifts and test-bin association."""

from __future__ import annotations

import argparse
import logging

from ._common import add_salvage_argument, emit_table, on_error

log = logging.getLogger(__name__)

_SHOWN = ["lot_id", "test_num", "pin", "test_name", "units", "lo_limit", "hi_limit", "n", "mean", "sigma_within",
          "cp", "cpk", "cpk_lower", "cpk_upper", "ppk", "expected_ppm"]


def _level(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        v = -1.0
    if not 0.0 < v < 1.0:
        raise argparse.ArgumentTypeError(f"expected a confidence level in (0, 1) such as 0.95; got {text!r}")
    return v


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "parametric",
        help="capability (Cp, Cpk, Pp, Ppk with intervals), lot shifts and test-bin association of parametric tests",
        description="Read the parametric results (PTR/MPR) of an STDF datalog; write the capability of every test "
        "per lot, optionally the lot-to-lot shifts, the tests that separate failing bins from good dies, and the "
        "HTML report with its parametric section.",
    )
    p.add_argument("datalog", help="STDF datalog with parametric results")
    p.add_argument("-o", "--output", help="capability table (.csv, .json or .xlsx; default: printed)")
    p.add_argument("--by", default="lot_id", help="comma-separated group columns (default lot_id; 'none' pools all)")
    p.add_argument("--subgroup", default="wafer_id", help="subgroup of the within sigma (default wafer_id; 'none')")
    p.add_argument("--conf-level", type=_level, default=0.95, help="confidence level of the intervals (default 0.95)")
    p.add_argument("--method", choices=("normal", "percentile"), default="normal",
                   help="percentile: Pp/Ppk from the 0.135%%/99.865%% quantiles (non-normal tests)")
    p.add_argument("--reference", help="STDF datalog of the reference lots for --shift (default: all lots pooled)")
    p.add_argument("--shift", help="write the lot-shift table (.csv or .json)")
    p.add_argument("--effect", type=float, default=1.0, help="smallest shift that alarms [robust sigmas] (default 1)")
    p.add_argument("--fdr", type=float, default=0.01, help="false discovery rate of the shift alarms (default 0.01)")
    p.add_argument("--association", help="write the test-bin association table (.csv or .json)")
    p.add_argument("--report", help="write the HTML yield report with its parametric section")
    p.add_argument("--format", choices=("table", "csv", "json"), default="table", help="stdout format")
    add_salvage_argument(p)
    p.set_defaults(func=run)


def _cols(text: str | None) -> tuple[str, ...] | None:
    if text is None or text.strip().lower() in ("", "none"):
        return None
    return tuple(c.strip() for c in text.split(",") if c.strip())


def run(args: argparse.Namespace) -> int:
    from ..errors import YieldkitValueError
    from ..io.stdf import read_stdf
    from ..parametric import capability, shift, test_bin_association

    f = read_stdf(args.datalog, tests=True, on_error=on_error(args))
    tests = f.tests
    if tests is None or not tests["value"].notna().any():
        raise YieldkitValueError(f"{args.datalog}: the datalog holds no parametric result (PTR/MPR)")
    sub = _cols(args.subgroup)
    cap = capability(tests, by=_cols(args.by), subgroup=sub[0] if sub else None, conf_level=args.conf_level,
                     method=args.method)
    if args.output:
        emit_table(cap.table, args.format, args.output)
    else:
        emit_table(cap.table[[c for c in _SHOWN if c in cap.table.columns]], args.format)
    if args.shift:
        if args.reference:
            ref = read_stdf(args.reference, tests=True, on_error=on_error(args)).tests
            if ref is None:
                raise YieldkitValueError(f"{args.reference}: the reference datalog holds no parametric result")
        else:
            if tests["lot_id"].nunique() < 2:
                log.warning("one lot and no --reference: the lot is compared with itself")
            ref = tests  # all lots pooled (the reference's lot column is not used)
        emit_table(shift(tests, ref, effect=args.effect, fdr=args.fdr).table, "table", args.shift)
    if args.association:
        emit_table(test_bin_association(f.dies, tests), "table", args.association)
    if args.report:
        from ..analysis import analyze
        from ..report import build_report

        res = analyze(f.dies, wafers=f.wafers, layout=f.layout, bin_names=f.bins, conf_level=args.conf_level,
                      tests=tests)
        build_report(res, title=f"Yield report: {f.lot.get('lot_id', '')}", output=args.report)
        log.info("wrote %s", args.report)
    return 0
