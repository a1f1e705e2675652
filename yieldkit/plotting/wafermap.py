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

__all__ = ["WaferMapDisplay", "die_grid", "plot_wafer_map"]

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
    ok = dies["die_x"].notna().to_numpy() & dies["die_y"].notna().to_numpy()
    if not ok.any():
        raise SchemaError("a wafer map needs dies with a wafer position (die_x and die_y); none has one")
    x = dies["die_x"].to_numpy(dtype=np.int64, na_value=0)[ok]
    y = dies["die_y"].to_numpy(dtype=np.int64, na_value=0)[ok]
    values = np.asarray(values)[ok]
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
    from matplotlib.patches import Patch

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
        cm = ListedColormap(colours)  # type: ignore[assignment]
        vmin, vmax = -0.5, len(colours) - 0.5
        present = np.unique(codes).astype(int)
        counts = np.bincount(codes.astype(int), minlength=len(colours))
        handles = [Patch(color=colours[i], label=f"{labels[i]} ({counts[i]})") for i in present]
    if layout is not None and not getattr(layout, "inferred", False):
        w, h = layout.die_pitch_um
        x0, y0 = layout.origin_um
        extent = (x0 + xmin * w, x0 + (xmax + 1) * w, y0 + ymin * h, y0 + (ymax + 1) * h)
        _wafer_outline(ax, layout)
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
        ax.legend(handles=handles, loc="upper left", fontsize=7, frameon=False, bbox_to_anchor=(1.01, 1.0))
    if title:
        ax.set_title(title, fontsize=9)
    return ax


def _wafer_outline(ax: Any, layout: Any) -> list[Any]:
    """Draw the wafer outline, the edge-exclusion ring and the notch; return the patches."""
    from matplotlib.patches import Circle, Polygon

    r = layout.radius_um
    patches = [
        ax.add_patch(Circle((0, 0), r, fill=False, lw=1.2, color="black")),
        ax.add_patch(Circle((0, 0), layout.usable_radius_um, fill=False, lw=0.6, ls="--", color="grey")),
        ax.add_patch(Polygon([(-0.02 * r, -r), (0.02 * r, -r), (0, -0.97 * r)], closed=True, color="black")),
    ]
    ax.set_xlim(-1.03 * r, 1.03 * r)
    ax.set_ylim(-1.03 * r, 1.03 * r)
    ax.set_aspect("equal")
    # data stay in the wafer frame [um]; the ticks read in mm
    from matplotlib.ticker import FuncFormatter

    mm = FuncFormatter(lambda v, _pos: f"{v / 1000:g}")
    ax.xaxis.set_major_formatter(mm)
    ax.yaxis.set_major_formatter(mm)
    ax.set_xlabel("x [mm]")
    ax.set_ylabel("y [mm]")
    return patches


class WaferMapDisplay:
    """Wafer-map visualisation of one wafer: bins, pass/fail or a per-die value.

    Compute once (``from_dies``), plot many times (``plot(ax=None)``), in the style of
    scikit-learn's Display objects.

    Parameters
    ----------
    dies : DataFrame
        One wafer's dies (final results), with ``hbin``/``passed`` or the value column.
    value : {"bin", "pass", "value"}
        Categorical bins (legend with bin names and counts), pass/fail, or a continuous
        per-die value with a colour bar.
    layout : WaferLayout, optional
        Places the dies in the wafer frame with the outline, notch and edge exclusion.
    bin_names : dict, optional
        Hard bin -> name.
    column : str, optional
        Column for ``value="value"`` (e.g. ``n_defects``, ``density_per_cm2``).
    title : str, optional

    Attributes
    ----------
    ax_, figure_, image_ : matplotlib objects
        Set by :meth:`plot`; ``image_`` holds one pixel per die position (masked where no die).
    legend_ : matplotlib Legend or None
    colorbar_ : matplotlib Colorbar or None

    Examples
    --------
    >>> import yieldkit as yk
    >>> fab = yk.simulate_fab(n_lots=1, wafers_per_lot=1, random_state=1)
    >>> disp = WaferMapDisplay.from_dies(fab.dies, layout=fab.layout, bin_names=fab.bin_names)
    >>> int(disp.image_.get_array().count()) == fab.layout.n_dies
    True
    """

    def __init__(self, dies: pd.DataFrame, *, value: str = "bin", layout: Any = None,
                 bin_names: dict[int, str] | None = None, column: str | None = None, title: str | None = None) -> None:
        check_choice(value, ("bin", "pass", "value"), name="value", where="WaferMapDisplay")
        self.dies = dies
        self.value = value
        self.layout = layout
        self.bin_names = bin_names
        self.column = column
        self.title = title

    @classmethod
    def from_dies(cls, dies: pd.DataFrame, *, value: str = "bin", layout: Any = None,
                  bin_names: dict[int, str] | None = None, column: str | None = None, title: str | None = None,
                  ax: Any = None, legend: bool = True, cmap: str = "viridis") -> WaferMapDisplay:
        """Keep the final result of each die of one wafer, then plot.

        Raises
        ------
        SchemaError
            When ``dies`` holds more than one wafer (select one first) or no die.
        """
        if {"lot_id", "wafer_id"} <= set(dies.columns) and len(dies):
            n_w = len(dies[["lot_id", "wafer_id"]].drop_duplicates())
            if n_w > 1:
                raise SchemaError(f"WaferMapDisplay draws one wafer; the table holds {n_w}. Select one wafer first.")
        if "passed" in dies.columns and "test_seq" in dies.columns:
            from ..yields import final_results

            dies = final_results(dies)
        return cls(dies, value=value, layout=layout, bin_names=bin_names, column=column, title=title).plot(
            ax=ax, legend=legend, cmap=cmap)

    def plot(self, ax: Any = None, *, legend: bool = True, cmap: str = "viridis") -> WaferMapDisplay:
        """Draw on ``ax`` (a new figure when None); return self."""
        ax = plot_wafer_map(self.dies, value=self.value, layout=self.layout, bin_names=self.bin_names,
                            column=self.column, ax=ax, title=self.title, legend=legend, cmap=cmap)
        self.ax_ = ax
        self.figure_ = ax.figure
        self.image_ = ax.images[-1]
        self.legend_ = ax.get_legend()
        self.colorbar_ = getattr(self.image_, "colorbar", None)
        return self
