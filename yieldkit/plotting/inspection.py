"""Field-stacked defect map: every defect folded into its exposure field, repeaters marked."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import SchemaError
from ._mpl import get_ax, legend, set_title

__all__ = ["plot_field_stack"]


def plot_field_stack(
    result: Any,
    *,
    field_size_um: tuple[float, float] | None = None,
    ax: Any = None,
    title: str | None = None,
    **kwargs: Any,
) -> Any:
    """Draw defects stacked in the exposure field, with the repeaters found circled.

    Parameters
    ----------
    result : RepeaterResult or DataFrame
        From :func:`yieldkit.inspection.find_repeaters` (its folded positions and repeaters), or
        a table with ``field_x_um``, ``field_y_um`` (e.g. :func:`yieldkit.inspection.fold_to_field`).
    field_size_um : (float, float), optional
        Field width and height [um] for the frame drawn.
    ax : matplotlib Axes, optional
    title : str, optional
    **kwargs
        Passed to ``ax.scatter`` of the defects (e.g. ``s``, ``color``).

    Returns
    -------
    matplotlib Axes
    """
    field = getattr(result, "field", result)
    if not {"field_x_um", "field_y_um"} <= set(field.columns):
        raise SchemaError("plot_field_stack needs field_x_um and field_y_um (fold_to_field or find_repeaters).",
                          column="field_x_um")
    ax = get_ax(ax, figsize=(5.0, 4.6))
    rep = getattr(result, "is_repeater", np.zeros(len(field), bool))
    u, v = field["field_x_um"].to_numpy(float), field["field_y_um"].to_numpy(float)
    ax.scatter(u[~rep] / 1000.0, v[~rep] / 1000.0, **{"s": 2, "color": "#7f7f7f", "alpha": 0.5,
                                                        "label": "defects", **kwargs})
    if rep.any():
        ax.scatter(u[rep] / 1000.0, v[rep] / 1000.0, s=6, color="#d62728", label="repeater defects")
    table = getattr(result, "table", None)
    if table is not None and len(table):
        ax.scatter(table["field_x_um"].to_numpy(float) / 1000.0, table["field_y_um"].to_numpy(float) / 1000.0,
                   s=160, facecolors="none", edgecolors="#d62728", linewidths=1.2, label="repeaters")
    if field_size_um is not None:
        fw, fh = (float(s) / 1000.0 for s in field_size_um)
        ax.plot([0, fw, fw, 0, 0], [0, 0, fh, fh, 0], color="black", lw=0.8)
    ax.set_aspect("equal")
    ax.set_xlabel("field x [mm]")
    ax.set_ylabel("field y [mm]")
    legend(ax, fontsize=7, frameon=False, loc="upper right")
    set_title(ax, title, fontsize=10)
    return ax
