"""Reading STDF V4 files into the canonical die, wafer and bin tables."""

from __future__ import annotations

import logging
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from ...errors import DataQualityWarning, ParseError, check_choice
from ...frame import Orientation, assume, cannot_honour, to_wafer_frame
from ...layout import WaferLayout
from ...schema import STRING, validate_dies, validate_wafers
from .collect import _MISSING_SBIN, _MISSING_XY, SINGLES, TEST_RECS, Collector
from .collect import key as _key
from .records import REC_NAMES
from .stream import CHUNK_SIZE, RecordStream

log = logging.getLogger(__name__)

__all__ = ["StdfFile", "read_stdf"]

_MISSING_U4 = 4294967295
#: WCR WF_UNITS -> micrometres per unit
_UNIT_UM = {1: 25_400.0, 2: 10_000.0, 3: 1_000.0, 4: 25.4}


@dataclass(repr=False)
class StdfFile:
    """The content of an STDF V4 file as canonical tables.

    Attributes
    ----------
    dies : DataFrame
        One row per PRR, in file order: the canonical die columns (``lot_id``, ``wafer_id``,
        ``die_x``, ``die_y``, ``hbin``, ``sbin``, ``passed``, ``site``, ``head``, ``test_seq``)
        then ``part_id``, ``part_flg`` (PART_FLG byte), ``num_test`` and ``test_time_ms``
        (nullable), and with ``tests=True`` ``first_fail_test`` (the number of the first failing
        PTR/MPR/FTR of the part, or missing). ``die_x``/``die_y`` are nullable when a part has
        no coordinates (X_COORD/Y_COORD = -32768).
    wafers : DataFrame
        One row per wafer (WIR/WRR): ``lot_id``, ``wafer_id``, ``product``, ``head``,
        ``start_time``/``finish_time`` (UTC), the WRR counts (``part_cnt``, ``rtst_cnt``,
        ``abrt_cnt``, ``good_cnt``, ``func_cnt``; missing when the file says so),
        ``fabwf_id``, ``frame_id``, ``mask_id``, and ``n_parts``/``n_good`` counted from the PRRs.
    lot : dict
        MIR and MRR fields by their STDF names, plus ``lot_id``.
    bins : DataFrame
        One row per (``kind`` "hard"/"soft", ``bin``): ``count`` from the HBR/SBR (the
        HEAD_NUM 255 summary when present, otherwise the sum over heads and sites), ``pf``
        ("P", "F" or missing), ``name``, and ``parts``, the PRRs carrying that bin.
    bin_records : DataFrame
        The HBR/SBR records as written (``kind``, ``head``, ``site``, ``bin``, ``count``,
        ``pf``, ``name``).
    layout : WaferLayout or None
        From the WCR (units converted to um and mm, wafer centre at the centre of die
        CENTER_X/CENTER_Y); inferred from the dies when there is no usable WCR; None when no
        part has coordinates.
    tests : DataFrame or None
        With ``tests=True``: one row per test result (PTR, FTR, and each MPR pin result) of a
        complete part, in file order, in narrow types: ``value``, ``lo_limit`` and ``hi_limit``
        are float32 (STDF stores R*4; the statistics of :mod:`yieldkit.parametric` and
        :mod:`yieldkit.pat` are computed in float64), ``lot_id``/``wafer_id`` categorical,
        ``record``, ``test_name`` and ``units`` Arrow dictionary-encoded strings, ``test_num``
        and ``part_index`` int32 (``test_num`` int64 when a number exceeds 2**31 - 1). See
        :meth:`yieldkit.io.stdf.results.TestCollector.table` for the columns.
    metadata : dict
        ``far`` (CPU_TYPE, STDF_VER), ``byte_order``, ``wcr`` (the WCR fields as written),
        ``orientation`` (how die indices were mapped into the wafer frame), ``record_counts``
        ({record name: count} over the whole file), ``source``, ``salvaged``.
    """

    dies: pd.DataFrame
    wafers: pd.DataFrame
    lot: dict[str, Any]
    bins: pd.DataFrame
    bin_records: pd.DataFrame
    layout: WaferLayout | None
    tests: pd.DataFrame | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        return (
            f"StdfFile(lot_id={self.lot.get('lot_id')!r}, wafers={len(self.wafers)}, dies={len(self.dies)}, "
            f"tests={'None' if self.tests is None else len(self.tests)})"
        )


# --------------------------------------------------------------------------------------------
def _far(first: bytes, path: str) -> tuple[bool, dict[str, int]]:
    buf = np.frombuffer(first, dtype=np.uint8)
    n = len(buf)
    if n < 6:
        raise ParseError(
            f"too short to be an STDF file ({n} bytes; the FAR record alone needs 6)", path=path, offset=0, record="FAR"
        )
    if buf[2] != 0 or buf[3] != 10:
        raise ParseError(
            "not an STDF file: expected the FAR record (REC_TYP 0, REC_SUB 10) at the start, "
            f"found REC_TYP {int(buf[2])}, REC_SUB {int(buf[3])}",
            path=path, offset=0, record="FAR",
        )
    head = (int(buf[0]), int(buf[1]))
    if head == (2, 0):
        little = True
    elif head == (0, 2):
        little = False
    else:
        raise ParseError(
            f"bad FAR record length {head[0] | head[1] << 8} (expected 2 in either byte order)",
            path=path, offset=0, record="FAR",
        )
    cpu, ver = int(buf[4]), int(buf[5])
    if ver != 4:
        raise ParseError(f"STDF version {ver} is not supported (expected 4)", path=path, offset=5, record="FAR")
    if (cpu == 1 and little) or (cpu == 2 and not little):
        log.warning("%s: FAR CPU_TYPE %d disagrees with the byte order of its REC_LEN; using the latter", path, cpu)
    if cpu == 0:
        log.warning("%s: FAR CPU_TYPE 0 (VAX/PDP): reading integers little-endian, floats as IEEE", path)
    return little, {"CPU_TYPE": cpu, "STDF_VER": ver}


def _problem(msg: str, *, on_error: str, path: str, offset: int | None, record: str | None, salvage_note: str) -> None:
    if on_error == "raise":
        raise ParseError(msg + ". Pass on_error='salvage' to read the complete records before it",
                         path=path, offset=offset, record=record)
    where = f"byte {offset}, record {record}: " if offset is not None else ""
    warnings.warn(f"{path}: {where}{msg}; {salvage_note}", DataQualityWarning, stacklevel=4)


def _lot_id_fallback(path: str) -> str:
    name = Path(path).name
    stem = re.sub(r"(\.(gz|bz2|xz|zip))$", "", name, flags=re.I)
    stem = re.sub(r"\.(stdf?|std)$", "", stem, flags=re.I)
    return stem or name


def _time(v: Any) -> Any:
    if v is None or v == 0:
        return pd.NaT
    return pd.Timestamp(int(v), unit="s", tz="UTC")


def _u4(v: Any) -> Any:
    return pd.NA if v is None or v == _MISSING_U4 else int(v)


_FLAT_DEG = {"D": 0, "L": 90, "U": 180, "R": 270}


def _orientation(wcr: dict[str, Any] | None, path: str) -> dict[str, Any]:
    """How STDF die coordinates map into the wafer frame (x right, y up, flat at the bottom)."""
    pos_x = (wcr or {}).get("POS_X") or " "
    pos_y = (wcr or {}).get("POS_Y") or " "
    flat = (wcr or {}).get("WF_FLAT") or " "
    assumed = []
    stated = []
    if pos_x not in ("L", "R"):
        assumed.append("POS_X=R")
        stated += [f"POS_X {pos_x!r}"] if pos_x.strip() else []
        pos_x = "R"
    if pos_y not in ("U", "D"):
        assumed.append("POS_Y=U")
        stated += [f"POS_Y {pos_y!r}"] if pos_y.strip() else []
        pos_y = "U"
    if flat not in ("U", "D", "L", "R"):
        assumed.append("WF_FLAT=D")
        stated += [f"WF_FLAT {flat!r}"] if flat.strip() else []
        flat = "D"
    if stated:
        cannot_honour(path, f"WCR {', '.join(stated)} not understood; assumed the wafer frame for it (x right, "
                      "y up, flat at the bottom)", stacklevel=4)
    elif assumed and wcr is not None:
        assume(path, "WCR does not give %s; assumed the wafer frame (x right, y up, flat at the bottom)",
               ", ".join(assumed))
    sx, sy = -1 if pos_x == "L" else 1, -1 if pos_y == "D" else 1
    return {"sx": sx, "sy": sy, "flat": flat, "assumed": assumed,
            "frame": Orientation.from_axes(_FLAT_DEG[flat], sx < 0, sy < 0)}


def _to_frame(x: np.ndarray, y: np.ndarray, ori: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Apply POS_X/POS_Y, then rotate the view so that the flat is at the bottom."""
    return to_wafer_frame(x, y, ori["frame"])


def _layout(wcr: dict[str, Any] | None, ori: dict[str, Any], dies: pd.DataFrame, path: str) -> WaferLayout | None:
    def tested() -> pd.DataFrame:  # the dies with a position (only when the WCR does not do)
        has_xy = dies["die_x"].notna().to_numpy() if len(dies) else np.zeros(0, bool)
        return dies.loc[has_xy, ["die_x", "die_y"]].astype("int64")

    if wcr is not None:
        units = wcr.get("WF_UNITS") or 0
        size = wcr.get("WAFR_SIZ") or 0.0
        w_raw, h_raw = wcr.get("DIE_WID") or 0.0, wcr.get("DIE_HT") or 0.0
        if units not in _UNIT_UM and size > 0:
            units = 3 if size >= 50 else (1 if size <= 18 else 0)
            if units:
                log.warning("%s: WCR WF_UNITS unknown; guessed %s from WAFR_SIZ=%g", path,
                            "mm" if units == 3 else "inches", size)
        scale = _UNIT_UM.get(units)
        ok = scale is not None and all(np.isfinite(v) and v > 0 for v in (size, w_raw, h_raw))
        if ok and scale is not None:
            w, h = w_raw * scale, h_raw * scale
            if ori["flat"] in ("L", "R"):
                w, h = h, w
            cx, cy = wcr.get("CENTER_X"), wcr.get("CENTER_Y")
            if cx is not None and cy is not None and cx != _MISSING_XY and cy != _MISSING_XY:
                fx, fy = _to_frame(np.array([cx]), np.array([cy]), ori)
                ccx, ccy = float(fx[0]), float(fy[0])
            elif len(xy := tested()):
                ccx = (xy["die_x"].min() + xy["die_x"].max()) / 2.0
                ccy = (xy["die_y"].min() + xy["die_y"].max()) / 2.0
                log.info("%s: WCR has no CENTER_X/CENTER_Y; centred the wafer on the tested dies", path)
            else:
                ccx = ccy = 0.0
            try:
                return WaferLayout(
                    diameter_mm=float(size * scale / 1000.0), die_pitch_um=(float(w), float(h)),
                    origin_um=(-(ccx + 0.5) * w, -(ccy + 0.5) * h), edge_exclusion_mm=0.0,
                )
            except ValueError as exc:
                log.warning("%s: WCR geometry unusable (%s); inferring the layout from the dies", path, exc)
        else:
            log.info("%s: WCR gives no usable wafer or die size; inferring the layout from the dies", path)
    xy = tested()
    if len(xy) == 0:
        return None
    return WaferLayout.from_dies(xy)


def _empty_dies() -> pd.DataFrame:
    return pd.DataFrame({
        "lot_id": pd.Series([], dtype=STRING), "wafer_id": pd.Series([], dtype=STRING),
        "die_x": pd.Series([], dtype="Int32"), "die_y": pd.Series([], dtype="Int32"),
        "hbin": pd.Series([], dtype="int32"), "sbin": pd.Series([], dtype="Int32"),
        "passed": pd.Series([], dtype=bool), "site": pd.Series([], dtype="int16"),
        "head": pd.Series([], dtype="int16"), "test_seq": pd.Series([], dtype="int16"),
        "part_id": pd.Series([], dtype=STRING), "part_flg": pd.Series([], dtype="int16"),
        "num_test": pd.Series([], dtype="int32"), "test_time_ms": pd.Series([], dtype="Int64"),
    })


def _check_open_parts(pir_seq: np.ndarray, pir_off: np.ndarray, pir_hs: np.ndarray, prr_seq: np.ndarray,
                      prr_hs: np.ndarray) -> int | None:
    """Offset of a PIR whose part has no PRR (the file ends inside a part), else None: the last PIR
    of the first head/site (in head/site order) whose last PIR comes after its last PRR."""
    if len(pir_seq) == 0:
        return None
    last_prr = np.full(65536, -1, np.int64)
    np.maximum.at(last_prr, prr_hs, prr_seq)
    last_pir = np.full(65536, -1, np.int64)
    np.maximum.at(last_pir, pir_hs, pir_seq)
    open_hs = np.flatnonzero(last_pir > last_prr)
    if len(open_hs) == 0:
        return None
    return int(pir_off[np.searchsorted(pir_seq, last_pir[open_hs[0]])])


def _part_starts(pir_seq: np.ndarray, pir_hs: np.ndarray, prr_seq: np.ndarray, prr_hs: np.ndarray) -> np.ndarray:
    """Where each part opens in the record stream: the record number of its PIR, the last PIR of
    the PRR's head/site before it. A PRR without a PIR of its own (none since the previous PRR of
    its head/site) is taken as open from that previous PRR, or from the start of the file."""
    n = len(prr_seq)
    if n == 0:
        return np.zeros(0, np.int64)
    span = int(max(prr_seq.max(), pir_seq.max() if len(pir_seq) else 0)) + 1
    # the previous PRR of the same head/site (-1: none)
    prr_key = prr_hs.astype(np.int64) * span + prr_seq
    o = np.argsort(prr_key, kind="stable")
    prev = np.full(n, -1, np.int64)
    same = prr_hs[o][1:] == prr_hs[o][:-1]
    prev[o[1:]] = np.where(same, prr_seq[o][:-1], -1)
    if len(pir_seq) == 0:
        return prev
    # the last PIR of the same head/site before the PRR
    pir_key = np.sort(pir_hs.astype(np.int64) * span + pir_seq)
    j = np.searchsorted(pir_key, prr_key, side="left") - 1
    cand = pir_key[np.maximum(j, 0)]
    own = (j >= 0) & (cand // span == prr_hs) & (cand % span > prev)
    return np.where(own, cand % span, prev)


def _concurrent(wcode: np.ndarray, start: np.ndarray, end: np.ndarray, sel: np.ndarray) -> np.ndarray:
    """The wafer codes among the parts ``sel`` of which at least two parts were open at once (one
    opened, PIR, before the other closed, PRR)."""
    idx = np.flatnonzero(sel)
    if len(idx) < 2:
        return np.zeros(0, wcode.dtype)
    o = idx[np.lexsort((start[idx], wcode[idx]))]
    w = pd.Series(wcode[o])
    # the latest close among the parts of the wafer that opened earlier
    prev_end = pd.Series(end[o]).groupby(w).cummax().groupby(w).shift().to_numpy(dtype=float, na_value=-1.0)
    return np.unique(wcode[o][start[o] < prev_end])


_SALVAGE_NOTE = "returning the complete records before it"


def read_stdf(
    path: str | os.PathLike[str],
    *,
    tests: bool = False,
    on_error: str = "raise",
    good_bins: Any = None,
    chunk_size: int = CHUNK_SIZE,
) -> StdfFile:
    """Read an STDF V4 file (wafer sort or final test) into canonical tables.

    Parameters
    ----------
    path : str or path-like
        An STDF V4 file, in either byte order (taken from the FAR record), plain or
        compressed with gzip, bzip2, xz or zip.
    tests : bool
        Also decode the test records (PTR, MPR, FTR) into :attr:`StdfFile.tests` and add
        ``first_fail_test`` to the dies. By default their bodies are skipped undecoded. For a
        file whose test table does not fit in memory, convert it to a partitioned Parquet
        dataset instead (:func:`yieldkit.io.stdf.dataset.write_stdf_dataset`,
        ``yieldkit convert FILE -o DATASET/``).
    on_error : {"raise", "salvage"}
        What to do with a file that ends early (inside a record, inside a part, or without
        its MRR): raise :class:`~yieldkit.errors.ParseError` (default), or return the
        complete records before the break with a
        :class:`~yieldkit.errors.DataQualityWarning` (aborted test runs are common).
    good_bins : iterable of int, optional
        Hard bins that pass, used only for parts whose PRR says the pass/fail flag is invalid
        (PART_FLG bit 4). Default: the bins the HBRs mark "P", else {1}.
    chunk_size : int
        Bytes read at a time (default 8 MiB). The file is walked chunk by chunk, so memory
        does not grow with the file: without tests it holds one chunk plus the parts, with
        ``tests=True`` also the test table in narrow types (about 55 bytes a test result).
        The tables do not depend on it.

    Returns
    -------
    StdfFile
        With ``dies``, ``wafers``, ``lot``, ``bins``, ``bin_records``, ``layout``, ``tests``
        and ``metadata``.

    Raises
    ------
    ParseError
        Not an STDF V4 file (wrong FAR), a record whose fields run past its end, or a file
        that ends early (with ``on_error="raise"``); the message names the file, the byte
        offset and the record type.
    InputNotFoundError
        When ``path`` does not exist.

    Notes
    -----
    Parts are PRRs; a PRR's wafer is the WIR before it. ``test_seq`` numbers the parts at
    one die (same wafer, X_COORD, Y_COORD) in file order, so the last is final, whatever
    sites they were tested on. A wafer whose parts all sit at one X/Y and were tested on
    several sites at once (two parts open together: one's PIR before the other's PRR, a part
    running from its PIR to its PRR on the same HEAD_NUM/SITE_NUM, or from that head/site's
    previous PRR when it has no PIR of its own) holds units without a wafer position
    (final-test files write 0, 0): their ``die_x``/``die_y`` are missing and each has
    ``test_seq`` 1. Missing values (X_COORD/Y_COORD = -32768, SOFT_BIN = 65535, a record that ends before a field)
    become nulls. ``passed`` is PART_FLG bit 3 clear (bit 4 set: the pass/fail flag is
    invalid, so ``good_bins`` decide). Die indices are mapped into the wafer frame with the
    WCR's POS_X, POS_Y and WF_FLAT (the identity when the WCR says R, U, D or is absent;
    the WCR as written is kept in ``metadata["wcr"]``). A file without MIR takes its
    ``lot_id`` from the file name, a file without WIR has the single wafer ``"1"``; both
    are logged. Test records of a part are those before its PRR with the same HEAD_NUM and
    SITE_NUM, so interleaved sites are paired correctly. The totals the file states (WRR and
    PCR PART_CNT, GOOD_CNT, RTST_CNT, ABRT_CNT; HBR/SBR bin counts) are compared with its parts
    -- every PRR or the final result at each die, HEAD_NUM 255 as the summary over heads,
    4294967295 as missing -- and a mismatch is a :class:`~yieldkit.errors.DataQualityWarning`.

    Examples
    --------
    >>> import tempfile, pathlib, pandas as pd
    >>> from yieldkit.io.stdf import read_stdf, write_stdf
    >>> dies = pd.DataFrame({"lot_id": "L1", "wafer_id": "W01", "die_x": [0, 1, 0],
    ...                      "die_y": [0, 0, 1], "hbin": [1, 5, 1], "sbin": [1, 50, 2]})
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "lot.stdf"
    >>> write_stdf(dies, p)
    >>> f = read_stdf(p)
    >>> f.dies[["die_x", "die_y", "hbin", "passed"]].to_numpy().tolist()
    [[0, 0, 1, True], [1, 0, 5, False], [0, 1, 1, True]]
    >>> f.bins.query("kind == 'hard'")[["bin", "count"]].to_numpy().tolist()
    [[1, 2], [5, 1]]
    """
    check_choice(on_error, ("raise", "salvage"), name="on_error", where="read_stdf")
    return read_parts(path, tests=tests, on_error=on_error, good_bins=good_bins, chunk_size=chunk_size)[0]


def read_parts(path: str | os.PathLike[str], *, tests: bool, on_error: str, good_bins: Any, chunk_size: int,
               test_rows: bool = True) -> tuple[StdfFile, Collector]:
    """:func:`read_stdf`, also returning the collector of the records.

    With ``tests=True`` and ``test_rows=False`` the test records are decoded (the dies get
    ``first_fail_test``, the collector learns each test's names and limits) but no test table
    is kept: :attr:`StdfFile.tests` is None (see :mod:`.dataset`).
    """
    spath = str(path)
    keep = np.zeros(65536, dtype=bool)
    for name in ("PIR", "PRR", *SINGLES, *(TEST_RECS if tests else ())):
        keep[_key(name)] = True
    counts = np.zeros(65536, dtype=np.int64)
    with RecordStream(path, chunk_size) as stream:
        little, far = _far(stream.head(6), spath)
        col = Collector(little, spath, tests=tests, test_rows=test_rows)
        for chunk in stream.chunks(little=little, keep=keep, counts=counts):
            col.add(chunk)
            del chunk  # the next chunk is read without this one
    endian = "<" if little else ">"
    n_records, end = stream.n_records, stream.end
    record_counts = {
        REC_NAMES.get((k >> 8, k & 255), f"{k >> 8}/{k & 255}"): int(counts[k]) for k in np.flatnonzero(counts).tolist()
    }
    salvaged = False
    if stream.truncated is not None:
        off, rname, msg = stream.truncated
        _problem(msg, on_error=on_error, path=spath, offset=off, record=rname, salvage_note=_SALVAGE_NOTE)
        salvaged = True
    if n_records <= 1:
        _problem("the file holds no record after the FAR (empty or truncated)", on_error=on_error, path=spath,
                 offset=end, record=None, salvage_note="returning empty tables")
        salvaged = True
    if col.error is not None:
        raise col.error
    singles = col.singles
    if singles["MIR"] and not singles["MRR"] and not salvaged:
        _problem("the file has a MIR but no MRR: it ends early", on_error=on_error, path=spath, offset=end,
                 record="MRR", salvage_note=_SALVAGE_NOTE)
        salvaged = True

    # the PRR fields, record numbers and offsets, one entry per part; _die_table consumes them
    prr = col.prr()
    prr["seq"], prr["off"] = col.prr_index()
    prr_hs, salvaged = _parts(prr, col.pir_index(), singles, on_error, spath, salvaged)
    lot, lot_id, product = _lot(singles, spath)
    wafer_rows, uniq_names, wcode = _wafer_index(singles, lot_id, product, prr["seq"], spath)
    wcr = singles["WCR"][0][2] if singles["WCR"] else None
    ori = _orientation(wcr, spath)
    dies = _die_table(prr, wcode, uniq_names, lot_id, ori, singles, good_bins, spath)
    del prr
    wafers = _wafer_table(wafer_rows, dies, spath)
    bins, bin_records = _bins(singles, dies)
    if not salvaged:  # a file cut short cannot hold its own totals
        _check_totals(singles, dies, wcode, uniq_names, spath)
    del wcode
    layout = _layout(wcr, ori, dies, spath) if len(dies) else None
    tests_df = None
    if col.tests is not None:
        if col.tests_error is not None:
            raise col.tests_error
        if test_rows:
            tests_df, first_fail = col.tests.finish(dies, prr_hs)
        else:
            first_fail = col.tests.first_fail(dies, prr_hs)
        dies["first_fail_test"] = first_fail
    meta = {
        "far": far, "byte_order": "little" if little else "big", "wcr": wcr, "source": spath,
        "orientation": {k: ori[k] for k in ("sx", "sy", "flat", "assumed")}, "record_counts": record_counts,
        "salvaged": salvaged, "endian": endian,
    }
    return StdfFile(dies=dies, wafers=wafers, lot=lot, bins=bins, bin_records=bin_records, layout=layout,
                    tests=tests_df, metadata=meta), col


def _parts(prr: dict[str, Any], pir: tuple[np.ndarray, np.ndarray, np.ndarray], singles: dict[str, list],
           on_error: str, spath: str, salvaged: bool) -> tuple[np.ndarray, bool]:
    """Where each part opens (``prr["start"]``) and the head/site code of each part; whether the
    file was cut short. ``pir`` holds the record numbers, offsets and head/site codes of the PIRs."""
    pir_seq, pir_off, pir_hs = pir
    prr_hs = (prr["head"].astype(np.uint16) << 8) | prr["site"]
    prr["start"] = _part_starts(pir_seq, pir_hs, prr["seq"], prr_hs)
    open_at = _check_open_parts(pir_seq, pir_off, pir_hs, prr["seq"], prr_hs)
    if open_at is not None and not salvaged:
        _problem("the file ends inside a part (a PIR without its PRR)", on_error=on_error, path=spath,
                 offset=open_at, record="PIR", salvage_note="dropping the incomplete part")
        salvaged = True
    n_wir = len(singles["WIR"])
    if n_wir > len(singles["WRR"]) and not salvaged:
        off = singles["WIR"][-1][1]
        _problem("the file ends inside a wafer (a WIR without its WRR)", on_error=on_error, path=spath,
                 offset=off, record="WIR", salvage_note=_SALVAGE_NOTE)
        salvaged = True
    return prr_hs, salvaged


def _lot(singles: dict[str, list], spath: str) -> tuple[dict[str, Any], str, str | None]:
    """The lot fields (MIR, then MRR), the lot id and the product."""
    lot: dict[str, Any] = {}
    if singles["MIR"]:
        lot.update(singles["MIR"][0][2])
    if singles["MRR"]:
        lot.update(singles["MRR"][-1][2])
    lot_id = (lot.get("LOT_ID") or "").strip()
    if not lot_id:
        lot_id = _lot_id_fallback(spath)
        log.warning("%s: no MIR LOT_ID; using %r from the file name as lot_id", spath, lot_id)
    lot["lot_id"] = lot_id
    product = (lot.get("PART_TYP") or "").strip() or None
    return lot, lot_id, product


def _wafer_index(singles: dict[str, list], lot_id: str, product: str | None, prr_seq: np.ndarray,
                 spath: str) -> tuple[list[dict[str, Any]], np.ndarray, np.ndarray]:
    """The wafer rows (WIR/WRR), the wafer names and each part's wafer code into them."""
    wir = singles["WIR"]
    wrr = singles["WRR"]
    wrr_seq = np.array([s for s, _, _ in wrr], dtype=np.int64)
    wafer_names: list[str] = []
    wafer_rows: list[dict[str, Any]] = []
    for i, (seq, off, f) in enumerate(wir):
        nxt_wir = wir[i + 1][0] if i + 1 < len(wir) else np.iinfo(np.int64).max
        j = np.flatnonzero((wrr_seq > seq) & (wrr_seq < nxt_wir))
        r = wrr[int(j[0])][2] if len(j) else {}
        wid = (f.get("WAFER_ID") or "").strip() or (r.get("WAFER_ID") or "").strip()
        if not wid:
            wid = str(i + 1)
            assume(spath, "the WIR at byte %d and its WRR give no WAFER_ID (missing or empty); using its position "
                   "in the file, %r, as wafer_id", off, wid)
        wafer_names.append(wid)
        wafer_rows.append({
            "lot_id": lot_id, "wafer_id": wid, "product": product, "head": f.get("HEAD_NUM"),
            "start_time": _time(f.get("START_T")), "finish_time": _time(r.get("FINISH_T")),
            "part_cnt": _u4(r.get("PART_CNT")), "rtst_cnt": _u4(r.get("RTST_CNT")),
            "abrt_cnt": _u4(r.get("ABRT_CNT")), "good_cnt": _u4(r.get("GOOD_CNT")),
            "func_cnt": _u4(r.get("FUNC_CNT")), "fabwf_id": r.get("FABWF_ID") or None,
            "frame_id": r.get("FRAME_ID") or None, "mask_id": r.get("MASK_ID") or None,
        })
    if not wir and len(prr_seq):
        log.info("%s: no WIR record; the parts form a single wafer '1'", spath)
        wafer_names = ["1"]
        wafer_rows = [{"lot_id": lot_id, "wafer_id": "1", "product": product}]
    # a PRR's wafer is the last WIR before it (the first one for parts before any WIR)
    wir_seq = np.array([s for s, _, _ in wir], dtype=np.int64)
    widx = (np.maximum(np.searchsorted(wir_seq, prr_seq, side="right") - 1, 0) if len(wir)
            else np.zeros(len(prr_seq), np.int64))
    uniq_names, wcode_of_wir = (np.unique(np.asarray(wafer_names, dtype=object), return_inverse=True) if wafer_names
                                else (np.zeros(0, object), np.zeros(0, np.int64)))
    wcode = wcode_of_wir.astype(np.int32)[widx] if len(prr_seq) else np.zeros(0, np.int32)
    return wafer_rows, uniq_names, wcode


def _runs(wcode: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start of each run of equal wafer codes (parts come wafer by wafer) and the run's code."""
    starts = np.flatnonzero(wcode[1:] != wcode[:-1]) + 1
    starts = np.concatenate([np.zeros(1, np.int64), starts])
    return starts, wcode[starts]


def _varies(v: np.ndarray, runs: tuple[np.ndarray, np.ndarray], n_wafers: int) -> np.ndarray:
    """Per wafer code: whether ``v`` takes more than one value among its parts."""
    starts, code = runs
    lo = np.full(n_wafers, np.iinfo(np.int64).max)
    hi = np.full(n_wafers, np.iinfo(np.int64).min)
    np.minimum.at(lo, code, np.minimum.reduceat(v, starts).astype(np.int64))
    np.maximum.at(hi, code, np.maximum.reduceat(v, starts).astype(np.int64))
    return hi > lo


def _test_seq(wcode: np.ndarray, fx: np.ndarray, fy: np.ndarray, unit: np.ndarray) -> np.ndarray:
    """1, 2, ... over the parts at one die (wafer code, x, y) in file order; 1 for the ``unit`` parts.

    Without retests (the common case) a count over the dense die grid shows it and every part is
    1; otherwise a stable sort of the die keys numbers each die's parts.
    """
    n = len(wcode)
    at = ~unit
    if not at.any():
        return np.ones(n, np.int64)
    xs, ys = fx[at], fy[at]
    x0, y0 = int(xs.min()), int(ys.min())
    nx, ny = int(xs.max()) - x0 + 1, int(ys.max()) - y0 + 1
    del xs, ys
    n_w = int(wcode.max()) + 1
    size = n_w * nx * ny
    key = wcode.astype(np.int64) * nx
    key += fx
    key -= x0
    key *= ny
    key += fy
    key -= y0
    if size <= 4 * n + (1 << 20):
        key[unit] = size  # the units share one slot beyond the grid
        if np.bincount(key, minlength=size + 1)[:size].max() <= 1:
            return np.ones(n, np.int64)
    key[unit] = -1 - np.arange(int(unit.sum()))  # a key of its own each
    order = np.argsort(key, kind="stable")
    ks = key[order]
    del key
    first = np.ones(n, bool)
    first[1:] = ks[1:] != ks[:-1]
    del ks
    pos = np.arange(n)
    run_start = np.maximum.accumulate(np.where(first, pos, 0))
    tseq = np.empty(n, np.int64)
    tseq[order] = pos - run_start + 1
    return tseq


def _die_table(prr: dict[str, Any], wcode: np.ndarray, uniq_names: np.ndarray, lot_id: str, ori: dict[str, Any],
               singles: dict[str, list], good_bins: Any, spath: str) -> pd.DataFrame:
    """The canonical die table of the parts, in the wafer frame.

    ``prr`` (the PRR fields with ``seq``, ``off`` and ``start`` of each part) is consumed: each
    field is dropped once its column is built, so memory holds little beyond the table.
    """
    n = len(prr["seq"])
    if not n:
        prr.clear()
        return _empty_dies()
    x, y = prr.pop("x"), prr.pop("y")
    missing_xy = (x == _MISSING_XY) | (y == _MISSING_XY)
    fx, fy = _to_frame(x.astype(np.int32), y.astype(np.int32), ori)
    fx = np.where(missing_xy, _MISSING_XY, fx)
    fy = np.where(missing_xy, _MISSING_XY, fy)
    if ((np.abs(fx) > 32767) & ~missing_xy).any() or ((np.abs(fy) > 32767) & ~missing_xy).any():
        fx, fy = np.where(missing_xy, _MISSING_XY, x), np.where(missing_xy, _MISSING_XY, y)
    fx, fy = fx.astype(np.int32, copy=False), fy.astype(np.int32, copy=False)
    # a wafer whose parts all sit at one (X, Y) yet were tested on several sites at once --
    # final-test files write 0, 0 -- has no positions: one die cannot be on two sites. "At
    # once": two of its parts were open together in the record stream (one's PIR before the
    # other's PRR); parts at one die tested one after another, on any sites, are retests
    n_w = int(wcode.max()) + 1
    runs = _runs(wcode)
    one_xy = ~_varies(fx, runs, n_w) & ~_varies(fy, runs, n_w)
    if one_xy.any():
        sites = _varies(prr["site"], runs, n_w) | _varies(prr["head"], runs, n_w)
        flat = np.flatnonzero(one_xy & sites & (np.bincount(wcode, minlength=n_w) > 0))
    else:
        flat = np.zeros(0, np.int64)
    del runs
    if len(flat):
        flat = _concurrent(wcode, prr["start"], prr["seq"], np.isin(wcode, flat))
    start = prr.pop("start")
    del start
    if len(flat):
        one_spot = np.isin(wcode, flat) & ~missing_xy
        if one_spot.any():
            log.info("%s: every part of %d wafer(s) is at one X/Y, tested on several sites at once; the parts "
                     "are treated as units without a wafer position, not as retests of one die",
                     spath, len(flat))
            missing_xy = missing_xy | one_spot
    tseq = _test_seq(wcode, fx, fy, missing_xy)
    seq, off = prr.pop("seq"), prr.pop("off")
    if tseq.max() > 32767:
        i = int(np.argmax(tseq > 32767))
        raise ParseError(f"more than 32767 parts at die ({int(x[i])}, {int(y[i])})",
                         path=spath, offset=int(off[i]), record="PRR")
    del seq, off, x, y
    hbr_pass = {int(f["HBIN_NUM"]) for _, _, f in singles["HBR"] if f.get("HBIN_PF") == "P" and f.get("HBIN_NUM") is not None}
    good = np.asarray(sorted(good_bins if good_bins is not None else (hbr_pass or {1})), dtype=np.int64)
    flg = prr.pop("part_flg")
    hbin = prr.pop("hbin")
    passed = np.where(flg & 0x10, np.isin(hbin, good), (flg & 0x08) == 0)
    sb = prr.pop("sbin")
    sbin = pd.arrays.IntegerArray(sb.astype(np.int32), sb == _MISSING_SBIN)
    del sb
    tt = prr.pop("test_t")
    test_time = pd.arrays.IntegerArray(tt.astype(np.int64), tt == 0)
    del tt
    names_pa = pa.array(uniq_names.tolist(), type=pa.string())
    cols: dict[str, Any] = {
        "lot_id": pd.Series(pa.array([lot_id], pa.string()).take(pa.array(np.zeros(n, np.int8))), dtype=STRING),
        "wafer_id": pd.Series(names_pa.take(pa.array(wcode)), dtype=STRING),
        "die_x": pd.arrays.IntegerArray(fx, missing_xy) if missing_xy.any() else fx,
        "die_y": pd.arrays.IntegerArray(fy, missing_xy.copy()) if missing_xy.any() else fy,
        "hbin": hbin.astype(np.int32), "sbin": sbin, "passed": passed,
        "site": prr.pop("site").astype(np.int16), "head": prr.pop("head").astype(np.int16),
        "test_seq": tseq.astype(np.int16),
        "part_id": pd.Series(prr.pop("part_id"), dtype=STRING),
        "part_flg": flg.astype(np.int16), "num_test": prr.pop("num_test").astype(np.int32),
        "test_time_ms": test_time,
    }
    del flg, hbin, passed, sbin, test_time, tseq, fx, fy
    raw = pd.DataFrame(cols, copy=False)
    del cols
    return validate_dies(raw, source=spath, missing_xy="unit" if missing_xy.any() else "error")


def _wafer_table(wafer_rows: list[dict[str, Any]], dies: pd.DataFrame, spath: str) -> pd.DataFrame:
    """The canonical wafer table, with the parts and good parts counted from the dies."""
    if wafer_rows:
        wdf = pd.DataFrame(wafer_rows)
        if wdf["wafer_id"].duplicated().any():
            log.info("%s: a wafer appears under several WIRs; its parts are merged (retests numbered)", spath)
            wdf = wdf.groupby("wafer_id", sort=False, as_index=False).last()
        counts_w = pd.DataFrame({"wafer_id": dies["wafer_id"].astype(str), "passed": dies["passed"]}).groupby(
            "wafer_id", sort=False)["passed"].agg(["size", "sum"])
        wdf["n_parts"] = wdf["wafer_id"].map(counts_w["size"]).fillna(0).astype("int64")
        wdf["n_good"] = wdf["wafer_id"].map(counts_w["sum"]).fillna(0).astype("int64")
        for c in ("part_cnt", "rtst_cnt", "abrt_cnt", "good_cnt", "func_cnt", "head"):
            if c in wdf:
                wdf[c] = wdf[c].astype("Int64")
        for c in ("product", "fabwf_id", "frame_id", "mask_id"):
            if c in wdf:
                wdf[c] = wdf[c].astype(STRING)
        return validate_wafers(wdf, source=spath)
    return pd.DataFrame({"lot_id": pd.Series([], dtype=STRING), "wafer_id": pd.Series([], dtype=STRING)})


def _bins(singles: dict[str, list], dies: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    rows = []
    for kind, name, pre in (("hard", "HBR", "HBIN"), ("soft", "SBR", "SBIN")):
        for _, _, f in singles[name]:
            if f.get(f"{pre}_NUM") is None:
                continue
            pf = f.get(f"{pre}_PF")
            rows.append({
                "kind": kind, "head": f.get("HEAD_NUM"), "site": f.get("SITE_NUM"), "bin": f[f"{pre}_NUM"],
                "count": _u4(f.get(f"{pre}_CNT")), "pf": pf if pf in ("P", "F") else None,
                "name": f.get(f"{pre}_NAM") or None,
            })
    rec = pd.DataFrame(rows, columns=["kind", "head", "site", "bin", "count", "pf", "name"])
    rec = rec.astype({"kind": STRING, "head": "Int64", "site": "Int64", "bin": "int64", "count": "Int64",
                      "pf": STRING, "name": STRING})
    parts = {
        "hard": dies["hbin"].value_counts() if len(dies) else pd.Series(dtype="int64"),
        "soft": dies["sbin"].dropna().astype("int64").value_counts() if len(dies) else pd.Series(dtype="int64"),
    }
    out = []
    for kind in ("hard", "soft"):
        r = rec[rec["kind"] == kind]
        summary = r[r["head"] == 255]
        use = summary if len(summary) else r
        g = use.groupby("bin", sort=True)
        b = pd.DataFrame({"count": g["count"].sum(min_count=1)})
        meta = r.groupby("bin", sort=True).agg(pf=("pf", "first"), name=("name", "first"))
        b = b.join(meta, how="outer")
        extra = parts[kind].index.difference(b.index)
        if len(extra):
            b = pd.concat([b, pd.DataFrame(index=pd.Index(extra, name="bin"))]).sort_index()
        b["parts"] = parts[kind].reindex(b.index).fillna(0).astype("int64").to_numpy()
        b.insert(0, "kind", kind)
        out.append(b.rename_axis("bin").reset_index())
    bins = pd.concat(out, ignore_index=True)[["kind", "bin", "count", "pf", "name", "parts"]]
    bins = bins.astype({"kind": STRING, "bin": "int64", "count": "Int64", "pf": STRING, "name": STRING})
    return bins, rec


# --------------------------------------------------------------------------------------------
# the file's own totals
# --------------------------------------------------------------------------------------------
def _counts(sel: np.ndarray | None, cols: dict[str, Any], group: np.ndarray | None = None,
            n_groups: int = 1) -> dict[str, list[Any]]:
    """What a total over the parts ``sel`` (None: all) may count: every PRR (retests included) or
    only the final result at each die; retests by test sequence or by the PRR retest flags.

    With ``group`` (a code per part), each count is an array over the ``n_groups`` groups.
    """
    def count(mask: np.ndarray) -> Any:
        m = mask if sel is None else mask & sel
        return int(m.sum()) if group is None else np.bincount(group[m], minlength=n_groups)

    retest = cols["tseq"] > 1
    every = np.ones(len(retest), bool)
    rd = cols["dies"].loc[retest if sel is None else retest & sel]
    retested: Any
    if group is None:
        retested = len(rd[["wafer_id", "die_x", "die_y"]].drop_duplicates())
    else:
        g = pd.Series(group[rd.index.to_numpy()], index=rd.index, name="g")
        dd = pd.concat([g, rd[["die_x", "die_y"]]], axis=1).drop_duplicates()
        retested = np.bincount(dd["g"].to_numpy(np.int64), minlength=n_groups)
    return {
        "PART_CNT": [count(every), count(cols["final"])],
        "GOOD_CNT": [count(cols["passed"]), count(cols["final"] & cols["passed"])],
        "RTST_CNT": [count(retest), count((cols["flg"] & 0x03) != 0), retested],
        "ABRT_CNT": [count((cols["flg"] & 0x04) != 0)],
    }


def _stated(f: dict[str, Any], name: str) -> int | None:
    v = f.get(name)
    return None if v is None or v == _MISSING_U4 else int(v)


def _check_totals(singles: dict[str, list], dies: pd.DataFrame, wcode: np.ndarray, uniq_names: np.ndarray,
                  spath: str) -> None:
    """Compare the totals the file states (WRR and PCR part counts, HBR/SBR bin counts) with its
    parts; warn, naming the record and both numbers, on any mismatch.

    ``wcode`` is each part's wafer as an index into ``uniq_names``. A count of 4294967295 is
    missing; a HEAD_NUM of 255 is the summary over all heads and sites; a part count may count
    every PRR (retests included) or the final result at each die. FUNC_CNT is not checked (a PRR
    does not say whether a part passed its functional tests).
    """
    n = len(dies)
    if n == 0 and not (singles["WRR"] or singles["PCR"] or singles["HBR"] or singles["SBR"]):
        return
    head = dies["head"].to_numpy() if n else np.zeros(0, np.int16)
    site = dies["site"].to_numpy() if n else np.zeros(0, np.int16)
    tseq = dies["test_seq"].to_numpy() if n else np.zeros(0, np.int16)
    if n and tseq.max() > 1:  # the last part at a die is final; a part without a position is its own unit
        has_xy = dies["die_x"].notna().to_numpy()
        final = ~dies.duplicated(["wafer_id", "die_x", "die_y"], keep="last").to_numpy() | ~has_xy
    else:
        final = np.ones(n, bool)
    cols = {"dies": dies, "tseq": tseq, "final": final, "passed": dies["passed"].to_numpy(dtype=bool),
            "flg": dies["part_flg"].to_numpy()}
    problems: list[str] = []

    def compare(where: str, f: dict[str, Any], expect: dict[str, list[Any]]) -> None:
        for name, ok in expect.items():
            stated = _stated(f, name)
            if stated is not None and stated not in ok:
                problems.append(f"{where} states {name} {stated} but the file holds {ok[0]} such part(s)")

    def of_head(f: dict[str, Any]) -> np.ndarray | None:
        h, st = f.get("HEAD_NUM"), f.get("SITE_NUM")
        if h is None or h == 255:
            return None
        sel = head == int(h)
        return sel if st is None or st == 255 else sel & (site == int(st))

    # WRR: its wafer's parts (several WIRs of one wafer: the sums of their WRRs)
    wrr_of: dict[str, list[tuple[int, dict[str, Any]]]] = {}
    for i, (seq, _off, f) in enumerate(singles["WIR"]):
        nxt = singles["WIR"][i + 1][0] if i + 1 < len(singles["WIR"]) else np.iinfo(np.int64).max
        wrr = [(o, r) for sq, o, r in singles["WRR"] if seq < sq < nxt]
        # the wafer's name as _wafer_index gives it
        wid = ((f.get("WAFER_ID") or "").strip() or ((wrr[0][1].get("WAFER_ID") or "").strip() if wrr else "")
               or str(i + 1))
        wrr_of.setdefault(wid, []).extend(wrr[:1])
    if any(recs for recs in wrr_of.values()):  # every wafer's counts at once
        code_of = {str(w): i for i, w in enumerate(uniq_names.tolist())}
        by_wafer = _counts(None, cols, wcode, len(uniq_names) + 1)
    for wid, recs in wrr_of.items():
        if not recs:
            continue
        total: dict[str, Any] = {}
        for name in ("PART_CNT", "GOOD_CNT", "RTST_CNT", "ABRT_CNT"):
            vals = [_stated(r, name) for _, r in recs]
            total[name] = None if any(v is None for v in vals) else sum(v for v in vals if v is not None)
        w = code_of.get(wid, len(uniq_names))  # a wafer without parts: the empty group at the end
        compare(f"the WRR of wafer {wid!r} (byte {recs[0][0]})", total,
                {k: [int(a[w]) for a in v] for k, v in by_wafer.items()})
    for _, off, f in singles["PCR"]:
        h = f.get("HEAD_NUM")
        who = "all heads" if h in (None, 255) else f"head {h} site {f.get('SITE_NUM')}"
        compare(f"the PCR of {who} (byte {off})", f, _counts(of_head(f), cols))
    by_head: dict[tuple[str, Any, Any], tuple[np.ndarray, np.ndarray]] = {}
    for rec, pre, col in (("HBR", "HBIN", "hbin"), ("SBR", "SBIN", "sbin")):
        if not singles[rec] or not n:
            continue
        bins = dies[col].to_numpy(dtype=np.int32, na_value=-1) + 1  # 0: no bin
        for _, off, f in singles[rec]:
            stated, b = _stated(f, f"{pre}_CNT"), f.get(f"{pre}_NUM")
            if stated is None or b is None:
                continue
            h_st = (col, f.get("HEAD_NUM"), f.get("SITE_NUM"))
            if h_st not in by_head:  # the parts of each bin of that head/site, every PRR and final ones
                sel = of_head(f)
                sb = bins if sel is None else bins[sel]
                fb = final if sel is None else final[sel]
                by_head[h_st] = (np.bincount(sb, minlength=65537), np.bincount(sb[fb], minlength=65537))
            every, last = by_head[h_st]
            ok = [int(every[int(b) + 1]), int(last[int(b) + 1])] if 0 <= int(b) <= 65535 else [0, 0]
            if stated not in ok:
                h = f.get("HEAD_NUM")
                who = "all heads" if h in (None, 255) else f"head {h} site {f.get('SITE_NUM')}"
                problems.append(f"the {rec} of bin {b}, {who} (byte {off}) states {pre}_CNT {stated} but "
                                f"{ok[0]} part(s) have that bin")
    if problems:
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        warnings.warn(f"{spath}: the file's own totals disagree with its parts: {'; '.join(problems[:5])}{more}",
                      DataQualityWarning, stacklevel=3)
