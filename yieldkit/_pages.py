"""Memory-page advice for the short-lived row-sized arrays of the readers and reductions.

numpy advises the kernel to back every array of 4 MB or more with transparent huge pages
(``madvise(MADV_HUGEPAGE)``). For arrays that live a few milliseconds -- the codes, masks and
keys of a read -- each fault of a fresh 2 MB page is zeroed whole and, where the kernel's THP
``defrag`` setting is ``madvise`` (a common default), may first compact memory. Measured on a
4 million-row Parquet die table (``benchmarks/bench_hot_paths.py --only ingest``, fresh
processes, 2-core machine): ``read_dies`` + ``wafer_yield`` spent 1.3-1.7 s of system time
with the advice and 0.08-0.2 s without it, for 0.2-0.3 s of user time either way.

:func:`small_pages` turns the advice off for the duration of a call and restores numpy's
setting afterwards (nested calls and calls from several threads count: the setting returns
when the last one leaves). It changes where memory comes from, never a value.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator

import numpy as np


def _setter() -> Callable[[bool], bool] | None:
    for mod in ("_core", "core"):
        multiarray = getattr(getattr(np, mod, None), "multiarray", None)
        fn = getattr(multiarray, "_set_madvise_hugepage", None)
        if fn is not None:
            return fn  # type: ignore[no-any-return]
    return None


_SET = _setter()
_LOCK = threading.Lock()
_DEPTH = 0
_SAVED = True


@contextlib.contextmanager
def small_pages() -> Iterator[None]:
    """numpy's huge-page advice off inside the block (or the decorated function), restored after."""
    global _DEPTH, _SAVED
    if _SET is None:
        yield
        return
    with _LOCK:
        if _DEPTH == 0:
            _SAVED = _SET(False)
        _DEPTH += 1
    try:
        yield
    finally:
        with _LOCK:
            _DEPTH -= 1
            if _DEPTH == 0:
                _SET(_SAVED)
