"""Plots of spatial results: stacked maps, radial profile, defect scatter and kernel density.

Every plotter takes ``ax=None`` keyword-only (a new figure when absent), passes ``**kwargs`` to
its main matplotlib call and returns the Axes; nothing calls ``plt.show()``. matplotlib is
imported lazily, inside the functions.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .._deprecation import renamed_kwargs
from ..errors import SchemaError
from ._mpl import get_ax, legend, set_title
from .wafermap import _wafer_outline, plot_wafer_map

__all__ = ["DefectMapDisplay", "plot_defect_kde", "plot_defect_scatter", "plot_radial_profile", "plot_stacked_map"]

# one colour per defect class (the most frequent first), grey for the rest
_CLASS_COLOURS = ["#1f77b4", "#d62728", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf",
                  "#bcbd22", "#7f7f7f", "#aec7e8", "#ff9896"]
_OTHER = "#bbbbbb"


@renamed_kwargs(value="value_col")
def plot_stacked_map(stack: pd.DataFrame, *, value_col: str = "fail_rate", layout: Any = None, ax: Any = None,
                     title: str | None = None, **kwargs: Any) -> Any:
    """Draw a composite map (output of :func:`yieldkit.maps.stack_map`) with a colour bar.

    ``kwargs`` go to ``ax.imshow`` (default ``cmap="magma_r"``).

    Returns
    -------
    matplotlib Axes
        The axes drawn on; the die image (one cell per die position) is ``ax.images[-1]``.
    """
    if value_col not in stack.columns:
        raise SchemaError(f"plot_stacked_map: column {value_col!r} is not in the stacked map", column=value_col)
    if "lot_id" in stack.columns and stack["lot_id"].nunique() > 1:
        raise SchemaError("plot_stacked_map draws one composite; select one lot (or stack with level='pooled')")
    return plot_wafer_map(stack, value="value", value_col=value_col, layout=layout, ax=ax, title=title,
                          **{"cmap": "magma_r", **kwargs})


def plot_radial_profile(profile: pd.DataFrame, *, ax: Any = None, label: str | None = None, unit: str = "mm",
                        **kwargs: Any) -> Any:
    """Draw a radial density profile (output of :func:`yieldkit.maps.radial_profile`).

    Density against ring mid-radius, with the Garwood interval as error bars; one line per
    group (lot or wafer) when the profile has several. ``kwargs`` go to each ``ax.errorbar``.

    Returns
    -------
    matplotlib Axes
        The axes drawn on; ``ax.containers`` holds one ``ErrorbarContainer`` per line.
    """
    need = [c for c in ("r_mid_um", "density", "ci_lower", "ci_upper") if c not in profile.columns]
    if need:
        raise SchemaError(f"plot_radial_profile needs column(s) {', '.join(need)} (from radial_profile)", column=need[0])
    ax = get_ax(ax, figsize=(6.0, 4.0))
    scale = 1e-3 if unit == "mm" else 1.0
    keys = [c for c in ("lot_id", "wafer_id") if c in profile.columns]
    groups = profile.groupby(keys, sort=False) if keys else [(label or "all wafers", profile)]
    drawn = []
    for name, g in groups:
        r = g["r_mid_um"].to_numpy() * scale
        d = g["density"].to_numpy()
        err = np.vstack([d - g["ci_lower"].to_numpy(), g["ci_upper"].to_numpy() - d])
        lab = name if isinstance(name, str) else " ".join(map(str, name))
        drawn.append(ax.errorbar(r, d, yerr=err, **{"marker": "o", "ms": 3, "capsize": 2, "label": lab, **kwargs}))
    ax.set_xlabel(f"radius [{unit}] (equal-area rings)")
    ax.set_ylabel("defect density [defects/cm$^2$]")
    ax.set_ylim(bottom=0)
    if len(drawn) > 1 or label:
        legend(ax, fontsize=7, frameon=False)
    return ax


@renamed_kwargs(hue="hue_col")
def plot_defect_scatter(defects: pd.DataFrame, layout: Any, *, hue_col: str | None = "defect_class", ax: Any = None,
                        title: str | None = None, grid: bool = True, s: float = 4.0, **kwargs: Any) -> Any:
    """Defect positions over the die grid, with the wafer outline, notch and edge-exclusion ring.

    Parameters
    ----------
    defects : DataFrame
        Defects with ``x_um``, ``y_um`` [um] (one wafer, or several to overlay).
    layout : WaferLayout
    hue_col : str, optional
        Categorical column colouring the points (``defect_class``, ``cluster_shape``...).
    grid : bool
        Draw the on-wafer die outlines (rectangles at the layout's die pitch).
    **kwargs
        Passed to each ``ax.scatter``.

    Returns
    -------
    matplotlib Axes
        The axes drawn on; after the die outlines, ``ax.collections`` holds one scatter per category.
    """
    from matplotlib.collections import PatchCollection
    from matplotlib.patches import Rectangle

    for col in ("x_um", "y_um"):
        if col not in defects.columns:
            raise SchemaError(f"plot_defect_scatter needs the defect column {col!r}", column=col)
    ax = get_ax(ax)
    if grid:
        d = layout.dies()
        w, h = layout.die_pitch_um
        rects = [Rectangle((x - w / 2, y - h / 2), w, h) for x, y in zip(d["x_center_um"], d["y_center_um"], strict=True)]
        ax.add_collection(PatchCollection(rects, facecolor="none", edgecolor="#cccccc", lw=0.3))
    _wafer_outline(ax, layout)
    x = defects["x_um"].to_numpy(dtype="float64", na_value=np.nan)
    y = defects["y_um"].to_numpy(dtype="float64", na_value=np.nan)
    drawn = []
    if hue_col is not None and hue_col in defects.columns:
        cats = defects[hue_col].astype(str).to_numpy()
        for c in sorted(set(cats)):
            m = cats == c
            drawn.append(ax.scatter(x[m], y[m], **{"s": s, "label": f"{c} ({int(m.sum())})", "lw": 0, **kwargs}))
        legend(ax, fontsize=6, frameon=False, loc="upper right", markerscale=2)
    else:
        drawn.append(ax.scatter(x, y, **{"s": s, "lw": 0, "color": "#d62728", **kwargs}))
    set_title(ax, title, fontsize=9)
    return ax


def plot_defect_kde(kde: Any, *, index: int = 0, layout: Any = None, ax: Any = None, title: str | None = None,
                    **kwargs: Any) -> Any:
    """Draw one map of a :class:`yieldkit.maps.DefectKDE` [defects/cm^2] with a colour bar.

    ``kwargs`` go to ``ax.imshow`` (default ``cmap="inferno"``).

    Returns
    -------
    matplotlib Axes
        The axes drawn on; the density image is ``ax.images[-1]``.
    """
    ax = get_ax(ax)
    x, y = kde.x_um, kde.y_um
    hx, hy = x[1] - x[0], y[1] - y[0]
    img = ax.imshow(kde.density[index], **{"origin": "lower", "cmap": "inferno", "aspect": "equal",
                                           "extent": (x[0] - hx / 2, x[-1] + hx / 2, y[0] - hy / 2, y[-1] + hy / 2),
                                           **kwargs})
    ax.figure.colorbar(img, ax=ax, shrink=0.8, label="defects/cm$^2$")
    if layout is not None:
        _wafer_outline(ax, layout)
    set_title(ax, title, fontsize=9)
    return ax


class DefectMapDisplay:
    """Defect map of a wafer: defects at their positions over the die grid, coloured by class and
    sized by defect size, with the wafer outline, notch and edge-exclusion ring.

    Compute once (:meth:`from_defects`), plot many times (:meth:`plot`), as
    :class:`~yieldkit.plotting.wafermap.WaferMapDisplay`.

    Parameters
    ----------
    x_um, y_um : array
        Defect positions in the wafer frame [um].
    codes : array of int
        Category of each defect (index into ``labels``).
    marker_size : array
        Marker area of each defect [points^2].
    labels, colours, counts : sequence
        Legend label, colour and number of defects of each category.
    layout : WaferLayout, optional
        Die grid (the dies of its die set, e.g. a sample test plan, or every die on the wafer)
        and wafer outline; not drawn when None or inferred.
    title : str, optional

    Attributes
    ----------
    ax_, figure_ : matplotlib objects
        Set by :meth:`plot`.
    scatters_ : list
        One scatter per category, in ``labels`` order.
    legend_ : matplotlib Legend or None

    Examples
    --------
    >>> import yieldkit as yk
    >>> fab = yk.simulate_fab(n_lots=1, wafers_per_lot=1, random_state=1)
    >>> disp = DefectMapDisplay.from_defects(fab.defects, fab.layout)
    >>> sum(disp.counts) == len(fab.defects)
    True
    """

    def __init__(self, x_um: np.ndarray, y_um: np.ndarray, codes: np.ndarray, marker_size: np.ndarray, *,
                 labels: list[str], colours: list[str], counts: list[int], layout: Any = None,
                 title: str | None = None) -> None:
        self.x_um = np.asarray(x_um, dtype=float)
        self.y_um = np.asarray(y_um, dtype=float)
        self.codes = np.asarray(codes, dtype=np.int64)
        self.marker_size = np.asarray(marker_size, dtype=float)
        self.labels, self.colours, self.counts = list(labels), list(colours), [int(c) for c in counts]
        self.layout = layout
        self.title = title

    @classmethod
    def from_defects(cls, defects: pd.DataFrame, layout: Any = None, *, hue: str = "defect_class",
                     size: str | None = "size_um", max_classes: int = 10, title: str | None = None, ax: Any = None,
                     legend: bool = True, **kwargs: Any) -> DefectMapDisplay:
        """Compute the map of one wafer's defects (or several, overlaid), then plot it.

        Parameters
        ----------
        defects : DataFrame
            Defects with ``x_um``, ``y_um`` [um] in the wafer frame.
        layout : WaferLayout, optional
            Die grid and wafer outline.
        hue : str
            Categorical column colouring the defects; the ``max_classes`` most frequent
            categories get their own colour, the rest are drawn grey as "other".
        size : str, optional
            Defect-size column [um]: marker area grows with the square root of the size
            (relative to the largest); missing sizes get the smallest marker.
        title : str, optional
        ax, legend, **kwargs
            Passed to :meth:`plot`.

        Raises
        ------
        SchemaError
            When ``x_um`` or ``y_um`` is missing.
        """
        for col in ("x_um", "y_um"):
            if col not in defects.columns:
                raise SchemaError(f"a defect map needs the defect column {col!r} (positions need the die pitch: "
                                  "a layout)", column=col)
        x = defects["x_um"].to_numpy(dtype="float64", na_value=np.nan)
        y = defects["y_um"].to_numpy(dtype="float64", na_value=np.nan)
        if hue in defects.columns:
            cats = defects[hue].astype("string").fillna("unclassified").to_numpy(dtype=object).astype(str)
        else:
            cats = np.full(len(defects), "defects", dtype=object).astype(str)
        uniq, inv, n = np.unique(cats, return_inverse=True, return_counts=True)
        order = np.lexsort((uniq, -n))  # most frequent first, then by name
        keep = order[:max_classes]
        rank = np.full(len(uniq), len(keep), dtype=np.int64)
        rank[keep] = np.arange(len(keep))
        codes = rank[inv] if len(defects) else np.zeros(0, np.int64)
        labels = [str(uniq[i]) for i in keep]
        colours = [_CLASS_COLOURS[i % len(_CLASS_COLOURS)] for i in range(len(keep))]
        if len(uniq) > len(keep):
            labels.append(f"other ({len(uniq) - len(keep)} classes)")
            colours.append(_OTHER)
        counts = np.bincount(codes, minlength=len(labels)).tolist()
        ms = np.full(len(defects), 4.0)
        if size is not None and size in defects.columns and len(defects):
            sz = pd.to_numeric(defects[size], errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
            ok = np.isfinite(sz) & (sz > 0)
            if ok.any():
                ms[ok] = 4.0 + 60.0 * np.sqrt(sz[ok] / sz[ok].max())
        disp = cls(x, y, codes, ms, labels=labels, colours=colours, counts=counts, layout=layout, title=title)
        return disp.plot(ax=ax, legend=legend, **kwargs)

    def plot(self, ax: Any = None, *, legend: bool = True, grid: bool = True, **kwargs: Any) -> DefectMapDisplay:
        """Draw on ``ax`` (a new figure when None); ``kwargs`` go to each ``ax.scatter``. Return self."""
        from matplotlib.collections import PatchCollection
        from matplotlib.patches import Rectangle

        ax = get_ax(ax)
        known = self.layout is not None and not getattr(self.layout, "inferred", False)
        if known:
            if grid:
                d = self.layout.dies()
                w, h = self.layout.die_pitch_um
                rects = [Rectangle((x - w / 2, y - h / 2), w, h)
                         for x, y in zip(d["x_center_um"], d["y_center_um"], strict=True)]
                ax.add_collection(PatchCollection(rects, facecolor="#f4f4f4", edgecolor="#c8c8c8", lw=0.3))
            _wafer_outline(ax, self.layout)
        else:
            ax.set_aspect("equal")
            ax.set_xlabel("x [um]")
            ax.set_ylabel("y [um]")
        scatters = []
        for k, (label, colour) in enumerate(zip(self.labels, self.colours, strict=True)):
            m = self.codes == k
            scatters.append(ax.scatter(self.x_um[m], self.y_um[m], **{
                "s": self.marker_size[m], "color": colour, "label": f"{label} ({self.counts[k]})", "lw": 0,
                "alpha": 0.8, **kwargs}))
        leg = None
        if legend and self.labels:
            leg = _legend_outside(ax)
        set_title(ax, self.title, fontsize=9)
        self.ax_, self.figure_, self.scatters_, self.legend_ = ax, ax.figure, scatters, leg
        return self


def _legend_outside(ax: Any) -> Any:
    leg = legend(ax, loc="upper left", fontsize=7, frameon=False, bbox_to_anchor=(1.01, 1.0), title="class (defects)")
    if leg is not None:
        for h in getattr(leg, "legend_handles", getattr(leg, "legendHandles", [])):
            h.set_sizes([20.0])
    return leg
