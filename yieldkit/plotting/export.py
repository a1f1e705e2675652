"""Figure export: PNG data URIs, PDF pages and image files.

Reports and the command line hand what a plotter returned (an Axes, a Display, an artist or a
Figure) to these functions; they never handle matplotlib figures themselves. Files are written
atomically.
"""

from __future__ import annotations

import base64
import contextlib
import io
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from ..errors import YieldkitValueError
from ._mpl import get_ax, pyplot

__all__ = ["close", "figure_of", "figure_to_data_uri", "new_axes", "pdf_pages", "render_data_uri", "save_figure",
           "wafer_map_data_uris"]

_FORMATS = ("png", "svg", "pdf")


def figure_of(obj: Any) -> Any:
    """The matplotlib Figure behind a plotter's return value (Figure, Axes, Display or artist)."""
    from matplotlib.figure import Figure

    if isinstance(obj, Figure):
        return obj
    for attr in ("figure_", "figure"):
        fig = getattr(obj, attr, None)
        if fig is not None:
            for _ in range(8):  # a SubFigure's parent, up to the root Figure
                if isinstance(fig, Figure):
                    return fig
                fig = fig.figure
    axes = getattr(obj, "axes", None)
    if axes is not None and not isinstance(axes, list):
        return axes.figure
    raise YieldkitValueError(f"Cannot find the figure of a {type(obj).__name__}: pass an Axes, a Display or a Figure.")


def new_axes(figsize: tuple[float, float] = (6.0, 4.0)) -> Any:
    """The axes of a new figure of ``figsize`` [inch]."""
    return get_ax(None, figsize=figsize)


def close(obj: Any) -> None:
    """Close the figure of ``obj``."""
    pyplot().close(figure_of(obj))


def figure_to_data_uri(obj: Any, *, dpi: int = 80, pdf: Any = None, close: bool = True) -> str:
    """Render a figure to an embedded ``data:image/png;base64,...`` URI.

    ``obj`` is what a plotter returned (or a Figure). With ``pdf`` (from :func:`pdf_pages`) the
    figure is also added as a page. The figure is closed unless ``close=False``.
    """
    fig = figure_of(obj)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    if pdf is not None:
        pdf.savefig(fig, bbox_inches="tight")
    if close:
        pyplot().close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def render_data_uri(draw: Callable[[Any], Any], *, figsize: tuple[float, float], dpi: int = 80,
                    pdf: Any = None) -> str:
    """Call ``draw(ax)`` on a new figure of ``figsize`` [inch] and return it as a PNG data URI (closed)."""
    ax = new_axes(figsize)
    try:
        draw(ax)
        return figure_to_data_uri(ax, dpi=dpi, pdf=pdf, close=False)
    finally:
        pyplot().close(ax.figure)


def save_figure(obj: Any, path: str | os.PathLike[str], *, dpi: int = 120, format: str | None = None,
                close: bool = True) -> Path:
    """Write the figure of ``obj`` to ``path`` (PNG, SVG or PDF by ``format`` or the suffix), atomically.

    Raises
    ------
    YieldkitValueError
        When the format is not one of png, svg, pdf, or ``dpi`` is not > 0.
    """
    from ..io.atomic import atomic_path

    path = Path(path)
    fmt = (format or path.suffix.lstrip(".")).lower()
    if fmt not in _FORMATS:
        raise YieldkitValueError(f"An image file must end in .png, .svg or .pdf. Got {str(path)!r} instead.")
    if dpi <= 0:
        raise YieldkitValueError(f"The 'dpi' argument of save_figure must be > 0. Got {dpi!r} instead.")
    fig = figure_of(obj)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with atomic_path(path, suffix="." + fmt) as tmp:
            fig.savefig(tmp, format=fmt, dpi=dpi, bbox_inches="tight")
    finally:
        if close:
            pyplot().close(fig)
    return path


@contextlib.contextmanager
def pdf_pages(path: str | os.PathLike[str]) -> Iterator[Any]:
    """A multi-page PDF written atomically to ``path``; pass it as ``pdf=`` to the functions here."""
    from matplotlib.backends.backend_pdf import PdfPages

    from ..io.atomic import atomic_path

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, PdfPages(tmp) as pages:
        yield pages


def wafer_map_data_uris(wafers: Iterable[tuple[Any, str]], *, layout: Any = None, bin_names: Any = None,
                        bin_labels: Any = None, dpi: int = 80,
                        figsize: tuple[float, float] = (3.0, 3.0), colours: Any = None) -> Iterator[str]:
    """Small bin maps without legend or ticks, one PNG data URI per ``(dies, title)``.

    ``colours`` (hard bin -> colour) colours every map alike, for one legend beside them.

    One figure is drawn on again and again (fast for a gallery of hundreds of wafers) and
    closed at the end.
    """
    from .wafermap import WaferMapDisplay

    ax = new_axes(figsize)
    try:
        for dies, title in wafers:
            ax.clear()
            WaferMapDisplay.from_dies(dies, layout=layout, bin_names=bin_names, bin_labels=bin_labels,
                                      title=title, ax=ax, legend=False, colours=colours)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_xlabel("")
            ax.set_ylabel("")
            yield figure_to_data_uri(ax, dpi=dpi, close=False)
    finally:
        pyplot().close(ax.figure)
