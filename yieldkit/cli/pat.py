"""``yieldkit pat DATALOG.stdf``: screen a lot by part average testing and write the screened die table."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from ..errors import YieldkitValueError
from ._common import add_format_argument, add_salvage_argument, emit_table, on_error, stages

log = logging.getLogger(__name__)


def _rule_list(text: str) -> tuple[str, ...]:
    from ..pat import RULES

    rules = tuple(r.strip().lower() for r in text.split(",") if r.strip())
    bad = [r for r in rules if r not in RULES]
    if not rules or bad:
        raise argparse.ArgumentTypeError(f"expected rules from {', '.join(RULES)} separated by commas; got {text!r}")
    return rules


def _int_list(text: str) -> tuple[int, ...]:
    try:
        out = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        out = ()
    if not out:
        raise argparse.ArgumentTypeError(f"expected test numbers separated by commas, such as 100,101; got {text!r}")
    return out


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "pat",
        help="screen outliers by part average testing (parametric and geographic PAT)",
        description="Read an STDF datalog with its parametric results, ink the passing dies that are outliers "
        "of their lot (dynamic PAT, AEC-Q001) or sit among failing dies (geographic rules), and write the "
        "screened die table (original bins kept in hbin_orig/sbin_orig). Prints the yield loss per rule.",
        epilog="examples:\n  yieldkit pat lot42.stdf -o screened.parquet\n"
        "  yieldkit pat lot42.stdf --static static.json --rules dpat,gdbn,nnr,zpat --nnr-tests 100 -o screened.stdf",
    )
    p.add_argument("input", help="STDF datalog (with PTR/MPR records)")
    p.add_argument("-o", "--output", help="screened die table: .parquet, .csv or .stdf (the screened bins written "
                   "back with the tests); default: next to the input, .pat.parquet")
    p.add_argument("--rules", type=_rule_list, default=("dpat", "gdbn", "cluster", "zpat"),
                   help="rules in order, comma-separated, from spat, dpat, zpat, reticle, cluster, gdbn, opposite, "
                   "weighted, nnr (default dpat,gdbn,cluster,zpat)")
    p.add_argument("--static", metavar="LIMITS.json", help="static PAT limits saved from reference lots (adds spat)")
    p.add_argument("--save-static", metavar="LIMITS.json",
                   help="compute static limits (median +/- k RS over all parts) from this datalog and save them")
    p.add_argument("--method", choices=("robust_dynamic", "dynamic", "iqr"), default="robust_dynamic",
                   help="dynamic PAT limits: median +/- k RS (default), mean +/- k s, or IQR fences")
    p.add_argument("--k", type=float, default=6.0, help="limit width in sigmas (default 6, AEC-Q001)")
    p.add_argument("--by", choices=("lot", "wafer"), default="lot", help="dynamic limits per lot (default) or wafer")
    p.add_argument("--min-samples", type=int, default=50, help="fewest good parts for limits (default 50)")
    p.add_argument("--nnr-tests", type=_int_list, default=(), help="test numbers screened by the nnr rule (default: every test with values)")
    p.add_argument("--shot", nargs=2, type=int, metavar=("X", "Y"), help="dies per reticle shot (reticle rule)")
    p.add_argument("--limits", metavar="FILE", help="also write the PAT limits table (.csv, .json, .xlsx)")
    add_salvage_argument(p)
    add_format_argument(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..io.stdf import read_stdf, write_stdf
    from ..io.tabular import write_csv, write_parquet
    from ..pat import GeoParams, load_pat_limits, pat_limits, screen

    output = args.output or str(Path(args.input).with_suffix(".pat.parquet"))
    with stages(args, ["reading", "screening"]) as step:
        step("reading " + Path(args.input).name)
        f = read_stdf(args.input, tests=True, on_error=on_error(args))
        tests = f.tests
        if tests is None or not len(tests):
            raise YieldkitValueError(f"{args.input}: the datalog holds no parametric test results (PTR/MPR)")
        if args.save_static:
            spat = pat_limits(tests, method="static", k=args.k, by=(), min_samples=args.min_samples, dies=f.dies)
            spat.save(args.save_static)
            log.info("wrote static limits to %s", args.save_static)
        step("screening")
        static = load_pat_limits(args.static) if args.static else None
        by = ("lot_id",) if args.by == "lot" else ("lot_id", "wafer_id")
        res = screen(f.dies, tests, rules=args.rules, static=static, method=args.method, k=args.k, by=by,
                     min_samples=args.min_samples, nnr_tests=args.nnr_tests,
                     params=GeoParams(shot=(args.shot[0], args.shot[1]) if args.shot else None))
    table = res.table
    ext = Path(output).name.lower()
    if ext.endswith((".stdf", ".std")):
        write_stdf(table, output, layout=f.layout, tests=tests)
    elif ext.endswith((".csv", ".csv.gz")):
        write_csv(table, output)
    else:
        write_parquet(table, output)
    log.info("wrote %d dies (%d inked) to %s", len(table), res.result.n_good_before - res.result.n_good_after, output)
    if args.limits and res.limits:
        import pandas as pd

        emit_table(pd.concat([lim.table.assign(rule=lim.rule) for lim in res.limits], ignore_index=True), "table",
                   args.limits)
    emit_table(res.result.loss_by_rule, args.format)
    return 0
