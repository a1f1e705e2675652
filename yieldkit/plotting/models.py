"""Plots of yield-model fits: observed vs fitted count distributions, block yields, yield vs area."""

from __future__ import annotations

from typing import Any

import numpy as np

from ._mpl import get_ax

__all__ = ["plot_count_fit", "plot_die_size_fit", "plot_fit", "plot_window_fit"]


def _models_and_axes(models: Any, ax: Any) -> tuple[list[Any], Any]:
    """One fitted model or several as a list, and the axes to draw on (a new figure when None)."""
    return (list(models) if isinstance(models, (list, tuple)) else [models]), get_ax(ax, figsize=(6.0, 4.0))


def plot_count_fit(models: Any, *, ax: Any = None, max_count: int | None = None, **kwargs: Any) -> Any:
    """Observed frequencies of per-die defect counts (bars) and each model's fitted frequencies.

    Parameters
    ----------
    models : fitted model or sequence of fitted models
        Fitted by the counts route on the same data (the first one's data are drawn).
    ax : matplotlib Axes, optional
        Where to draw; a new figure when absent.
    max_count : int, optional
        Largest count shown (default: largest observed, at most 30).
    **kwargs
        Passed to each model's ``ax.plot``.

    Returns
    -------
    matplotlib Axes
    """
    from ..models.dispersion import count_goodness_of_fit

    models, ax = _models_and_axes(models, ax)
    first = models[0]
    table = count_goodness_of_fit(first, min_expected=0.0).table  # one class per count 0..max: nothing merged
    kmax = int(min(len(table) - 1, 30 if max_count is None else max_count))
    ks = np.arange(kmax + 1)
    obs = table["observed"].to_numpy(dtype=float)[: kmax + 1]
    ax.bar(ks, obs, color="0.8", edgecolor="0.4", label="observed")
    n = float(table["observed"].sum())
    for m in models:
        ax.plot(ks, n * m.count_pmf(ks), **{"marker": "o", "ms": 3, "label": type(m).__name__.removesuffix("Yield"),
                                            **kwargs})
    ax.set_yscale("log")
    ax.set_xlabel("defects per die")
    ax.set_ylabel("dies")
    ax.set_title(f"defect counts, area {first.area_:g} cm$^2$")
    ax.legend(fontsize="small")
    return ax


def plot_window_fit(models: Any, *, ax: Any = None, **kwargs: Any) -> Any:
    """``ln Y`` of pooled blocks against block area (window method) with each model's curve.

    ``kwargs`` go to each model's ``ax.plot``.

    Returns
    -------
    matplotlib Axes
    """
    models, ax = _models_and_axes(models, ax)
    t = models[0].block_table_
    ok = t["n_good"] > 0
    ax.plot(t.loc[ok, "block_area_cm2"], np.log(t.loc[ok, "block_yield"]), "ks", label="blocks")
    grid = np.linspace(0, float(t["block_area_cm2"].max()) * 1.05, 200)
    area = float(models[0].area_)
    for m in models:
        ax.plot(grid, m.log_yield(grid), **{"label": type(m).__name__.removesuffix("Yield"), **kwargs})
    ax.set_xlabel("block area [cm$^2$]")
    ax.set_ylabel("ln Y")
    ax.set_title(f"window method, die area {area:g} cm$^2$")
    ax.legend(fontsize="small")
    return ax


def plot_die_size_fit(models: Any, table: Any, *, ax: Any = None, area_col: str = "die_area_cm2",
                      tested_col: str = "tested", good_col: str = "good", **kwargs: Any) -> Any:
    """Product yields against die area with each model's fitted curve.

    ``kwargs`` go to each model's ``ax.plot``.

    Returns
    -------
    matplotlib Axes
    """
    models, ax = _models_and_axes(models, ax)
    a = table[area_col].to_numpy(float)
    y = table[good_col].to_numpy(float) / table[tested_col].to_numpy(float)
    ax.plot(a, y, "ks", label="products")
    grid = np.linspace(0, a.max() * 1.1, 200)
    for m in models:
        ax.plot(grid, m.predict(grid), **{"label": type(m).__name__.removesuffix("Yield"), **kwargs})
    ax.set_xlabel("die area [cm$^2$]")
    ax.set_ylabel("yield")
    ax.legend(fontsize="small")
    return ax


def plot_fit(models: Any, *, ax: Any = None, table: Any = None, **kwargs: Any) -> Any:
    """The natural plot of a fit's route (counts, window or die sizes); return the Axes."""
    first = models[0] if isinstance(models, (list, tuple)) else models
    if first.route_ == "counts":
        return plot_count_fit(models, ax=ax, **kwargs)
    if first.route_ == "window":
        return plot_window_fit(models, ax=ax, **kwargs)
    return plot_die_size_fit(models, table, ax=ax, **kwargs)
