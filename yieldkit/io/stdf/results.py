"""The long table of test results (PTR, MPR, FTR) of an STDF file, read with ``tests=True``."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from ...errors import ParseError
from ...schema import STRING
from ._vec import float_field, int_field
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
        ``pin`` (MPR pin index, else missing), ``value`` (missing for FTR and invalid results),
        ``lo_limit``, ``hi_limit`` (missing when the test has none), ``units``, ``passed``
        (nullable: missing when the test gives no pass/fail), ``test_flg``.
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
    name = np.full(m, None, dtype=object)
    units = np.full(m, None, dtype=object)
    lo = np.full(m, np.nan)
    hi = np.full(m, np.nan)
    lo_given = np.zeros(m, bool)
    hi_given = np.zeros(m, bool)
    extra_rows: list[dict[str, Any]] = []
    mpr_rows = np.zeros(m, bool)
    tails = np.flatnonzero((length > 12) | ~is_ptr)
    for i in tails:
        rname = "PTR" if kind[i] == _k("PTR") else ("MPR" if kind[i] == _k("MPR") else "FTR")
        o = int(off[i])
        f = decode_record(rname, buf[o + 4: o + 4 + int(length[i])].tobytes(), endian, path=path, offset=o)
        name[i] = f.get("TEST_TXT") or None
        if rname != "FTR":
            lo[i], hi[i], lo_given[i], hi_given[i] = _limits(f)
            units[i] = f.get("UNITS") or None
        if rname == "MPR":
            mpr_rows[i] = True
            res = f.get("RTN_RSLT") or []
            idx = f.get("RTN_INDX") or []
            for k, v in enumerate(res):
                extra_rows.append({"src": i, "pin": idx[k] if k < len(idx) else k, "value": v})
    default: dict[tuple[int, int], list[Any]] = {}
    for i in tails:
        d = default.setdefault((int(kind[i]), int(test_num[i])), [None, None, np.nan, np.nan, False, False])
        if d[0] is None and name[i] is not None:
            d[0] = name[i]
        if d[1] is None and units[i] is not None:
            d[1] = units[i]
        if not d[4] and lo_given[i]:
            d[2], d[4] = lo[i], True
        if not d[5] and hi_given[i]:
            d[3], d[5] = hi[i], True
    if default:
        tk = pd.Series(list(zip(kind.tolist(), test_num.tolist())))
        dd = {k: v for k, v in default.items()}
        looked = tk.map(dd)
        has = looked.notna().to_numpy()
        for pos, arr in ((0, name), (1, units)):
            need = has & pd.isna(arr)
            if need.any():
                arr[need] = [v[pos] for v in looked[need]]
        for pos, arr, given in ((2, lo, lo_given), (3, hi, hi_given)):
            need = has & ~given
            if need.any():
                arr[need] = [v[pos] for v in looked[need]]
    rec_name = np.where(is_ptr, "PTR", np.where(kind == _k("MPR"), "MPR", "FTR"))
    passed = pd.array(np.where(flg & 0x80, False, True), dtype="boolean")
    passed[(flg & 0x40) != 0] = pd.NA
    tab = pd.DataFrame({
        "seq": seq, "part_index": part, "record": rec_name, "test_num": test_num, "test_name": name,
        "pin": pd.array([pd.NA] * m, dtype="Int32"), "value": value, "lo_limit": lo, "hi_limit": hi,
        "units": units, "passed": passed, "test_flg": flg.astype(np.int16), "head": head, "site": site,
    })
    if extra_rows:
        ex = pd.DataFrame(extra_rows)
        src = ex["src"].to_numpy()
        rows = tab.iloc[src].reset_index(drop=True)
        rows["pin"] = pd.array(ex["pin"].to_numpy(dtype=np.int64), dtype="Int32")
        rows["value"] = ex["value"].to_numpy(dtype=np.float64)
        rows["sub"] = np.arange(len(rows))
        keep_rows = tab[~mpr_rows].assign(sub=-1)
        tab = pd.concat([keep_rows, rows], ignore_index=True).sort_values(["seq", "sub"], kind="stable")
        tab = tab.drop(columns="sub")
    # first failing test of each part, before dropping orphans
    fails = tab[(tab["passed"] == False) & (tab["part_index"] >= 0)]  # noqa: E712
    first = pd.array([pd.NA] * len(dies), dtype="Int64")
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
        "record": tab["record"].astype(STRING),
        "test_num": tab["test_num"].astype(np.int64),
        "test_name": tab["test_name"].astype(STRING),
        "pin": tab["pin"], "value": tab["value"].astype(np.float64),
        "lo_limit": tab["lo_limit"].astype(np.float64), "hi_limit": tab["hi_limit"].astype(np.float64),
        "units": tab["units"].astype(STRING), "passed": tab["passed"], "test_flg": tab["test_flg"],
    })
    return out, first
