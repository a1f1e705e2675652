"""Write canonical defect tables as KLARF 1.2 or 1.8 (atomically).

The output is what :func:`yieldkit.read_klarf` reads back identically, and what common
line-oriented peers accept: one statement per line, one defect per line starting with a
space, quoted identifiers, and the usual DefectRecordSpec columns (XSIZE, YSIZE,
DEFECTAREA, DSIZE, CLASSNUMBER, TEST are always written; 0 where the table has no value).
Every inspection test named in the ``test`` column (test 1 when there is none; a missing
value is the first test) is declared: one InspectionTest block and SummaryList row (1.2), or
one TestRecord (1.8), per test.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ...errors import YieldkitValueError, check_choice
from ...frame import ANGLE_WORDS, WAFER_FRAME, from_wafer_frame
from ...layout import WaferLayout
from ...schema import UNCLASSIFIED, validate_defects
from ..atomic import atomic_write

log = logging.getLogger(__name__)

__all__ = ["write_klarf"]

#: columns written from the table when present (lower-case table name -> KLARF name)
_STANDARD = ("xsize", "ysize", "defectarea")
_SKIP = {"lot_id", "wafer_id", "defect_id", "x_um", "y_um", "die_x", "die_y", "xrel_um", "yrel_um",
         "defect_class", "size_um", "layer", "classnumber", "klarf_defectid", "test", "imagelist"}


def _fmt_float(values: np.ndarray) -> pa.Array:
    """Shortest round-trip text of floats, always with a '.' or exponent; NaN -> NA."""
    v = np.asarray(values, dtype=np.float64)
    if np.isinf(v).any():
        raise YieldkitValueError("KLARF cannot hold infinite values")
    s = pc.cast(pa.array(v, from_pandas=True), pa.string())
    needs_dot = pc.invert(pc.match_substring_regex(s, r"[.eEn]"))
    s = pc.if_else(pc.fill_null(needs_dot, False), pc.binary_join_element_wise(s, ".0", ""), s)
    return pc.fill_null(s, "NA")


def _fmt_int(values: Any) -> pa.Array:
    arr = pa.array(pd.array(values, dtype="Int64"), type=pa.int64())
    return pc.fill_null(pc.cast(arr, pa.string()), "NA")


def _fmt_nm(values: np.ndarray) -> pa.Array:
    """um -> nm text: integers when the value is a whole number of nm, shortest float otherwise."""
    v = np.asarray(values, dtype=np.float64) * 1000.0
    r = np.round(v)
    whole = np.isfinite(v) & (np.abs(v - r) <= 1e-6 * np.maximum(1.0, np.abs(v)))
    ints = pc.cast(pa.array(np.where(whole, r, 0).astype(np.int64)), pa.string())
    return pc.if_else(pa.array(whole), ints, _fmt_float(v))


def _layout_for(layout: Any, key: tuple[str, str]) -> WaferLayout:
    if isinstance(layout, WaferLayout):
        return layout
    if isinstance(layout, Mapping) and key in layout:
        return layout[key]
    raise YieldkitValueError(
        f"The 'layout' argument of write_klarf must be a WaferLayout or a mapping (lot_id, wafer_id) -> "
        f"WaferLayout covering every wafer. Got {type(layout).__name__} without wafer {key!r} instead."
    )


def _class_numbers(defects: pd.DataFrame) -> tuple[np.ndarray, dict[int, str]]:
    names = defects["defect_class"].astype(str)
    if "classnumber" in defects.columns and defects["classnumber"].notna().all():
        nums = defects["classnumber"].to_numpy(dtype=np.int64)
        pairs = pd.DataFrame({"n": nums, "c": names.to_numpy()}).drop_duplicates()
        if not pairs["n"].duplicated().any() and not pairs["c"].duplicated().any():
            return nums, dict(zip(pairs["n"].tolist(), pairs["c"].tolist()))
    uniq = sorted(set(names.unique().tolist()) - {UNCLASSIFIED})
    lookup = {0: UNCLASSIFIED}
    lookup.update({k + 1: c for k, c in enumerate(uniq)})
    rev = {c: k for k, c in lookup.items()}
    codes = names.map(rev).to_numpy(dtype=np.int64)
    if UNCLASSIFIED not in set(names.unique().tolist()):
        lookup.pop(0)
    return codes, lookup


def _rows(cols: list[pa.Array], end: str = "") -> str:
    """One line per row: a leading space, values separated by spaces, ``end`` before each
    line break except the last; built in Arrow, not row by row."""
    if not cols or len(cols[0]) == 0:
        return ""
    lead = pa.array(np.zeros(len(cols[0]), np.int64)).cast(pa.string())
    lead = pc.binary_replace_slice(lead, 0, 1, "")
    joined = pc.binary_join_element_wise(lead, *cols, " ")
    lines = pc.binary_join_element_wise(joined, end + "\n", "").cast(pa.large_string())
    offsets = np.frombuffer(lines.buffers()[1], dtype=np.int64)[lines.offset : lines.offset + len(lines) + 1]
    data = lines.buffers()[2]
    text = data[int(offsets[0]) : int(offsets[-1])].to_pybytes().decode("utf-8")
    return text[: -1 - len(end)] if end else text[:-1]


def _quote(s: Any) -> str:
    text = "" if s is None or (isinstance(s, float) and np.isnan(s)) else str(s)
    if '"' in text or "\n" in text:
        raise YieldkitValueError(f"KLARF strings cannot hold quotes or line breaks: {text!r}")
    return f'"{text}"'


def write_klarf(
    defects: pd.DataFrame,
    path: str | os.PathLike[str],
    version: str = "1.2",
    layout: WaferLayout | Mapping[tuple[str, str], WaferLayout] | None = None,
    *,
    wafers: pd.DataFrame | None = None,
    timestamp: datetime | None = None,
) -> Path:
    """Write a defect table as a KLARF file (atomically).

    Parameters
    ----------
    defects : DataFrame
        Defect table (canonical names or aliases); several wafers (and lots) are allowed.
    path : path-like
        Output file; written through a temporary file and renamed.
    version : {"1.2", "1.8"}
        KLARF 1.2 (statements, um) or 1.8 (Record/Field/List, nm).
    layout : WaferLayout or mapping, optional
        The die grid, one for all wafers or ``{(lot_id, wafer_id): layout}`` (e.g.
        ``KlarfData.layouts``). Required: KLARF positions are die-relative. Its die set, if
        any, is written as the SampleTestPlan.
    wafers : DataFrame, optional
        Wafer table supplying ``product`` (DeviceID), ``slot``, ``setup_id`` and the
        ``layer`` of defects that have none.
    timestamp : datetime, optional
        File and result timestamp; default now.

    Returns
    -------
    Path
        The file written.

    Raises
    ------
    YieldkitValueError
        Unknown version, missing layout, infinite values, strings with quotes.
    SchemaError
        The table is not a valid defect table.

    Notes
    -----
    The layout's die-(0, 0) corner is written as ``DieOrigin 0 0`` with
    ``SampleCenterLocation = -origin``, orientation DOWN, not mirrored (the wafer frame).
    Defects without ``die_x``/``xrel_um`` are placed on the grid from ``x_um``/``y_um``.
    Class names are written through a ClassLookup (the table's ``classnumber`` column is
    reused when it is consistent with the names). A defect's ``layer`` is its inspection
    step: each (lot, wafer, layer) is written as a wafer block of its own with that
    ``StepID`` (1.2), or in a ``LotRecord`` carrying it (1.8), which :func:`read_klarf`
    merges back into one wafer. The table's other numeric and string columns are written as
    further DefectRecordSpec columns under their upper-case names.
    """
    check_choice(version, ("1.2", "1.8"), name="version", where="write_klarf")
    if layout is None:
        raise YieldkitValueError("The 'layout' argument of write_klarf is required: KLARF stores die-relative "
                                 "positions, so the die pitch and origin must be known. Got None instead.")
    d = validate_defects(defects, source="<defects>")
    ts = timestamp or datetime.now().replace(microsecond=0)
    wafer_info: dict[tuple[str, str], dict[str, Any]] = {}
    if wafers is not None:
        for row in wafers.to_dict("records"):
            wafer_info[(str(row["lot_id"]), str(row["wafer_id"]))] = {str(k): v for k, v in row.items()}
    # one wafer block per (lot, wafer, layer): a KLARF block has one StepID
    d = d.assign(_layer=_layers(d, wafer_info))
    keys = d[["lot_id", "wafer_id"]].astype(str).assign(_layer=d["_layer"]).drop_duplicates()
    groups: list[tuple[str, str, str | None]] = [
        (lot, wafer, None if pd.isna(layer) else str(layer)) for lot, wafer, layer in keys.itertuples(index=False)]
    if not groups and wafer_info:
        groups = [(lot, wafer, _str_or_none(info.get("layer"))) for (lot, wafer), info in wafer_info.items()]
    if not groups:
        raise YieldkitValueError("write_klarf needs at least one defect or a wafers table naming the wafers")
    nums, lookup = _class_numbers(d) if len(d) else (np.zeros(0, np.int64), {0: UNCLASSIFIED})
    d = d.assign(_cls=nums)
    extra = _extra_columns(d, version == "1.8")
    layer_code, layer_names = pd.factorize(d["_layer"], use_na_sentinel=True)
    code_of = {str(v): k for k, v in enumerate(layer_names)}
    rows_of = (d.groupby([d["lot_id"].astype(str), d["wafer_id"].astype(str), layer_code], sort=False).indices
               if len(d) else {})
    parts = []
    if version == "1.2":
        parts.append(_header_12(ts))
    for lot, wafer, layer in groups:
        lay = _layout_for(layout, (lot, wafer))
        code = -1 if layer is None else code_of.get(layer, -2)  # -2: a wafer without defects
        sub = d.iloc[rows_of.get((lot, wafer, code), np.zeros(0, np.int64))]
        info = wafer_info.get((lot, wafer), {})
        if version == "1.2":
            parts.append(_wafer_12(sub, lot, wafer, layer, lay, info, lookup, ts, extra))
        else:
            parts.append(_wafer_18(sub, wafer, lay, info, ts, extra))
    if version == "1.2":
        parts.append("EndOfFile;\n")
        text = "".join(parts)
    else:
        text = _wrap_18(parts, groups, lookup, ts)
    with atomic_write(path) as fh:
        fh.write(text)
    log.debug("wrote %d defect(s) of %d wafer(s) to %s (KLARF %s)", len(d), len(groups), path, version)
    return Path(path)


def _positions(sub: pd.DataFrame, lay: WaferLayout) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    n = len(sub)
    have_die = all(c in sub.columns for c in ("die_x", "die_y", "xrel_um", "yrel_um"))
    if have_die:
        i = sub["die_x"].to_numpy(dtype="float64", na_value=np.nan)
        j = sub["die_y"].to_numpy(dtype="float64", na_value=np.nan)
        xr = sub["xrel_um"].to_numpy(dtype="float64", na_value=np.nan)
        yr = sub["yrel_um"].to_numpy(dtype="float64", na_value=np.nan)
    else:
        i = j = xr = yr = np.full(n, np.nan)
    gap = np.isnan(i) | np.isnan(j) | np.isnan(xr) | np.isnan(yr)
    if gap.any():
        if "x_um" not in sub.columns:
            raise YieldkitValueError("write_klarf: some defects have neither a die position nor x_um/y_um")
        gi, gj, gx, gy = lay.die_index(sub["x_um"].to_numpy()[gap], sub["y_um"].to_numpy()[gap])
        if np.isnan(gx).any():
            raise YieldkitValueError("write_klarf: some defects have no position at all")
        i, j, xr, yr = i.copy(), j.copy(), xr.copy(), yr.copy()
        i[gap], j[gap], xr[gap], yr[gap] = gi, gj, gx, gy
    # the file is written in the wafer frame (OrientationMarkLocation DOWN, not mirrored)
    i, j = from_wafer_frame(i, j, WAFER_FRAME)
    return i.astype(np.int64), j.astype(np.int64), xr, yr


def _str_or_none(value: Any) -> str | None:
    return None if value is None or (not isinstance(value, str) and pd.isna(value)) or value == "" else str(value)


def _layers(d: pd.DataFrame, wafer_info: dict[tuple[str, str], dict[str, Any]]) -> pd.Series:
    """Each defect's layer (its StepID): the ``layer`` column, else the wafer table's."""
    if "layer" in d.columns:
        layer = d["layer"].astype("object").where(d["layer"].notna() & (d["layer"].astype(str) != ""), None)
    else:
        layer = pd.Series([None] * len(d), index=d.index, dtype="object")
    if layer.isna().any() and wafer_info:
        keys = list(zip(d["lot_id"].astype(str), d["wafer_id"].astype(str)))
        fill = pd.Series([_str_or_none(wafer_info.get(k, {}).get("layer")) for k in keys], index=d.index,
                         dtype="object")
        layer = layer.where(layer.notna(), fill)
    return layer


#: the KLARF names write_klarf itself writes; a table column of the same name is not written again
_WRITTEN = {"DEFECTID", "XREL", "YREL", "XINDEX", "YINDEX", "XSIZE", "YSIZE", "DEFECTAREA", "DSIZE", "CLASSNUMBER",
            "TEST", "IMAGELIST"}


def _extra_columns(d: pd.DataFrame, v18: bool) -> list[str]:
    """The table's other columns that KLARF can carry (numbers, and strings that a KLARF string
    can hold, under a plain name)."""
    out = []
    dropped = []
    for c in d.columns:
        if c in _SKIP or str(c).startswith("_") or c in _STANDARD:
            continue
        s = d[c]
        plain = str(c).replace("_", "").isalnum() and str(c).upper() not in _WRITTEN
        numeric = pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype)
        text = pd.api.types.is_string_dtype(s.dtype) and bool(s.dropna().map(type).eq(str).all())
        if text and s.astype("string").str.contains(_UNWRITABLE[v18], regex=True).fillna(False).any():
            text = False
        if plain and (numeric or text):
            out.append(c)
        else:
            dropped.append(str(c))
    if dropped:
        log.info("write_klarf: column(s) %s are not written (KLARF holds numbers, and strings without quotes%s or "
                 "line breaks, under plain names)", ", ".join(dropped), ", braces, ';'" if v18 else "")
    return out


#: characters a KLARF string cannot hold (1.2, 1.8)
_UNWRITABLE = {False: '["\n\r]', True: '["\n\r{};]'}


def _fmt_str(s: pd.Series, v18: bool) -> pa.Array:
    """Quoted strings; missing -> NA."""
    text = s.astype("string")
    bad = text.str.contains(_UNWRITABLE[v18], regex=True).fillna(False)
    if bad.any():
        what = "quotes, braces, ';' or line breaks" if v18 else "quotes or line breaks"
        raise YieldkitValueError(f"KLARF {'1.8' if v18 else '1.2'} strings cannot hold {what}: "
                                 f"{text[bad].iloc[0]!r} in column {s.name!r}")
    arr = pa.array(text.to_numpy(dtype=object, na_value=None), type=pa.string())
    quoted = pc.binary_join_element_wise(pa.scalar('"'), arr, pa.scalar('"'), "")
    return pc.fill_null(quoted, "NA")


def _value_cols(sub: pd.DataFrame, lay: WaferLayout, nm: bool,
                extra: list[str]) -> tuple[list[str], list[str], list[pa.Array]]:
    """KLARF column names, 1.8 types and formatted values of the defect rows."""
    n = len(sub)
    i, j, xr, yr = _positions(sub, lay)
    length = _fmt_nm if nm else _fmt_float
    size = sub["size_um"].to_numpy(dtype="float64", na_value=np.nan) if "size_um" in sub.columns else np.zeros(n)
    names = ["DEFECTID", "XREL", "YREL", "XINDEX", "YINDEX"]
    types = ["int32", "double", "double", "int32", "int32"]
    vals = [_fmt_int(sub["defect_id"]), length(xr), length(yr), _fmt_int(i), _fmt_int(j)]
    for c in _STANDARD:
        v = sub[c].to_numpy(dtype="float64", na_value=np.nan) if c in sub.columns else np.zeros(n)
        names.append(c.upper())
        types.append("double")
        if nm:
            vals.append(_fmt_nm(v) if c != "defectarea" else _fmt_float(v * 1e6))
        else:
            vals.append(_fmt_float(v))
    names += ["DSIZE", "CLASSNUMBER", "TEST"]
    types += ["double", "int32", "int32"]
    vals += [length(size), _fmt_int(sub["_cls"]), _fmt_int(_tests_used(sub)[1])]
    for c in extra:
        s = sub[c]
        names.append(str(c).upper())
        if pd.api.types.is_string_dtype(s.dtype):
            types.append("string")
            vals.append(_fmt_str(s, nm))
        elif pd.api.types.is_integer_dtype(s.dtype):
            types.append("int32")
            vals.append(_fmt_int(s))
        else:
            types.append("double")
            vals.append(_fmt_float(s.to_numpy(dtype="float64", na_value=np.nan)))
    return names, types, vals


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else repr(float(x))


def _header_12(ts: datetime) -> str:
    stamp = ts.strftime("%m-%d-%Y %H:%M:%S")
    return (
        "FileVersion 1 2;\n"
        f"FileTimestamp {stamp};\n"
        'InspectionStationID "yieldkit" "export" "1";\n'
        "SampleType WAFER;\n"
    )


def _tests_used(sub: pd.DataFrame) -> tuple[list[int], np.ndarray]:
    """The inspection tests the defects belong to (sorted; [1] when none is given) and each
    defect's test (missing -> the first)."""
    n = len(sub)
    if "test" not in sub.columns:
        return [1], np.ones(n, np.int64)
    t = sub["test"].to_numpy(dtype="float64", na_value=np.nan)
    given = t[~np.isnan(t)]
    if len(given) and not np.array_equal(given, np.round(given)):
        raise YieldkitValueError("The 'test' column of write_klarf must hold whole test numbers.")
    used = sorted({int(v) for v in given}) or [1]
    return used, np.where(np.isnan(t), used[0], t).astype(np.int64)


def _test_plan(lay: WaferLayout) -> np.ndarray | None:
    if lay.die_set is None:
        return None
    return np.column_stack([lay.die_set["die_x"].to_numpy(np.int64), lay.die_set["die_y"].to_numpy(np.int64)])


def _wafer_12(sub: pd.DataFrame, lot: str, wafer: str, layer: str | None, lay: WaferLayout, info: dict[str, Any],
              lookup: dict[int, str], ts: datetime, extra: list[str]) -> str:
    stamp = ts.strftime("%m-%d-%Y %H:%M:%S")
    w, h = lay.die_pitch_um
    x0, y0 = lay.origin_um  # type: ignore[misc]
    product = info.get("product") or "unknown"
    slot = info.get("slot")
    out = [
        f"ResultTimestamp {stamp};\n",
        f"LotID {_quote(lot)};\n",
        f"SampleSize 1 {_num(lay.diameter_mm)};\n",
        f"DeviceID {_quote(product)};\n",
        f"SetupID {_quote(info.get('setup_id') or 'yieldkit')} {stamp};\n",
        f"StepID {_quote(layer or '')};\n",  # every block: KLARF statements hold until redefined
        "SampleOrientationMarkType NOTCH;\n",
        f"OrientationMarkLocation {ANGLE_WORDS[WAFER_FRAME.mark_deg]};\n",
        f"DiePitch {repr(float(w))} {repr(float(h))};\n",
        "DieOrigin 0.0 0.0;\n",
        f"WaferID {_quote(wafer)};\n",
        f"Slot {int(slot) if slot is not None and not pd.isna(slot) else 0};\n",
        f"SampleCenterLocation {repr(0.0 - x0)} {repr(0.0 - y0)};\n",
        f"CoordinatesMirrored {'YES' if WAFER_FRAME.mirrored else 'NO'};\n",
    ]
    cl = "".join(f"\n {k} {_quote(v)}" for k, v in sorted(lookup.items()))
    out.append(f"ClassLookup {len(lookup)}{cl};\n")
    plan = _test_plan(lay)
    used, test_of = _tests_used(sub)
    for t in used:  # every test declared, each over the same dies
        out.append(f"InspectionTest {t};\n")
        if plan is not None:
            rows = "".join(f"\n {a} {b}" for a, b in plan.tolist())
            out.append(f"SampleTestPlan {len(plan)}{rows};\n")
        out.append(f"AreaPerTest {repr(float(lay.n_dies) * w * h)};\n")
    names, _, vals = _value_cols(sub, lay, False, extra)
    out.append(f"DefectRecordSpec {len(names)} {' '.join(names)} ;\n")
    body = _rows(vals)
    out.append(f"DefectList\n{body};\n" if body else "DefectList;\n")
    ndie = len(plan) if plan is not None else lay.n_dies
    pi = pj = np.zeros(0, np.int64)
    if len(sub):
        pi, pj, _, _ = _positions(sub, lay)
    summary = []
    for t in used:
        sel = test_of == t
        ndef = int(sel.sum())
        ndef_die = len(np.unique(np.column_stack([pi[sel], pj[sel]]), axis=0)) if ndef else 0
        dens = ndef / (ndie * w * h * 1e-8) if ndie else 0.0
        summary.append(f"\n {t} {ndef} {dens:.6e} {ndie} {ndef_die}")
    out.append("SummarySpec 5 TESTNO NDEFECT DEFDENSITY NDIE NDEFDIE;\n")
    out.append(f"SummaryList{''.join(summary)};\n")
    return "".join(out)


def _field(name: str, values: list[str]) -> str:
    return f"Field {name} {len(values)} {{{', '.join(values)}}}"


def _wafer_18(sub: pd.DataFrame, wafer: str, lay: WaferLayout, info: dict[str, Any], ts: datetime,
              extra: list[str]) -> str:
    x0, y0 = lay.origin_um  # type: ignore[misc]
    w, h = lay.die_pitch_um
    slot = info.get("slot")
    lines = [
        f'      Record WaferRecord {_quote(wafer)}',
        "      {",
        "        " + _field("DiePitch", [_num(w * 1000), _num(h * 1000)]),
        "        " + _field("DieOrigin", ["0", "0"]),
        "        " + _field("SampleCenterLocation", [_num(-x0 * 1000), _num(-y0 * 1000)]),
        "        " + _field("SampleSize", [_num(lay.diameter_mm * 1e6), "0"]),
        "        " + _field("SlotNumber", [str(int(slot)) if slot is not None and not pd.isna(slot) else "0"]),
        "        " + _field("ResultTimestamp", [_quote(ts.strftime("%Y-%m-%d")), _quote(ts.strftime("%H:%M:%S"))]),
    ]
    names, types, vals = _value_cols(sub, lay, True, extra)
    cols = ", ".join(f"{t} {n}" for t, n in zip(types, names))
    body = _rows(vals, ";")
    lines += [
        "        List DefectList",
        "        {",
        f"          Columns {len(names)} {{ {cols} }}",
        f"          Data {len(sub)}",
        "          {",
    ]
    text = "\n".join(lines) + "\n"
    if body:
        text += body + ";\n"
    text += "          }\n        }\n"
    plan = _test_plan(lay)
    for t in _tests_used(sub)[0]:  # one TestRecord per test used, each over the same dies
        test = [
            f'        Record TestRecord "{t}"',
            "        {",
            "          " + _field("AreaPerTest", [repr(float(lay.n_dies) * w * h * 1e6)]),
        ]
        if plan is not None:
            rows = "".join(f"            {a} {b};\n" for a, b in plan.tolist())
            test += ["          List SampleTestPlanList", "          {",
                     "            Columns 2 { int32 XINDEX, int32 YINDEX }", f"            Data {len(plan)}",
                     "            {"]
            text += "\n".join(test) + "\n" + rows + "            }\n          }\n        }\n"
        else:
            text += "\n".join(test) + "\n        }\n"
    return text + "      }\n"


def _wrap_18(parts: list[str], groups: list[tuple[str, str, str | None]], lookup: dict[int, str],
             ts: datetime) -> str:
    out = ['Record FileRecord "1.8"', "{"]
    # one LotRecord per (lot, layer): the StepID is a field of the LotRecord
    lots: dict[tuple[str, str | None], list[str]] = {}
    for (lot, _, layer), part in zip(groups, parts):
        lots.setdefault((lot, layer), []).append(part)
    cl_rows = "".join(f"          {k} {_quote(v)};\n" for k, v in sorted(lookup.items()))
    for (lot, layer), wparts in lots.items():
        out += [
            f"  Record LotRecord {_quote(lot)}",
            "  {",
            "    " + _field("OrientationMarkLocation", [str(WAFER_FRAME.mark_deg)]),
            "    " + _field("CoordinatesMirrored", ['"YES"' if WAFER_FRAME.mirrored else '"NO"']),
            "    " + _field("SampleType", ['"WAFER"']),
            "    " + _field("InspectionStationID", ['"yieldkit"', '"export"', '"1"']),
        ]
        if layer is not None:
            out.append("    " + _field("StepID", [_quote(layer)]))
        text = "\n".join(out) + "\n" + "".join(wparts)
        out = [text + "    List ClassLookupList", "    {",
               "      Columns 2 { int32 CLASSNUMBER, string CLASSNAME }", f"      Data {len(lookup)}", "      {"]
        out = ["\n".join(out) + "\n" + cl_rows + "      }\n    }\n  }"]
    out += ["  " + _field("FileTimestamp", [_quote(ts.strftime("%Y-%m-%d")), _quote(ts.strftime("%H:%M:%S"))]),
            "}", "EndOfFile;", ""]
    return "\n".join(out)
