"""A KLARF file of any size to a hive-partitioned Parquet dataset, wafer by wafer.

:func:`iter_klarf_defects` walks a KLARF file (1.1/1.2 or 1.8) with the streaming parse and yields
each wafer's canonical defect table as soon as the wafer is complete, its parsed columns
released before the next one is read: the memory is that of one wafer, whatever the size of
the file. :func:`klarf_to_dataset` writes those tables as a Parquet dataset
(``lot_id=.../wafer_id=.../part-0.parquet``, or ``lot_id=.../part-N.parquet``) into a
temporary directory renamed to the target at the end, which :func:`yieldkit.read_defects`
and ``dask.dataframe.read_parquet`` read back.
"""

from __future__ import annotations

import logging
import os
import shutil
import warnings
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ...errors import DataQualityWarning, InputNotFoundError, check_choice
from ..atomic import atomic_dir
from .parse12 import wafers_12
from .parse18 import wafers_18
from .reader import CHUNK_SIZE, _identifiers, _joined, _wafer_tables, read_klarf
from .stack import narrow_frame
from .statements import NotUtf8, RawFile, Restart, TextStream, release_unused, text_chunks

log = logging.getLogger(__name__)

__all__ = ["iter_klarf_defects", "klarf_to_dataset"]

_PARTITIONS = {"wafer": ("lot_id", "wafer_id"), "lot": ("lot_id",)}


def iter_klarf_defects(path: str | os.PathLike[str], *, chunk_size: int = CHUNK_SIZE) -> Iterator[pd.DataFrame]:
    """The canonical defect table of each wafer of a KLARF file, in file order.

    Each wafer is yielded once the file has moved past it; its parsed columns are released
    before the next wafer is read. Wafers without a DefectList yield nothing. The file's
    checks are those of :func:`~yieldkit.io.klarf.read_klarf`, and the tables those it
    returns, wafer by wafer, in the same types (the text columns Categoricals of the wafer's
    own values: :func:`~yieldkit.io.klarf.concat_defects` joins them into the table
    ``read_klarf`` gives).

    Raises
    ------
    Restart
        The file cannot be streamed wafer by wafer so as to give what :func:`read_klarf`
        gives: a wafer found in several blocks (inspection steps, merged by ``read_klarf``),
        text that is not UTF-8, or a defect list the chunked parse hands to the whole-text
        parse. Wafers may have been yielded before.
    """
    p = Path(path)
    if not p.exists():
        raise InputNotFoundError(f"{p}: no such file or directory")
    stream = TextStream(chunks=text_chunks(p, chunk_size, "utf-8-sig"))
    try:
        while not stream.eof and len(stream.text.lstrip()) < 64:
            stream.fill()
        v18 = stream.text.lstrip()[:64].lower().startswith("record")
        sink: dict[str, object] = {}
        seen: set[tuple[str, str]] = set()
        stem = p.name.split(".")[0]
        told = 0
        if v18:
            stream.close()
            wafers = wafers_18(lambda: TextStream(chunks=text_chunks(p, chunk_size, "utf-8-sig")), p, sink)
        else:
            wafers = wafers_12(stream, p, sink)
        for i, rw in enumerate(wafers):
            notes = sink["notes"]
            assert isinstance(notes, list)
            for note in notes[told:]:
                warnings.warn(note, DataQualityWarning, stacklevel=2)
            told = len(notes)
            key = _identifiers(rw, i, p, stem, quiet=True)
            if key in seen:
                raise Restart(f"wafer {key[1]!r} of lot {key[0]!r} is found in several blocks")
            seen.add(key)
            raw = RawFile(version=str(sink["version"]), header={}, wafers=[], class_lookup={})
            part = _wafer_tables(rw, i, raw, p, stem)
            rw.chunks.clear()
            rw.chunk_lines.clear()
            if part["defects"] is not None:
                core, extras = part["defects"]
                part["defects"] = None
                yield narrow_frame(_joined(core, extras, str(p)))
                del core, extras
            release_unused()
    except NotUtf8:
        raise Restart("the file is not UTF-8") from None
    finally:
        stream.close()


def _write(frames: Iterator[pd.DataFrame], root: Path, keys: tuple[str, ...]) -> int:
    """Write each table's rows under ``root/key=value/...``; returns the rows written. Without
    any row, the first (empty) table is written as ``root/part-0.parquet``, so that the dataset
    has its columns."""
    parts: dict[tuple[str, ...], int] = {}
    rows = 0
    empty = None
    for df in frames:
        if not len(df):
            empty = df if empty is None else empty
            continue
        for key, sub in df.groupby(list(keys), sort=False, dropna=False, observed=True):
            key = tuple(str(k) for k in (key if isinstance(key, tuple) else (key,)))
            folder = root.joinpath(*(f"{c}={quote(v, safe='')}" for c, v in zip(keys, key)))
            folder.mkdir(parents=True, exist_ok=True)
            k = parts.get(key, 0)
            parts[key] = k + 1
            table = pa.Table.from_pandas(sub.drop(columns=list(keys)), preserve_index=False)
            pq.write_table(table, folder / f"part-{k}.parquet")
            rows += len(sub)
        del df
    if not rows:
        from .reader import _defect_table

        table = empty if empty is not None else _defect_table([], str(root))
        pq.write_table(pa.Table.from_pandas(table, preserve_index=False), root / "part-0.parquet")
    return rows


def klarf_to_dataset(path: str | os.PathLike[str], out: str | os.PathLike[str], *, partition_by: str = "wafer",
                     chunk_size: int = CHUNK_SIZE) -> int:
    """Write the defects of a KLARF file as a hive-partitioned Parquet dataset, at fixed memory.

    Parameters
    ----------
    path : path-like
        The KLARF file (optionally gzip-compressed).
    out : path-like
        The dataset directory; written as a temporary directory beside it and renamed at the
        end (a directory there before is replaced then; on an error it is untouched).
    partition_by : {"wafer", "lot"}
        ``"wafer"``: one folder per wafer, ``lot_id=L/wafer_id=W/part-0.parquet``;
        ``"lot"``: one folder per lot, ``lot_id=L/part-N.parquet`` (one file per wafer).
        Folder names are the ids percent-encoded; the files hold every other column.
    chunk_size : int
        Bytes read per step [bytes].

    Returns
    -------
    int
        The number of defects written.

    Notes
    -----
    Files are converted wafer by wafer (:func:`iter_klarf_defects`): the memory is that of
    the largest wafer, not of the file. Files whose wafers come in several blocks
    (inspection steps), with quoted text in their defect rows, or that
    :func:`iter_klarf_defects` cannot stream otherwise are read whole with
    :func:`~yieldkit.io.klarf.read_klarf` first. The rows
    are those of ``read_klarf(path).defects``; :func:`yieldkit.read_defects` reads the
    dataset back (its rows ordered by folder), keeping the ids as text. Dask infers the type
    of partition keys from the folder names (``wafer_id=01`` would become the integer 1);
    to keep them as text, give it the keys' schema::

        import dask.dataframe as dd, pyarrow as pa, pyarrow.dataset as pads
        hive = pads.partitioning(pa.schema([("lot_id", pa.string()), ("wafer_id", pa.string())]), flavor="hive")
        defects = dd.read_parquet(out, dataset={"partitioning": hive})
    """
    check_choice(partition_by, tuple(_PARTITIONS), name="partition_by", where="klarf_to_dataset")
    keys = _PARTITIONS[partition_by]
    if not Path(path).exists():
        raise InputNotFoundError(f"{path}: no such file or directory")
    with atomic_dir(out) as tmp:
        try:
            return _write(iter_klarf_defects(path, chunk_size=chunk_size), tmp, keys)
        except Restart as why:
            log.info("%s: %s; reading it whole", path, why)
            for child in tmp.iterdir():
                shutil.rmtree(child)
        defects = read_klarf(path, chunk_size=chunk_size).defects
        wafer = defects["lot_id"].astype(str) + "\x1f" + defects["wafer_id"].astype(str)
        return _write((g for _, g in defects.groupby(wafer, sort=False)), tmp, keys)
