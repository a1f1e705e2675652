"""STDF V4 (Standard Test Data Format) reading and writing.

:func:`read_stdf` turns a wafer-sort or final-test STDF file into the canonical die table,
a wafer table, bin summaries, the wafer layout from the WCR and, on request, a long table of
parametric results. :func:`write_stdf` writes a die table (and results) back as STDF.

Modules: :mod:`.records` (record catalogue, single-record codec), :mod:`.walk` (loading and
the vectorised record walk), :mod:`.reader`, :mod:`.results` (test records), :mod:`.writer`.
"""

from ..registry import Format, register
from .reader import StdfFile, read_stdf
from .writer import write_stdf

__all__ = ["StdfFile", "read_stdf", "sniff", "write_stdf"]


def sniff(head: bytes) -> bool:
    """Whether a file opens with an STDF V4 FAR record (either byte order)."""
    # FAR: REC_LEN=2, REC_TYP=0, REC_SUB=10, CPU_TYPE, STDF_VER=4
    b = head
    return len(b) >= 6 and b[2] == 0 and b[3] == 10 and b[5] == 4 and b[:2] in (b"\x02\x00", b"\x00\x02")


register(Format("stdf", sniff, read_stdf, order=10, module=__name__))
