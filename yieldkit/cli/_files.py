"""What the command line learns from an input file beyond its table: its format and wafer layouts.

A KLARF, STDF (WCR) or wafer-map file knows its wafers' geometry (die pitch, wafer size, the
grid's place on the wafer); CSV and Parquet do not. The commands use the file's layout unless
``--layout`` is given.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from ..errors import YieldkitValueError

log = logging.getLogger("yieldkit.cli")

#: formats whose reader returns an object with geometry (``layouts`` or ``layout``)
_READERS = ("klarf", "stdf", "e142", "g85", "textmap", "tsk")


def file_format(path: str | Path) -> str | None:
    """The format of an input file (``"klarf"``, ``"stdf"``...), or None for a directory or a missing file."""
    from ..io.registry import sniff_format

    p = Path(path)
    return sniff_format(p) if p.is_file() else None


def read_source(path: str | Path, on_error: str = "raise") -> Any:
    """The reader's object of a file in a format with its own reader, else None (CSV, Parquet)."""
    from ..io.registry import read, reader_options

    fmt = file_format(path)
    if fmt not in _READERS:
        return None
    return read(Path(path), **reader_options(fmt, on_error))


def canonical_dies(data: Any) -> Any:
    """The die table of a reader's object when it is canonical already (it has ``passed``), else
    None: the caller then reads the file with :func:`yieldkit.read_dies`, which validates it."""
    dies = getattr(data, "dies", None)
    return dies if dies is not None and "passed" in dies.columns else None


def file_layouts(data: Any) -> dict[tuple[str, str], Any]:
    """``(lot_id, wafer_id) -> WaferLayout`` the file gives, its known geometries only.

    Layouts the reader inferred from the dies present (unit pitch) are left out: they say
    nothing the die table does not.
    """
    if data is None:
        return {}
    layouts = getattr(data, "layouts", None)
    if layouts is None:
        single = getattr(data, "layout", None)
        dies = getattr(data, "dies", None)
        if single is None or dies is None or not len(dies):
            return {}
        keys = dies[["lot_id", "wafer_id"]].drop_duplicates().astype(str).itertuples(index=False)
        layouts = {(str(lot), str(w)): single for lot, w in keys}
    return {(str(k[0]), str(k[1])): v for k, v in layouts.items() if v is not None and not v.inferred}


def _same_geometry(a: Any, b: Any) -> bool:
    import math

    import numpy as np

    return (math.isclose(a.diameter_mm, b.diameter_mm) and bool(np.allclose(a.die_pitch_um, b.die_pitch_um))
            and bool(np.allclose(a.origin_um, b.origin_um)) and math.isclose(a.edge_exclusion_mm, b.edge_exclusion_mm))


def _same_size(a: Any, b: Any) -> bool:
    import math

    import numpy as np

    return math.isclose(a.diameter_mm, b.diameter_mm) and bool(np.allclose(a.die_pitch_um, b.die_pitch_um))


def common_layout(layouts: dict[tuple[str, str], Any], *, loose: bool = False) -> Any:
    """The one layout of all wafers, or None when there is none or the wafers' geometries differ.

    Wafers of one file share their geometry (die pitch, wafer size, grid origin); their die
    sets (a KLARF sample test plan, the dies of a map) may differ: the common layout's die set
    is their union, or none when a wafer has none (every die on the wafer then counts). With
    ``loose``, wafers that share die pitch and wafer size but whose grids sit slightly
    differently on the wafer (a KLARF's per-wafer SampleCenterLocation) get the first wafer's
    grid.
    """
    import pandas as pd

    if not layouts:
        return None
    items = list(layouts.values())
    first = items[0]
    if not all(_same_geometry(first, lay) for lay in items[1:]):
        if not (loose and all(_same_size(first, lay) for lay in items[1:])):
            return None
        log.info("the wafers' die grids sit differently on the wafer; using the grid of the first wafer")
    if len(items) == 1 or any(lay.die_set is None for lay in items):
        return first if len(items) == 1 or first.die_set is None else _without_die_set(first)
    union = pd.concat([lay.die_set for lay in items], ignore_index=True).drop_duplicates()
    return first.with_die_set(union)


def _without_die_set(layout: Any) -> Any:
    from ..layout import WaferLayout

    return WaferLayout(diameter_mm=layout.diameter_mm, die_pitch_um=layout.die_pitch_um, origin_um=layout.origin_um,
                       edge_exclusion_mm=layout.edge_exclusion_mm)


def describe(layouts: dict[tuple[str, str], Any]) -> str:
    """``lot/wafer: pitch w x h um`` of each wafer, for messages."""
    return "; ".join(f"{lot}/{w}: die pitch {lay.die_pitch_um[0]:g} x {lay.die_pitch_um[1]:g} um, "
                     f"{lay.diameter_mm:g} mm" for (lot, w), lay in list(layouts.items())[:4]) + \
        ("; ..." if len(layouts) > 4 else "")


def layout_for(path: str | Path, data: Any, given: Any, wafer: tuple[str, str] | None = None) -> Any:
    """The layout a command uses: ``--layout`` when given, else the file's (of ``wafer``, or common to all).

    Returns None when neither says anything (the maps then draw die indices).
    """
    if given is not None:
        return given
    layouts = file_layouts(data)
    if wafer is not None and wafer in layouts:
        return layouts[wafer]
    lay = common_layout(layouts, loose=True)
    if lay is None and layouts:
        log.warning("%s: the wafers have different layouts (%s); drawing die indices. Give one with --layout "
                    "(yieldkit layout %s --wafer LOT/WAFER -o layout.json writes one)", path, describe(layouts),
                    Path(path).name)
    return lay


def parse_wafer(text: str, wafers: Any, source: str | Path) -> tuple[str, str]:
    """The ``(lot, wafer)`` of ``--wafer WAFER`` or ``LOT/WAFER`` among ``wafers`` (lot_id, wafer_id)."""
    lot_sel, _, wafer_sel = text.rpartition("/")
    m = wafers["wafer_id"].astype(str) == wafer_sel
    if lot_sel:
        m &= wafers["lot_id"].astype(str) == lot_sel
    sel = wafers[m.to_numpy()]
    if len(sel) == 0:
        raise YieldkitValueError(f"--wafer {text!r} matches no wafer of {source}")
    if len(sel) > 1:
        raise YieldkitValueError(f"--wafer {text!r} matches {len(sel)} wafers of {source}; give LOT/WAFER")
    lot, wafer = (str(v) for v in sel.iloc[0])
    return lot, wafer
