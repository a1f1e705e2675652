"""Outgoing-quality plots: defect level (DPPM) against fault coverage, and fitted fallout curves."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .._deprecation import renamed_kwargs
from ..errors import NotFittedError, SchemaError
from ._mpl import get_ax, set_title

__all__ = ["plot_defect_level", "plot_fallout"]

_MODEL_NAMES = {"wb": "Williams-Brown", "asa": "Agrawal-Seth-Agrawal", "nb": "negative binomial"}


@renamed_kwargs(value="value_col")
def plot_defect_level(
    table: pd.DataFrame,
    *,
    value_col: str = "dppm",
    ax: Any = None,
    logy: bool = True,
    title: str | None = None,
    **kwargs: Any,
) -> Any:
    """Draw defect level against fault coverage, one line per (model, yield).

    Parameters
    ----------
    table : pandas.DataFrame
        Tidy table with ``coverage``, ``yield``, the ``value_col`` column and optionally ``model``,
        e.g. from :func:`yieldkit.quality.dppm_table`. Rows with ``ci_lower``/``ci_upper``
        (in the units of ``defect_level``) get a shaded band when ``value_col`` is ``"dppm"`` or
        ``"defect_level"``.
    value_col : {"dppm", "defect_level"}, default "dppm"
        What to draw on the y axis [parts per million or -].
    ax : matplotlib Axes, optional
        Where to draw; a new figure when None.
    logy : bool, default True
        Logarithmic y axis (zero values are not drawn).
    title : str, optional
    **kwargs
        Passed to each line's ``ax.plot``.

    Returns
    -------
    matplotlib.axes.Axes
        The axes drawn on.

    Raises
    ------
    SchemaError
        If a needed column is missing.
    """
    missing = [c for c in ("coverage", "yield", value_col) if c not in table.columns]
    if missing:
        raise SchemaError(f"plot_defect_level needs column(s) {missing}. Found {list(table.columns)}.",
                          column=missing[0])
    ax = get_ax(ax, figsize=(5.5, 4.0))
    keys = ["model", "yield"] if "model" in table.columns else ["yield"]
    several_models = "model" in table.columns and table["model"].nunique() > 1
    scale = 1e6 if value_col == "dppm" else 1.0
    for key, group in table.sort_values("coverage").groupby(keys, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        y_val = key[-1]
        label = f"Y = {y_val:g}"
        if several_models:
            label = f"{_MODEL_NAMES.get(key[0], key[0])}, {label}"
        x = group["coverage"].to_numpy(dtype=float)
        v = group[value_col].to_numpy(dtype=float)
        if logy:
            v = np.where(v > 0, v, np.nan)
        (line,) = ax.plot(x, v, **{"label": label, **kwargs})
        if {"ci_lower", "ci_upper"} <= set(group.columns) and value_col in ("dppm", "defect_level"):
            lo = group["ci_lower"].to_numpy(dtype=float) * scale
            hi = group["ci_upper"].to_numpy(dtype=float) * scale
            ax.fill_between(x, lo, hi, color=line.get_color(), alpha=0.2, linewidth=0)
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel("fault coverage T [-]")
    ax.set_ylabel("defect level [DPPM]" if value_col == "dppm" else "defect level [-]")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="small")
    set_title(ax, title)
    return ax


def plot_fallout(fit: Any, *, ax: Any = None, n_points: int = 200, title: str | None = None, **kwargs: Any) -> Any:
    """Draw a fallout curve: the observed cumulative fail fraction and the fitted model.

    Parameters
    ----------
    fit : yieldkit.quality.FalloutFit
        A fitted fallout model.
    ax : matplotlib Axes, optional
    n_points : int, default 200
        Points of the fitted curve.
    title : str, optional
    **kwargs
        Passed to the ``ax.plot`` of the fitted curve.

    Returns
    -------
    matplotlib.axes.Axes

    Raises
    ------
    NotFittedError
        If ``fit`` has not been fitted.
    """
    if not hasattr(fit, "params_"):
        raise NotFittedError("plot_fallout needs a fitted FalloutFit. Call 'fit' first.")
    ax = get_ax(ax, figsize=(5.5, 4.0))
    ax.plot(fit.coverage_, fit.fail_fraction_, "o", label="observed")
    grid = np.linspace(0.0, 1.0, int(n_points))
    ax.plot(grid, fit.predict_fallout(grid), "-", **{"label": f"{_MODEL_NAMES.get(fit.model, fit.model)} fit", **kwargs})
    ax.axhline(1.0 - fit.yield_, linestyle=":", color="grey", label=f"1 - Y = {1.0 - fit.yield_:.4g}")
    ax.axvline(fit.final_coverage_, linestyle="--", color="grey", alpha=0.6)
    ax.set_xlabel("cumulative fault coverage T [-]")
    ax.set_ylabel("cumulative fail fraction [-]")
    ax.set_xlim(0.0, 1.0)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small", title=f"{fit.dppm_:.4g} DPPM at T = {fit.final_coverage_:g}")
    set_title(ax, title)
    return ax
