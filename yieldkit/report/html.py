"""Render the HTML yield report from an :class:`~yieldkit.analysis.AnalysisResults`.

The report computes nothing: :func:`yieldkit.analyze` fits and tests, this module draws the
figures (through :mod:`yieldkit.plotting`), embeds them as PNG data URIs and lays out the
tables with Jinja2 (autoescaped, so every string from the data shows as text).
"""

from __future__ import annotations

import base64
import contextlib
import io
import logging
import os
import time
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd

from .. import __version__
from ..io.atomic import atomic_path, atomic_write

log = logging.getLogger(__name__)

__all__ = ["build_report", "figure_to_data_uri"]

_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("yieldkit.report", "templates"),
    autoescape=jinja2.select_autoescape(["html", "j2"], default=True),
    undefined=jinja2.StrictUndefined,
)


def figure_to_data_uri(fig: Any, *, dpi: int = 80, pdf: Any = None, close: bool = True) -> str:
    """Render a matplotlib figure to an embedded ``data:image/png;base64,...`` URI.

    With ``pdf`` (a ``PdfPages``) the figure is also added as a page. The figure is closed
    unless ``close=False``.
    """
    from ..plotting._mpl import pyplot

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    if pdf is not None:
        pdf.savefig(fig, bbox_inches="tight")
    if close:
        pyplot().close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _fmt(v: Any, floats: int) -> str:
    if isinstance(v, bool):
        return "yes" if v else ""
    if isinstance(v, float):
        if pd.isna(v):
            return ""
        return f"{v:.{floats}g}" if abs(v) >= 1e4 or (v != 0 and abs(v) < 1e-3) else \
            f"{v:.{floats}f}".rstrip("0").rstrip(".")
    if v is None or v is pd.NA or (not isinstance(v, str) and pd.api.types.is_scalar(v) and pd.isna(v)):
        return ""
    return str(v)


def _table(df: pd.DataFrame | None, floats: int = 4, drop: tuple[str, ...] = (), max_rows: int = 2000,
           table_id: str = "") -> dict[str, Any] | None:
    """A table as header + rows of strings (escaped later by the template)."""
    if df is None:
        return None
    d = df[[c for c in df.columns if c not in drop]]
    truncated = len(d) > max_rows
    d = d.head(max_rows)
    rows = [[_fmt(v, floats) for v in row] for row in d.itertuples(index=False)]
    return {"id": table_id, "columns": [str(c) for c in d.columns], "rows": rows, "truncated": truncated,
            "total": len(df)}


class _Figures:
    """Figure rendering with timing, optional PDF pages."""

    def __init__(self, pdf: Any, dpi: int) -> None:
        from ..plotting._mpl import pyplot

        self.plt = pyplot()
        self.pdf = pdf
        self.dpi = dpi
        self.seconds = 0.0

    def render(self, draw: Any, figsize: tuple[float, float]) -> str:
        t0 = time.perf_counter()
        fig, ax = self.plt.subplots(figsize=figsize)
        draw(ax)
        uri = figure_to_data_uri(fig, dpi=self.dpi, pdf=self.pdf)
        self.seconds += time.perf_counter() - t0
        return uri


def _gallery(res: Any, figs: _Figures, max_maps: int | None, progress: bool) -> list[dict[str, str]]:
    from ..plotting.wafermap import plot_wafer_map

    wy = res.wafer_yield
    shown = wy if max_maps is None or len(wy) <= max_maps else wy.nsmallest(max_maps, "yield")
    shown = shown.sort_index()
    if len(shown) == 0:
        return []
    final = res.final_dies
    unplaced = (final["die_x"].isna() | final["die_y"].isna()).to_numpy(bool)
    if unplaced.any():  # final-test parts without a wafer position have no place on a map
        final = final.loc[~unplaced].reset_index(drop=True)
    from .._keys import wafer_codes

    codes, w = wafer_codes(final)
    order = pd.Series(range(len(final))).groupby(codes).indices  # rows of each wafer, one pass
    lookup = {(a, b): i for i, (a, b) in enumerate(zip(w["lot_id"], w["wafer_id"]))}
    t0 = time.perf_counter()
    fig, ax = figs.plt.subplots(figsize=(3.0, 3.0))
    maps = []
    from tqdm import tqdm

    for row in tqdm(shown.to_dict("records"), desc="wafer maps", unit="map", disable=not progress, leave=False):
        i = lookup.get((row["lot_id"], row["wafer_id"]))
        if i is None:
            continue
        d = final.iloc[order[i]]
        ax.clear()
        plot_wafer_map(d, value="bin", layout=res.layout, bin_names=res.bin_names, ax=ax,
                       title=f"{row['lot_id']} / {row['wafer_id']}  Y={row['yield']:.1%}", legend=False)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_xlabel("")
        ax.set_ylabel("")
        maps.append({"lot_id": str(row["lot_id"]), "wafer_id": str(row["wafer_id"]),
                     "src": figure_to_data_uri(fig, dpi=figs.dpi, close=False)})
    figs.plt.close(fig)
    figs.seconds += time.perf_counter() - t0
    return maps


def build_report(
    results: Any,
    *,
    defects: pd.DataFrame | None = None,
    wafers: pd.DataFrame | None = None,
    layout: Any = None,
    bin_names: Any = None,
    title: str = "Yield report",
    output: str | os.PathLike[str] | None = None,
    max_maps: int | None = 200,
    pdf: str | os.PathLike[str] | None = None,
    progress: bool = False,
    dpi: int = 80,
    **analyze_kwargs: Any,
) -> str:
    """Build a self-contained HTML yield report.

    Parameters
    ----------
    results : AnalysisResults or DataFrame
        The output of :func:`yieldkit.analyze`, or a canonical die table, which is analysed
        first with ``defects``, ``wafers``, ``layout``, ``bin_names`` and ``analyze_kwargs``.
    defects, wafers, layout, bin_names
        Inputs of :func:`yieldkit.analyze` when ``results`` is a die table.
    title : str
        Report title.
    output : path, optional
        Write the report here (atomically).
    max_maps : int, optional
        At most this many wafer maps in the gallery (the worst-yielding when cut).
    pdf : path, optional
        Also write the charts (not the gallery) to a PDF through matplotlib's ``PdfPages``.
    progress : bool
        Show a progress bar while drawing the gallery.
    dpi : int
        Resolution of the embedded PNGs.

    Returns
    -------
    str
        The HTML document. Timings are logged: total and plotting seconds are also kept in
        ``build_report.last_timing``.

    Examples
    --------
    >>> import yieldkit as yk
    >>> from yieldkit.report import build_report
    >>> fab = yk.simulate_fab(n_lots=1, wafers_per_lot=2, random_state=1)
    >>> html = build_report(fab.dies, defects=fab.defects, layout=fab.layout, max_maps=2)
    >>> html.count('<section id="') >= 8
    True
    """
    from ..analysis import AnalysisResults, analyze

    t_start = time.perf_counter()
    res = results
    if isinstance(results, pd.DataFrame):
        res = analyze(results, defects, wafers, layout, bin_names, **analyze_kwargs)
    elif not isinstance(results, AnalysisResults):
        from ..errors import YieldkitValueError

        raise YieldkitValueError("The 'results' argument of build_report must be an AnalysisResults (from "
                                 f"yieldkit.analyze) or a die table. Got {type(results).__name__} instead.")
    with contextlib.ExitStack() as stack:
        pdf_pages = None
        if pdf is not None:
            from matplotlib.backends.backend_pdf import PdfPages

            Path(pdf).parent.mkdir(parents=True, exist_ok=True)
            pdf_pages = stack.enter_context(PdfPages(stack.enter_context(atomic_path(pdf))))
        html = _render(res, title, max_maps, progress, dpi, pdf_pages)
    if output is not None:
        Path(output).parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(output) as fh:
            fh.write(html)
        log.info("wrote report %s", output)
    total = time.perf_counter() - t_start
    build_report.last_timing = {"total_s": total, "plotting_s": _LAST_PLOT[0]}  # type: ignore[attr-defined]
    log.info("report built in %.1f s (%.1f s plotting)", total, _LAST_PLOT[0])
    return html


_LAST_PLOT = [0.0]

_IMAGE_KEYS = ("bin_pareto", "defect_pareto", "defect_pareto_kill", "kill_ratios", "p_chart", "u_chart", "stacked")


def _render(res: Any, title: str, max_maps: int | None, progress: bool, dpi: int, pdf: Any) -> str:
    from ..plotting.pareto import plot_kill_ratios, plot_pareto
    from ..plotting.spc import plot_control_chart
    from ..plotting.wafermap import plot_wafer_map

    figs = _Figures(pdf, dpi)
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
    if res.kill_ratios is not None and len(res.kill_ratios):
        images["kill_ratios"] = figs.render(lambda ax: plot_kill_ratios(res.kill_ratios, ax=ax, title="Kill ratios"),
                                            (6.5, 0.45 * len(res.kill_ratios) + 1.5))
    images["p_chart"] = figs.render(lambda ax: plot_control_chart(res.p_chart, ax=ax, title="p-chart: wafer yield"),
                                    (9.0, 3.0))
    if res.u_chart is not None:
        images["u_chart"] = figs.render(
            lambda ax: plot_control_chart(res.u_chart, ax=ax, title=f"u-chart: {res.u_chart.statistic.replace('_', ' ')}"),
            (9.0, 3.0))
    stacked_title = f"Stacked map: fail rate over {res.summary['wafers']} wafers"
    if len(res.stacked):  # empty when no die has a wafer position
        try:
            from ..plotting.maps import plot_stacked_map

            images["stacked"] = figs.render(
                lambda ax: plot_stacked_map(res.stacked, layout=res.layout, ax=ax, title=stacked_title), (5.0, 4.6))
        except ImportError:
            images["stacked"] = figs.render(
                lambda ax: plot_wafer_map(res.stacked, value="value", column="fail_rate", layout=res.layout, ax=ax,
                                          title=stacked_title, cmap="magma_r"), (5.0, 4.6))
    maps = _gallery(res, figs, max_maps, progress)
    _LAST_PLOT[0] = figs.seconds
    s = res.summary
    summary = dict(s)
    summary["retest_recovered"] = int(res.retest["recovered"].sum()) if len(res.retest) else 0
    tables = {
        "lots": _table(res.lot_yield, table_id="lot-table"),
        "wafers": _table(res.wafer_yield, table_id="wafer-table"),
        "bin_pareto": _table(res.bin_pareto, table_id="bin-pareto-table"),
        "first_pass_bin_pareto": _table(res.first_pass_bin_pareto, table_id="first-pass-bin-table"),
        "retest": _table(res.retest, table_id="retest-table") if len(res.retest) else None,
        "defect_pareto": _table(res.defect_pareto, table_id="defect-pareto-table"),
        "defect_pareto_kill": _table(res.defect_pareto_kill, table_id="defect-kill-table"),
        "kill_ratios": _table(res.kill_ratios, table_id="kill-ratio-table"),
        "p_excursions": _table(res.p_chart.excursions(), table_id="p-excursions"),
        "u_excursions": _table(res.u_chart.excursions(), table_id="u-excursions") if res.u_chart is not None else None,
        "zonal": _table(res.zonal, table_id="zonal-table"),
        "clustering": _table(res.clustering, table_id="clustering-table"),
        "models": _table(res.models, table_id="models-table"),
        "dppm": _table(res.dppm, table_id="dppm-table"),
        "patterns": _table(
            None if res.patterns is None else res.patterns[[c for c in res.patterns.columns if not str(c).startswith("p_")]],
            table_id="patterns-table",
        ),
        "pattern_lots": _table(res.pattern_lots, table_id="pattern-lots-table"),
        "commonality": _table(res.commonality, table_id="commonality-table"),
    }
    return _ENV.get_template("report.html.j2").render(
        title=title, version=__version__, generated=pd.Timestamp.now().strftime("%Y-%m-%d %H:%M"),
        summary=summary, tables=tables, images=images, maps=maps, notes=res.notes,
        p_centre=res.p_chart.centre, u_centre=None if res.u_chart is None else res.u_chart.centre,
        p_sigma_z=res.p_chart.sigma_z, u_sigma_z=None if res.u_chart is None else res.u_chart.sigma_z,
        u_note=res.u_chart_note,
        zonal_tested=None if res.zonal is None else res.zonal.attrs.get("zones_tested"),
        clustering_tested=None if res.clustering is None else res.clustering.attrs.get("wafers_tested"),
        y_clean_joint=None if res.kill_ratios is None else res.kill_ratios.attrs.get("y_clean_joint"),
    )
