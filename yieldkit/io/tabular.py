"""CSV and Parquet ingestion into the canonical tables, and atomic Parquet/CSV output.

``read_dies``, ``read_defects`` and ``read_wafers`` accept a path to CSV (also gzip- or
bzip2-compressed), a Parquet file, a directory holding a (possibly hive-partitioned) Parquet
dataset, or a DataFrame. Parquet is recognised from the content, not the extension. Files in
the industry formats (STDF, KLARF, E142/G85, text maps) are read by the functions of the same
names in :mod:`yieldkit.io.registry`, which hand CSV and Parquet to this module.
"""

from __future__ import annotations

import bz2
import codecs
import contextlib
import csv
import gzip
import io
import logging
import os
import re
import warnings
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any, TypeAlias

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from .._keys import dictionary_codes, remember_codes
from .._validation import check_columns, check_layout, short_repr
from ..errors import (
    DataQualityWarning,
    InputNotFoundError,
    ParseError,
    SchemaError,
    YieldkitTypeError,
    check_choice,
)
from ..schema import STRING, canonical_names, good_bin_set, validate_defects, validate_dies, validate_wafers
from .atomic import atomic_path

log = logging.getLogger(__name__)

__all__ = ["is_parquet", "read_defects", "read_dies", "read_table", "read_wafers", "sniff_csv", "sniff_parquet",
           "write_csv", "write_parquet"]

Source: TypeAlias = "str | os.PathLike[str] | pd.DataFrame | IO[bytes] | IO[str]"

_STRING_CANON = {"lot_id", "wafer_id", "defect_class", "layer", "product"}
_STRING_TYPES = {pa.string(): STRING, pa.large_string(): STRING}


def _types_mapper(t: pa.DataType) -> Any:
    return _STRING_TYPES.get(t)


def _sniff(path: Path) -> str:
    """Recognise CSV / Parquet / compressed text from the first bytes."""
    with open(path, "rb") as fh:
        head = fh.read(8)
    if head.startswith(b"PAR1"):
        return "parquet"
    if head.startswith(b"\x1f\x8b"):
        return "gzip"
    if head.startswith(b"BZh"):
        return "bz2"
    return "text"


def is_parquet(path: Path) -> bool:
    """Whether a file starts with the Parquet magic."""
    return _sniff(path) == "parquet"


def sniff_parquet(head: bytes) -> bool:
    """Whether the first bytes of a file are the Parquet magic."""
    return head.startswith(b"PAR1")


def sniff_csv(head: bytes) -> bool:
    """Whether the first bytes of a file read as a delimited text table (a delimiter on the first
    line, and not markup)."""
    text = head.decode("utf-8-sig", errors="replace").lstrip()
    if text.startswith("<"):
        return False
    first = text.splitlines()[0] if text else ""
    return any(d in first for d in (",", ";", "\t", "|"))


def _open_text(path: Path, kind: str) -> io.BufferedIOBase:
    if kind == "gzip":
        return gzip.open(path, "rb")  # type: ignore[return-value]
    if kind == "bz2":
        return bz2.open(path, "rb")  # type: ignore[return-value]
    return open(path, "rb")


#: a header wider than this is not a die/defect/wafer table (refused before any parsing)
MAX_COLUMNS = 10_000
#: a first line longer than this is not a table header [bytes]
MAX_HEADER_BYTES = 1 << 20


def _header(raw: bytes) -> tuple[list[str], str]:
    text = raw.decode("utf-8-sig", errors="replace")
    first = text.splitlines()[0] if text else ""
    counts = {d: first.count(d) for d in (",", ";", "\t", "|")}
    delim = max(counts, key=lambda d: counts[d])
    if counts[delim] == 0:
        delim = ","
    names = next(csv.reader([first], delimiter=delim)) if first else []
    return [n.strip() for n in names], delim


def _utf16_order(head: bytes) -> str | None:
    """``"utf-16-le"``/``"utf-16-be"`` when every other byte of a BOM-less text is NUL, else None."""
    sample = head[: len(head) // 2 * 2]
    if len(sample) < 4:
        return None
    even, odd = sample[0::2], sample[1::2]
    if odd.count(0) >= 0.9 * len(odd) and even.count(0) < 0.1 * len(even):
        return "utf-16-le"
    if even.count(0) >= 0.9 * len(even) and odd.count(0) < 0.1 * len(odd):
        return "utf-16-be"
    return None


def _is_utf8(data: bytes) -> bool:
    decoder = codecs.getincrementaldecoder("utf-8")()
    step = 1 << 24
    try:
        for i in range(0, len(data), step):
            decoder.decode(data[i : i + step], final=i + step >= len(data))
    except UnicodeDecodeError:
        return False
    return True


def _as_utf8(data: bytes, path: Path) -> bytes:
    """The text as UTF-8: a BOM decides, then UTF-8 itself, then Windows-1252 / Latin-1 (logged)."""
    if data.startswith(codecs.BOM_UTF8):
        return data[len(codecs.BOM_UTF8):]
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        enc = "utf-16"
    else:
        enc = _utf16_order(data[:4096]) or ""
    if enc:
        try:
            return data.decode(enc).lstrip("\ufeff").encode("utf-8")
        except UnicodeDecodeError as exc:
            raise ParseError(f"the file starts as UTF-16 text but is not valid UTF-16 at byte {exc.start}",
                             path=path) from None
    if b"\x00" in data[:4096]:
        raise ParseError(
            "not a text table (binary content) and not in a format yieldkit recognises", path=path
        )
    if _is_utf8(data):
        return data
    try:
        text, enc = data.decode("cp1252"), "Windows-1252"
    except UnicodeDecodeError:
        text, enc = data.decode("latin-1"), "Latin-1"
    log.info("%s is not UTF-8; read it as %s", path, enc)
    return text.encode("utf-8")


def _line_of(data: bytes, pos: int) -> int:
    return data.count(b"\n", 0, pos) + 1


def _check_header(data: bytes, path: Path) -> None:
    nl = data.find(b"\n", 0, MAX_HEADER_BYTES + 1)
    if nl < 0 and len(data) > MAX_HEADER_BYTES:
        raise ParseError(f"the first line is longer than {MAX_HEADER_BYTES >> 20} MB: not a table header",
                         path=path, line=1)
    first = data[: nl if nl >= 0 else len(data)]
    widest = max(first.count(d) for d in (b",", b";", b"\t", b"|")) + 1
    if widest > MAX_COLUMNS:
        raise ParseError(f"the header has {widest:,} columns; a table yieldkit reads has at most {MAX_COLUMNS:,}",
                         path=path, line=1)


def _unclosed_quote(data: bytes) -> int | None:
    """Position of a quote that opens a field and is never closed, else None."""
    if data.count(b'"') % 2 == 0:
        return None
    q = data.rfind(b'"')
    if q == 0 or data[q - 1 : q] in (b",", b";", b"\t", b"|", b"\n", b"\r"):
        return q
    return None


def _cut_last_line(data: bytes, delim: str, n_fields: int, path: Path, on_error: str) -> bytes:
    """A file whose last line lacks its newline and is short of fields was cut mid-row.

    A final line without a newline alone is normal; one that also has fewer fields than the
    header cannot be a complete record.
    """
    if not data or data.endswith((b"\n", b"\r")):
        return data
    start = max(data.rfind(b"\n"), data.rfind(b"\r")) + 1
    if start == 0 or data.count(b'"', 0, start) % 2:
        return data  # a header only, or the last line continues a quoted field
    last = data[start:].decode("utf-8", errors="replace")
    try:
        fields = next(csv.reader([last], delimiter=delim))
    except (csv.Error, StopIteration):
        return data
    if len(fields) >= n_fields:
        return data
    line = _line_of(data, start)
    msg = (f"the file ends in the middle of a row (the last line has {len(fields)} of {n_fields} fields "
           "and no line end): it was cut short")
    if on_error == "raise":
        raise ParseError(msg + ". Pass on_error='salvage' to read the complete rows before it", path=path, line=line)
    warnings.warn(f"{path}, line {line}: {msg}; the incomplete row is left out", DataQualityWarning, stacklevel=6)
    return data[:start]


def _read_csv(path: Path, kind: str, table: str, columns: Mapping[str, str] | None,
              on_error: str = "raise") -> pd.DataFrame:
    with _open_text(path, kind) as fh:
        try:
            data = fh.read()
        except (OSError, EOFError) as exc:
            raise ParseError(f"cannot decompress: {exc}", path=path) from exc
    if not data.strip():
        raise SchemaError(f"the {table} file is empty", source=str(path))
    data = _as_utf8(data, path)
    _check_header(data, path)
    names, delim = _header(data[:65536])
    q = _unclosed_quote(data)
    if q is not None:
        raise ParseError("a quoted field opens here and is never closed (a missing \" ?)", path=path,
                         line=_line_of(data, q))
    data = _cut_last_line(data, delim, len(names), path, on_error)
    mapping = canonical_names(names, table, columns)
    string_cols = {src for src, dst in mapping.items() if dst in _STRING_CANON}
    # identifiers and free text stay text ("01" must not become 1)
    column_types = {str(c): pa.string() for c in string_cols}
    for c in names:
        if c.startswith(("tool_", "chamber_")):
            column_types[c] = pa.string()
    try:
        tbl = pacsv.read_csv(
            io.BytesIO(data),
            read_options=pacsv.ReadOptions(use_threads=True, block_size=1 << 24),
            parse_options=pacsv.ParseOptions(delimiter=delim),
            convert_options=pacsv.ConvertOptions(
                column_types=column_types, strings_can_be_null=True, quoted_strings_can_be_null=False
            ),
        )
    except pa.ArrowInvalid as exc:
        raise _arrow_error(exc, data, path) from None
    df = tbl.to_pandas(types_mapper=_types_mapper)
    df.columns = [str(c).strip().lstrip("\ufeff") for c in df.columns]
    return df


def _arrow_error(exc: Exception, data: bytes, path: Path) -> ParseError:
    """pyarrow's CSV message in yieldkit's words, with the line number it lacks."""
    text = str(exc)
    m = re.search(r"Expected (\d+) columns, got (\d+): (.*)", text, re.S)
    if m:
        row = m.group(3).split("\n", 1)[0][:200].encode("utf-8", errors="replace")
        pos = data.find(b"\n" + row) if row else -1
        line = _line_of(data, pos + 1) if pos >= 0 else None
        return ParseError(f"expected {m.group(1)} fields like the header, found {m.group(2)}", path=path, line=line,
                          record=m.group(3).split("\n", 1)[0])
    return ParseError(f"malformed CSV: {text.removeprefix('CSV parse error: ')}", path=path)


def _read_parquet_file(path: Path, table: str = "die", columns: Mapping[str, str] | None = None) -> pd.DataFrame:
    try:
        names = pq.read_schema(path).names
        mapping = canonical_names(names, table, columns)
        # identifiers repeat: decoding them as dictionaries is faster and gives their codes for free
        ids = [src for src, dst in mapping.items() if dst in ("lot_id", "wafer_id")]
        box = [pq.read_table(path, read_dictionary=ids or None)]
    except (pa.ArrowInvalid, OSError) as exc:
        raise ParseError(f"not a readable Parquet file: {exc}", path=path) from exc
    return _to_pandas(box, ids)


def _to_pandas(box: list[pa.Table], ids: list[Any]) -> pd.DataFrame:
    """The table in ``box`` as pandas, the dictionary-encoded identifier columns ``ids`` as strings whose
    codes are remembered.

    The table comes in a one-element list that is emptied, so that nothing else holds it: it is
    released column by column while converting.
    """
    tbl = box.pop()
    dicts = [src for src in ids
             if pa.types.is_dictionary(tbl[src].type) and pa.types.is_string(tbl[src].type.value_type)]
    if not dicts:
        return tbl.to_pandas(types_mapper=_types_mapper, split_blocks=True, self_destruct=True)
    names = tbl.column_names

    def decode(col: pa.ChunkedArray) -> tuple[pd.arrays.ArrowStringArray, tuple[Any, Any]]:
        # straight to large_string, the storage of pandas' Arrow strings (no second cast there)
        col = col.unify_dictionaries()
        return pd.arrays.ArrowStringArray(col.cast(pa.large_string())), dictionary_codes(col)

    if len(dicts) > 1:  # the casts release the GIL: the identifier columns side by side
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(len(dicts)) as pool:
            decoded = dict(zip(dicts, pool.map(decode, [tbl[c] for c in dicts]), strict=True))
    else:
        decoded = {dicts[0]: decode(tbl[dicts[0]])}
    tbl = tbl.drop_columns(dicts)
    rest = tbl.to_pandas(types_mapper=_types_mapper, split_blocks=True, self_destruct=True)
    del tbl
    for i, c in enumerate(names):  # inserted, not rebuilt: the blocks stay split (no consolidating copy)
        if c in decoded:
            rest.insert(i, c, pd.Series(decoded[c][0], index=rest.index, name=c, copy=False))
    df = rest
    for src, (_, (codes, uniques)) in decoded.items():
        remember_codes(df[src], codes, uniques)
    return df


def _hive(path: Path, parquet: list[Path], table: str, columns: Mapping[str, str] | None) -> Any:
    """The hive partitioning of a dataset: partition keys that are lot or wafer ids are text
    (``wafer_id=01`` is "01", not 1); the types of the others are inferred."""
    keys = list(dict.fromkeys(seg.split("=", 1)[0] for p in parquet for seg in p.relative_to(path).parts[:-1]
                              if "=" in seg))
    ids = {src for src, dst in canonical_names(keys, table, columns).items() if dst in ("lot_id", "wafer_id")}
    if not ids:
        return "hive"
    found = pads.dataset(path, format="parquet", partitioning="hive", exclude_invalid_files=True).partitioning.schema
    text = pa.dictionary(pa.int32(), pa.string())  # identifiers repeat: dictionary-decoded, codes kept
    return pads.partitioning(pa.schema([(k, text if k in ids else found.field(k).type) for k in keys]),
                             flavor="hive", dictionaries="infer")


def _read_dir(path: Path, table: str, columns: Mapping[str, str] | None, on_error: str = "raise") -> pd.DataFrame:
    files = [p for p in sorted(path.rglob("*")) if p.is_file() and not p.name.startswith((".", "_"))]
    parquet = [p for p in files if _sniff(p) == "parquet"]
    if parquet:
        try:
            partitioning = _hive(path, parquet, table, columns)
            ds = pads.dataset(path, format="parquet", partitioning=partitioning, exclude_invalid_files=True)
            names = ds.schema.names
            mapping = canonical_names(names, table, columns)
            # identifiers repeat: decoding them as dictionaries is faster and gives their codes for free
            ids = [src for src, dst in mapping.items() if dst in ("lot_id", "wafer_id")]
            in_files = [c for c in ids if c not in (ds.partitioning.schema.names if ds.partitioning else [])]
            if in_files:
                fmt = pads.ParquetFileFormat(read_options=pads.ParquetReadOptions(dictionary_columns=in_files))
                ds = pads.dataset(path, format=fmt, partitioning=partitioning, exclude_invalid_files=True)
            tbl = ds.to_table()
        except (pa.ArrowInvalid, OSError) as exc:
            raise ParseError(f"cannot read the Parquet dataset: {exc}", path=path) from exc
        box = [tbl]
        del tbl
        df = _to_pandas(box, ids)
        for c in df.columns:  # other hive partition keys arrive as dictionaries
            if isinstance(df[c].dtype, pd.CategoricalDtype):
                df[c] = df[c].astype(STRING)
        return df
    csvs = [p for p in files if p.name.lower().endswith((".csv", ".csv.gz", ".csv.bz2", ".txt", ".tsv"))]
    if csvs:
        return pd.concat([_read_csv(p, _sniff(p), table, columns, on_error) for p in csvs], ignore_index=True)
    raise InputNotFoundError(f"{path}: the directory holds no Parquet or CSV data files")


def read_table(source: Source, table: str, columns: Mapping[str, str] | None = None,
               on_error: str = "raise") -> tuple[pd.DataFrame, str, int | None]:
    """Read a raw table (no validation).

    Returns the DataFrame, a name of the source for messages, and the line base (2 for a
    single-header CSV, so that row position + 2 is the file line; None otherwise).
    ``on_error="salvage"`` reads a CSV cut mid-row without its incomplete last row (with a
    :class:`~yieldkit.errors.DataQualityWarning`) instead of raising :class:`ParseError`.
    """
    if isinstance(source, pd.DataFrame):
        return source, "<DataFrame>", None
    if hasattr(source, "read"):
        return _read_stream(source, table, columns, on_error)
    path = _as_path(source, "read_table")
    if not path.exists():
        raise InputNotFoundError(f"{path}: no such file or directory")
    if path.is_dir():
        return _read_dir(path, table, columns, on_error), str(path), None
    kind = _sniff(path)
    if kind == "parquet":
        return _read_parquet_file(path, table, columns), str(path), None
    name = path.name.lower()
    if name.endswith((".parquet", ".pq")):
        raise ParseError("the file name says Parquet but the content is not Parquet (no PAR1 magic)", path=path)
    with _open_text(path, kind) as fh:
        try:
            head = fh.read(4096)
        except (OSError, EOFError) as exc:
            raise ParseError(f"cannot decompress: {exc}", path=path) from exc
    if not sniff_csv(head):
        # no delimiter on the first line: a one-column CSV, or not a table at all
        try:
            return _read_csv(path, kind, table, columns, on_error), str(path), 2
        except ParseError as exc:
            detail = str(exc).removeprefix(str(path)).lstrip(":, ")
            raise ParseError(
                "unrecognised file format: expected CSV, Parquet, KLARF, STDF V4, SEMI E142/G85 or a text "
                f"wafer map (read as CSV: {detail})",
                path=path,
            ) from None
    return _read_csv(path, kind, table, columns, on_error), str(path), 2


def _as_path(source: Any, where: str) -> Path:
    """``source`` as a path, or a YieldkitTypeError saying what a source may be."""
    if isinstance(source, (str, os.PathLike)) and str(source).strip():
        return Path(source)
    hint = ""
    if isinstance(source, (bytes, bytearray)):
        hint = " (for file content in memory, wrap it: io.BytesIO(data))"
    elif isinstance(source, (list, tuple)):
        hint = " (read the files one by one and pd.concat the tables)"
    raise YieldkitTypeError(
        f"The 'source' argument of {where} must be a file path, an open file or a DataFrame. "
        f"Got {type(source).__name__} {short_repr(source)} instead{hint}."
    )


@contextlib.contextmanager
def spooled(fh: Any) -> Iterator[tuple[Path, str]]:
    """Copy an open binary or text file (or ``io.BytesIO`` / ``io.StringIO``) to a private
    temporary file; yield its path and the stream's name for messages."""
    import tempfile

    name = getattr(fh, "name", None)
    name = str(name) if isinstance(name, (str, os.PathLike)) else f"<{type(fh).__name__}>"
    content = fh.read()
    if isinstance(content, str):
        content = content.encode("utf-8")
    if not isinstance(content, (bytes, bytearray)):
        raise YieldkitTypeError(f"{name}: reading it gave {type(content).__name__}, not text or bytes")
    base = Path(name).name if not name.startswith("<") else "stream"
    with tempfile.TemporaryDirectory(prefix="yieldkit-") as tmpdir:
        tmp = Path(tmpdir) / base
        tmp.write_bytes(bytes(content))
        try:
            yield tmp, name
        except (ParseError, SchemaError) as exc:
            # messages name the stream, not the private copy
            raise type(exc)(str(exc).replace(str(tmp), name)) from None


def _read_stream(fh: Any, table: str, columns: Mapping[str, str] | None,
                 on_error: str) -> tuple[pd.DataFrame, str, int | None]:
    """A table from an open file: the readers work on files, so the content is spooled first."""
    with spooled(fh) as (tmp, name):
        df, _, line_base = read_table(tmp, table, columns, on_error)
    return df, name, line_base


def _load(source: Source, table: str, columns: Mapping[str, str] | None,
          on_error: str = "raise") -> tuple[pd.DataFrame, str, int | None]:
    """The raw table of a CSV/Parquet source, its name for messages and the CSV line base."""
    if not isinstance(source, pd.DataFrame) and not hasattr(source, "read"):
        _as_path(source, {"die": "read_dies", "defect": "read_defects", "wafer": "read_wafers"}[table])
    return read_table(source, table, columns, on_error)


def read_dies(
    source: Source,
    *,
    columns: Mapping[str, str] | None = None,
    good_bins: Iterable[int] | None = None,
    retests: str = "error",
    on_error: str = "raise",
) -> pd.DataFrame:
    """Read a CSV or Parquet die table into the canonical form.

    The CSV/Parquet reader behind :func:`yieldkit.read_dies` (which also reads the industry
    formats and open files); parameters, returns and errors as there. ``ParseError`` here means
    the file is not readable as CSV or Parquet.
    """
    good = good_bin_set(good_bins, where="read_dies")
    check_choice(on_error, ("raise", "salvage"), name="on_error", where="read_dies")
    check_columns(columns, "read_dies")
    df, name, line_base = _load(source, "die", columns, on_error)
    out = validate_dies(df, source=name, columns=columns, good_bins=good, retests=retests, line_base=line_base)
    del df
    pa.default_memory_pool().release_unused()  # reading and validating freed Arrow buffers: give them back
    return out


def read_defects(
    source: Source,
    *,
    columns: Mapping[str, str] | None = None,
    layout: Any = None,
    on_error: str = "raise",
) -> pd.DataFrame:
    """Read a defect table (one row per defect) into the canonical form.

    Given a :class:`~yieldkit.layout.WaferLayout`, whichever position form is missing
    (wafer frame ``x_um``/``y_um`` or die index plus in-die offset) is computed from the
    other. (:func:`yieldkit.read_defects` also reads KLARF files.)

    Examples
    --------
    >>> import pandas as pd, yieldkit as yk
    >>> lay = yk.WaferLayout(diameter_mm=100, die_pitch_um=(5000, 5000))
    >>> raw = pd.DataFrame({"lot": ["L"], "wafer": ["1"], "x_um": [100.0], "y_um": [-100.0], "class": ["particle"]})
    >>> yk.read_defects(raw, layout=lay)[["die_x", "die_y", "xrel_um", "yrel_um"]].to_dict("records")
    [{'die_x': 0, 'die_y': 0, 'xrel_um': 2600.0, 'yrel_um': 2400.0}]
    """
    check_choice(on_error, ("raise", "salvage"), name="on_error", where="read_defects")
    check_columns(columns, "read_defects")
    check_layout(layout, "read_defects")
    df, name, line_base = _load(source, "defect", columns, on_error)
    out = validate_defects(df, source=name, columns=columns, layout=layout, line_base=line_base)
    del df
    pa.default_memory_pool().release_unused()  # reading and validating freed Arrow buffers: give them back
    return out


def read_wafers(source: Source, *, columns: Mapping[str, str] | None = None, on_error: str = "raise") -> pd.DataFrame:
    """Read a wafer table (one row per wafer: product, slot, process history ``tool_<step>`` ...)."""
    check_choice(on_error, ("raise", "salvage"), name="on_error", where="read_wafers")
    check_columns(columns, "read_wafers")
    df, name, _ = _load(source, "wafer", columns, on_error)
    return validate_wafers(df, source=name, columns=columns)


def write_parquet(table: pd.DataFrame, path: str | os.PathLike[str], **kwargs: Any) -> Path:
    """Write a table to Parquet atomically (temporary file, then rename). Returns the path."""
    tbl = pa.Table.from_pandas(table, preserve_index=False)
    with atomic_path(path, suffix=".parquet.tmp") as tmp:
        pq.write_table(tbl, tmp, **kwargs)
    return Path(path)


def write_csv(table: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Write a table to CSV atomically (gzip-compressed when the name ends in ``.gz``)."""
    with atomic_path(path, suffix=".csv.tmp") as tmp:
        table.to_csv(tmp, index=False, compression="gzip" if str(path).endswith(".gz") else None)
    return Path(path)

