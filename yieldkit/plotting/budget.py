"""The yield-loss waterfall: from 100 % down to the observed yield, one bar per budget component."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import SchemaError
from ._mpl import get_ax, set_title

__all__ = ["plot_yield_waterfall"]

_COLORS = {"systematic": "#7f7f7f", "defect": "#d62728", "parametric": "#ff7f0e", "remainder": "#bcbd22"}


def plot_yield_waterfall(
    budget: Any,
    *,
    sequential: bool = False,
    order: Sequence[str] | None = None,
    ax: Any = None,
    title: str | None = None,
    **kwargs: Any,
) -> Any:
    """Draw a yield budget as a waterfall: 100 %, each component's loss, the observed yield.

    Parameters
    ----------
    budget : YieldBudget or its table
        From :func:`yieldkit.budget.yield_budget`.
    sequential : bool
        Draw the sequential waterfall (:func:`yieldkit.budget.sequential_waterfall`, whose split
        depends on the order; the axis label says so) instead of the log-share allocation.
    order : sequence of str, optional
        Component order of the bars (default the table's).
    ax : matplotlib Axes, optional
    title : str, optional
    **kwargs
        Passed to ``ax.bar`` of the component bars (e.g. ``color``; default a colour per kind).

    Returns
    -------
    matplotlib Axes
    """
    from ..budget import sequential_waterfall

    table = getattr(budget, "table", budget)
    missing = [c for c in ("component", "kind", "yield", "loss") if c not in table.columns]
    if missing:
        raise SchemaError(f"plot_yield_waterfall needs a yield-budget table with column(s) {missing}.",
                          column=missing[0])
    if order is not None:
        table = table.set_index(table["component"].astype(str)).loc[list(order)].reset_index(drop=True)
    if sequential:
        loss = sequential_waterfall(table)["loss"].to_numpy(float)
    else:
        loss = table["loss"].to_numpy(float)
    y_obs = 1.0 - float(loss.sum())
    ax = get_ax(ax, figsize=(7.0, 3.8))
    n = len(table)
    top = 1.0 - np.r_[0.0, np.cumsum(loss)[:-1]]
    x = np.arange(1, n + 1)
    ax.bar([0], [1.0], color="#1f77b4", width=0.7)
    colors = [_COLORS.get(str(k), "#9467bd") for k in table["kind"]]
    ax.bar(x, -loss, bottom=top, **{"color": colors, "width": 0.7, "edgecolor": "white", **kwargs})
    ax.bar([n + 1], [y_obs], color="#2ca02c", width=0.7)
    for xi, t, lo in zip(x, top, loss, strict=True):
        ax.text(xi, t + 0.005, f"{100 * lo:.2f}", ha="center", va="bottom", fontsize=7, parse_math=False)
    ax.set_xticks(np.arange(n + 2))
    labels = ["start", *table["component"].astype(str).tolist(), "yield"]
    ax.set_xticklabels(labels, rotation=40, ha="right", fontsize=8, parse_math=False)
    lo_lim = max(0.0, min(y_obs, float((top - loss).min(initial=1.0))) - 0.05)
    ax.set_ylim(lo_lim, 1.02)
    ax.set_ylabel("yield (sequential, order-dependent)" if sequential else "yield (log-share allocation)",
                  parse_math=False)
    ax.yaxis.set_major_formatter(_percent())
    set_title(ax, title, fontsize=10)
    return ax


def _percent() -> Any:
    from matplotlib.ticker import PercentFormatter

    return PercentFormatter(xmax=1.0)
