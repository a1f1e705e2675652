"""The canonical tables of yieldkit: column names, dtypes, units, aliases and validation.

Every reader turns its format into one of three tables -- die, defect, wafer -- and calls
:func:`validate_dies`, :func:`validate_defects` or :func:`validate_wafers` once at the
boundary. Code deeper in trusts these tables and never re-checks them.

Glossary of canonical columns (units in brackets):

===============  =========  ================================================================
column           dtype      meaning
===============  =========  ================================================================
lot_id           string     lot identifier
wafer_id         string     wafer identifier, unique within its lot
die_x, die_y     int32      die index (may be negative)
hbin, sbin       int32      hard bin, soft bin (sbin nullable)
passed           bool       die passed test (derived from the good hard bins when absent)
site, head       int16      tester site and head (nullable)
test_seq         int16      insertion order of retests at one die; the last result is final
defect_id        int64      defect identifier, unique within its wafer
x_um, y_um       float64    defect position in the wafer frame [um]
xrel_um, yrel_um float64    defect position inside its die, from the die's lower-left corner [um]
defect_class     string     defect class name ("unclassified" when unknown)
size_um          float64    defect size [um]
layer            string     inspection layer or step
===============  =========  ================================================================
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ._keys import STRING  # the dtype of every string column (lot_id, wafer_id, defect_class, ...)
from .errors import SchemaError

log = logging.getLogger(__name__)

__all__ = [
    "ALIASES",
    "DEFECT_COLUMNS",
    "DIE_COLUMNS",
    "STRING",
    "UNCLASSIFIED",
    "WAFER_COLUMNS",
    "Column",
    "canonical_names",
    "validate_defects",
    "validate_dies",
    "validate_wafers",
]

UNCLASSIFIED = "unclassified"


@dataclass(frozen=True)
class Column:
    """One canonical column: name, kind of values, whether required, unit and meaning."""

    name: str
    kind: str  # "string", "int32", "int16", "int64", "float64", "bool"
    required: bool
    unit: str = ""
    doc: str = ""
    nullable: bool = False


DIE_COLUMNS: tuple[Column, ...] = (
    Column("lot_id", "string", True, doc="lot identifier"),
    Column("wafer_id", "string", True, doc="wafer identifier, unique within its lot"),
    Column("die_x", "int32", True, doc="die column index"),
    Column("die_y", "int32", True, doc="die row index"),
    Column("hbin", "int32", True, doc="hard bin"),
    Column("sbin", "int32", False, doc="soft bin", nullable=True),
    Column("passed", "bool", False, doc="die passed test"),
    Column("site", "int16", False, doc="tester site", nullable=True),
    Column("head", "int16", False, doc="tester head", nullable=True),
    Column("test_seq", "int16", False, doc="retest insertion order", nullable=True),
)

DEFECT_COLUMNS: tuple[Column, ...] = (
    Column("lot_id", "string", True),
    Column("wafer_id", "string", True),
    Column("defect_id", "int64", True),
    Column("x_um", "float64", False, "um", "x in the wafer frame"),
    Column("y_um", "float64", False, "um", "y in the wafer frame"),
    Column("die_x", "int32", False, doc="die column index", nullable=True),
    Column("die_y", "int32", False, doc="die row index", nullable=True),
    Column("xrel_um", "float64", False, "um", "x inside the die"),
    Column("yrel_um", "float64", False, "um", "y inside the die"),
    Column("defect_class", "string", False, doc="defect class name"),
    Column("size_um", "float64", False, "um", "defect size"),
    Column("layer", "string", False, doc="inspection layer or step"),
)

WAFER_COLUMNS: tuple[Column, ...] = (
    Column("lot_id", "string", True),
    Column("wafer_id", "string", True),
    Column("product", "string", False),
    Column("slot", "int16", False, nullable=True),
    Column("layer", "string", False),
)

#: Names people export, per canonical column. Matching is case-insensitive and ignores
#: spaces, dashes, dots and underscores ("Lot ID" == "LOT_ID" == "lotid").
ALIASES: dict[str, tuple[str, ...]] = {
    "lot_id": ("lot", "lotid", "lot_id", "lotname", "lot_name", "lot_no", "lotno"),
    "wafer_id": ("wafer", "waferid", "wafer_id", "wf", "wafer_no", "waferno", "wafer_num", "wafernum", "wfr"),
    "die_x": ("x", "die_x", "x_coord", "xindex", "col", "x_index", "dx", "diex", "xcoord"),
    "die_y": ("y", "die_y", "y_coord", "yindex", "row", "y_index", "dy", "diey", "ycoord"),
    "hbin": ("hbin", "hard_bin", "bin", "hardbin", "hbin_num", "hard_bin_num"),
    "sbin": ("sbin", "soft_bin", "softbin", "sbin_num", "soft_bin_num"),
    "passed": ("passed", "pass", "pass_fail", "passfail", "is_pass", "good"),
    "site": ("site", "site_num", "sitenum", "site_no"),
    "head": ("head", "head_num", "headnum", "head_no"),
    "test_seq": ("test_seq", "testseq", "retest", "retest_seq", "insertion", "test_count"),
    "defect_id": ("defect_id", "defectid", "defect", "id", "defect_no"),
    "x_um": ("x_um", "xpos", "x_pos", "xpos_um", "wafer_x", "x_wafer", "xw"),
    "y_um": ("y_um", "ypos", "y_pos", "ypos_um", "wafer_y", "y_wafer", "yw"),
    "xrel_um": ("xrel_um", "xrel", "x_rel", "xrel_um"),
    "yrel_um": ("yrel_um", "yrel", "y_rel", "yrel_um"),
    "defect_class": (
        "defect_class", "class", "classnumber", "class_number", "defect_type", "classname",
        "class_name", "defecttype", "type", "adc_class", "roughbinnumber",
    ),
    "size_um": ("size_um", "dsize", "size", "defect_size", "dsize_um"),
    "layer": ("layer", "step", "step_id", "stepid", "inspection_step", "layer_id"),
    "product": ("product", "device", "deviceid", "device_id", "part", "part_type", "product_id"),
    "slot": ("slot", "slot_no", "slotno", "slot_id"),
}

_TABLES = {"die": DIE_COLUMNS, "defect": DEFECT_COLUMNS, "wafer": WAFER_COLUMNS}
_INT_RANGE = {
    "int16": (-(2**15), 2**15 - 1),
    "int32": (-(2**31), 2**31 - 1),
    "int64": (-(2**63), 2**63 - 1),
}
_PD_INT = {"int16": "Int16", "int32": "Int32", "int64": "Int64"}
_NON_ALNUM = re.compile(r"[^0-9a-z]+")


def _norm(name: object) -> str:
    """Name as matched against aliases: lower case, alphanumerics only."""
    return _NON_ALNUM.sub("", str(name).strip().lower())


def canonical_names(
    found: Iterable[object],
    table: str,
    columns: Mapping[str, str] | None = None,
) -> dict[object, str]:
    """Map the columns of an exported table to canonical names.

    Parameters
    ----------
    found : iterable
        Column names as found in the file or DataFrame.
    table : {"die", "defect", "wafer"}
        Which canonical table is being read.
    columns : mapping, optional
        Explicit ``{found_name: canonical_name}`` mapping; it wins over every guess.

    Returns
    -------
    dict
        ``{found_name: canonical_name}`` for every column that maps to a canonical name.
        Other columns are absent from the mapping and are carried through unchanged.
    """
    found = list(found)
    specs = _TABLES[table]
    wanted = [c.name for c in specs]
    if table == "wafer":
        wanted = wanted + ["product", "slot"]
    rename: dict[object, str] = {}
    taken: set[str] = set()
    explicit = dict(columns or {})
    for name, dst in explicit.items():
        src: object = name
        if src not in found:
            # tolerate case differences in the explicit mapping
            match = [f for f in found if _norm(f) == _norm(src)]
            if not match:
                raise SchemaError(
                    f"the explicit column mapping names {src!r}, which is not a column; "
                    f"found: {', '.join(map(str, found))}"
                )
            src = match[0]
        rename[src] = dst
        taken.add(dst)
    normed = {f: _norm(f) for f in found if f not in rename}
    # exact canonical names first, then aliases in the order listed
    for name in wanted:
        if name in taken:
            continue
        exact = [f for f, n in normed.items() if n == _norm(name) and f not in rename]
        candidates = exact or [
            f
            for alias in ALIASES.get(name, ())
            for f, n in normed.items()
            if n == _norm(alias) and f not in rename
        ]
        if candidates:
            rename[candidates[0]] = name
            taken.add(name)
    return rename


def _missing_error(table: str, missing: list[str], found: Sequence[object], source: str | None) -> SchemaError:
    tried = "; ".join(f"{m}: {', '.join(ALIASES.get(m, (m,)))}" for m in missing)
    return SchemaError(
        f"the {table} table is missing required column(s) {', '.join(missing)}. "
        f"Found columns: {', '.join(map(str, found)) or '(none)'}. Aliases tried (case-insensitive): {tried}. "
        "Pass columns={'your_name': 'canonical_name'} to map them explicitly.",
        source=source,
        column=missing[0],
    )


def _where(pos: int, line_base: int | None) -> str:
    return f"line {pos + line_base}" if line_base is not None else f"row {pos}"


def _bad(
    series: pd.Series, mask: np.ndarray, what: str, source: str | None, line_base: int | None
) -> SchemaError:
    pos = int(np.flatnonzero(mask)[0])
    value = series.iloc[pos]
    return SchemaError(
        f"column {series.name!r} must hold {what}; first bad value {value!r} at {_where(pos, line_base)} "
        f"({int(mask.sum())} bad value(s) in all)",
        source=source,
        column=str(series.name),
        row=pos + (line_base or 0),
    )


def _coerce_int(
    s: pd.Series, kind: str, *, nullable: bool, source: str | None, line_base: int | None,
    minimum: int | None = None,
) -> pd.Series:
    lo, hi = _INT_RANGE[kind]
    if minimum is not None:
        lo = max(lo, minimum)
    if pd.api.types.is_bool_dtype(s.dtype):
        raise _bad(s, np.ones(len(s), bool), "integers", source, line_base)
    if pd.api.types.is_integer_dtype(s.dtype) and not isinstance(s.dtype, pd.ArrowDtype):
        values = s.to_numpy(dtype="int64", na_value=0) if s.hasnans else s.to_numpy()
        na = s.isna().to_numpy() if s.hasnans else None
        if len(values):
            vmin, vmax = values.min(), values.max()
            if vmin < lo or vmax > hi:
                bad = (values < lo) | (values > hi)
                if na is not None:
                    bad &= ~na
                if bad.any():
                    raise _bad(s, bad, f"integers in [{lo}, {hi}]", source, line_base)
        if na is not None and na.any():
            if not nullable:
                raise _bad(s, na, "a value on every row (found an empty value)", source, line_base)
            return s.astype(_PD_INT[kind])
        if nullable:
            if s.dtype == _PD_INT[kind]:
                return s  # shared copy-on-write, never modified in place
            # one copy of the values (the masked array owns it) and an all-False mask
            data = values.astype(kind, copy=True)
            return pd.Series(pd.arrays.IntegerArray(data, np.zeros(len(data), bool)), index=s.index, name=s.name,
                             copy=False)
        if values.dtype == np.dtype(kind):
            return s
        return pd.Series(values.astype(kind), index=s.index, name=s.name, copy=False)
    # floats, strings, objects: parse and check integrality
    if pd.api.types.is_float_dtype(s.dtype):
        num = s.to_numpy(dtype="float64", na_value=np.nan)
        orig_na = np.isnan(num)
    else:
        text = s.astype(STRING).str.strip()
        orig_na = (text.isna() | (text == "")).to_numpy()
        num = pd.to_numeric(text.where(~orig_na, None), errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    unparsable = np.isnan(num) & ~orig_na
    if unparsable.any():
        raise _bad(s, unparsable, "integers", source, line_base)
    with np.errstate(invalid="ignore"):
        nonint = ~orig_na & ((num != np.round(num)) | ~np.isfinite(num))
    if nonint.any():
        raise _bad(s, nonint, "integers", source, line_base)
    out_of_range = ~orig_na & ((num < lo) | (num > hi))
    if out_of_range.any():
        raise _bad(s, out_of_range, f"integers in [{lo}, {hi}]", source, line_base)
    if orig_na.any():
        if not nullable:
            raise _bad(s, orig_na, "a value on every row (found an empty value)", source, line_base)
        out = pd.array(np.where(orig_na, 0, num).astype(kind), dtype=_PD_INT[kind])
        out[orig_na] = pd.NA
        return pd.Series(out, index=s.index, name=s.name)
    if nullable:
        return pd.Series(pd.array(num.astype(kind), dtype=_PD_INT[kind]), index=s.index, name=s.name)
    return pd.Series(num.astype(kind), index=s.index, name=s.name)


def _coerce_float(
    s: pd.Series, *, source: str | None, line_base: int | None, required: bool, minimum: float | None = None
) -> pd.Series:
    if pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype):
        num = s.to_numpy(dtype="float64", na_value=np.nan)
        orig_na = np.isnan(num)
    else:
        text = s.astype(STRING).str.strip()
        orig_na = (text.isna() | (text == "") | text.str.upper().isin(["NA", "NAN", "N/A"])).to_numpy()
        num = pd.to_numeric(text.where(~orig_na, None), errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
        unparsable = np.isnan(num) & ~orig_na
        if unparsable.any():
            raise _bad(s, unparsable, "numbers", source, line_base)
    inf = np.isinf(num)
    if inf.any():
        raise _bad(s, inf, "finite numbers", source, line_base)
    if required and orig_na.any():
        raise _bad(s, orig_na, "a value on every row (found an empty value)", source, line_base)
    if minimum is not None:
        with np.errstate(invalid="ignore"):
            low = num < minimum
        if low.any():
            raise _bad(s, low, f"numbers >= {minimum}", source, line_base)
    if s.dtype == np.float64:
        return s  # shared copy-on-write, never modified in place
    return pd.Series(num, index=s.index, name=s.name, copy=False)


def _text_categorical(s: pd.Series) -> bool:
    """A Categorical of Arrow strings (how :func:`yieldkit.read_klarf` holds repeated text)."""
    return isinstance(s.dtype, pd.CategoricalDtype) and s.dtype.categories.dtype == STRING


def _coerce_string(s: pd.Series, *, source: str | None, line_base: int | None, required: bool) -> pd.Series:
    if _text_categorical(s):  # kept as it is: its few distinct values are checked
        if required:
            codes = s.cat.codes.to_numpy()
            blank = np.flatnonzero(s.cat.categories.str.len().to_numpy(dtype=np.int64, na_value=0) == 0)
            na = (codes < 0) | np.isin(codes, blank)
            if na.any():
                raise _bad(s, na, "a non-empty identifier on every row (found an empty value)", source, line_base)
        return s
    if s.dtype == STRING:
        out = s
    else:
        if pd.api.types.is_float_dtype(s.dtype):
            # 12.0 exported by a spreadsheet means "12"
            num = s.to_numpy(dtype="float64", na_value=np.nan)
            if np.all(np.isnan(num) | (num == np.round(num))):
                s = pd.Series(pd.array(num, dtype="Int64"), index=s.index, name=s.name)
        out = s.astype(STRING)
    if required:
        from ._keys import _cached_codes

        known = _cached_codes(out)
        if known is not None:  # a column read as a dictionary: look at its few distinct values
            codes, uniques = known
            empty = bool((codes < 0).any()) or any(u is None or u == "" for u in uniques)
        else:
            arr = pa.chunked_array(out.array.__arrow_array__())
            empty = bool(arr.null_count) or bool(pc.any(pc.equal(pc.utf8_length(arr), 0)).as_py())
        if empty:
            na = out.isna().to_numpy() | (out.str.len() == 0).to_numpy(dtype=bool, na_value=True)
            raise _bad(s, na, "a non-empty identifier on every row", source, line_base)
    return out


_TRUE = {"1", "true", "t", "yes", "y", "pass", "p", "passed", "good", "ok"}
_FALSE = {"0", "false", "f", "no", "n", "fail", "failed", "bad", "ng"}


def _coerce_bool(s: pd.Series, *, source: str | None, line_base: int | None) -> pd.Series:
    if pd.api.types.is_bool_dtype(s.dtype) and not s.hasnans:
        return s.astype(bool)
    if pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype):
        num = s.to_numpy(dtype="float64", na_value=np.nan)
        bad = ~np.isin(num, [0.0, 1.0])
        if bad.any():
            raise _bad(s, bad, "booleans (0/1, true/false, pass/fail)", source, line_base)
        return pd.Series(num == 1.0, index=s.index, name=s.name)
    text = s.astype(STRING).str.strip().str.lower()
    is_true = text.isin(list(_TRUE)).to_numpy(dtype=bool, na_value=False)
    is_false = text.isin(list(_FALSE)).to_numpy(dtype=bool, na_value=False)
    bad = ~(is_true | is_false)
    if bad.any():
        raise _bad(s, bad, "booleans (0/1, true/false, pass/fail)", source, line_base)
    return pd.Series(is_true, index=s.index, name=s.name)


def _coerce(
    df: pd.DataFrame, spec: Column, *, source: str | None, line_base: int | None, minimum: int | None = None
) -> pd.Series:
    s = df[spec.name]
    if spec.kind == "string":
        return _coerce_string(s, source=source, line_base=line_base, required=spec.required)
    if spec.kind == "bool":
        return _coerce_bool(s, source=source, line_base=line_base)
    if spec.kind == "float64":
        return _coerce_float(s, source=source, line_base=line_base, required=False)
    return _coerce_int(
        s, spec.kind, nullable=spec.nullable or not spec.required, source=source, line_base=line_base,
        minimum=minimum,
    )


def _apply_names(
    df: pd.DataFrame, table: str, columns: Mapping[str, str] | None, source: str | None
) -> pd.DataFrame:
    rename = canonical_names(df.columns, table, columns)
    if any(k != v for k, v in rename.items()):
        # a canonical name already used by an unmapped column would be shadowed: keep the mapped one
        clash = [v for k, v in rename.items() if v in df.columns and v not in rename and k != v]
        if clash:
            raise SchemaError(
                f"column(s) {', '.join(clash)} would be defined twice after mapping aliases; "
                "pass an explicit columns= mapping",
                source=source,
            )
        df = df.rename(columns=rename)
    return df


def validate_dies(
    df: pd.DataFrame,
    *,
    source: str | None = None,
    columns: Mapping[str, str] | None = None,
    good_bins: Iterable[int] | None = None,
    retests: str = "error",
    line_base: int | None = None,
    missing_xy: str = "error",
) -> pd.DataFrame:
    """Map, coerce and validate a die table; return it in canonical form.

    Parameters
    ----------
    df : DataFrame
        The table as read.
    source : str, optional
        Where it came from, for error messages.
    columns : mapping, optional
        Explicit ``{found_name: canonical_name}`` mapping.
    good_bins : iterable of int, optional
        Hard bins that pass. Given, they decide ``passed`` even when the table has a ``passed``
        column (a column that disagrees with them is a :class:`~yieldkit.errors.DataQualityWarning`);
        not given, a ``passed`` column is kept and a table without one passes bin 1.
    retests : {"error", "order"}
        What to do with several rows at one die and no ``test_seq`` column: raise
        :class:`SchemaError` (the default), or number them in row order (the last row final).
    line_base : int, optional
        Added to a 0-based row position to give the file line in messages (2 for a CSV with
        one header line); ``None`` reports row positions.
    missing_xy : {"error", "unit"}
        An empty ``die_x``/``die_y``: an error (the default), or a part tested without a wafer
        position (final test): the coordinates stay missing (nullable Int32) and every such row
        is a unit of its own, never paired with another as a retest.

    Returns
    -------
    DataFrame
        Canonical die table, row order preserved.
    """
    from .errors import check_choice

    check_choice(retests, ("error", "order"), name="retests", where="validate_dies")
    check_choice(missing_xy, ("error", "unit"), name="missing_xy", where="validate_dies")
    good = good_bin_set(good_bins, where="validate_dies")
    if len(df.columns) == 0:
        raise SchemaError("the die table has no columns (empty file?)", source=source)
    found = list(df.columns)
    df = _apply_names(df, "die", columns, source)
    missing = [c.name for c in DIE_COLUMNS if c.required and c.name not in df.columns]
    if missing:
        raise _missing_error("die", missing, found, source)
    if len(df) == 0:
        raise SchemaError("the die table has a header but no rows", source=source)
    out = {}
    for spec in DIE_COLUMNS:
        if spec.name in df.columns:
            minimum = 0 if spec.name in ("hbin", "sbin", "site", "head") else None
            if spec.name == "test_seq":
                minimum = 0
            if spec.name in ("die_x", "die_y") and missing_xy == "unit":
                out[spec.name] = _coerce_int(df[spec.name], "int32", nullable=True, source=source, line_base=line_base)
                continue
            out[spec.name] = _coerce(df, spec, source=source, line_base=line_base, minimum=minimum)
    if good is not None or "passed" not in out:
        derived = _in_bins(out["hbin"].to_numpy(), (1,) if good is None else good)
        if "passed" in out:
            _warn_passed_disagrees(out["passed"].to_numpy(dtype=bool), derived, good, source, line_base)
        out["passed"] = pd.Series(derived, index=df.index, name="passed")
    canon = [c.name for c in DIE_COLUMNS]
    result = pd.DataFrame(out, index=df.index, copy=False)
    result = result[[c for c in canon if c in result.columns]]
    extra = [c for c in df.columns if c not in result.columns]
    if extra:
        result = pd.concat([result, df[extra]], axis=1)
    result = result.reset_index(drop=True)
    return _check_retests(result, retests=retests, source=source, line_base=line_base)


def good_bin_set(good_bins: Any, *, where: str) -> tuple[int, ...] | None:
    """``good_bins`` as a tuple of hard bins (``None`` stays ``None``: not given).

    A single integer is one bin; anything but an iterable of integers >= 0 is a
    :class:`~yieldkit.errors.YieldkitValueError` in the user's words.
    """
    from .errors import YieldkitValueError

    if good_bins is None:
        return None
    if isinstance(good_bins, (int, np.integer)) and not isinstance(good_bins, bool):
        good_bins = (good_bins,)
    shown = repr(good_bins)
    if len(shown) > 80:
        shown = shown[:77] + "..."
    bad = YieldkitValueError(
        f"The 'good_bins' argument of {where} must be hard bin numbers such as (1,) or (1, 2). Got {shown} instead."
    )
    if isinstance(good_bins, (str, bytes)) or not isinstance(good_bins, Iterable):
        raise bad
    out = []
    for b in good_bins:
        if isinstance(b, bool) or not isinstance(b, (int, np.integer)) or b < 0:
            raise bad
        out.append(int(b))
    if not out:
        raise bad
    return tuple(out)


def _warn_passed_disagrees(
    passed: np.ndarray, derived: np.ndarray, good: tuple[int, ...] | None, source: str | None, line_base: int | None
) -> None:
    differ = passed != derived
    if good is None or not differ.any():
        return
    import warnings

    from .errors import DataQualityWarning

    pos = int(np.flatnonzero(differ)[0])
    prefix = f"{source}: " if source else ""
    warnings.warn(
        f"{prefix}the 'passed' column disagrees with hard bins {', '.join(map(str, good))} as good on "
        f"{int(differ.sum())} of {len(differ)} rows (first at {_where(pos, line_base)}); "
        "pass/fail follows the good bins given",
        DataQualityWarning,
        stacklevel=4,
    )


def _in_bins(hbin: np.ndarray, good_bins: Iterable[int]) -> np.ndarray:
    """``hbin`` in ``good_bins``, by direct comparison for the usual handful of good bins."""
    good = sorted({int(b) for b in good_bins})
    if len(good) > 8:
        return np.isin(hbin, good)
    mask = np.zeros(hbin.shape, bool)
    for b in good:
        mask |= hbin == b
    return mask


def _check_retests(df: pd.DataFrame, *, retests: str, source: str | None, line_base: int | None) -> pd.DataFrame:
    from ._keys import die_keys, duplicated_keys, unique_dies

    has_seq = "test_seq" in df.columns
    if not has_seq and unique_dies(df):  # the usual table: checked without a row-sized key array
        return df
    keys = die_keys(df, narrow=not has_seq)  # compared only, unless combined with test_seq below
    if has_seq:
        seq = df["test_seq"].to_numpy(dtype="int64", na_value=-1) + 1
        keys = keys * (int(seq.max()) + 1) + seq
    dup = duplicated_keys(keys)
    if not dup.any():
        return df
    if not has_seq and retests == "order":
        from ._keys import die_keys as _dk

        k = pd.Series(_dk(df))
        df = df.copy()
        df["test_seq"] = (k.groupby(k, sort=False).cumcount() + 1).astype("int16").to_numpy()
        log.info("%s: numbered %d retest rows by row order", source or "die table", int(dup.sum()))
        return df
    pos = int(np.flatnonzero(dup)[0])
    row = df.iloc[pos]
    what = "die" if not has_seq else "die and test_seq"
    hint = (
        " Add a test_seq column, or pass retests='order' to number repeated rows in file order "
        "(the last one final)." if not has_seq else ""
    )
    raise SchemaError(
        f"duplicated {what}: lot {row['lot_id']!r} wafer {row['wafer_id']!r} die ({row['die_x']}, {row['die_y']}) "
        f"appears again at {_where(pos, line_base)} ({int(dup.sum())} duplicated row(s)).{hint}",
        source=source,
        row=pos + (line_base or 0),
    )


def validate_defects(
    df: pd.DataFrame,
    *,
    source: str | None = None,
    columns: Mapping[str, str] | None = None,
    layout=None,
    line_base: int | None = None,
) -> pd.DataFrame:
    """Map, coerce and validate a defect table; return it in canonical form.

    A defect needs a position in one of two forms: ``x_um``/``y_um`` in the wafer frame, or
    ``die_x``/``die_y`` with ``xrel_um``/``yrel_um`` inside the die. Given a
    :class:`~yieldkit.layout.WaferLayout`, whichever form is missing is computed from the
    other; a defect that falls on no die keeps ``die_x``/``die_y`` missing (it is never dropped).
    ``defect_id``, when absent, is numbered 1, 2, ... within each wafer in row order.
    ``defect_class`` missing or empty becomes ``"unclassified"``.
    """
    if len(df.columns) == 0:
        raise SchemaError("the defect table has no columns (empty file?)", source=source)
    found = list(df.columns)
    df = _apply_names(df, "defect", columns, source)
    missing = [c for c in ("lot_id", "wafer_id") if c not in df.columns]
    if missing:
        raise _missing_error("defect", missing, found, source)
    has_xy = "x_um" in df.columns and "y_um" in df.columns
    has_die = "die_x" in df.columns and "die_y" in df.columns
    has_rel = "xrel_um" in df.columns and "yrel_um" in df.columns
    if not has_xy and not (has_die and has_rel):
        raise SchemaError(
            "the defect table has neither position form: give x_um and y_um (wafer frame) or "
            f"die_x, die_y, xrel_um and yrel_um. Found columns: {', '.join(map(str, found))}. "
            "Aliases tried: x_um: " + ", ".join(ALIASES["x_um"]) + "; xrel_um: " + ", ".join(ALIASES["xrel_um"]),
            source=source,
        )
    out: dict[str, pd.Series] = {}
    for spec in DEFECT_COLUMNS:
        if spec.name not in df.columns:
            continue
        if spec.name in ("x_um", "y_um") and has_xy:
            out[spec.name] = _coerce_float(df[spec.name], source=source, line_base=line_base, required=not has_die)
        elif spec.name == "size_um":
            out[spec.name] = _coerce_float(df[spec.name], source=source, line_base=line_base, required=False, minimum=0.0)
        elif spec.name == "defect_class" and _text_categorical(df[spec.name]):
            out[spec.name] = _class_categories(df[spec.name])
        elif spec.name == "defect_class":
            s = df[spec.name]
            cls = _coerce_string(s, source=source, line_base=line_base, required=False)
            cls = cls.str.strip()
            out[spec.name] = cls.mask(cls.isna() | (cls == ""), UNCLASSIFIED).astype(STRING)
        elif spec.name in ("die_x", "die_y"):
            out[spec.name] = _coerce_int(df[spec.name], "int32", nullable=True, source=source, line_base=line_base)
        else:
            out[spec.name] = _coerce(df, spec, source=source, line_base=line_base)
    result = pd.DataFrame(out, index=df.index).reset_index(drop=True)
    if "defect_id" not in result.columns:
        wafer = result["lot_id"].astype(str) + "\x1f" + result["wafer_id"].astype(str)
        result["defect_id"] = (wafer.groupby(wafer, sort=False).cumcount() + 1).astype("int64")
        log.info("%s: no defect_id column; numbered defects within each wafer", source or "defect table")
    else:
        from ._keys import duplicated_keys, wafer_codes

        codes, _ = wafer_codes(result)
        ids = result["defect_id"].to_numpy()
        lo, hi = (int(ids.min()), int(ids.max())) if len(ids) else (0, 0)
        if hi - lo < 2**40 // max(1, int(codes.max(initial=0)) + 1):
            dup = duplicated_keys(codes * (hi - lo + 1) + (ids - lo))
        else:
            dup = pd.DataFrame({"w": codes, "d": ids}).duplicated().to_numpy()
        if dup.any():
            pos = int(np.flatnonzero(dup)[0])
            raise SchemaError(
                f"defect_id {int(result['defect_id'].iloc[pos])} appears twice in lot "
                f"{result['lot_id'].iloc[pos]!r} wafer {result['wafer_id'].iloc[pos]!r} (again at "
                f"{_where(pos, line_base)}); defect_id must be unique within its wafer",
                source=source,
                column="defect_id",
                row=pos + (line_base or 0),
            )
    if "defect_class" not in result.columns:
        result["defect_class"] = pd.Series([UNCLASSIFIED] * len(result), dtype=STRING)
    if layout is not None:
        result = complete_positions(result, layout)
    canon = [c.name for c in DEFECT_COLUMNS]
    ordered = [c for c in canon if c in result.columns]
    extra = [c for c in df.columns if c not in result.columns]
    result = result[ordered]
    if extra:
        result = pd.concat([result, df[extra].reset_index(drop=True)], axis=1)
    return result


def _class_categories(s: pd.Series) -> pd.Series:
    """A Categorical ``defect_class`` with its categories stripped, missing or empty ones
    "unclassified" (what the text path does row by row), its categories kept sorted."""
    cats = s.cat.categories
    names = cats.str.strip()
    names = names.where(names.notna() & (names != ""), UNCLASSIFIED)
    codes = s.cat.codes.to_numpy()
    if names.equals(cats) and names.is_monotonic_increasing and not (codes < 0).any():
        return s
    values = pd.Index(np.asarray(sorted(set(names.tolist()) | {UNCLASSIFIED}), dtype=object), dtype=STRING)
    remap = np.append(values.get_indexer(names), values.get_loc(UNCLASSIFIED))  # code -1: unclassified
    dtype = pd.CategoricalDtype(values)
    new = pd.Categorical.from_codes(remap[codes], dtype=dtype)
    used = np.unique(new.codes)
    if len(used) < len(values):  # no category that no row uses
        new = new.remove_unused_categories()
    return pd.Series(new, index=s.index, name=s.name)


def complete_positions(defects: pd.DataFrame, layout) -> pd.DataFrame:
    """Fill whichever position form of a defect table is missing, using ``layout``.

    Wafer-frame positions come from ``x0 + die_x * w + xrel_um``; die positions come from
    :meth:`WaferLayout.locate`, which leaves ``die_x``/``die_y`` missing for a defect on no
    on-wafer die. Rows that already carry both forms are kept as they are.
    """
    out = defects.copy()
    has_xy = "x_um" in out.columns and "y_um" in out.columns
    has_die = all(c in out.columns for c in ("die_x", "die_y", "xrel_um", "yrel_um"))
    if has_xy and not has_die:
        loc = layout.locate(out["x_um"].to_numpy(), out["y_um"].to_numpy())
        for c in ("die_x", "die_y", "xrel_um", "yrel_um"):
            out[c] = loc[c].to_numpy() if c.endswith("_um") else loc[c].array
    elif has_die and not has_xy:
        x, y = layout.position(
            out["die_x"].to_numpy(dtype="float64", na_value=np.nan),
            out["die_y"].to_numpy(dtype="float64", na_value=np.nan),
            out["xrel_um"].to_numpy(dtype="float64", na_value=np.nan),
            out["yrel_um"].to_numpy(dtype="float64", na_value=np.nan),
        )
        out["x_um"] = x
        out["y_um"] = y
    elif has_xy and has_die:
        # fill gaps row-wise in either direction
        need_die = out["die_x"].isna().to_numpy() & ~np.isnan(out["x_um"].to_numpy(dtype="float64", na_value=np.nan))
        if need_die.any():
            loc = layout.locate(out.loc[need_die, "x_um"].to_numpy(), out.loc[need_die, "y_um"].to_numpy())
            for c in ("die_x", "die_y", "xrel_um", "yrel_um"):
                out.loc[need_die, c] = loc[c].to_numpy()
    return out


def validate_wafers(
    df: pd.DataFrame, *, source: str | None = None, columns: Mapping[str, str] | None = None
) -> pd.DataFrame:
    """Map and validate a wafer table (one row per wafer, process history carried through)."""
    if len(df.columns) == 0:
        raise SchemaError("the wafer table has no columns (empty file?)", source=source)
    df = _apply_names(df, "wafer", columns, source)
    missing = [c for c in ("lot_id", "wafer_id") if c not in df.columns]
    if missing:
        raise _missing_error("wafer", missing, list(df.columns), source)
    df = df.reset_index(drop=True).copy()
    for c in ("lot_id", "wafer_id"):
        df[c] = _coerce_string(df[c], source=source, line_base=None, required=True)
    dup = df.duplicated(["lot_id", "wafer_id"]).to_numpy()
    if dup.any():
        pos = int(np.flatnonzero(dup)[0])
        raise SchemaError(
            f"wafer {df['wafer_id'].iloc[pos]!r} of lot {df['lot_id'].iloc[pos]!r} appears twice "
            f"(row {pos}); the wafer table has one row per wafer",
            source=source,
        )
    for c in df.columns:
        if (c.startswith(("tool_", "chamber_")) or c in ("product", "layer")) and df[c].dtype == object:
            df[c] = df[c].astype(STRING)
    return df
