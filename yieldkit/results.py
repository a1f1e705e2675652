"""The result contract: a table, or a frozen result object that carries its table.

A function whose answer is a table returns a tidy :class:`pandas.DataFrame` and nothing else
(``DataFrame.attrs`` is never used to carry results). A function that also finds scalars beside
its table (an off-die count, a joint estimate, a test statistic, fitted models) returns a frozen
dataclass built on :class:`TableResult`: the table is ``.table``, every scalar is a typed field,
and the object shows itself as a one-line ``repr`` (and as its table in a notebook). A function
returns one type always; no flag switches it.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

__all__ = ["TableResult"]


class TableResult:
    """Base of the result objects that carry a table beside scalar results.

    Subclasses are ``@dataclass(frozen=True)`` with a ``table`` field and their scalars as
    typed fields; they give a short ``__repr__``.

    Attributes
    ----------
    table : DataFrame
        The tidy result table.
    """

    table: pd.DataFrame

    def to_frame(self) -> pd.DataFrame:
        """The result table (a copy)."""
        return self.table.copy()

    def _repr_html_(self) -> str:
        from html import escape

        body: Any = self.table._repr_html_()  # type: ignore[operator]
        return f"<p><code>{escape(repr(self))}</code></p>{body or ''}"
