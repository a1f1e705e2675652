"""A stand-alone HTML page of a yield-loss budget (what ``yieldkit budget -o budget.html`` writes)."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from ._budget import budget_context

__all__ = ["build_budget_report"]


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
    from .html import _ENV, _table  # the report's templates and table layout

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
