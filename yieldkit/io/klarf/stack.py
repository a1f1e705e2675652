"""Per-wafer tables stacked into one at bounded memory, in the defect table's narrow types.

:class:`Stack` is ``pd.concat(frames, ignore_index=True)`` for frames that arrive one at a
time (the wafers of a file, as they are converted). Each frame is narrowed as it comes
(:func:`narrow_frame`) and kept as columns; :meth:`Stack.result` joins them a column at a
time, releasing each column's pieces as it goes, so the peak is the table plus one column.

The narrow types of a KLARF defect table: the repeated text columns (``lot_id``,
``wafer_id``, ``defect_class``, ``layer``: a few distinct values per file) are pandas
Categoricals whose categories are Arrow strings in sorted order (so that sorting, grouping
and comparing give what the strings give); the file's integer columns other than
``defect_id`` are ``Int32`` when every value fits 32 bits, ``Int64`` otherwise.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from ...schema import STRING
from .statements import release_unused

__all__ = ["CATEGORICAL", "Stack", "concat_defects", "narrow_frame", "narrow_types"]

#: the text columns held as Categoricals (a few distinct values per file)
CATEGORICAL = ("lot_id", "wafer_id", "defect_class", "layer")
#: integer columns kept at 64 bits (the data model's defect_id is int64)
_WIDE = frozenset({"defect_id"})
_I32 = np.iinfo(np.int32)


def _category_dtype(categories: Any) -> pd.CategoricalDtype:
    return pd.CategoricalDtype(pd.Index(np.asarray(categories, dtype=object), dtype=STRING))


def _codes_dtype(n: int) -> np.dtype:
    """The code type pandas gives a Categorical of ``n`` categories."""
    for t in (np.int8, np.int16, np.int32):
        if n < np.iinfo(t).max:
            return np.dtype(t)
    return np.dtype(np.int64)


class _Text:
    """A text column as dictionary codes (-1: missing) and its distinct values, in sorted order."""

    __slots__ = ("codes", "values")

    def __init__(self, s: pd.Series) -> None:
        if isinstance(s.dtype, pd.CategoricalDtype):
            codes = s.cat.codes.to_numpy()
            values = np.asarray(s.cat.categories, dtype=object)
            used = np.bincount(codes + 1, minlength=len(values) + 1)[1:] > 0
            if not used.all():  # only the values present, as a dictionary encoding gives them
                remap = np.append(np.cumsum(used) - 1, -1).astype(codes.dtype)
                codes, values = remap[codes], values[used]
            self.codes, self.values = codes, values
            return
        arr = pa.chunked_array(pd.array(s, dtype=STRING)._pa_array).combine_chunks()  # type: ignore[attr-defined]
        enc = arr.dictionary_encode()
        idx = enc.indices.fill_null(-1) if enc.indices.null_count else enc.indices
        codes = idx.to_numpy(zero_copy_only=False)
        values = np.asarray(enc.dictionary.to_pylist(), dtype=object)
        order = np.argsort(values, kind="stable")
        remap = np.empty(len(values) + 1, np.int32)
        remap[order] = np.arange(len(values), dtype=np.int32)
        remap[-1] = -1  # the code -1 (missing) indexes the last entry
        self.codes = remap[codes].astype(_codes_dtype(len(values)), copy=False)
        self.values = values[order]

    def __len__(self) -> int:
        return len(self.codes)


def _fits_int32(a: Any) -> bool:
    v = a._data[~a._mask]
    return not len(v) or (int(v.min()) >= _I32.min and int(v.max()) <= _I32.max)


def _is_text(d: Any) -> bool:
    """A pandas string dtype: Arrow-backed ``string`` or the default ``str``."""
    return isinstance(d, pd.StringDtype)


def _piece(name: Any, s: pd.Series) -> Any:
    """A column of one frame in its narrow form."""
    d = s.dtype
    if name in CATEGORICAL and (_is_text(d) or isinstance(d, pd.CategoricalDtype) and _is_text(d.categories.dtype)):
        return _Text(s)
    if name not in _WIDE and d == "Int64" and _fits_int32(s.array):
        a = s.array
        return pd.arrays.IntegerArray(a._data.astype(np.int32), a._mask.copy())
    if isinstance(d, np.dtype):
        return s.to_numpy()
    return s.array


def _series(piece: Any) -> pd.Series:
    if isinstance(piece, _Text):
        return pd.Series(pd.Categorical.from_codes(piece.codes, dtype=_category_dtype(piece.values)), copy=False)
    return pd.Series(piece, copy=False)


def narrow_types(frame: pd.DataFrame) -> dict[Any, Any]:
    """The columns of a defect table in their narrow forms (see the module docstring)."""
    return {c: _piece(c, frame[c]) for c in frame.columns}


def narrow_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A defect table in the narrow types (see the module docstring); the same values."""
    stack = Stack()
    stack.add(frame)
    return stack.result()


def concat_defects(frames: Any) -> pd.DataFrame:
    """``pd.concat(frames, ignore_index=True)`` of KLARF defect tables, in the narrow types.

    ``pd.concat`` turns Categoricals whose categories differ (the wafers of
    :func:`~yieldkit.io.klarf.iter_klarf_defects`, the tables of several files) into plain
    strings; here their categories are joined instead, so the result is what
    :func:`~yieldkit.io.klarf.read_klarf` gives for the same rows.

    Examples
    --------
    >>> import pandas as pd
    >>> a = narrow_frame(pd.DataFrame({"lot_id": ["L1"], "defect_class": ["pit"]}))
    >>> b = narrow_frame(pd.DataFrame({"lot_id": ["L1"], "defect_class": ["particle"]}))
    >>> t = concat_defects([a, b])
    >>> t["defect_class"].tolist(), list(t["defect_class"].cat.categories)
    (['pit', 'particle'], ['particle', 'pit'])
    """
    stack = Stack()
    for f in frames:
        stack.add(f)
    if not stack:
        raise ValueError("No objects to concatenate")
    return stack.result()


def _join(pieces: list[Any]) -> Any:
    """One column of the pieces (released from ``pieces`` as they are copied)."""
    n = sum(len(p) for p in pieces)
    first = pieces[0]
    if all(isinstance(p, _Text) for p in pieces):
        values = np.asarray(sorted({v for p in pieces for v in p.values.tolist()}), dtype=object)
        dtype = _category_dtype(values)
        codes = np.empty(n, _codes_dtype(len(values)))
        index = pd.Index(values)
        off = 0
        while pieces:
            p = pieces.pop(0)
            remap = np.append(index.get_indexer(p.values), -1).astype(codes.dtype)
            codes[off : off + len(p)] = remap[p.codes]
            off += len(p)
        return pd.Categorical.from_codes(codes, dtype=dtype, validate=False)
    if all(isinstance(p, np.ndarray) for p in pieces) and len({p.dtype for p in pieces}) == 1:
        out = np.empty(n, first.dtype)
        off = 0
        while pieces:
            p = pieces.pop(0)
            out[off : off + len(p)] = p
            off += len(p)
        return out
    if all(isinstance(p, pd.arrays.IntegerArray) for p in pieces):
        dt = np.result_type(*[p._data.dtype for p in pieces])
        values, mask = np.empty(n, dt), np.empty(n, bool)
        off = 0
        while pieces:
            p = pieces.pop(0)
            values[off : off + len(p)] = p._data
            mask[off : off + len(p)] = p._mask
            off += len(p)
        return pd.arrays.IntegerArray(values, mask)
    if all(getattr(p, "dtype", None) == STRING for p in pieces):
        chunks = [c for p in pieces for c in p._pa_array.chunks]
        pieces.clear()
        return pd.arrays.ArrowStringArray(pa.chunked_array(chunks, pa.large_string()))
    return pd.concat([_series(p) for p in pieces], ignore_index=True).array


class Stack:
    """``pd.concat(frames, ignore_index=True)`` of frames given one at a time, in the narrow types
    (see the module docstring). Each frame is narrowed as it comes and can then be released;
    :meth:`result` joins the columns one at a time, so the peak is the table plus one column,
    not twice the table. Frames whose columns differ from the first are joined as
    ``pd.concat`` joins them."""

    def __init__(self) -> None:
        self.cols: list[Any] | None = None
        self.pieces: list[dict[Any, Any]] = []
        self.same = True

    def add(self, f: pd.DataFrame) -> None:
        if self.cols is None:
            self.cols = list(f.columns)
            self.same = not f.columns.duplicated().any()
        elif list(f.columns) != self.cols:
            self.same = False
        self.pieces.append(narrow_types(f) if self.same else {"frame": f})

    def __bool__(self) -> bool:
        return bool(self.pieces)

    def frames(self) -> list[pd.DataFrame]:
        """The frames given so far, in the narrow types."""
        return [p["frame"] if set(p) == {"frame"} else pd.DataFrame({c: _series(v) for c, v in p.items()})
                for p in self.pieces]

    def result(self) -> pd.DataFrame:
        if not self.same:
            frames = self.frames()
            self.pieces = []
            for f in frames:  # text back to Arrow strings, so that pd.concat joins differing categories
                for c in f.columns:
                    if isinstance(f[c].dtype, pd.CategoricalDtype):
                        f[c] = f[c].astype(STRING)
            table = pd.concat(frames, ignore_index=True)
            del frames
            self.cols, self.same = list(table.columns), True
            self.pieces = [narrow_types(table)]
            del table
        assert self.cols is not None
        out: dict[Any, Any] = {}
        for c in self.cols:
            column = [p.pop(c) for p in self.pieces]
            out[c] = _join(column)
            del column
            release_unused()  # the pieces just copied (much of them in Arrow's pool): the peak stays the table
        self.pieces = []
        return pd.DataFrame(out, copy=False)
