"""Pareto charts: descending bars, cumulative-percentage line and the 80 % marker."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .._deprecation import renamed_kwargs
from ..errors import SchemaError
from ._mpl import get_ax, legend, set_title

__all__ = ["plot_kill_ratios", "plot_pareto"]


def _ranking_column(table: pd.DataFrame) -> str:
    """The weight a Pareto table was ranked by: the column whose shares are its ``share``."""
    if "share" in table.columns:
        share = table["share"].to_numpy(dtype=float)
        for col in ("count", "impact", "density"):
            if col in table.columns:
                v = table[col].to_numpy(dtype=float)
                with np.errstate(invalid="ignore", divide="ignore"):
                    if np.allclose(v / np.nansum(v), share, rtol=1e-9, atol=0.0, equal_nan=True):
                        return col
    return "count"


@renamed_kwargs(value="value_col", label="label_col")
def plot_pareto(
    table: pd.DataFrame,
    *,
    value_col: str | None = None,
    label_col: str | None = None,
    ax: Any = None,
    title: str | None = None,
    marker: float = 0.8,
    **kwargs: Any,
) -> Any:
    """Draw a Pareto table from :func:`yieldkit.pareto` or :func:`yieldkit.bin_pareto`.

    Parameters
    ----------
    table : DataFrame
        One Pareto (a single group), ranked: ``category``, the ``value_col`` column and
        ``cum_share``.
    value_col : str, optional
        Bar height column; default the ranking weight the table was made with (``count``,
        ``impact`` or ``density``: the column whose shares are the table's ``share``).
    label_col : str, optional
        Column of bar labels; default ``category`` with ``name`` appended when present.
    ax : matplotlib Axes, optional
    title : str, optional
    marker : float
        Cumulative share of the horizontal marker line (80 % by default).
    **kwargs
        Passed to ``ax.bar`` (e.g. ``color``; default a blue).

    Returns
    -------
    matplotlib Axes
        The bar axes. The cumulative line ([%]) is on its twin axes, ``ax.cumulative_ax``.
    """
    if value_col is None:
        value_col = _ranking_column(table)
    missing = [c for c in ("category", value_col, "cum_share") if c not in table.columns]
    if missing:
        raise SchemaError(f"plot_pareto needs a Pareto table with column(s) {missing}.", column=missing[0])
    ax = get_ax(ax, figsize=(6.0, 3.6))
    if label_col is not None:
        labels = table[label_col].astype(str).to_numpy()
    elif "name" in table.columns:
        labels = (table["category"].astype(str) + " " + table["name"].fillna("").astype(str)).str.strip().to_numpy()
    else:
        labels = table["category"].astype(str).to_numpy()
    x = np.arange(len(table))
    heights = table[value_col].to_numpy(dtype=float)
    ax.bar(x, heights, **{"color": "#1f77b4", "edgecolor": "white", **kwargs})
    ax.set_xticks(x)
    ax.set_xticklabels(labels, rotation=35, ha="right", fontsize=8, parse_math=False)
    ax.set_ylabel(value_col.replace("_", " "), parse_math=False)
    ax.set_xlim(-0.6, len(table) - 0.4)
    ax2 = ax.twinx()
    ax2.plot(x, 100 * table["cum_share"].to_numpy(dtype=float), color="#d62728", marker="o", ms=3, lw=1.2)
    ax2.axhline(100 * marker, color="grey", ls="--", lw=0.8)
    ax2.set_ylim(0, 105)
    ax2.set_ylabel("cumulative [%]")
    ax.cumulative_ax = ax2
    set_title(ax, title, fontsize=10)
    return ax


def plot_kill_ratios(table: Any, *, ax: Any = None, title: str | None = None, **kwargs: Any) -> Any:
    """Kill ratio per class with its interval, and the joint per-defect kill probability.

    Parameters
    ----------
    table : KillRatioResult or DataFrame
        From :func:`yieldkit.kill_ratio`, or its table (``category``, ``kill_ratio``, ``kr_ci_lower``,
        ``kr_ci_upper``; ``kill_prob`` and its interval when present).
    ax : matplotlib Axes, optional
    title : str, optional
    **kwargs
        Passed to each ``ax.errorbar``.

    Returns
    -------
    matplotlib Axes
    """
    from ..results import TableResult

    if isinstance(table, TableResult):
        table = table.table
    if "category" not in table.columns or not {"kill_ratio", "kill_prob"} & set(table.columns):
        raise SchemaError("plot_kill_ratios needs a kill_ratio table (category, kill_ratio or kill_prob).")
    ax = get_ax(ax, figsize=(6.0, 0.4 * len(table) + 1.2))
    y = np.arange(len(table))[::-1].astype(float)
    if "kill_ratio" in table.columns:
        kr = table["kill_ratio"].to_numpy(dtype=float)
        err = np.vstack([kr - table["kr_ci_lower"].to_numpy(dtype=float), table["kr_ci_upper"].to_numpy(dtype=float) - kr])
        ax.errorbar(kr, y + 0.12, xerr=np.nan_to_num(err), **{"fmt": "o", "color": "#1f77b4", "ms": 4,
                                                               "capsize": 2, "label": "contingency KR (die)", **kwargs})
    if "kill_prob" in table.columns:
        k = table["kill_prob"].to_numpy(dtype=float)
        err = np.vstack([k - table["kill_prob_ci_lower"].to_numpy(dtype=float),
                         table["kill_prob_ci_upper"].to_numpy(dtype=float) - k])
        ax.errorbar(k, y - 0.12, xerr=np.nan_to_num(err), **{"fmt": "s", "color": "#d62728", "ms": 4,
                                                              "capsize": 2, "label": "joint ML k (defect)", **kwargs})
    ax.set_yticks(y)
    ax.set_yticklabels(table["category"].astype(str).to_numpy(), fontsize=8, parse_math=False)
    ax.set_xlim(-0.02, 1.02)
    ax.set_xlabel("kill ratio [-]")
    legend(ax, fontsize=7, frameon=False, loc="lower right")
    set_title(ax, title, fontsize=10)
    return ax
