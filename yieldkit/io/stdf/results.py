"""The long table of test results (PTR, MPR, FTR) of an STDF file, read with ``tests=True``."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from ...errors import ParseError
from ...schema import STRING
from ._vec import float_field, gather_strings, int_field
from .records import REC_TYPES, decode_record
from .walk import Records

log = logging.getLogger(__name__)

__all__ = ["read_tests"]

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


def _text(codes: np.ndarray, vocab: pa.Array) -> pd.Series:
    """Arrow-backed strings ``vocab[codes]``, missing where the code is -1."""
    idx = pa.array(codes, mask=codes < 0, type=pa.int64())
    return pd.Series(vocab.take(idx), dtype=STRING)


def _cn(buf: np.ndarray, p: np.ndarray, end: np.ndarray, path: str, off: np.ndarray, field: str):
    """A C*n field at absolute positions ``p`` (absent where ``p >= end``): (present, start, length, next p)."""
    present = p < end
    ln = np.where(present, buf[np.minimum(p, len(buf) - 1)], 0).astype(np.int64)
    over = present & (p + 1 + ln > end)
    if over.any():
        i = int(np.flatnonzero(over)[0])
        raise ParseError(f"field {field} runs past the end of the record", path=path, offset=int(off[i]), record="PTR")
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
    lo_given: np.ndarray, hi_given: np.ndarray,
) -> None:
    """Decode the optional fields of PTRs longer than 12 bytes, all at once, into the row arrays."""
    end = off + 4 + length
    present, st, ln, p = _cn(buf, off + 16, end, path, off, "TEST_TXT")
    name_c[rows] = np.where(present, _strings_codes(buf, st, np.where(present, ln, 0), names), -1)
    _, _, _, p = _cn(buf, p, end, path, off, "ALARM_ID")
    has_opt = p < end
    opt = np.where(has_opt, buf[np.minimum(p, len(buf) - 1)], 0).astype(np.int64)
    p = np.where(has_opt, p + 1, end)
    p = np.where(p + 3 <= end, p + 3, end)  # RES_SCAL, LLM_SCAL, HLM_SCAL
    big = np.full(len(p), 1 << 20)
    lo_v, lo_ok = float_field(buf, p, np.where(p + 4 <= end, big, 0), 0, little=little)
    p = np.where(lo_ok, p + 4, end)
    hi_v, hi_ok = float_field(buf, p, np.where(p + 4 <= end, big, 0), 0, little=little)
    p = np.where(hi_ok, p + 4, end)
    present, st, ln, p = _cn(buf, p, end, path, off, "UNITS")
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


def read_tests(
    buf: np.ndarray, recs: Records, keys: np.ndarray, little: bool, path: str, dies: pd.DataFrame,
    prr_hs: np.ndarray, prr_seq: np.ndarray,
) -> tuple[pd.DataFrame, pd.arrays.IntegerArray]:
    """Decode the test records and attach each to its part.

    A test record belongs to the next PRR with the same HEAD_NUM and SITE_NUM. Records of a
    part without PRR (a truncated file read with ``on_error="salvage"``) are dropped.

    Returns
    -------
    tests : DataFrame
        ``lot_id, wafer_id, die_x, die_y, head, site, test_seq, part_index`` (row of the part
        in the die table), ``record`` ("PTR", "MPR", "FTR"), ``test_num``, ``test_name``,
        ``pin`` (MPR pin: its PMR index from RTN_INDX, or from the test's first MPR that gives
        them; missing when unknown and for other records), ``value`` (missing for FTR, invalid
        results and an MPR without results, which keeps one row for its pass/fail),
        ``lo_limit``, ``hi_limit`` (missing when the test has none), ``units``, ``passed``
        (nullable: missing when the test gives no pass/fail or was not executed or aborted,
        TEST_FLG bits 4-6), ``test_flg``.
    first_fail : IntegerArray
        Per die row, the number of its first failing test, or missing.
    """
    endian = "<" if little else ">"
    sel = np.flatnonzero(np.isin(keys, [_k("PTR"), _k("MPR"), _k("FTR")]))
    off = recs.offset[sel]
    length = recs.length[sel]
    body = off + 4
    short = length < 7
    if short.any():
        bad = int(np.flatnonzero(short)[0])
        raise ParseError(f"test record of {int(length[bad])} bytes ends before its TEST_FLG field",
                         path=path, offset=int(off[bad]), record="PTR/MPR/FTR")
    test_num, _ = int_field(buf, body, length, 0, 4, little=little)
    head, _ = int_field(buf, body, length, 4, 1, little=little)
    site, _ = int_field(buf, body, length, 5, 1, little=little)
    flg, _ = int_field(buf, body, length, 6, 1, little=little)
    value, _ = float_field(buf, body, length, 8, little=little)
    kind = keys[sel]
    is_ptr = kind == _k("PTR")
    value = np.where(is_ptr & ((flg & 0x12) == 0), value, np.nan)
    seq = recs.seq[sel]
    # -- the part of each record: next PRR with the same head and site ------------------------
    big = np.int64(recs.n_records + 1)
    prr_key = prr_hs * big + prr_seq
    order = np.argsort(prr_key, kind="stable")
    skey = prr_key[order]
    hs = head * 256 + site
    j = np.searchsorted(skey, hs * big + seq)
    jc = np.minimum(j, max(len(skey) - 1, 0))
    ok = (j < len(skey)) & ((prr_hs[order][jc] if len(skey) else hs + 1) == hs)
    part = np.where(ok, order[jc] if len(skey) else 0, -1)
    if not ok.all():
        log.warning("%s: %d test record(s) belong to no complete part and are dropped", path, int((~ok).sum()))
    # -- names, limits, units: per record where given, else the test's first record --------
    m = len(sel)
    names: dict[str, int] = {}
    name_c = np.full(m, -1, np.int64)  # codes into `names`; -1: not given
    units_c = np.full(m, -1, np.int64)
    lo = np.full(m, np.nan)
    hi = np.full(m, np.nan)
    lo_given = np.zeros(m, bool)
    hi_given = np.zeros(m, bool)
    ptr_tail = np.flatnonzero(is_ptr & (length > 12))
    if len(ptr_tail):
        _ptr_tails(buf, off[ptr_tail], length[ptr_tail], little, path, names, ptr_tail,
                   name_c, units_c, lo, hi, lo_given, hi_given)
    extra_rows: list[dict[str, Any]] = []
    mpr_rows = np.zeros(m, bool)

    def code(text: Any) -> int:
        return -1 if not text else names.setdefault(text, len(names))

    # RTN_INDX of the first MPR of a test that gives them: per (test, head, site), and per test
    pins_hs: dict[tuple[int, int, int], list[int]] = {}
    pins_t: dict[int, list[int]] = {}
    for i in np.flatnonzero(~is_ptr).tolist():
        rname = "MPR" if kind[i] == _k("MPR") else "FTR"
        o = int(off[i])
        f = decode_record(rname, buf[o + 4: o + 4 + int(length[i])].tobytes(), endian, path=path, offset=o)
        name_c[i] = code(f.get("TEST_TXT"))
        if rname == "MPR":
            lo[i], hi[i], lo_given[i], hi_given[i] = _limits(f)
            units_c[i] = code(f.get("UNITS"))
            tn, hs_key = int(test_num[i]), (int(test_num[i]), int(head[i]), int(site[i]))
            idx = f.get("RTN_INDX") or []
            if f.get("RTN_ICNT") and idx:
                pins_hs.setdefault(hs_key, idx)
                pins_t.setdefault(tn, idx)
            else:
                # V4: RTN_ICNT/RTN_INDX need only appear in the first MPR of the test
                idx = pins_hs.get(hs_key) or pins_t.get(tn) or []
            res = f.get("RTN_RSLT") or []
            if res:  # one row per result; an MPR without results keeps its own row (pass/fail)
                mpr_rows[i] = True
                for k, v in enumerate(res):
                    extra_rows.append({"src": i, "pin": idx[k] if k < len(idx) else None, "value": v})
    tkey = kind.astype(np.int64) << 32 | test_num
    for arr, given in ((name_c, name_c >= 0), (units_c, units_c >= 0), (lo, lo_given), (hi, hi_given)):
        if given.all() or not given.any():
            continue
        # the first record (in file order) that gives the value, NaN ("no limit") included
        gi = np.flatnonzero(given)
        uk, fi = np.unique(tkey[gi], return_index=True)
        need = np.flatnonzero(~given)
        j = np.minimum(np.searchsorted(uk, tkey[need]), len(uk) - 1)
        found = uk[j] == tkey[need]
        arr[need[found]] = arr[gi[fi]][j[found]]
    vocab = pa.array(list(names), type=pa.string())
    rec_code = np.where(is_ptr, 0, np.where(kind == _k("MPR"), 1, 2)).astype(np.int8)
    # TEST_FLG bit 4 "not executed", bit 5 "aborted", bit 6 "no pass/fail indication": missing
    passed = pd.arrays.BooleanArray((flg & 0x80) == 0, (flg & 0x70) != 0)
    tab = pd.DataFrame({
        "seq": seq, "part_index": part, "record": rec_code, "test_num": test_num, "test_name": name_c,
        "pin": pd.arrays.IntegerArray(np.zeros(m, np.int32), np.ones(m, bool)), "value": value,
        "lo_limit": lo, "hi_limit": hi, "units": units_c, "passed": passed, "test_flg": flg.astype(np.int16),
        "head": head, "site": site,
    })
    if extra_rows:
        ex = pd.DataFrame(extra_rows)
        src = ex["src"].to_numpy()
        rows = tab.iloc[src].reset_index(drop=True)
        rows["pin"] = pd.array(ex["pin"].tolist(), dtype="Int32")
        rows["value"] = ex["value"].to_numpy(dtype=np.float64)
        rows["sub"] = np.arange(len(rows))
        keep_rows = tab[~mpr_rows].assign(sub=-1)
        tab = pd.concat([keep_rows, rows], ignore_index=True).sort_values(["seq", "sub"], kind="stable")
        tab = tab.drop(columns="sub")
    # first failing test of each part, before dropping orphans
    fails = tab[(tab["passed"] == False) & (tab["part_index"] >= 0)]  # noqa: E712
    first = pd.arrays.IntegerArray(np.zeros(len(dies), np.int64), np.ones(len(dies), bool))
    if len(fails):
        ff = fails.groupby("part_index", sort=False)["test_num"].first()
        first[ff.index.to_numpy()] = ff.to_numpy()
    tab = tab[tab["part_index"] >= 0].reset_index(drop=True)
    pi = tab["part_index"].to_numpy()
    out = pd.DataFrame({
        "lot_id": dies["lot_id"].take(pi).reset_index(drop=True),
        "wafer_id": dies["wafer_id"].take(pi).reset_index(drop=True),
        "die_x": dies["die_x"].take(pi).reset_index(drop=True),
        "die_y": dies["die_y"].take(pi).reset_index(drop=True),
        "head": tab["head"].astype(np.int16), "site": tab["site"].astype(np.int16),
        "test_seq": dies["test_seq"].take(pi).reset_index(drop=True),
        "part_index": pi.astype(np.int64),
        "record": _text(tab["record"].to_numpy(np.int64), pa.array(["PTR", "MPR", "FTR"])),
        "test_num": tab["test_num"].astype(np.int64),
        "test_name": _text(tab["test_name"].to_numpy(np.int64), vocab),
        "pin": tab["pin"], "value": tab["value"].astype(np.float64),
        "lo_limit": tab["lo_limit"].astype(np.float64), "hi_limit": tab["hi_limit"].astype(np.float64),
        "units": _text(tab["units"].to_numpy(np.int64), vocab), "passed": tab["passed"], "test_flg": tab["test_flg"],
    })
    return out, first
