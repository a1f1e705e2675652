"""The one registry of file formats: recognise a file from its content and read it.

Every format module registers itself with :func:`register`, giving its name, a ``sniff``
function that recognises the format from the first (decompressed) bytes of a file, and its
reader. :func:`sniff_format` asks the registered formats in their order; :func:`read`,
:func:`read_dies`, :func:`read_defects` and :func:`read_wafers` dispatch from the registry
(CSV and Parquet to :mod:`yieldkit.io.tabular`, every other format to its own reader).
"""

from __future__ import annotations

import bz2
import gzip
import logging
import lzma
import os
import zipfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, TypeAlias

import pandas as pd

from .._pages import small_pages
from .._validation import check_columns, check_layout
from ..errors import InputNotFoundError, ParseError, SchemaError, check_choice
from ..schema import good_bin_set, validate_defects, validate_dies, validate_wafers
from . import many, tabular

log = logging.getLogger(__name__)

__all__ = ["FORMATS", "Format", "formats", "head_text", "read", "read_defects", "read_dies", "read_wafers",
           "reader_options", "register", "sniff_format", "text_encoding"]

HEAD_BINARY = 256

_UNRECOGNISED = ("unrecognised file format (expected CSV, Parquet, KLARF, STDF V4, SEMI E142/G85 or a text "
                 "wafer map)")


@dataclass(frozen=True)
class Format:
    """A registered file format.

    Attributes
    ----------
    name : str
        The name :func:`sniff_format` returns.
    sniff : callable
        ``sniff(head) -> bool`` on the first (decompressed) bytes; ``sniff(head, size)`` when
        ``sized`` (the file size in bytes is part of the evidence).
    reader : callable
        ``reader(path, **kwargs)``: the format's reader.
    order : int
        Formats are asked in increasing order (binary signatures before text heuristics).
    sized : bool
        Whether ``sniff`` takes the file size.
    module : str
        The public module the reader is imported from (default: the reader's own module).
    wafer_map : bool
        Whether :func:`yieldkit.read_map` reads it (a wafer map format).
    member : callable, optional
        ``member(head) -> bool``: whether a member of a zip archive is a file of this format
        (the archive is then recognised from that member).
    """

    name: str
    sniff: Callable[..., bool]
    reader: Callable[..., Any]
    order: int
    sized: bool = False
    module: str = ""
    wafer_map: bool = False
    member: Callable[[bytes], bool] | None = None


_REGISTRY: dict[str, Format] = {}

#: format name -> (module, reader function), for every registered format
FORMATS: dict[str, tuple[str, str]] = {}


def register(fmt: Format) -> Format:
    """Add a format to the registry (a format registered twice replaces its first entry)."""
    _REGISTRY[fmt.name] = fmt
    FORMATS[fmt.name] = (fmt.module or getattr(fmt.reader, "__module__", ""), getattr(fmt.reader, "__name__", ""))
    return fmt


def formats() -> list[Format]:
    """The registered formats in the order they are asked."""
    return sorted(_REGISTRY.values(), key=lambda f: f.order)


def text_encoding(head: bytes) -> str:
    """The encoding of a text from its first bytes: a byte-order mark, then the NUL pattern of
    BOM-less UTF-16/32, then the ``encoding`` of an XML declaration, else ``"utf-8"``."""
    import codecs
    import re

    for bom, enc in ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF8, "utf-8-sig"),
                     (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16")):
        if head.startswith(bom):
            return enc
    sample = head[: min(len(head), 512) // 4 * 4]
    if len(sample) >= 4 and sample.count(0) >= len(sample) // 3:
        if sample[0::4].count(0) < len(sample) // 40 and sample[1::4].count(0) == sample[2::4].count(0) == sample[3::4].count(0) == len(sample) // 4:
            return "utf-32-le"
        if sample[3::4].count(0) < len(sample) // 40 and sample[0::4].count(0) == sample[1::4].count(0) == sample[2::4].count(0) == len(sample) // 4:
            return "utf-32-be"
        even, odd = sample[0::2], sample[1::2]
        if odd.count(0) >= 0.9 * len(odd) and even.count(0) < 0.1 * len(even):
            return "utf-16-le"
        if even.count(0) >= 0.9 * len(even) and odd.count(0) < 0.1 * len(odd):
            return "utf-16-be"
    decl = re.match(rb"\s*<\?xml[^>]*\bencoding\s*=\s*[\"']([A-Za-z0-9._-]+)[\"']", head)
    if decl:
        try:
            return codecs.lookup(decl.group(1).decode("ascii")).name
        except LookupError:
            pass
    return "utf-8"


def head_text(head: bytes) -> str:
    """The first bytes as text (in the encoding :func:`text_encoding` finds, undecodable bytes
    replaced, a byte-order mark dropped), left-stripped."""
    enc = text_encoding(head)
    if enc.startswith(("utf-16", "utf-32")):
        head = head[: len(head) // 4 * 4]
    return head.decode(enc if enc != "utf-8" else "utf-8-sig", errors="replace").lstrip("\ufeff").lstrip()


def _zip_head(path: Path, n: int) -> bytes:
    with zipfile.ZipFile(path) as zf:
        names = [i for i in zf.infolist() if not i.is_dir()]
        # an archive of files of one format (one per wafer, maybe beside a summary) is that format
        members = [f.member for f in formats() if f.member is not None]
        for info in names[:64]:
            with zf.open(info) as fh:
                head = fh.read(n)
            if any(m(head) for m in members):
                return head
        if names:
            with zf.open(names[0]) as fh:
                return fh.read(n)
    return b""


def _head(path: Path, n: int = 4096) -> bytes:
    with open(path, "rb") as fh:
        raw = fh.read(n)
    try:
        if raw.startswith(b"\x1f\x8b"):
            with gzip.open(path, "rb") as fh:
                return fh.read(n)
        if raw.startswith(b"BZh"):
            with bz2.open(path, "rb") as fh:
                return fh.read(n)
        if raw.startswith(b"\xfd7zXZ\x00"):
            with lzma.open(path, "rb") as fh:
                return fh.read(n)
        if raw.startswith(b"PK\x03\x04"):
            return _zip_head(path, n)
    except (OSError, EOFError, zipfile.BadZipFile, lzma.LZMAError) as exc:
        raise ParseError(f"cannot decompress: {exc}", path=path) from exc
    return raw


def sniff_format(path: str | os.PathLike[str]) -> str:
    """Name the format of a file from its first bytes.

    Returns one of ``"parquet"``, ``"stdf"``, ``"klarf"``, ``"e142"``, ``"g85"``,
    ``"textmap"``, ``"tsk"`` (binary probe map), ``"csv"`` or ``"unknown"``. Compressed files (gzip, bzip2, zip) are
    looked into.
    """
    p = Path(path)
    if not p.exists():
        raise InputNotFoundError(f"{p}: no such file or directory")
    if p.is_dir():
        return "parquet"
    b = _head(p)
    size = p.stat().st_size
    for fmt in formats():
        if fmt.sniff(b, size) if fmt.sized else fmt.sniff(b):
            return fmt.name
    return "unknown"


def reader_of(name: str) -> Format | None:
    """The registered format of that name, or None."""
    return _REGISTRY.get(name)


def read(path: str | os.PathLike[str], **kwargs: Any) -> Any:
    """Read any supported file, recognising its format from the content.

    Returns the matching reader's result: a KLARF, STDF or map object with ``.dies`` and/or
    ``.defects`` tables, or, for CSV and Parquet, the die table (use :func:`read_defects` to
    read a CSV as defects).
    """
    fmt = sniff_format(path)
    if fmt in _REGISTRY:
        return _REGISTRY[fmt].reader(path, **kwargs)
    raise ParseError(_UNRECOGNISED, path=path)


def reader_options(fmt: str, on_error: str) -> dict[str, Any]:
    """``{"on_error": on_error}`` when the reader of ``fmt`` takes it and it is not the default."""
    import inspect

    f = _REGISTRY.get(fmt)
    if on_error == "raise" or f is None:
        return {}
    return {"on_error": on_error} if "on_error" in inspect.signature(f.reader).parameters else {}


def _format_table(source: tabular.Source, table: str, on_error: str) -> tuple[pd.DataFrame, str] | None:
    """The ``table`` of a file in a format with its own reader, or None for CSV, Parquet,
    DataFrames and unrecognised files (read as tables)."""
    if isinstance(source, pd.DataFrame) or not isinstance(source, (str, os.PathLike)) or not str(source).strip():
        return None  # tabular names what a source may be
    path = Path(source)
    if not path.is_file() or tabular.is_parquet(path) or path.name.lower().endswith((".parquet", ".pq")):
        return None
    fmt = sniff_format(path)
    if fmt in ("csv", "parquet", "unknown"):
        return None
    attr = {"die": "dies", "defect": "defects", "wafer": "wafers"}[table]
    tab = getattr(read(path, **reader_options(fmt, on_error)), attr, None)
    if tab is None:
        raise SchemaError(f"a {fmt} file holds no {table} table", source=str(path)) from None
    return tab, str(path)


#: what the table readers take: one source, or several files (a list of paths or glob patterns)
Sources: TypeAlias = "tabular.Source | list[str | os.PathLike[str]] | tuple[str | os.PathLike[str], ...]"


@small_pages()
def read_dies(
    source: Sources,
    *,
    columns: Mapping[str, str] | None = None,
    good_bins: Iterable[int] | None = None,
    retests: str = "error",
    on_error: str = "raise",
    progress: bool | None = None,
) -> pd.DataFrame:
    """Read a die table (one row per die test result) into the canonical form.

    Parameters
    ----------
    source : path, open file, DataFrame, list of paths or glob pattern
        CSV (plain, ``.gz`` or ``.bz2``), Parquet file, Parquet dataset directory, a DataFrame,
        an open binary or text file (``io.BytesIO``, ``io.StringIO``), or a file in an industry
        format (STDF, E142, G85, text map) which is read by its own reader. Several files -- a
        list of paths, a glob pattern (``"lots/*.stdf"``) or a folder of industry-format files --
        are read one task per file (on Dask when installed: the active ``dask.distributed``
        client, else threads) and stacked in the order of their paths.
    columns : mapping, optional
        Explicit ``{found_name: canonical_name}``; it wins over the alias guesses.
    good_bins : iterable of int, optional
        Hard bins that pass. Given, they decide pass/fail even when the table has a ``passed``
        column (one that disagrees is a :class:`~yieldkit.errors.DataQualityWarning`). Not
        given: a ``passed`` column is kept, otherwise bin 1 passes.
    retests : {"error", "order"}
        Several rows at one die without ``test_seq``: an error, or numbered in row order.
    on_error : {"raise", "salvage"}
        A file cut short (a CSV ending mid-row, a truncated STDF): a :class:`ParseError`, or
        the complete records before the cut with a :class:`~yieldkit.errors.DataQualityWarning`.
    progress : bool, optional
        A progress bar over the files when ``source`` names several (default: on a terminal).

    Returns
    -------
    DataFrame
        The canonical die table (see :mod:`yieldkit.schema`).

    Raises
    ------
    SchemaError
        Missing columns (listing those found and the aliases tried), bad values (naming the
        column and the first bad line), duplicated dies.
    ParseError
        The file is not readable as the format its content claims.

    Examples
    --------
    >>> import pandas as pd, yieldkit as yk
    >>> raw = pd.DataFrame({"LOT": ["L1", "L1"], "WAFER": ["01", "01"], "X": [0, 1], "Y": [0, 0], "BIN": [1, 7]})
    >>> yk.read_dies(raw)[["lot_id", "wafer_id", "die_x", "hbin", "passed"]].to_dict("list")
    {'lot_id': ['L1', 'L1'], 'wafer_id': ['01', '01'], 'die_x': [0, 1], 'hbin': [1, 7], 'passed': [True, False]}
    """
    kw = {"columns": columns, "good_bins": good_bins, "retests": retests, "on_error": on_error}
    if hasattr(source, "read"):
        with tabular.spooled(source) as (tmp, _):
            return read_dies(tmp, **kw)  # type: ignore[arg-type]
    good = good_bin_set(good_bins, where="read_dies")
    check_choice(on_error, ("raise", "salvage"), name="on_error", where="read_dies")
    check_columns(columns, "read_dies")
    files = many.expand(source, "read_dies", sniff_format)
    if files is not None:
        return many.read_files(partial(read_dies, columns=columns, good_bins=good_bins, retests=retests,
                                       on_error=on_error), files, what="die files", progress=progress)
    found = _format_table(source, "die", on_error)
    if found is None:
        return tabular.read_dies(source, **kw)  # type: ignore[arg-type]
    df, name = found
    if columns is None and good is None and "passed" in df.columns:
        return df  # canonical already
    # the reader has decided which parts have no wafer position (final test)
    return validate_dies(df, source=name, columns=columns, good_bins=good, retests=retests, missing_xy="unit")


@small_pages()
def read_defects(
    source: Sources,
    *,
    columns: Mapping[str, str] | None = None,
    layout: Any = None,
    on_error: str = "raise",
    progress: bool | None = None,
) -> pd.DataFrame:
    """Read a defect table (one row per defect) into the canonical form.

    Given a :class:`~yieldkit.layout.WaferLayout`, whichever position form is missing
    (wafer frame ``x_um``/``y_um`` or die index plus in-die offset) is computed from the
    other. A KLARF file is read by :func:`yieldkit.read_klarf`; ``source`` may also be an open file.
    Several files (a list of paths, a glob pattern such as ``"klarfs/*.000"``, a folder of
    KLARF files) are read as :func:`read_dies` reads them: one task per file, stacked in the
    order of their paths, with a progress bar (``progress``; default: on a terminal).

    Examples
    --------
    >>> import pandas as pd, yieldkit as yk
    >>> lay = yk.WaferLayout(diameter_mm=100, die_pitch_um=(5000, 5000))
    >>> raw = pd.DataFrame({"lot": ["L"], "wafer": ["1"], "x_um": [100.0], "y_um": [-100.0], "class": ["particle"]})
    >>> yk.read_defects(raw, layout=lay)[["die_x", "die_y", "xrel_um", "yrel_um"]].to_dict("records")
    [{'die_x': 0, 'die_y': 0, 'xrel_um': 2600.0, 'yrel_um': 2400.0}]
    """
    if hasattr(source, "read"):
        with tabular.spooled(source) as (tmp, _):
            return read_defects(tmp, columns=columns, layout=layout, on_error=on_error)
    check_choice(on_error, ("raise", "salvage"), name="on_error", where="read_defects")
    check_columns(columns, "read_defects")
    check_layout(layout, "read_defects")
    files = many.expand(source, "read_defects", sniff_format)
    if files is not None:
        return many.read_files(partial(read_defects, columns=columns, layout=layout, on_error=on_error), files,
                               what="defect files", progress=progress)
    found = _format_table(source, "defect", on_error)
    if found is None:
        return tabular.read_defects(source, columns=columns, layout=layout, on_error=on_error)
    df, name = found
    return validate_defects(df, source=name, columns=columns, layout=layout)


def read_wafers(source: Sources, *, columns: Mapping[str, str] | None = None,
                on_error: str = "raise", progress: bool | None = None) -> pd.DataFrame:
    """Read a wafer table (one row per wafer: product, slot, process history ``tool_<step>`` ...).

    Several files are read as :func:`read_dies` reads them (one task per file, in path order)."""
    if hasattr(source, "read"):
        with tabular.spooled(source) as (tmp, _):
            return read_wafers(tmp, columns=columns, on_error=on_error)
    check_choice(on_error, ("raise", "salvage"), name="on_error", where="read_wafers")
    check_columns(columns, "read_wafers")
    files = many.expand(source, "read_wafers", sniff_format)
    if files is not None:
        return many.read_files(partial(read_wafers, columns=columns, on_error=on_error), files,
                               what="wafer files", progress=progress)
    found = _format_table(source, "wafer", on_error)
    if found is None:
        return tabular.read_wafers(source, columns=columns, on_error=on_error)
    df, name = found
    return validate_wafers(df, source=name, columns=columns)


register(Format("parquet", tabular.sniff_parquet, tabular.read_dies, order=0))
register(Format("csv", tabular.sniff_csv, tabular.read_dies, order=90))
