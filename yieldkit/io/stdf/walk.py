"""Finding the records of an STDF file: a header walk (reading the file: :mod:`.stream`).

An STDF file is a chain of records, each with a 4-byte header ``REC_LEN (U2), REC_TYP (U1),
REC_SUB (U1)``; a record's start is known only from the one before it. Walking that chain in
Python costs a few hundred nanoseconds per record, too slow for files with tens of millions
of test records, so :func:`walk` does it with numpy:

1. in a chunk of the file, every byte offset whose (REC_TYP, REC_SUB) pair names a known
   record type is a *candidate* record start (the true starts are among them);
2. each candidate points to its successor ``offset + 4 + REC_LEN``; nearly always that is the
   next candidate, so runs of linked candidates are taken in bulk;
3. from the chunk's first record (known), the chain follows a run to its end, then jumps
   to the exact successor of the run's last record, and so on: candidates off the chain
   (bytes inside records that happen to look like a header) are skipped, and every link of
   the result is checked;
4. where a successor is not a known record type the chunk is walked in plain Python
   instead, so the result is always exact.
"""

from __future__ import annotations

import logging
from bisect import bisect_left
from dataclasses import dataclass

import numpy as np

from .records import REC_NAMES

log = logging.getLogger(__name__)

__all__ = ["Records", "walk"]

_CHUNK = 1 << 20

# Exact pair test with two byte-translation tables: every REC_TYP value gets its own bit (there
# are 8 of them), and a REC_SUB byte maps to the bits of the REC_TYPs it pairs with.
_TYP_VALUES = sorted({t for t, _ in REC_NAMES})
assert len(_TYP_VALUES) <= 8
_TYP_BIT = bytes((1 << _TYP_VALUES.index(i)) if i in _TYP_VALUES else 0 for i in range(256))
_SUB_BITS = bytes(
    sum(1 << _TYP_VALUES.index(t) for t, s in REC_NAMES if s == i) for i in range(256)
)


@dataclass
class Records:
    """Complete records found by :func:`walk` (only the kinds asked for).

    ``offset`` is the header's byte offset, ``length`` the body length, ``typ``/``sub`` the
    record type; ``end`` is where the last complete record ends. ``truncated`` describes an
    incomplete record at the end of the file as ``(offset, record name, message)``, or is None.
    """

    offset: np.ndarray
    length: np.ndarray
    typ: np.ndarray
    sub: np.ndarray
    seq: np.ndarray
    n_records: int
    end: int
    truncated: tuple[int, str, str] | None


def _lengths(buf: np.ndarray, pos: np.ndarray, little: bool) -> np.ndarray:
    lo = buf[pos].astype(np.int32)
    hi = buf[pos + 1].astype(np.int32)
    v = lo | (hi << 8) if little else (lo << 8) | hi
    return v.astype(np.int64)


def _walk_python(buf: np.ndarray, start: int, stop: int, little: bool) -> tuple[list[int], int]:
    """Plain walk from ``start`` until a record starts at or after ``stop``; returns starts, next."""
    raw = memoryview(buf)  # type: ignore[arg-type]
    n = len(buf)
    out = []
    p = start
    while p < stop and p + 4 <= n:
        ln = raw[p] | (raw[p + 1] << 8) if little else (raw[p] << 8) | raw[p + 1]
        out.append(p)
        p += 4 + ln
    return out, p


def _walk_chunk(raw: memoryview, buf: np.ndarray, a: int, b: int, little: bool) -> tuple[np.ndarray, int] | None:
    """Vectorised walk of the records starting in [a, b); None when it cannot be verified."""
    n = len(buf)
    hi = min(b, n - 3)  # a header needs 4 bytes
    if hi <= a:
        return None
    # candidates: (REC_TYP, REC_SUB) at p+2, p+3 is a known pair (bytes.translate runs at memory speed)
    region = bytes(raw[a + 2: hi + 3])
    tb = np.frombuffer(region.translate(_TYP_BIT), dtype=np.uint8)
    sb = np.frombuffer(region.translate(_SUB_BITS), dtype=np.uint8)
    cand = np.flatnonzero((tb[:-1] & sb[1:]) != 0)
    if len(cand) == 0 or cand[0] != 0:
        return None
    cand += a
    nxt = cand + 4 + _lengths(buf, cand, little)
    m = len(cand)
    # Most candidates are records and link to the next candidate; follow those runs in bulk and
    # jump over the breaks (false candidates) one by one, in Python, from the chunk's first record.
    brk = np.flatnonzero(nxt[:-1] != cand[1:])
    brk = np.append(brk, m - 1)
    bn = nxt[brk]
    js = np.minimum(np.searchsorted(cand, bn), m - 1)
    succ = np.where(cand[js] == bn, js, -1)  # -1: no known record there
    succ[bn >= b] = -2  # -2: the next record starts after the chunk
    brk_l = brk.tolist()
    succ_l = succ.tolist()
    entries: list[int] = []
    ends: list[int] = []
    e = 0
    while True:
        k = bisect_left(brk_l, e)
        end = brk_l[k]
        entries.append(e)
        ends.append(end)
        nxt_e = succ_l[k]
        if nxt_e == -2:
            break
        if nxt_e <= end:  # an unknown record type: walk this chunk record by record
            return None
        e = nxt_e
    mark = np.bincount(np.asarray(entries), minlength=m + 1) - np.bincount(np.asarray(ends) + 1, minlength=m + 1)
    alive = np.cumsum(mark[:m]) > 0
    return cand[alive], int(nxt[ends[-1]])


def walk(
    buf: np.ndarray,
    *,
    little: bool,
    keep: np.ndarray | None = None,
    start: int = 0,
    path: str | None = None,
    counts: np.ndarray | None = None,
) -> Records:
    """Find every complete record of an STDF byte buffer.

    Parameters
    ----------
    buf : ndarray of uint8
        The file content.
    little : bool
        True for a little-endian file (FAR CPU_TYPE 2), False for big-endian (CPU_TYPE 1).
    keep : ndarray of bool, shape (65536,), optional
        Records to return, indexed by ``REC_TYP << 8 | REC_SUB``; default all.
    start : int
        Offset of the first record (0).
    path : str, optional
        File name for messages.
    counts : ndarray of int64, shape (65536,), optional
        When given, the number of records of every type is added to it.

    Returns
    -------
    Records
        Offsets, body lengths and types of the kept records, in file order, with ``seq`` the
        index of each kept record among all records; an incomplete last record is reported
        in ``truncated``, never returned.
    """
    n = len(buf)
    raw = memoryview(np.ascontiguousarray(buf))  # type: ignore[arg-type]
    if keep is None:
        keep = np.ones(65536, dtype=bool)
    offs: list[np.ndarray] = []
    seqs: list[np.ndarray] = []
    n_records = 0
    last = -1
    s = start
    slow = 0
    while s < n:
        b = min(s + _CHUNK, n)
        res = _walk_chunk(raw, buf, s, b, little)
        if res is None:
            slow += 1
            starts, s_next = _walk_python(buf, s, b, little)
            chain = np.asarray(starts, dtype=np.int64)
        else:
            chain, s_next = res
        if len(chain):
            key = (buf[chain + 2].astype(np.int32) << 8) | buf[chain + 3]  # REC_TYP << 8 | REC_SUB
            if counts is not None:
                counts += np.bincount(key, minlength=65536)
            k = np.flatnonzero(keep[key])
            offs.append(chain[k])
            seqs.append(k + n_records)
            n_records += len(chain)
            last = int(chain[-1])
        if s_next == s or len(chain) == 0:  # no progress (header does not fit): stop, reported below
            break
        s = s_next
    if slow:
        log.debug("%s: %d chunk(s) walked record by record", path, slow)
    pos = np.concatenate(offs) if offs else np.zeros(0, np.int64)
    seq = np.concatenate(seqs) if seqs else np.zeros(0, np.int64)
    truncated = None
    end = start
    if last >= 0:
        ln_last = int(_lengths(buf, np.array([last]), little)[0])
        end = last + 4 + ln_last
        if end > n:
            rt, rs = int(buf[last + 2]), int(buf[last + 3])
            name = REC_NAMES.get((rt, rs), f"type {rt}/{rs}")
            truncated = (
                last, name,
                f"the file ends inside this record: its header declares {ln_last} data bytes, "
                f"only {n - last - 4} remain",
            )
            n_records -= 1
            if len(pos) and pos[-1] == last:
                pos, seq = pos[:-1], seq[:-1]
            if counts is not None:
                counts[(rt << 8) | rs] -= 1
            end = last
    if truncated is None and end < n:
        truncated = (end, "?", f"the file ends inside a record header ({n - end} of 4 bytes)")
    typ = buf[pos + 2] if len(pos) else np.zeros(0, np.uint8)
    sub = buf[pos + 3] if len(pos) else np.zeros(0, np.uint8)
    length = _lengths(buf, pos, little) if len(pos) else np.zeros(0, np.int64)
    return Records(pos, length, typ, sub, seq, n_records, end, truncated)
