"""SEMI G85 XML wafer maps (``<Map>`` or ``<Maps>`` root, with or without namespace): read and write."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

import numpy as np
import pandas as pd

from ...errors import ParseError
from ...frame import WAFER_FRAME
from ...layout import WaferLayout
from ..atomic import atomic_write
from ..registry import Format, head_text, register
from .common import (
    LOWER_LEFT_DIE,
    MapData,
    attrs,
    bin_format,
    build_map,
    child,
    children,
    decode_codes,
    die_size,
    drop_untested,
    encode,
    grid_to_dies,
    local,
    orient,
    parse_xml,
    read_bytes,
    shift_to_address,
    split_row,
    untested_bins,
    wafer_grids,
    xml_root,
    xml_text,
)

log = logging.getLogger(__name__)

__all__ = ["read_g85", "sniff", "write_g85"]

NS = "http://www.semi.org"


def _one_map(m: Any, p: Path, k: int, text: str) -> dict[str, Any]:
    ma = attrs(m)
    dev = child(m, "Device")
    if dev is None:
        raise ParseError("a <Map> without <Device>", path=p, record="Map")
    a = attrs(dev)
    bin_type = a.get("BinType", "Decimal")
    null = a.get("NullBin")
    defs = []
    good: set[int] = set()
    for b in children(dev, "Bin"):
        ba = attrs(b)
        code = ba.get("BinCode", "")
        hb = int(decode_codes(np.array([code]), bin_type, p, "Bin")[0])
        ok = ba.get("BinQuality", "").lower() == "pass"
        if ok:
            good.add(hb)
        cnt = ba.get("BinCount", "")
        defs.append({"bin_code": code, "hbin": hb, "description": ba.get("BinDescription"), "passed": ok,
                     "declared_count": int(cnt) if cnt.strip().isdigit() else None})
    data = child(dev, "Data")
    rows = children(data, "Row") if data is not None else []
    width = {"hexadecimal": 2, "ascii": 1, "integer2": 4}.get(bin_type.lower(), len(null) if null else 0)
    try:
        cells = [split_row(r.text or "", width) for r in rows]
    except ValueError as exc:
        raise ParseError(f"Row: {exc}", path=p, record="Row") from None
    if cells and len({len(c) for c in cells}) > 1:
        j = next(i for i, c in enumerate(cells) if len(c) != len(cells[0]))
        raise ParseError(f"Row {j + 1} has {len(cells[j])} cells, row 1 has {len(cells[0])}", path=p, record="Row")
    for name, n in (("Rows", len(cells)), ("Columns", len(cells[0]) if cells else 0)):
        if a.get(name, "").isdigit() and int(a[name]) != n:
            raise ParseError(f"the map declares {name}={a[name]} but holds {n}", path=p, record="Device")
    grid = np.array(cells, dtype=object) if cells else np.zeros((0, 0), object)
    ix, iy, cells_code = grid_to_dies(grid, null)
    hbin = decode_codes(cells_code, bin_type, p, "Row")
    ix, iy, cells_code, hbin, untested = drop_untested(ix, iy, cells_code, hbin, np.isin(hbin, list(untested_bins(defs))))
    ix, iy, angle = orient(ix, iy, a.get("Orientation", "0"), p)
    refs = [(attrs(r).get("Name"), attrs(r).get("ReferenceDeviceX"), attrs(r).get("ReferenceDeviceY"))
            for r in children(dev, "ReferenceDevice")]
    ix, iy, _ = shift_to_address(ix, iy, refs, p)
    pitch = die_size(p, a.get("DeviceSizeX"), a.get("DeviceSizeY"), names=("DeviceSizeX", "DeviceSizeY"), text=text,
                     patterns=(r'\bDeviceSizeX="', r'\bDeviceSizeY="'))
    if pitch:
        log.info("%s: G85 DeviceSizeX/Y taken in um", p)
    try:
        diameter = float(a["WaferSize"]) if a.get("WaferSize") else None
    except ValueError:
        diameter = None
    meta = {**{f"Map.{k2}": v for k2, v in ma.items()}, **{f"Device.{k2}": v for k2, v in a.items()},
            "BinType": bin_type, "notch_deg": angle, "untested": untested, "null_count": int((grid == null).sum()) if null and grid.size else 0}
    # no WaferId: the slot (see common.fill_identifiers), else the map's position in the file
    wafer = ma.get("WaferId") or a.get("WaferId") or ("" if k == 0 or ma.get("Slot") or a.get("Slot") else str(k + 1))
    return {"lot_id": a.get("LotId") or ma.get("LotId") or "", "wafer_id": wafer, "die_x": ix, "die_y": iy,
            "code": cells_code, "hbin": hbin, "good": good if defs else None, "bins": defs, "pitch_um": pitch,
            "diameter_mm": diameter, "product": a.get("ProductId"), "meta": meta, "null": {null}}


def read_g85(path: str | os.PathLike[str]) -> MapData:
    """Read a SEMI G85 XML map; see :func:`yieldkit.read_map`."""
    p = Path(path)
    data = read_bytes(p)
    root = parse_xml(p, data)
    tag = local(root.tag)
    if tag == "Map":
        maps = [root]
    elif tag == "Maps":
        maps = children(root, "Map")
    else:
        raise ParseError(f"not a SEMI G85 map: the root element is <{tag}>, expected <Map> or <Maps>", path=p,
                         record=tag)
    if not maps:
        raise ParseError("the G85 file holds no <Map>", path=p, record="Maps")
    return build_map([_one_map(m, p, k, xml_text(data)) for k, m in enumerate(maps)], fmt="g85", path=p)


def write_g85(dies: pd.DataFrame, path: str | os.PathLike[str], *, layout: WaferLayout | None = None) -> Path:
    """Write a validated die table as G85 (``<Maps>`` root for several wafers); see :func:`yieldkit.write_map`."""
    bin_type, width, null = bin_format(dies)
    grids = wafer_grids(dies)
    known = layout is not None and not layout.inferred
    out = ['<?xml version="1.0" encoding="UTF-8"?>']
    multi = len(grids) > 1
    if multi:
        out.append(f'<Maps xmlns="{NS}">')
    for g in grids:
        nrow, ncol = g["grid"].shape
        ns = "" if multi else f' xmlns="{NS}"'
        out.append(f'<Map{ns} WaferId={quoteattr(g["wafer_id"])} FormatRevision="SEMI G85-1101">')
        extra = ""
        if known:
            assert layout is not None
            extra = (f' DeviceSizeX="{layout.die_pitch_um[0]!r}" DeviceSizeY="{layout.die_pitch_um[1]!r}"'
                     f' WaferSize="{layout.diameter_mm!r}"')
        product = g.get("product")
        prod = f" ProductId={quoteattr(str(product))}" if product is not None and not pd.isna(product) else ""
        out.append(f'  <Device BinType="{bin_type}" LotId={quoteattr(g["lot_id"])} NullBin="{null}" Rows="{nrow}" '
                   f'Columns="{ncol}" MapType="Array" OriginLocation="0" Orientation="{WAFER_FRAME.mark_deg}"{prod}{extra}>')
        out.append(f'    <ReferenceDevice Name="{LOWER_LEFT_DIE}" ReferenceDeviceX="{g["x0"]}" '
                   f'ReferenceDeviceY="{g["y0"]}"/>')
        for b, cnt in sorted(g["counts"].items()):
            code = encode(np.array([[b]]), bin_type, width, null)[0]
            q = "Pass" if b in g["passing"] else "Fail"
            out.append(f'    <Bin BinCode="{code}" BinQuality="{q}" BinDescription="hard bin {b}" BinCount="{cnt}"/>')
        out.append('    <Data MapName="yieldkit" Version="1">')
        out += [f"      <Row><![CDATA[{row}]]></Row>" for row in encode(g["grid"], bin_type, width, null)]
        out.append("    </Data>")
        out.append("  </Device>")
        out.append("</Map>")
    if multi:
        out.append("</Maps>")
    with atomic_write(path) as fh:
        fh.write("\n".join(out) + "\n")
    return Path(path)


def sniff(head: bytes) -> bool:
    """Whether a file opens like a SEMI G85 map: XML with a ``Map``/``Maps`` root (or, when the root
    says neither E142 nor G85 and no E142 words appear, ``<map``/G85 in the text)."""
    root = xml_root(head)
    if root is None:
        return False
    if root in ("Map", "Maps"):
        return True
    low = head_text(head).lower()
    if root == "MapData" or "mapdata" in low or "e142" in low or "substratemap" in low:
        return False
    return "<map" in low or "g85" in low


register(Format("g85", sniff, read_g85, order=40, wafer_map=True))
