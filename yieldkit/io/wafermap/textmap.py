"""Text wafer maps: SINF ``RowData``, "mapEx" character grids and ``[MAP]:`` coordinate lists.

* **SINF** (``DEVICE:``/``LOT:``/``WAFER:``/``FNLOC:``/``ROWCT:``/``COLCT:``/``BCEQU:``/
  ``XDIES:``/``YDIES:`` header, then ``RowData:`` lines of bin codes; ``__``/``___`` = no die).
  Bins are hexadecimal when the codes are 2 characters wide (or hold A-F), decimal otherwise;
  ``BCEQU`` lists the good bins.
  ``@@`` marks an uninspected die, ``FD``/``FE`` an edge die and ``FF`` a reference die
  (hexadecimal maps): untested sites, not dies.
* **mapEx** (``Key : value`` header with ``Map Column``/``Map Row``, then one line of
  characters per row: ``.`` = no die, ``S`` = skipped site, a digit or letter = the bin; bin 1
  passes; ``Total Tested``/``Total Pass``/``Total Fail``/``Yield`` are checked).
* **Coordinate list** (``Key:value`` header, ``[MAP]:``, then ``x y bin`` per die; x grows to
  the right and y downwards, as in the files seen -- y is flipped into the wafer frame; bin
  257 marks an edge site that is not tested; the trailer's ``Total Prober Test/Pass Dies``
  and per-bin counts are checked, and its ``P`` flags give the good bins).

Rows are listed top row first; die indices start at 0 at the lower-left of the grid.
"""

from __future__ import annotations

import logging
import os
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import DataQualityWarning, ParseError, check_choice
from ..registry import Format, head_text, register, text_encoding
from .common import (
    MapData,
    build_map,
    decode_codes,
    decode_text,
    die_size,
    drop_untested,
    grid_to_dies,
    orient,
    read_bytes,
    truncated,
)
from .textmap_grids import FLAVOURS, flavour_of

log = logging.getLogger(__name__)

__all__ = ["read_textmap", "sniff", "textmap_flavour"]

_UNITS = {"MM": 1000.0, "UM": 1.0, "MIL": 25.4, "IN": 25400.0, "CM": 1e4}


def _text(p: Path) -> str:
    text = decode_text(read_bytes(p), p)
    nul = text.find("\x00")
    if nul >= 0:
        raise ParseError("binary content (NUL character) in a text map", path=p, line=text.count("\n", 0, nul) + 1)
    return text


def textmap_flavour(text: str) -> str | None:
    """``"sinf"``, ``"mapex"``, ``"coord"`` or None, from the content of a text map."""
    low = text[:4000].lower()
    if re.search(r"^\s*rowdata\s*:", low, re.M):
        return "sinf"
    if "[map]:" in low:
        return "coord"
    if re.search(r"^\s*map column\s*:", low, re.M) and re.search(r"^\s*map row\s*:", low, re.M):
        return "mapex"
    return flavour_of(text)


def _sinf(text: str, p: Path) -> dict[str, Any]:
    header: dict[str, str] = {}
    rows: list[list[str]] = []
    row_lines: list[int] = []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        key, sep, value = line.partition(":")
        if not sep:
            raise ParseError(f"expected 'KEY:value' or 'RowData:', got {line[:40]!r}", path=p, line=n, record="SINF")
        if key.strip().lower() == "rowdata":
            rows.append(value.split())
            row_lines.append(n)
        else:
            header[key.strip().upper()] = value.strip()
    if not rows:
        raise ParseError("no RowData lines", path=p, record="RowData")
    width = len(rows[0])
    for r, n in zip(rows, row_lines):
        if len(r) != width:
            raise ParseError(f"RowData has {len(r)} cells, the first row has {width}", path=p, line=n,
                             record="RowData")
    for key, n in (("ROWCT", len(rows)), ("COLCT", width)):
        if header.get(key, "").isdigit() and int(header[key]) != n:
            raise ParseError(f"{key}:{header[key]} but the map has {n}", path=p, line=row_lines[0], record=key)
    grid = np.array(rows, dtype=object)
    flat = grid.ravel().astype(str)
    null_mask = np.char.count(flat.astype("U"), "_") == np.char.str_len(flat.astype("U"))
    nulls = set(flat[null_mask].tolist())
    cells = flat[~null_mask]
    lens = {len(c) for c in cells.tolist()}
    hexlike = any(re.search(r"[A-Fa-f]", c) for c in set(cells.tolist()))
    bin_type = "HexaDecimal" if hexlike or lens == {2} else "Decimal"
    ix, iy, code = grid_to_dies(grid, nulls)
    untested_codes = {"@@"} | ({"FD", "FE", "FF"} if bin_type == "HexaDecimal" else set())
    upper = np.char.upper(code.astype(str).astype("U")) if len(code) else np.zeros(0, "U2")
    skip = np.isin(upper, list(untested_codes))
    hbin = np.zeros(len(code), np.int64)
    hbin[~skip] = decode_codes(code[~skip], bin_type, p, "RowData")
    ix, iy, code, hbin, untested = drop_untested(ix, iy, code, hbin, skip)
    good_codes = header.get("BCEQU", "").split()
    good = set(decode_codes(np.array(good_codes), bin_type, p, "BCEQU").tolist()) if good_codes else None
    ix, iy, angle = orient(ix, iy, header.get("FNLOC", "0"), p)
    unit = _UNITS.get(header.get("DUTMS", "MM").upper(), 1000.0)
    pitch = die_size(p, header.get("XDIES"), header.get("YDIES"), names=("XDIES", "YDIES"), text=text, unit=unit)
    return {"lot_id": header.get("LOT", ""), "wafer_id": header.get("WAFER", ""), "die_x": ix, "die_y": iy,
            "code": code, "hbin": hbin, "good": good, "bins": [], "pitch_um": pitch, "diameter_mm": None,
            "product": header.get("DEVICE"),
            "meta": {**header, "BinType": bin_type, "notch_deg": angle, "untested": untested}}


def _kv(line: str) -> tuple[str, str]:
    key, _, value = line.partition(":")
    return key.strip().lower(), value.strip()


def _mapex(text: str, p: Path) -> dict[str, Any]:
    header: dict[str, str] = {}
    lines = text.splitlines()
    k = 0
    while k < len(lines) and (":" in lines[k] or not lines[k].strip()):
        if lines[k].strip():
            key, value = _kv(lines[k])
            header[key] = value
        k += 1
    try:
        ncol = int(header["map column"])
        nrow = int(header["map row"])
    except (KeyError, ValueError):
        raise ParseError("the header needs integer 'Map Column' and 'Map Row'", path=p, line=1, record="header") from None
    rows = [ln.rstrip() for ln in lines[k : k + nrow]]
    if len(rows) < nrow:
        raise ParseError(f"'Map Row' is {nrow} but only {len(rows)} map lines follow (truncated?)", path=p,
                         line=k + len(rows), record="map")
    widths = [len(r) for r in rows]
    for j, r in enumerate(rows):
        if len(r) != widths[0]:
            raise ParseError(f"map line has {len(r)} characters, the first has {widths[0]}", path=p,
                             line=k + j + 1, record="map")
    if widths[0] != ncol:
        warnings.warn(f"{p}: the map lines have {widths[0]} characters but 'Map Column' is {ncol}; "
                      "using the lines as they are", DataQualityWarning, stacklevel=3)
    grid = np.array([list(r) for r in rows], dtype=object)
    ix, iy, code = grid_to_dies(grid, ".")
    skip = code == "S"  # a skipped site (not probed)
    hbin = np.zeros(len(code), np.int64)
    hbin[~skip] = decode_codes(code[~skip], "ASCII", p, "map")
    ix, iy, code, hbin, untested = drop_untested(ix, iy, code, hbin, skip)
    notch = header.get("flat/notch", "down").lower()
    angle = {"down": 0, "left": 90, "up": 180, "right": 270}.get(notch, 0)
    ix, iy, angle = orient(ix, iy, angle, p)
    pitch = die_size(p, header.get("dice sizex"), header.get("dice sizey"), names=("Dice SizeX", "Dice SizeY"),
                     text=text)
    size = re.match(r"\s*([\d.]+)\s*(\"|in|inch)?", header.get("wafer size", ""))
    diameter = None
    if size:
        diameter = float(size.group(1)) * (25.4 if size.group(2) else 1.0)
    return {"lot_id": header.get("lot no.", header.get("lot", "")), "wafer_id": header.get("wafer id", ""),
            "die_x": ix, "die_y": iy, "code": code, "hbin": hbin, "good": {1}, "bins": [], "pitch_um": pitch,
            "diameter_mm": diameter, "product": header.get("device name"),
            "meta": {**header, "notch_deg": angle, "untested": untested},
            "declared": {k: (header[h], n) for k, h, n in (
                ("tested", "total tested", "Total Tested"), ("passed", "total pass", "Total Pass"),
                ("failed", "total fail", "Total Fail"), ("yield_pct", "yield", "Yield")) if header.get(h)}}


def _coord(text: str, p: Path, on_error: str = "raise") -> dict[str, Any]:
    header: dict[str, str] = {}
    lines = text.splitlines()
    k = 0
    while k < len(lines) and not lines[k].strip().lower().startswith("[map]"):
        if ":" in lines[k]:
            key, value = _kv(lines[k])
            header[key] = value
        k += 1
    body: list[str] = []
    first = k + 2
    end = len(lines)
    for j in range(k + 1, len(lines)):
        s = lines[j].strip()
        if not s:
            if body:
                end = j
                break
            first = j + 2
            continue
        body.append(s)
    trailer = "\n".join(lines[end:])
    # the list ends with its totals and a closing '## END ##' line: without it the file was cut
    if not re.search(r"^\s*##\s*END\s*##\s*$", trailer, re.M):
        truncated(p, "the coordinate list ends without its closing '## END ##' line", line=len(lines),
                  record="[MAP]", on_error=on_error)
        if body and end == len(lines) and not text.endswith(("\n", "\r")):
            body.pop()  # the last die line may be cut inside a number
    try:
        arr = np.array([ln.split()[:3] for ln in body], dtype=np.int64)
    except ValueError:
        bad = next(j for j, ln in enumerate(body) if not re.fullmatch(r"-?\d+\s+-?\d+\s+-?\d+(\s+.*)?", ln))
        raise ParseError(f"expected 'x y bin', got {body[bad][:40]!r}", path=p, line=first + bad,
                         record="[MAP]") from None
    if arr.size == 0:
        raise ParseError("no die lines after [MAP]:", path=p, line=k + 1, record="[MAP]")
    # the files seen count x to the right and y downwards (row -18 is the top row): y is flipped
    ix = arr[:, 0]
    iy = -arr[:, 1]
    ix, iy = ix - ix.min(), iy - iy.min()
    hbin = arr[:, 2]
    ix, iy, code, hbin, untested = drop_untested(ix, iy, hbin.astype(str), hbin, hbin == 257)  # 257: edge site
    declared: dict[str, tuple[str, str]] = {}
    for what, word in (("tested", "Test"), ("passed", "Pass")):
        m = re.search(rf"^\s*Total Prober {word} Dies\s*:\s*(\d+)", trailer, re.M | re.I)
        if m:
            declared[what] = (m.group(1), f"Total Prober {word} Dies")
    # 'Bin(1)(945)    P,' or 'Bin  1  756,': per-bin counts, with P/F flags in the first form
    listed = re.findall(r"Bin\s*\(?\s*(\d+)\s*\)?\s*\(?\s*(\d+)\s*\)?\s*([PF])?\s*(?:,|$)", trailer, re.M)
    bins = [{"bin_code": b, "hbin": int(b), "description": None, "passed": q == "P", "declared_count": int(c)}
            for b, c, q in listed]
    flagged = {int(b) for b, _, q in listed if q == "P"}
    pitch = die_size(p, header.get("index x"), header.get("index y"), names=("Index X", "Index Y"),
                     text=text)
    try:
        diameter = float(header["wafer size"]) * 25.4 if header.get("wafer size") else None
    except ValueError:
        diameter = None
    return {"lot_id": header.get("wafer lots", ""), "wafer_id": header.get("wafer no", ""), "die_x": ix, "die_y": iy,
            "code": code, "hbin": hbin, "good": flagged or {1}, "bins": bins, "pitch_um": pitch,
            "diameter_mm": diameter, "product": header.get("product"), "meta": {**header, "untested": untested},
            "declared": declared}


def _parts(text: str, p: Path, on_error: str = "raise") -> tuple[str, list[dict[str, Any]]]:
    flavour = textmap_flavour(text)
    if flavour == "sinf":
        return flavour, [_sinf(text, p)]
    if flavour == "mapex":
        return flavour, [_mapex(text, p)]
    if flavour == "coord":
        return flavour, [_coord(text, p, on_error)]
    if flavour in ("esc", "rle"):
        return flavour, FLAVOURS[flavour](text, p, on_error=on_error)
    if flavour in FLAVOURS:
        return flavour, FLAVOURS[flavour](text, p)
    raise ParseError("not a text wafer map yieldkit reads (SINF RowData, mapEx, GTK, TSK text, WMAP, Electroglas "
                     "or [MAP]: coordinate list)", path=p)


def _zip_members(p: Path) -> tuple[list[tuple[str, str]], str | None]:
    """The text-map members of a zip archive, and the text of its ``SUMMARY.CSV`` (or None)."""
    import zipfile

    summary = None
    try:
        with zipfile.ZipFile(p) as zf:
            out = []
            for info in zf.infolist():
                if info.is_dir() or info.file_size > 64 << 20:
                    continue
                raw = zf.read(info)
                enc = text_encoding(raw[:4096])
                if b"\x00" in raw[:4096] and not enc.startswith(("utf-16", "utf-32")):
                    continue
                text = decode_text(raw, f"{p}!{info.filename}")
                if textmap_flavour(text) is not None:
                    out.append((info.filename, text))
                elif info.filename.rsplit("/", 1)[-1].upper() == "SUMMARY.CSV":
                    summary = text
            return out, summary
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise ParseError(f"cannot read the zip archive: {exc}", path=p) from None


def _summary_totals(parts: list[dict[str, Any]], summary: str | None) -> None:
    """Add the per-wafer totals of a lot archive's ``SUMMARY.CSV`` (``WAFER_ID``, ``TEST``,
    ``PASS``, ``FAIL``, ``YIELD``) to the totals each wafer is checked against."""
    import csv
    import io

    if not summary:
        return
    rows = {(r.get("WAFER_ID") or "").strip(): r for r in csv.DictReader(io.StringIO(summary), skipinitialspace=True)}
    for part in parts:
        row = rows.get(str(part.get("wafer_id") or "").strip())
        if row is None:
            continue
        declared = part.setdefault("declared", {})
        for what, col in (("tested", "TEST"), ("passed", "PASS"), ("failed", "FAIL"), ("yield_pct", "YIELD")):
            if (row.get(col) or "").strip():
                declared[f"{what}:summary"] = (row[col].strip(), f"SUMMARY.CSV {col}")


def read_textmap(path: str | os.PathLike[str], *, on_error: str = "raise") -> MapData:
    """Read a text map (SINF, mapEx, coordinate list, GTK, TSK text, WMAP, Electroglas), or a zip
    of such maps (one wafer per member); see :func:`yieldkit.read_map`.

    ``on_error="salvage"`` reads a coordinate list, Electroglas or run-length lot file cut
    short (no closing line) with a :class:`~yieldkit.errors.DataQualityWarning` instead of a :class:`ParseError`.
    """
    check_choice(on_error, ("raise", "salvage"), name="on_error", where="read_textmap")
    p = Path(path)
    with open(p, "rb") as fh:
        is_zip = fh.read(4) == b"PK\x03\x04"
    if is_zip:
        members, summary = _zip_members(p)
        if not members:
            raise ParseError("the zip archive holds no text wafer map", path=p)
        flavours = set()
        parts = []
        for name, text in members:
            flavour, ps = _parts(text, Path(f"{p}!{name}"), on_error)
            flavours.add(flavour)
            parts += ps
        _summary_totals(parts, summary)
        lot = p.name.split("_")[0]
        for part in parts:
            if not part["lot_id"]:
                part.setdefault("meta", {})["lot_id_in_file"] = part["lot_id"]
                part["lot_id"] = lot
                log.info("%s: no lot id in the member; using %r from the archive name", p, lot)
        return build_map(parts, fmt="/".join(sorted(flavours)), path=p)
    flavour, parts = _parts(_text(p), p, on_error)
    return build_map(parts, fmt=flavour, path=p)


#: a text-map header line: a key, ':' and a value without table delimiters
_HEADER_LINE = re.compile(r"[a-z][\w .#/-]*:[^,;\t|]*")


def _map_header(low: str) -> bool:
    """Whether lower-cased text opens like a text map header (``DEVICE:``/``LOT:``/``WAFER:`` first,
    then at least one more ``KEY:VALUE`` line), not like a table whose first cell ends in ':'."""
    if not low.startswith(("device:", "lot:", "wafer:")):
        return False
    lines = [ln.strip() for ln in low.splitlines()[:10] if ln.strip()]
    return sum(bool(_HEADER_LINE.fullmatch(ln)) for ln in lines[:10]) >= 2 and bool(_HEADER_LINE.fullmatch(lines[0]))


def sniff(head: bytes) -> bool:
    """Whether a file opens like a text wafer map (a known flavour, or a ``KEY:VALUE`` map header)."""
    text = head_text(head)
    if text.startswith("<"):
        return False
    return textmap_flavour(text) is not None or _map_header(text.lower())


def _member(head: bytes) -> bool:
    return textmap_flavour(head_text(head)) is not None


register(Format("textmap", sniff, read_textmap, order=60, wafer_map=True, member=_member))
