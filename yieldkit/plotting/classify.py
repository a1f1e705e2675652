"""Plots of the root-cause classifiers: wafer grids, confusion matrices, commonality ranking,
pattern counts per lot. matplotlib is imported lazily; every plotter takes ``ax=None``
keyword-only, passes ``**kwargs`` to its main matplotlib call and returns the Axes."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..errors import SchemaError
from ._mpl import get_ax, legend, set_title

__all__ = ["plot_commonality", "plot_confusion", "plot_grid", "plot_pattern_counts"]


def plot_grid(grid: Any, *, ax: Any = None, title: str | None = None, **kwargs: Any) -> Any:
    """Draw a wafer grid (0 = no die, 1 = pass, 2 = fail): white, light grey, red.

    ``kwargs`` go to ``ax.imshow``.

    Returns
    -------
    matplotlib Axes
        The axes drawn on; the grid image is ``ax.images[-1]``.
    """
    from matplotlib.colors import ListedColormap

    g = np.asarray(grid)
    ax = get_ax(ax)
    ax.imshow(g, **{"cmap": ListedColormap(["white", "#d9d9d9", "#d62728"]), "vmin": 0, "vmax": 2,
                    "interpolation": "nearest", **kwargs})
    ax.set_xticks([])
    ax.set_yticks([])
    set_title(ax, title)
    return ax


def plot_confusion(confusion: Any, *, ax: Any = None, labels: Any = None, normalize: bool = True,
                   **kwargs: Any) -> Any:
    """Draw a confusion matrix (rows = true class, columns = predicted), row-normalised by default.

    Parameters
    ----------
    confusion : DataFrame or 2-D array
        Counts. A DataFrame supplies the labels.
    labels : sequence of str, optional
        Class names for an array.
    normalize : bool
        Show the share of each true class (recall on the diagonal) instead of counts.
    **kwargs
        Passed to ``ax.imshow``.

    Returns
    -------
    matplotlib Axes
        The axes drawn on; the matrix image is ``ax.images[-1]``.
    """
    if isinstance(confusion, pd.DataFrame):
        labels = list(confusion.index) if labels is None else labels
        cm = confusion.to_numpy(dtype=np.float64)
    else:
        cm = np.asarray(confusion, dtype=np.float64)
        labels = [str(i) for i in range(cm.shape[0])] if labels is None else list(labels)
    if normalize:
        tot = cm.sum(axis=1, keepdims=True)
        cm = np.divide(cm, tot, out=np.zeros_like(cm), where=tot > 0)
    ax = get_ax(ax, figsize=(6.0, 5.5))
    ax.imshow(cm, **{"cmap": "Blues", "vmin": 0, "vmax": 1 if normalize else None, **kwargs})
    labels = [str(v) for v in labels]
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right", parse_math=False)
    ax.set_yticks(range(len(labels)), labels, parse_math=False)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    hi = np.nanmax(cm) if cm.size else 1
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            if cm[i, j] > 0:
                ax.text(j, i, f"{cm[i, j]:.2f}" if normalize else f"{int(cm[i, j])}", ha="center", va="center",
                        fontsize=7, color="white" if cm[i, j] > 0.6 * hi else "black")
    return ax


def plot_commonality(table: Any, *, ax: Any = None, top: int = 10, **kwargs: Any) -> Any:
    """Bar chart of the top factors of :func:`yieldkit.commonality`: -log10 of the adjusted p-value.

    Significant factors are drawn in red, the FDR level as a dashed line; each bar is labelled with
    the worst level and its yield difference. ``kwargs`` go to ``ax.barh``.

    Parameters
    ----------
    table : CommonalityResult or DataFrame
        The result of :func:`yieldkit.commonality` (its ``fdr`` places the line), or its table
        (line at 0.05).

    Returns
    -------
    matplotlib Axes
        The axes drawn on; the bars are ``ax.containers[0]``.
    """
    from ..results import TableResult

    fdr = 0.05
    if isinstance(table, TableResult):
        fdr = float(getattr(table, "fdr", fdr))
        table = table.table
    need = {"factor", "p_adj", "worst_level", "yield_delta"}
    if not need <= set(table.columns):
        raise SchemaError(f"plot_commonality needs the columns {', '.join(sorted(need))} (yieldkit.commonality output)")
    t = table.head(top).iloc[::-1]
    score = -np.log10(np.clip(t["p_adj"].to_numpy(np.float64, na_value=1.0), 1e-300, 1))
    sig = t["p_adj"].to_numpy(np.float64, na_value=1.0) < fdr
    ax = get_ax(ax, figsize=(7.0, 0.45 * len(t) + 1.2))
    ax.barh(range(len(t)), score, **{"color": np.where(sig, "#d62728", "#7f7f7f"), **kwargs})
    ax.set_yticks(range(len(t)), t["factor"].astype(str), parse_math=False)
    ax.axvline(-np.log10(fdr), ls="--", color="k", lw=1)
    for i, (lv, dy) in enumerate(zip(t["worst_level"], t["yield_delta"])):
        ax.text(score[i], i, f"  {lv} ({dy:+.1%})" if np.isfinite(dy) else f"  {lv}", va="center", fontsize=8,
                parse_math=False)
    ax.set_xlabel("-log10 adjusted p (Benjamini-Hochberg)")
    ax.set_title("Commonality: factors associated with low yield")
    return ax


def plot_pattern_counts(summary: pd.DataFrame, *, ax: Any = None, by: str = "lot_id", **kwargs: Any) -> Any:
    """Stacked bars of pattern counts per lot (from :func:`yieldkit.classify.pattern_summary`).

    ``kwargs`` go to each ``ax.bar``.

    Returns
    -------
    matplotlib Axes
        The axes drawn on; ``ax.containers`` holds one bar container per pattern.
    """
    if not {by, "pattern", "wafers"} <= set(summary.columns):
        raise SchemaError(f"plot_pattern_counts needs the columns {by}, pattern, wafers (pattern_summary output)")
    wide = summary.pivot_table(index=by, columns="pattern", values="wafers", aggfunc="sum", fill_value=0, observed=True)
    ax = get_ax(ax, figsize=(max(5.0, 0.4 * len(wide) + 2), 4.0))
    bottom = np.zeros(len(wide))
    for col in wide.columns:
        v = wide[col].to_numpy(np.float64)
        ax.bar(range(len(wide)), v, **{"bottom": bottom, "label": str(col), **kwargs})
        bottom += v
    ax.set_xticks(range(len(wide)), wide.index.astype(str), rotation=90, parse_math=False)
    ax.set_ylabel("wafers")
    legend(ax, fontsize=7, ncols=2)
    return ax
