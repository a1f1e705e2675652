"""Writing a die table (and optionally parametric results) as an STDF V4 file."""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from ...errors import DataQualityWarning, YieldkitValueError, check_choice
from ...frame import WAFER_FRAME
from ...layout import WaferLayout
from ...schema import validate_dies
from ..atomic import atomic_path
from .records import REC_TYPES, encode_record

log = logging.getLogger(__name__)

__all__ = ["write_stdf"]

_BIG = np.int64(1) << 40
_SLICE = 1 << 20


def _pa_bytes(values: Any, what: str) -> tuple[np.ndarray, np.ndarray]:
    """UTF-8 bytes of a string column as (flat uint8, lengths); missing -> empty."""
    arr = pa.array(pd.Series(values, dtype=object).where(pd.notna(values), "").astype(str).tolist(),
                   type=pa.large_binary())
    offs = np.frombuffer(arr.buffers()[1], dtype=np.int64)[arr.offset: arr.offset + len(arr) + 1]
    data = arr.buffers()[2]
    flat = np.frombuffer(data, dtype=np.uint8) if data is not None else np.zeros(0, np.uint8)
    flat = flat[offs[0]: offs[-1]]
    lens = np.diff(offs)
    if len(lens) and lens.max() > 255:
        raise YieldkitValueError(f"{what} values must be at most 255 bytes in STDF; the longest has {int(lens.max())}")
    return flat, lens


def _with_tail(fixed: np.ndarray, tail: np.ndarray, tail_len: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate each fixed-size row with its variable tail: (flat bytes, record lengths)."""
    n, k = fixed.shape
    lens = k + tail_len
    starts = np.zeros(n, np.int64)
    np.cumsum(lens[:-1], out=starts[1:])
    out = np.empty(int(lens.sum()), np.uint8)
    out[(starts[:, None] + np.arange(k)).ravel()] = fixed.ravel()
    if len(tail):
        tstart = np.zeros(n, np.int64)
        np.cumsum(tail_len[:-1], out=tstart[1:])
        dest = np.repeat(starts + k - tstart, tail_len) + np.arange(len(tail))
        out[dest] = tail
    return out, lens


def _assemble(streams: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> np.ndarray:
    """Merge record streams (order keys (n, 3), flat bytes, record lengths) in key order."""
    keys = np.concatenate([s[0] for s in streams])
    lens = np.concatenate([s[2] for s in streams])
    order = np.lexsort((keys[:, 2], keys[:, 1], keys[:, 0]))
    out_start = np.zeros(len(order), np.int64)
    sl = lens[order]
    np.cumsum(sl[:-1], out=out_start[1:])
    start_of = np.empty(len(order), np.int64)
    start_of[order] = out_start
    out = np.empty(int(sl.sum()), np.uint8)
    base = 0
    for _, flat, ln in streams:
        m = len(ln)
        src = np.zeros(m + 1, np.int64)
        np.cumsum(ln, out=src[1:])
        # in slices of records, so that the index arrays stay small
        for a in range(0, m, _SLICE):
            b = min(a + _SLICE, m)
            seg = ln[a:b]
            st = start_of[base + a: base + b]
            dest = np.repeat(st - (src[a:b] - src[a]), seg) + np.arange(int(src[b] - src[a]))
            out[dest] = flat[src[a]:src[b]]
        base += m
    return out


def _py_stream(keys: list[tuple[int, int, int]], recs: list[bytes]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    flat = np.frombuffer(b"".join(recs), dtype=np.uint8) if recs else np.zeros(0, np.uint8)
    return (np.asarray(keys, dtype=np.int64).reshape(-1, 3), flat,
            np.asarray([len(r) for r in recs], dtype=np.int64))


def _hdr(e: str, name: str) -> list[tuple[str, str]]:
    return [("len", e + "u2"), ("typ", "u1"), ("sub", "u1")]


def write_stdf(
    dies: pd.DataFrame,
    path: str | os.PathLike[str],
    *,
    layout: WaferLayout | None = None,
    tests: pd.DataFrame | None = None,
    lot: Mapping[str, Any] | None = None,
    wafers: pd.DataFrame | None = None,
    bin_names: Mapping[tuple[str, int], str] | None = None,
    byte_order: str = "little",
) -> None:
    """Write a die table as an STDF V4 file (atomically).

    Records written: FAR, MIR, WCR (when ``layout`` is given), per wafer WIR, then per part
    PIR, its PTRs (when ``tests`` is given) and PRR, then WRR; then HBR and SBR summaries
    (HEAD_NUM 255), a PCR and the MRR.

    Parameters
    ----------
    dies : DataFrame
        Die table of a single lot (see :func:`yieldkit.schema.validate_dies`). Parts are
        written wafer by wafer in row order (retests after the part they retest, by
        ``test_seq``). Optional columns used: ``sbin``, ``passed``, ``head``, ``site``,
        ``part_id``, ``part_flg``, ``num_test``, ``test_time_ms``. Missing ``die_x``/``die_y``
        and ``sbin`` are written as -32768 and 65535.
    path : str or path-like
        Output file; written through a temporary file and renamed.
    layout : WaferLayout, optional
        Written as the WCR (millimetres, flat down, x right, y up; CENTER_X/Y the die whose centre
        is nearest the wafer centre: a DataQualityWarning when the wafer centre is not a die centre,
        since the WCR cannot hold the sub-die offset).
    tests : DataFrame, optional
        Long table of parametric results: ``lot_id, wafer_id, die_x, die_y`` (and
        ``test_seq`` when there are retests), ``test_num``, ``value``, and optionally
        ``test_name``, ``lo_limit``, ``hi_limit``, ``units``, ``passed``. Written as PTRs
        in row order; the first PTR of a test carries its name, limits and units, later
        ones only where these change.
    lot : mapping, optional
        MIR fields by STDF name (e.g. ``{"PART_TYP": "X1", "JOB_NAM": "prog"}``).
    wafers : DataFrame, optional
        Wafer table; ``product`` gives the MIR PART_TYP when ``lot`` does not.
    bin_names : mapping, optional
        ``{("hard" | "soft", bin): name}`` for the HBR/SBR records. A screened die table
        (:func:`yieldkit.pat.apply_pat`, :func:`yieldkit.pat.geo_pat`) is written with its
        screened bins; the bins of its inked dies are named ``"PAT <rules>"`` unless named here.
    byte_order : {"little", "big"}
        Byte order (FAR CPU_TYPE 2 or 1).

    Raises
    ------
    YieldkitValueError
        Several lots in ``dies``, a test row that matches no part, or a string too long
        for STDF (255 bytes).
    SchemaError
        When ``dies`` is not a valid die table.

    Examples
    --------
    >>> import tempfile, pathlib, pandas as pd
    >>> dies = pd.DataFrame({"lot_id": "L1", "wafer_id": "W1", "die_x": [0, 1], "die_y": [0, 0],
    ...                      "hbin": [1, 3]})
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "w.stdf"
    >>> write_stdf(dies, p)
    >>> p.read_bytes()[:6]
    b'\\x02\\x00\\x00\\n\\x02\\x04'
    """
    check_choice(byte_order, ("little", "big"), name="byte_order", where="write_stdf")
    e = "<" if byte_order == "little" else ">"
    d = dies.reset_index(drop=True)
    missing_xy = np.zeros(len(d), bool)
    if "die_x" in d and "die_y" in d:
        missing_xy = (d["die_x"].isna() | d["die_y"].isna()).to_numpy()
        if missing_xy.any():
            d = d.copy()
            d["die_x"] = d["die_x"].astype("Float64").fillna(-32768).astype("int64")
            d["die_y"] = d["die_y"].astype("Float64").fillna(-32768).astype("int64")
    d = validate_dies(d, retests="order")
    lots = d["lot_id"].unique()
    if len(lots) > 1:
        raise YieldkitValueError(
            f"The 'dies' argument of write_stdf must hold a single lot (an STDF file has one MIR). Got {len(lots)} lots."
        )
    n = len(d)
    wcode, wuniq = pd.factorize(d["wafer_id"], sort=False)
    wnames = [str(w) for w in wuniq]
    new_row = np.arange(n)  # input row -> row as written
    # rows within a wafer in file order; retests must come after what they retest
    if "test_seq" in d:
        seq = d["test_seq"].to_numpy(dtype="int64", na_value=1)
        key = pd.Series(wcode.astype(np.int64) * (1 << 34) + (d["die_x"].to_numpy(np.int64) + 32768) * 65536
                        + (d["die_y"].to_numpy(np.int64) + 32768))
        if not np.array_equal(key.groupby(key, sort=False).cumcount().to_numpy() + 1, seq):
            order = np.lexsort((seq, wcode))
            d = d.iloc[order].reset_index(drop=True)
            new_row[order] = np.arange(n)
            missing_xy = missing_xy[order]
            wcode = wcode[order]
    die_ord = np.arange(n, dtype=np.int64)
    head = d["head"].to_numpy(dtype="int64", na_value=1) if "head" in d else np.ones(n, np.int64)
    site = d["site"].to_numpy(dtype="int64", na_value=0) if "site" in d else np.zeros(n, np.int64)
    passed = d["passed"].to_numpy(bool)
    hbin = d["hbin"].to_numpy(np.int64)
    sbin = d["sbin"].to_numpy(dtype="int64", na_value=65535) if "sbin" in d else np.full(n, 65535, np.int64)
    if (hbin > 65535).any() or (sbin > 65535).any():
        raise YieldkitValueError("bins must be at most 65535 in STDF")
    x = np.where(missing_xy, -32768, d["die_x"].to_numpy(np.int64))
    y = np.where(missing_xy, -32768, d["die_y"].to_numpy(np.int64))
    if (np.abs(x) > 32767).any() & ~missing_xy.all() or (np.abs(y[~missing_xy]) > 32767).any():
        if (np.abs(x[~missing_xy]) > 32767).any() or (np.abs(y[~missing_xy]) > 32767).any():
            raise YieldkitValueError("die indices must lie in [-32767, 32767] in STDF")
    if "part_flg" in d:
        flg = d["part_flg"].to_numpy(dtype="int64", na_value=0) & ~0x18
    else:
        flg = np.zeros(n, np.int64)
    flg = flg | np.where(passed, 0, 0x08)
    test_t = d["test_time_ms"].to_numpy(dtype="int64", na_value=0) if "test_time_ms" in d else np.zeros(n, np.int64)

    # -- PTRs -----------------------------------------------------------------------------------
    streams: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    num_test = np.zeros(n, np.int64)
    if tests is not None and len(tests):
        streams.extend(_ptr_streams(tests, d, wcode, die_ord, e, num_test, new_row))
    if "num_test" in d and (tests is None or not len(tests)):
        num_test = d["num_test"].to_numpy(dtype="int64", na_value=0)

    # -- PIR / PRR ------------------------------------------------------------------------------
    pir_dt = np.dtype(_hdr(e, "PIR") + [("head", "u1"), ("site", "u1")])
    pir = np.zeros(n, pir_dt)
    pir["len"], pir["typ"], pir["sub"] = 2, *REC_TYPES["PIR"]
    pir["head"], pir["site"] = head, site
    keys_w = wcode.astype(np.int64)
    streams.append((np.column_stack([keys_w, die_ord, np.full(n, -1)]), pir.view(np.uint8), np.full(n, 6)))
    prr_dt = np.dtype(_hdr(e, "PRR") + [
        ("head", "u1"), ("site", "u1"), ("flg", "u1"), ("num", e + "u2"), ("hbin", e + "u2"), ("sbin", e + "u2"),
        ("x", e + "i2"), ("y", e + "i2"), ("t", e + "u4"), ("idlen", "u1"),
    ])
    prr = np.zeros(n, prr_dt)
    if "part_id" in d:
        id_flat, id_len = _pa_bytes(d["part_id"], "part_id")
    else:
        id_flat, id_len = np.zeros(0, np.uint8), np.zeros(n, np.int64)
    prr["len"] = 18 + id_len
    prr["typ"], prr["sub"] = REC_TYPES["PRR"]
    prr["head"], prr["site"], prr["flg"], prr["num"] = head, site, flg, np.minimum(num_test, 65535)
    prr["hbin"], prr["sbin"], prr["x"], prr["y"], prr["t"], prr["idlen"] = hbin, sbin, x, y, test_t, id_len
    flat, lens = _with_tail(prr.view(np.uint8).reshape(n, -1), id_flat, id_len)
    streams.append((np.column_stack([keys_w, die_ord, np.full(n, _BIG)]), flat, lens))

    # -- wafers ---------------------------------------------------------------------------------
    wk, wr = [], []
    for w, name in enumerate(wnames):
        sel = wcode == w
        h = int(head[sel][0]) if sel.any() else 1
        wk.append((w, -1, 0))
        wr.append(encode_record("WIR", {"HEAD_NUM": h, "SITE_GRP": 255, "START_T": 0, "WAFER_ID": name}, e))
        wk.append((w, int(_BIG), 0))
        wr.append(encode_record("WRR", {
            "HEAD_NUM": h, "SITE_GRP": 255, "FINISH_T": 0, "PART_CNT": int(sel.sum()),
            "RTST_CNT": int((d["test_seq"].to_numpy(dtype="int64", na_value=1)[sel] > 1).sum()) if "test_seq" in d else 0,
            "ABRT_CNT": 0, "GOOD_CNT": int(passed[sel].sum()), "FUNC_CNT": 4294967295, "WAFER_ID": name,
        }, e))
    streams.append(_py_stream(wk, wr))

    # -- header and trailer ---------------------------------------------------------------------
    mir: dict[str, Any] = {
        "SETUP_T": 0, "START_T": 0, "STAT_NUM": 1, "MODE_COD": "P", "RTST_COD": " ", "PROT_COD": " ",
        "BURN_TIM": 65535, "CMOD_COD": " ", "LOT_ID": str(lots[0]), "PART_TYP": "", "NODE_NAM": "",
        "TSTR_TYP": "", "JOB_NAM": "", "JOB_REV": "", "SBLOT_ID": "",
    }
    if wafers is not None and "product" in wafers and len(wafers) and pd.notna(wafers["product"].iloc[0]):
        mir["PART_TYP"] = str(wafers["product"].iloc[0])
    for k, v in (lot or {}).items():
        if k in mir or k.isupper():
            mir[k] = v
    mir["LOT_ID"] = str(lots[0])
    head_recs = [encode_record("FAR", {"CPU_TYPE": 2 if e == "<" else 1, "STDF_VER": 4}, e),
                 encode_record("MIR", {k: v for k, v in mir.items() if k in _mir_fields()}, e)]
    if layout is not None:
        head_recs.append(_wcr(layout, e))
    names = dict(bin_names or {})
    if "pat_rule" in d and "hbin_orig" in d:
        names = {**_pat_bin_names(d), **names}
    tail = _bin_records(d, passed, names, e)
    tail.append(encode_record("PCR", {
        "HEAD_NUM": 255, "SITE_NUM": 0, "PART_CNT": n,
        "RTST_CNT": int((d["test_seq"].to_numpy(dtype="int64", na_value=1) > 1).sum()) if "test_seq" in d else 0,
        "ABRT_CNT": 0, "GOOD_CNT": int(passed.sum()), "FUNC_CNT": 4294967295,
    }, e))
    tail.append(encode_record("MRR", {"FINISH_T": 0, "DISP_COD": " ", "USR_DESC": "", "EXC_DESC": ""}, e))
    streams.append(_py_stream([(-1, i, 0) for i in range(len(head_recs))], head_recs))
    streams.append(_py_stream([(int(_BIG), i, 0) for i in range(len(tail))], tail))
    body = _assemble(streams)
    with atomic_path(path) as tmp:
        body.tofile(tmp)
    log.info("wrote %s: %d wafer(s), %d part(s), %d bytes", path, len(wnames), n, len(body))


def _pat_bin_names(d: pd.DataFrame) -> dict[tuple[str, int], str]:
    """``"PAT <rules>"`` for the bins of the dies a PAT screen inked (changed their hard bin)."""
    inked = d["pat_rule"].notna().to_numpy() & (d["hbin"].to_numpy() != d["hbin_orig"].to_numpy())
    out: dict[tuple[str, int], str] = {}
    for kind, col in (("hard", "hbin"), ("soft", "sbin")):
        if col not in d or not inked.any():
            continue
        pairs = pd.DataFrame({"b": d[col].to_numpy(dtype="int64", na_value=-1)[inked],
                              "r": d["pat_rule"].to_numpy(object)[inked].astype(str)}).drop_duplicates()
        for b, rs in pairs.groupby("b")["r"]:  # a few bins, a few distinct rule sets
            if int(b) >= 0:
                rules = dict.fromkeys(x for r in rs for x in r.split(";"))
                out[(kind, int(b))] = ("PAT " + ",".join(rules))[:255]
    return out


def _mir_fields() -> set[str]:
    from .records import FIELDS

    return {f for f, _ in FIELDS["MIR"]}


def _wcr(layout: WaferLayout, e: str) -> bytes:
    w, h = layout.die_pitch_um
    x0, y0 = layout.origin_um  # type: ignore[misc]
    # CENTER_X/Y name the die whose centre is the wafer centre (the reader puts the centre there):
    # the wafer centre sits at (vx, vy) die pitches from the centre of die (0, 0)
    vx, vy = -x0 / w - 0.5, -y0 / h - 0.5
    cx, cy = int(np.floor(vx + 0.5)), int(np.floor(vy + 0.5))  # the nearest die centre
    off = (vx - cx) * w, (vy - cy) * h
    if max(abs(off[0]), abs(off[1])) > 1e-6 * max(w, h):
        warnings.warn(
            f"the wafer centre is not at the centre of a die (it is ({off[0]:.6g}, {off[1]:.6g}) um from "
            f"the centre of die ({cx}, {cy})); STDF WCR CENTER_X/CENTER_Y name a die, so the layout read back "
            f"has its origin at ({-(cx + 0.5) * w:.6g}, {-(cy + 0.5) * h:.6g}) um instead of "
            f"({x0:.6g}, {y0:.6g}) um",
            DataQualityWarning, stacklevel=3,
        )
    # written in the wafer frame: flat down, x right, y up
    assert WAFER_FRAME.is_identity
    return encode_record("WCR", {
        "WAFR_SIZ": float(layout.diameter_mm), "DIE_HT": h / 1000.0, "DIE_WID": w / 1000.0, "WF_UNITS": 3,
        "WF_FLAT": "D", "CENTER_X": cx, "CENTER_Y": cy, "POS_X": "R", "POS_Y": "U",
    }, e)


def _bin_records(d: pd.DataFrame, passed: np.ndarray, names: Mapping[tuple[str, int], str], e: str) -> list[bytes]:
    out = []
    for kind, col, rec, pre in (("hard", "hbin", "HBR", "HBIN"), ("soft", "sbin", "SBR", "SBIN")):
        if col not in d:
            continue
        v = d[col].to_numpy(dtype="int64", na_value=-1)
        ok = v >= 0
        if not ok.any():
            continue
        g = pd.DataFrame({"bin": v[ok], "p": passed[ok]}).groupby("bin", sort=True)["p"].agg(["size", "sum"])
        for b, (cnt, npass) in zip(g.index.tolist(), g.to_numpy().tolist()):
            pf = "P" if npass == cnt else ("F" if npass == 0 else " ")
            out.append(encode_record(rec, {
                "HEAD_NUM": 255, "SITE_NUM": 0, f"{pre}_NUM": int(b), f"{pre}_CNT": int(cnt), f"{pre}_PF": pf,
                f"{pre}_NAM": names.get((kind, int(b)), ""),
            }, e))
    return out


def _ptr_streams(
    tests: pd.DataFrame, d: pd.DataFrame, wcode: np.ndarray, die_ord: np.ndarray, e: str, num_test: np.ndarray,
    new_row: np.ndarray,
) -> Iterable[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    t = tests.reset_index(drop=True)
    by_index = "part_index" in t
    need = ["test_num", "value"] + ([] if by_index else ["lot_id", "wafer_id", "die_x", "die_y"])
    miss = [c for c in need if c not in t]
    if miss:
        raise YieldkitValueError(
            f"The 'tests' argument of write_stdf lacks column(s) {', '.join(miss)} "
            "(give part_index, the row of the part in 'dies', or lot_id, wafer_id, die_x, die_y)"
        )
    if by_index:
        pi = t["part_index"].to_numpy(dtype=np.int64, na_value=-1)
        bad = (pi < 0) | (pi >= len(d))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise YieldkitValueError(f"test row {i} of write_stdf's 'tests' matches no part in 'dies' (part_index)")
        row = new_row[pi]
    else:
        row = _match_parts(t, d)
    num_test += np.bincount(row, minlength=len(num_test))
    num = t["test_num"].to_numpy(np.int64)
    val = t["value"].to_numpy(dtype=np.float64, na_value=np.nan)
    flg = np.where(np.isnan(val), 0x02, 0)
    if "passed" in t:
        p = t["passed"].astype("boolean")
        flg = flg | np.where(p.isna().to_numpy(), 0x40, np.where(p.fillna(True).to_numpy(bool), 0, 0x80))
    yield from _ptr_records(t, row, num, val, flg, d, wcode, die_ord, e)


def _match_parts(t: pd.DataFrame, d: pd.DataFrame) -> np.ndarray:
    """Row in ``d`` of each test row, matched on the die keys."""
    on = ["lot_id", "wafer_id", "die_x", "die_y"] + (["test_seq"] if "test_seq" in t and "test_seq" in d else [])
    left = t[on].copy()
    right = d[on].copy()
    for c in on:
        if c in ("lot_id", "wafer_id"):
            left[c], right[c] = left[c].astype(str), right[c].astype(str)
        else:
            left[c] = left[c].astype("Float64").fillna(-32768).astype("int64")
            right[c] = right[c].astype("Float64").fillna(-32768).astype("int64")
    right["_row"] = np.arange(len(d))
    if right.duplicated(on).any():
        raise YieldkitValueError("The 'tests' argument of write_stdf needs test_seq to tell retested parts apart")
    m = left.merge(right, on=on, how="left", sort=False)
    if m["_row"].isna().any():
        i = int(np.flatnonzero(m["_row"].isna().to_numpy())[0])
        raise YieldkitValueError(f"test row {i} of write_stdf's 'tests' matches no part in 'dies'")
    return m["_row"].to_numpy(np.int64)


def _codes(t: pd.DataFrame, col: str) -> tuple[np.ndarray, np.ndarray]:
    """Integer codes of a text column (-1 = missing/absent) and its distinct values."""
    if col not in t:
        return np.full(len(t), -1, np.int64), np.zeros(0, object)
    codes, uniq = pd.factorize(t[col], use_na_sentinel=True)
    return codes.astype(np.int64), np.asarray(uniq, dtype=object)


def _ptr_records(
    t: pd.DataFrame, row: np.ndarray, num: np.ndarray, val: np.ndarray, flg: np.ndarray, d: pd.DataFrame,
    wcode: np.ndarray, die_ord: np.ndarray, e: str,
) -> Iterable[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    k = len(t)
    head = d["head"].to_numpy(dtype="int64", na_value=1)[row] if "head" in d else np.ones(k, np.int64)
    site = d["site"].to_numpy(dtype="int64", na_value=0)[row] if "site" in d else np.zeros(k, np.int64)
    # within a part, PTRs in row order
    sub = pd.Series(row).groupby(row, sort=False).cumcount().to_numpy()
    keys = np.column_stack([wcode[row].astype(np.int64), die_ord[row], sub])
    name_c, name_u = _codes(t, "test_name")
    units_c, units_u = _codes(t, "units")
    lo_a = t["lo_limit"].to_numpy(dtype=np.float64, na_value=np.nan) if "lo_limit" in t else np.full(k, np.nan)
    hi_a = t["hi_limit"].to_numpy(dtype=np.float64, na_value=np.nan) if "hi_limit" in t else np.full(k, np.nan)
    # write order: by (wafer, part, sub); a long PTR where the description first appears or changes
    # (the reader's defaults are the test's first record, not its first non-missing values)
    order = np.lexsort((keys[:, 2], keys[:, 1], keys[:, 0]))
    num_s = num[order]
    _, first_pos, inv = np.unique(num_s, return_index=True, return_inverse=True)
    first = first_pos[inv]
    o_first = order[first]
    ref = np.empty(k, np.int64)
    ref[order] = o_first
    same = (name_c == name_c[ref]) & (units_c == units_c[ref])
    for a in (lo_a, hi_a):
        b = a[ref]
        same &= (a == b) | (np.isnan(a) & np.isnan(b))
    is_long = ~same
    is_long[o_first] = True
    short = np.flatnonzero(~is_long)
    dt = np.dtype(_hdr(e, "PTR") + [("num", e + "u4"), ("head", "u1"), ("site", "u1"), ("flg", "u1"),
                                    ("parm", "u1"), ("res", e + "f4")])
    arr = np.zeros(len(short), dt)
    arr["len"], arr["typ"], arr["sub"] = 12, *REC_TYPES["PTR"]
    arr["num"], arr["head"], arr["site"], arr["flg"] = num[short], head[short], site[short], flg[short]
    arr["res"] = np.nan_to_num(val[short])
    yield keys[short], arr.view(np.uint8), np.full(len(short), 16)
    lo_arr, hi_arr = lo_a, hi_a
    lk: list[tuple[int, int, int]] = []
    lr: list[bytes] = []
    for j in np.flatnonzero(is_long):
        i = int(j)
        lo, hi = float(lo_arr[i]), float(hi_arr[i])
        opt = 0x0E | (0x40 if np.isnan(lo) else 0) | (0x80 if np.isnan(hi) else 0)
        lr.append(encode_record("PTR", {
            "TEST_NUM": int(num[i]), "HEAD_NUM": int(head[i]), "SITE_NUM": int(site[i]), "TEST_FLG": int(flg[i]),
            "PARM_FLG": 0, "RESULT": float(np.nan_to_num(val[i])),
            "TEST_TXT": str(name_u[name_c[i]]) if name_c[i] >= 0 else "",
            "ALARM_ID": "", "OPT_FLAG": opt, "RES_SCAL": 0, "LLM_SCAL": 0, "HLM_SCAL": 0,
            "LO_LIMIT": 0.0 if np.isnan(lo) else float(lo), "HI_LIMIT": 0.0 if np.isnan(hi) else float(hi),
            "UNITS": str(units_u[units_c[i]]) if units_c[i] >= 0 else "",
        }, e))
        lk.append((int(keys[i, 0]), int(keys[i, 1]), int(keys[i, 2])))
    yield _py_stream(lk, lr)
