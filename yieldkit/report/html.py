"""Render the HTML yield report from an :class:`~yieldkit.analysis.AnalysisResults`.

The report computes nothing: :func:`yieldkit.analyze` fits and tests, this module has the
figures drawn and embedded by :mod:`yieldkit.plotting` (as PNG data URIs) and lays out the
tables with Jinja2 (autoescaped, so every string from the data shows as text).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

import jinja2
import pandas as pd
from markupsafe import Markup

from .. import __version__
from ..io.atomic import atomic_write
from .columns import column_format, format_value
from .summary import executive_summary

log = logging.getLogger(__name__)

__all__ = ["build_report"]

_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("yieldkit.report", "templates"),
    autoescape=jinja2.select_autoescape(["html", "j2"], default=True),
    undefined=jinja2.StrictUndefined,
)


@functools.cache
def _script() -> Markup:
    """The report's JavaScript (sorting, filtering, the gallery's filter and larger view), inlined."""
    from importlib.resources import files

    text = files("yieldkit.report").joinpath("templates", "report.js").read_text(encoding="utf-8")
    if "</script" in text.lower():  # it is inlined in a <script> element
        raise AssertionError("report.js must not contain '</script'")
    return Markup(text)


def _table(df: pd.DataFrame | None, floats: int = 4, drop: tuple[str, ...] = (), max_rows: int = 2000,
           table_id: str = "", labels: Mapping[str, str] | None = None) -> dict[str, Any] | None:
    """A table as headers (label, unit, sort type) and rows of ``(text, sort key)`` cells.

    Labels, units and number formats come from :mod:`yieldkit.report.columns`; ``labels``
    renames columns of this table only. Columns without a single value are left out. The text
    is escaped later by the template. (``floats`` is kept for callers; formats are per column.)
    """
    if df is None:
        return None
    d = df[[c for c in df.columns if c not in drop]]
    truncated = len(d) > max_rows
    d = d.head(max_rows)
    fmts = [column_format(c, d[c].dtype) for c in d.columns]
    cols = [[format_value(v, f.fmt) for v in d[c].tolist()] for c, f in zip(d.columns, fmts)]
    keep = [i for i, cells in enumerate(cols) if len(d) == 0 or any(text for text, _ in cells)]
    headers = []
    for i in keep:
        f, name = fmts[i], str(d.columns[i])
        label = (labels or {}).get(name, f.label)
        headers.append({"name": name, "label": label, "unit": f.unit, "numeric": f.numeric,
                        "title": f"{name}: {f.description}" if f.description else name})
    rows = [[cols[i][r] for i in keep] for r in range(len(d))]
    return {"id": table_id, "columns": [h["name"] for h in headers], "headers": headers, "rows": rows,
            "truncated": truncated, "total": len(df)}


class _Figures:
    """Figure rendering (through :mod:`yieldkit.plotting.export`) with its time, optional PDF pages."""

    def __init__(self, pdf: Any, dpi: int) -> None:
        self.pdf = pdf
        self.dpi = dpi
        self.seconds = 0.0

    def render(self, draw: Callable[[Any], Any], figsize: tuple[float, float]) -> str:
        from ..plotting.export import render_data_uri

        t0 = time.perf_counter()
        uri = render_data_uri(draw, figsize=figsize, dpi=self.dpi, pdf=self.pdf)
        self.seconds += time.perf_counter() - t0
        return uri


def _gallery(res: Any, figs: _Figures, max_maps: int | None, progress: bool
             ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The gallery's maps (with lot, wafer, yield and pattern to filter by) and its bin legend."""
    from ..plotting.export import wafer_map_data_uris
    from ..plotting.wafermap import bin_colours

    wy = res.wafer_yield
    shown = wy if max_maps is None or len(wy) <= max_maps else wy.nsmallest(max_maps, "yield")
    shown = shown.sort_index()
    if len(shown) == 0:
        return [], []
    final = res.final_dies
    unplaced = (final["die_x"].isna() | final["die_y"].isna()).to_numpy(bool)
    if unplaced.any():  # final-test parts without a wafer position have no place on a map
        final = final.loc[~unplaced].reset_index(drop=True)
    from .._keys import wafer_codes

    codes, w = wafer_codes(final)
    order = pd.Series(range(len(final))).groupby(codes).indices  # rows of each wafer, one pass
    lookup = {(a, b): i for i, (a, b) in enumerate(zip(w["lot_id"], w["wafer_id"]))}
    rows = [r for r in shown.to_dict("records") if (r["lot_id"], r["wafer_id"]) in lookup]
    hb = final["hbin"].to_numpy()
    passed = final["passed"].to_numpy(bool)
    colours = bin_colours(hb, pd.unique(hb[passed]))  # one palette for every map: one legend
    counts = pd.Series(hb).value_counts()
    names = res.bin_names or {}
    legend = [{"colour": c, "label": f"{b} {names.get(b, '')}".strip(), "pass": b in set(hb[passed].tolist()),
               "dies": int(counts.get(b, 0))} for b, c in colours.items()]
    pattern = {}
    if res.patterns is not None and "pattern" in res.patterns.columns:
        pattern = {(str(a), str(b)): str(p) for a, b, p in
                   zip(res.patterns["lot_id"], res.patterns["wafer_id"], res.patterns["pattern"])}
    wafers = ((final.iloc[order[lookup[(r["lot_id"], r["wafer_id"])]]],
               f"{r['lot_id']} / {r['wafer_id']}  Y={r['yield']:.1%}") for r in rows)
    from tqdm import tqdm

    t0 = time.perf_counter()
    uris = wafer_map_data_uris(wafers, layout=res.layout, bin_names=res.bin_names, dpi=figs.dpi, colours=colours)
    maps = [{"lot_id": str(r["lot_id"]), "wafer_id": str(r["wafer_id"]), "src": src, "yield": float(r["yield"]),
             "pattern": pattern.get((str(r["lot_id"]), str(r["wafer_id"])), "")}
            for r, src in zip(rows, tqdm(uris, total=len(rows), desc="wafer maps", unit="map", disable=not progress,
                                         leave=False), strict=True)]
    figs.seconds += time.perf_counter() - t0
    return maps, legend


def _small_defect_map(ax: Any, *, display: Any, layout: Any, d: pd.DataFrame, title: str) -> None:
    display.from_defects(d, layout, title=title, ax=ax, legend=False, grid=False)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_xlabel("")
    ax.set_ylabel("")


def _defect_gallery(res: Any, figs: _Figures, max_maps: int | None, progress: bool) -> list[dict[str, Any]]:
    """Small defect maps of the wafers of a defects-only analysis, the highest density first when cut."""
    from tqdm import tqdm

    from ..plotting.export import render_data_uri
    from ..plotting.maps import DefectMapDisplay

    dd, defects = res.defect_density, res.defects
    if dd is None or defects is None or len(dd) == 0 or not {"x_um", "y_um"} <= set(defects.columns):
        return []
    rank = dd.assign(_k=dd["density_per_cm2"].fillna(dd["n_defects"].astype("float64")))
    shown = rank if max_maps is None or len(rank) <= max_maps else rank.nlargest(max_maps, "_k")
    shown = shown.sort_index()
    lots = defects["lot_id"].astype(str).to_numpy()
    wafers = defects["wafer_id"].astype(str).to_numpy()
    maps = []
    _draw_small = functools.partial(_small_defect_map, display=DefectMapDisplay, layout=res.layout)

    for r in tqdm(shown.to_dict("records"), desc="defect maps", unit="map", disable=not progress, leave=False):
        lot, wafer = str(r["lot_id"]), str(r["wafer_id"])
        d = defects[(lots == lot) & (wafers == wafer)]
        title = f"{lot} / {wafer}  {r['n_defects']} defects"
        t0 = time.perf_counter()  # the gallery is not part of the PDF
        src = render_data_uri(functools.partial(_draw_small, d=d, title=title), figsize=(3.0, 3.0), dpi=figs.dpi)
        figs.seconds += time.perf_counter() - t0
        maps.append({"lot_id": lot, "wafer_id": wafer, "src": src, "yield": None, "pattern": "",
                     "n_defects": int(r["n_defects"])})
    return maps


def build_report(
    results: Any,
    *,
    title: str = "Yield report",
    output: str | os.PathLike[str] | None = None,
    max_maps: int | None = 200,
    pdf: str | os.PathLike[str] | None = None,
    progress: bool = False,
    dpi: int = 80,
    timings: dict[str, float] | None = None,
) -> str:
    """Build a self-contained HTML yield report from analysis results.

    The report renders; it fits and tests nothing. Call :func:`yieldkit.analyze` first.

    Parameters
    ----------
    results : AnalysisResults
        The output of :func:`yieldkit.analyze`.
    title : str
        Report title.
    output : path, optional
        Write the report here (atomically).
    max_maps : int, optional
        At most this many wafer maps in the gallery (the worst-yielding when cut).
    pdf : path, optional
        Also write the charts (not the gallery) to a multi-page PDF.
    progress : bool
        Show a progress bar while drawing the gallery.
    dpi : int
        Resolution of the embedded PNGs.
    timings : dict, optional
        Filled with ``total_s`` (the wall time of this build, writing included) and
        ``plotting_s`` [s]. Both are also logged.

    Returns
    -------
    str
        The HTML document.

    Raises
    ------
    YieldkitValueError
        When ``results`` is not an AnalysisResults.

    Examples
    --------
    >>> import yieldkit as yk
    >>> from yieldkit.report import build_report
    >>> fab = yk.simulate_fab(n_lots=1, wafers_per_lot=2, random_state=1)
    >>> html = build_report(yk.analyze(fab.dies, fab.defects, layout=fab.layout), max_maps=2)
    >>> html.count('<section id="') >= 8
    True
    """
    from ..analysis import AnalysisResults

    t_start = time.perf_counter()
    if not isinstance(results, AnalysisResults):
        from ..errors import YieldkitValueError

        raise YieldkitValueError("The 'results' argument of build_report must be an AnalysisResults (call "
                                 f"yieldkit.analyze first). Got {type(results).__name__} instead.")
    figs = _Figures(None, dpi)
    with contextlib.ExitStack() as stack:
        if pdf is not None:
            from ..plotting.export import pdf_pages

            figs.pdf = stack.enter_context(pdf_pages(pdf))
        html = _render(results, title, max_maps, progress, figs)
    if pdf is not None:
        log.debug("wrote %s", pdf)
    if output is not None:
        Path(output).parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(output) as fh:
            fh.write(html)
        log.debug("wrote report %s", output)
    total = time.perf_counter() - t_start
    if timings is not None:
        timings.update(total_s=total, plotting_s=figs.seconds)
    log.debug("report built in %.1f s (%.1f s plotting)", total, figs.seconds)
    return html


# column labels of this report's Pareto tables (read-only: no state kept between builds)
_BIN = MappingProxyType({"category": "Bin", "name": "Bin name"})
_CLASS = MappingProxyType({"category": "Defect class"})
_IMAGE_KEYS = ("bin_pareto", "defect_pareto", "defect_pareto_kill", "kill_ratios", "p_chart", "u_chart", "stacked")


def _render(res: Any, title: str, max_maps: int | None, progress: bool, figs: _Figures) -> str:
    from ..plotting.maps import plot_stacked_map
    from ..plotting.pareto import plot_kill_ratios, plot_pareto
    from ..plotting.spc import plot_control_chart

    # every chart key is present (None when not drawn): the template runs with StrictUndefined
    images: dict[str, str | None] = dict.fromkeys(_IMAGE_KEYS)
    if len(res.bin_pareto):
        images["bin_pareto"] = figs.render(lambda ax: plot_pareto(res.bin_pareto, ax=ax, title="Failing bins (final)"),
                                           (6.5, 3.6))
    if res.defect_pareto is not None and len(res.defect_pareto):
        images["defect_pareto"] = figs.render(
            lambda ax: plot_pareto(res.defect_pareto, ax=ax, title="Defects by class (count)"), (6.5, 3.6))
    if res.defect_pareto_kill is not None and len(res.defect_pareto_kill):
        images["defect_pareto_kill"] = figs.render(
            lambda ax: plot_pareto(res.defect_pareto_kill, ax=ax, title="Defects by class (kill-weighted)",
                                   color="#9467bd"), (6.5, 3.6))
    kr = None if res.kill_ratios is None else res.kill_ratios.table
    if kr is not None and len(kr):
        images["kill_ratios"] = figs.render(lambda ax: plot_kill_ratios(kr, ax=ax, title="Kill ratios"),
                                            (6.5, 0.45 * len(kr) + 1.5))
    defects_only = res.p_chart is None  # analyze(None, defects): an inspection without die results
    if not defects_only:
        images["p_chart"] = figs.render(
            lambda ax: plot_control_chart(res.p_chart, ax=ax, title="p-chart: wafer yield"), (9.0, 3.0))
    if res.u_chart is not None:
        images["u_chart"] = figs.render(
            lambda ax: plot_control_chart(res.u_chart, ax=ax, title=f"u-chart: {res.u_chart.statistic.replace('_', ' ')}"),
            (9.0, 3.0))
    stacked_title = f"Stacked map: fail rate over {res.summary['wafers']} wafers"
    stacked_value = "fail_rate"
    if defects_only:
        stacked_title = f"Stacked map: mean defects per die over {res.summary['wafers']} wafers"
        stacked_value = "mean_n_defects"
    if len(res.stacked):  # empty when no die has a wafer position
        images["stacked"] = figs.render(
            lambda ax: plot_stacked_map(res.stacked, value_col=stacked_value, layout=res.layout, ax=ax,
                                        title=stacked_title), (5.0, 4.6))
    legend: list[dict[str, Any]] = []
    if defects_only:
        maps = _defect_gallery(res, figs, max_maps, progress)
    else:
        maps, legend = _gallery(res, figs, max_maps, progress)
    s = res.summary
    summary = dict(s)
    summary["retest_recovered"] = int(res.retest["recovered"].sum()) if len(res.retest) else 0
    tables = {
        "lots": _table(res.lot_yield, table_id="lot-table"),
        "wafers": _table(res.wafer_yield, table_id="wafer-table"),
        "bin_pareto": _table(res.bin_pareto, table_id="bin-pareto-table", labels=_BIN),
        "first_pass_bin_pareto": _table(res.first_pass_bin_pareto, table_id="first-pass-bin-table", labels=_BIN),
        "retest": _table(res.retest, table_id="retest-table", labels=_BIN) if len(res.retest) else None,
        "defect_pareto": _table(res.defect_pareto, table_id="defect-pareto-table", labels=_CLASS),
        "defect_pareto_kill": _table(res.defect_pareto_kill, table_id="defect-kill-table", labels=_CLASS),
        "kill_ratios": _table(None if res.kill_ratios is None else res.kill_ratios.table, table_id="kill-ratio-table",
                              labels=_CLASS),
        "p_excursions": None if defects_only else _table(res.p_chart.excursions(), table_id="p-excursions"),
        "defect_density": _table(res.defect_density, table_id="defect-density-table"),
        "zonal_density": _table(res.zonal_density, table_id="zonal-density-table"),
        "u_excursions": _table(res.u_chart.excursions(), table_id="u-excursions") if res.u_chart is not None else None,
        "zonal": _table(res.zonal, table_id="zonal-table"),
        "clustering": _table(res.clustering, table_id="clustering-table"),
        "models": _table(res.models, table_id="models-table"),
        # the interval of the defect level is shown once, in DPPM
        "dppm": _table(res.dppm, table_id="dppm-table", drop=("ci_lower", "ci_upper")),
        "patterns": _table(
            None if res.patterns is None else res.patterns[[c for c in res.patterns.columns if not str(c).startswith("p_")]],
            table_id="patterns-table",
        ),
        "pattern_lots": _table(res.pattern_lots, table_id="pattern-lots-table"),
        "similar": _table(getattr(res, "similar", None), table_id="similar-table"),
        "commonality": _table(res.commonality, table_id="commonality-table"),
    }
    from ._parametric import parametric_context

    parametric = parametric_context(res, figs.render, _table)
    from ._budget import budget_context

    budget = budget_context(getattr(res, "budget", None), figs.render, _table)
    pat = _pat_section(res, figs)
    return _ENV.get_template("report.html.j2").render(
        pat=pat, title=title, version=__version__, generated=pd.Timestamp.now().strftime("%Y-%m-%d %H:%M"),
        summary=summary, tables=tables, images=images, maps=maps, notes=res.notes, legend=legend,
        sentences=executive_summary(res), script=_script(),
        defects_only=defects_only,
        p_centre=None if defects_only else res.p_chart.centre,
        u_centre=None if res.u_chart is None else res.u_chart.centre,
        p_sigma_z=None if defects_only else res.p_chart.sigma_z, u_sigma_z=None if res.u_chart is None else res.u_chart.sigma_z,
        u_note=res.u_chart_note,
        zonal_tested=res.zonal_tested, clustering_tested=res.clustering_tested,
        y_clean_joint=None if res.kill_ratios is None or pd.isna(res.kill_ratios.y_clean_joint)
        else res.kill_ratios.y_clean_joint,
        parametric=parametric, budget=budget,
    )


def _pat_section(res: Any, figs: _Figures, max_maps: int = 6) -> dict[str, Any] | None:
    """Tables and wafer maps of the outlier screen (PAT), or None without one."""
    scr = getattr(res, "pat", None)
    if scr is None:
        return None
    from ..plotting.wafermap import WaferMapDisplay

    r = scr.result
    table = r.table
    inked = table["passed_orig"].to_numpy(bool) & ~table["passed"].to_numpy(bool)
    per_wafer = table.loc[inked].groupby(["lot_id", "wafer_id"], sort=False, observed=True).size()
    names = dict(res.bin_names or {})
    names.update({int(b): str(n) for b, n in table.loc[inked].groupby("hbin", observed=True)["pat_rule"].agg(
        lambda s: "PAT " + ",".join(dict.fromkeys(x for v in s.dropna() for x in str(v).split(";")))).items()})
    def draw(ax: Any, w: pd.DataFrame, title: str) -> Any:
        return WaferMapDisplay.from_dies(w, layout=res.layout, bin_names=names, title=title, ax=ax)

    maps = []
    for (lot, wafer), n in per_wafer.sort_values(ascending=False).head(max_maps).items():
        sel = ((table["lot_id"] == lot) & (table["wafer_id"] == wafer)).to_numpy()
        src = figs.render(functools.partial(draw, w=table.loc[sel], title=f"{lot} / {wafer}: {n} inked"), (4.6, 4.2))
        maps.append({"lot_id": str(lot), "wafer_id": str(wafer), "n": int(n), "src": src})
    limits = None
    if scr.limits:
        lim = pd.concat([x.table.assign(rule=x.rule) for x in scr.limits], ignore_index=True)
        limits = _table(lim, table_id="pat-limits-table")
    return {"rules": ", ".join(scr.rules), "n_good": r.n_good_before, "n_inked": r.n_good_before - r.n_good_after,
            "fraction": r.screened_fraction, "loss": _table(r.loss_by_rule, table_id="pat-loss-table"),
            "loss_by_test": _table(r.loss_by_test, table_id="pat-test-table") if len(r.loss_by_test) else None,
            "limits": limits, "maps": maps}
