"""Lazy matplotlib access shared by the plotters."""

from __future__ import annotations

from typing import Any


def pyplot() -> Any:
    """Import and return ``matplotlib.pyplot`` (the Agg backend when no display is set)."""
    import os

    import matplotlib

    if not os.environ.get("DISPLAY") and not os.environ.get("MPLBACKEND"):
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def get_ax(ax: Any = None, figsize: tuple[float, float] = (5.0, 5.0)) -> Any:
    """``ax`` itself, or the axes of a new figure."""
    if ax is not None:
        return ax
    plt = pyplot()
    fig, ax = plt.subplots(figsize=figsize)
    return ax
