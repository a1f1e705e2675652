"""Exceptions and warnings raised by yieldkit.

Every error that yieldkit raises derives from :class:`YieldkitError`, so a caller can catch
all of them with one ``except``. Where the error is about a bad value it also derives from
:class:`ValueError`, so generic code that expects ``ValueError`` keeps working.

Statistical trouble (a singular Hessian, an estimate on a boundary) is a *warning*, a
subclass of :class:`YieldkitWarning`, never a sentinel value.
"""

from __future__ import annotations

import os
from typing import Any

__all__ = [
    "BoundaryWarning",
    "ConvergenceError",
    "ConvergenceWarning",
    "DataQualityWarning",
    "NotFittedError",
    "ParseError",
    "SchemaError",
    "YieldkitError",
    "YieldkitWarning",
    "check_choice",
]


#: the longest message an error shows [characters]; the rest is cut (a whole 10 MB line helps nobody)
MAX_MESSAGE = 1000
#: the longest excerpt of a record (a line, a statement) a message quotes [characters]
MAX_RECORD = 200


def shorten(text: Any, limit: int = MAX_MESSAGE) -> str:
    """``text`` cut to ``limit`` characters, saying how much was left out.

    >>> shorten("x" * 50, 30)
    'xxxxxx... (44 more characters)'
    """
    text = str(text)
    if len(text) <= limit:
        return text
    keep = max(limit - len(f"... ({len(text):,} more characters)"), 0)
    return text[:keep] + f"... ({len(text) - keep:,} more characters)"


class YieldkitError(Exception):
    """Base class of every exception raised by yieldkit.

    Its message is cut to :data:`MAX_MESSAGE` characters when shown.
    """

    def __str__(self) -> str:
        return shorten(super().__str__())


class SchemaError(YieldkitError, ValueError):
    """A table does not follow the canonical data model (missing column, bad value, bad type).

    Parameters
    ----------
    message : str
        What is wrong and what was expected.
    source : str, optional
        The file (or ``"<DataFrame>"``) the table came from.
    column : str, optional
        The offending column.
    row : int, optional
        The offending row: the line number for a text file (1-based, header = line 1), the
        0-based row position otherwise.
    """

    def __init__(
        self,
        message: str,
        *,
        source: str | os.PathLike[str] | None = None,
        column: str | None = None,
        row: int | None = None,
    ) -> None:
        self.source = None if source is None else str(source)
        self.column = column
        self.row = row
        prefix = f"{self.source}: " if self.source else ""
        super().__init__(prefix + message)


class ParseError(YieldkitError, ValueError):
    """A file could not be parsed.

    Carries where the problem is: the file, a 1-based ``line`` for text formats or a 0-based
    byte ``offset`` for binary ones, and the ``record`` (record type, statement or element)
    being read.
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | os.PathLike[str] | None = None,
        line: int | None = None,
        offset: int | None = None,
        record: str | None = None,
    ) -> None:
        self.path = None if path is None else str(path)
        self.line = line
        self.offset = offset
        self.record = None if record is None else shorten(record, MAX_RECORD)
        where = []
        if self.path:
            where.append(self.path)
        if line is not None:
            where.append(f"line {line}")
        if offset is not None:
            where.append(f"byte {offset}")
        if self.record:
            where.append(f"record {self.record}")
        prefix = (", ".join(where) + ": ") if where else ""
        super().__init__(prefix + message)


class NotFittedError(YieldkitError, ValueError, AttributeError):
    """A fitted-model method was called before ``fit``."""


class ConvergenceError(YieldkitError, RuntimeError):
    """An optimiser or root finder failed to converge and no usable estimate exists."""


class YieldkitWarning(UserWarning):
    """Base class of every warning issued by yieldkit."""


class ConvergenceWarning(YieldkitWarning):
    """An estimate may be unreliable (singular Hessian, optimiser stopped early)."""


class BoundaryWarning(YieldkitWarning):
    """An estimate lies on the boundary of its parameter space (e.g. cluster alpha = infinity)."""


class DataQualityWarning(YieldkitWarning):
    """Input data is usable but suspicious (defects off every die, salvaged records, ...)."""


def check_choice(value: Any, choices: Any, *, name: str, where: str) -> Any:
    """Return ``value`` if it is one of ``choices``, else raise ``ValueError`` listing them.

    >>> check_choice("count", ("count", "kill"), name="weight", where="pareto")
    'count'
    """
    choices = tuple(choices)
    if value not in choices:
        raise YieldkitValueError(
            f"The {name!r} argument of {where} must be one of {', '.join(map(repr, choices))}. "
            f"Got {value!r} instead."
        )
    return value


class YieldkitValueError(YieldkitError, ValueError):
    """An argument is out of its valid range or not one of the allowed choices."""


__all__.append("YieldkitValueError")


class YieldkitTypeError(YieldkitError, TypeError):
    """An argument has a type yieldkit cannot use (a number where a file is expected, ...)."""


__all__.append("YieldkitTypeError")


class InputNotFoundError(YieldkitError, FileNotFoundError):
    """An input path does not exist, or a directory holds no data files."""


__all__.append("InputNotFoundError")
