"""STDF V4 (Standard Test Data Format) reading and writing.

:func:`read_stdf` turns a wafer-sort or final-test STDF file into the canonical die table,
a wafer table, bin summaries, the wafer layout from the WCR and, on request, a long table of
parametric results. :func:`write_stdf` writes a die table (and results) back as STDF.

Modules: :mod:`.records` (record catalogue, single-record codec), :mod:`.walk` (loading and
the vectorised record walk), :mod:`.reader`, :mod:`.results` (test records), :mod:`.writer`.
"""

from .reader import StdfFile, read_stdf
from .writer import write_stdf

__all__ = ["StdfFile", "read_stdf", "write_stdf"]
