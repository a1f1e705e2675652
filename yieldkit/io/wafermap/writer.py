"""Writing a die table as a SEMI E142 or G85 XML wafer map."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from ...errors import check_choice
from ...layout import WaferLayout
from ...schema import validate_dies
from .e142 import write_e142
from .g85 import write_g85

__all__ = ["write_map"]


def write_map(
    dies: pd.DataFrame,
    path: str | os.PathLike[str],
    format: str = "e142",
    *,
    layout: WaferLayout | None = None,
) -> Path:
    """Write a die table as a SEMI E142 or G85 XML wafer map (atomically).

    Parameters
    ----------
    dies : DataFrame
        Die table (one result per die; several wafers allowed: E142 writes one
        ``SubstrateMap`` per wafer, G85 a ``<Maps>`` root when there is more than one).
    path : path-like
        Output file.
    format : {"e142", "g85"}
        Map format.
    layout : WaferLayout, optional
        Gives the die size and wafer diameter written in the header.

    Returns
    -------
    Path
        The file written.

    Notes
    -----
    Hard bins become the bin codes (2-digit hexadecimal when all bins are below 255, else
    fixed-width decimal); a bin is declared ``Pass`` when all its dies passed. The die
    addresses are kept: the array's lower-left cell is named by a reference device
    ``LowerLeftDie`` whose coordinates are that cell's ``die_x``, ``die_y`` (E142
    ``ReferenceDevices``, G85 ``ReferenceDevice``), which :func:`read_map` applies.
    """
    check_choice(format, ("e142", "g85"), name="format", where="write_map")
    d = validate_dies(dies, source="<dies>", retests="order")
    if "test_seq" in d.columns:
        d = d.sort_values("test_seq", kind="stable").drop_duplicates(["lot_id", "wafer_id", "die_x", "die_y"],
                                                                     keep="last")
    if format == "e142":
        return write_e142(d, path, layout=layout)
    return write_g85(d, path, layout=layout)
