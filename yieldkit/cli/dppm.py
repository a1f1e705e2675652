"""``yieldkit dppm``: defect level (DPPM) from yield and fault coverage, or the coverage a target needs.

Three forms::

    yieldkit dppm --yield 0.85 --coverage 0.99 [--model wb|asa|nb --n0 N --cluster-alpha A]
    yieldkit dppm --target-dppm 100 --yield 0.85 [--model ...]
    yieldkit dppm --fit FIT.json --coverage 0.99 [--area A] [--conf-level 0.95]
"""

from __future__ import annotations

import argparse

from ..errors import YieldkitError, YieldkitValueError
from ._common import add_format_argument, emit_table


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "dppm",
        help="defect level (DPPM) from yield and fault coverage, or the coverage a DPPM target needs",
        description="Outgoing quality. With --yield and --coverage: the defect level of what ships. "
        "With --target-dppm and --yield: the fault coverage needed. With --fit FIT.json and --coverage: "
        "the defect level predicted by a saved yield-model fit, with a confidence interval. "
        "Yields are defect-limited (systematic failures are assumed always detected).",
    )
    p.add_argument("--yield", dest="yield_", type=float, nargs="+", metavar="Y", help="defect-limited yield(s) in [0, 1]")
    p.add_argument("--coverage", type=float, nargs="+", metavar="T", help="fault coverage(s) in [0, 1]")
    p.add_argument("--target-dppm", type=float, nargs="+", metavar="DPPM", help="DPPM target(s): print the coverage needed")
    p.add_argument("--model", choices=("wb", "asa", "nb"), default="wb",
                   help="wb: Williams-Brown (default); asa: Agrawal-Seth-Agrawal (needs --n0); "
                   "nb: clustered faults (needs --cluster-alpha)")
    p.add_argument("--n0", type=float, help="mean number of faults on a faulty die (>= 1), model asa")
    p.add_argument("--cluster-alpha", "--alpha", dest="cluster_alpha", type=float,
                   help="negative-binomial clustering parameter (> 0), model nb")
    p.add_argument("--fit", metavar="FIT.json", help="a yield-model fit saved by yieldkit (yieldkit.models.save_fit)")
    p.add_argument("--area", type=float, nargs="+", help="die area(s) [cm^2] with --fit (default: the fit's area)")
    p.add_argument("--interval", choices=("delta", "none"), default="delta",
                   help="interval of the --fit prediction: delta method (default) or none")
    p.add_argument("--conf-level", type=float, help="confidence level with --fit (default: the fit's)")
    p.add_argument("-o", "--output", help="write the table to this file instead of stdout")
    add_format_argument(p)
    p.set_defaults(func=run)


def _load_fit(path: str):
    try:
        from ..models import load_fit
    except ImportError as exc:  # pragma: no cover - depends on the installed modules
        raise YieldkitError(f"reading a saved fit needs yieldkit.models.load_fit, which is not available ({exc})") from exc
    return load_fit(path)


def run(args: argparse.Namespace) -> int:
    from ..quality import defect_level, dppm_table, required_coverage

    if args.fit:
        if not args.coverage:
            raise YieldkitValueError("--coverage is required with --fit")
        if args.yield_ or args.target_dppm:
            raise YieldkitValueError("--fit excludes --yield and --target-dppm")
        model = _load_fit(args.fit)
        coverage = [c for c in args.coverage for _ in (args.area or [None])]
        area = None if not args.area else [a for _ in args.coverage for a in args.area]
        table = defect_level(
            model,
            coverage,
            area,
            interval=None if args.interval == "none" else "delta",
            conf_level=args.conf_level,
        )
        table.insert(0, "model", type(model).__name__)
        emit_table(table, args.format, args.output)
        return 0
    if not args.yield_:
        raise YieldkitValueError("--yield is required (or give --fit)")
    if args.target_dppm:
        if args.coverage:
            raise YieldkitValueError("--target-dppm excludes --coverage")
        import numpy as np

        y = np.repeat(args.yield_, len(args.target_dppm))
        d = np.tile(args.target_dppm, len(args.yield_))
        table = required_coverage(y, d, args.model, n0=args.n0, cluster_alpha=args.cluster_alpha).table
        emit_table(table, args.format, args.output)
        return 0
    if not args.coverage:
        raise YieldkitValueError("--coverage is required with --yield")
    table = dppm_table(args.yield_, args.coverage, args.model, n0=args.n0, cluster_alpha=args.cluster_alpha)
    emit_table(table, args.format, args.output)
    return 0
