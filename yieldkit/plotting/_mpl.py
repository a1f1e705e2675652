"""Lazy matplotlib access shared by the plotters, and text that is drawn as given.

Data strings (lot and wafer ids, bin names, defect classes...) may hold ``$``; matplotlib would
parse ``$...$`` as mathtext and fail at draw time. Every text a plotter takes from the data or
from its caller is drawn with ``parse_math=False`` through the helpers here.
"""

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


def set_title(ax: Any, title: str | None, fontsize: Any = None) -> None:
    """Set ``title`` (when given) as plain text: a ``$`` in it is a dollar sign."""
    if title:
        kw = {} if fontsize is None else {"fontsize": fontsize}
        ax.set_title(str(title), parse_math=False, **kw)


def legend(ax: Any, **kwargs: Any) -> Any:
    """``ax.legend(**kwargs)`` with every label (and the title) drawn as plain text."""
    leg = ax.legend(**kwargs)
    if leg is not None:
        for t in [*leg.get_texts(), leg.get_title()]:
            t.set_parse_math(False)
    return leg

