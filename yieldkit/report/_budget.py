"""The yield-loss budget section of an HTML report (the ``budget.html.j2`` partial).

Renders a :class:`~yieldkit.budget.YieldBudget` (it computes nothing but the impact Pareto and
the sequential waterfall, which are rearrangements of the budget's own table).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd

__all__ = ["budget_context"]


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
