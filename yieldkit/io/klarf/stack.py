"""Per-wafer tables stacked into one at bounded memory.

:class:`Stack` is ``pd.concat(frames, ignore_index=True)`` for frames that arrive one at a
time (the wafers of a file, as they are converted): each is copied into arrays of the final
length and can then be released, so the peak is the table plus one wafer, not twice the table.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from ...schema import STRING

__all__ = ["Stack"]


def _simple(d: Any) -> bool:
    return (isinstance(d, np.dtype) and d.kind in "biuf") or isinstance(d, pd.core.dtypes.dtypes.BaseMaskedDtype) \
        or d == STRING


class Stack:
    """``pd.concat(frames, ignore_index=True)`` of frames given one at a time, each copied into
    arrays of the final length (``n`` rows at most) and then free to go: the peak is the table
    plus one frame, not twice the table. Frames whose columns or dtypes differ from the first
    (or are not numpy numbers, masked numbers or Arrow strings) are concatenated at the end."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.off = 0
        self.first: pd.DataFrame | None = None
        self.cols: list[Any] | None = None
        self.dtypes: list[Any] = []
        self.data: dict[Any, Any] = {}
        self.rest: list[pd.DataFrame] = []

    def add(self, f: pd.DataFrame) -> None:
        if self.first is None and self.cols is None and not self.rest:
            self.first = f  # a single frame is the table as it is
            return
        if self.first is not None:
            first, self.first = self.first, None
            self._start(first)
            self.add(first)
            del first
        if self.rest or self.cols is None or list(f.columns) != self.cols or list(f.dtypes) != self.dtypes \
                or self.off + len(f) > self.n:
            self.rest.append(f)
            return
        off, k = self.off, len(f)
        for c, d in zip(self.cols, self.dtypes):
            a = f[c].array
            if d == STRING:
                self.data[c].extend(a._pa_array.cast(pa.large_string()).chunks)
            elif isinstance(d, np.dtype):
                self.data[c][off : off + k] = f[c].to_numpy()
            else:
                self.data[c][0][off : off + k] = a._data
                self.data[c][1][off : off + k] = a._mask
        self.off += k

    def _start(self, f: pd.DataFrame) -> None:
        cols, dtypes = list(f.columns), list(f.dtypes)
        if not all(_simple(d) for d in dtypes) or f.columns.duplicated().any():
            return
        self.cols, self.dtypes = cols, dtypes
        for c, d in zip(cols, dtypes):
            if d == STRING:
                self.data[c] = []
            elif isinstance(d, np.dtype):
                self.data[c] = np.empty(self.n, d)
            else:
                self.data[c] = (np.empty(self.n, d.numpy_dtype), np.empty(self.n, bool), type(f[c].array))

    def _filled(self) -> pd.DataFrame:
        assert self.cols is not None
        out: dict[Any, Any] = {}
        for c, d in zip(self.cols, self.dtypes):
            if d == STRING:
                out[c] = pd.arrays.ArrowStringArray(pa.chunked_array(self.data[c], pa.large_string()))
            elif isinstance(d, np.dtype):
                out[c] = self.data[c][: self.off]
            else:
                values, mask, kind = self.data[c]
                out[c] = kind(values[: self.off], mask[: self.off])
        return pd.DataFrame(out, copy=False)

    def frames(self) -> list[pd.DataFrame]:
        """The frames given so far (those copied as one)."""
        head = [self.first] if self.first is not None else [self._filled()] if self.cols is not None else []
        return head + self.rest

    def result(self) -> pd.DataFrame:
        frames = self.frames()
        self.first, self.data, self.rest = None, {}, []
        return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
