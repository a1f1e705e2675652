"""Wafer-map plots: bin maps, pass/fail maps and per-die values on the die grid.

Dies are drawn as one image over the die grid (one pixel per die), placed in the wafer frame
when a :class:`~yieldkit.layout.WaferLayout` is given, with the wafer outline, the notch at
the bottom and the edge-exclusion ring.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..errors import SchemaError, check_choice
from ._mpl import get_ax

__all__ = ["die_grid", "plot_wafer_map"]

# categorical colours for bins: pass green, then distinct colours for fail bins
_PASS = "#2ca02c"
_FAIL_COLOURS = [
    "#d62728", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
    "#1f77b4", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94", "#f7b6d2",
]


def die_grid(dies: pd.DataFrame, values: np.ndarray) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """Scatter per-die ``values`` into a 2-D array indexed [die_y - ymin, die_x - xmin] (NaN: no die).

    Returns the grid and ``(xmin, xmax, ymin, ymax)`` of the die indices.
    """
    x = dies["die_x"].to_numpy(dtype=np.int64)
    y = dies["die_y"].to_numpy(dtype=np.int64)
    xmin, xmax, ymin, ymax = int(x.min()), int(x.max()), int(y.min()), int(y.max())
    grid = np.full((ymax - ymin + 1, xmax - xmin + 1), np.nan)
    grid[y - ymin, x - xmin] = values
    return grid, (xmin, xmax, ymin, ymax)


def plot_wafer_map(
    dies: pd.DataFrame,
    *,
    value: str = "bin",
    layout: Any = None,
    bin_names: dict[int, str] | None = None,
    column: str | None = None,
    ax: Any = None,
    title: str | None = None,
    legend: bool = True,
    cmap: str = "viridis",
) -> Any:
    """Draw one wafer's dies.

    Parameters
    ----------
    dies : DataFrame
        Die table of one wafer (final results: one row per die).
    value : {"bin", "pass", "value"}
        Colour by hard bin (categorical, with legend), pass/fail, or a numeric ``column``.
    layout : WaferLayout, optional
        Places dies in the wafer frame [um] and draws the outline, notch and edge exclusion.
    bin_names : dict, optional
        Hard bin -> name, for the legend.
    column : str, optional
        Column to show with ``value="value"``.
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib Axes
        The axes drawn on; the die image is ``ax.images[0]``.
    """
    check_choice(value, ("bin", "pass", "value"), name="value", where="plot_wafer_map")
    if len(dies) == 0:
        raise SchemaError("plot_wafer_map needs at least one die")
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Circle, Patch, Polygon

    ax = get_ax(ax)
    handles = []
    if value == "value":
        if column is None or column not in dies.columns:
            raise SchemaError(f"plot_wafer_map(value='value') needs column= naming a column; got {column!r}")
        vals = dies[column].to_numpy(dtype=float)
        grid, (xmin, xmax, ymin, ymax) = die_grid(dies, vals)
        cm = cmap
        vmin, vmax = np.nanmin(vals), np.nanmax(vals)
    else:
        if value == "pass":
            codes = np.where(dies["passed"].to_numpy(dtype=bool), 0, 1).astype(float)
            colours = [_PASS, _FAIL_COLOURS[0]]
            labels = ["pass", "fail"]
        else:
            hb = dies["hbin"].to_numpy(dtype=np.int64)
            passed = dies["passed"].to_numpy(dtype=bool) if "passed" in dies.columns else hb == 1
            bins = np.unique(hb)
            pass_bins = set(np.unique(hb[passed]).tolist())
            codes = np.searchsorted(bins, hb).astype(float)
            colours = []
            k = 0
            for b in bins:
                if int(b) in pass_bins:
                    colours.append(_PASS)
                else:
                    colours.append(_FAIL_COLOURS[k % len(_FAIL_COLOURS)])
                    k += 1
            names = bin_names or {}
            labels = [f"{int(b)} {names.get(int(b), '')}".strip() for b in bins]
        grid, (xmin, xmax, ymin, ymax) = die_grid(dies, codes)
        cm = ListedColormap(colours)
        vmin, vmax = -0.5, len(colours) - 0.5
        present = np.unique(codes).astype(int)
        counts = np.bincount(codes.astype(int), minlength=len(colours))
        handles = [Patch(color=colours[i], label=f"{labels[i]} ({counts[i]})") for i in present]
    if layout is not None and not getattr(layout, "inferred", False):
        w, h = layout.die_pitch_um
        x0, y0 = layout.origin_um
        extent = (x0 + xmin * w, x0 + (xmax + 1) * w, y0 + ymin * h, y0 + (ymax + 1) * h)
        r = layout.radius_um
        ax.add_patch(Circle((0, 0), r, fill=False, lw=1.2, color="black"))
        ax.add_patch(Circle((0, 0), layout.usable_radius_um, fill=False, lw=0.6, ls="--", color="grey"))
        ax.add_patch(Polygon([(-0.02 * r, -r), (0.02 * r, -r), (0, -0.97 * r)], closed=True, color="black"))
        ax.set_xlim(-1.03 * r, 1.03 * r)
        ax.set_ylim(-1.03 * r, 1.03 * r)
        ax.set_xlabel("x [um]")
        ax.set_ylabel("y [um]")
    else:
        extent = (xmin - 0.5, xmax + 0.5, ymin - 0.5, ymax + 0.5)
        ax.set_xlabel("die x")
        ax.set_ylabel("die y")
    img = ax.imshow(
        np.ma.masked_invalid(grid), origin="lower", extent=extent, cmap=cm, vmin=vmin, vmax=vmax,
        interpolation="nearest", aspect="equal",
    )
    if value == "value":
        ax.figure.colorbar(img, ax=ax, shrink=0.8, label=column)
    elif legend and handles:
        ax.legend(handles=handles, loc="upper right", fontsize=6, frameon=False, bbox_to_anchor=(1.0, 1.0))
    if title:
        ax.set_title(title, fontsize=9)
    return ax
