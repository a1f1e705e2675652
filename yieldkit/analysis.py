"""One call that computes every result of a yield report.

:func:`analyze` runs the analyses on a die table (and, when given, defect and wafer tables
and a layout) and gathers their tables in an :class:`AnalysisResults`; the report
(:func:`yieldkit.report.build_report`) only renders it. Optional sections come from other
yieldkit modules (zones, yield models, pattern classes, commonality, outgoing quality): a
section is left out, with a note saying why, only when its module is not installed or the
inputs lack what it needs; any other error propagates.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ._keys import wafer_codes
from .classify.causes import pattern_summary
from .classify.grid import dies_to_grids
from .classify.pretrained import load_pretrained
from .commonality import commonality
from .killratio import KillRatioResult, kill_ratio
from .maps import die_defect_counts, stack_map, zonal_yield
from .models import compare_models
from .pareto import bin_pareto, pareto, retest_recovery
from .quality import defect_level
from .significance import benjamini_hochberg
from .spatial import clustering_stats
from .spc import ControlChart, p_chart, u_chart
from .yields import final_results, lots_from_wafers, wafer_yield

log = logging.getLogger(__name__)

__all__ = ["AnalysisResults", "analyze", "defect_density", "inspected_die_table"]

_MIN_COMMONALITY_WAFERS = 3  # fewest wafers yieldkit.commonality ranks factors on


@dataclass
class AnalysisResults:
    """Every table of a yield report.

    Attributes
    ----------
    summary : dict
        ``lots``, ``wafers``, ``dies``, ``yield``, ``first_pass_yield``, ``defects``.
    final_dies : DataFrame
        Final test result of every die (for maps).
    lot_yield, wafer_yield : DataFrame
        From :func:`yieldkit.lot_yield` and :func:`yieldkit.wafer_yield`.
    bin_pareto, first_pass_bin_pareto, retest : DataFrame
        Failing bins (final and first pass) and the bins retest recovered.
    stacked : DataFrame
        Per die position: ``die_x``, ``die_y``, ``fail_rate`` (pooled over wafers; from
        :func:`yieldkit.maps.stack_map` when available).
    defect_pareto, defect_pareto_kill : DataFrame or None
        Defect Paretos by count and kill-weighted impact.
    kill_ratios : KillRatioResult or None
        The kill ratios per class (:func:`yieldkit.kill_ratio`).
    p_chart, u_chart : ControlChart or None
        Wafer yield (None without dies) and defects per wafer (per cm^2 with a layout).
    u_chart_note : str or None
        Which wafers the u-chart counts as inspected, when that was assumed rather than given.
    zonal, clustering, models, dppm, patterns, commonality : DataFrame or None
        Optional sections (see :func:`analyze`); ``zonal`` and ``clustering`` hold the flagged
        zones and wafers only.
    zonal_tested, clustering_tested : int or None
        How many wafer zones, and how many wafers, were tested for those flags.
    notes : list of str
        Why optional sections were left out.
    layout, bin_names
        Passed through for plotting.
    parametric : ParametricSection or None
        Worst tests by Cpk, shifted lots and the tests behind the top failing bins (with
        ``tests``; :func:`yieldkit.parametric.parametric_section`).
    defects : DataFrame or None
        Without dies: the defect table (positions completed from the layout), for the defect maps.
    defect_density : DataFrame or None
        Without dies: defects, inspected dies, area and density per wafer (:func:`defect_density`).
    zonal_density : DataFrame or None
        Without dies: defect density of each ring zone over all wafers
        (:func:`yieldkit.maps.zonal_density`).
    pat : Screen or None
        Outlier screening (:func:`yieldkit.pat.screen`) when ``analyze`` got the test table.
    similar : DataFrame or None
        With a similar-wafer gallery: the closest past wafers of every wafer with a failure
        signature, with their metadata (known cause, ...) (:meth:`yieldkit.classify.SimilarWafers.query`).
    """

    summary: dict[str, Any]
    final_dies: pd.DataFrame
    lot_yield: pd.DataFrame
    wafer_yield: pd.DataFrame
    bin_pareto: pd.DataFrame
    first_pass_bin_pareto: pd.DataFrame
    retest: pd.DataFrame
    stacked: pd.DataFrame
    p_chart: ControlChart | None
    defect_pareto: pd.DataFrame | None = None
    defect_pareto_kill: pd.DataFrame | None = None
    kill_ratios: KillRatioResult | None = None
    u_chart: ControlChart | None = None
    zonal: pd.DataFrame | None = None
    clustering: pd.DataFrame | None = None
    models: pd.DataFrame | None = None
    dppm: pd.DataFrame | None = None
    patterns: pd.DataFrame | None = None
    pattern_lots: pd.DataFrame | None = None
    commonality: pd.DataFrame | None = None
    u_chart_note: str | None = None
    zonal_tested: int | None = None
    clustering_tested: int | None = None
    notes: list[str] = field(default_factory=list)
    layout: Any = None
    bin_names: dict[int, str] | None = None
    parametric: Any = None
    defects: pd.DataFrame | None = None
    defect_density: pd.DataFrame | None = None
    zonal_density: pd.DataFrame | None = None
    pat: Any = None
    similar: pd.DataFrame | None = None

    def __repr__(self) -> str:
        s = self.summary
        present = [k for k in ("defect_pareto", "kill_ratios", "u_chart", "zonal", "clustering", "models", "dppm", "patterns",
                               "commonality") if getattr(self, k) is not None]
        if self.p_chart is None:
            return (f"AnalysisResults({s['lots']} lots, {s['wafers']} wafers, defects only, {s['defects']} defects, "
                    f"sections={present}, notes={len(self.notes)})")
        return (f"AnalysisResults({s['lots']} lots, {s['wafers']} wafers, yield={s['yield']:.4f}, "
                f"sections={present}, notes={len(self.notes)})")


def _note(results_notes: list[str], text: str) -> None:
    log.info("report section left out: %s", text)
    results_notes.append(text)


def _stacked_map(dies: pd.DataFrame | None, final: pd.DataFrame | None, notes: list[str]) -> pd.DataFrame:
    """Pooled stacked map from :func:`yieldkit.maps.stack_map`.

    ``dies`` and ``final`` are the dies with a wafer position; None (no die has one) gives an
    empty map.
    """
    if dies is None or final is None:
        return pd.DataFrame({"die_x": pd.Series([], dtype="int32"), "die_y": pd.Series([], dtype="int32"),
                             "fail_rate": pd.Series([], dtype="float64")})
    return stack_map(final, level="pooled")  # stack_map keeps the final results


def _order_wafers(wy: pd.DataFrame, wafers: pd.DataFrame | None) -> tuple[pd.DataFrame, str | None]:
    """Wafer yield in time order when the wafer table has a time column, else in lot/wafer order."""
    if wafers is not None:
        for col in ("test_time", "inspection_time", "start_time", "finish_time"):
            if col in wafers.columns:
                m = wy.merge(wafers[["lot_id", "wafer_id", col]], on=["lot_id", "wafer_id"], how="left")
                return m.sort_values([col, "lot_id", "wafer_id"], kind="stable").reset_index(drop=True), col
    return wy.sort_values(["lot_id", "wafer_id"], kind="stable").reset_index(drop=True), None


_NOT_INSPECTED_NOTE = ("wafers without any defect record are treated as not inspected (pass inspected_wafers "
                       "to chart inspected wafers that had no defect)")


def _defects_per_wafer(defects: pd.DataFrame | None, wy: pd.DataFrame, area: float | None,
                       inspected: pd.DataFrame | None = None, counted: pd.DataFrame | None = None) -> pd.DataFrame:
    """Defects per tested wafer, over the inspected wafers in ``wy`` order.

    The inspected wafers are those with a defect record, and those in ``inspected`` (with
    zero defects when they have no record); wafers that were not tested have no exposure and
    are left out. ``counted`` (``lot_id``, ``wafer_id``, ``n_defects``) replaces the count of
    ``defects`` when the defects were counted elsewhere (the Dask engine).
    """
    key = ["lot_id", "wafer_id"]
    t = wy[key + ["tested"]].reset_index(drop=True)
    keys = t[key].astype(str)
    if counted is not None:
        counted = counted[key + ["n_defects"]].astype({"lot_id": str, "wafer_id": str})
    elif defects is not None and len(defects):
        codes, w = wafer_codes(defects)
        counted = w[key].astype(str).assign(n_defects=np.bincount(codes, minlength=len(w)))
    else:
        counted = pd.DataFrame({"lot_id": [], "wafer_id": [], "n_defects": []}, dtype=object)
    n = keys.merge(counted, on=key, how="left")["n_defects"]
    keep = n.notna().to_numpy()
    if inspected is not None:
        listed = inspected[key].astype(str).drop_duplicates().assign(_inspected=True)
        keep = keep | keys.merge(listed, on=key, how="left")["_inspected"].notna().to_numpy()
    t["n_defects"] = n.fillna(0).to_numpy(np.int64)
    t = t[keep].reset_index(drop=True)
    if area:
        t["area_cm2"] = t["tested"] * area
    return t


def _real_area(layout: Any) -> float | None:
    if layout is None or getattr(layout, "inferred", False):
        return None
    return float(layout.die_area_cm2)


def analyze(
    dies: pd.DataFrame | None,
    defects: pd.DataFrame | None = None,
    wafers: pd.DataFrame | None = None,
    layout: Any = None,
    bin_names: Mapping[int, str] | pd.DataFrame | None = None,
    *,
    top: int | None = 10,
    coverage: Sequence[float] = (0.9, 0.95, 0.99, 0.999),
    conf_level: float = 0.95,
    spc_rules: str = "both",
    laney: bool = True,
    inspected_wafers: pd.DataFrame | None = None,
    tests: pd.DataFrame | None = None,
    inspected_dies: pd.DataFrame | None = None,
    pat_rules: Sequence[str] = ("dpat", "gdbn", "cluster", "zpat"),
    pattern_model: str = "wm811k",
    similar_gallery: Any = None,
    engine: str = "memory",
    dask_options: Mapping[str, Any] | None = None,
) -> AnalysisResults:
    """Compute every result of the yield report.

    Parameters
    ----------
    dies : DataFrame or None
        Canonical die table (retests allowed). None analyses ``defects`` alone (an inspection
        file on its own): defect Pareto, defects and density per wafer, a u-chart, the stacked
        defect map, spatial clustering of dies with defects and zonal densities over the
        inspected dies; the yield sections are left out with a note.
    defects : DataFrame, optional
        Canonical defect table; enables the defect Paretos, kill ratios, the u-chart and the
        yield-model comparison.
    wafers : DataFrame, optional
        Wafer table; its time column orders the control charts and its ``tool_*`` columns feed
        commonality analysis.
    layout : WaferLayout, optional
        Die grid; its die area [cm^2] enables defect densities and yield models.
    bin_names : mapping or DataFrame, optional
        Hard bin -> name (or the ``bins`` table of :func:`yieldkit.read_stdf`).
    top : int, optional
        Categories kept in each Pareto before ``"Other"``.
    coverage : sequence of float
        Fault coverages [1] at which outgoing DPPM is predicted.
    conf_level : float
        Confidence level of all intervals.
    spc_rules : {"both", "western_electric", "nelson", "none"}
        Run rules of the control charts.
    laney : bool
        Laney's p'- and u'-charts (limits widened by the between-wafer variation factor
        sigma_z), the default: wafer yields and defect densities vary more than binomially or
        Poisson (clustering, lot effects), and the classic charts then flag almost every wafer.
    inspected_wafers : DataFrame, optional
        ``lot_id``, ``wafer_id`` of every wafer that went through defect inspection (e.g. the
        ``wafers`` table of :func:`yieldkit.read_klarf`). The u-chart covers these wafers and
        those in the defect table, a listed wafer without a defect record counting zero
        defects. Without it a wafer with no defect record is treated as not inspected and left
        off the u-chart (the report says so).
    tests : DataFrame, optional
        The long table of parametric results of the same parts (:func:`yieldkit.read_stdf`
        with ``tests=True``): enables the parametric section and the outlier screen ``pat``
        (:func:`yieldkit.pat.screen` with ``pat_rules``).
    pat_rules : sequence of str
        Rules of that screen (:data:`yieldkit.pat.RULES`).
    pattern_model : {"wm811k", "mixedwm38"}
        Shipped pattern classifier (:func:`yieldkit.classify.load_pretrained`): one pattern per
        wafer (WM-811K), or every signature a wafer carries (MixedWM38, multi-label).
    similar_gallery : SimilarWafers or path, optional
        A gallery of past wafers (:class:`yieldkit.classify.SimilarWafers` or its Parquet file):
        every wafer with a failure signature gets its 5 closest past wafers (identical maps
        excluded) and their known causes in ``similar``.
    inspected_dies : DataFrame, optional
        Without dies: the sample test plan (``lot_id``, ``wafer_id``, ``die_x``, ``die_y``,
        e.g. the ``inspected_dies`` of :func:`yieldkit.read_klarf`); wafers without one count
        every die of the layout as inspected.
    engine : {"memory", "dask"}
        ``"dask"``: :func:`yieldkit.distributed.analysis.analyze_dask` on the active Dask scheduler;
        ``dies`` and ``defects`` may then be Parquet dataset paths, globs or Dask DataFrames,
        and ``final_dies`` holds the final results of the wafers the report draws.
    dask_options : mapping, optional
        With ``engine="dask"``: ``max_maps`` (wafers kept in ``final_dies``, default 200) and
        ``partition_rows`` (see :func:`yieldkit.distributed.analysis.analyze_dask`).

    Returns
    -------
    AnalysisResults

    Notes
    -----
    Optional sections and what they need: zonal flags (:mod:`yieldkit.maps`), yield-model
    comparison and DPPM (:mod:`yieldkit.models`, :mod:`yieldkit.maps`,
    :mod:`yieldkit.quality`; defects and a layout with a die area), pattern classes
    (:mod:`yieldkit.classify`), commonality (:mod:`yieldkit.classify`; a wafer table with
    process history).

    Examples
    --------
    >>> import yieldkit as yk
    >>> fab = yk.simulate_fab(n_lots=1, wafers_per_lot=3, random_state=2)
    >>> res = yk.analyze(fab.dies, fab.defects, fab.wafers, fab.layout, fab.bin_names)
    >>> res.summary["wafers"], res.kill_ratios is not None
    (3, True)
    """
    from .errors import check_choice
    from .pareto import _bin_names

    if check_choice(engine, ("memory", "dask"), name="engine", where="analyze") == "dask":
        from .distributed.analysis import analyze_dask

        return analyze_dask(dies, defects, wafers, layout, bin_names, top=top, coverage=coverage,
                            conf_level=conf_level, spc_rules=spc_rules, laney=laney,
                            inspected_wafers=inspected_wafers, tests=tests, inspected_dies=inspected_dies,
                            pat_rules=pat_rules, pattern_model=pattern_model, similar_gallery=similar_gallery,
                            kernels=_dask_kernels(),
                            **dict(dask_options or {}))
    if dies is None:
        if defects is None:
            from .errors import YieldkitValueError

            raise YieldkitValueError("The 'dies' argument of analyze may be None only with a defect table; "
                                     "got neither dies nor defects.")
        return _defects_only(defects, wafers, layout, top=top, conf_level=conf_level, spc_rules=spc_rules,
                             laney=laney, inspected_dies=inspected_dies, inspected_wafers=inspected_wafers)
    names = _bin_names(bin_names, "hbin") if bin_names is not None else None
    final = final_results(dies)
    wy = wafer_yield(dies, conf_level=conf_level)
    ly = lots_from_wafers(wy, conf_level=conf_level)
    tested = int(wy["tested"].sum())
    summary = {
        "lots": int(len(ly)), "wafers": int(len(wy)), "dies": tested,
        "yield": float(wy["good"].sum() / tested) if tested else float("nan"),
        "first_pass_yield": float(wy["first_pass_good"].sum() / tested) if tested else float("nan"),
        "defects": None if defects is None else int(len(defects)),
    }
    ordered, time_col = _order_wafers(wy, wafers)
    notes: list[str] = []
    placed = _placed(dies, notes)
    placed_final = final if placed is dies else (None if placed is None else final_results(placed))
    # the sections below use the final results only: give them once, without the test_seq that
    # would make each section pick them again (a copy of the die table each time)
    settled, placed_settled = _settled(final), None if placed_final is None else _settled(placed_final)
    res = AnalysisResults(
        summary=summary, final_dies=final, lot_yield=ly, wafer_yield=wy,
        bin_pareto=bin_pareto(dies, bin_names=bin_names, top=top),
        first_pass_bin_pareto=bin_pareto(dies, bin_names=bin_names, top=top, first_pass=True),
        retest=retest_recovery(dies, bin_names=bin_names),
        stacked=_stacked_map(placed, placed_settled, notes),
        p_chart=p_chart(ordered, rules=spc_rules, laney=laney),
        layout=layout, bin_names=names, notes=notes,
    )
    if time_col:
        log.info("control charts in %s order", time_col)
    area = _real_area(layout)
    if defects is None or len(defects) == 0:
        what = "no defect table given" if defects is None else "the defect table is empty"
        u = "" if defects is not None and inspected_wafers is not None else ", defect u-chart"
        _note(res.notes, f"defect Paretos, kill ratios{u} and yield models: {what}")
    else:
        _check_wafer_overlap(defects, wy)
        if "die_x" not in defects.columns and layout is not None:
            from .schema import complete_positions

            defects = complete_positions(defects, layout)
        res.defect_pareto = pareto(defects, top=top)
        if "die_x" in defects.columns:
            res.defect_pareto_kill = pareto(defects, dies=settled, weight="kill", top=top, conf_level=conf_level)
            res.kill_ratios = kill_ratio(settled, defects, conf_level=conf_level)
        else:
            _note(res.notes, "kill ratios: the defect table has no die positions and no layout was given")
    if defects is not None and (len(defects) or inspected_wafers is not None):
        _defect_u_chart(res, defects, ordered, area, inspected_wafers, spc_rules, laney)
    if placed_settled is None:
        _note(res.notes, "stacked map, zonal flags, spatial clustering and pattern classes: no die has a wafer "
                         "position")
    else:
        _zonal(res, placed_settled, layout, conf_level)
        _clustering(res, placed_settled)
    _models(res, settled, defects, layout, coverage, conf_level)
    if placed_settled is not None:
        _patterns(res, placed_settled, pattern_model, similar_gallery)
    _commonality(res, wy, wafers)
    if tests is not None:
        _parametric(res, dies, tests, conf_level, top)
        from .pat import screen

        res.pat = screen(dies, tests, rules=pat_rules)
    return res


def _dask_kernels() -> Any:
    """The result class and section helpers the Dask engine finishes its sections with."""
    from types import SimpleNamespace

    return SimpleNamespace(results=AnalysisResults, note=_note, placed=_placed, order_wafers=_order_wafers,
                           check_wafer_overlap=_check_wafer_overlap, commonality=_commonality,
                           defect_u_chart=_defect_u_chart, fit_models=_fit_models, real_area=_real_area,
                           similar=_similar, defects_only=_defects_only_sections, defect_density=defect_density)


def _check_wafer_overlap(defects: pd.DataFrame, wy: pd.DataFrame) -> None:
    """Warn when fewer than half of the defect table's wafers are in the die table."""
    import warnings

    from .errors import DataQualityWarning

    keys = ["lot_id", "wafer_id"]
    if not set(keys) <= set(defects.columns):
        return
    seen = defects[keys].drop_duplicates().astype(str)
    n = len(seen)
    matched = int(len(seen.merge(wy[keys].drop_duplicates().astype(str), on=keys, how="inner")))
    if n and 2 * matched < n:
        example = ", ".join(f"{a}/{b}" for a, b in seen.head(3).itertuples(index=False))
        warnings.warn(
            f"only {matched} of the {n} wafer(s) in the defect table are in the die table (defect wafers "
            f"{example}{', ...' if n > 3 else ''}): the dies and defects seem to come from different wafers "
            "(check lot and wafer identifiers)",
            DataQualityWarning,
            stacklevel=3,
        )


def _defect_u_chart(res: AnalysisResults, defects: pd.DataFrame | None, ordered: pd.DataFrame, area: float | None,
                    inspected: pd.DataFrame | None, spc_rules: str, laney: bool = True,
                    counted: pd.DataFrame | None = None) -> None:
    if inspected is not None:
        from .errors import SchemaError

        if not isinstance(inspected, pd.DataFrame) or not {"lot_id", "wafer_id"} <= set(inspected.columns):
            raise SchemaError("The 'inspected_wafers' argument of analyze must be a DataFrame with lot_id and "
                              f"wafer_id columns. Got {type(inspected).__name__} instead.")
    per_wafer = _defects_per_wafer(defects, ordered, area, inspected, counted)
    if len(per_wafer) == 0:
        _note(res.notes, "defect u-chart: no inspected wafer is in the die table")
        return
    res.u_chart = u_chart(per_wafer, exposure_col="area_cm2" if area else None, rules=spc_rules, laney=laney)
    res.u_chart_note = _NOT_INSPECTED_NOTE if inspected is None else None


def _settled(final: pd.DataFrame) -> pd.DataFrame:
    """Final results without ``test_seq`` (one row per die: nothing left to pick; no copy of the data)."""
    return final.drop(columns="test_seq") if "test_seq" in final.columns else final


def _placed(dies: pd.DataFrame, notes: list[str]) -> pd.DataFrame | None:
    """The dies with a wafer position (final-test parts may have none), or None when no die has one."""
    missing = (dies["die_x"].isna() | dies["die_y"].isna()).to_numpy(bool)
    if not missing.any():
        return dies
    if missing.all():
        return None
    n_units = int(missing.sum())
    _note(notes, f"stacked map, zonal flags, spatial clustering and pattern classes: {n_units} test record(s) "
                 "without a wafer position are left out")
    return dies.loc[~missing].reset_index(drop=True)


def _zonal(res: AnalysisResults, dies: pd.DataFrame, layout: Any, conf_level: float) -> None:
    z = zonal_yield(dies, layout, conf_level=conf_level)
    res.zonal = z[z["flagged"]].reset_index(drop=True)
    res.zonal_tested = len(z)


def _clustering(res: AnalysisResults, dies: pd.DataFrame, fdr: float = 0.05) -> None:
    """Wafers whose fails cluster: join-count and Moran's I permutation p-values, BH across wafers.

    The permutations stop early by Besag & Clifford's sequential rule: a p-value up to
    h/(1+R) (0.05 at the defaults) is that of the full test, so the flagged wafers and their
    q-values are too; larger p-values are valid but coarser (h/l after l permutations)."""
    c = clustering_stats(dies, sequential=True)
    c["q_bw"] = benjamini_hochberg(c["p_bw"].to_numpy())
    c["q_i"] = benjamini_hochberg(c["p_i"].to_numpy())
    flagged = (c["q_bw"] < fdr) | (c["q_i"] < fdr)
    cols = ["lot_id", "wafer_id", "n_dies", "n_fail", "bb", "e_bb", "bw", "e_bw", "p_bw", "q_bw",
            "morans_i", "p_i", "q_i", "log_odds", "p_runs"]
    res.clustering = c.loc[flagged, [k for k in cols if k in c.columns]].reset_index(drop=True)
    res.clustering_tested = len(c)


#: fewer dies than this carry too little information for a yield-model comparison to mean anything
MIN_DIES_FOR_MODELS = 30


def _models(res: AnalysisResults, dies: pd.DataFrame, defects: pd.DataFrame | None, layout: Any,
            coverage: Sequence[float], conf_level: float) -> None:
    area = _real_area(layout)
    if defects is None or len(defects) == 0 or area is None:
        _note(res.notes, "yield-model comparison and DPPM: need a defect table and a layout with the die area")
        return
    counts = die_defect_counts(dies, defects).table
    _fit_models(res, counts, len(counts), area, coverage, conf_level)


def _fit_models(res: AnalysisResults, counts: Any, n_dies: int, area: float, coverage: Sequence[float],
                conf_level: float) -> None:
    """Model comparison and DPPM from per-die counts (or their histogram) of ``n_dies`` dies."""
    if n_dies < MIN_DIES_FOR_MODELS:
        _note(res.notes, f"yield-model comparison and DPPM: {n_dies} die(s) with defect counts; "
                         f"fitting needs at least {MIN_DIES_FOR_MODELS}")
        return
    comparison = compare_models(counts, area=area, conf_level=conf_level)
    table, fitted = comparison.table, comparison.models
    res.models = table
    ok = table[table["error"].fillna("").astype(str) == ""] if "error" in table.columns else table
    if len(ok) == 0:
        _note(res.notes, "outgoing DPPM: no yield model could be fitted")
        return
    best = str(ok["model"].iloc[0])
    dl = defect_level(fitted[best], np.asarray(coverage, dtype=float), conf_level=conf_level)
    dl.insert(0, "model", best)
    res.dppm = dl


def _patterns(res: AnalysisResults, final: pd.DataFrame, pattern_model: str, similar_gallery: Any) -> None:
    clf = load_pretrained(pattern_model)
    ids, grids = dies_to_grids(final)
    res.patterns = clf.predict_table(grids, wafers=ids[["lot_id", "wafer_id"]], causes=True)
    res.pattern_lots = pattern_summary(res.patterns, by="lot_id")
    if similar_gallery is not None:
        sig = np.flatnonzero(res.patterns["pattern"].astype(str).to_numpy() != "none")
        _similar(res, similar_gallery, [grids[i] for i in sig], ids[["lot_id", "wafer_id"]].iloc[sig],
                 res.patterns["pattern"].to_numpy()[sig])


def _similar(res: AnalysisResults, gallery: Any, grids: list[np.ndarray], ids: pd.DataFrame,
             patterns: np.ndarray) -> None:
    """The closest past wafers of the wafers with a failure signature (their grids, keys and patterns)."""
    from .classify.similar import SimilarWafers

    sw = gallery if isinstance(gallery, SimilarWafers) else SimilarWafers.load(gallery)
    found = sw.query(grids, k=5, exclude_duplicates=True, metadata=ids.reset_index(drop=True)).table
    found.insert(2, "pattern", np.asarray(patterns)[found["query"].to_numpy()])
    res.similar = found.drop(columns="query").rename(columns={"lot_id": "past_lot_id", "wafer_id": "past_wafer_id"})
    res.similar = res.similar.rename(columns={"query_lot_id": "lot_id", "query_wafer_id": "wafer_id"})


def _commonality(res: AnalysisResults, wy: pd.DataFrame, wafers: pd.DataFrame | None) -> None:
    if wafers is None or not any(str(c).startswith(("tool_", "chamber_")) for c in wafers.columns):
        _note(res.notes, "commonality: needs a wafer table with tool_/chamber_ process history")
        return
    key = ["lot_id", "wafer_id"]
    if not set(key) <= set(wafers.columns):
        _note(res.notes, "commonality: the wafer table has no lot_id/wafer_id columns")
        return
    tested = wy.loc[np.isfinite(wy["yield"].to_numpy(np.float64)), key].astype(str).drop_duplicates()
    n = len(tested.merge(wafers[key].astype(str).drop_duplicates(), on=key, how="inner"))
    if n < _MIN_COMMONALITY_WAFERS:
        _note(res.notes, f"commonality: {n} wafer(s) are in both the die and the wafer table; "
                         f"needs at least {_MIN_COMMONALITY_WAFERS}")
        return
    res.commonality = commonality(wy, wafers).table


def _parametric(res: AnalysisResults, dies: pd.DataFrame, tests: pd.DataFrame, conf_level: float,
                top: int | None) -> None:
    from .parametric import parametric_section

    if "value" not in tests.columns or not np.isfinite(tests["value"].to_numpy(np.float64, na_value=np.nan)).any():
        _note(res.notes, "parametric tests: the test table holds no numeric result")
        return
    res.parametric = parametric_section(dies, tests, conf_level=conf_level, top=top)


# ---------------------------------------------------------------------------------------
# defects without dies: an inspection file (KLARF) on its own
# ---------------------------------------------------------------------------------------
_KEY = ["lot_id", "wafer_id"]


def inspected_die_table(
    defects: pd.DataFrame,
    layout: Any = None,
    *,
    inspected_dies: pd.DataFrame | None = None,
    wafers: pd.DataFrame | None = None,
) -> pd.DataFrame | None:
    """The inspected dies of every inspected wafer: ``lot_id``, ``wafer_id``, ``die_x``, ``die_y``.

    A wafer's inspected dies are its sample test plan (``inspected_dies``, e.g. the
    ``inspected_dies`` of :func:`yieldkit.read_klarf`) when it has one, else every die of the
    layout (the layout's die set, or every die on the wafer). The wafers are those of
    ``defects``, ``wafers`` and ``inspected_dies``. None when a wafer has neither a plan nor a
    known layout (no inspected area can be stated).
    """
    frames = [t[_KEY].astype(str) for t in (defects, wafers, inspected_dies) if t is not None and len(t)]
    if not frames:
        return None
    keys = pd.concat(frames, ignore_index=True).drop_duplicates().reset_index(drop=True)
    planned = pd.DataFrame(columns=_KEY + ["die_x", "die_y"])
    if inspected_dies is not None and len(inspected_dies):
        planned = inspected_dies[_KEY + ["die_x", "die_y"]].astype({"lot_id": str, "wafer_id": str})
        planned = planned.drop_duplicates().reset_index(drop=True)
    rest = keys.merge(planned[_KEY].drop_duplicates().assign(_p=True), on=_KEY, how="left")
    rest = rest.loc[rest["_p"].isna(), _KEY].reset_index(drop=True)
    parts = [planned] if len(planned) else []
    if len(rest):
        if layout is None or getattr(layout, "inferred", False):
            return None
        grid = layout.dies()[["die_x", "die_y"]]
        parts.append(rest.merge(grid, how="cross"))
    out = pd.concat(parts, ignore_index=True)
    return out.astype({"die_x": "int32", "die_y": "int32"})


def defect_density(
    defects: pd.DataFrame,
    layout: Any = None,
    *,
    inspected_dies: pd.DataFrame | None = None,
    wafers: pd.DataFrame | None = None,
    by: str = "wafer",
    conf_level: float = 0.95,
    counted: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Defects and defect density [defects/cm^2] per wafer, per wafer and class, or per lot.

    The inspected area of a wafer is its inspected dies (:func:`inspected_die_table`: the
    sample test plan, else every die of the layout) times the die area of ``layout``.

    Parameters
    ----------
    defects : DataFrame
        Canonical defect table.
    layout : WaferLayout, optional
        Die pitch (die area [cm^2]); without one (or with an inferred one) the area and
        density are missing.
    inspected_dies : DataFrame, optional
        Sample test plan: ``lot_id``, ``wafer_id``, ``die_x``, ``die_y``.
    wafers : DataFrame, optional
        Every inspected wafer (``lot_id``, ``wafer_id``), so that wafers without a defect count.
    by : {"wafer", "class", "lot"}
        One row per wafer, per wafer and ``defect_class``, or per lot.
    conf_level : float
        Level of the Garwood (exact Poisson) interval of the density.
    counted : DataFrame, optional
        Defects per wafer (``lot_id``, ``wafer_id``, ``n_defects``) counted elsewhere (the Dask
        engine), in place of counting ``defects`` (then read for its wafers only); not with
        ``by="class"``.

    Returns
    -------
    DataFrame
        ``lot_id`` [, ``wafer_id``] [, ``defect_class``], ``n_defects``, ``n_inspected_dies``,
        ``area_cm2``, ``density_per_cm2``, ``ci_lower``, ``ci_upper``.

    Examples
    --------
    >>> import yieldkit as yk
    >>> fab = yk.simulate_fab(n_lots=1, wafers_per_lot=2, random_state=1)
    >>> t = defect_density(fab.defects, fab.layout)
    >>> int(t["n_defects"].sum()) == len(fab.defects), bool((t["density_per_cm2"] > 0).all())
    (True, True)
    """
    from .errors import check_choice
    from .intervals import garwood

    check_choice(by, ("wafer", "class", "lot"), name="by", where="defect_density")
    if counted is not None:
        if by == "class":
            from .errors import YieldkitValueError

            raise YieldkitValueError("The 'counted' argument of defect_density counts per wafer; by='class' needs "
                                     "the defect table.")
        defects = counted[_KEY]
    insp = inspected_die_table(defects, layout, inspected_dies=inspected_dies, wafers=wafers)
    frames = [t[_KEY].astype(str) for t in (defects, wafers, inspected_dies) if t is not None and len(t)]
    keys = (pd.concat(frames, ignore_index=True).drop_duplicates().reset_index(drop=True) if frames
            else pd.DataFrame(columns=_KEY))
    if insp is not None:
        n_insp = insp.groupby(_KEY, sort=False).size().rename("n_inspected_dies").reset_index()
        keys = keys.merge(n_insp, on=_KEY, how="left")
    else:
        keys["n_inspected_dies"] = np.nan
    area = _real_area(layout)
    keys["area_cm2"] = keys["n_inspected_dies"].astype("float64") * (area if area else np.nan)
    d = defects[_KEY].astype(str)
    group = _KEY
    if by == "class":
        cls = defects["defect_class"] if "defect_class" in defects.columns else pd.Series("unclassified",
                                                                                        index=defects.index)
        d = d.assign(defect_class=cls.astype(str).to_numpy())
        group = _KEY + ["defect_class"]
    if counted is not None:
        counts = counted[_KEY + ["n_defects"]].astype({"lot_id": str, "wafer_id": str, "n_defects": np.int64})
        counts = counts.groupby(_KEY, sort=True)["n_defects"].sum().reset_index()
    else:
        counts = d.groupby(group, sort=True).size().rename("n_defects").reset_index()
    if by == "class":
        out = counts.merge(keys, on=_KEY, how="left")
    else:
        out = keys.merge(counts, on=_KEY, how="left")
    out["n_defects"] = out["n_defects"].fillna(0).astype(np.int64)
    if by == "lot":
        out = out.groupby("lot_id", sort=True).agg(
            n_wafers=("wafer_id", "size"), n_defects=("n_defects", "sum"),
            n_inspected_dies=("n_inspected_dies", lambda s: s.sum(min_count=len(s))),
            area_cm2=("area_cm2", lambda s: s.sum(min_count=len(s)))).reset_index()
    out = out.sort_values([c for c in ("lot_id", "wafer_id") if c in out.columns] +
                          (["n_defects"] if by == "class" else []),
                          ascending=[True] * (len(group) - (by == "class")) + ([False] if by == "class" else []),
                          kind="stable").reset_index(drop=True) if by != "lot" else out
    a = out["area_cm2"].to_numpy(dtype="float64")
    k = out["n_defects"].to_numpy(dtype="float64")
    with np.errstate(invalid="ignore", divide="ignore"):
        out["density_per_cm2"] = np.where(a > 0, k / a, np.nan)
    lo, hi = garwood(k, np.where(a > 0, a, np.nan), conf_level=conf_level)
    out["ci_lower"] = lo
    out["ci_upper"] = hi
    out["n_inspected_dies"] = pd.array(out["n_inspected_dies"].to_numpy(dtype="float64", na_value=np.nan),
                                       dtype="Float64").astype("Int64")
    return out


class _DefectTable:
    """A defect table in memory, as :func:`_defects_only` reads it (the Dask engine gives the same
    answers from per-partition statistics)."""

    def __init__(self, defects: pd.DataFrame) -> None:
        self.table = defects
        self.columns = defects.columns
        self.n = len(defects)
        self.keys = defects  # lot_id, wafer_id of every defect (only these columns are read)

    def density(self, layout: Any, *, inspected_dies: pd.DataFrame | None, wafers: pd.DataFrame | None,
                conf_level: float) -> pd.DataFrame:
        return defect_density(self.table, layout, inspected_dies=inspected_dies, wafers=wafers, conf_level=conf_level)

    def pareto(self, top: int | None) -> pd.DataFrame:
        return pareto(self.table, top=top)

    def die_counts(self, insp: pd.DataFrame) -> tuple[pd.DataFrame, int]:
        import warnings

        from .errors import DataQualityWarning

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DataQualityWarning)  # defects off the inspected dies: said in a note
            counts = die_defect_counts(insp, self.table)
        return counts.table, int(counts.n_off_die)

    def zonal_density(self, layout: Any, *, conf_level: float, wafers: pd.DataFrame | None) -> pd.DataFrame:
        from .maps import zonal_density

        return zonal_density(self.table, layout, level="pooled", conf_level=conf_level, wafers=wafers)

    def for_maps(self, density: pd.DataFrame) -> pd.DataFrame:
        return self.table


def _defects_only(defects: pd.DataFrame, wafers: pd.DataFrame | None, layout: Any, *, top: int | None,
                  conf_level: float, spc_rules: str, laney: bool, inspected_dies: pd.DataFrame | None,
                  inspected_wafers: pd.DataFrame | None) -> AnalysisResults:
    """The report sections a defect table supports on its own: Paretos, densities, zones, clustering."""
    from .schema import complete_positions

    if layout is not None and len(defects):  # whichever position form is missing, from the other
        defects = complete_positions(defects, layout)
    return _defects_only_sections(_DefectTable(defects), wafers, layout, top=top, conf_level=conf_level,
                                  spc_rules=spc_rules, laney=laney, inspected_dies=inspected_dies,
                                  inspected_wafers=inspected_wafers)


def _defects_only_sections(source: Any, wafers: pd.DataFrame | None, layout: Any, *, top: int | None,
                           conf_level: float, spc_rules: str, laney: bool, inspected_dies: pd.DataFrame | None,
                           inspected_wafers: pd.DataFrame | None) -> AnalysisResults:
    """:func:`_defects_only` from a defect source (:class:`_DefectTable`, or the Dask engine's)."""
    notes: list[str] = []
    _note(notes, "lot and wafer yield, bin Paretos, retest, p-chart, kill ratios, yield models, DPPM, pattern "
                 "classes and commonality: no die table (defects only); give the dies of these wafers for them")
    empty = pd.DataFrame({c: pd.Series([], dtype=object) for c in _KEY})
    known = [t for t in (inspected_wafers, wafers) if t is not None and set(_KEY) <= set(t.columns)]
    listed = pd.concat([t[_KEY].astype(str) for t in known], ignore_index=True) if known else None
    insp = inspected_die_table(source.keys, layout, inspected_dies=inspected_dies, wafers=listed)
    density = source.density(layout, inspected_dies=inspected_dies, wafers=listed, conf_level=conf_level)
    summary = {"lots": int(density["lot_id"].nunique()), "wafers": int(len(density)),
               "dies": None if insp is None else int(len(insp)), "yield": float("nan"),
               "first_pass_yield": float("nan"), "defects": int(source.n)}
    res = AnalysisResults(
        summary=summary, final_dies=empty, lot_yield=empty, wafer_yield=empty, bin_pareto=empty,
        first_pass_bin_pareto=empty, retest=empty, stacked=_stacked_map(None, None, notes), p_chart=None,
        layout=layout, notes=notes, defects=source.for_maps(density), defect_density=density,
    )
    if source.n:
        res.defect_pareto = source.pareto(top)
    ordered = density.sort_values(_KEY, kind="stable").reset_index(drop=True)
    has_area = bool(np.isfinite(ordered["area_cm2"].to_numpy(dtype="float64")).all()) and len(ordered) > 0
    if len(ordered):
        res.u_chart = u_chart(ordered, exposure_col="area_cm2" if has_area else None, rules=spc_rules, laney=laney)
    if insp is None or "die_x" not in source.columns:
        _note(res.notes, "stacked defect map and spatial clustering: the defects have no die positions or the "
                         "inspected dies are unknown (no layout)")
    else:
        table, n_off_die = source.die_counts(insp)
        if n_off_die:
            _note(res.notes, f"{n_off_die} defect(s) lie on no inspected die; the die maps leave them out")
        per_die = table.assign(passed=lambda t: t["n_defects"].to_numpy() == 0)
        res.stacked = stack_map(per_die, value_col="n_defects")
        _clustering(res, per_die)
    area = _real_area(layout)
    if area is None or not source.n or "x_um" not in source.columns:
        _note(res.notes, "zonal densities: need a layout with a known die pitch and defect positions")
    else:
        from .maps import assign_zones

        grid = layout.dies()
        zone, labels = assign_zones(grid["x_center_um"], grid["y_center_um"], scheme="ring",
                                    radius_um=layout.usable_radius_um)
        empty_zones = [lab for lab, n in zip(labels, np.bincount(zone, minlength=len(labels)), strict=True) if n == 0]
        if empty_zones:
            _note(res.notes, f"zonal densities: the ring zone(s) {', '.join(empty_zones)} hold no inspected die "
                             "(the inspection covered part of the wafer)")
        else:
            res.zonal_density = source.zonal_density(layout, conf_level=conf_level,
                                                     wafers=density[_KEY] if len(density) else None)
    return res
