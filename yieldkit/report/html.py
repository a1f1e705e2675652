"""Build the HTML yield report."""

from __future__ import annotations

import base64
import io
import logging
import os
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd

from .. import __version__
from ..io.atomic import atomic_write
from ..yields import final_results, lot_yield, wafer_yield

log = logging.getLogger(__name__)

__all__ = ["build_report", "figure_to_data_uri"]

_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("yieldkit.report", "templates"),
    autoescape=jinja2.select_autoescape(["html", "j2"], default=True),
    undefined=jinja2.StrictUndefined,
)


def figure_to_data_uri(fig: Any, *, dpi: int = 80) -> str:
    """Render a matplotlib figure to an embedded ``data:image/png;base64,...`` URI and close it."""
    from ..plotting._mpl import pyplot

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    pyplot().close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _table(df: pd.DataFrame, floats: int = 4) -> dict[str, Any]:
    """A table as header + rows of strings (escaped later by the template)."""
    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return "" if pd.isna(v) else f"{v:.{floats}g}" if abs(v) >= 1e4 else f"{v:.{floats}f}".rstrip("0").rstrip(".")
        return "" if v is None or (not isinstance(v, str) and pd.isna(v)) else str(v)

    return {"columns": [str(c) for c in df.columns], "rows": [[fmt(v) for v in row] for row in df.itertuples(index=False)]}


def build_report(
    dies: pd.DataFrame,
    *,
    defects: pd.DataFrame | None = None,
    wafers: pd.DataFrame | None = None,
    layout: Any = None,
    bin_names: dict[int, str] | None = None,
    title: str = "Yield report",
    output: str | os.PathLike[str] | None = None,
    max_maps: int | None = 200,
) -> str:
    """Build a self-contained HTML yield report.

    Parameters
    ----------
    dies : DataFrame
        Canonical die table.
    defects, wafers : DataFrame, optional
        Canonical defect and wafer tables.
    layout : WaferLayout, optional
        Die grid, to draw maps in the wafer frame.
    bin_names : dict, optional
        Hard bin -> name.
    title : str
        Report title.
    output : path, optional
        Write the report here (atomically).
    max_maps : int, optional
        At most this many wafer maps in the gallery (the worst-yielding first when cut).

    Returns
    -------
    str
        The HTML document.
    """
    from ..plotting._mpl import pyplot
    from ..plotting.wafermap import plot_wafer_map

    plt = pyplot()
    final = final_results(dies)
    wy = wafer_yield(dies)
    ly = lot_yield(dies)
    summary = {
        "lots": int(ly.shape[0]),
        "wafers": int(wy.shape[0]),
        "dies": int(wy["tested"].sum()),
        "yield": float(wy["good"].sum() / wy["tested"].sum()),
        "first_pass_yield": float(wy["first_pass_good"].sum() / wy["tested"].sum()),
        "defects": None if defects is None else int(len(defects)),
    }
    shown = wy if max_maps is None or len(wy) <= max_maps else wy.nsmallest(max_maps, "yield")
    maps = []
    groups = final.groupby(["lot_id", "wafer_id"], sort=False)
    for row in shown.to_dict("records"):
        d = groups.get_group((row["lot_id"], row["wafer_id"]))
        fig, ax = plt.subplots(figsize=(3.2, 3.2))
        plot_wafer_map(d, value="bin", layout=layout, bin_names=bin_names, ax=ax,
                       title=f"{row['lot_id']} / {row['wafer_id']}  Y={row['yield']:.1%}", legend=False)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_xlabel("")
        ax.set_ylabel("")
        maps.append({"lot_id": row["lot_id"], "wafer_id": row["wafer_id"], "src": figure_to_data_uri(fig)})
    html = _ENV.get_template("report.html.j2").render(
        title=title,
        version=__version__,
        generated=pd.Timestamp.now().strftime("%Y-%m-%d %H:%M"),
        summary=summary,
        lot_table=_table(ly),
        wafer_table=_table(wy),
        maps=maps,
    )
    if output is not None:
        Path(output).parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(output) as fh:
            fh.write(html)
        log.info("wrote report %s", output)
    return html
