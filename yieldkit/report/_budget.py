"""The yield-loss budget section of an HTML report, and a stand-alone budget report.

Renders a :class:`~yieldkit.budget.YieldBudget` (it computes nothing but the impact Pareto and
the sequential waterfall, which are rearrangements of the budget's own table).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = ["budget_context", "build_budget_report"]


def budget_context(budget: Any, render: Callable[[Callable[[Any], Any], tuple[float, float]], str],
                   table: Callable[..., Any], *, price_per_die: float | None = None,
                   extra: Sequence[tuple[str, pd.DataFrame]] = ()) -> dict[str, Any] | None:
    """What the ``budget.html.j2`` partial shows of ``budget`` (None when there is no budget)."""
    if budget is None:
        return None
    from ..budget import impact_pareto, sequential_waterfall
    from ..plotting.budget import plot_yield_waterfall

    n = len(budget.table)
    waterfall = render(lambda ax: plot_yield_waterfall(budget, ax=ax, title="Where the yield went"),
                       (max(6.5, 0.45 * n + 2.5), 4.0))
    return {
        "observed_yield": budget.observed_yield, "tested_dies": budget.tested_dies, "conf_level": budget.conf_level,
        "images": {"waterfall": waterfall},
        "table": table(budget.table, table_id="budget-table"),
        "impact": table(impact_pareto(budget, price_per_die=price_per_die), table_id="budget-impact-table"),
        "sequential": table(sequential_waterfall(budget), table_id="budget-sequential-table"),
        "extra": [{"title": t, "table": table(df, table_id=f"budget-extra-{i}")} for i, (t, df) in enumerate(extra)],
    }


def build_budget_report(
    budget: Any,
    *,
    title: str = "Yield-loss budget",
    output: str | os.PathLike[str] | None = None,
    price_per_die: float | None = None,
    extra: Sequence[tuple[str, pd.DataFrame]] = (),
    dpi: int = 80,
) -> str:
    """A self-contained HTML page of a yield budget: waterfall, component table, impact Pareto.

    Parameters
    ----------
    budget : YieldBudget
        From :func:`yieldkit.budget.yield_budget`.
    title : str
        Page title.
    output : path, optional
        Write the page here (atomically).
    price_per_die : float, optional
        Adds the value column to the impact Pareto.
    extra : sequence of (str, DataFrame)
        Further tables to show (e.g. per-layer kill ratios), with their headings.
    dpi : int
        Resolution of the embedded chart.

    Returns
    -------
    str
        The HTML document.
    """
    from .. import __version__
    from ..io.atomic import atomic_write
    from ..plotting.export import render_data_uri
    from .html import _ENV, _table

    def render(draw: Callable[[Any], Any], figsize: tuple[float, float]) -> str:
        return render_data_uri(draw, figsize=figsize, dpi=dpi)

    ctx = budget_context(budget, render, _table, price_per_die=price_per_die, extra=extra)
    html = _ENV.get_template("budget_report.html.j2").render(
        title=title, version=__version__, generated=pd.Timestamp.now().strftime("%Y-%m-%d %H:%M"), budget=ctx)
    if output is not None:
        Path(output).parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(output) as fh:
            fh.write(html)
    return html
