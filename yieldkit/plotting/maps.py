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

__all__ = ["plot_defect_kde", "plot_defect_scatter", "plot_radial_profile", "plot_stacked_map"]


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
