"""An STDF file as hive-partitioned Parquet datasets, written at a fixed memory ceiling.

Layout (both partitioned by lot, then wafer)::

    DATASET/lot_id=<lot>/wafer_id=<wafer>/dies-0.parquet            the die table
    DATASET_tests/lot_id=<lot>/wafer_id=<wafer>/part-<n>-0.parquet  the test results

``DATASET/`` is a die dataset like any other (``yieldkit.read_dies(DATASET)``,
``yieldkit.distributed.read_dies_dask(DATASET)``); the test results, one file per chunk of
the STDF file and wafer, live beside it (``DATASET_tests/``, or where ``tests_out`` says) so
that a reader of the die dataset never picks them up. Partition values are URI-encoded by
pyarrow where they hold characters a path cannot.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from ...errors import check_choice
from ..partitioned import atomic_dir, write_partitions
from .collect import TEST_RECS, key
from .reader import StdfFile, read_parts
from .results import TestCollector
from .stream import CHUNK_SIZE, RecordStream

log = logging.getLogger(__name__)

__all__ = ["tests_path", "write_stdf_dataset"]

#: the test results as stored (one schema for every file of the dataset)
_TEST_SCHEMA = pa.schema([
    ("lot_id", pa.string()), ("wafer_id", pa.string()), ("die_x", pa.int32()), ("die_y", pa.int32()),
    ("head", pa.int16()), ("site", pa.int16()), ("test_seq", pa.int16()), ("part_index", pa.int64()),
    ("record", pa.string()), ("test_num", pa.int64()), ("test_name", pa.string()), ("pin", pa.int32()),
    ("value", pa.float32()), ("lo_limit", pa.float32()), ("hi_limit", pa.float32()), ("units", pa.string()),
    ("passed", pa.bool_()), ("test_flg", pa.int16()),
])


def _test_table(tests: pd.DataFrame) -> pa.Table:
    """The long test table in the stored schema (plain strings, int64 test numbers)."""
    cols = []
    for f in _TEST_SCHEMA:
        s = tests[f.name]
        if isinstance(s.dtype, pd.CategoricalDtype):
            arr = pa.array(s.astype(object).to_numpy(), type=f.type)
        else:
            arr = pa.array(s.array if not isinstance(s.dtype, np.dtype) else s.to_numpy(), from_pandas=True)
        cols.append(arr.cast(f.type))
    return pa.Table.from_arrays(cols, schema=_TEST_SCHEMA)


def tests_path(out: str | os.PathLike[str]) -> Path:
    """Where the test results of the die dataset ``out`` go by default: ``<out>_tests`` beside it."""
    p = Path(out)
    return p.with_name(p.name + "_tests")


def write_stdf_dataset(
    path: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    tests: bool = True,
    tests_out: str | os.PathLike[str] | None = None,
    on_error: str = "raise",
    good_bins: Any = None,
    chunk_size: int = CHUNK_SIZE,
) -> StdfFile:
    """Convert an STDF file into a hive-partitioned Parquet dataset (see the module docstring).

    The file is read twice, a chunk at a time: first for the parts (the die and wafer tables,
    each test's names and limits, each part's first failing test), then for the test
    results, which are written a chunk at a time. Memory therefore holds one chunk, the die
    table and the tests' names, never the test table: it does not grow with the number of
    test records. Each dataset is written into a temporary directory beside it and renamed
    at the end (the test results first).

    Parameters
    ----------
    path : str or path-like
        The STDF file (plain or compressed).
    out : str or path-like
        The die dataset directory; an existing one is replaced.
    tests : bool
        Also write the test results; default True.
    tests_out : str or path-like, optional
        Their dataset directory (default :func:`tests_path` of ``out``); an existing one is
        replaced.
    on_error, good_bins, chunk_size
        As for :func:`~yieldkit.io.stdf.read_stdf`.

    Returns
    -------
    StdfFile
        What was read, without the test table.
    """
    check_choice(on_error, ("raise", "salvage"), name="on_error", where="write_stdf_dataset")
    f, col = read_parts(path, tests=tests, on_error=on_error, good_bins=good_bins, chunk_size=chunk_size,
                        test_rows=False)
    dies = f.dies
    if tests and col.tests is not None:
        tout = Path(tests_out) if tests_out is not None else tests_path(out)
        with atomic_dir(tout) as tmp:
            n = _write_tests(path, f, col.tests, tmp, chunk_size)
        log.info("%s: wrote %d test result(s) to %s", path, n, tout)
    with atomic_dir(out) as tmp:
        tbl = pa.Table.from_pandas(dies, preserve_index=False)
        for name in ("lot_id", "wafer_id"):
            tbl = tbl.set_column(tbl.schema.get_field_index(name), name, tbl[name].cast(pa.string()))
        write_partitions(tbl, tmp, "dies")
    return f


def _write_tests(path: str | os.PathLike[str], f: StdfFile, first: TestCollector, root: Path,
                 chunk_size: int) -> int:
    """Second pass: decode the test records a chunk at a time and write each chunk's rows."""
    dies = f.dies
    little = f.metadata["byte_order"] == "little"
    prr_hs = dies["head"].to_numpy(np.int64) * 256 + dies["site"].to_numpy(np.int64)
    fill = first.fill_tables()
    tc = TestCollector(little, str(path))
    tc.names = dict(first.names)  # the same codes as the first pass
    keep = np.zeros(65536, dtype=bool)
    keep[key("PRR")] = True
    keep[[key(n) for n in TEST_RECS]] = True
    prr_key = key("PRR")
    n = 0
    with RecordStream(path, chunk_size) as stream:
        stream.head(6)
        for i, chunk in enumerate(stream.chunks(little=little, keep=keep)):
            buf, recs = chunk.buf, chunk.recs
            keys = (recs.typ.astype(np.int64) << 8) | recs.sub
            is_prr = keys == prr_key
            po = recs.offset[is_prr]
            hs = buf[po + 4].astype(np.int64) * 256 + buf[po + 5]
            t = ~is_prr
            tc.add(buf, recs.offset[t], recs.length[t], keys[t], recs.seq[t], hs, recs.seq[is_prr], chunk.base)
            table = tc.table(dies, prr_hs, fill)
            if len(table):
                write_partitions(_test_table(table), root, f"part-{i:06d}")
                n += len(table)
    return n
