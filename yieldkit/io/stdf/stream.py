"""Reading an STDF file in chunks: the records of each chunk, with their place in the whole file.

:class:`RecordStream` reads a (possibly compressed) STDF file a chunk at a time and walks each
chunk with :func:`.walk.walk`. A record cut by the end of a chunk is carried over to the next
one, so every chunk handed out holds whole records only; offsets are given in the
(decompressed) file and record numbers count over the whole file. Memory is bounded by the
chunk size, whatever the size of the file.
"""

from __future__ import annotations

import bz2
import gzip
import logging
import lzma
import os
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, cast

import numpy as np

from ...errors import InputNotFoundError, ParseError
from .walk import Records, walk

log = logging.getLogger(__name__)

__all__ = ["CHUNK_SIZE", "Chunk", "RecordStream", "open_stream"]

#: bytes read at a time (the walk of a chunk needs a few times this in temporary arrays)
CHUNK_SIZE = 1 << 23


def open_stream(path: str | os.PathLike[str]) -> IO[bytes]:
    """A binary stream of the (decompressed) content of an STDF file.

    gzip, bzip2, xz and zip (first member) are recognised from their magic bytes.

    Raises
    ------
    InputNotFoundError
        When ``path`` does not exist.
    ParseError
        When a zip archive holds no file.
    """
    p = Path(path)
    if not p.is_file():
        raise InputNotFoundError(f"{p}: no such file")
    with open(p, "rb") as fh:
        magic = fh.read(6)
    if magic.startswith(b"\x1f\x8b"):
        return cast(IO[bytes], gzip.open(p, "rb"))
    if magic.startswith(b"BZh"):
        return cast(IO[bytes], bz2.open(p, "rb"))
    if magic.startswith(b"\xfd7zXZ\x00"):
        return cast(IO[bytes], lzma.open(p, "rb"))
    if magic.startswith(b"PK\x03\x04"):
        try:
            zf = zipfile.ZipFile(p)
        except zipfile.BadZipFile as exc:
            raise ParseError(f"cannot decompress: {exc}", path=p) from exc
        members = [i for i in zf.infolist() if not i.is_dir()]
        if not members:
            zf.close()
            raise ParseError("the zip archive holds no file", path=p)
        if len(members) > 1:
            log.warning("%s: zip archive holds %d files; reading %s", p, len(members), members[0].filename)
        return zf.open(members[0])
    return open(p, "rb")


@dataclass
class Chunk:
    """Whole records of one chunk: ``buf`` holds them, ``recs`` has offsets into ``buf`` and
    record numbers (``seq``) over the whole file; ``base`` is the file offset of ``buf[0]``."""

    buf: np.ndarray
    recs: Records
    base: int


class RecordStream:
    """The records of an STDF file, a chunk at a time.

    Parameters
    ----------
    path : str or path-like
        The file (plain or compressed).
    chunk_size : int
        Bytes read at a time; any size works (a record longer than a chunk is read over
        several), the default keeps the walk fast.

    Attributes (after :meth:`chunks` is exhausted)
    ----------------------------------------------
    n_records : int
        Complete records in the file.
    end : int
        File offset where the last complete record ends.
    truncated : tuple or None
        ``(offset, record name, message)`` when the file ends inside a record or a record
        header, as :attr:`.walk.Records.truncated`.
    """

    def __init__(self, path: str | os.PathLike[str], chunk_size: int = CHUNK_SIZE) -> None:
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        self.path = str(path)
        self.chunk_size = int(chunk_size)
        self._fh = open_stream(path)
        self._pending = b""
        self.n_records = 0
        self.end = 0
        self.truncated: tuple[int, str, str] | None = None

    def _read(self, n: int) -> bytes:
        try:
            return self._fh.read(n)
        except (OSError, EOFError, zipfile.BadZipFile, lzma.LZMAError) as exc:
            raise ParseError(f"cannot decompress: {exc}", path=self.path) from exc

    def head(self, n: int = 6) -> bytes:
        """The first ``n`` bytes (fewer when the file is shorter); they are not consumed."""
        while len(self._pending) < n:
            data = self._read(max(n - len(self._pending), self.chunk_size))
            if not data:
                break
            self._pending += data
        return self._pending[:n]

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> RecordStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def chunks(self, *, little: bool, keep: np.ndarray | None = None,
               counts: np.ndarray | None = None) -> Iterator[Chunk]:
        """Walk the file: one :class:`Chunk` per read holding at least one whole record.

        ``keep`` and ``counts`` are as for :func:`.walk.walk` (``counts`` counts complete
        records only).
        """
        carry = b""
        base = 0
        seq_base = 0
        pending, self._pending = self._pending, b""
        eof = False
        while not eof:
            data = pending or self._read(self.chunk_size)
            pending = b""
            eof = not data
            raw = carry + data if carry else data
            if not raw:
                break
            buf = np.frombuffer(raw, dtype=np.uint8)
            recs = walk(buf, little=little, keep=keep, path=self.path, counts=counts)
            if recs.n_records:
                recs.seq += seq_base
                yield Chunk(buf, recs, base)
            seq_base += recs.n_records
            if eof and recs.truncated is not None:
                off, name, msg = recs.truncated
                self.truncated = (base + off, name, msg)
            carry = raw[recs.end:]
            base += recs.end
            self.end = base
        self.n_records = seq_base
