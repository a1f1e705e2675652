"""KLARF (KLA Results File) defect files, versions 1.1/1.2 and 1.8: read and written.

``statements`` splits the text into raw statements and lists (whole or chunk by chunk),
``parse12``/``parse18`` read the 1.1/1.2 and 1.8 syntaxes, ``reader`` builds the canonical
tables (stacking the wafers with ``stack``), ``writer`` writes them back, ``dataset``
streams a file to a Parquet dataset.
"""

import re

from ..registry import Format, head_text, register
from .dataset import iter_klarf_defects, klarf_to_dataset
from .reader import KlarfData, read_klarf
from .stack import concat_defects, narrow_frame
from .writer import write_klarf

__all__ = ["KlarfData", "concat_defects", "iter_klarf_defects", "klarf_to_dataset", "narrow_frame", "read_klarf", "sniff",
           "write_klarf"]


def sniff(head: bytes) -> bool:
    """Whether a file's first bytes open like KLARF (either syntax)."""
    low = head_text(head).lower()
    if low.startswith("<"):
        return False
    head_kw = low[:2000]
    return bool(head_kw.startswith("fileversion") or re.match(r"record\s+filerecord\b", head_kw)
                or "defectrecordspec" in low or re.search(r"^\s*fileversion\s+\d", head_kw, re.M))


register(Format("klarf", sniff, read_klarf, order=50, module=__name__))
