"""``yieldkit similar QUERY --gallery GALLERY.parquet``: the past wafers most like each query wafer.

``yieldkit similar DIES --build-gallery GALLERY.parquet [--metadata WAFERS.csv]`` indexes a gallery.
"""

from __future__ import annotations

import argparse
import logging

from ._common import add_salvage_argument, emit_table, on_error, stages

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "similar",
        help="find the past wafers most similar to each wafer (with their known causes)",
        description="Search a gallery of past wafers for the k most similar maps of every wafer in QUERY, "
        "or build such a gallery (--build-gallery) from a die table and a table of what is known about "
        "each wafer (lot_id, wafer_id, label, cause, date, ...).",
        epilog="examples:\n  yieldkit similar past.parquet --build-gallery gallery.parquet --metadata wafers.csv\n"
        "  yieldkit similar lot42.stdf --gallery gallery.parquet -k 10 --exclude-same-lot -o similar.csv",
    )
    p.add_argument("input", metavar="QUERY", help="die table or map file(s) (anything read_dies reads)")
    add_salvage_argument(p)
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--gallery", help="gallery Parquet file to search")
    mode.add_argument("--build-gallery", metavar="GALLERY", help="index the wafers of INPUT into this Parquet file")
    p.add_argument("-k", type=int, default=10, help="neighbours per wafer (default 10)")
    p.add_argument("--exclude-same-lot", action="store_true", help="skip gallery wafers of the query's lot")
    p.add_argument("--exclude-duplicates", action="store_true", help="skip gallery maps identical to the query")
    p.add_argument("--metadata", help="with --build-gallery: wafer table (lot_id, wafer_id, label, cause, ...)")
    p.add_argument("--representation", default="proba+features", choices=("proba+features", "features"),
                   help="with --build-gallery: wafer representation (default proba+features)")
    p.add_argument("--metric", default="euclidean", choices=("euclidean", "cosine"), help="with --build-gallery")
    p.add_argument("--invariant", action="store_true",
                   help="with --build-gallery: rank by the best of the 8 flips and rotations of the query")
    p.add_argument("--n-components", type=int, help="with --build-gallery: PCA to this many dimensions")
    p.add_argument("-o", "--output", help="write the neighbours (.csv, .json, .parquet or .xlsx)")
    p.add_argument("--format", choices=("table", "csv", "json"), default="table", help="stdout format")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .. import read_dies
    from ..classify.similar import SimilarWafers

    if args.build_gallery:
        with stages(args, ["reading", "indexing", "writing"]) as step:
            step("reading")
            dies = read_dies(args.input, on_error=on_error(args))
            meta = None
            if args.metadata:
                from .. import read_wafers

                meta = read_wafers(args.metadata, on_error=on_error(args))
            step("indexing")
            sw = SimilarWafers(representation=args.representation, metric=args.metric, invariant=args.invariant,
                               n_components=args.n_components).fit(dies, meta)
            step("writing")
            sw.save(args.build_gallery)
        log.info("wrote a gallery of %d wafers to %s", len(sw.vectors_), args.build_gallery)
        return 0
    with stages(args, ["loading the gallery", "reading", "searching"]) as step:
        step("loading the gallery")
        sw = SimilarWafers.load(args.gallery)
        step("reading")
        dies = read_dies(args.input, on_error=on_error(args))
        step("searching")
        res = sw.query(dies, k=args.k, exclude_same_lot=args.exclude_same_lot,
                       exclude_duplicates=args.exclude_duplicates)
    if args.output:
        if str(args.output).lower().endswith(".parquet"):
            from ..io.atomic import atomic_path

            with atomic_path(args.output) as tmp:
                res.table.to_parquet(tmp, index=False)
        else:
            emit_table(res.table, args.format, args.output)
    else:
        emit_table(res.table, args.format)
    return 0
