"""STDF V4 record catalogue and a field-by-field decoder and encoder for single records.

The bulk records (PIR, PRR, PTR) are decoded in vectorised form by :mod:`.reader`; this
module decodes the few other records a reader needs (MIR, WIR, WRR, HBR, SBR, WCR, ...) one
at a time, and encodes records for :mod:`.writer`.

Field types follow the STDF V4 specification: ``U1 U2 U4 I1 I2 I4 R4 R8`` numbers, ``C1``
one character, ``Cn`` a string with a one-byte length, ``Bn`` bytes with a one-byte length,
``Dn`` bits with a two-byte bit count, ``B1`` one flag byte, ``N1`` a nibble, and arrays
``("k", count_field, element_type)``. A record may end before its last fields: the missing
trailing fields are ``None`` (their default). Bytes after the last field are ignored.
"""

from __future__ import annotations

import struct
from typing import Any

from ...errors import ParseError

__all__ = ["FIELDS", "REC_NAMES", "REC_TYPES", "decode_record", "encode_record"]

#: (REC_TYP, REC_SUB) -> record name; V4 and the V4-2007 additions.
REC_NAMES: dict[tuple[int, int], str] = {
    (0, 10): "FAR", (0, 20): "ATR", (0, 30): "VUR",
    (1, 10): "MIR", (1, 20): "MRR", (1, 30): "PCR", (1, 40): "HBR", (1, 50): "SBR",
    (1, 60): "PMR", (1, 62): "PGR", (1, 63): "PLR", (1, 70): "RDR", (1, 80): "SDR",
    (1, 90): "PSR", (1, 91): "NMR", (1, 92): "CNR", (1, 93): "SSR", (1, 94): "CDR",
    (2, 10): "WIR", (2, 20): "WRR", (2, 30): "WCR",
    (5, 10): "PIR", (5, 20): "PRR",
    (10, 30): "TSR",
    (15, 10): "PTR", (15, 15): "MPR", (15, 20): "FTR", (15, 30): "STR",
    (20, 10): "BPS", (20, 20): "EPS",
    (50, 10): "GDR", (50, 30): "DTR",
}
#: record name -> (REC_TYP, REC_SUB)
REC_TYPES: dict[str, tuple[int, int]] = {v: k for k, v in REC_NAMES.items()}

_CN = "Cn"
#: record name -> list of (field name, type). Only the records yieldkit decodes are listed.
FIELDS: dict[str, list[tuple[str, Any]]] = {
    "FAR": [("CPU_TYPE", "U1"), ("STDF_VER", "U1")],
    "MIR": [
        ("SETUP_T", "U4"), ("START_T", "U4"), ("STAT_NUM", "U1"), ("MODE_COD", "C1"),
        ("RTST_COD", "C1"), ("PROT_COD", "C1"), ("BURN_TIM", "U2"), ("CMOD_COD", "C1"),
    ] + [(n, _CN) for n in (
        "LOT_ID", "PART_TYP", "NODE_NAM", "TSTR_TYP", "JOB_NAM", "JOB_REV", "SBLOT_ID", "OPER_NAM",
        "EXEC_TYP", "EXEC_VER", "TEST_COD", "TST_TEMP", "USER_TXT", "AUX_FILE", "PKG_TYP", "FAMLY_ID",
        "DATE_COD", "FACIL_ID", "FLOOR_ID", "PROC_ID", "OPER_FRQ", "SPEC_NAM", "SPEC_VER", "FLOW_ID",
        "SETUP_ID", "DSGN_REV", "ENG_ID", "ROM_COD", "SERL_NUM", "SUPR_NAM",
    )],
    "MRR": [("FINISH_T", "U4"), ("DISP_COD", "C1"), ("USR_DESC", _CN), ("EXC_DESC", _CN)],
    "PCR": [
        ("HEAD_NUM", "U1"), ("SITE_NUM", "U1"), ("PART_CNT", "U4"), ("RTST_CNT", "U4"),
        ("ABRT_CNT", "U4"), ("GOOD_CNT", "U4"), ("FUNC_CNT", "U4"),
    ],
    "HBR": [
        ("HEAD_NUM", "U1"), ("SITE_NUM", "U1"), ("HBIN_NUM", "U2"), ("HBIN_CNT", "U4"),
        ("HBIN_PF", "C1"), ("HBIN_NAM", _CN),
    ],
    "SBR": [
        ("HEAD_NUM", "U1"), ("SITE_NUM", "U1"), ("SBIN_NUM", "U2"), ("SBIN_CNT", "U4"),
        ("SBIN_PF", "C1"), ("SBIN_NAM", _CN),
    ],
    "WIR": [("HEAD_NUM", "U1"), ("SITE_GRP", "U1"), ("START_T", "U4"), ("WAFER_ID", _CN)],
    "WRR": [
        ("HEAD_NUM", "U1"), ("SITE_GRP", "U1"), ("FINISH_T", "U4"), ("PART_CNT", "U4"),
        ("RTST_CNT", "U4"), ("ABRT_CNT", "U4"), ("GOOD_CNT", "U4"), ("FUNC_CNT", "U4"),
        ("WAFER_ID", _CN), ("FABWF_ID", _CN), ("FRAME_ID", _CN), ("MASK_ID", _CN),
        ("USR_DESC", _CN), ("EXC_DESC", _CN),
    ],
    "WCR": [
        ("WAFR_SIZ", "R4"), ("DIE_HT", "R4"), ("DIE_WID", "R4"), ("WF_UNITS", "U1"),
        ("WF_FLAT", "C1"), ("CENTER_X", "I2"), ("CENTER_Y", "I2"), ("POS_X", "C1"), ("POS_Y", "C1"),
    ],
    "PIR": [("HEAD_NUM", "U1"), ("SITE_NUM", "U1")],
    "PRR": [
        ("HEAD_NUM", "U1"), ("SITE_NUM", "U1"), ("PART_FLG", "B1"), ("NUM_TEST", "U2"),
        ("HARD_BIN", "U2"), ("SOFT_BIN", "U2"), ("X_COORD", "I2"), ("Y_COORD", "I2"),
        ("TEST_T", "U4"), ("PART_ID", _CN), ("PART_TXT", _CN), ("PART_FIX", "Bn"),
    ],
    "PTR": [
        ("TEST_NUM", "U4"), ("HEAD_NUM", "U1"), ("SITE_NUM", "U1"), ("TEST_FLG", "B1"),
        ("PARM_FLG", "B1"), ("RESULT", "R4"), ("TEST_TXT", _CN), ("ALARM_ID", _CN),
        ("OPT_FLAG", "B1"), ("RES_SCAL", "I1"), ("LLM_SCAL", "I1"), ("HLM_SCAL", "I1"),
        ("LO_LIMIT", "R4"), ("HI_LIMIT", "R4"), ("UNITS", _CN), ("C_RESFMT", _CN),
        ("C_LLMFMT", _CN), ("C_HLMFMT", _CN), ("LO_SPEC", "R4"), ("HI_SPEC", "R4"),
    ],
    "MPR": [
        ("TEST_NUM", "U4"), ("HEAD_NUM", "U1"), ("SITE_NUM", "U1"), ("TEST_FLG", "B1"),
        ("PARM_FLG", "B1"), ("RTN_ICNT", "U2"), ("RSLT_CNT", "U2"), ("RTN_STAT", ("k", "RTN_ICNT", "N1")),
        ("RTN_RSLT", ("k", "RSLT_CNT", "R4")), ("TEST_TXT", _CN), ("ALARM_ID", _CN), ("OPT_FLAG", "B1"),
        ("RES_SCAL", "I1"), ("LLM_SCAL", "I1"), ("HLM_SCAL", "I1"), ("LO_LIMIT", "R4"),
        ("HI_LIMIT", "R4"), ("START_IN", "R4"), ("INCR_IN", "R4"), ("RTN_INDX", ("k", "RTN_ICNT", "U2")),
        ("UNITS", _CN), ("UNITS_IN", _CN), ("C_RESFMT", _CN), ("C_LLMFMT", _CN), ("C_HLMFMT", _CN),
        ("LO_SPEC", "R4"), ("HI_SPEC", "R4"),
    ],
    "FTR": [
        ("TEST_NUM", "U4"), ("HEAD_NUM", "U1"), ("SITE_NUM", "U1"), ("TEST_FLG", "B1"),
        ("OPT_FLAG", "B1"), ("CYCL_CNT", "U4"), ("REL_VADR", "U4"), ("REPT_CNT", "U4"),
        ("NUM_FAIL", "U4"), ("XFAIL_AD", "I4"), ("YFAIL_AD", "I4"), ("VECT_OFF", "I2"),
        ("RTN_ICNT", "U2"), ("PGM_ICNT", "U2"), ("RTN_INDX", ("k", "RTN_ICNT", "U2")),
        ("RTN_STAT", ("k", "RTN_ICNT", "N1")), ("PGM_INDX", ("k", "PGM_ICNT", "U2")),
        ("PGM_STAT", ("k", "PGM_ICNT", "N1")), ("FAIL_PIN", "Dn"), ("VECT_NAM", _CN),
        ("TIME_SET", _CN), ("OP_CODE", _CN), ("TEST_TXT", _CN), ("ALARM_ID", _CN),
        ("PROG_TXT", _CN), ("RSLT_TXT", _CN), ("PATG_NUM", "U1"), ("SPIN_MAP", "Dn"),
    ],
}

_NUM = {"U1": "B", "U2": "H", "U4": "I", "U8": "Q", "I1": "b", "I2": "h", "I4": "i", "I8": "q",
        "R4": "f", "R8": "d", "B1": "B"}
_SIZE = {k: struct.calcsize(v) for k, v in _NUM.items()}


class _Short(Exception):
    """A field starts inside the record but does not fit in it."""


def _text(raw: bytes) -> str:
    # STDF text is ASCII; tolerate anything (latin-1 never fails) and drop padding NULs
    return raw.decode("latin-1").rstrip("\x00")


def decode_record(
    name: str, body: bytes | memoryview, endian: str, *, path: str | None = None, offset: int | None = None
) -> dict[str, Any]:
    """Decode one record body into ``{field: value}``.

    Parameters
    ----------
    name : str
        Record name (a key of :data:`FIELDS`).
    body : bytes
        The record's data, without its 4-byte header.
    endian : {"<", ">"}
        Byte order of the file.
    path, offset : optional
        File and byte offset of the record header, for error messages.

    Returns
    -------
    dict
        Every field of the record; fields after the end of a short record are ``None``.

    Raises
    ------
    ParseError
        When a field starts inside the record but runs past its end (e.g. a string whose
        length byte claims more characters than the record holds).
    """
    spec = FIELDS[name]
    out: dict[str, Any] = {}
    pos = 0
    n = len(body)
    b = bytes(body)
    try:
        for field, ftype in spec:
            if pos >= n:
                out[field] = None
                continue
            if isinstance(ftype, tuple):
                count = out.get(ftype[1]) or 0
                et = ftype[2]
                if et == "N1":
                    size = (count + 1) // 2
                    if pos + size > n:
                        raise _Short(field)
                    raw = b[pos:pos + size]
                    vals: list[Any] = []
                    for i in range(count):
                        byte = raw[i // 2]
                        vals.append(byte & 0x0F if i % 2 == 0 else byte >> 4)
                    out[field] = vals
                elif et == _CN:
                    vals = []
                    for _ in range(count):
                        if pos >= n:
                            raise _Short(field)
                        ln = b[pos]
                        if pos + 1 + ln > n:
                            raise _Short(field)
                        vals.append(_text(b[pos + 1:pos + 1 + ln]))
                        pos += 1 + ln
                    out[field] = vals
                    continue
                else:
                    size = _SIZE[et] * count
                    if pos + size > n:
                        raise _Short(field)
                    out[field] = list(struct.unpack_from(f"{endian}{count}{_NUM[et]}", b, pos))
                pos += size
            elif ftype == _CN or ftype == "Bn":
                ln = b[pos]
                if pos + 1 + ln > n:
                    raise _Short(field)
                raw = b[pos + 1:pos + 1 + ln]
                out[field] = _text(raw) if ftype == _CN else raw
                pos += 1 + ln
            elif ftype == "Dn":
                if pos + 2 > n:
                    raise _Short(field)
                (bits,) = struct.unpack_from(endian + "H", b, pos)
                size = (bits + 7) // 8
                if pos + 2 + size > n:
                    raise _Short(field)
                out[field] = b[pos + 2:pos + 2 + size]
                pos += 2 + size
            elif ftype == "C1":
                out[field] = _text(b[pos:pos + 1])
                pos += 1
            else:
                size = _SIZE[ftype]
                if pos + size > n:
                    raise _Short(field)
                (out[field],) = struct.unpack_from(endian + _NUM[ftype], b, pos)
                pos += size
    except _Short as exc:
        raise ParseError(
            f"field {exc.args[0]} runs past the end of the {n}-byte record "
            f"(the record is shorter than its fields declare)",
            path=path, offset=offset, record=name,
        ) from None
    return out


def _enc_text(value: Any, field: str, name: str) -> bytes:
    raw = str(value).encode("latin-1", errors="replace")
    if len(raw) > 255:
        raise ParseError(f"field {field} is longer than 255 bytes ({len(raw)})", record=name)
    return bytes([len(raw)]) + raw


def _enc_array(vals: list[Any], et: str, field: str, name: str, endian: str) -> bytes:
    if et == "N1":  # two nibbles a byte, the first in the low nibble
        padded = [int(v) & 0x0F for v in vals] + [0] * (len(vals) % 2)
        return bytes(lo | (hi << 4) for lo, hi in zip(padded[::2], padded[1::2]))
    if et == _CN:
        return b"".join(_enc_text(v, field, name) for v in vals)
    return struct.pack(f"{endian}{len(vals)}{_NUM[et]}", *vals)


def encode_record(name: str, values: dict[str, Any], endian: str) -> bytes:
    """Encode one record (header included) from ``{field: value}``.

    Fields are written in specification order up to the last one given in ``values``;
    earlier missing fields get zero / empty / space. An array field is a sequence whose
    length must equal its count field (a missing array is empty).
    """
    spec = FIELDS[name]
    given = [i for i, (f, _) in enumerate(spec) if values.get(f) is not None]
    last = max(given) if given else -1
    parts = []
    for field, ftype in spec[: last + 1]:
        v = values.get(field)
        if isinstance(ftype, tuple):
            vals = list(v) if v is not None else []
            count = values.get(ftype[1]) or 0
            if len(vals) != count:
                raise ParseError(f"field {field} holds {len(vals)} elements but {ftype[1]} is {count}", record=name)
            parts.append(_enc_array(vals, ftype[2], field, name, endian))
            continue
        if ftype == _CN:
            parts.append(_enc_text("" if v is None else v, field, name))
        elif ftype == "Bn":
            raw = bytes(v or b"")
            parts.append(bytes([len(raw)]) + raw)
        elif ftype == "C1":
            c = (" " if v is None or v == "" else str(v)).encode("latin-1", errors="replace")[:1]
            parts.append(c)
        elif ftype == "Dn":
            raw = bytes(v or b"")
            parts.append(struct.pack(endian + "H", 8 * len(raw)) + raw)
        else:
            parts.append(struct.pack(endian + _NUM[ftype], 0 if v is None else v))
    body = b"".join(parts)
    if len(body) > 65535:
        raise ParseError(f"record body of {len(body)} bytes exceeds the STDF limit of 65535", record=name)
    typ, sub = REC_TYPES[name]
    return struct.pack(endian + "HBB", len(body), typ, sub) + body
