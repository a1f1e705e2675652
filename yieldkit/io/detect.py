"""Recognise a file's format from its content and read it with the matching reader."""

from __future__ import annotations

import bz2
import gzip
import logging
import lzma
import os
import re
import zipfile
from pathlib import Path
from typing import Any

from ..errors import InputNotFoundError, ParseError

log = logging.getLogger(__name__)

__all__ = ["FORMATS", "read", "sniff_format"]

HEAD_BINARY = 256

#: format name -> (module, reader function)
FORMATS: dict[str, tuple[str, str]] = {
    "klarf": ("yieldkit.io.klarf", "read_klarf"),
    "stdf": ("yieldkit.io.stdf", "read_stdf"),
    "e142": ("yieldkit.io.wafermap", "read_map"),
    "g85": ("yieldkit.io.wafermap", "read_map"),
    "textmap": ("yieldkit.io.wafermap", "read_map"),
    "tsk": ("yieldkit.io.wafermap", "read_map"),
}


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
            with zipfile.ZipFile(path) as zf:
                names = [i for i in zf.infolist() if not i.is_dir()]
                # a zip of text wafer maps (one per wafer, maybe beside a summary) is a map
                from .wafermap.textmap import textmap_flavour

                for info in names[:64]:
                    with zf.open(info) as fh:
                        head = fh.read(n)
                    if textmap_flavour(head.decode("utf-8-sig", errors="replace")) is not None:
                        return head
                if names:
                    with zf.open(names[0]) as fh:
                        return fh.read(n)
    except (OSError, EOFError, zipfile.BadZipFile, lzma.LZMAError) as exc:
        raise ParseError(f"cannot decompress: {exc}", path=path) from exc
    return raw


def _is_stdf_far(b: bytes) -> bool:
    # FAR: REC_LEN=2, REC_TYP=0, REC_SUB=10, CPU_TYPE, STDF_VER=4; either byte order
    return len(b) >= 6 and b[2] == 0 and b[3] == 10 and b[5] == 4 and b[:2] in (b"\x02\x00", b"\x00\x02")


#: a text-map header line: a key, ':' and a value without table delimiters
_HEADER_LINE = re.compile(r"[a-z][\w .#/-]*:[^,;\t|]*")


def _map_header(low: str) -> bool:
    """Whether lower-cased text opens like a text map header (``DEVICE:``/``LOT:``/``WAFER:`` first,
    then at least one more ``KEY:VALUE`` line), not like a table whose first cell ends in ':'."""
    if not low.startswith(("device:", "lot:", "wafer:")):
        return False
    lines = [ln.strip() for ln in low.splitlines()[:10] if ln.strip()]
    return sum(bool(_HEADER_LINE.fullmatch(ln)) for ln in lines[:10]) >= 2 and bool(_HEADER_LINE.fullmatch(lines[0]))


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
    if b.startswith(b"PAR1"):
        return "parquet"
    if _is_stdf_far(b):
        return "stdf"
    from .wafermap.tsk import is_tsk

    if b"\x00" in b[:HEAD_BINARY] and is_tsk(b, p.stat().st_size):
        return "tsk"
    text = b.decode("utf-8-sig", errors="replace").lstrip()
    low = text.lower()
    if low.startswith("<"):
        root = re.search(r"<(?![?!])([\w:.-]+)", re.sub(r"<!--.*?-->", "", text, flags=re.S))
        name = root.group(1).rsplit(":", 1)[-1] if root else ""
        if name == "MapData":
            return "e142"
        if name in ("Map", "Maps"):
            return "g85"
        if "mapdata" in low or "e142" in low or "substratemap" in low:
            return "e142"
        if "<map" in low or "g85" in low:
            return "g85"
        return "unknown"
    head_kw = low[:2000]
    if (head_kw.startswith("fileversion") or re.match(r"record\s+filerecord\b", head_kw)
            or "defectrecordspec" in low or re.search(r"^\s*fileversion\s+\d", head_kw, re.M)):
        return "klarf"
    from .wafermap.textmap import textmap_flavour

    if textmap_flavour(text) is not None or _map_header(low):
        return "textmap"
    first = text.splitlines()[0] if text else ""
    if any(d in first for d in (",", ";", "\t", "|")):
        return "csv"
    return "unknown"


def read(path: str | os.PathLike[str], **kwargs: Any) -> Any:
    """Read any supported file, recognising its format from the content.

    Returns the matching reader's result: a KLARF, STDF or map object with ``.dies`` and/or
    ``.defects`` tables, or, for CSV and Parquet, the die table (use :func:`read_defects` to
    read a CSV as defects).
    """
    import importlib

    fmt = sniff_format(path)
    if fmt in FORMATS:
        module, func = FORMATS[fmt]
        return getattr(importlib.import_module(module), func)(path, **kwargs)
    if fmt in ("csv", "parquet"):
        from .tabular import read_dies

        return read_dies(path, **kwargs)
    raise ParseError(
        "unrecognised file format (expected CSV, Parquet, KLARF, STDF V4, SEMI E142/G85 or a text wafer map)",
        path=path,
    )
