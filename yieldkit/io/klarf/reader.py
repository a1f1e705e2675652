"""KLARF (KLA Results File) 1.1, 1.2 and 1.8: defects, wafers, layouts and inspected dies.

:func:`read_klarf` reads both KLARF syntaxes -- statements ending in ``;`` (1.1/1.2) and
nested ``Record``/``Field``/``List`` blocks (1.8, positions in nm) -- into the canonical
defect table, a wafer table, a :class:`~yieldkit.layout.WaferLayout` per wafer and the set
of inspected dies (``SampleTestPlan``), all in the wafer frame. :func:`write_klarf` (in
:mod:`yieldkit.io.klarf.writer`) writes them back.

Nothing in the file is ever evaluated; every value is tokenised and converted explicitly.
"""

from __future__ import annotations

import gzip
import logging
import os
import warnings
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ...errors import DataQualityWarning, InputNotFoundError, ParseError, SchemaError, YieldkitValueError
from ...frame import ANGLE_WORDS, Orientation, assume, cannot_honour, grid_to_wafer_frame, to_wafer_frame
from ...layout import WaferLayout
from ...schema import STRING, UNCLASSIFIED, validate_defects, validate_wafers
from .parse12 import parse_12
from .parse18 import parse_18
from .stack import Stack, narrow_frame
from .statements import (
    NotUtf8,
    RawFile,
    RawWafer,
    Restart,
    TextStream,
    release_unused,
    text_chunks,
    unify_numbers,
)

log = logging.getLogger(__name__)

__all__ = ["CHUNK_SIZE", "KlarfData", "parse_klarf_text", "read_klarf"]

#: bytes of the file read per step by the streaming parse (the text held at a time is about this;
#: the parse of a piece needs a few times as much, so larger steps raise the peak, not the speed)
CHUNK_SIZE = 1 << 22

#: KLARF 1.8 gives the mark location as an angle [deg]
_ANGLES = {str(a): w for a, w in ANGLE_WORDS.items()}
#: mark location word -> angle [deg]
_WORDS = {w: a for a, w in ANGLE_WORDS.items()}

#: record-spec columns that become canonical columns
_INT32_MAX = 2**31 - 1
_CANONICAL = {"DEFECTID", "XREL", "YREL", "XINDEX", "YINDEX", "DSIZE", "CLASSNUMBER"}
#: KLARF 1.8 lengths are in nm and areas in nm^2
_LENGTHS = {"XREL", "YREL", "DSIZE", "XSIZE", "YSIZE", "X", "Y"}
_AREAS = {"DEFECTAREA"}
_CANON_NAMES = {"lot_id", "wafer_id", "defect_id", "x_um", "y_um", "die_x", "die_y", "xrel_um", "yrel_um",
                "defect_class", "size_um", "layer"}
_NUMBER = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$"
_INTEGER = r"^[+-]?\d+$"
_NA_TOKENS = ("NA", "N/A", "NAN", "nan", "NaN")


@dataclass
class KlarfData:
    """What a KLARF file holds, in the canonical data model.

    Attributes
    ----------
    defects : DataFrame
        Canonical defect table (positions in the wafer frame [um]); every other column of
        the file's DefectRecordSpec/Columns is kept under its lower-case name. The repeated
        text (``lot_id``, ``wafer_id``, ``defect_class``, ``layer``) is held as Categoricals
        of Arrow strings (categories sorted), the file's integer columns other than
        ``defect_id`` as ``Int32`` (``Int64`` when a value does not fit 32 bits).
    wafers : DataFrame
        One row per wafer: ``lot_id``, ``wafer_id``, ``product`` (DeviceID), ``layer``
        (StepID), ``slot``, ``inspection_time``, ``setup_id``, ``inspection_station``,
        ``n_defects``, ``n_inspected_dies``, ``area_per_test_um2`` [um^2].
    layouts : dict
        ``(lot_id, wafer_id) -> WaferLayout`` from DiePitch, DieOrigin, SampleCenterLocation
        and SampleSize, restricted to the inspected dies when a SampleTestPlan is given.
    inspected_dies : DataFrame
        ``lot_id``, ``wafer_id``, ``die_x``, ``die_y``, ``test``: the SampleTestPlan of each
        inspection test, so dies with zero defects are known.
    version : str
        KLARF version, e.g. ``"1.2"``.
    metadata : dict
        File-level header values as found (keyword -> list of strings).
    wafer_metadata : dict
        ``(lot_id, wafer_id) -> {keyword: values}``, the wafer's header as found, plus
        ``"_orientation"`` describing the transformation into the wafer frame.
    path : str
        The file read.
    """

    defects: pd.DataFrame
    wafers: pd.DataFrame
    layouts: dict[tuple[str, str], WaferLayout]
    inspected_dies: pd.DataFrame
    version: str
    metadata: dict[str, list[str]] = field(default_factory=dict)
    wafer_metadata: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    path: str = ""

    def __repr__(self) -> str:
        return (
            f"KlarfData(version={self.version!r}, wafers={len(self.wafers)}, defects={len(self.defects)}, "
            f"inspected_dies={len(self.inspected_dies)}, path={self.path!r})"
        )


# ---------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------
def _values(hdr: dict[str, Any], kw: str) -> list[str] | None:
    st = hdr.get(kw)
    return None if st is None else st[1]


def _line(hdr: dict[str, Any], kw: str) -> int | None:
    st = hdr.get(kw)
    return None if st is None else st[2]


def _floats(hdr: dict[str, Any], kw: str, n: int, path: Any) -> tuple[float, ...] | None:
    vals = _values(hdr, kw)
    if vals is None:
        return None
    try:
        out = tuple(float(v) for v in vals[:n])
    except ValueError:
        raise ParseError(f"{hdr[kw][0]} needs {n} numbers, got {vals!r}", path=path, line=_line(hdr, kw),
                         record=hdr[kw][0]) from None
    if len(out) < n:
        raise ParseError(f"{hdr[kw][0]} needs {n} numbers, got {vals!r}", path=path, line=_line(hdr, kw),
                         record=hdr[kw][0])
    return out


def _timestamp(vals: list[str] | None) -> Any:
    if not vals:
        return pd.NaT
    text = " ".join(vals[:2])
    for fmt in ("%m-%d-%Y %H:%M:%S", "%m-%d-%y %H:%M:%S", "%Y-%m-%d %H:%M:%S", "%m/%d/%Y %H:%M:%S",
                "%d-%m-%Y %H:%M:%S"):
        try:
            return pd.Timestamp(datetime.strptime(text, fmt))
        except ValueError:
            continue
    log.info("unrecognised KLARF timestamp %r; inspection_time left missing", text)
    return pd.NaT


def _orientation(hdr: dict[str, Any], version: str, path: Any) -> tuple[Orientation, dict[str, Any]]:
    """The orientation of the file's coordinates relative to the wafer frame, and a description."""
    loc_vals = _values(hdr, "orientationmarklocation")
    loc = (loc_vals[0] if loc_vals else "").strip().upper()
    loc = _ANGLES.get(loc.split(".")[0], loc) if loc[:1].isdigit() else loc
    if loc not in _WORDS:
        if loc_vals is None:
            assume(path, "no OrientationMarkLocation; assuming the mark is DOWN (the wafer frame)")
        else:
            cannot_honour(path, f"OrientationMarkLocation {loc_vals!r} is not DOWN/UP/LEFT/RIGHT; "
                          "assuming DOWN (the wafer frame)", stacklevel=5)
        loc = "DOWN"
    mir_vals = _values(hdr, "coordinatesmirrored")
    mir = (mir_vals[0] if mir_vals else "NO").strip().upper()
    if mir in ("YES", "Y", "1", "TRUE"):
        mirrored = True
    elif mir in ("NO", "N", "0", "FALSE", ""):
        mirrored = False
    else:
        cannot_honour(path, f"CoordinatesMirrored {mir_vals!r} is not YES/NO; assuming NO", stacklevel=5)
        mirrored = False
    ori = Orientation(_WORDS[loc], mirrored)
    return ori, {"mark_location": loc, "mirrored": mirrored, "matrix": ori.matrix.tolist()}


def _out_of_range(name: str, token: Any, k: int, what: str, path: Any, lines: np.ndarray) -> ParseError:
    return ParseError(f"column {name} value {token} in defect record {k + 1} is outside the range of {what}",
                      path=path, line=int(lines[k]) if k < len(lines) else None, record="DefectList")


def _first_int64_overflow(clean: pa.Array) -> int | None:
    """Row of the first integer token beyond the int64 range (exact, in Python for the few
    tokens whose magnitude is near or beyond 2**63), or None."""
    f = pc.cast(clean, pa.float64()).to_numpy(zero_copy_only=False)
    for k in np.flatnonzero(np.abs(f) >= 2.0**62).tolist():  # NaN compares False
        tok = clean[k].as_py()
        if tok is not None and not -(2**63) <= int(tok) < 2**63:
            return int(k)
    return None


def _int64(arr: pa.Array) -> pd.arrays.IntegerArray:
    """An Arrow int64 (int32) array as pandas Int64 (Int32), sharing its values buffer (no copy)."""
    values = arr.fill_null(0) if arr.null_count else arr
    mask = arr.is_null().to_numpy(zero_copy_only=False) if arr.null_count else np.zeros(len(arr), bool)
    return pd.arrays.IntegerArray(values.to_numpy(zero_copy_only=False), mask)


def _text(arr: pa.Array) -> Any:
    """A text column; the NA tokens (what :func:`write_klarf` writes for a missing value) are missing."""
    isna = pc.is_in(arr, value_set=pa.array(_NA_TOKENS, arr.type))
    return pd.array(pc.if_else(isna, pa.scalar(None, arr.type), arr).cast(pa.string()).to_pandas(), dtype=STRING)


def _column(arr: pa.Array, name: str, kind: str, path: Any, lines: np.ndarray) -> Any:
    """Convert a column of tokens: kind 'int', 'float', 'auto' (int, float or string) or 'string'.

    An integer beyond the int64 range or a number beyond the float64 range is a ParseError
    naming the line in an 'int' or 'float' column; an 'auto' column holding one keeps its
    values as the exact text.
    """
    if pa.types.is_integer(arr.type) and kind != "string":
        if kind == "float":
            return pc.cast(arr, pa.float64()).to_numpy(zero_copy_only=False)
        return _int64(arr if arr.type in (pa.int32(), pa.int64()) else pc.cast(arr, pa.int64()))
    if pa.types.is_floating(arr.type) and kind != "string":
        f = pc.cast(arr, pa.float64()).to_numpy(zero_copy_only=False)
        inf = np.isinf(f)
        if inf.any():
            raise _out_of_range(name, f[int(np.flatnonzero(inf)[0])], int(np.flatnonzero(inf)[0]),
                                "a 64-bit float", path, lines)
        if kind != "int":
            return f
        big = np.abs(f) >= 2.0**63
        if big.any():
            k = int(np.flatnonzero(big)[0])
            raise _out_of_range(name, f"{f[k]:.0f}", k, "64-bit integers", path, lines)
        integral = np.isnan(f) | (f == np.round(f))
        if integral.all():
            return pd.array(f, dtype="Float64").astype("Int64")
        bad = int(np.flatnonzero(~integral)[0])
        raise ParseError(f"column {name} must hold integers; found {f[bad]!r} in defect record {bad + 1}",
                         path=path, line=int(lines[bad]), record="DefectList")
    arr = arr.cast(pa.large_string())
    if kind == "string":
        return _text(arr)
    # fast paths: the whole column converts in one cast
    head = arr.slice(0, 256).to_pylist()
    looks_int = not any(("." in t or "e" in t or "E" in t) for t in head if t is not None)
    if kind in ("int", "auto") and looks_int:
        try:
            return _int64(pc.cast(arr, pa.int64()))
        except pa.ArrowInvalid:
            pass
    if kind in ("float", "auto"):
        try:
            out = pc.cast(arr, pa.float64()).to_numpy(zero_copy_only=False)
            inexact = kind == "auto" and looks_int and bool((np.abs(out) >= 2.0**53).any())
            if not np.isinf(out).any() and not inexact:
                return out
        except pa.ArrowInvalid:
            pass
    isna = pc.is_in(arr, value_set=pa.array(_NA_TOKENS, pa.large_string()))
    clean = pc.if_else(isna, pa.scalar(None, arr.type), arr)
    numeric = pc.match_substring_regex(clean, _NUMBER)
    ok = pc.or_kleene(numeric, isna)
    all_ok = bool(pc.all(pc.fill_null(ok, False)).as_py()) if len(arr) else True
    as_text = _text(arr)
    if not all_ok:
        if kind == "auto":
            return as_text
        bad = np.flatnonzero(~pc.fill_null(ok, False).to_numpy(zero_copy_only=False))[0]
        raise ParseError(f"column {name} must hold numbers; found {arr[int(bad)].as_py()!r} in defect record "
                         f"{bad + 1}", path=path, line=int(lines[bad]), record="DefectList")
    if kind in ("int", "auto"):
        is_int = bool(pc.all(pc.fill_null(pc.match_substring_regex(clean, _INTEGER), True)).as_py()) if len(arr) else True
        if is_int:
            try:
                return _int64(pc.cast(clean, pa.int64()))
            except pa.ArrowInvalid:
                over = _first_int64_overflow(clean)
                if over is None:
                    raise
                if kind == "auto":  # an identifier-like column: keep its exact text
                    return as_text
                raise _out_of_range(name, clean[over].as_py(), over, "64-bit integers", path, lines) from None
        elif kind == "int":
            vals = pc.cast(clean, pa.float64())
            f = vals.to_numpy(zero_copy_only=False)
            big = np.abs(f) >= 2.0**63
            if big.any():
                k = int(np.flatnonzero(big)[0])
                raise _out_of_range(name, arr[k].as_py(), k, "64-bit integers", path, lines)
            if np.all(np.isnan(f) | (f == np.round(f))):
                return pd.array(f, dtype="Float64").astype("Int64")
            bad = int(np.flatnonzero(~(np.isnan(f) | (f == np.round(f))))[0])
            raise ParseError(f"column {name} must hold integers; found {arr[bad].as_py()!r} in defect record "
                             f"{bad + 1}", path=path, line=int(lines[bad]), record="DefectList")
    out = pc.cast(clean, pa.float64()).to_numpy(zero_copy_only=False)
    inf = np.isinf(out)
    if inf.any():
        if kind == "auto":
            return as_text
        k = int(np.flatnonzero(inf)[0])
        raise _out_of_range(name, arr[k].as_py(), k, "64-bit floats", path, lines)
    return out


def _text_column(codes: np.ndarray, names: list[str]) -> pd.Categorical:
    """A text column as a Categorical of Arrow strings: ``names[codes]`` (missing where -1),
    its categories the distinct names in sorted order (the narrow type of the defect table)."""
    values = sorted(set(names))
    order = np.append(pd.Index(values).get_indexer(names), -1) if names else np.full(1, -1)
    dtype = pd.CategoricalDtype(pd.Index(np.asarray(values, dtype=object), dtype=STRING))
    small = np.int8 if len(values) < 127 else np.int16 if len(values) < 32767 else np.int32
    return pd.Categorical.from_codes(order.astype(small)[codes], dtype=dtype, validate=False)


def _const_text(value: str | None, n: int) -> pd.Categorical:
    """A text column holding one value (missing: None) n times."""
    return _text_column(np.zeros(n, np.int8) if value is not None else np.full(n, -1, np.int8),
                        [value] if value is not None else [])


def _as_float(x: Any) -> np.ndarray:
    if isinstance(x, np.ndarray):
        return x.astype(np.float64, copy=False)
    return np.asarray(pd.array(x).to_numpy(dtype="float64", na_value=np.nan))


def _int32(f: np.ndarray) -> pd.arrays.IntegerArray:
    """Whole numbers held as floats (NaN: missing; within the int32 range) as pandas Int32."""
    mask = np.isnan(f)
    return pd.arrays.IntegerArray(np.where(mask, 0.0, f).astype(np.int32), mask)


def _scaled(x: Any, div: float) -> np.ndarray:
    """A length column [um] from the file's unit (``div`` file units per um), without a copy at 1."""
    f = _as_float(x)
    return f if div == 1.0 else f / div


def _kind_18(t: str) -> str:
    t = t.lower()
    if t.startswith(("int", "uint", "short", "long", "char")):
        return "int"
    if t in ("float", "double", "real"):
        return "float"
    return "string"


# ---------------------------------------------------------------------------------------
# per wafer
# ---------------------------------------------------------------------------------------
@dataclass
class _Grid:
    """A wafer's die grid: as the file states it (``pitch``, ``die_origin``, ``center`` in file units,
    ``div`` per um) and in the wafer frame (``new_pitch``, ``new_origin`` [um], ``layout``)."""

    ori: Orientation
    div: float
    pitch: tuple[float, ...] | None
    die_origin: tuple[float, ...]
    center: tuple[float, ...] | None
    diameter_mm: float
    new_pitch: tuple[float, float] | None = None
    new_origin: tuple[float, float] | None = None
    layout: WaferLayout | None = None


def _grid(hdr: dict[str, Any], ori: Orientation, div: float, is18: bool, path: Any, wafer_id: str) -> _Grid:
    """The die grid and wafer layout of a wafer's header, in the wafer frame."""
    pitch = _floats(hdr, "diepitch", 2, path)
    if pitch is not None and not all(np.isfinite(v) and v > 0 for v in pitch):
        raise ParseError(f"DiePitch must be two positive die sizes, got {' '.join(_values(hdr, 'diepitch') or [])}: "
                         "no defect could be placed on the wafer", path=path, line=_line(hdr, "diepitch"),
                         record=hdr["diepitch"][0])
    die_origin = _floats(hdr, "dieorigin", 2, path) or (0.0, 0.0)
    center = _floats(hdr, "samplecenterlocation", 2, path)
    for kw, vals in (("dieorigin", die_origin), ("samplecenterlocation", center)):
        if vals is not None and not all(np.isfinite(v) for v in vals):
            raise ParseError(f"{hdr[kw][0]} must be two finite numbers, got {' '.join(_values(hdr, kw) or [])}",
                             path=path, line=_line(hdr, kw), record=hdr[kw][0])
    size_vals = _values(hdr, "samplesize")
    diameter_mm = 300.0
    try:
        if size_vals and is18:
            diameter_mm = float(size_vals[0]) * 1e-6
        elif size_vals and len(size_vals) >= 2:
            diameter_mm = float(size_vals[1])
        elif size_vals:
            diameter_mm = float("nan")
        else:
            log.info("%s: no SampleSize; assuming a 300 mm wafer", path)
    except ValueError:
        raise ParseError(f"SampleSize must be numbers, got {size_vals!r}", path=path,
                         line=_line(hdr, "samplesize"), record="SampleSize") from None
    if not (np.isfinite(diameter_mm) and diameter_mm > 0):
        warnings.warn(f"{path}, line {_line(hdr, 'samplesize')}: SampleSize {' '.join(size_vals or [])} does not "
                      "give a positive wafer diameter; assuming a 300 mm wafer (defect positions are not affected)",
                      DataQualityWarning, stacklevel=4)
        diameter_mm = 300.0
    layout = None
    new_pitch: tuple[float, float] | None = None
    new_origin: tuple[float, float] | None = None
    if pitch is not None and pitch[0] > 0 and pitch[1] > 0:
        if center is None:
            log.info("%s: no SampleCenterLocation; assuming the wafer centre at the die-grid origin", path)
            center = (0.0, 0.0)
        origin = ((die_origin[0] - center[0]) / div, (die_origin[1] - center[1]) / div)
        spitch = (pitch[0] / div, pitch[1] / div)
        new_pitch, new_origin = grid_to_wafer_frame(spitch, origin, ori)
        layout = WaferLayout(diameter_mm=diameter_mm, die_pitch_um=new_pitch, origin_um=new_origin,
                             edge_exclusion_mm=0.0)
    elif pitch is None:
        log.warning("%s: wafer %r has no DiePitch; no layout and no wafer-frame positions", path, wafer_id)
    return _Grid(ori=ori, div=div, pitch=pitch, die_origin=die_origin, center=center, diameter_mm=diameter_mm,
                 new_pitch=new_pitch, new_origin=new_origin, layout=layout)


def _inspected(rw: RawWafer, grid: _Grid) -> tuple[pd.DataFrame | None, float]:
    """The inspected dies (sample test plan) in the wafer frame, and the area per test [um^2];
    the layout's die set becomes the inspected dies."""
    ori, div = grid.ori, grid.div
    plans = []
    for test_no, plan, _area in rw.tests:
        if len(plan):
            px, py = to_wafer_frame(plan[:, 0], plan[:, 1], ori)
            plans.append(pd.DataFrame({"die_x": px.astype(np.int32), "die_y": py.astype(np.int32),
                                       "test": np.full(len(px), test_no, np.int16)}))
    inspected = pd.concat(plans, ignore_index=True) if plans else None
    if grid.layout is not None and inspected is not None:
        grid.layout = grid.layout.with_die_set(inspected[["die_x", "die_y"]].drop_duplicates())
    areas = [a for _, _, a in rw.tests if a is not None]
    area = areas[0] / (div * div) if areas else np.nan
    return inspected, area


def _defect_columns(rw: RawWafer, path: Any) -> tuple[list[str], dict[str, Any], np.ndarray]:
    """The DefectList columns converted to their kinds, and the file line of each defect."""
    cols = rw.columns
    types = rw.types or ["auto"] * len(cols)
    lines = np.concatenate(rw.chunk_lines) if rw.chunk_lines else np.zeros(0, np.int64)
    missing = [c for c in ("DEFECTID", "XREL", "YREL", "XINDEX", "YINDEX") if c not in cols]
    if missing:
        spec = "Columns of the DefectList" if rw.types else "DefectRecordSpec"
        raise ParseError(f"the {spec} lacks {', '.join(missing)} (found {', '.join(cols[:6]) or 'no column'}{', ...' if len(cols) > 6 else ''}): "
                         "defects cannot be identified and placed", path=path,
                         line=rw.spec_line if rw.spec_line is not None else rw.line,
                         record="DefectList" if rw.types else "DefectRecordSpec")
    conv: dict[str, Any] = {}
    unique = len(set(cols)) == len(cols)
    for c, t in zip(cols, types):
        kind = _kind_18(t) if rw.types else "auto"
        if c in ("DEFECTID", "XINDEX", "YINDEX", "CLASSNUMBER"):
            kind = "int"
        elif c in ("XREL", "YREL", "DSIZE"):
            kind = "float"
        elif c == "IMAGELIST" or t.lower() == "imagelist":
            kind = "string"
        # a column at a time, its parsed pieces dropped once joined: memory holds one column twice
        pieces = [ch.pop(c) if unique else ch[c] for ch in rw.chunks]
        data = pa.concat_arrays(unify_numbers(pieces) or [p.cast(pa.string()) for p in pieces])
        del pieces
        conv[c] = _column(data, c, kind, path, lines)
        del data
    return cols, conv, lines


def _defect_positions(conv: dict[str, Any], grid: _Grid, rw: RawWafer, path: Any, lines: np.ndarray) -> tuple[
        list[np.ndarray], np.ndarray, np.ndarray]:
    """Die indices (x and y, as floats) and in-die offsets [um] of the defects, in the wafer frame."""
    ori, div, pitch, center, die_origin = grid.ori, grid.div, grid.pitch, grid.center, grid.die_origin
    new_pitch, new_origin = grid.new_pitch, grid.new_origin
    i = _as_float(conv["XINDEX"])
    j = _as_float(conv["YINDEX"])
    for name, v in (("XINDEX", i), ("YINDEX", j)):
        big = np.abs(v) > _INT32_MAX  # NaN (missing) compares False
        if big.any():
            k = int(np.flatnonzero(big)[0])
            raise ParseError(f"die index {name} {v[k]:.0f} is outside the 32-bit range of die indices",
                             path=path, line=int(lines[k]) if k < len(lines) else rw.line, record="DefectList")
    xr = _scaled(conv["XREL"], div)
    yr = _scaled(conv["YREL"], div)
    ij = [i, j]  # die indices as floats (NaN: missing), not copied into one array
    if not ori.is_identity:
        if pitch is None:
            raise ParseError("a non-DOWN or mirrored orientation needs DiePitch", path=path, line=rw.line,
                             record="DiePitch")
        spitch = (pitch[0] / div, pitch[1] / div)
        assert center is not None
        x0 = (die_origin[0] - center[0]) / div
        y0 = (die_origin[1] - center[1]) / div
        p = np.vstack([x0 + i * spitch[0] + xr, y0 + j * spitch[1] + yr])
        q = np.vstack(to_wafer_frame(p[0], p[1], ori))
        ij = list(to_wafer_frame(ij[0], ij[1], ori))
        assert new_pitch is not None and new_origin is not None
        xr = q[0] - (new_origin[0] + ij[0] * new_pitch[0])
        yr = q[1] - (new_origin[1] + ij[1] * new_pitch[1])
    return ij, xr, yr


def _defect_frame(conv: dict[str, Any], cols: list[str], rw: RawWafer, hdr: dict[str, Any], grid: _Grid,
                  ij: list[np.ndarray], xr: np.ndarray, yr: np.ndarray, lot_id: str, wafer_id: str,
                  path: Any) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """The canonical defect columns and the file's other columns (lower-cased, in um)."""
    n = len(xr)
    div, layout = grid.div, grid.layout
    di, dj = _int32(ij[0]), _int32(ij[1])
    frame: dict[str, Any] = {
        "lot_id": _const_text(lot_id, n),
        "wafer_id": _const_text(wafer_id, n),
    }
    renumbered = False
    if "DEFECTID" in conv:
        ids = conv["DEFECTID"]
        dup = pd.Series(ids).duplicated().to_numpy()
        if ids.isna().any() or dup.any():
            warnings.warn(f"{path}: wafer {wafer_id!r} has missing or repeated DEFECTIDs; defects are "
                          "numbered 1..n in file order and the file's ids kept as 'klarf_defectid'",
                          DataQualityWarning, stacklevel=4)
            frame["defect_id"] = np.arange(1, n + 1, dtype=np.int64)
            renumbered = True
        else:
            frame["defect_id"] = ids if ids.dtype == "Int64" else pd.array(ids, dtype="Int64")
    if layout is not None:
        x, y = layout.position(ij[0], ij[1], xr, yr)
        frame["x_um"], frame["y_um"] = x, y
    else:
        frame["x_um"] = frame["y_um"] = np.full(n, np.nan)
    frame["die_x"], frame["die_y"] = di, dj
    frame["xrel_um"], frame["yrel_um"] = xr, yr
    if "CLASSNUMBER" in conv:
        # the class names of the few distinct class numbers, not of every row
        codes, numbers = pd.factorize(pd.Series(conv["CLASSNUMBER"]), use_na_sentinel=True)
        lookup = rw.class_lookup
        names = [lookup.get(k) for k in numbers.tolist()] if lookup else [None] * len(numbers)
        unmapped = [k for k, name in enumerate(names) if name is None]
        if unmapped:
            if lookup:
                count = int(np.isin(codes, unmapped).sum())
                log.info("%s: %d defect(s) have class numbers missing from ClassLookup; the number is "
                         "used as the class name", path, count)
            text = pd.Series(numbers).astype("string").tolist()
            names = [text[k] if name is None else name for k, name in enumerate(names)]
        codes = np.where(codes < 0, len(names), codes)  # no class number: unclassified
        frame["defect_class"] = _text_column(codes, [str(x) for x in names] + [UNCLASSIFIED])
    else:
        frame["defect_class"] = _const_text(UNCLASSIFIED, n)
    if "DSIZE" in conv:
        frame["size_um"] = _scaled(conv["DSIZE"], div)
    frame["layer"] = _const_text(_step(hdr), n)
    extras: dict[str, Any] = {}
    if renumbered:
        extras["klarf_defectid"] = conv["DEFECTID"]
    for c in cols:
        if c in _CANONICAL and c != "CLASSNUMBER":
            continue
        name = c.lower()
        if name in _CANON_NAMES:
            name = "klarf_" + name
        v = conv[c]
        if div != 1.0 and c in _LENGTHS | _AREAS:
            v = _as_float(v) / (div if c in _LENGTHS else div * div)
        extras[name] = v
    return pd.DataFrame(frame, copy=False), pd.DataFrame(extras, copy=False) if extras else None


def _step(hdr: dict[str, Any]) -> str | None:
    """The inspection step (layer) of a wafer block: its StepID, None when missing or empty."""
    step = _values(hdr, "stepid")
    return step[0] if step and step[0].strip() else None


def _slot(hdr: dict[str, Any], path: Any) -> Any:
    """The wafer's slot number (Slot / SlotNumber), missing when not a number; a slot number
    beyond the 16-bit range is a ParseError naming its line."""
    kw = "slot" if "slot" in hdr else "slotnumber"
    slot_vals = _values(hdr, kw)
    try:
        slot = int(slot_vals[0]) if slot_vals else pd.NA
    except ValueError:
        log.info("%s line %s: %s %r is not a number; slot left missing", path, _line(hdr, kw), hdr[kw][0],
                 slot_vals)
        return pd.NA
    if slot is not pd.NA and not -(2**15) <= slot < 2**15:
        raise ParseError(f"slot number {slot} is outside the 16-bit range of slot numbers", path=path,
                         line=_line(hdr, kw), record=hdr[kw][0])
    return slot


def _summary_number(values: list[str], k: int) -> float | None:
    try:
        v = float(values[k])
    except (IndexError, ValueError):
        return None
    return v if np.isfinite(v) else None


def _check_summary(rw: RawWafer, conv: dict[str, Any], div: float, wafer_id: str, path: Any) -> None:
    """Compare the wafer's own totals (SummaryList / TestSummaryList: NDEFECT, NDEFDIE, NDIE,
    DEFDENSITY per test) with its defects and sample test plan; warn on any mismatch.

    DEFDENSITY is defects per cm2 of AreaPerTest (the inspected area). Without a TEST column,
    a single summary row is compared with all defects, several rows by their NDEFECT sum.
    """
    if not rw.summary:
        return
    n = len(conv["XINDEX"])
    test = None
    if "TEST" in conv:
        try:
            test = _as_float(conv["TEST"])
        except (TypeError, ValueError):  # a TEST column of text: the tests cannot be told apart
            log.info("%s: the TEST column of wafer %r is not numeric; its totals are compared over all tests",
                     path, wafer_id)
    dies = np.column_stack([_as_float(conv["XINDEX"]), _as_float(conv["YINDEX"])])
    plans = {t: (plan, area) for t, plan, area in rw.tests}
    problems: list[str] = []
    for table, line in rw.summary:
        rows = len(next(iter(table.values()), []))
        if test is None and rows > 1:
            per_test = [_summary_number(table.get("NDEFECT", []), k) for k in range(rows)]
            if all(v is not None for v in per_test) and sum(v for v in per_test if v is not None) != n:
                problems.append(f"line {line}: NDEFECT sums to {sum(v for v in per_test if v is not None):g} over "
                                f"{rows} tests but the DefectList holds {n}")
            continue
        for k in range(rows):
            t = _summary_number(table.get("TESTNO", []), k)
            sel = np.ones(n, bool) if test is None or t is None else test == t
            what = f"line {line}, test {t:g}" if t is not None else f"line {line}"
            ndef = int(sel.sum())
            stated = _summary_number(table.get("NDEFECT", []), k)
            if stated is not None and stated != ndef:
                problems.append(f"{what}: NDEFECT {stated:g} but the DefectList holds {ndef}")
            stated = _summary_number(table.get("NDEFDIE", []), k)
            ndefdie = len(np.unique(dies[sel], axis=0)) if ndef else 0
            if stated is not None and stated != ndefdie:
                problems.append(f"{what}: NDEFDIE {stated:g} but the defects lie on {ndefdie} die(s)")
            plan, area = plans.get(int(t) if t is not None else -1, (None, None))
            if plan is None and len(plans) == 1:
                plan, area = next(iter(plans.values()))
            stated = _summary_number(table.get("NDIE", []), k)
            if stated is not None and plan is not None and len(plan) and stated != len(plan):
                problems.append(f"{what}: NDIE {stated:g} but the SampleTestPlan lists {len(plan)} dies")
            stated = _summary_number(table.get("DEFDENSITY", []), k)
            if stated is not None and area is not None and area > 0:
                cm2 = area / (div * div) * 1e-8
                density = ndef / cm2
                if not np.isclose(stated, density, rtol=5e-3, atol=1e-9):
                    problems.append(f"{what}: DEFDENSITY {stated:g} but {ndef} defect(s) over the AreaPerTest of "
                                    f"{cm2:g} cm2 give {density:.6g}")
    if problems:
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        warnings.warn(f"{path}: the totals the file states for wafer {wafer_id!r} disagree with its defects: "
                      f"{'; '.join(problems[:5])}{more}", DataQualityWarning, stacklevel=4)


def _wafer_row(hdr: dict[str, Any], lot_id: str, wafer_id: str, n_def: Any, inspected: pd.DataFrame | None,
               area: float, path: Any) -> dict[str, Any]:
    """The wafer table row of a wafer's header."""
    station = _values(hdr, "inspectionstationid")
    setup = _values(hdr, "setupid") or _values(hdr, "recipeid")
    slot = _slot(hdr, path)
    device = _values(hdr, "deviceid")
    return {
        "lot_id": lot_id,
        "wafer_id": wafer_id,
        "product": device[0] if device else None,
        "layer": _step(hdr),
        "slot": slot,
        "inspection_time": _timestamp(_values(hdr, "resulttimestamp")),
        "setup_id": setup[0] if setup else None,
        "inspection_station": " ".join(station) if station else None,
        "n_defects": n_def,
        "n_inspected_dies": len(inspected[["die_x", "die_y"]].drop_duplicates()) if inspected is not None else pd.NA,
        "area_per_test_um2": area,
    }


def _identifiers(rw: RawWafer, index: int, path: Any, stem: str, quiet: bool = False) -> tuple[str, str]:
    """The wafer's lot and wafer ids; a missing or empty one is filled (lot: the file name;
    wafer: its Slot/SlotNumber, else its position in the file) and the assumption logged
    (unless ``quiet``). The header values as found stay in the wafer metadata."""
    hdr = rw.header
    lot_vals = _values(hdr, "lotid")
    lot_id = lot_vals[0] if lot_vals else ""
    if not lot_id.strip():
        lot_id = stem
        if not quiet:
            assume(path, "%s; using the file name %r as lot_id",
                   f"LotID is empty (line {_line(hdr, 'lotid')})" if lot_vals is not None else "no LotID", lot_id)
    wafer_id = rw.wafer_id
    if not wafer_id.strip():
        kw = "slot" if "slot" in hdr else "slotnumber"
        slot_vals = _values(hdr, kw)
        slot = slot_vals[0].strip() if slot_vals else ""
        if slot and slot.lstrip("+-").isdigit():
            wafer_id, source = slot, f"its {hdr[kw][0]} {slot}"
        else:
            wafer_id, source = str(index + 1), f"its position in the file ({index + 1})"
        if not quiet:
            assume(path, "wafer at line %d has an empty WaferID; using %s as wafer_id", rw.line, source)
    return lot_id, wafer_id


def _wafer_tables(rw: RawWafer, index: int, raw: RawFile, path: Any, stem: str) -> dict[str, Any]:
    hdr = rw.header
    is18 = raw.version.startswith("1.") and raw.version not in ("1.0", "1.1", "1.2")
    div = 1000.0 if is18 else 1.0
    lot_id, wafer_id = _identifiers(rw, index, path, stem)
    ori, orient = _orientation(hdr, raw.version, path)
    grid = _grid(hdr, ori, div, is18, path, wafer_id)
    inspected, area = _inspected(rw, grid)
    defects = None
    n_def: Any = pd.NA
    if rw.has_defect_list:
        cols, conv, lines = _defect_columns(rw, path)
        n_def = len(lines)
        ij, xr, yr = _defect_positions(conv, grid, rw, path, lines)
        defects = _defect_frame(conv, cols, rw, hdr, grid, ij, xr, yr, lot_id, wafer_id, path)
        _check_summary(rw, conv, div, wafer_id, path)
    else:
        warnings.warn(f"{path}: wafer {wafer_id!r} (line {rw.line}) has no DefectList; it is listed in "
                      "the wafer table with n_defects missing", DataQualityWarning, stacklevel=3)
    wafer_row = _wafer_row(hdr, lot_id, wafer_id, n_def, inspected, area, path)
    if inspected is not None:
        inspected.insert(0, "wafer_id", wafer_id)
        inspected.insert(0, "lot_id", lot_id)
    meta: dict[str, Any] = {st[0]: list(st[1]) for st in hdr.values()}
    meta["_orientation"] = orient
    return {"key": (lot_id, wafer_id), "defects": defects, "wafer": wafer_row, "layout": grid.layout,
            "inspected": inspected, "meta": meta, "line": rw.line}


def _merge_steps(parts: list[dict[str, Any]], path: Any) -> list[dict[str, Any]]:
    """One part per wafer: blocks of one wafer at different inspection steps (StepID) are merged,
    each defect keeping its own ``layer``; the same wafer twice at one step is a ParseError."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for part in parts:
        same = groups.setdefault(part["key"], [])
        layer = part["wafer"]["layer"]
        if any(q["wafer"]["layer"] == layer for q in same):
            step = f" at step {layer!r}" if layer is not None else ""
            raise ParseError(f"wafer {part['key'][1]!r} of lot {part['key'][0]!r} appears twice{step} (first at "
                             f"line {same[0]['line']})", path=path, line=part["line"], record="WaferID")
        same.append(part)
    return [g[0] if len(g) == 1 else _merge_wafer(g, path) for g in groups.values()]


def _merge_wafer(group: list[dict[str, Any]], path: Any) -> dict[str, Any]:
    first = group[0]
    lot_id, wafer_id = first["key"]
    layers = [q["wafer"]["layer"] for q in group]
    log.info("%s: wafer %r of lot %r is inspected at %d steps (%s); its blocks are merged, each defect keeping its "
             "layer", path, wafer_id, lot_id, len(group), ", ".join(str(x) for x in layers))
    with_defects = [q["defects"] for q in group if q["defects"] is not None]
    defects = None
    if with_defects:
        core = pd.concat([c for c, _ in with_defects], ignore_index=True)
        extras_list = [e if e is not None else pd.DataFrame(index=c.index) for c, e in with_defects]
        extras = pd.concat(extras_list, ignore_index=True)
        ids = core["defect_id"]
        if ids.duplicated().any():
            warnings.warn(f"{path}: wafer {wafer_id!r} repeats DEFECTIDs across its inspection steps "
                          f"({', '.join(str(x) for x in layers)}); defects are numbered 1..n in file order and the "
                          "file's ids kept as 'klarf_defectid'", DataQualityWarning, stacklevel=4)
            if "klarf_defectid" not in extras.columns:
                extras["klarf_defectid"] = ids.to_numpy()
            core["defect_id"] = np.arange(1, len(core) + 1, dtype=np.int64)
        defects = (core, extras if len(extras.columns) else None)
    row = dict(first["wafer"])
    row["layer"] = ", ".join(x for x in layers if x is not None) or None
    counts = [q["wafer"]["n_defects"] for q in group]
    row["n_defects"] = pd.NA if all(pd.isna(c) for c in counts) else int(sum(c for c in counts if not pd.isna(c)))
    insp_list = [q["inspected"] for q in group if q["inspected"] is not None]
    inspected = pd.concat(insp_list, ignore_index=True).drop_duplicates(ignore_index=True) if insp_list else None
    if inspected is not None:
        row["n_inspected_dies"] = len(inspected[["die_x", "die_y"]].drop_duplicates())
    layout = next((q["layout"] for q in group if q["layout"] is not None), None)
    if layout is not None and inspected is not None and layout.die_set is not None:
        layout = layout.with_die_set(inspected[["die_x", "die_y"]].drop_duplicates())
    meta = dict(first["meta"])
    meta["_steps"] = {x: q["meta"] for x, q in zip(layers, group)}
    return {"key": first["key"], "defects": defects, "wafer": row, "layout": layout, "inspected": inspected,
            "meta": meta, "line": first["line"]}


def parse_klarf_text(text: str | TextStream, path: Any) -> RawFile:
    """Parse KLARF text (either syntax), whole or as a :class:`TextStream`, into raw wafers."""
    s = text if isinstance(text, TextStream) else TextStream(text)
    while not s.eof and len(s.text.lstrip()) < 64:
        s.fill()
    if s.text.lstrip()[:64].lower().startswith("record"):
        return parse_18(s, path)
    return parse_12(s, path)


def _parse(p: Path, chunk_size: int | None) -> RawFile:
    """The raw wafers of a file, read in chunks of ``chunk_size`` bytes (None: the whole text at once).

    The chunked parse gives what the whole-text parse gives; where it cannot promise that (a
    defect list with quoted strings, or pieces of one list whose column types differ) the
    file is parsed again as a whole.
    """
    if chunk_size is not None:
        if chunk_size < 1:
            raise YieldkitValueError(f"The 'chunk_size' argument of read_klarf must be >= 1. Got {chunk_size!r} "
                                     "instead.")
        for encoding in ("utf-8-sig", "latin-1"):
            stream = TextStream(chunks=text_chunks(p, chunk_size, encoding))
            try:
                return parse_klarf_text(stream, p)
            except NotUtf8:
                log.info("%s: not UTF-8; decoding as Latin-1", p)
            except Restart as why:
                log.info("%s: %s; parsing the whole text at once", p, why)
                break
            finally:
                stream.close()
    return parse_klarf_text(_read_text(p), p)


def _read_text(path: Path) -> str:
    try:
        raw = path.read_bytes()
    except IsADirectoryError:
        raise ParseError("is a directory, not a KLARF file", path=path) from None
    if raw.startswith(b"\x1f\x8b"):
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise ParseError(f"cannot decompress: {exc}", path=path) from exc
    nul = raw.find(b"\x00")
    if nul >= 0:
        raise ParseError("binary content (NUL byte) in a KLARF text file", path=path, offset=nul)
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        log.info("%s: not UTF-8; decoding as Latin-1", path)
        return raw.decode("latin-1")


def read_klarf(path: str | os.PathLike[str], *, chunk_size: int | None = CHUNK_SIZE) -> KlarfData:
    """Read a KLARF 1.1, 1.2 or 1.8 file into canonical tables.

    Parameters
    ----------
    path : path-like
        The KLARF file (optionally gzip-compressed).
    chunk_size : int or None
        The file is read this many bytes at a time [bytes]: defect lists are parsed piece by
        piece into typed columns and the text is never held whole, so the peak memory is
        about the tables read plus a few chunks. None reads the whole text at once. The
        tables are the same either way.

    Returns
    -------
    KlarfData
        ``.defects`` (canonical defect table, wafer frame [um]), ``.wafers``, ``.layouts``
        (one :class:`~yieldkit.layout.WaferLayout` per wafer), ``.inspected_dies``,
        ``.version`` and the original header values in ``.metadata`` /
        ``.wafer_metadata``.

    Raises
    ------
    ParseError
        Not a KLARF file, an unsupported FileVersion (e.g. 2.0), a truncated file, rows that
        do not match the DefectRecordSpec, non-numeric values where numbers are required.
        The error names the file, the line and the statement or list. So is a defect list
        without DEFECTID, XREL, YREL, XINDEX or YINDEX, an integer beyond the int64 range (or
        a slot or test number beyond 16 bits), and a DiePitch that is not two positive
        numbers.

    Notes
    -----
    Positions: the lower-left corner of die (0, 0) in the wafer frame is
    ``DieOrigin - SampleCenterLocation``; a defect at ``(XINDEX, YINDEX, XREL, YREL)`` is at
    ``x = x0 + XINDEX * pitch_x + XREL``. KLARF 1.8 values in nm (positions, sizes) and nm^2
    (DEFECTAREA, AreaPerTest) are converted to um and um^2. A file whose
    ``OrientationMarkLocation`` is not DOWN, or whose ``CoordinatesMirrored`` is YES, is
    rotated/mirrored into the wafer frame (notch down); die indices are transformed with it
    and the original orientation is kept in ``wafer_metadata[...]["_orientation"]``.
    Repeated or missing DEFECTIDs are renumbered 1..n (with a warning), the file's ids kept
    as ``klarf_defectid``. Integer-looking columns come back as Int32 (Int64 when a value
    does not fit 32 bits; ``defect_id`` is Int64), others as float64; the repeated text
    columns as Categoricals (:func:`~yieldkit.io.klarf.concat_defects` joins such tables).
    KLARF 1.1/1.2 header statements may come in any order, before ``FileVersion`` too;
    ``FileVersion`` must be present, known, and come before the first ``WaferID``. As
    KLARF statements hold until redefined, a ``SampleTestPlan``/``AreaPerTest`` before the
    first ``WaferID`` is the lot's plan: every wafer that declares none of its own uses it.
    One wafer found in several blocks with different ``StepID`` (inspection steps) is one
    wafer whose defects keep their own ``layer``; its wafer row lists the layers and sums
    the defects. An empty LotID or WaferID is filled (the file name; the Slot, else the
    wafer's position) and logged. The totals the file states (SummaryList or 1.8
    TestSummaryList: NDEFECT, NDEFDIE, NDIE and DEFDENSITY per test, DEFDENSITY being defects
    per cm^2 of AreaPerTest; the counts of SampleTestPlan, ClassLookup and 1.8 Fields) are
    compared with what was read, and a mismatch is a
    :class:`~yieldkit.errors.DataQualityWarning` naming the line and the numbers.

    Examples
    --------
    >>> import tempfile, pathlib, pandas as pd, yieldkit as yk
    >>> lay = yk.WaferLayout(diameter_mm=200, die_pitch_um=(5000, 5000))
    >>> d = pd.DataFrame({"lot_id": ["L1"] * 2, "wafer_id": ["01"] * 2, "defect_id": [1, 2],
    ...                   "die_x": [0, 1], "die_y": [0, -1], "xrel_um": [10.0, 20.5], "yrel_um": [5.0, 7.25],
    ...                   "defect_class": ["particle", "scratch"], "size_um": [0.5, 3.0]})
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "w.klarf"
    >>> _ = yk.write_klarf(d, p, layout=lay)
    >>> k = yk.read_klarf(p)
    >>> k.defects[["die_x", "die_y", "xrel_um", "defect_class"]].to_dict("list")
    {'die_x': [0, 1], 'die_y': [0, -1], 'xrel_um': [10.0, 20.5], 'defect_class': ['particle', 'scratch']}
    >>> k.defects["x_um"].tolist()
    [-2490.0, 2520.5]
    """
    p = Path(path)
    if not p.exists():
        raise InputNotFoundError(f"{p}: no such file or directory")
    raw = _parse(p, chunk_size)
    for note in raw.notes:
        warnings.warn(note, DataQualityWarning, stacklevel=2)
    if not raw.wafers:
        raise ParseError("the file holds no WaferID / WaferRecord", path=p, record="WaferID")
    stem = p.name.split(".")[0]
    keys = [_identifiers(rw, i, p, stem, quiet=True) for i, rw in enumerate(raw.wafers)]
    if len(set(keys)) < len(keys):  # a wafer inspected at several steps: its blocks are merged
        parts = _merge_steps([_wafer_tables(rw, i, raw, p, stem) for i, rw in enumerate(raw.wafers)], p)
        defects = _defect_table([pt["defects"] for pt in parts if pt["defects"] is not None], str(p))
    else:
        parts, defects = _wafer_by_wafer(raw, p, stem)
    wafers = pd.DataFrame([pt["wafer"] for pt in parts])
    wafers["n_defects"] = pd.array(wafers["n_defects"].tolist(), dtype="Int64")
    wafers["n_inspected_dies"] = pd.array(wafers["n_inspected_dies"].tolist(), dtype="Int64")
    wafers["slot"] = pd.array(wafers["slot"].tolist(), dtype="Int16")
    for c in ("product", "layer", "setup_id", "inspection_station"):
        wafers[c] = pd.array(wafers[c].tolist(), dtype=STRING)
    wafers = validate_wafers(wafers, source=str(p))
    inspected = [pt["inspected"] for pt in parts if pt["inspected"] is not None]
    if inspected:
        insp = pd.concat(inspected, ignore_index=True)
        insp["lot_id"] = insp["lot_id"].astype(STRING)
        insp["wafer_id"] = insp["wafer_id"].astype(STRING)
    else:
        insp = pd.DataFrame({"lot_id": pd.array([], dtype=STRING), "wafer_id": pd.array([], dtype=STRING),
                             "die_x": np.zeros(0, np.int32), "die_y": np.zeros(0, np.int32),
                             "test": np.zeros(0, np.int16)})
    layouts = {pt["key"]: pt["layout"] for pt in parts if pt["layout"] is not None}
    log.debug("%s: KLARF %s, %d wafer(s), %d defect(s)", p, raw.version, len(wafers), len(defects))
    return KlarfData(
        defects=defects,
        wafers=wafers,
        layouts=layouts,
        inspected_dies=insp,
        version=raw.version,
        metadata={st[0]: list(st[1]) for st in raw.header.values()},
        wafer_metadata={pt["key"]: pt["meta"] for pt in parts},
        path=str(p),
    )


def _joined(core: pd.DataFrame, extras: pd.DataFrame | None, source: str) -> pd.DataFrame:
    """A wafer's validated canonical columns followed by the file's other columns."""
    defects = validate_defects(core, source=source)
    return defects if extras is None else pd.concat([defects, extras.reset_index(drop=True)], axis=1)


def _defect_table(pairs: list[tuple[pd.DataFrame, pd.DataFrame | None]], source: str) -> pd.DataFrame:
    """The defect table of the wafers' (canonical columns, other columns) pairs, as one, in the
    narrow types of :mod:`~yieldkit.io.klarf.stack`."""
    frames = [pt[0] for pt in pairs]
    extra_frames = [pt[1] if pt[1] is not None else pd.DataFrame(index=pt[0].index) for pt in pairs]
    if frames:
        core = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
        extras = pd.concat(extra_frames, ignore_index=True) if len(extra_frames) > 1 else extra_frames[0]
    else:
        core = _empty_core()
        extras = pd.DataFrame()
    defects = validate_defects(core, source=source)
    if len(extras.columns):
        defects = pd.concat([defects, extras.reset_index(drop=True)], axis=1)
    return narrow_frame(defects)


def _wafer_by_wafer(raw: RawFile, p: Path, stem: str) -> tuple[list[dict[str, Any]], pd.DataFrame]:
    """The wafers' parts and the defect table, converting one wafer at a time: each wafer's
    typed columns are released once converted, and its validated defects kept in the narrow
    types (:class:`~yieldkit.io.klarf.stack.Stack`). The same table as validating the
    concatenated wafers (validation is row by row, defect ids unique per wafer); a validation
    error is the one the whole table gives, raised after every wafer is converted, as then."""
    source = str(p)
    stack = Stack()
    parts = []
    failed: list[pd.DataFrame] | None = None
    for i, rw in enumerate(raw.wafers):
        part = _wafer_tables(rw, i, raw, p, stem)
        rw.chunks.clear()
        rw.chunk_lines.clear()
        if part["defects"] is not None:
            core, extras = part["defects"]
            part["defects"] = None
            if failed is None:
                try:
                    stack.add(_joined(core, extras, source))
                except SchemaError:
                    failed = [f[[c for c in f.columns if c in core.columns]] for f in stack.frames()]
                    for f in failed:  # the table as validation sees it: text as Arrow strings
                        for c in f.columns:
                            if isinstance(f[c].dtype, pd.CategoricalDtype):
                                f[c] = f[c].astype(STRING)
            if failed is not None:
                failed.append(core)
            del core, extras
        parts.append(part)
        release_unused()
    if failed is not None:
        validate_defects(pd.concat(failed, ignore_index=True), source=source)
        raise AssertionError("a wafer fails validation but the table passes")  # pragma: no cover
    if not stack:
        return parts, _defect_table([], source)
    table = stack.result()
    release_unused()  # what joining the wafers freed, before the caller goes on
    return parts, table


def _empty_core() -> pd.DataFrame:
    return pd.DataFrame({
        "lot_id": pd.array([], dtype=STRING), "wafer_id": pd.array([], dtype=STRING),
        "defect_id": np.zeros(0, np.int64), "x_um": np.zeros(0), "y_um": np.zeros(0),
        "die_x": pd.array([], dtype="Int32"), "die_y": pd.array([], dtype="Int32"),
        "xrel_um": np.zeros(0), "yrel_um": np.zeros(0),
        "defect_class": pd.array([], dtype=STRING), "size_um": np.zeros(0), "layer": pd.array([], dtype=STRING),
    })

