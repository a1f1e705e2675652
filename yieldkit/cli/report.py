"""``yieldkit report DIES -o reports/NAME.html``: the self-contained HTML yield report.

The die files' own layout (die pitch, wafer size) is used unless ``--layout`` is given. KLARF
files alone make a defects-only report: their sample test plans are the dies.
"""

from __future__ import annotations

import argparse
import logging

from ._common import (
    add_salvage_argument,
    default_output,
    load_bin_names,
    load_layout,
    non_negative_int,
    on_error,
    progress_enabled,
)

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report",
        help="write the HTML yield report",
        description="Analyse a die file and, optionally, defect and wafer files, and write one "
        "self-contained HTML report (images embedded, nothing fetched from the network). KLARF files alone "
        "give a defects-only report (Paretos, densities, defect maps, zones, clustering; no yields): the "
        "inspected dies of their sample test plans are the dies.",
    )
    p.add_argument("dies", nargs="+", help="die table(s) (CSV, Parquet, STDF, map files), or KLARF file(s) alone")
    p.add_argument("--defects", nargs="+", help="defect table(s) (CSV, Parquet, KLARF)")
    p.add_argument("--wafers", help="wafer table with process history")
    p.add_argument("--tests", nargs="+", help="parametric test results: STDF datalogs (their PTR/MPR/FTR "
                   "results) or Parquet test tables (the DATASET_tests/ of 'yieldkit convert'); adds the "
                   "parametric and PAT sections")
    p.add_argument("--layout", help="layout JSON (as written by 'yieldkit layout' or 'yieldkit simulate'); default: "
                   "the input's own")
    p.add_argument("--bin-names", help="JSON object mapping hard bin to name")
    p.add_argument("--title", default="Yield report")
    p.add_argument("--top", type=int, default=10, help="categories per Pareto before 'Other'")
    p.add_argument("--max-maps", type=non_negative_int, default=200, help="at most this many wafer maps (worst first)")
    p.add_argument("--pdf", help="also write the charts to this PDF")
    p.add_argument("--pattern-model", choices=("wm811k", "mixedwm38"), default="wm811k",
                   help="shipped pattern classifier: one pattern per wafer (wm811k) or every signature (mixedwm38)")
    p.add_argument("--gallery", help="similar-wafer gallery (yieldkit similar --build-gallery): list the closest "
                   "past wafers of every wafer with a failure signature")
    p.add_argument("-o", "--output", help="output HTML file (default: next to the first die file, .html)")
    eng = p.add_argument_group("Dask engine (data beyond memory)")
    eng.add_argument("--engine", choices=("memory", "dask"), default="memory",
                     help="'dask': read the dies (and --defects) as Parquet datasets, directories or globs and "
                     "analyse them on a Dask cluster (default: memory)")
    eng.add_argument("--scheduler", help="address of a running Dask scheduler (tcp://host:8786)")
    eng.add_argument("--workers", type=int, help="workers of a local Dask cluster (default: Dask's choice)")
    eng.add_argument("--memory-limit", help="memory limit of each local worker, e.g. 4GiB")
    add_salvage_argument(p)
    p.set_defaults(func=run)


def load_inputs(args: argparse.Namespace) -> dict:
    """Read the die, defect and wafer files, layout and bin names named on the command line."""
    import pandas as pd

    from .. import read_defects, read_dies, read_wafers
    from ._files import canonical_dies, file_layouts, read_source

    layout = None
    if getattr(args, "layout", None):
        layout = load_layout(args.layout)
    bin_names = None
    if getattr(args, "bin_names", None):
        bin_names = load_bin_names(args.bin_names)
    oe = on_error(args)
    if _klarf_only(args):
        return _load_klarfs(args, layout, oe)
    # each file is read once: a format reader's object gives its die table and its layouts
    sources = [read_source(f, oe) for f in args.dies]
    if layout is None:  # --layout wins; else the die files' own
        found: dict = {}
        for data in sources:
            found.update(file_layouts(data))
        layout = _common(args.dies[0], found)
    tables = [canonical_dies(data) for data in sources]
    tables = [read_dies(f, on_error=oe) if t is None else t for f, t in zip(args.dies, tables, strict=True)]
    dies = pd.concat(tables, ignore_index=True) if len(tables) > 1 else tables[0]
    defects = None
    if getattr(args, "defects", None):
        parts = [read_defects(f, layout=layout, on_error=oe) for f in args.defects]
        defects = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
    wafers = read_wafers(args.wafers, on_error=oe) if getattr(args, "wafers", None) else None
    return {"dies": dies, "defects": defects, "wafers": wafers, "layout": layout, "bin_names": bin_names,
            "tests": read_test_tables(args.tests, oe) if getattr(args, "tests", None) else None}


def read_test_tables(paths: list[str], oe: str) -> object:
    """The long test table of STDF datalogs (read with ``tests=True``) and Parquet test tables."""
    import pandas as pd

    from .. import read_stdf
    from ..io.partitioned import read_tests
    from ._files import file_format

    parts = [read_stdf(f, tests=True, on_error=oe).tests if file_format(f) == "stdf" else read_tests(f)
             for f in paths]
    parts = [t for t in parts if t is not None]
    if not parts:
        return None
    return pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]


def _common(source: str, layouts: dict) -> object:
    from ._files import common_layout, describe

    lay = common_layout(layouts, loose=True)
    if lay is None and layouts:
        log.warning("%s: the wafers have different layouts (%s); the report uses die indices. Give one with "
                    "--layout", source, describe(layouts))
    return lay


def _klarf_only(args: argparse.Namespace) -> bool:
    """Whether the inputs are KLARF files alone (a defects-only report)."""
    from ..errors import YieldkitValueError
    from ._files import file_format

    kinds = [file_format(f) == "klarf" for f in args.dies]
    if not any(kinds):
        return False
    if not all(kinds) or getattr(args, "defects", None):
        raise YieldkitValueError("a KLARF file is a defect file: give it with --defects beside the die files, or "
                                 "give KLARF files alone for a defects-only report")
    return True


def _load_klarfs(args: argparse.Namespace, layout: object, oe: str) -> dict:
    """Defects, inspected dies and wafers of KLARF files given alone."""
    import pandas as pd

    from .. import read_wafers
    from ..schema import complete_positions
    from ._files import file_layouts, read_source

    datas = [read_source(f, oe) for f in args.dies]
    found: dict = {}
    for d in datas:
        found.update(file_layouts(d))
    if layout is None:
        layout = _common(args.dies[0], found)
    defects = pd.concat([d.defects for d in datas], ignore_index=True) if len(datas) > 1 else datas[0].defects
    if getattr(args, "layout", None) and len(defects):  # --layout wins: positions from die index + offset
        defects = complete_positions(defects.drop(columns=[c for c in ("x_um", "y_um") if c in defects.columns]),
                                     layout)
    plans = [d.inspected_dies for d in datas if d.inspected_dies is not None and len(d.inspected_dies)]
    inspected = [d.wafers[["lot_id", "wafer_id"]] for d in datas]
    wafers = read_wafers(args.wafers, on_error=oe) if getattr(args, "wafers", None) else None
    return {"dies": None, "defects": defects, "wafers": wafers, "layout": layout, "bin_names": None,
            "inspected_dies": pd.concat(plans, ignore_index=True) if plans else None,
            "inspected_wafers": pd.concat(inspected, ignore_index=True)}


def run(args: argparse.Namespace) -> int:
    import time

    from ..analysis import analyze
    from ..report import build_report

    started = getattr(args, "started", time.perf_counter())
    args.output = args.output or str(default_output(args.dies[0], ".html"))
    if getattr(args, "engine", "memory") == "dask":
        return _run_dask(args, started)
    if getattr(args, "scheduler", None) or getattr(args, "workers", None) or getattr(args, "memory_limit", None):
        from ..errors import YieldkitValueError

        raise YieldkitValueError("--scheduler, --workers and --memory-limit need --engine dask")
    inp = load_inputs(args)
    res = analyze(inp["dies"], inp["defects"], inp["wafers"], inp["layout"], inp["bin_names"], top=args.top,
                  tests=inp.get("tests"), inspected_dies=inp.get("inspected_dies"), inspected_wafers=inp.get("inspected_wafers"),
                  pattern_model=getattr(args, "pattern_model", "wm811k"), similar_gallery=getattr(args, "gallery", None))
    build_report(res, title=args.title, output=args.output, max_maps=args.max_maps, pdf=args.pdf,
                 progress=progress_enabled(args))
    if args.pdf:
        log.info("wrote %s", args.pdf)
    log.info("wrote %s (built in %.1f s)", args.output, time.perf_counter() - started)
    return 0


def _run_dask(args: argparse.Namespace, started: float) -> int:
    """The report of Parquet datasets on a Dask cluster (``--engine dask``)."""
    import time

    from .. import read_wafers
    from ..analysis import analyze
    from ..distributed import dask_client
    from ..report import build_report

    layout = load_layout(args.layout) if getattr(args, "layout", None) else None
    bin_names = load_bin_names(args.bin_names) if getattr(args, "bin_names", None) else None
    dies = args.dies if len(args.dies) > 1 else args.dies[0]
    defects = None
    if getattr(args, "defects", None):
        defects = args.defects if len(args.defects) > 1 else args.defects[0]
    wafers = read_wafers(args.wafers, on_error=on_error(args)) if getattr(args, "wafers", None) else None
    with dask_client(args.scheduler, workers=args.workers, memory_limit=args.memory_limit) as client:
        log.info("Dask dashboard: %s", client.dashboard_link)
        tests = getattr(args, "tests", None)
        res = analyze(dies, defects, wafers, layout, bin_names, top=args.top, engine="dask",
                      tests=(tests if len(tests) > 1 else tests[0]) if tests else None,
                      pattern_model=getattr(args, "pattern_model", "wm811k"),
                      similar_gallery=getattr(args, "gallery", None), dask_options={"max_maps": args.max_maps})
    build_report(res, title=args.title, output=args.output, max_maps=args.max_maps, pdf=args.pdf,
                 progress=progress_enabled(args))
    log.info("wrote %s (built in %.1f s)", args.output, time.perf_counter() - started)
    return 0
