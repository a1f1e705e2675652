"""The long table of test results (PTR, MPR, FTR) of an STDF file, read with ``tests=True``."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from ...errors import ParseError
from ...schema import STRING
from ._vec import float_field, gather_strings, int_field, release_memory
from .records import REC_TYPES, decode_record

log = logging.getLogger(__name__)

__all__ = ["TestCollector"]

_FIXED = {"PTR": 12, "MPR": 12, "FTR": 38}


def _k(name: str) -> int:
    t, s = REC_TYPES[name]
    return (t << 8) | s


def _limits(f: dict[str, Any]) -> tuple[Any, Any, Any, Any]:
    """(lo, hi, lo_given, hi_given) from a PTR/MPR's OPT_FLAG and limit fields."""
    opt = f.get("OPT_FLAG")
    if opt is None:
        return np.nan, np.nan, False, False
    lo_given = hi_given = True
    lo, hi = f.get("LO_LIMIT"), f.get("HI_LIMIT")
    if opt & 0x40:
        lo = np.nan
    elif opt & 0x10 or lo is None:
        lo_given, lo = False, np.nan
    if opt & 0x80:
        hi = np.nan
    elif opt & 0x20 or hi is None:
        hi_given, hi = False, np.nan
    return lo, hi, lo_given, hi_given


def _cn(buf: np.ndarray, p: np.ndarray, end: np.ndarray, path: str, off: np.ndarray, field: str, base: int = 0):
    """A C*n field at absolute positions ``p`` (absent where ``p >= end``): (present, start, length, next p)."""
    present = p < end
    ln = np.where(present, buf[np.minimum(p, len(buf) - 1)], 0).astype(np.int64)
    over = present & (p + 1 + ln > end)
    if over.any():
        i = int(np.flatnonzero(over)[0])
        raise ParseError(f"field {field} runs past the end of the record", path=path, offset=base + int(off[i]),
                         record="PTR")
    return present, p + 1, ln, np.where(present, p + 1 + ln, end)


def _strings_codes(buf: np.ndarray, start: np.ndarray, ln: np.ndarray, names: dict[str, int]) -> np.ndarray:
    """Codes (into ``names``, extended) of the strings at ``start``; -1 for empty ones."""
    arr = gather_strings(buf, start, ln).dictionary_encode()
    vocab = arr.dictionary.to_pylist()
    codes = np.array([names.setdefault(v, len(names)) if v else -1 for v in vocab], dtype=np.int64)
    idx = arr.indices.to_numpy(zero_copy_only=False)
    return codes[idx] if len(codes) else np.full(len(idx), -1, np.int64)


def _ptr_tails(
    buf: np.ndarray, off: np.ndarray, length: np.ndarray, little: bool, path: str, names: dict[str, int],
    rows: np.ndarray, name_c: np.ndarray, units_c: np.ndarray, lo: np.ndarray, hi: np.ndarray,
    lo_given: np.ndarray, hi_given: np.ndarray, base: int = 0,
) -> None:
    """Decode the optional fields of PTRs longer than 12 bytes, all at once, into the row arrays."""
    end = off + 4 + length
    present, st, ln, p = _cn(buf, off + 16, end, path, off, "TEST_TXT", base)
    name_c[rows] = np.where(present, _strings_codes(buf, st, np.where(present, ln, 0), names), -1)
    _, _, _, p = _cn(buf, p, end, path, off, "ALARM_ID", base)
    has_opt = p < end
    opt = np.where(has_opt, buf[np.minimum(p, len(buf) - 1)], 0).astype(np.int64)
    p = np.where(has_opt, p + 1, end)
    p = np.where(p + 3 <= end, p + 3, end)  # RES_SCAL, LLM_SCAL, HLM_SCAL
    big = np.full(len(p), 1 << 20)
    lo_v, lo_ok = float_field(buf, p, np.where(p + 4 <= end, big, 0), 0, little=little)
    p = np.where(lo_ok, p + 4, end)
    hi_v, hi_ok = float_field(buf, p, np.where(p + 4 <= end, big, 0), 0, little=little)
    p = np.where(hi_ok, p + 4, end)
    present, st, ln, p = _cn(buf, p, end, path, off, "UNITS", base)
    units_c[rows] = np.where(present, _strings_codes(buf, st, np.where(present, ln, 0), names), -1)
    # OPT_FLAG bit 6/7: no low/high limit; bit 4/5: the limit is the test's default
    no_lo = has_opt & ((opt & 0x40) != 0)
    no_hi = has_opt & ((opt & 0x80) != 0)
    lg = no_lo | (has_opt & ((opt & 0x10) == 0) & lo_ok)
    hg = no_hi | (has_opt & ((opt & 0x20) == 0) & hi_ok)
    lo[rows] = np.where(lg & ~no_lo, lo_v, np.nan)
    hi[rows] = np.where(hg & ~no_hi, hi_v, np.nan)
    lo_given[rows] = lg
    hi_given[rows] = hg



_RECORDS = ("PTR", "MPR", "FTR")
_BIG = np.int64(1) << 40  # above any record number


def _dictionary(codes: np.ndarray, vocab: list[str]) -> pd.arrays.ArrowExtensionArray:
    """Arrow dictionary-encoded strings ``vocab[codes]`` (missing where the code is -1)."""
    itype = np.int8 if len(vocab) < 127 else (np.int16 if len(vocab) < 32767 else np.int32)
    mask = codes < 0
    idx = pa.array(codes.astype(itype, copy=False), mask=mask if mask.any() else None)
    arr = pa.DictionaryArray.from_arrays(idx, pa.array(vocab, type=pa.string()))
    return pd.arrays.ArrowExtensionArray(arr)


def _first_given(table: dict[int, Any], tkey: np.ndarray, given: np.ndarray, values: np.ndarray) -> None:
    """Remember, per test key not seen yet, the value of its first record that gives one."""
    gi = np.flatnonzero(given)
    if len(gi) == 0:
        return
    uk, fi = np.unique(tkey[gi], return_index=True)
    for key, v in zip(uk.tolist(), values[gi[fi]].tolist()):
        table.setdefault(key, v)


def _lookup(table: dict[int, Any], dtype: Any) -> tuple[np.ndarray, np.ndarray]:
    """A ``{test key: value}`` table as sorted key and value arrays."""
    keys = np.fromiter(table.keys(), dtype=np.int64, count=len(table))
    vals = np.asarray(list(table.values()), dtype=dtype)
    o = np.argsort(keys)
    return keys[o], vals[o]


def _fill(arr: np.ndarray, given: np.ndarray, tkey: np.ndarray, table: tuple[np.ndarray, np.ndarray]) -> None:
    """Where a record does not give the value, the value of its test's first record that does."""
    keys, vals = table
    if not len(keys) or given.all():
        return
    need = np.flatnonzero(~given)
    j = np.minimum(np.searchsorted(keys, tkey[need]), len(keys) - 1)
    found = keys[j] == tkey[need]
    arr[need[found]] = vals[j[found]]


def _concat(pieces: list[dict[str, np.ndarray]], col: str, dtype: Any) -> np.ndarray:
    """One column of every piece, as ``dtype``, concatenated; the pieces lose that column."""
    if not pieces:
        return np.zeros(0, dtype)
    out = np.concatenate([p.pop(col).astype(dtype, copy=False) for p in pieces])
    release_memory()
    return out


def _take(values: np.ndarray, idx: np.ndarray, block: int = 1 << 20) -> np.ndarray:
    """``values[idx]`` a block at a time (numpy would convert the whole index to int64 first)."""
    out = np.empty(len(idx), dtype=values.dtype)
    for s in range(0, len(idx), block):
        out[s:s + block] = values[idx[s:s + block]]
    return out


def _take_column(col: pd.Series, idx: np.ndarray) -> Any:
    """A die column at the rows ``idx``, in its own dtype (nullable integers stay nullable)."""
    if isinstance(col.dtype, np.dtype):
        return _take(col.to_numpy(), idx)
    if pd.api.types.is_integer_dtype(col.dtype):
        mask = col.isna().to_numpy()
        data = col.to_numpy(dtype=col.dtype.numpy_dtype, na_value=0)
        return pd.arrays.IntegerArray(_take(data, idx), _take(mask, idx))
    return col.array.take(idx)


def _narrow_codes(codes: np.ndarray, n: int) -> np.ndarray:
    return codes.astype(np.int8 if n < 127 else (np.int16 if n < 32767 else np.int32))


def _parts(prr_hs: np.ndarray) -> Any:
    """``part_of(hs, k)``: the row of the k-th PRR of head/site ``hs`` among all PRRs (-1: none)."""
    n_parts = len(prr_hs)
    counts = np.bincount(prr_hs, minlength=65536) if n_parts else np.zeros(65536, np.int64)
    order = np.argsort(prr_hs, kind="stable")
    starts = np.zeros(65536, np.int64)
    starts[1:] = np.cumsum(counts)[:-1]

    def part_of(hs: np.ndarray, k: np.ndarray) -> np.ndarray:
        if n_parts == 0:
            return np.full(len(hs), -1, np.int64)
        ok = k < counts[hs]
        return np.where(ok, order[np.minimum(starts[hs] + k, n_parts - 1)], -1)

    return part_of


class TestCollector:
    """The test records (PTR, MPR, FTR) of an STDF file, decoded a chunk at a time.

    Each chunk's records are decoded into narrow arrays (float32 for the R*4 results and
    limits, one-byte head/site/flags, integer codes for names and units) and attached to
    their part by number: a test record belongs to the next PRR with the same HEAD_NUM and
    SITE_NUM, i.e. to the k-th PRR of that head/site, k counting the PRRs before it. Names,
    units and limits a record does not give are those of the first record of the test (in
    file order) that gives them; they are filled in by :meth:`finish`, once the whole file
    has been seen.
    """

    def __init__(self, little: bool, path: str, *, keep_rows: bool = True) -> None:
        self.keep_rows = keep_rows
        self.little = little
        self.endian = "<" if little else ">"
        self.path = path
        self.names: dict[str, int] = {}
        self.pins_hs: dict[tuple[int, int, int], list[int]] = {}
        self.pins_t: dict[int, list[int]] = {}
        self.prr_count = np.zeros(65536, np.int64)
        self.pieces: list[dict[str, np.ndarray]] = []
        self.first: dict[str, dict[int, Any]] = {"name": {}, "units": {}, "lo": {}, "hi": {}}
        self.fails: list[tuple[np.ndarray, np.ndarray]] = []
        self.n_rows = 0

    def _code(self, text: Any) -> int:
        return -1 if not text else self.names.setdefault(text, len(self.names))

    def add(self, buf: np.ndarray, off: np.ndarray, length: np.ndarray, kind: np.ndarray, seq: np.ndarray,
            prr_hs: np.ndarray, prr_seq: np.ndarray, base: int = 0) -> None:
        """Decode the test records of one chunk.

        ``off``, ``length``, ``kind`` (``REC_TYP << 8 | REC_SUB``) and ``seq`` describe the test
        records (offsets into ``buf``, whose first byte is at file offset ``base``); ``prr_hs``
        (``HEAD_NUM * 256 + SITE_NUM``) and ``prr_seq`` the PRRs of the same chunk.
        """
        m = len(off)
        if m:
            self._add(buf, off, length, kind, seq, prr_hs, prr_seq, base)
        if len(prr_hs):
            self.prr_count += np.bincount(prr_hs, minlength=65536)

    def _add(self, buf: np.ndarray, off: np.ndarray, length: np.ndarray, kind: np.ndarray, seq: np.ndarray,
             prr_hs: np.ndarray, prr_seq: np.ndarray, base: int) -> None:
        little, path = self.little, self.path
        m = len(off)
        body = off + 4
        short = length < 7
        if short.any():
            bad = int(np.flatnonzero(short)[0])
            raise ParseError(f"test record of {int(length[bad])} bytes ends before its TEST_FLG field",
                             path=path, offset=base + int(off[bad]), record="PTR/MPR/FTR")
        test_num, _ = int_field(buf, body, length, 0, 4, little=little)
        head, _ = int_field(buf, body, length, 4, 1, little=little)
        site, _ = int_field(buf, body, length, 5, 1, little=little)
        flg, _ = int_field(buf, body, length, 6, 1, little=little)
        value, _ = float_field(buf, body, length, 8, little=little, dtype=np.float32)
        is_ptr = kind == _k("PTR")
        is_mpr = kind == _k("MPR")
        value = np.where(is_ptr & ((flg & 0x12) == 0), value, np.float32(np.nan))
        # -- the part of each record: the k-th PRR of its head/site -----------------------------
        hs = head * 256 + site
        pk = np.sort(prr_hs.astype(np.int64) * _BIG + prr_seq)
        within = np.searchsorted(pk, hs * _BIG + seq) - np.searchsorted(pk, hs * _BIG)
        k = self.prr_count[hs] + within
        # -- names, limits, units where given ---------------------------------------------------
        name_c = np.full(m, -1, np.int32)
        units_c = np.full(m, -1, np.int32)
        lo = np.full(m, np.nan, np.float32)
        hi = np.full(m, np.nan, np.float32)
        lo_given = np.zeros(m, bool)
        hi_given = np.zeros(m, bool)
        ptr_tail = np.flatnonzero(is_ptr & (length > 12))
        if len(ptr_tail):
            _ptr_tails(buf, off[ptr_tail], length[ptr_tail], little, path, self.names, ptr_tail,
                       name_c, units_c, lo, hi, lo_given, hi_given, base)
        n_rows = np.ones(m, np.int64)
        with_res = np.zeros(m, bool)
        ex_val: list[float] = []
        ex_pin: list[int] = []
        for i in np.flatnonzero(~is_ptr).tolist():
            rname = "MPR" if is_mpr[i] else "FTR"
            o = int(off[i])
            f = decode_record(rname, buf[o + 4: o + 4 + int(length[i])].tobytes(), self.endian, path=path,
                              offset=base + o)
            name_c[i] = self._code(f.get("TEST_TXT"))
            if rname != "MPR":
                continue
            lo[i], hi[i], lo_given[i], hi_given[i] = _limits(f)
            units_c[i] = self._code(f.get("UNITS"))
            tn, hs_key = int(test_num[i]), (int(test_num[i]), int(head[i]), int(site[i]))
            idx = f.get("RTN_INDX") or []
            if f.get("RTN_ICNT") and idx:
                self.pins_hs.setdefault(hs_key, idx)
                self.pins_t.setdefault(tn, idx)
            else:
                # V4: RTN_ICNT/RTN_INDX need only appear in the first MPR of the test
                idx = self.pins_hs.get(hs_key) or self.pins_t.get(tn) or []
            res = f.get("RTN_RSLT") or []
            if res:  # one row per result; an MPR without results keeps its own row (pass/fail)
                n_rows[i] = len(res)
                with_res[i] = True
                ex_val.extend(res)
                ex_pin.extend(idx[j] if j < len(idx) else -1 for j in range(len(res)))
        rec = np.where(is_ptr, 0, np.where(is_mpr, 1, 2)).astype(np.int8)
        tkey = (rec.astype(np.int64) << 32) | test_num
        for name, arr, given in (("name", name_c, name_c >= 0), ("units", units_c, units_c >= 0),
                                 ("lo", lo, lo_given), ("hi", hi, hi_given)):
            _first_given(self.first[name], tkey, given, arr)
        code_t = np.int16 if len(self.names) < 32767 else np.int32  # names and units: codes into one vocabulary
        piece = {
            "head": head.astype(np.uint8), "site": site.astype(np.uint8), "k": k.astype(np.int32), "rec": rec,
            "num": test_num.astype(np.uint32), "name": name_c.astype(code_t), "units": units_c.astype(code_t),
            "pin": np.full(m, -1, np.int32), "value": value, "lo": lo, "hi": hi, "lg": lo_given, "hg": hi_given,
            "flg": flg.astype(np.uint8),
        }
        if ex_val:
            rep = np.repeat(np.arange(m), n_rows)
            piece = {c: a[rep] for c, a in piece.items()}
            # the rows of an MPR with results take its results and pins, in order
            res_rows = np.repeat(with_res, n_rows)
            piece["value"][res_rows] = np.asarray(ex_val, dtype=np.float64).astype(np.float32)
            piece["pin"][res_rows] = np.asarray(ex_pin, dtype=np.int32)
        # first failing test of each part (key: head/site and k), in file order
        flg_r = piece["flg"]
        fail = np.flatnonzero(((flg_r & 0x80) != 0) & ((flg_r & 0x70) == 0))
        if len(fail):
            key = (piece["head"][fail].astype(np.int64) * 256 + piece["site"][fail]) << 32 | piece["k"][fail]
            uk, fi = np.unique(key, return_index=True)
            self.fails.append((uk, piece["num"][fail][fi]))
        self.n_rows += len(piece["head"])
        if self.keep_rows:
            self.pieces.append(piece)

    def first_fail(self, dies: pd.DataFrame, prr_hs: np.ndarray) -> pd.arrays.IntegerArray:
        """Per die row (one per PRR, in file order), the number of its first failing test, or missing."""
        part_of = _parts(prr_hs)
        first = pd.arrays.IntegerArray(np.zeros(len(dies), np.int64), np.ones(len(dies), bool))
        if self.fails:
            keys = np.concatenate([f[0] for f in self.fails])
            nums = np.concatenate([f[1] for f in self.fails])
            uk, fi = np.unique(keys, return_index=True)  # the earliest chunk's first failure
            part = part_of(uk >> 32, uk & 0xFFFFFFFF)
            ok = part >= 0
            first[part[ok]] = nums[fi][ok].astype(np.int64)
        return first

    def fill_tables(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Per field, the value of each test's first record that gives it (see :meth:`table`)."""
        return {
            "name": _lookup(self.first["name"], np.int32), "units": _lookup(self.first["units"], np.int32),
            "lo": _lookup(self.first["lo"], np.float32), "hi": _lookup(self.first["hi"], np.float32),
        }

    def finish(self, dies: pd.DataFrame, prr_hs: np.ndarray) -> tuple[pd.DataFrame, pd.arrays.IntegerArray]:
        """The long test table and the first failing test of each part.

        ``dies`` is the die table (one row per PRR, in file order) and ``prr_hs`` the
        ``HEAD_NUM * 256 + SITE_NUM`` of each PRR. See :meth:`table` for the columns.
        """
        return self.table(dies, prr_hs, self.fill_tables()), self.first_fail(dies, prr_hs)

    def table(self, dies: pd.DataFrame, prr_hs: np.ndarray,
              fill: dict[str, tuple[np.ndarray, np.ndarray]]) -> pd.DataFrame:
        """The test rows collected since the last call, as the long test table (they are dropped here).

        ``fill`` gives what a record does not (:meth:`fill_tables` of a collector that has seen
        the whole file). Records of a part without PRR (a truncated file read with
        ``on_error="salvage"``) are dropped.

        Returns
        -------
        DataFrame
            ``lot_id, wafer_id`` (categorical), ``die_x, die_y, head, site, test_seq,
            part_index`` (row of the part in the die table), ``record`` ("PTR", "MPR", "FTR"),
            ``test_num``, ``test_name``, ``pin`` (MPR pin: its PMR index from RTN_INDX, or from
            the test's first MPR that gives them; missing when unknown and for other records),
            ``value`` (float32, as STDF stores it; missing for FTR, invalid results and an MPR
            without results, which keeps one row for its pass/fail), ``lo_limit``,
            ``hi_limit`` (float32; missing when the test has none), ``units``, ``passed``
            (nullable: missing when the test gives no pass/fail or was not executed or
            aborted, TEST_FLG bits 4-6), ``test_flg``. Texts are Arrow dictionary-encoded.
        """
        part_of = _parts(prr_hs)
        tables = fill
        pieces = self.pieces
        self.pieces = []
        dropped = 0
        for i, p in enumerate(pieces):
            hs = p["head"].astype(np.int64) * 256 + p["site"]
            part = part_of(hs, p.pop("k").astype(np.int64))
            del hs
            tkey = (p["rec"].astype(np.int64) << 32) | p["num"]
            code_t = np.int16 if len(self.names) < 32767 else np.int32
            p["name"], p["units"] = p["name"].astype(code_t, copy=False), p["units"].astype(code_t, copy=False)
            _fill(p["name"], p["name"] >= 0, tkey, tables["name"])
            _fill(p["units"], p["units"] >= 0, tkey, tables["units"])
            _fill(p["lo"], p.pop("lg"), tkey, tables["lo"])
            _fill(p["hi"], p.pop("hg"), tkey, tables["hi"])
            del tkey
            keep = part >= 0
            p["part"] = part.astype(np.int32)
            if not keep.all():
                dropped += int((~keep).sum())
                pieces[i] = {c: a[keep] for c, a in p.items()}
        if dropped:
            log.warning("%s: %d test record(s) belong to no complete part and are dropped", self.path, dropped)
        part = _concat(pieces, "part", np.int32)
        cols: dict[str, Any] = {}
        cols["head"] = _concat(pieces, "head", np.int16)
        cols["site"] = _concat(pieces, "site", np.int16)
        cols["record"] = _dictionary(_concat(pieces, "rec", np.int8), list(_RECORDS))
        num = _concat(pieces, "num", np.uint32)
        cols["test_num"] = num.astype(np.int32 if not len(num) or num.max() < 2**31 else np.int64)
        del num
        vocab = list(self.names)
        cols["test_name"] = _dictionary(_concat(pieces, "name", np.int32), vocab)
        pin = _concat(pieces, "pin", np.int32)
        cols["pin"] = pd.arrays.IntegerArray(pin, pin < 0)
        cols["value"] = _concat(pieces, "value", np.float32)
        cols["lo_limit"] = _concat(pieces, "lo", np.float32)
        cols["hi_limit"] = _concat(pieces, "hi", np.float32)
        cols["units"] = _dictionary(_concat(pieces, "units", np.int32), vocab)
        flg = _concat(pieces, "flg", np.uint8)
        # TEST_FLG bit 4 "not executed", bit 5 "aborted", bit 6 "no pass/fail indication": missing
        cols["passed"] = pd.arrays.BooleanArray((flg & 0x80) == 0, (flg & 0x70) != 0)
        cols["test_flg"] = flg.astype(np.int16)
        del flg, pieces
        # the columns of the part, last (the piece columns are gone by now)
        lc, lu = pd.factorize(dies["lot_id"])
        wc, wu = pd.factorize(dies["wafer_id"])
        cols["lot_id"] = pd.Categorical.from_codes(_take(_narrow_codes(lc, len(lu)), part), pd.Index(lu, dtype=STRING))
        cols["wafer_id"] = pd.Categorical.from_codes(_take(_narrow_codes(wc, len(wu)), part),
                                                     pd.Index(wu, dtype=STRING))
        for c in ("die_x", "die_y", "test_seq"):
            cols[c] = _take_column(dies[c], part)
        cols["part_index"] = part
        order = ["lot_id", "wafer_id", "die_x", "die_y", "head", "site", "test_seq", "part_index", "record",
                 "test_num", "test_name", "pin", "value", "lo_limit", "hi_limit", "units", "passed", "test_flg"]
        return pd.DataFrame({c: cols[c] for c in order}, index=pd.RangeIndex(len(part)), copy=False)
