"""Decoding an STDF file a chunk at a time: the records the die table needs, and the test records.

:class:`Collector` takes the chunks of a :class:`.stream.RecordStream` in file order. Of each
chunk it keeps the record number and file offset of the PIRs and PRRs, the PRR fields in their
stored widths (one or two bytes each), and the decoded single records, and hands the test
records to a :class:`.results.TestCollector`. The bodies of the chunk are then dropped, so
memory grows with the number of parts (about 55 bytes a part), not with the size of the file.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...errors import ParseError
from ._vec import gather_strings, int_field, release_memory
from .records import REC_TYPES, decode_record
from .results import TestCollector
from .stream import Chunk

__all__ = ["Collector", "SINGLES", "TEST_RECS", "key"]

_MISSING_XY = -32768
_MISSING_SBIN = 65535
SINGLES = ("MIR", "MRR", "PCR", "HBR", "SBR", "WIR", "WRR", "WCR")
TEST_RECS = ("PTR", "MPR", "FTR")


def key(name: str) -> int:
    """``REC_TYP << 8 | REC_SUB`` of a record name."""
    t, s = REC_TYPES[name]
    return (t << 8) | s


_PIR, _PRR = key("PIR"), key("PRR")
_SINGLE_KEYS = {key(n): n for n in SINGLES}
_TEST_KEYS = np.array([key(n) for n in TEST_RECS])


#: the fixed PRR fields: (name, byte offset in the body, size, stored dtype, int_field options)
_PRR_FIELDS: tuple[tuple[str, int, int, Any, dict[str, Any]], ...] = (
    ("head", 0, 1, np.uint8, {}), ("site", 1, 1, np.uint8, {}), ("part_flg", 2, 1, np.uint8, {}),
    ("num_test", 3, 2, np.uint16, {}), ("hbin", 5, 2, np.uint16, {}),
    ("sbin", 7, 2, np.uint16, {"default": _MISSING_SBIN}),
    ("x", 9, 2, np.int16, {"signed": True, "default": _MISSING_XY}),
    ("y", 11, 2, np.int16, {"signed": True, "default": _MISSING_XY}),
    ("test_t", 13, 4, np.uint32, {}),
)


def _decode_prr(buf: np.ndarray, off: np.ndarray, length: np.ndarray, little: bool, path: str,
                base: int = 0) -> dict[str, Any]:
    """The PRR fields of the records at ``off`` in ``buf`` (``base``: the file offset of ``buf[0]``)."""
    body = off + 4
    short = length < 7
    if short.any():
        i = int(np.flatnonzero(short)[0])
        raise ParseError(
            f"PRR of {int(length[i])} bytes ends before its HARD_BIN field", path=path, offset=base + int(off[i]),
            record="PRR",
        )
    f: dict[str, Any] = {}
    # narrow types as stored in the PRR: memory holds these for every part of the file
    for name, at, size, dtype, kw in _PRR_FIELDS:
        f[name] = int_field(buf, body, length, at, size, little=little, **kw)[0].astype(dtype)
    has_id = length >= 18
    id_len, _ = int_field(buf, body, length, 17, 1, little=little)
    id_len = np.where(has_id, id_len, 0)
    over = has_id & (18 + id_len > length)
    if over.any():
        i = int(np.flatnonzero(over)[0])
        raise ParseError(
            f"PART_ID of {int(id_len[i])} bytes runs past the end of the {int(length[i])}-byte record",
            path=path, offset=base + int(off[i]), record="PRR",
        )
    f["part_id"] = gather_strings(buf, body + 18, id_len)
    return f


class Collector:
    """What :func:`.reader.read_stdf` keeps of each chunk (see the module docstring).

    A record that cannot be decoded does not stop the walk (the file may also end early,
    which is reported first): the first such error is kept in :attr:`error` (PRR and single
    records) or :attr:`tests_error` (test records) and decoding of that kind stops.
    """

    def __init__(self, little: bool, path: str, *, tests: bool = False, test_rows: bool = True) -> None:
        self.little = little
        self.endian = "<" if little else ">"
        self.path = path
        self.singles: dict[str, list[tuple[int, int, dict[str, Any]]]] = {n: [] for n in SINGLES}
        # per chunk: the PRRs' and PIRs' record numbers and file offsets, the PIRs' head/site
        self._prr_at: list[tuple[np.ndarray, np.ndarray]] = []
        self._pir_at: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self._prr: list[dict[str, Any]] = []
        self.tests = TestCollector(little, path, keep_rows=test_rows) if tests else None
        self.error: ParseError | None = None
        self.tests_error: ParseError | None = None

    def add(self, chunk: Chunk) -> None:
        buf, recs, base = chunk.buf, chunk.recs, chunk.base
        keys = (recs.typ.astype(np.int32) << 8) | recs.sub
        is_test = np.isin(keys, _TEST_KEYS)
        main = np.flatnonzero(~is_test)
        off, length = recs.offset[main], recs.length[main]
        k = keys[main]
        pir = k == _PIR
        prr = k == _PRR
        pir_off, pir_len = off[pir], length[pir]
        last = len(buf) - 1
        pir_hs = (np.where(pir_len >= 1, buf[np.minimum(pir_off + 4, last)], 0).astype(np.uint16) * 256
                  + np.where(pir_len >= 2, buf[np.minimum(pir_off + 5, last)], 0)).astype(np.uint16)
        self._pir_at.append((recs.seq[main[pir]], pir_off + base, pir_hs))
        self._prr_at.append((recs.seq[main[prr]], off[prr] + base))
        fields = None
        if self.error is None:
            try:
                for i in np.flatnonzero(~(pir | prr)).tolist():
                    name = _SINGLE_KEYS[int(k[i])]
                    o = int(off[i])
                    body = buf[o + 4: o + 4 + int(length[i])].tobytes()
                    self.singles[name].append(
                        (int(recs.seq[main[i]]), base + o,
                         decode_record(name, body, self.endian, path=self.path, offset=base + o)))
                fields = _decode_prr(buf, off[prr], length[prr], self.little, self.path, base)
                self._prr.append(fields)
            except ParseError as exc:
                self.error = exc
        if self.tests is None or self.tests_error is not None or fields is None:
            return
        t = np.flatnonzero(is_test)
        try:
            self.tests.add(buf, recs.offset[t], recs.length[t], keys[t], recs.seq[t],
                           fields["head"].astype(np.int64) * 256 + fields["site"], recs.seq[main[prr]], base)
        except ParseError as exc:
            self.tests_error = exc
        del t, keys, is_test
        release_memory()

    def prr_index(self) -> tuple[np.ndarray, np.ndarray]:
        """Record number and file offset of every PRR, in file order (the pieces are dropped)."""
        seq, off = _concat_pieces(self._prr_at, 2, np.int64)
        return seq, off

    def pir_index(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Record number, file offset and ``HEAD_NUM * 256 + SITE_NUM`` of every PIR, in file order
        (the pieces are dropped)."""
        seq, off, hs = _concat_pieces(self._pir_at, 3, np.int64)
        return seq, off, hs.astype(np.uint16)

    def prr(self) -> dict[str, Any]:
        """The PRR fields of every part, in file order, in their stored types (the pieces are dropped)."""
        import pyarrow as pa

        pieces, self._prr = self._prr, []
        out: dict[str, Any] = {}
        for name, _, _, dtype, _ in _PRR_FIELDS:  # a column at a time: memory holds one extra column
            out[name] = (np.concatenate([f.pop(name) for f in pieces]) if pieces else np.zeros(0, dtype))
        out["part_id"] = (pa.concat_arrays([f.pop("part_id") for f in pieces]) if pieces
                          else pa.array([], type=pa.string()))
        return out


def _concat_pieces(pieces: list[Any], n: int, dtype: Any) -> list[np.ndarray]:
    """The ``n`` arrays of each piece, concatenated over the pieces, which are emptied."""
    cols = [[p[j] for p in pieces] for j in range(n)]
    pieces.clear()
    out = []
    for c in cols:
        out.append(np.concatenate(c) if c else np.zeros(0, dtype))
        c.clear()
    return out
