"""Wafer-map plots: bin maps, pass/fail maps and per-die values on the die grid.

:class:`WaferMapDisplay` computes once what a map shows (the die grid, its extent, colours,
legend labels and counts); :meth:`WaferMapDisplay.plot` only draws. Dies are drawn as one image
over the die grid (one cell per die). With a known :class:`~yieldkit.layout.WaferLayout` the
cells are placed in the wafer frame at the layout's die pitch (rectangles of the die's aspect),
with the wafer outline, the notch at the bottom and the edge-exclusion ring.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from .._deprecation import renamed_kwargs
from ..errors import SchemaError, check_choice
from ._mpl import get_ax, set_title
from ._mpl import legend as _legend

__all__ = ["WaferMapDisplay", "bin_colours", "die_grid", "plot_wafer_map"]

# pass bins: distinct greens; fail bins: distinct colours without green
_PASS_COLOURS = ["#2ca02c", "#98df8a", "#006d2c", "#74c476", "#00441b", "#c7e9c0", "#238b45", "#a1d99b"]
_FAIL_COLOURS = [
    "#d62728", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
    "#1f77b4", "#aec7e8", "#ffbb78", "#ff9896", "#c5b0d5", "#c49c94", "#f7b6d2", "#dbdb8d",
]
_PASS = _PASS_COLOURS[0]


def bin_colours(bins: Any, pass_bins: Any) -> dict[int, str]:
    """The colour of each hard bin: the k-th pass bin gets the k-th green, the k-th fail bin the
    k-th other colour (bins in ascending order), as a single wafer's map colours them.

    Give the colours of all wafers' bins to :meth:`WaferMapDisplay.from_dies` (``colours=``)
    to colour every map of a gallery alike, with one legend.
    """
    b = np.unique(np.asarray(bins, dtype=np.int64))
    is_pass = np.isin(b, np.asarray(list(pass_bins), dtype=np.int64))
    rank = np.cumsum(is_pass) - 1  # k-th pass bin, and k-th fail bin
    frank = np.cumsum(~is_pass) - 1
    return {int(b[i]): _PASS_COLOURS[rank[i] % len(_PASS_COLOURS)] if is_pass[i]
            else _FAIL_COLOURS[frank[i] % len(_FAIL_COLOURS)] for i in range(len(b))}


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


def _known(layout: Any) -> bool:
    return layout is not None and not getattr(layout, "inferred", False)


class WaferMapDisplay:
    """Wafer-map visualisation of one wafer: bins, pass/fail or a per-die value.

    Compute once (:meth:`from_dies`), plot many times (:meth:`plot`), in the style of
    scikit-learn's Display objects. The constructor takes what was computed; most callers use
    :meth:`from_dies`.

    Parameters
    ----------
    grid : 2-D array
        One cell per die position, indexed [row, column] from the bottom-left (NaN: no die).
        Category codes (indices into ``labels``) for a categorical map, values otherwise.
    extent : (left, right, bottom, top)
        Where the grid is drawn: in the wafer frame [um] with a known layout, else in die indices.
    labels : sequence of str, optional
        Legend label of each category (categorical map); None for a value map.
    colours : sequence of str, optional
        Colour of each category.
    counts : sequence of int, optional
        Dies per category (shown in the legend).
    layout : WaferLayout, optional
        Known geometry: draws the outline, notch and edge exclusion; ticks in mm.
    value_col : str, optional
        Name of the value (colour-bar label) of a value map.
    title : str, optional
        Drawn as given (no mathtext).

    Attributes
    ----------
    ax_, figure_, image_ : matplotlib objects
        Set by :meth:`plot`; ``image_`` holds one cell per die position (masked where no die).
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

    @renamed_kwargs(column="value_col")
    def __init__(self, grid: np.ndarray, extent: tuple[float, float, float, float], *,
                 labels: Sequence[str] | None = None, colours: Sequence[str] | None = None,
                 counts: Sequence[int] | None = None, layout: Any = None, value_col: str | None = None,
                 title: str | None = None) -> None:
        self.grid = np.asarray(grid, dtype=float)
        self.extent = tuple(float(v) for v in extent)
        self.labels = None if labels is None else list(labels)
        self.colours = None if colours is None else list(colours)
        self.counts = None if counts is None else [int(c) for c in counts]
        self.layout = layout
        self.value_col = value_col
        self.title = title

    @property
    def categorical(self) -> bool:
        """True for a bin or pass/fail map (legend), False for a value map (colour bar)."""
        return self.labels is not None

    @classmethod
    @renamed_kwargs(column="value_col")
    def from_dies(cls, dies: pd.DataFrame, *, value: str = "bin", layout: Any = None,
                  bin_names: Mapping[int, str] | None = None, bin_labels: Mapping[int, str] | None = None,
                  value_col: str | None = None, title: str | None = None, ax: Any = None, legend: bool = True,
                  colours: Mapping[int, str] | None = None, **kwargs: Any) -> WaferMapDisplay:
        """Compute the map of one wafer's dies (final result per die), then plot it.

        Parameters
        ----------
        dies : DataFrame
            One wafer's dies, with ``hbin``/``passed`` or the value column.
        value : {"bin", "pass", "value"}
            Categorical bins (legend with bin labels, names and counts; distinct colours for
            distinct bins, greens for pass bins), pass/fail, or a per-die ``value_col`` with a
            colour bar.
        layout : WaferLayout, optional
            Places the dies in the wafer frame at the real die pitch, with outline, notch and
            edge exclusion (an inferred layout is not drawn: die indices are).
        bin_names : mapping, optional
            Hard bin -> name.
        bin_labels : mapping, optional
            Hard bin -> its code as text (e.g. ``"0x1F"`` as a file writes it); default the
            decimal bin number.
        value_col : str, optional
            Column for ``value="value"`` (e.g. ``n_defects``, ``density_per_cm2``).
        title : str, optional
        ax, legend, **kwargs
            Passed to :meth:`plot`.
        colours : mapping, optional
            Hard bin -> colour for ``value="bin"`` (e.g. from :func:`bin_colours` over many
            wafers); default: the wafer's own bins coloured by :func:`bin_colours`.

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
        disp = cls._compute(dies, value=value, layout=layout, bin_names=bin_names, bin_labels=bin_labels,
                            value_col=value_col, title=title, palette=colours)
        return disp.plot(ax=ax, legend=legend, **kwargs)

    @classmethod
    def _compute(cls, dies: pd.DataFrame, *, value: str, layout: Any, bin_names: Mapping[int, str] | None,
                 bin_labels: Mapping[int, str] | None, value_col: str | None, title: str | None,
                 palette: Mapping[int, str] | None = None) -> WaferMapDisplay:
        check_choice(value, ("bin", "pass", "value"), name="value", where="WaferMapDisplay")
        if len(dies) == 0:
            raise SchemaError("a wafer map needs at least one die")
        labels = colours = counts = None
        if value == "value":
            if value_col is None or value_col not in dies.columns:
                raise SchemaError(f"a wafer map with value='value' needs value_col= naming a column; got {value_col!r}")
            grid, (xmin, xmax, ymin, ymax) = die_grid(dies, dies[value_col].to_numpy(dtype=float))
        else:
            if value == "pass":
                codes = np.where(dies["passed"].to_numpy(dtype=bool), 0, 1)
                colours = [_PASS, _FAIL_COLOURS[0]]
                labels = ["pass", "fail"]
            else:
                hb = dies["hbin"].to_numpy(dtype=np.int64)
                passed = dies["passed"].to_numpy(dtype=bool) if "passed" in dies.columns else hb == 1
                bins = np.unique(hb)
                codes = np.searchsorted(bins, hb)
                own = bin_colours(bins, np.unique(hb[passed]))
                colours = [(palette or {}).get(int(b), own[int(b)]) for b in bins]
                names = bin_names or {}
                codes_text = bin_labels or {}
                labels = [f"{codes_text.get(int(b), str(int(b)))} {names.get(int(b), '')}".strip() for b in bins]
            counts = np.bincount(codes, minlength=len(labels)).tolist()
            grid, (xmin, xmax, ymin, ymax) = die_grid(dies, codes.astype(float))
        if _known(layout):
            w, h = layout.die_pitch_um
            x0, y0 = layout.origin_um
            extent = (x0 + xmin * w, x0 + (xmax + 1) * w, y0 + ymin * h, y0 + (ymax + 1) * h)
        else:
            extent = (xmin - 0.5, xmax + 0.5, ymin - 0.5, ymax + 0.5)
        return cls(grid, extent, labels=labels, colours=colours, counts=counts, layout=layout, value_col=value_col,
                   title=title)

    def plot(self, *, ax: Any = None, legend: bool = True, **kwargs: Any) -> WaferMapDisplay:
        """Draw on ``ax`` (a new figure when None); ``kwargs`` go to ``ax.imshow``. Return self."""
        from matplotlib.colors import ListedColormap
        from matplotlib.patches import Patch

        ax = get_ax(ax)
        grid = np.ma.masked_invalid(self.grid)
        style: dict[str, Any] = {"origin": "lower", "extent": self.extent, "interpolation": "nearest",
                                 "aspect": "equal"}
        if self.categorical:
            assert self.colours is not None and self.labels is not None
            style.update(cmap=ListedColormap(self.colours), vmin=-0.5, vmax=len(self.colours) - 0.5)
        else:
            style.update(cmap="viridis", vmin=np.nanmin(self.grid), vmax=np.nanmax(self.grid))
        img = ax.imshow(grid, **{**style, **kwargs})
        if _known(self.layout):
            _wafer_outline(ax, self.layout)
        else:
            ax.set_xlabel("die x")
            ax.set_ylabel("die y")
        colorbar = leg = None
        if not self.categorical:
            colorbar = ax.figure.colorbar(img, ax=ax, shrink=0.8)
            colorbar.set_label(str(self.value_col or ""), parse_math=False)
        elif legend:
            assert self.colours is not None and self.labels is not None and self.counts is not None
            handles = [Patch(color=self.colours[i], label=f"{self.labels[i]} ({self.counts[i]})")
                       for i in range(len(self.labels)) if self.counts[i] > 0]
            if handles:
                leg = _legend(ax, handles=handles, loc="upper left", fontsize=7, frameon=False,
                              bbox_to_anchor=(1.01, 1.0))
        set_title(ax, self.title, fontsize=9)
        self.ax_ = ax
        self.figure_ = ax.figure
        self.image_ = img
        self.legend_ = leg
        self.colorbar_ = colorbar
        return self


@renamed_kwargs(column="value_col")
def plot_wafer_map(
    dies: pd.DataFrame,
    *,
    value: str = "bin",
    layout: Any = None,
    bin_names: Mapping[int, str] | None = None,
    bin_labels: Mapping[int, str] | None = None,
    value_col: str | None = None,
    ax: Any = None,
    title: str | None = None,
    legend: bool = True,
    **kwargs: Any,
) -> Any:
    """Draw one wafer's dies (the rows as given: one per die) and return the Axes.

    The same map as :class:`WaferMapDisplay` (see :meth:`WaferMapDisplay.from_dies` for the
    parameters); ``kwargs`` go to ``ax.imshow`` (``cmap``, ``vmin``...).

    Returns
    -------
    matplotlib Axes
        The axes drawn on; the die image is ``ax.images[-1]``.
    """
    disp = WaferMapDisplay._compute(dies, value=value, layout=layout, bin_names=bin_names, bin_labels=bin_labels,
                                    value_col=value_col, title=title)
    return disp.plot(ax=ax, legend=legend, **kwargs).ax_


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
