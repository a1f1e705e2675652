"""Vendor character-grid and per-die text maps (used by :mod:`yieldkit.io.wafermap.textmap`).

* ``gtk``: ``KEY=VALUE`` header (``ROW``/``COL``/``FLAT``/``WAFER_ID``), then one character per
  die (``.`` no die, ``#``/``~`` edge or ink marks, a digit or letter the bin); a zip of such
  files (one per wafer) is a lot.
* ``notchgrid``: ``Key: value`` header, a ``notch-DOWN`` line, then the grid (``*`` = mark).
* ``tsktext``: ``WAFER_MAP = {`` header with ``BINn = "c" count "Pass|Fail"`` lines, then
  ``MAP = { ... }`` (space = no die, ``*`` = untested, a character = the bin of that row of the
  BIN table); die addresses start at (1, 1), as in the TSK binary map.
* ``wmap``: fixed keywords (``ROWCNT``, ``COLCNT``, ``COMPRE`` characters per die, ``PASBIN``,
  ``SKIPDI``), then ``MAPnnn`` rows.
* ``rle``: 80-column ``KEY=VALUE`` lot file, ``MAP_XY.<wafer>.<bin>="Y<row> x1/x2 x ..."`` runs per
  bin, rows listed top first (y grows downwards), ``BIN_COUNT.<wafer>.<bin>`` totals; bin 1 passes;
  the file closes with ``END.`` (without it, it was cut short).
* ``esc``: Electroglas ``WAFER TEST DATA FILE``: tab-separated header, then ``X<i>Y<j>`` per die
  with its bin (``Z`` = mark); ``PRQUAD`` gives the quadrant the axes point to.

Marks (no test result) are not dies; their counts are kept in the metadata. Grid rows are
listed top row first.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import ParseError
from .common import decode_codes, die_size, grid_to_dies, orient, truncated

log = logging.getLogger(__name__)

__all__ = ["FLAVOURS", "flavour_of"]

_MARKS = set(".#~*- ")


def flavour_of(text: str) -> str | None:
    head = text[:6000]
    low = head.lower()
    if re.search(r"^\s*wafer_map\s*=\s*\{", low, re.M) and re.search(r"^\s*map\s*=\s*\{", text.lower(), re.M):
        return "tsktext"
    if re.search(r"^versid\s", low, re.M) and re.search(r"^map0*1\s", text.lower(), re.M):
        return "wmap"
    if "wafer test data file" in low and re.search(r"^X-?\d+Y-?\d+\t", text, re.M):
        return "esc"
    if re.search(r"^map_xy\.\d+\.\d+\s*=", text.lower(), re.M) and re.search(r"^wafers\s*=", low, re.M):
        return "rle"
    if re.search(r"^row\s*=\s*\d+", low, re.M) and re.search(r"^col\s*=\s*\d+", low, re.M):
        return "gtk"
    if re.search(r"^\s*notch-(down|up|left|right)\s*$", low, re.M):
        return "notchgrid"
    return None


def _char_grid(rows: list[str], null: set[str], p: Path, first_line: int, record: str) -> tuple[
        np.ndarray, np.ndarray, np.ndarray, dict[str, int]]:
    widths = {len(r) for r in rows}
    if len(widths) > 1:
        k = next(i for i, r in enumerate(rows) if len(r) != len(rows[0]))
        raise ParseError(f"grid line has {len(rows[k])} characters, the first has {len(rows[0])}", path=p,
                         line=first_line + k, record=record)
    if not rows:
        raise ParseError("no map grid", path=p, line=first_line, record=record)
    grid = np.array([list(r) for r in rows], dtype=object)
    marks = {c: int((grid == c).sum()) for c in null if (grid == c).any()}
    ix, iy, code = grid_to_dies(grid, null)
    return ix, iy, code, marks


def _kv(lines: list[str], sep: str) -> dict[str, str]:
    out = {}
    for ln in lines:
        if sep in ln:
            k, _, v = ln.partition(sep)
            out[k.strip().lower()] = v.strip().strip('"')
    return out


def _notch(value: str) -> int:
    m = re.search(r"(down|up|left|right)", value.lower())
    if m:
        return {"down": 0, "left": 90, "up": 180, "right": 270}[m.group(1)]
    return 0


def _declared(hdr: dict[str, str], keys: tuple[tuple[str, str, str], ...]) -> dict[str, tuple[str, str]]:
    """The totals a header states: ``{what: (stated text, name in the file)}``."""
    return {what: (hdr[key], name) for what, key, name in keys if hdr.get(key)}


def _gtk(text: str, p: Path) -> list[dict[str, Any]]:
    lines = text.splitlines()
    k = 0
    while k < len(lines) and "=" in lines[k]:
        k += 1
    hdr = _kv(lines[:k], "=")
    try:
        nrow, ncol = int(hdr["row"]), int(hdr["col"])
    except (KeyError, ValueError):
        raise ParseError("the header needs integer ROW and COL", path=p, line=1, record="header") from None
    rows = [ln.rstrip("\r") for ln in lines[k : k + nrow]]
    if len(rows) < nrow or any(len(r) != ncol for r in rows):
        bad = next((j for j, r in enumerate(rows) if len(r) != ncol), len(rows))
        raise ParseError(f"expected {nrow} grid lines of {ncol} characters (ROW/COL)", path=p, line=k + bad + 1,
                         record="grid")
    ix, iy, code, marks = _char_grid(rows, _MARKS, p, k + 1, "grid")
    # FLAT=180___(DOWN): the word says where the flat is as drawn
    angle = _notch(hdr.get("flat", "down"))
    ix, iy, angle = orient(ix, iy, angle, p)
    return [{"lot_id": "", "wafer_id": hdr.get("wafer_id", ""), "die_x": ix, "die_y": iy, "code": code,
             "hbin": decode_codes(code, "ASCII", p, "grid"), "good": {1}, "bins": [], "pitch_um": None,
             "diameter_mm": None, "product": hdr.get("device_name"),
             "meta": {**hdr, "marks": marks, "untested": marks, "notch_deg": angle},
             "declared": _declared(hdr, (("tested", "total_test", "TOTAL_TEST"), ("passed", "total_pass", "TOTAL_PASS"),
                                         ("failed", "total_fail", "TOTAL_FAIL"), ("yield_pct", "test_yield", "TEST_YIELD")))}]


def _notchgrid(text: str, p: Path) -> list[dict[str, Any]]:
    lines = text.splitlines()
    k = next(i for i, ln in enumerate(lines) if re.match(r"^\s*notch-", ln, re.I))
    hdr = _kv(lines[:k], ":")
    rows = []
    for ln in lines[k + 1 :]:
        if not ln.strip() or not re.fullmatch(r"[.#~*\w ]+", ln.rstrip("\r")):
            break
        rows.append(ln.rstrip("\r"))
    ix, iy, code, marks = _char_grid(rows, _MARKS, p, k + 2, "grid")
    ix, iy, angle = orient(ix, iy, _notch(lines[k]), p)
    return [{"lot_id": hdr.get("lot id", ""), "wafer_id": hdr.get("wafer id", ""), "die_x": ix, "die_y": iy,
             "code": code, "hbin": decode_codes(code, "ASCII", p, "grid"), "good": {1}, "bins": [],
             "pitch_um": None, "diameter_mm": None, "product": hdr.get("device"),
             "meta": {**hdr, "marks": marks, "untested": marks, "notch_deg": angle},
             "declared": _declared(hdr, (("tested", "gross die", "Gross Die"), ("passed", "pass die", "Pass Die"),
                                         ("failed", "fail die", "Fail Die"), ("yield_pct", "total yield", "Total Yield")))}]


def _tsktext(text: str, p: Path) -> list[dict[str, Any]]:
    lines = text.splitlines()
    start = next(i for i, ln in enumerate(lines) if re.match(r"^\s*MAP\s*=\s*\{", ln, re.I))
    hdr = _kv(lines[1:start], "=")
    bins = []
    lookup: dict[str, int] = {}
    good: set[int] = set()
    for ln in lines[1:start]:
        m = re.match(r'^\s*BIN(\d+)\s*=\s*"(.)"\s+(\d+)\s+"(\w+)"', ln, re.I)
        if m:
            hb, ch, cnt, q = int(m.group(1)), m.group(2), int(m.group(3)), m.group(4).lower() == "pass"
            lookup[ch] = hb
            if q:
                good.add(hb)
            bins.append({"bin_code": ch, "hbin": hb, "description": m.group(4), "passed": q, "declared_count": cnt})
    rows = []
    for ln in lines[start + 1 :]:
        if ln.strip() == "}":
            break
        rows.append(ln.rstrip("\r"))
    else:
        raise ParseError("the MAP block is not closed (truncated?)", path=p, line=len(lines), record="MAP")
    try:
        ncol = int(hdr["columns"])
    except (KeyError, ValueError):
        ncol = max((len(r) for r in rows), default=0)
    rows = [r.ljust(ncol) for r in rows]
    ix, iy, code, marks = _char_grid(rows, _MARKS, p, start + 2, "MAP")
    unknown = sorted(set(code.tolist()) - set(lookup))
    if unknown and lookup:
        raise ParseError(f"map characters {unknown} are not in the BIN table", path=p, line=start + 2, record="MAP")
    hbin = np.array([lookup[c] for c in code.tolist()], np.int64) if lookup else decode_codes(code, "ASCII", p, "MAP")
    try:
        angle = int(hdr.get("flat_notch", "0"))
    except ValueError:
        angle = 0
    # TSK: Flat_Notch 180 is the flat at the bottom of the map as drawn
    ix, iy, angle = orient(ix, iy, (angle + 180) % 360, p)
    # the MAP block is the TSK grid without its outer ring of address-0 / last-address cells: its
    # first column and bottom row are die address 1, as in the binary map it is exported from
    ix, iy = ix + 1, iy + 1
    log.info("%s: the TSK text MAP block taken to start at die address (1, 1), as its binary map does", p)
    pitch = die_size(p, hdr.get("x_size"), hdr.get("y_size"), names=("X_SIZE", "Y_SIZE"), text=text)
    try:
        diam = float(hdr["wafer_size"])
    except (KeyError, ValueError):
        diam = None
    return [{"lot_id": hdr.get("lot_id", ""), "wafer_id": hdr.get("wafer_id", ""), "die_x": ix, "die_y": iy,
             "code": code, "hbin": hbin, "good": good or None, "bins": bins, "pitch_um": pitch, "diameter_mm": diam,
             "product": None, "meta": {**hdr, "marks": marks, "untested": marks, "notch_deg": angle},
             "declared": _declared(hdr, (("tested", "pdpw(total dies)", "PDPW(TOTAL DIES)"),
                                         ("passed", "good dies", "GOOD DIES"), ("failed", "reject dies", "REJECT DIES")))}]


def _wmap(text: str, p: Path) -> list[dict[str, Any]]:
    hdr: dict[str, str] = {}
    rows: list[tuple[int, str]] = []
    for n, ln in enumerate(text.splitlines(), start=1):
        if not ln.strip():
            continue
        key, _, value = ln.strip().partition(" ")
        if re.fullmatch(r"MAP\d+", key):
            rows.append((n, value.strip()))
        else:
            hdr[key.upper()] = value.strip()
    try:
        width = int(hdr.get("COMPRE", "1"))
        nrow, ncol = int(hdr["ROWCNT"]), int(hdr["COLCNT"])
    except (KeyError, ValueError):
        raise ParseError("the header needs integer ROWCNT, COLCNT and COMPRE", path=p, line=1,
                         record="header") from None
    if len(rows) != nrow:
        raise ParseError(f"ROWCNT is {nrow} but the file has {len(rows)} MAP rows", path=p,
                         line=rows[-1][0] if rows else 1, record="MAP")
    cells = []
    for n, r in rows:
        if len(r) != ncol * width:
            raise ParseError(f"MAP row has {len(r)} characters, expected COLCNT x COMPRE = {ncol * width}", path=p,
                             line=n, record="MAP")
        cells.append([r[i : i + width] for i in range(0, len(r), width)])
    grid = np.array(cells, dtype=object)
    # SKIPDI: skip and null codes; REFBIN: the code of the reference devices
    skip = {s.strip() for s in (hdr.get("SKIPDI", "") + "," + hdr.get("REFBIN", "")).split(",") if s.strip()}
    ix, iy, code = grid_to_dies(grid, skip)
    marks = {s: int((grid == s).sum()) for s in skip}
    good = {int(b) for b in hdr.get("PASBIN", "").replace(",", " ").split() if b.isdigit()} or None
    bt = "Decimal" if all(c.isdigit() for c in set(code.tolist())) else "HexaDecimal"
    ix, iy, angle = orient(ix, iy, hdr.get("FNLOC1", "0"), p)
    pitch = die_size(p, hdr.get("XDIES1"), hdr.get("YDIES1"), names=("XDIES1", "YDIES1"), text=text, unit=1000.0)
    return [{"lot_id": hdr.get("LOTMEA", ""), "wafer_id": hdr.get("MAPID1", ""), "die_x": ix, "die_y": iy,
             "code": code, "hbin": decode_codes(code, bt, p, "MAP"), "good": good, "bins": [], "pitch_um": pitch,
             "diameter_mm": float(hdr["WAFDIA"]) if hdr.get("WAFDIA", "").replace(".", "").isdigit() else None,
             "product": hdr.get("DESIGN"), "meta": {**hdr, "marks": marks, "notch_deg": angle},
             "declared": _declared(hdr, (("passed", "SUMPAS", "SUMPAS"),))}]


def _esc(text: str, p: Path, on_error: str = "raise") -> list[dict[str, Any]]:
    hdr: dict[str, str] = {}
    xs, ys, codes = [], [], []
    marks: dict[str, int] = {}
    pat = re.compile(r"^X(-?\d+)Y(-?\d+)\t(\S+)")
    lines = text.splitlines()
    # the die lines are followed by the closing EDATE / ETIME lines: without them the file was cut
    if not (re.search(r"^EDATE\t", text, re.M) and re.search(r"^ETIME\t\d{1,2}:\d\d:\d\d\s*$", text, re.M)):
        truncated(p, "the file ends without its closing EDATE and ETIME lines", line=len(lines), record="EDATE",
                  on_error=on_error)
        if lines and not text.endswith(("\n", "\r")):
            lines.pop()  # the last line may be cut inside its bin
    for ln in lines:
        m = pat.match(ln)
        if m:
            c = m.group(3)
            if not c.isdigit():
                marks[c] = marks.get(c, 0) + 1
                continue
            xs.append(int(m.group(1)))
            ys.append(int(m.group(2)))
            codes.append(c)
        elif "\t" in ln:
            k, _, v = ln.partition("\t")
            hdr.setdefault(k.strip().upper(), v.split("\t")[0].strip())
    if not xs:
        raise ParseError("no X<i>Y<j> die lines", path=p, record="die")
    quad = hdr.get("PRQUAD", "1")
    sx = -1 if quad in ("2", "3") else 1
    sy = -1 if quad in ("3", "4") else 1
    log.info("%s: PRQUAD %s taken as the quadrant the axes point to (x %s, y %s)", p, quad,
             "left" if sx < 0 else "right", "down" if sy < 0 else "up")
    ix = np.array(xs, np.int64) * sx
    iy = np.array(ys, np.int64) * sy
    ix, iy = ix - ix.min(), iy - iy.min()
    code = np.array(codes, dtype=object)
    ix, iy, angle = orient(ix, iy, hdr.get("FLAT", "0"), p)
    pitch = die_size(p, hdr.get("XSTEP"), hdr.get("YSTEP"), names=("XSTEP", "YSTEP"), text=text)  # (.001) mm = um
    return [{"lot_id": hdr.get("LOT", ""), "wafer_id": hdr.get("WAFER", ""), "die_x": ix, "die_y": iy, "code": code,
             "hbin": decode_codes(code, "Decimal", p, "die"), "good": {1}, "bins": [], "pitch_um": pitch,
             "diameter_mm": float(hdr["DIAM"]) if hdr.get("DIAM", "").isdigit() else None,
             "product": hdr.get("PRODUCT"), "meta": {**hdr, "marks": marks, "notch_deg": angle}}]


def _rle_values(text: str, p: Path, on_error: str = "raise") -> list[tuple[str, str, int]]:
    """KEY=VALUE statements; a quoted value may continue over lines. Returns (key, value, line)."""
    out: list[tuple[str, str, int]] = []
    lines = text.splitlines()
    k = 0
    while k < len(lines):
        ln = lines[k].rstrip()
        start = k + 1
        k += 1
        if not ln.strip() or ln.strip() == "END.":
            continue
        key, sep, value = ln.partition("=")
        if not sep:
            raise ParseError(f"expected KEY=VALUE, got {ln.strip()[:40]!r}", path=p, line=start, record="statement")
        value = value.strip()
        if value.startswith('"'):
            while value.count('"') < 2:
                if k >= len(lines):
                    if on_error == "salvage":
                        truncated(p, f"the quoted value of {key.strip()} is not closed", line=start,
                                  record=key.strip(), on_error=on_error)
                        return out  # the statements before the cut
                    raise ParseError(f"the quoted value of {key.strip()} is not closed (truncated?)", path=p,
                                     line=start, record=key.strip())
                value += " " + lines[k].strip()
                k += 1
            value = value.strip()[1:-1]
        out.append((key.strip().upper(), value, start))
    return out


_RANGE = re.compile(r"Y(-?\d+)|(-?\d+)(?:/(-?\d+))?")


def _rle(text: str, p: Path, on_error: str = "raise") -> list[dict[str, Any]]:
    stmts = _rle_values(text, p, on_error)
    if not re.search(r"^\s*END\.\s*$", text, re.M):  # the lot file closes with 'END.'
        truncated(p, "the lot file ends without its closing 'END.' line", line=text.count("\n") + 1, record="END.",
                  on_error=on_error)
    hdr = {k: v for k, v, _ in stmts if "." not in k}
    wafers: dict[str, dict[str, Any]] = {}
    for key, value, line in stmts:
        parts = key.split(".")
        if parts[0] == "WAFERID" and len(parts) == 2:
            wafers.setdefault(parts[1], {"bins": {}, "counts": {}})["id"] = value
        elif parts[0] in ("BIN_COUNT", "MAP_XY") and len(parts) == 3:
            try:
                b = int(parts[2])
                w = wafers.setdefault(parts[1], {"bins": {}, "counts": {}})
                if parts[0] == "BIN_COUNT":
                    w["counts"][b] = int(value)
                else:
                    w["bins"][b] = (value, line)
            except ValueError:
                raise ParseError(f"{key}={value[:20]!r}: expected an integer bin and count", path=p, line=line,
                                 record=key) from None
    out = []
    for ww, w in wafers.items():
        if not w["bins"] and on_error == "salvage":
            continue  # a wafer whose map lies after the cut
        xs, ys, bs = [], [], []
        for b, (value, line) in w["bins"].items():
            y = None
            for tok in value.split():
                m = _RANGE.fullmatch(tok)
                if m is None or (m.group(1) is None and y is None):
                    raise ParseError(f"bad run {tok!r} in MAP_XY.{ww}.{b:02d} (expected 'Y<row>' then 'x' or "
                                     "'x1/x2')", path=p, line=line, record=f"MAP_XY.{ww}.{b:02d}")
                if m.group(1) is not None:
                    y = int(m.group(1))
                    continue
                a = int(m.group(2))
                e = int(m.group(3)) if m.group(3) is not None else a
                xs.append(np.arange(min(a, e), max(a, e) + 1))
                ys.append(np.full(abs(e - a) + 1, y))
                bs.append(np.full(abs(e - a) + 1, b))
        x = np.concatenate(xs) if xs else np.zeros(0, np.int64)
        yv = -(np.concatenate(ys) if ys else np.zeros(0, np.int64))  # rows listed top first: y grows downwards
        hb = np.concatenate(bs) if bs else np.zeros(0, np.int64)
        if len(x):
            x, yv = x - x.min(), yv - yv.min()
        names = {int(k.split(".")[1]): v for k, v, _ in stmts if k.startswith("BIN_NAME.")}
        bins = [{"bin_code": f"{b:02d}", "hbin": b, "description": names.get(b), "passed": b == 1,
                 "declared_count": w["counts"].get(b)} for b in sorted(set(w["counts"]) | set(w["bins"]))]
        out.append({"lot_id": hdr.get("LOT", ""), "wafer_id": w.get("id", ww), "die_x": x, "die_y": yv,
                    "code": np.char.zfill(hb.astype(str), 2).astype(object), "hbin": hb, "good": {1}, "bins": bins,
                    "pitch_um": None, "diameter_mm": None, "product": hdr.get("DEVICE"),
                    "meta": {**hdr, "wafer_key": ww}})
    if not out:
        raise ParseError("no WAFERID / MAP_XY statements", path=p, record="MAP_XY")
    return out


FLAVOURS: dict[str, Callable[..., list[dict[str, Any]]]] = {"rle": _rle, "gtk": _gtk, "notchgrid": _notchgrid, "tsktext": _tsktext, "wmap": _wmap, "esc": _esc}
