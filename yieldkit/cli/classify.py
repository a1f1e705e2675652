"""``yieldkit classify INPUT``: failure pattern of every wafer, with candidate causes and counts per lot."""

from __future__ import annotations

import argparse
import logging

from ._common import add_salvage_argument, emit_table, on_error, stages

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "classify",
        help="classify wafer-map failure patterns (Center, Edge-Ring, Scratch, ...) with candidate causes",
        description="Turn a die table into wafer grids, predict each wafer's failure pattern and attach "
        "candidate causes. Prints the pattern counts per lot; -o writes one row per wafer.",
    )
    p.add_argument("input", help="die table (CSV, Parquet, STDF, map files: anything read_dies reads)")
    add_salvage_argument(p)
    p.add_argument("--model", default="pretrained",
                   help="'pretrained' (shipped WM-811K model), 'mixedwm38' (shipped multi-label model: every "
                   "signature of a wafer) or the path of a model saved with .save()")
    p.add_argument("--sha256", help="expected SHA-256 of --model PATH (refused when it differs)")
    p.add_argument("-o", "--output", help="write the per-wafer predictions (.csv or .json)")
    p.add_argument("--summary", help="write the pattern counts per lot (.csv or .json)")
    p.add_argument("--format", choices=("table", "csv", "json"), default="table", help="stdout format")
    p.set_defaults(func=run)


def _fmt(path: str) -> str:
    from ..errors import YieldkitValueError

    ext = path.rsplit(".", 1)[-1].lower()
    if ext not in ("csv", "json"):
        raise YieldkitValueError(f"Output files of yieldkit classify must end in .csv or .json. Got {path!r} instead.")
    return ext


def run(args: argparse.Namespace) -> int:
    from .. import read_dies
    from ..classify.causes import pattern_summary
    from ..classify.ensemble import pattern_model_from_bytes
    from ..classify.grid import dies_to_grids
    from ..classify.pattern import read_checked
    from ..classify.pretrained import load_pretrained

    for path in (args.output, args.summary):
        if path:
            _fmt(path)
    with stages(args, ["loading the model", "reading", "classifying"]) as step:
        step("loading the model")
        if args.model in ("pretrained", "wm811k", "mixedwm38"):
            clf = load_pretrained("wm811k" if args.model == "pretrained" else args.model)
        else:
            clf = pattern_model_from_bytes(read_checked(args.model, args.sha256), source=str(args.model))
        step("reading")
        wafers, grids = dies_to_grids(read_dies(args.input, on_error=on_error(args)))
        log.info("%d wafers", len(grids))
        step("classifying")
        pred = clf.predict_table(grids, wafers=wafers[["lot_id", "wafer_id", "n_die", "n_fail"]])
        summary = pattern_summary(pred)
    if args.output:
        emit_table(pred, _fmt(args.output), args.output)
    if args.summary:
        emit_table(summary, _fmt(args.summary), args.summary)
    if not args.output:
        cols = ["lot_id", "wafer_id", "pattern", "n_patterns" if clf.multilabel else "probability", "process_area"]
        emit_table(pred[cols], args.format)
    elif not args.summary:
        emit_table(summary[["lot_id", "pattern", "wafers", "share", "process_area"]], args.format)
    return 0
