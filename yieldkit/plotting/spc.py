"""Control charts: points in order, centre line, varying limits, rule violations marked."""

from __future__ import annotations

from typing import Any

import numpy as np

from ._mpl import get_ax, set_title

__all__ = ["plot_control_chart"]


def plot_control_chart(chart: Any, *, ax: Any = None, title: str | None = None, **kwargs: Any) -> Any:
    """Draw a :class:`yieldkit.spc.ControlChart`.

    Points violating any run rule are drawn in red; lot boundaries (when the table has a
    ``lot_id`` column) as faint vertical lines.

    Parameters
    ----------
    chart : ControlChart
        From :func:`yieldkit.p_chart` or :func:`yieldkit.u_chart`.
    ax : matplotlib Axes, optional
    title : str, optional
    **kwargs
        Passed to the ``ax.plot`` of the points.

    Returns
    -------
    matplotlib Axes
    """
    t = chart.table
    ax = get_ax(ax, figsize=(8.0, 3.0))
    x = np.arange(len(t))
    v = t["value"].to_numpy(dtype=float)
    ax.plot(x, v, **{"color": "#1f77b4", "lw": 0.8, "marker": "o", "ms": 2.5, "zorder": 2, **kwargs})
    ax.step(x, t["ucl"].to_numpy(dtype=float), where="mid", color="#d62728", lw=0.9, label="UCL/LCL")
    ax.step(x, t["lcl"].to_numpy(dtype=float), where="mid", color="#d62728", lw=0.9)
    ax.axhline(chart.centre, color="black", lw=0.8, label="centre")
    bad = (t["rules"] != "").to_numpy()
    if bad.any():
        ax.scatter(x[bad], v[bad], color="#d62728", s=18, zorder=3, label="rule violated")
    if "lot_id" in t.columns and len(t):
        lots = t["lot_id"].astype(str).to_numpy()
        for b in np.flatnonzero(lots[1:] != lots[:-1]) + 0.5:
            ax.axvline(b, color="grey", lw=0.4, alpha=0.5)
    ax.set_xlim(-0.5, max(len(t) - 0.5, 0.5))
    ax.set_xlabel("wafer (lot/time order)")
    ax.set_ylabel(chart.statistic.replace("_", " "), parse_math=False)
    ax.legend(fontsize=7, loc="best", frameon=False)
    set_title(ax, title, fontsize=10)
    return ax
