"""TSK (Tokyo Seimitsu / Accretech) binary probe maps.

A 236-byte big-endian header (device, wafer size in 0.1 inch, index size in 0.01 um, flat
direction, map version, grid size, wafer and lot ids, tested/pass/fail totals) is followed by
one 6-byte record per grid cell, x varying fastest, first row on top. Each record is three
big-endian 16-bit words: bits 15-14 of the first give the test result (0 not tested, 1 pass,
2/3 fail) and bits 8-0 the x coordinate; bits 15-14 of the second the die property (0 skip,
1 probing die, 2 marking die) and bits 8-0 the y coordinate (the record's die address, which
is kept: ``die_x`` is the x address, ``die_y`` counts rows up from the grid's bottom row); bits 5-0 of the third the
category, reported as hard bin ``category + 1`` (the BIN numbering of TSK's text export).
Probing dies with a test result are the die table (a probing die not tested, a skip or a
marking die is an untested site); the header totals are kept in the metadata and checked.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from ...errors import ParseError
from ..registry import Format, register
from .common import MapData, build_map, orient

log = logging.getLogger(__name__)

__all__ = ["is_tsk", "read_tsk", "sniff"]

HEADER = 236


def _u(b: bytes, off: int, n: int) -> int:
    return int.from_bytes(b[off : off + n], "big")


def _s(b: bytes, off: int, n: int) -> str:
    return b[off : off + n].decode("latin-1").strip(" \x00")


def is_tsk(head: bytes, size: int) -> bool:
    """Whether a file's first bytes and size look like a TSK binary map."""
    if len(head) < HEADER or size < HEADER:
        return False
    nx, ny = _u(head, 52, 2), _u(head, 54, 2)
    if not (0 < nx <= 4096 and 0 < ny <= 4096) or head[51] > 10:
        return False
    body = size - HEADER - nx * ny * 6
    printable = all(32 <= c < 127 or c == 0 for c in head[0:36] + head[60:81] + head[82:100])
    return 0 <= body <= 1 << 20 and printable


def read_tsk(path: str | os.PathLike[str]) -> MapData:
    """Read a TSK binary probe map; see :func:`yieldkit.read_map`."""
    p = Path(path)
    b = p.read_bytes()
    if len(b) < HEADER:
        raise ParseError(f"a TSK map header is {HEADER} bytes; the file has {len(b)} (truncated?)", path=p,
                         offset=len(b), record="header")
    nx, ny = _u(b, 52, 2), _u(b, 54, 2)
    need = HEADER + nx * ny * 6
    if nx == 0 or ny == 0 or len(b) < need:
        raise ParseError(f"the header announces a {nx} x {ny} grid ({need} bytes) but the file has {len(b)} bytes "
                         "(truncated?)", path=p, offset=min(len(b), need), record="die records")
    words = np.frombuffer(b, dtype=">u2", count=nx * ny * 3, offset=HEADER).reshape(-1, 3).astype(np.int64)
    result = words[:, 0] >> 14
    prop = words[:, 1] >> 14
    cat = words[:, 2] & 0x3F
    k = np.flatnonzero((prop == 1) & (result > 0))
    untested = {"skip": int((prop == 0).sum()), "marking": int((prop == 2).sum()),
                "not tested": int(((prop == 1) & (result == 0)).sum())}
    # the die address each record carries (x to the right, y downwards from the top row of the
    # grid); y is counted from the grid's bottom row in the wafer frame
    col = words[k, 0] & 0x1FF
    row = words[k, 1] & 0x1FF
    ix, iy = col, (ny - 1 - row)
    flat = _u(b, 48, 2)
    # flat direction as TSK gives it (0 top, 90 right, 180 bottom, 270 left, as drawn)
    ix, iy, angle = orient(ix, iy, {0: 180, 90: 270, 180: 0, 270: 90}.get(flat, 0), p)
    meta = {
        "device": _s(b, 20, 16), "wafer_size_0p1in": _u(b, 36, 2), "index_um": (_u(b, 40, 4) / 100.0,
                                                                                _u(b, 44, 4) / 100.0),
        "flat_deg": flat, "map_version": b[51], "grid": (nx, ny), "x_dir": b[104], "y_dir": b[105],
        "total_tested": _u(b, 210, 2), "total_pass": _u(b, 212, 2), "total_fail": _u(b, 214, 2),
        "notch_deg": angle, "untested": {c: n for c, n in untested.items() if n},
    }
    hbin = cat[k] + 1
    part = {
        "lot_id": _s(b, 82, 18), "wafer_id": _s(b, 60, 21), "die_x": ix, "die_y": iy,
        "code": cat[k].astype(str).astype(object), "hbin": hbin, "good": None, "bins": [],
        "pitch_um": meta["index_um"], "diameter_mm": _u(b, 36, 2) * 2.54 if _u(b, 36, 2) else None,
        "product": meta["device"], "meta": meta,
        "declared": {"tested": (str(meta["total_tested"]), "total tested dice"),
                     "passed": (str(meta["total_pass"]), "total pass dice"),
                     "failed": (str(meta["total_fail"]), "total fail dice")},
    }
    passed_bins = set(np.unique(hbin[result[k] == 1]).tolist())
    failed_bins = set(np.unique(hbin[result[k] >= 2]).tolist())
    if passed_bins & failed_bins:
        log.warning("%s: some categories hold both passing and failing dies; 'passed' follows the category", p)
    part["good"] = passed_bins - failed_bins or passed_bins
    return build_map([part], fmt="tsk", path=p)


def sniff(head: bytes, size: int) -> bool:
    """Whether a file (its first bytes, its size) is a TSK binary map: binary content and a TSK header."""
    return b"\x00" in head[:256] and is_tsk(head, size)


register(Format("tsk", sniff, read_tsk, order=20, sized=True, wafer_map=True))
