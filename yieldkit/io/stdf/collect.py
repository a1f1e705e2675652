"""Decoding an STDF file a chunk at a time: the records the die table needs, and the test records.

:class:`Collector` takes the chunks of a :class:`.stream.RecordStream` in file order. Of each
chunk it keeps the index of the PIR, PRR and the few single records (file offset, type, record
number), decodes the single records and the PRR fields, and hands the test records to a
:class:`.results.TestCollector`. The bodies of the chunk are then dropped, so memory grows with
the number of parts, not with the size of the file.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...errors import ParseError
from ._vec import gather_strings, int_field, release_memory
from .records import REC_TYPES, decode_record
from .results import TestCollector
from .stream import Chunk
from .walk import Records

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
    f["head"], _ = int_field(buf, body, length, 0, 1, little=little)
    f["site"], _ = int_field(buf, body, length, 1, 1, little=little)
    f["part_flg"], _ = int_field(buf, body, length, 2, 1, little=little)
    f["num_test"], _ = int_field(buf, body, length, 3, 2, little=little)
    f["hbin"], _ = int_field(buf, body, length, 5, 2, little=little)
    f["sbin"], _ = int_field(buf, body, length, 7, 2, little=little, default=_MISSING_SBIN)
    f["x"], _ = int_field(buf, body, length, 9, 2, little=little, signed=True, default=_MISSING_XY)
    f["y"], _ = int_field(buf, body, length, 11, 2, little=little, signed=True, default=_MISSING_XY)
    f["test_t"], _ = int_field(buf, body, length, 13, 4, little=little)
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
        self._index: list[tuple[np.ndarray, ...]] = []
        self._prr: list[dict[str, Any]] = []
        self._pir_hs: list[np.ndarray] = []
        self.tests = TestCollector(little, path, keep_rows=test_rows) if tests else None
        self.error: ParseError | None = None
        self.tests_error: ParseError | None = None

    def add(self, chunk: Chunk) -> None:
        buf, recs, base = chunk.buf, chunk.recs, chunk.base
        keys = (recs.typ.astype(np.int64) << 8) | recs.sub
        is_test = np.isin(keys, _TEST_KEYS)
        main = np.flatnonzero(~is_test)
        off, length = recs.offset[main], recs.length[main]
        k = keys[main]
        self._index.append((off + base, length, recs.typ[main], recs.sub[main], recs.seq[main]))
        pir = k == _PIR
        pir_off, pir_len = off[pir], length[pir]
        last = len(buf) - 1
        self._pir_hs.append(
            np.where(pir_len >= 1, buf[np.minimum(pir_off + 4, last)], 0).astype(np.int64) * 256
            + np.where(pir_len >= 2, buf[np.minimum(pir_off + 5, last)], 0))
        prr = k == _PRR
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
                           fields["head"] * 256 + fields["site"], recs.seq[main[prr]], base)
        except ParseError as exc:
            self.tests_error = exc
        del t, keys, is_test
        release_memory()

    def records(self, n_records: int, end: int) -> Records:
        """The index of the PIR, PRR and single records over the whole file."""
        cols = list(zip(*self._index)) if self._index else [[np.zeros(0, np.int64)]] * 5
        off, length, typ, sub, seq = (np.concatenate(c) for c in cols)
        return Records(off, length, typ.astype(np.uint8), sub.astype(np.uint8), seq, n_records, end, None)

    def prr(self) -> dict[str, Any]:
        """The PRR fields of every part, in file order."""
        import pyarrow as pa

        if not self._prr:
            z = np.zeros(0, np.int64)
            return {c: z for c in ("head", "site", "part_flg", "num_test", "hbin", "sbin", "x", "y", "test_t")} | {
                "part_id": pa.array([], type=pa.string())}
        out = {c: np.concatenate([f[c] for f in self._prr]) for c in self._prr[0] if c != "part_id"}
        out["part_id"] = pa.concat_arrays([f["part_id"] for f in self._prr])
        return out

    def pir_hs(self) -> np.ndarray:
        """``HEAD_NUM * 256 + SITE_NUM`` of every PIR, in file order."""
        return np.concatenate(self._pir_hs) if self._pir_hs else np.zeros(0, np.int64)
