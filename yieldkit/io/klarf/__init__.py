"""KLARF (KLA Results File) defect files, versions 1.1/1.2 and 1.8: read and written.

``statements`` splits the text into raw statements and lists, ``parse18`` reads the 1.8
record syntax, ``reader`` builds the canonical tables, ``writer`` writes them back.
"""

from .reader import KlarfData, read_klarf
from .writer import write_klarf

__all__ = ["KlarfData", "read_klarf", "write_klarf"]
