"""Wafer maps: SEMI E142 and G85 XML, and text maps (SINF RowData and others), read and written.

:func:`read_map` recognises the map format from the content and returns a :class:`MapData`
with the canonical die table; :func:`write_map` writes a die table as E142 or G85 XML.

Die indices of an array map: ``die_x`` counts columns from the left and ``die_y`` rows from
the bottom of the map *as drawn with the notch at the bottom* (the wafer frame), both from
0 at the lower-left cell of the array -- unless the file gives die addresses: a ``LowerLeftDie``
reference device (as :func:`write_map` writes), the address in each TSK record, or the TSK
text map's start at (1, 1). A map whose notch/flat is elsewhere is rotated into
that frame; the original header values (orientation, origin location, axis direction,
reference dies) are kept in ``MapData.metadata``. Cells holding the map's null bin are not
dies and are absent from the die table; so are the sites a format marks as untested (skip,
edge, reference or ink-only marks): their counts per code are kept in the wafer's metadata
under ``"untested"`` and they never count as tested fails.

Where a file states its own totals (tested and good dies, yield, per-bin counts), the parsed
table is checked against them and a :class:`~yieldkit.errors.DataQualityWarning` names the
file and what differs.
"""

from __future__ import annotations

import logging
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ...errors import DataQualityWarning, InputNotFoundError, ParseError, SchemaError, check_choice
from ...frame import Orientation, assume, cannot_honour, mark_angle, to_wafer_frame
from ...layout import WaferLayout
from ...schema import STRING, validate_dies
from ..registry import head_text, reader_of, reader_options, sniff_format, text_encoding

log = logging.getLogger(__name__)

__all__ = ["MapData", "read_map", "xml_root"]


@dataclass
class MapData:
    """A wafer map file in the canonical data model.

    Attributes
    ----------
    dies : DataFrame
        Canonical die table (``lot_id``, ``wafer_id``, ``die_x``, ``die_y``, ``hbin``,
        ``passed``) plus ``bin_code``, the bin as written in the file.
    wafers : DataFrame
        One row per wafer (``lot_id``, ``wafer_id``, ``product`` when known).
    layouts : dict
        ``(lot_id, wafer_id) -> WaferLayout``: the die pitch and diameter when the file
        gives them (else an inferred unit-pitch layout), with the dies present as die set.
    bins : DataFrame
        Bin definitions: ``lot_id``, ``wafer_id``, ``bin_code``, ``hbin``, ``description``,
        ``passed`` and ``declared_count`` (the count the file states, when it does).
    bin_labels : dict
        ``hbin -> code`` as the file writes it (``{31: "1F"}``), for legends that show the
        file's own codes; empty when the codes are decimal bin numbers.
    format : str
        ``"e142"``, ``"g85"`` or the text-map flavour (``"sinf"``, ...).
    metadata : dict
        ``(lot_id, wafer_id) -> {name: value}``: header values as found.
    path : str
        The file read.
    """

    dies: pd.DataFrame
    wafers: pd.DataFrame
    layouts: dict[tuple[str, str], WaferLayout]
    bins: pd.DataFrame
    format: str
    metadata: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    path: str = ""
    bin_labels: dict[int, str] = field(default_factory=dict)

    def __repr__(self) -> str:
        return (f"MapData(format={self.format!r}, wafers={len(self.wafers)}, dies={len(self.dies)}, "
                f"path={self.path!r})")


# ---------------------------------------------------------------------------------------
# shared helpers for the format modules
# ---------------------------------------------------------------------------------------
def decode_codes(codes: np.ndarray, bin_type: str, path: Any, record: str, line: int | None = None) -> np.ndarray:
    """Integer bins from bin-code strings: hexadecimal, decimal, Integer2 or one ASCII character
    (a digit is its value, another character its code point)."""
    bt = bin_type.lower()
    codes = np.asarray(codes, dtype=object)
    uniq, inv = np.unique(codes.astype(str), return_inverse=True)
    out = np.empty(len(uniq), np.int64)
    if bt == "integer2":
        # two bytes per die: written as 4 hex digits in a packed row, as decimals when separated
        bt = "hexadecimal" if all(len(c) == 4 for c in uniq.tolist()) else "decimal"
    for k, c in enumerate(uniq):  # per distinct code, not per die
        try:
            if bt.startswith("hexa") or bt == "hex":
                out[k] = int(c, 16)
            elif bt.startswith("ascii"):
                out[k] = int(c) if c.isdigit() else ord(c[0]) if len(c) == 1 else int(c, 36)
            else:  # decimal, integer2
                out[k] = int(c)
        except (ValueError, IndexError):
            raise ParseError(f"bin code {str(c)!r} is not a valid {bin_type} code", path=path, line=line,
                             record=record) from None
    return out[inv.ravel()]


def split_row(row: str, width: int) -> list[str]:
    """Cells of one map row: whitespace/comma separated, or fixed ``width`` characters each."""
    row = row.strip()
    if any(ch in row for ch in " \t,"):
        return [c for c in row.replace(",", " ").split() if c]
    if width <= 0:
        width = 1
    if len(row) % width:
        raise ValueError(f"a row of {len(row)} characters is not a whole number of {width}-character cells")
    return [row[i : i + width] for i in range(0, len(row), width)]


def grid_to_dies(grid: np.ndarray, null: set[str] | str | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cells of a picture-ordered grid (first row on top) that hold dies.

    Returns ``(die_x, die_y, code)`` with ``die_x`` the column and ``die_y`` the row counted
    from the bottom, both from 0.
    """
    nrows = grid.shape[0]
    nulls = {null} if isinstance(null, str) else set(null or ())
    keep = ~np.isin(grid, list(nulls)) if nulls else np.ones(grid.shape, bool)
    r, c = np.nonzero(keep)
    return c.astype(np.int64), (nrows - 1 - r).astype(np.int64), grid[r, c]


def drop_untested(ix: np.ndarray, iy: np.ndarray, code: np.ndarray, hbin: np.ndarray, untested: np.ndarray) -> tuple[
        np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, int]]:
    """Remove the sites a format marks as untested (skip, edge, reference, ink-only).

    Returns the kept ``(die_x, die_y, code, hbin)`` and the count of removed sites per code.
    """
    untested = np.asarray(untested, bool)
    codes = np.asarray(code, dtype=object)
    counts = {str(c): int(k) for c, k in pd.Series(codes[untested].astype(str), dtype=object).value_counts().items()}
    keep = ~untested
    return (np.asarray(ix)[keep], np.asarray(iy)[keep], codes[keep], np.asarray(hbin)[keep], counts)


#: bin descriptions of XML maps that name a site rather than a tested die
_UNTESTED_WORDS = re.compile(r"^\s*(reference|ref\.?|skip(ped)?|edge|ink(ed)?|ink[- ]only|untested|not tested|"
                             r"uninspected|no die|null)\b", re.I)


def untested_bins(defs: list[dict[str, Any]]) -> set[int]:
    """Hard bins an XML map's bin definitions describe as untested sites (reference, skip, edge,
    ink-only, untested), never bins declared ``Pass``."""
    return {int(d["hbin"]) for d in defs if not d.get("passed") and _UNTESTED_WORDS.match(str(d.get("description") or ""))}


def line_of(text: str | None, pattern: str) -> int | None:
    """The 1-based line of the first match of a regular expression (case-insensitive) in ``text``."""
    if not text:
        return None
    m = re.search(pattern, text, re.I | re.M)
    return text.count("\n", 0, m.start()) + 1 if m else None


def die_size(path: Any, x: Any, y: Any, *, names: tuple[str, str], text: str | None = None,
             patterns: tuple[str, str] | None = None, unit: float = 1.0) -> tuple[float, float] | None:
    """The die pitch [um] a map states, from its two sizes (times ``unit``).

    None when the file gives no size (the layout then takes unit pitch, and says so); a size
    that is not a positive finite number is a :class:`ParseError` naming the file, the line
    (found in ``text`` with ``patterns``, by default the line starting with the name), the
    keyword and the value.
    """
    if x is None or y is None or not str(x).strip() or not str(y).strip():
        return None
    out = []
    for value, name, pattern in zip((x, y), names, patterns or [r"^\s*" + re.escape(n) for n in names]):
        v = str(value).strip()
        try:
            f = float(v) * unit
        except ValueError:
            f = float("nan")
        if not (np.isfinite(f) and f > 0):
            raise ParseError(f"the die size {name} must be a positive number; got {v[:20]!r}", path=path,
                             line=line_of(text, pattern), record=name)
        out.append(f)
    return out[0], out[1]


def _number(text: Any) -> tuple[float, int] | None:
    """(value, decimals) of a stated number such as ``"96.53%"``, ``"945"``; None when it is none."""
    m = re.search(r"[-+]?\d+(?:\.(\d+))?", str(text))
    if m is None:
        return None
    return float(m.group(0)), len(m.group(1) or "")


def check_totals(path: Any, key: tuple[str, str], hbin: np.ndarray, passed: np.ndarray, part: dict[str, Any]) -> None:
    """Warn when the totals a file states disagree with the die table parsed from it.

    ``part["declared"]`` maps ``"tested"``, ``"passed"``, ``"failed"`` and ``"yield_pct"`` (or
    ``"<one of these>:<source>"``) to ``(stated text, name in the file)``; ``part["bins"]`` may carry each bin's
    ``declared_count``, which is compared with the dies plus the untested sites of that code.
    """
    diffs = []
    n, good = len(hbin), int(np.asarray(passed, bool).sum())
    actual = {"tested": n, "passed": good, "failed": n - good}
    for key_, (stated, name) in (part.get("declared") or {}).items():
        what = key_.split(":")[0]  # "tested:summary": a second source of the same total
        num = _number(stated)
        if num is None:
            continue
        value, decimals = num
        if what == "yield_pct":
            got = round(100.0 * good / n, decimals) if n else float("nan")
            if not (n and abs(got - value) <= 0.5 * 10.0 ** -decimals + 1e-9):
                diffs.append(f"{name} {str(stated).strip()} (the dies give {100.0 * good / n if n else float('nan'):.2f} %)")
        elif int(value) != actual[what]:
            diffs.append(f"{name} {int(value)} (the dies give {actual[what]})")
    # hexadecimal codes are compared without case ("1f" is "1F"); character codes with it ("a" is not "A")
    fold = str.upper if str(part.get("meta", {}).get("BinType", "")).lower().startswith("hex") else str
    untested = {fold(str(c)): k for c, k in (part.get("meta", {}).get("untested") or {}).items()}
    codes = np.asarray(part.get("code", []), dtype=object).astype(str)
    if fold is str.upper and len(codes):
        codes = np.char.upper(codes.astype("U"))
    have = {str(c): int(k) for c, k in pd.Series(codes, dtype=object).value_counts().items()}
    nulls = {fold(str(c)) for c in part.get("null", ()) if c is not None}
    for b in part.get("bins", ()):
        declared = b.get("declared_count")
        code = fold(str(b.get("bin_code", "")))
        if declared is None or code in nulls:
            continue
        got_n = have.get(code, 0) + untested.get(code, 0)
        if int(declared) != got_n:
            diffs.append(f"bin {b.get('bin_code')} count {int(declared)} (the map holds {got_n})")
    if diffs:
        warnings.warn(f"{path}: lot {key[0]!r} wafer {key[1]!r}: the file states " + "; ".join(diffs),
                      DataQualityWarning, stacklevel=4)


def truncated(path: Any, message: str, *, line: int | None, record: str, on_error: str) -> None:
    """A map cut short: a :class:`ParseError`, or with ``on_error="salvage"`` a
    :class:`~yieldkit.errors.DataQualityWarning` (the dies before the cut are kept)."""
    if on_error != "salvage":
        raise ParseError(f"{message} (truncated?). Pass on_error='salvage' to read the dies before the cut", path=path,
                         line=line, record=record)
    where = f"line {line}: " if line is not None else ""
    warnings.warn(f"{path}: {where}{message} (truncated?); read the complete die lines before the cut",
                  DataQualityWarning, stacklevel=5)


def orient(ix: np.ndarray, iy: np.ndarray, angle: Any, path: Any) -> tuple[np.ndarray, np.ndarray, int]:
    """Rotate die indices so the notch/flat at ``angle`` [deg] (0 = bottom) goes to the bottom,
    then re-base so the lower-left die cell is (0, 0)."""
    if angle in (None, ""):
        a = 0
    else:
        a_or_none = mark_angle(angle, words=False)
        if a_or_none is None:
            try:
                float(angle)
                why = "is not a multiple of 90 deg"
            except (TypeError, ValueError):
                why = "is not an angle"
            cannot_honour(path, f"orientation {angle!r} {why}; assuming the notch at the bottom", stacklevel=4)
            a = 0
        else:
            a = a_or_none
    if a in (90, 270):
        assume(path, "notch at %d deg, taken as counter-clockwise from the bottom of the map as drawn", a)
    if len(ix) == 0 or a == 0:
        return ix, iy, a
    nx, ny = to_wafer_frame(ix, iy, Orientation(a))
    return nx - nx.min(), ny - ny.min(), a


def _file_lot(path: Any) -> str:
    """A lot id from a file name: the name without compression and format extensions."""
    name = Path(str(path).split("!", 1)[0]).name
    stem = re.sub(r"\.(gz|bz2|xz|zip)$", "", name, flags=re.I)
    stem = re.sub(r"\.(xml|txt|map|e142|g85|sinf|wafermap|esc)$", "", stem, flags=re.I)
    return stem or name


def fill_identifiers(part: dict[str, Any], path: Any) -> None:
    """Give a wafer without a lot or wafer id one, as the STDF reader does: the lot from the file
    name, the wafer from its slot, else ``"1"``; the values found are kept in ``meta``."""
    meta = part.setdefault("meta", {})
    lot = "" if part.get("lot_id") is None else str(part["lot_id"]).strip()
    wafer = "" if part.get("wafer_id") is None else str(part["wafer_id"]).strip()
    if not lot:
        meta.setdefault("lot_id_in_file", part.get("lot_id"))
        lot = _file_lot(path)
        assume(path, "no lot id in the file; using %r from the file name", lot)
    if not wafer:
        meta.setdefault("wafer_id_in_file", part.get("wafer_id"))
        slot = next((str(v).strip() for k, v in meta.items()
                     if str(k).rsplit(".", 1)[-1].lower() in ("slot", "slotid", "slot_id", "slotnumber")
                     and v is not None and str(v).strip()), "")
        wafer = slot.lstrip("0") or slot or "1"
        assume(path, "no wafer id in the file; using %r (%s)", wafer, "its slot" if slot else "a single wafer")
    part["lot_id"], part["wafer_id"] = lot, wafer


def build_map(
    parts: list[dict[str, Any]],
    *,
    fmt: str,
    path: Any,
) -> MapData:
    """Assemble :class:`MapData` from per-wafer parts.

    Each part holds ``lot_id``, ``wafer_id``, ``die_x``, ``die_y``, ``code`` (strings),
    ``hbin`` (ints), ``good`` (set of good hbins or None), ``bins`` (list of dicts),
    ``pitch_um`` (tuple or None), ``diameter_mm`` (float or None), ``product`` and ``meta``.
    """
    frames = []
    wafers = []
    bins = []
    layouts: dict[tuple[str, str], WaferLayout] = {}
    metadata: dict[tuple[str, str], dict[str, Any]] = {}
    for p in parts:
        fill_identifiers(p, path)
        key = (str(p["lot_id"]), str(p["wafer_id"]))
        if key in metadata:
            raise ParseError(f"wafer {key[1]!r} of lot {key[0]!r} appears twice", path=path, record="wafer")
        n = len(p["die_x"])
        hbin = np.asarray(p["hbin"], np.int64)
        good = p.get("good")
        if good is None:
            good = {1}
            log.info("%s: wafer %r does not say which bins pass; assuming hard bin 1", path, key[1])
        passed = np.isin(hbin, np.fromiter(good, np.int64, len(good)))
        check_totals(path, key, hbin, passed, p)
        frames.append(pd.DataFrame({
            "lot_id": np.full(n, key[0], dtype=object),
            "wafer_id": np.full(n, key[1], dtype=object),
            "die_x": np.asarray(p["die_x"], np.int64),
            "die_y": np.asarray(p["die_y"], np.int64),
            "hbin": hbin,
            "passed": passed,
            "bin_code": np.asarray(p["code"], dtype=object).astype(str),
        }))
        wafers.append({"lot_id": key[0], "wafer_id": key[1], "product": p.get("product")})
        for b in p.get("bins", ()):
            bins.append({"lot_id": key[0], "wafer_id": key[1], **b})
        metadata[key] = dict(p.get("meta", {}))
        ds = pd.DataFrame({"die_x": frames[-1]["die_x"], "die_y": frames[-1]["die_y"]})
        pitch = p.get("pitch_um")
        if n == 0:
            continue
        if not pitch:
            log.info("%s: wafer %r: the map gives no die size; the layout has unit pitch (die indices only)",
                     path, key[1])
        if pitch and pitch[0] > 0 and pitch[1] > 0:
            w, h = float(pitch[0]), float(pitch[1])
            x0, y0 = int(ds.die_x.min()), int(ds.die_y.min())
            ncol = int(ds.die_x.max()) - x0 + 1
            nrow = int(ds.die_y.max()) - y0 + 1
            # die (0, 0)'s lower-left corner, with the die grid centred on the wafer
            origin = (-(x0 + ncol / 2.0) * w, -(y0 + nrow / 2.0) * h)
            diagonal = float(np.hypot(ncol * w, nrow * h)) / 1000.0
            diam = p.get("diameter_mm")
            if not diam or not np.isfinite(diam) or diam <= 0:
                diam = diagonal + 1e-6
                log.info("%s: wafer %r: no wafer size; taking the array's diagonal (%.1f mm)", path, key[1], diam)
            else:
                diam = float(diam)
                # the farthest corner of each die from the wafer centre
                fx = np.maximum(np.abs(origin[0] + ds.die_x.to_numpy() * w), np.abs(origin[0] + (ds.die_x.to_numpy() + 1) * w))
                fy = np.maximum(np.abs(origin[1] + ds.die_y.to_numpy() * h), np.abs(origin[1] + (ds.die_y.to_numpy() + 1) * h))
                outside = int((np.hypot(fx, fy) > diam * 500.0).sum())
                if outside:
                    log.warning("%s: wafer %r: %d of %d dies have corners outside the %.6g mm wafer (with the "
                                "die grid centred on the wafer); they are kept as listed in the map", path, key[1],
                                outside, n, diam)
            # E142 LowerLeft / G85 OriginLocation and reference dies do not fix the grid's offset from
            # the wafer centre unambiguously: the grid is taken as centred, and the metadata says so
            metadata[key]["grid_origin"] = "assumed centred on the wafer"
            log.debug("%s: die grid centred on the wafer centre (the map gives no grid offset)", path)
            layouts[key] = WaferLayout(diameter_mm=diam, die_pitch_um=(w, h), origin_um=origin,
                                       edge_exclusion_mm=0.0, die_set=ds)
        else:
            layouts[key] = WaferLayout.from_dies(ds)
    if frames:
        raw = pd.concat(frames, ignore_index=True)
    else:
        raw = pd.DataFrame({"lot_id": [], "wafer_id": [], "die_x": [], "die_y": [], "hbin": [], "passed": [],
                            "bin_code": []})
    if len(raw):
        try:
            dies = validate_dies(raw, source=str(path))
        except SchemaError as exc:
            raise ParseError(f"the map does not make a valid die table: {exc}", path=path, record="map") from None
    else:
        dies = raw.astype({"die_x": "int32", "die_y": "int32", "hbin": "int32", "passed": bool})
    dies["bin_code"] = dies["bin_code"].astype(STRING)
    wtab = pd.DataFrame(wafers, columns=["lot_id", "wafer_id", "product"])
    for c in wtab.columns:
        wtab[c] = wtab[c].astype(STRING)
    btab = pd.DataFrame(bins, columns=["lot_id", "wafer_id", "bin_code", "hbin", "description", "passed",
                                       "declared_count"])
    btab["declared_count"] = pd.array(btab["declared_count"].tolist(), dtype="Int64")
    coded = any(str(p.get("meta", {}).get("BinType", "")).lower().startswith(("hex", "ascii")) for p in parts)
    return MapData(dies=dies, wafers=wtab, layouts=layouts, bins=btab, format=fmt, metadata=metadata,
                   path=str(path), bin_labels=bin_labels(dies, btab, coded=coded))


def bin_labels(dies: pd.DataFrame, bins: pd.DataFrame, *, coded: bool = False) -> dict[int, str]:
    """``hbin -> code text`` for a map whose codes are not decimal bin numbers (``coded``: a
    hexadecimal or ASCII bin type, or any code that is not all digits), else ``{}``; from the
    codes of the dies, then of the bin definitions."""
    pairs = pd.concat([dies[["hbin", "bin_code"]], bins[["hbin", "bin_code"]]], ignore_index=True).dropna()
    pairs = pairs.astype({"hbin": "int64", "bin_code": str}).drop_duplicates("hbin")
    codes = pairs["bin_code"].str.strip()
    if not coded and codes.str.fullmatch(r"\d+").all():
        return {}
    return dict(zip(pairs["hbin"].tolist(), codes.tolist()))


def decode_text(raw: bytes, path: Any) -> str:
    """Text from bytes: a byte-order mark, BOM-less UTF-16/32 or an XML declaration decide the
    encoding; else UTF-8, and Windows-1252 / Latin-1 when it is not UTF-8 (logged)."""
    enc = text_encoding(raw[:4096])
    if enc != "utf-8":
        try:
            return raw.decode(enc).lstrip("\ufeff")
        except UnicodeDecodeError as exc:
            raise ParseError(f"the file starts as {enc} text but is not valid {enc} at byte {exc.start}", path=path,
                             offset=exc.start) from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        pass
    try:
        text, name = raw.decode("cp1252"), "Windows-1252"
    except UnicodeDecodeError:
        text, name = raw.decode("latin-1"), "Latin-1"
    log.info("%s is not UTF-8; read it as %s", path, name)
    return text


def parse_xml(path: Path, data: bytes) -> Any:
    """Parse XML with entity expansion, external entities and network access refused; any
    encoding a byte-order mark or the XML declaration names is read (as UTF-8 internally)."""
    import xml.etree.ElementTree as ET

    import defusedxml
    import defusedxml.ElementTree as DET

    if text_encoding(data[:4096]) != "utf-8":
        text = decode_text(data, path)
        text = re.sub(r"""^(\s*<\?xml[^>]*\bencoding\s*=\s*["'])[^"']*""", r"\g<1>UTF-8", text, count=1)
        data = text.encode("utf-8")

    try:
        return DET.fromstring(data, forbid_dtd=False, forbid_entities=True, forbid_external=True)
    except defusedxml.DefusedXmlException as exc:
        raise ParseError(f"refused XML: {type(exc).__name__} ({exc}); entity declarations and external "
                         "references are not allowed", path=path, record="DOCTYPE") from None
    except ET.ParseError as exc:
        line = getattr(exc, "position", (None, None))[0]
        raise ParseError(f"malformed XML: {exc}", path=path, line=line, record="XML") from None


def xml_text(data: bytes) -> str:
    """XML bytes as text, for locating lines in messages (undecodable bytes replaced)."""
    enc = text_encoding(data[:4096])
    return data.decode(enc if enc != "utf-8" else "utf-8-sig", errors="replace")


def xml_root(head: bytes) -> str | None:
    """The local name of the root element when the first bytes open like XML (comments skipped),
    ``""`` when no root tag is in sight, None when the content is not XML."""
    text = head_text(head)
    if not text.startswith("<"):
        return None
    root = re.search(r"<(?![?!])([\w:.-]+)", re.sub(r"<!--.*?-->", "", text, flags=re.S))
    return root.group(1).rsplit(":", 1)[-1] if root else ""


def local(tag: Any) -> str:
    """Element tag without its namespace."""
    return str(tag).rsplit("}", 1)[-1]


def children(el: Any, name: str) -> list[Any]:
    return [c for c in el if local(c.tag) == name]


def child(el: Any, name: str) -> Any:
    for c in el:
        if local(c.tag) == name:
            return c
    return None


def attrs(el: Any) -> dict[str, str]:
    return {local(k): v for k, v in el.attrib.items()} if el is not None else {}


def read_bytes(path: Path) -> bytes:
    import gzip

    raw = path.read_bytes()
    if raw.startswith(b"\x1f\x8b"):
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise ParseError(f"cannot decompress: {exc}", path=path) from exc
    return raw


# ---------------------------------------------------------------------------------------
# public entry points
# ---------------------------------------------------------------------------------------
def read_map(path: str | os.PathLike[str], *, format: str | None = None, on_error: str = "raise") -> MapData:
    """Read a wafer map (SEMI E142 or G85 XML, SINF or another text map) into a die table.

    Parameters
    ----------
    path : path-like
        The map file; its format is recognised from the content.
    format : {"e142", "g85", "textmap", "tsk"}, optional
        Skip recognition and read as this format.
    on_error : {"raise", "salvage"}
        A map cut short (a text map without its closing line or with fewer rows than its
        header states): a :class:`ParseError`, or, where the format allows it, the dies before
        the cut with a :class:`~yieldkit.errors.DataQualityWarning`.

    Returns
    -------
    MapData
        ``.dies`` (canonical die table plus ``bin_code``), ``.wafers``, ``.layouts``,
        ``.bins`` (bin definitions with the counts the file declares) and ``.metadata``.

    Raises
    ------
    ParseError
        Not a map yieldkit reads, malformed or refused XML (entity declarations, external
        entities), rows of the wrong length, bin codes of the wrong type; the error names
        the file, the line and the element or keyword.

    Examples
    --------
    >>> import tempfile, pathlib, pandas as pd, yieldkit as yk
    >>> dies = pd.DataFrame({"lot_id": "L1", "wafer_id": "07", "die_x": [0, 1, 1], "die_y": [0, 0, 1],
    ...                      "hbin": [1, 1, 12]})
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "w.xml"
    >>> _ = yk.write_map(dies, p, format="g85")
    >>> m = yk.read_map(p)
    >>> m.format, m.dies[["die_x", "die_y", "hbin", "passed"]].values.tolist()
    ('g85', [[1, 1, 12, False], [0, 0, 1, True], [1, 0, 1, True]])
    """
    p = Path(path)
    if not p.exists():
        raise InputNotFoundError(f"{p}: no such file or directory")
    check_choice(on_error, ("raise", "salvage"), name="on_error", where="read_map")
    fmt = format or sniff_format(p)
    entry = reader_of(fmt)
    if entry is not None and entry.wafer_map:
        return entry.reader(p, **reader_options(fmt, on_error))
    raise ParseError(f"not a wafer map yieldkit reads (recognised as {fmt!r}; expected SEMI E142 or G85 XML "
                     "or a text map)", path=p)


def wafer_grids(d: pd.DataFrame) -> list[dict[str, Any]]:
    """Per wafer: the picture-ordered grid of hard bins (-1 where there is no die), the die address
    ``(x0, y0)`` of its lower-left cell, and bin info."""
    out = []
    for (lot, wafer), sub in d.groupby(["lot_id", "wafer_id"], sort=False, observed=True):
        x = sub["die_x"].to_numpy(np.int64)
        y = sub["die_y"].to_numpy(np.int64)
        x0, y0 = int(x.min()), int(y.min())
        x = x - x0
        y = y - y0
        ncol, nrow = int(x.max()) + 1, int(y.max()) + 1
        grid = np.full((nrow, ncol), -1, np.int64)
        grid[nrow - 1 - y, x] = sub["hbin"].to_numpy(np.int64)
        hb = sub["hbin"].to_numpy(np.int64)
        ok = sub["passed"].to_numpy(bool)
        uniq = np.unique(hb)
        passing = {int(b) for b in uniq if ok[hb == b].all()}
        counts = {int(b): int((hb == b).sum()) for b in uniq}
        out.append({"lot_id": str(lot), "wafer_id": str(wafer), "grid": grid, "passing": passing, "x0": x0, "y0": y0,
                    "counts": counts, "product": sub["product"].iloc[0] if "product" in sub.columns else None})
    return out


#: name of the reference device that gives the die address of an array's lower-left cell
LOWER_LEFT_DIE = "LowerLeftDie"


def shift_to_address(ix: np.ndarray, iy: np.ndarray, refs: list[tuple[Any, Any, Any]], path: Any) -> tuple[
        np.ndarray, np.ndarray, tuple[int, int] | None]:
    """Die indices from 0 at the array's lower-left cell, moved to the die addresses a
    ``LowerLeftDie`` reference device gives (as :func:`yieldkit.write_map` writes it)."""
    for name, x, y in refs:
        if str(name or "").lower() == LOWER_LEFT_DIE.lower():
            try:
                dx, dy = int(str(x).strip()), int(str(y).strip())
            except ValueError:
                raise ParseError(f"the {LOWER_LEFT_DIE} reference device needs integer coordinates; got {x!r}, {y!r}",
                                 path=path, record="ReferenceDevice") from None
            return ix + dx, iy + dy, (dx, dy)
    return ix, iy, None


def bin_format(d: pd.DataFrame) -> tuple[str, int, str]:
    """(bin type, cell width, null code) able to hold every hard bin of the table."""
    top = int(d["hbin"].max()) if len(d) else 0
    if top < 255:
        return "HexaDecimal", 2, "FF"
    width = len(str(top + 1))
    return "Decimal", width, "9" * width if int("9" * width) > top else "9" * (width + 1)


def encode(grid: np.ndarray, bin_type: str, width: int, null: str) -> list[str]:
    """Rows of fixed-width codes (no separator) for a grid of hard bins (-1 = null)."""
    uniq = np.unique(grid)
    spec = f"0{width}X" if bin_type == "HexaDecimal" else f"0{width}d"
    table = {int(u): (null if u < 0 else format(int(u), spec)) for u in uniq}
    lut = np.array([table[int(u)] for u in uniq], dtype=f"<U{max(width, len(null))}")
    cells = lut[np.searchsorted(uniq, grid)]
    return ["".join(r) for r in cells.tolist()]
