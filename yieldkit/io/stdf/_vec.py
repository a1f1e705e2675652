"""Vectorised decoding of fixed-offset fields and strings from many records at once."""

from __future__ import annotations

import ctypes
from typing import Any

import numpy as np
import pyarrow as pa

__all__ = ["gather_strings", "int_field", "float_field", "release_memory"]

_TRIM: Any = None


def release_memory() -> None:
    """Hand freed heap memory back to the operating system (glibc ``malloc_trim``; elsewhere a no-op).

    The chunked readers free many arrays of a few megabytes; glibc keeps such blocks in its
    heap, so without this the resident memory would stay at its high-water mark.
    """
    global _TRIM
    if _TRIM is None:
        try:
            _TRIM = ctypes.CDLL("libc.so.6").malloc_trim
        except (OSError, AttributeError):
            _TRIM = False
    if _TRIM:
        _TRIM(0)


def int_field(
    buf: np.ndarray, body: np.ndarray, length: np.ndarray, at: int, size: int, *, little: bool,
    signed: bool = False, default: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """An integer field at byte ``at`` of every record body; ``default`` where the record ends first.

    Returns ``(values as int64, present mask)``.
    """
    present = length >= at + size
    last = len(buf) - 1
    pos = body + at
    v = np.zeros(len(body), dtype=np.int64)
    for k in range(size):
        b = buf[np.minimum(pos + k, last)].astype(np.int64)
        v |= b << (8 * k if little else 8 * (size - 1 - k))
    if signed:
        top = 1 << (8 * size - 1)
        v = np.where(v >= top, v - (top << 1), v)
    return np.where(present, v, default), present


def float_field(
    buf: np.ndarray, body: np.ndarray, length: np.ndarray, at: int, *, little: bool, dtype: type = np.float64,
) -> tuple[np.ndarray, np.ndarray]:
    """An R4 field at byte ``at`` of every record body as ``dtype`` (NaN where absent)."""
    present = length >= at + 4
    last = len(buf) - 1
    pos = body + at
    m = np.empty((len(body), 4), dtype=np.uint8)
    for k in range(4):
        m[:, k] = buf[np.minimum(pos + k, last)]
    v: np.ndarray = m.view("<f4" if little else ">f4").ravel().astype(dtype)
    return np.where(present, v, dtype(np.nan)), present


def gather_strings(buf: np.ndarray, start: np.ndarray, size: np.ndarray) -> pa.Array:
    """A pyarrow string array of ``buf[start[i] : start[i] + size[i]]`` for every i.

    Bytes are decoded as UTF-8 when valid, else as Latin-1; trailing NULs are dropped.
    """
    size = np.asarray(size, dtype=np.int64)
    n = len(size)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(size, out=offsets[1:])
    total = int(offsets[-1])
    if total:
        rel = np.arange(total, dtype=np.int64) - np.repeat(offsets[:-1], size)
        data = buf[np.repeat(start, size) + rel]
    else:
        data = np.zeros(0, np.uint8)
    arr = pa.LargeStringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(data.tobytes()))
    try:
        arr.validate(full=True)
    except pa.ArrowInvalid:
        raw = data.tobytes()
        arr = pa.array(
            [raw[offsets[i]:offsets[i + 1]].decode("latin-1") for i in range(n)], type=pa.large_string()
        )
    out = arr.cast(pa.string())
    if total and (data == 0).any():
        import pyarrow.compute as pc

        out = pc.utf8_rtrim(out, characters="\x00")
    return out
