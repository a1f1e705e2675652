"""Readers and writers, one module per format.

``tabular`` (CSV, Parquet), ``klarf``, ``stdf``, ``maps`` (SEMI E142, G85, text maps);
``detect`` recognises a format from the content; ``atomic`` makes every write atomic.
"""

from .detect import read, sniff_format
from .tabular import read_defects, read_dies, read_wafers, write_csv, write_parquet

__all__ = ["read", "read_defects", "read_dies", "read_wafers", "sniff_format", "write_csv", "write_parquet"]
