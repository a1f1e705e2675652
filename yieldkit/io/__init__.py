"""Readers and writers, one module or package per format.

``tabular`` (CSV, Parquet), ``klarf``, ``stdf``, ``wafermap`` (SEMI E142, G85, text maps, TSK);
each format registers itself with ``registry``, which recognises a format from the content and
dispatches :func:`read`, :func:`read_dies`, :func:`read_defects` and :func:`read_wafers`;
``atomic`` makes every write atomic.
"""

from . import klarf, stdf, wafermap  # noqa: F401  (each format registers itself on import)
from .registry import read, read_defects, read_dies, read_wafers, sniff_format
from .tabular import write_csv, write_parquet

__all__ = ["read", "read_defects", "read_dies", "read_wafers", "sniff_format", "write_csv", "write_parquet"]
