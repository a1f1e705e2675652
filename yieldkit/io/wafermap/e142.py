"""SEMI E142 substrate maps (``<MapData>`` XML, any namespace version): read and write.

Reads BinCodeMap overlays as a 2-D array (``<BinCode>`` rows, first row on top) or as
coordinates (``<BinCode X=".." Y="..">``), with HexaDecimal, Decimal, ASCII or Integer2
bin types, the NullBin, several ``<SubstrateMap>`` per file, the device size from the
``<Layouts>`` tree and the wafer size from the top-level layout. A ``BinCount``, and a
Substrate's ``GoodDevices``/``BadDevices``, are checked against the dies of the map.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape, quoteattr

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
    line_of,
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

__all__ = ["read_e142", "sniff", "write_e142"]

NS = "urn:semi-org:xsd.E142-1.V1005.SubstrateMap"
_MM = {"mm": 1000.0, "um": 1.0, "micron": 1.0, "nm": 1e-3, "cm": 1e4, "mil": 25.4, "in": 25400.0}


def _size_um(el: Any, default_units: str, p: Path, text: str) -> tuple[float, float] | None:
    if el is None:
        return None
    a = attrs(el)
    units = (a.get("Units") or default_units or "mm").lower()
    tag = local(el.tag)
    pattern = rf'<(\w+:)?{tag}\b[^>]*\bX="{re.escape(a.get("X", ""))}"'
    if units not in _MM:
        raise ParseError(f"unknown {tag} Units {units!r} (expected one of {', '.join(_MM)})", path=p,
                         line=line_of(text, pattern), record=tag)
    return die_size(p, a.get("X"), a.get("Y"), names=(f"{tag} X", f"{tag} Y"), text=text, patterns=(pattern, pattern),
                    unit=_MM[units])


def _layouts(root: Any, p: Path, text: str) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    box = child(root, "Layouts")
    for lay in children(box, "Layout") if box is not None else []:
        a = attrs(lay)
        units = a.get("DefaultUnits", "mm")
        out[a.get("LayoutId", "")] = {
            "top": a.get("TopLevel", "").lower() == "true",
            "device_um": _size_um(child(lay, "DeviceSize"), units, p, text),
            "lower_left": attrs(child(lay, "LowerLeft")) or None,
            "children": [attrs(c).get("LayoutId", "") for c in children(child(lay, "ChildLayouts"), "ChildLayout")]
            if child(lay, "ChildLayouts") is not None else [],
            "product": (child(lay, "ProductId").text or "").strip() if child(lay, "ProductId") is not None else None,
        }
    return out


def read_e142(path: str | os.PathLike[str]) -> MapData:
    """Read a SEMI E142 XML substrate map; see :func:`yieldkit.read_map`."""
    p = Path(path)
    data = read_bytes(p)
    root = parse_xml(p, data)
    if local(root.tag) != "MapData":
        raise ParseError(f"not a SEMI E142 map: the root element is <{local(root.tag)}>, expected <MapData>",
                         path=p, record=local(root.tag))
    layouts = _layouts(root, p, xml_text(data))
    lots: dict[str, str] = {}
    declared: dict[str, dict[str, tuple[str, str]]] = {}
    subs = child(root, "Substrates")
    for s in children(subs, "Substrate") if subs is not None else []:
        lot = child(s, "LotId")
        sid = attrs(s).get("SubstrateId", "")
        lots[sid] = (lot.text or "").strip() if lot is not None else ""
        # the counts a Substrate states (E142 GoodDevices / BadDevices) are checked against the map
        declared[sid] = {what: ((el.text or "").strip(), name) for what, name in (("passed", "GoodDevices"),
                         ("failed", "BadDevices")) if (el := child(s, name)) is not None and (el.text or "").strip()}
    maps_el = child(root, "SubstrateMaps")
    maps = children(maps_el, "SubstrateMap") if maps_el is not None else []
    if not maps:
        raise ParseError("the E142 file holds no <SubstrateMap>", path=p, record="SubstrateMaps")
    parts = []
    for sm in maps:
        a = attrs(sm)
        sid = a.get("SubstrateId", "")
        spec = a.get("LayoutSpecifier", "")
        chain = [s for s in spec.split("/") if s]
        device = layouts.get(chain[-1]) if chain else None
        top = layouts.get(chain[0]) if chain else next((v for v in layouts.values() if v["top"]), None)
        pitch = device["device_um"] if device else None
        diameter = None
        if top and top["device_um"]:
            diameter = max(top["device_um"]) / 1000.0
        for ov in children(sm, "Overlay"):
            bcm = child(ov, "BinCodeMap")
            if bcm is None:
                continue
            b = attrs(bcm)
            bin_type = b.get("BinType", "Decimal")
            null = b.get("NullBin")
            defs = []
            good: set[int] = set()
            seen: set[str] = set()
            bd_box = child(bcm, "BinDefinitions")
            for bd in children(bd_box, "BinDefinition") if bd_box is not None else []:
                ba = attrs(bd)
                code = ba.get("BinCode", "")
                if code in seen:
                    log.info("%s: BinCode %r is defined more than once; the first definition is used", p, code)
                    continue
                seen.add(code)
                hb = int(decode_codes(np.array([code]), bin_type, p, "BinDefinition")[0])
                ok = ba.get("BinQuality", "").lower() == "pass"
                if ok:
                    good.add(hb)
                cnt = ba.get("BinCount")
                defs.append({"bin_code": code, "hbin": hb, "description": ba.get("BinDescription"), "passed": ok,
                             "declared_count": int(cnt) if cnt and cnt.strip().lstrip("+-").isdigit() else None})
            rows = children(bcm, "BinCode")
            width = {"hexadecimal": 2, "ascii": 1, "integer2": 4}.get(bin_type.lower(), len(null) if null else 0)
            if rows and all("X" in attrs(r) and "Y" in attrs(r) for r in rows):
                ax = a.get("AxisDirection", "UpRight")
                sx = -1 if ax.lower().endswith("left") else 1
                sy = -1 if ax.lower().startswith("down") else 1
                try:
                    xs = np.array([int(attrs(r)["X"]) for r in rows]) * sx
                    ys = np.array([int(attrs(r)["Y"]) for r in rows]) * sy
                except ValueError:
                    raise ParseError("BinCode X/Y must be integers", path=p, record="BinCode") from None
                codes = np.array([(r.text or "").strip() for r in rows], dtype=object)
                keep = codes != null if null else np.ones(len(codes), bool)
                xs, ys, cells_code = xs[keep], ys[keep], codes[keep]
                ix = xs - (xs.min() if len(xs) else 0)
                iy = ys - (ys.min() if len(ys) else 0)
                form = "coordinates"
            else:
                try:
                    cells = [split_row(r.text or "", width) for r in rows]
                except ValueError as exc:
                    raise ParseError(f"BinCode row: {exc}", path=p, record="BinCode") from None
                ncol = {len(c) for c in cells}
                if len(ncol) > 1:
                    k = next(i for i, c in enumerate(cells) if len(c) != len(cells[0]))
                    raise ParseError(f"BinCode row {k + 1} has {len(cells[k])} cells, row 1 has {len(cells[0])}",
                                     path=p, record="BinCode")
                grid = np.array(cells, dtype=object) if cells else np.zeros((0, 0), object)
                ix, iy, cells_code = grid_to_dies(grid, null)
                form = "2DArray"
            hbin = decode_codes(cells_code, bin_type, p, "BinCode")
            ix, iy, cells_code, hbin, untested = drop_untested(ix, iy, cells_code, hbin,
                                                               np.isin(hbin, list(untested_bins(defs))))
            ix, iy, angle = orient(ix, iy, a.get("Orientation", "0"), p)
            refs = []
            named = []
            rd_box = child(ov, "ReferenceDevices")
            for rd in children(rd_box, "ReferenceDevice") if rd_box is not None else []:
                c = child(rd, "Coordinates")
                if c is not None:
                    refs.append((attrs(c).get("X"), attrs(c).get("Y")))
                    named.append((attrs(rd).get("Name"), attrs(c).get("X"), attrs(c).get("Y")))
            if form == "2DArray":
                ix, iy, _ = shift_to_address(ix, iy, named, p)
            meta = {**{f"SubstrateMap.{k}": v for k, v in a.items()}, "MapName": attrs(ov).get("MapName"),
                    "MapVersion": attrs(ov).get("MapVersion"), "BinType": bin_type, "NullBin": null,
                    "ReferenceDevices": refs, "untested": untested, "LowerLeft": device["lower_left"] if device else None, "form": form, "notch_deg": angle,
                    "null_count": int(sum((np.asarray(split_row(r.text or "", width)) == null).sum() for r in rows))
                    if form == "2DArray" and null else None}
            parts.append({
                "lot_id": lots.get(sid, ""), "wafer_id": sid, "die_x": ix, "die_y": iy, "code": cells_code, "hbin": hbin,
                "good": good if defs else None, "bins": defs, "pitch_um": pitch, "diameter_mm": diameter,
                "product": device["product"] if device else None, "meta": meta, "null": {null},
                "declared": declared.get(sid, {}),
            })
            break
        else:
            raise ParseError(f"SubstrateMap {sid!r} has no BinCodeMap overlay", path=p, record="SubstrateMap")
    return build_map(parts, fmt="e142", path=p)


def write_e142(dies: pd.DataFrame, path: str | os.PathLike[str], *, layout: WaferLayout | None = None) -> Path:
    """Write a validated die table as E142 (one SubstrateMap per wafer); see :func:`yieldkit.write_map`."""
    bin_type, width, null = bin_format(dies)
    grids = wafer_grids(dies)
    dev = layout.die_pitch_um if layout is not None and not layout.inferred else None
    diam = layout.diameter_mm if layout is not None and not layout.inferred else None
    out = ['<?xml version="1.0" encoding="UTF-8"?>', f'<MapData xmlns="{NS}">', "  <Layouts>"]
    out.append('    <Layout LayoutId="Wafer" TopLevel="true" DefaultUnits="mm">')
    out.append('      <Dimension X="1" Y="1"/>')
    if diam:
        out.append(f'      <DeviceSize X="{diam!r}" Y="{diam!r}" Units="mm"/>')
    out.append('      <ChildLayouts><ChildLayout LayoutId="Device"/></ChildLayouts>')
    out.append("    </Layout>")
    ncol = max(g["grid"].shape[1] for g in grids)
    nrow = max(g["grid"].shape[0] for g in grids)
    out.append('    <Layout LayoutId="Device" TopLevel="false" DefaultUnits="mm">')
    out.append(f'      <Dimension X="{ncol}" Y="{nrow}"/>')
    if dev:
        out.append(f'      <DeviceSize X="{dev[0] / 1000.0!r}" Y="{dev[1] / 1000.0!r}" Units="mm"/>')
    out.append("    </Layout>")
    out.append("  </Layouts>")
    out.append("  <Substrates>")
    for g in grids:
        out.append(f'    <Substrate SubstrateType="Wafer" SubstrateId={quoteattr(g["wafer_id"])}>'
                   f'<LotId>{escape(g["lot_id"])}</LotId></Substrate>')
    out.append("  </Substrates>")
    out.append("  <SubstrateMaps>")
    for g in grids:
        out.append(f'    <SubstrateMap SubstrateType="Wafer" SubstrateId={quoteattr(g["wafer_id"])} '
                   f'LayoutSpecifier="Wafer/Device" SubstrateSide="TopSide" Orientation="{WAFER_FRAME.mark_deg}" '
                   'OriginLocation="LowerLeft" AxisDirection="UpRight">')
        out.append('      <Overlay MapName="BinCodeMap" MapVersion="1">')
        out.append(f'        <ReferenceDevices><ReferenceDevice Name="{LOWER_LEFT_DIE}"><Coordinates X="{g["x0"]}" '
                   f'Y="{g["y0"]}"/></ReferenceDevice></ReferenceDevices>')
        out.append(f'        <BinCodeMap BinType="{bin_type}" NullBin="{null}">')
        out.append("          <BinDefinitions>")
        for b, cnt in sorted(g["counts"].items()):
            code = encode(np.array([[b]]), bin_type, width, null)[0]
            q = "Pass" if b in g["passing"] else "Fail"
            out.append(f'            <BinDefinition BinCode="{code}" BinCount="{cnt}" BinQuality="{q}" '
                       f'BinDescription="hard bin {b}"/>')
        out.append("          </BinDefinitions>")
        out += [f"          <BinCode>{row}</BinCode>" for row in encode(g["grid"], bin_type, width, null)]
        out.append("        </BinCodeMap>")
        out.append("      </Overlay>")
        out.append("    </SubstrateMap>")
    out.append("  </SubstrateMaps>")
    out.append("</MapData>")
    with atomic_write(path) as fh:
        fh.write("\n".join(out) + "\n")
    return Path(path)


def _e142_words(head: bytes) -> bool:
    low = head_text(head).lower()
    return "mapdata" in low or "e142" in low or "substratemap" in low


def sniff(head: bytes) -> bool:
    """Whether a file opens like a SEMI E142 map: XML with a ``MapData`` root (or, when the root
    says neither E142 nor G85, E142 words in the text)."""
    root = xml_root(head)
    if root is None:
        return False
    return root == "MapData" or (root not in ("Map", "Maps") and _e142_words(head))


register(Format("e142", sniff, read_e142, order=30, wafer_map=True))
