"""The whole yield analysis on Dask: :func:`analyze_dask`, the engine of ``analyze(engine="dask")``.

The die table is made wafer-aligned (:func:`yieldkit.distributed.dataset.align_wafers`) and
each partition is reduced, with the in-memory routines, to small sufficient statistics: per
wafer counts, per bin counts, per die position counts, the per-wafer rows of the zonal,
clustering and pattern-class analyses. The client adds them up and finishes each section
exactly as the in-memory :func:`yieldkit.analyze` does, so the results are equal (order of
first appearance kept through a global row order).

``final_dies`` is not the whole final die table (it would not fit on the client): it holds the
final results of the wafers the report's gallery shows -- the ``max_maps`` wafers of lowest
yield, all wafers when there are no more -- and a note says so.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .._keys import wafer_codes
from ..intervals import clopper_pearson
from ..yields import final_results, first_pass_results, lots_from_wafers
from .dataset import DEFAULT_PARTITION_ROWS, ORDER_COL, _align, _row_order, open_table, wafer_partitions

if TYPE_CHECKING:
    from ..analysis import AnalysisResults

log = logging.getLogger(__name__)

__all__ = ["analyze_dask"]

_KEY = ["lot_id", "wafer_id"]
#: wafers whose final dies ``final_dies`` holds (the report's gallery default)
DEFAULT_MAX_MAPS = 200


def _is_dask(obj: Any) -> bool:
    return hasattr(obj, "map_partitions") and hasattr(obj, "npartitions")


def _open(source: Any, kind: str, partition_rows: int) -> Any:
    if source is None:
        return None
    return open_table(source, kind, partition_rows=partition_rows)


def _small(table: Any, kind: str) -> pd.DataFrame | None:
    """A small table (wafers, inspected wafers) in memory."""
    if table is None or isinstance(table, pd.DataFrame):
        return table
    if _is_dask(table):
        return table.compute()
    if isinstance(table, (str, os.PathLike)):
        from .. import read_wafers

        return read_wafers(table)
    return table


# ---------------------------------------------------------------------------------------
# per partition
# ---------------------------------------------------------------------------------------
def _bin_counts(d: pd.DataFrame) -> pd.DataFrame:
    """Failing bins of a (final or first-pass) table: ``category``, ``count``, ``first``."""
    sel = d[~d["passed"].to_numpy(dtype=bool)]
    t = pd.DataFrame({"category": sel["hbin"].to_numpy(dtype=np.int64, na_value=-1),
                      "first": sel[ORDER_COL].to_numpy(np.int64)})
    return t.groupby("category", sort=False).agg(count=("first", "size"), first=("first", "min")).reset_index()


def _with_first(t: pd.DataFrame, wafers: pd.DataFrame) -> pd.DataFrame:
    """Attach each wafer's first row (global order) to a per-wafer table."""
    if not len(t):
        return t.assign(_first=np.zeros(0, np.int64))
    m = t[_KEY].astype(str).merge(wafers[_KEY + ["first"]].astype({"lot_id": str, "wafer_id": str}), on=_KEY,
                                  how="left")
    return t.assign(_first=m["first"].to_numpy(np.int64))


def _partition_stats(df: pd.DataFrame, number: int, zone_layout: Any, conf_level: float, sections: Mapping[str, bool],
                     placed_fn: Any, pattern_model: str = "wm811k") -> dict[str, Any]:
    """Everything the engine needs from one wafer-aligned partition of the die table."""
    import warnings

    from ..errors import DataQualityWarning
    from ..yields import wafer_yield
    from .dataset import _wafer_rows

    info = {"number": number}
    df = df.assign(**{ORDER_COL: _row_order(df, info)}) if ORDER_COL not in df.columns else df
    out: dict[str, Any] = {"n_rows": len(df)}
    w = _wafer_rows(df, info)
    out["wafers"] = w
    if not len(df):
        return out
    wy = wafer_yield(df, conf_level=conf_level)
    out["counts"] = _with_first(wy[_KEY + ["tested", "good", "first_pass_good"]], w)
    final = final_results(df)
    first = first_pass_results(df)
    out["bins"] = _bin_counts(final)
    out["bins_first"] = _bin_counts(first)
    from ..pareto import retest_recovery

    r = retest_recovery(df)
    out["retest"] = r[["category", "first_pass_fails", "retested", "recovered"]] if len(r) else None
    notes: list[str] = []
    placed = placed_fn(df, notes)
    out["unplaced"] = 0 if placed is df else (len(df) if placed is None else len(df) - len(placed))
    if placed is None:
        return out
    pf = final if placed is df else final_results(placed)
    fail = ~pf["passed"].to_numpy(dtype=bool)
    s = pd.DataFrame({"die_x": pf["die_x"].to_numpy(np.int64), "die_y": pf["die_y"].to_numpy(np.int64),
                      "n": 1, "fail": fail.astype(np.int64)})
    out["stacked"] = s.groupby(["die_y", "die_x"], sort=False).sum().reset_index()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataQualityWarning)
        if sections.get("zonal") and zone_layout is not None:
            from ..maps import zonal_yield

            z = zonal_yield(placed, zone_layout, conf_level=conf_level)
            out["zonal"] = _with_first(z[z["flagged"]].reset_index(drop=True), w)
            out["zonal_tested"] = len(z)
        if sections.get("clustering"):
            from ..spatial import clustering_stats

            out["clustering"] = _with_first(clustering_stats(placed, sequential=True), w)
        if sections.get("patterns"):
            from ..classify.grid import dies_to_grids
            from ..classify.pretrained import load_pretrained

            ids, grids = dies_to_grids(pf)
            p = load_pretrained(pattern_model).predict_table(grids, wafers=ids[_KEY], causes=True)
            out["patterns"] = _with_first(p, w)
            if sections.get("similar"):  # only the wafers with a signature travel to the client
                sig = np.flatnonzero(p["pattern"].astype(str).to_numpy() != "none")
                out["similar"] = (_with_first(p[_KEY + ["pattern"]].iloc[sig].reset_index(drop=True), w),
                                  [grids[i] for i in sig])
    return out


def _positions(df: pd.DataFrame) -> pd.DataFrame:
    ok = df["die_x"].notna().to_numpy() & df["die_y"].notna().to_numpy()
    return pd.DataFrame({"die_x": df["die_x"].to_numpy()[ok], "die_y": df["die_y"].to_numpy()[ok]}).drop_duplicates()


def _gallery_dies(df: pd.DataFrame, number: int, shown: pd.DataFrame) -> pd.DataFrame:
    """Final results of the shown wafers in one partition."""
    info = {"number": number}
    if ORDER_COL not in df.columns:
        df = df.assign(**{ORDER_COL: _row_order(df, info)})
    codes, w = wafer_codes(df)
    keep_w = w[_KEY].astype(str).merge(shown.assign(_s=True), on=_KEY, how="left")["_s"].notna().to_numpy()
    sub = df[keep_w[codes]].reset_index(drop=True)
    return final_results(sub) if len(sub) else sub


# ---------------------------------------------------------------------------------------
# reductions
# ---------------------------------------------------------------------------------------
def _concat(stats: list[dict[str, Any]], name: str) -> pd.DataFrame | None:
    got = [s[name] for s in stats if s.get(name) is not None]
    if not got:
        return None
    return pd.concat(got, ignore_index=True)


def _by_first(t: pd.DataFrame) -> pd.DataFrame:
    return t.sort_values("_first", kind="stable").drop(columns="_first").reset_index(drop=True)


def _wafer_yield(counts: pd.DataFrame, conf_level: float) -> pd.DataFrame:
    tot = counts.groupby(_KEY, sort=False).agg(tested=("tested", "sum"), good=("good", "sum"),
                                               first_pass_good=("first_pass_good", "sum"),
                                               _first=("_first", "min")).reset_index()
    tot = tot.sort_values("_first", kind="stable").drop(columns="_first").reset_index(drop=True)
    out = tot[_KEY].copy()
    tested = tot["tested"].to_numpy(np.int64)
    good = tot["good"].to_numpy(np.int64)
    fp_good = tot["first_pass_good"].to_numpy(np.int64)
    lo, hi = clopper_pearson(good, tested, conf_level)
    out["tested"] = tested
    out["good"] = good
    with np.errstate(invalid="ignore", divide="ignore"):
        out["yield"] = good / tested
        out["first_pass_good"] = fp_good
        out["first_pass_yield"] = fp_good / tested
    out["ci_lower"] = lo
    out["ci_upper"] = hi
    return out


def _bin_pareto(parts: pd.DataFrame | None, n_tested: int, names: Mapping[int, str], top: int | None) -> pd.DataFrame:
    """:func:`yieldkit.bin_pareto` from the per-partition bin counts."""
    from ..pareto import _rank

    if parts is None or not len(parts):
        counted = pd.DataFrame({"category": pd.Series([], dtype=np.int64), "count": pd.Series([], dtype=np.int64)})
    else:
        counted = parts.groupby("category", sort=False).agg(count=("count", "sum"), first=("first", "min"))
        counted = counted.reset_index().sort_values("first", kind="stable").drop(columns="first").reset_index(drop=True)
    counted["name"] = counted["category"].map(lambda b: names.get(int(b), "")).astype(object)
    counted["yield_loss"] = counted["count"] / n_tested
    out = _rank(counted, [], "count", top)
    out["name"] = out["name"].fillna("")
    return out[["category", "name", *[c for c in out.columns if c not in ("category", "name")]]]


def _retest(parts: pd.DataFrame | None, names: Mapping[int, str]) -> pd.DataFrame:
    """:func:`yieldkit.retest_recovery` from the per-partition counts."""
    cols = ["category", "name", "first_pass_fails", "retested", "recovered", "still_failing", "recovery_rate"]
    if parts is None or not len(parts):
        return pd.DataFrame({c: [] for c in cols})
    out = parts.groupby("category").agg(first_pass_fails=("first_pass_fails", "sum"), retested=("retested", "sum"),
                                        recovered=("recovered", "sum")).reset_index()
    out["still_failing"] = out["first_pass_fails"] - out["recovered"]
    out["recovery_rate"] = out["recovered"] / out["first_pass_fails"]
    out["name"] = out["category"].map(lambda x: names.get(int(x), "")).astype(object)
    out = out.sort_values(["recovered", "first_pass_fails"], ascending=False, kind="stable")
    return out[cols].reset_index(drop=True)


def _stacked(parts: pd.DataFrame | None) -> pd.DataFrame:
    """The pooled :func:`yieldkit.maps.stack_map` of the final dies from per-position counts."""
    if parts is None or not len(parts):
        return pd.DataFrame({"die_x": pd.Series([], dtype="int32"), "die_y": pd.Series([], dtype="int32"),
                             "fail_rate": pd.Series([], dtype="float64")})
    t = parts.groupby(["die_y", "die_x"], sort=True)[["n", "fail"]].sum().reset_index()
    n = t["n"].to_numpy(np.int64)
    fail = t["fail"].to_numpy(np.int64)
    out = pd.DataFrame({"die_x": t["die_x"].to_numpy().astype(np.int32), "die_y": t["die_y"].to_numpy().astype(np.int32)})
    out["n_wafers"] = n
    lo, hi = clopper_pearson(fail, n)
    out["n_fail"] = fail
    with np.errstate(invalid="ignore", divide="ignore"):
        out["fail_rate"] = fail / n
    out["ci_lower"] = lo
    out["ci_upper"] = hi
    return out


def _flag_clusters(res: AnalysisResults, c: pd.DataFrame, fdr: float = 0.05) -> None:
    """The BH step of :func:`yieldkit.analysis._clustering` on the whole per-wafer table."""
    from ..significance import benjamini_hochberg

    c["q_bw"] = benjamini_hochberg(c["p_bw"].to_numpy())
    c["q_i"] = benjamini_hochberg(c["p_i"].to_numpy())
    flagged = (c["q_bw"] < fdr) | (c["q_i"] < fdr)
    cols = ["lot_id", "wafer_id", "n_dies", "n_fail", "bb", "e_bb", "bw", "e_bw", "p_bw", "q_bw",
            "morans_i", "p_i", "q_i", "log_odds", "p_runs"]
    res.clustering = c.loc[flagged, [k for k in cols if k in c.columns]].reset_index(drop=True)
    res.clustering_tested = len(c)


def _defect_sections(res: AnalysisResults, dies: Any, defects: Any, layout: Any, *, kernels: Any, top: int | None,
                     coverage: Sequence[float], conf_level: float, spc_rules: str, laney: bool,
                     inspected_wafers: pd.DataFrame | None, ordered: pd.DataFrame) -> None:
    """Defect Paretos, kill ratios, the u-chart, yield models and DPPM of a wafer-aligned pair.

    The same sections, notes and order as the in-memory engine, from the per-partition
    statistics of :mod:`yieldkit.distributed.defects`.
    """
    from .defects import defects_per_wafer_dask, kill_ratio_dask, pareto_dask

    n_defects = res.summary.get("defects")
    if defects is None or not n_defects:
        what = "no defect table given" if defects is None else "the defect table is empty"
        u = "" if defects is not None and inspected_wafers is not None else ", defect u-chart"
        kernels.note(res.notes, f"defect Paretos, kill ratios{u} and yield models: {what}")
    else:
        res.defect_pareto = pareto_dask(defects, top=top)
        if "die_x" in defects.columns:
            res.defect_pareto_kill = pareto_dask(defects, dies=dies, weight="kill", top=top, conf_level=conf_level)
            res.kill_ratios = kill_ratio_dask(dies, defects, conf_level=conf_level)
        else:
            kernels.note(res.notes, "kill ratios: the defect table has no die positions and no layout was given")
    if defects is not None and (n_defects or inspected_wafers is not None):
        area = kernels.real_area(layout)
        kernels.defect_u_chart(res, None, ordered, area, inspected_wafers, spc_rules, laney,
                               counted=defects_per_wafer_dask(defects))


def _defect_models(res: AnalysisResults, dies: Any, defects: Any, layout: Any, *, kernels: Any,
                   coverage: Sequence[float], conf_level: float) -> None:
    """Yield-model comparison and DPPM from the histogram of per-die defect counts (exact)."""
    from .defects import count_histogram_dask

    area = kernels.real_area(layout)
    if defects is None or not res.summary.get("defects") or area is None:
        kernels.note(res.notes, "yield-model comparison and DPPM: need a defect table and a layout with the die area")
        return
    hist = count_histogram_dask(dies, defects)
    kernels.fit_models(res, hist, int(hist.n_dies), area, coverage, conf_level)


# ---------------------------------------------------------------------------------------
# the engine
# ---------------------------------------------------------------------------------------
def analyze_dask(
    dies: Any,
    defects: Any = None,
    wafers: Any = None,
    layout: Any = None,
    bin_names: Mapping[int, str] | pd.DataFrame | None = None,
    *,
    top: int | None = 10,
    coverage: Sequence[float] = (0.9, 0.95, 0.99, 0.999),
    conf_level: float = 0.95,
    spc_rules: str = "both",
    laney: bool = True,
    inspected_wafers: pd.DataFrame | None = None,
    tests: Any = None,
    inspected_dies: pd.DataFrame | None = None,
    pat_rules: Sequence[str] = ("dpat", "gdbn", "cluster", "zpat"),
    max_maps: int | None = DEFAULT_MAX_MAPS,
    partition_rows: int = DEFAULT_PARTITION_ROWS,
    pattern_model: str = "wm811k",
    similar_gallery: Any = None,
    kernels: Any,
) -> AnalysisResults:
    """:func:`yieldkit.analyze` on Dask: the same :class:`~yieldkit.analysis.AnalysisResults`.

    Called by ``yieldkit.analyze(..., engine="dask")``, which passes ``kernels``: the in-memory
    engine's result class and section helpers (``results``, ``note``, ``placed``,
    ``order_wafers``, ``check_wafer_overlap``, ``commonality``, ``similar``, ``defects_only``,
    ``defect_density``, ...), so that both engines finish the sections with the same code.

    Parameters
    ----------
    dies, defects : path, glob, list of paths, dask DataFrame or DataFrame
        Die and defect tables (see :func:`yieldkit.distributed.open_table`). ``dies`` None
        analyses the defects alone, as in memory; ``defects`` then holds the defects of the
        ``max_maps`` wafers of highest density (those the report draws).
    wafers : DataFrame, path or dask DataFrame, optional
        Wafer table (one row per wafer: read into memory).
    max_maps : int, optional
        ``final_dies`` holds the final results of the ``max_maps`` wafers of lowest yield (the
        wafers :func:`yieldkit.report.build_report` draws with the same ``max_maps``); None:
        of every wafer (only when they fit in memory).
    partition_rows : int
        Target die rows per partition (see :func:`~yieldkit.distributed.open_table`).
    top, coverage, conf_level, spc_rules, laney, inspected_wafers, tests, inspected_dies, pat_rules, pattern_model
        As for :func:`yieldkit.analyze`.

    Returns
    -------
    AnalysisResults

    Notes
    -----
    Runs on the active scheduler: the current ``dask.distributed.Client`` when there is one,
    else Dask's default. Sections computed partition by partition: summary, wafer and lot
    yield, bin Paretos, retest recovery, p-chart, stacked map, zonal flags, clustering (per
    wafer, then Benjamini-Hochberg over all wafers), pattern classes, commonality. With
    ``tests`` (a path, e.g. the ``DATASET_tests/`` of ``yieldkit convert``, or a frame): process
    capability (:func:`yieldkit.parametric.capability`), lot shifts, test-bin association and
    the PAT screen (:mod:`yieldkit.distributed.parametric`); ``pat.result.table`` then holds
    the inked dies only.
    """
    import dask

    from ..errors import YieldkitValueError
    from ..pareto import _bin_names
    from ..spc import p_chart

    if dies is None:
        if defects is None:
            raise YieldkitValueError("The 'dies' argument of analyze may be None only with a defect table; "
                                     "got neither dies nor defects.")
        return _defects_only(defects, _small(wafers, "wafers"), layout, kernels=kernels, top=top, conf_level=conf_level,
                             spc_rules=spc_rules, laney=laney, inspected_dies=_small(inspected_dies, "dies"),
                             inspected_wafers=_small(inspected_wafers, "wafers"), max_maps=max_maps,
                             partition_rows=partition_rows)
    d = _open(dies, "dies", partition_rows)
    df = _open(defects, "defects", partition_rows)
    wafers = _small(wafers, "wafers")
    inspected_wafers = _small(inspected_wafers, "wafers")
    d, df, keys = _align(d, df, partition_rows=partition_rows)
    names = _bin_names(bin_names, "hbin") if bin_names is not None else None
    zone_layout = layout
    if layout is None:
        log.info("dask engine: inferring the wafer layout from the die positions")
        pos = dask.compute(*[dask.delayed(_positions)(p) for p in d[["die_x", "die_y"]].to_delayed()])
        allpos = pd.concat(pos, ignore_index=True).drop_duplicates() if pos else None
        if allpos is not None and len(allpos):
            from ..layout import WaferLayout

            zone_layout = WaferLayout.from_dies(allpos)
    sections = {"zonal": True, "clustering": True, "patterns": True, "similar": similar_gallery is not None}
    log.info("dask engine: per-partition statistics of %d partition(s)", d.npartitions)
    tasks = [dask.delayed(_partition_stats)(p, i, zone_layout, conf_level, sections, kernels.placed, pattern_model)
             for i, p in enumerate(d.to_delayed())]
    stats = list(dask.compute(*tasks))
    log.info("dask engine: reducing")
    notes: list[str] = []
    counts = _concat(stats, "counts")
    if counts is None:
        raise YieldkitValueError("analyze(engine='dask'): the die table is empty")
    wy = _wafer_yield(counts, conf_level)
    ly = lots_from_wafers(wy, conf_level=conf_level)
    tested = int(wy["tested"].sum())
    n_defects = None
    defect_keys = None
    if df is not None:
        defect_keys = wafer_partitions(df)
        n_defects = int(defect_keys["rows"].sum())
    summary = {
        "lots": int(len(ly)), "wafers": int(len(wy)), "dies": tested,
        "yield": float(wy["good"].sum() / tested) if tested else float("nan"),
        "first_pass_yield": float(wy["first_pass_good"].sum() / tested) if tested else float("nan"),
        "defects": n_defects,
    }
    ordered, time_col = kernels.order_wafers(wy, wafers)
    n_unplaced = sum(int(s.get("unplaced", 0)) for s in stats)
    n_rows = sum(int(s["n_rows"]) for s in stats)
    all_unplaced = n_unplaced == n_rows
    if n_unplaced and not all_unplaced:
        kernels.note(notes, f"stacked map, zonal flags, spatial clustering and pattern classes: {n_unplaced} test record(s) "
                     "without a wafer position are left out")
    res = kernels.results(
        summary=summary, final_dies=pd.DataFrame(), lot_yield=ly, wafer_yield=wy,
        bin_pareto=_bin_pareto(_concat(stats, "bins"), tested, names or {}, top),
        first_pass_bin_pareto=_bin_pareto(_concat(stats, "bins_first"), tested, names or {}, top),
        retest=_retest(_concat(stats, "retest"), names or {}),
        stacked=_stacked(None if all_unplaced else _concat(stats, "stacked")),
        p_chart=p_chart(ordered, rules=spc_rules, laney=laney),
        layout=layout, bin_names=names, notes=notes,
    )
    if time_col:
        log.info("control charts in %s order", time_col)
    if df is not None and defect_keys is not None and len(defect_keys):
        kernels.check_wafer_overlap(defect_keys[_KEY].drop_duplicates(), wy)
    if df is not None and n_defects and "die_x" not in df.columns and layout is not None:
        from ..schema import complete_positions

        df = df.map_partitions(complete_positions, layout, meta=complete_positions(df._meta, layout))
    if df is not None or inspected_wafers is not None:
        _defect_sections(res, d, df, layout, kernels=kernels, top=top, coverage=coverage, conf_level=conf_level, spc_rules=spc_rules,
                         laney=laney, inspected_wafers=inspected_wafers, ordered=ordered)
    else:
        kernels.note(res.notes, "defect Paretos, kill ratios, defect u-chart and yield models: no defect table given")
    if all_unplaced:
        kernels.note(res.notes, "stacked map, zonal flags, spatial clustering and pattern classes: no die has a wafer "
                         "position")
    else:
        z = _concat(stats, "zonal")
        if z is not None:
            res.zonal = _by_first(z)
            res.zonal_tested = sum(int(s.get("zonal_tested", 0)) for s in stats)
        c = _concat(stats, "clustering")
        if c is not None:
            _flag_clusters(res, _by_first(c))
        p = _concat(stats, "patterns")
        if p is not None:
            from ..classify.causes import pattern_summary

            res.patterns = _by_first(p)
            res.pattern_lots = pattern_summary(res.patterns, by="lot_id")
            if similar_gallery is not None:
                _similar(res, stats, similar_gallery, kernels.similar)
    _defect_models(res, d, df, layout, kernels=kernels, coverage=coverage, conf_level=conf_level)
    kernels.commonality(res, wy, wafers)
    if tests is not None:
        _parametric(res, d, tests, keys=_concat(stats, "wafers"), conf_level=conf_level, top=top, pat_rules=pat_rules,
                    partition_rows=partition_rows, note=kernels.note)
    res.final_dies = _final_dies(d, wy, stats, max_maps, res.notes, kernels.note)
    return res


def _similar(res: AnalysisResults, stats: list[dict[str, Any]], gallery: Any, similar: Any) -> None:
    """The similar-wafer search of the wafers with a signature, their grids gathered from the partitions."""
    found = [s["similar"] for s in stats if s.get("similar") is not None]
    keys = pd.concat([f[0] for f in found], ignore_index=True) if found else pd.DataFrame(
        {"lot_id": [], "wafer_id": [], "pattern": [], "_first": np.zeros(0, np.int64)})
    grids = [g for f in found for g in f[1]]
    order = np.argsort(keys["_first"].to_numpy(np.int64), kind="stable")
    ids = keys.iloc[order].reset_index(drop=True)
    similar(res, gallery, [grids[i] for i in order], ids[_KEY], ids["pattern"].to_numpy())


def _final_dies(d: Any, wy: pd.DataFrame, stats: list[dict[str, Any]], max_maps: int | None,
                notes: list[str], note: Any) -> pd.DataFrame:
    """Final results of the wafers the report's gallery shows (all of them when few)."""
    import dask

    shown = wy if max_maps is None or len(wy) <= max_maps else wy.nsmallest(max_maps, "yield")
    if len(shown) < len(wy):
        note(notes, f"final dies: the Dask engine keeps the final results of the {len(shown)} wafer(s) of lowest "
                     f"yield (of {len(wy)}) for the wafer maps")
    want = shown[_KEY].astype(str).drop_duplicates()
    parts = []
    for i, s in enumerate(stats):
        w = s["wafers"]
        if len(w) and len(w[_KEY].astype(str).merge(want, on=_KEY, how="inner")):
            parts.append(i)
    blocks = d.to_delayed()
    got = dask.compute(*[dask.delayed(_gallery_dies)(blocks[i], i, want) for i in parts])
    frames = [g for g in got if len(g)]
    if not frames:
        return d._meta.drop(columns=[ORDER_COL], errors="ignore")
    out = pd.concat(frames, ignore_index=True)
    out = out.sort_values(ORDER_COL, kind="stable").drop(columns=ORDER_COL).reset_index(drop=True)
    return out


def _parametric(res: AnalysisResults, dies: Any, tests: Any, *, keys: pd.DataFrame | None, conf_level: float,
                top: int | None, pat_rules: Sequence[str], partition_rows: int, note: Any) -> None:
    """The parametric section and the PAT screen (:mod:`yieldkit.distributed.parametric`)."""
    from .parametric import open_tests, parametric_sections

    t = open_tests(tests, partition_rows=partition_rows)
    found: list[str] = []
    section, pat, _ = parametric_sections(dies, t, keys=keys, conf_level=conf_level, top=top, pat_rules=pat_rules,
                                          partition_rows=partition_rows, notes=found)
    if section is None:
        note(res.notes, "parametric tests: the test table holds no numeric result")
    for text in found:
        note(res.notes, text)
    res.parametric = section
    res.pat = pat


# ---------------------------------------------------------------------------------------
# defects without dies
# ---------------------------------------------------------------------------------------
def _defect_part(df: pd.DataFrame, number: int, layout: Any, zones: bool) -> dict[str, Any]:
    """Per partition of a defect table: defects per wafer, per die position, per ring zone."""
    import warnings

    from .dataset import _wafer_rows

    out: dict[str, Any] = {"wafers": _wafer_rows(df, {"number": number})}
    if not len(df):
        return out
    if "die_x" in df.columns and "die_y" in df.columns:
        ok = (df["die_x"].notna() & df["die_y"].notna()).to_numpy(bool)
        t = pd.DataFrame({"lot_id": df["lot_id"].astype(str).to_numpy()[ok],
                          "wafer_id": df["wafer_id"].astype(str).to_numpy()[ok],
                          "die_x": df["die_x"].to_numpy(np.float64, na_value=np.nan)[ok].astype(np.int64),
                          "die_y": df["die_y"].to_numpy(np.float64, na_value=np.nan)[ok].astype(np.int64)})
        out["dies"] = t.groupby(["lot_id", "wafer_id", "die_x", "die_y"], sort=False).size().rename("n").reset_index()
    if zones:
        from ..maps import zonal_density

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out["zones"] = zonal_density(df, layout, level="pooled")["n_defects"].to_numpy(np.int64)
    return out


class _DaskDefects:
    """A Dask defect table as :func:`yieldkit.analysis._defects_only_sections` reads it: the counts
    from one pass over the partitions, the Pareto from :func:`~yieldkit.distributed.pareto_dask`,
    and for the maps the defects of the wafers the report draws."""

    def __init__(self, df: Any, layout: Any, parts: list[dict[str, Any]], max_maps: int | None,
                 notes: list[str], kernels: Any) -> None:
        self.df, self.layout, self.parts, self.max_maps = df, layout, parts, max_maps
        self._notes, self._note, self._density = notes, kernels.note, kernels.defect_density
        self.columns = df.columns
        w = pd.concat([p["wafers"] for p in parts], ignore_index=True)
        w = w.astype({"lot_id": str, "wafer_id": str})
        self.n = int(w["rows"].sum())
        self.wafer_rows = w
        per = w.groupby(_KEY, sort=False).agg(n_defects=("rows", "sum"), first=("first", "min")).reset_index()
        self.counted = per.sort_values("first", kind="stable").reset_index(drop=True)
        self.keys = self.counted[_KEY]

    def density(self, layout: Any, *, inspected_dies: pd.DataFrame | None, wafers: pd.DataFrame | None,
                conf_level: float) -> pd.DataFrame:
        return self._density(self.keys, layout, inspected_dies=inspected_dies, wafers=wafers, conf_level=conf_level,
                              counted=self.counted)

    def pareto(self, top: int | None) -> pd.DataFrame:
        from .defects import pareto_dask

        return pareto_dask(self.df, top=top)

    def die_counts(self, insp: pd.DataFrame) -> tuple[pd.DataFrame, int]:
        from ..maps import die_defect_counts

        zero = die_defect_counts(insp, self.df._meta).table
        got = [p["dies"] for p in self.parts if p.get("dies") is not None and len(p["dies"])]
        if not got:
            return zero, self.n
        per = pd.concat(got, ignore_index=True).groupby(["lot_id", "wafer_id", "die_x", "die_y"], sort=False)["n"]
        per = per.sum().reset_index()
        keys = pd.DataFrame({"lot_id": zero["lot_id"].astype(str).to_numpy(),
                             "wafer_id": zero["wafer_id"].astype(str).to_numpy(),
                             "die_x": zero["die_x"].to_numpy(np.int64), "die_y": zero["die_y"].to_numpy(np.int64)})
        n = keys.merge(per, on=["lot_id", "wafer_id", "die_x", "die_y"], how="left")["n"]
        counts = n.fillna(0).to_numpy(np.int64)
        table = zero.assign(n_defects=counts)
        return table, self.n - int(counts.sum())

    def zonal_density(self, layout: Any, *, conf_level: float, wafers: pd.DataFrame | None) -> pd.DataFrame:
        from ..intervals import garwood
        from ..maps import zonal_density

        out = zonal_density(self.df._meta, layout, level="pooled", conf_level=conf_level, wafers=wafers)
        k = np.zeros(len(out), np.int64)
        for p in self.parts:
            if p.get("zones") is not None:
                k += p["zones"]
        area = out["area_cm2"].to_numpy(np.float64)
        out["n_defects"] = k
        with np.errstate(invalid="ignore", divide="ignore"):
            out["density"] = k / area
        lo, hi = garwood(k, area, conf_level)
        out["ci_lower"] = lo
        out["ci_upper"] = hi
        return out

    def for_maps(self, density: pd.DataFrame) -> pd.DataFrame:
        """The defects of the wafers the report's defect maps show (the highest density first)."""
        import dask

        rank = density.assign(_k=density["density_per_cm2"].fillna(density["n_defects"].astype("float64")))
        shown = rank if self.max_maps is None or len(rank) <= self.max_maps else rank.nlargest(self.max_maps, "_k")
        if len(shown) < len(rank):
            self._note(self._notes, f"defects: the Dask engine keeps the defects of the {len(shown)} wafer(s) of "
                                    f"highest density (of {len(rank)}) for the defect maps")
        want = shown[_KEY].astype(str).drop_duplicates()
        hit = self.wafer_rows.merge(want, on=_KEY, how="inner")["part"].unique().tolist()
        blocks = self.df.to_delayed()
        got = dask.compute(*[dask.delayed(_gallery_defects)(blocks[i], i, want) for i in sorted(hit)])
        frames = [g for g in got if len(g)]
        if not frames:
            return self.df._meta
        out = pd.concat(frames, ignore_index=True).sort_values(ORDER_COL, kind="stable")
        return out.drop(columns=ORDER_COL).reset_index(drop=True)


def _gallery_defects(df: pd.DataFrame, number: int, shown: pd.DataFrame) -> pd.DataFrame:
    if ORDER_COL not in df.columns:
        df = df.assign(**{ORDER_COL: _row_order(df, {"number": number})})
    if not len(df):
        return df
    codes, w = wafer_codes(df)
    keep_w = w[_KEY].astype(str).merge(shown.assign(_s=True), on=_KEY, how="left")["_s"].notna().to_numpy()
    return df[keep_w[codes]].reset_index(drop=True)


def _defects_only(defects: Any, wafers: pd.DataFrame | None, layout: Any, *, kernels: Any, top: int | None,
                  conf_level: float, spc_rules: str, laney: bool, inspected_dies: pd.DataFrame | None,
                  inspected_wafers: pd.DataFrame | None, max_maps: int | None, partition_rows: int) -> AnalysisResults:
    """``analyze(dies=None, defects=..., engine="dask")``: the defects-only sections of the in-memory
    engine (:func:`yieldkit.analysis._defects_only_sections`) from one pass over the partitions."""
    import dask

    df = _open(defects, "defects", partition_rows)
    if layout is not None:  # whichever position form is missing, from the other
        from ..schema import complete_positions

        df = df.map_partitions(complete_positions, layout, meta=complete_positions(df._meta, layout))
    area = kernels.real_area(layout)
    zones = area is not None and "x_um" in df.columns
    log.info("dask engine: defects only, %d partition(s)", df.npartitions)
    parts = list(dask.compute(*[dask.delayed(_defect_part)(p, i, layout, zones) for i, p in enumerate(df.to_delayed())]))
    notes: list[str] = []
    source = _DaskDefects(df, layout, parts, max_maps, notes, kernels)
    res = kernels.defects_only(source, wafers, layout, top=top, conf_level=conf_level, spc_rules=spc_rules,
                               laney=laney, inspected_dies=inspected_dies, inspected_wafers=inspected_wafers)
    res.notes.extend(n for n in notes if n not in res.notes)
    return res
