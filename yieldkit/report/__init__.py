"""Self-contained HTML yield reports (images embedded, nothing fetched from the network).

Reports render results; they never fit or test anything themselves: the analysis functions
compute the tables, :mod:`yieldkit.plotting` draws and embeds the figures, and Jinja2 templates (with
autoescaping, so every string from the data shows as text) lay them out.
"""

from .html import build_report

__all__ = ["build_report"]
