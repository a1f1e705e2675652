"""Hive-partitioned Parquet datasets (``DATASET/lot_id=<lot>/wafer_id=<wafer>/...``), written atomically.

A dataset directory is written into a temporary directory beside it and renamed at the end,
so a reader never sees half a dataset and a failed conversion leaves the old one in place.
Partition values are URI-encoded by pyarrow where they hold characters a path cannot.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from ..errors import InputNotFoundError, ParseError, SchemaError
from .atomic import atomic_dir

__all__ = ["PARTITIONS", "TEST_COLUMNS", "atomic_dir", "hive_partitioning", "read_partitioned", "read_tests",
           "validate_tests", "write_dataset", "write_partitions"]

#: the columns a long test table needs (``read_stdf(tests=True)``, the DATASET_tests/ of ``yieldkit convert``)
TEST_COLUMNS = ("lot_id", "wafer_id", "test_num", "value")

#: the partition columns, outermost first
PARTITIONS = pa.schema([("lot_id", pa.string()), ("wafer_id", pa.string())])


def hive_partitioning(path: str | os.PathLike[str]) -> Any:
    """The hive partitioning of the Parquet dataset directory ``path``, reading ``lot_id`` and
    ``wafer_id`` as strings.

    pyarrow infers a partition key's type from its values, so a wafer ``02`` would come back
    as the integer 2; identifiers keep their text here. Other keys are inferred as usual.
    """
    found = pads.dataset(path, format="parquet", partitioning="hive", exclude_invalid_files=True).partitioning
    fields = list(found.schema) if found is not None else []
    fields = [pa.field(f.name, pa.string()) if f.name in PARTITIONS.names else f for f in fields]
    return pads.partitioning(pa.schema(fields), flavor="hive")


def read_partitioned(path: str | os.PathLike[str], columns: list[str] | None = None) -> pd.DataFrame:
    """A hive-partitioned Parquet dataset (e.g. the test results of ``yieldkit convert``) as one
    DataFrame, with ``lot_id`` and ``wafer_id`` as text (Arrow strings).

    For a dataset larger than memory use Dask:
    ``dask.dataframe.read_parquet(path, dataset={"partitioning": hive_partitioning(path)})``.
    """
    parts = hive_partitioning(path) if Path(path).is_dir() else None
    ds = pads.dataset(path, format="parquet", partitioning=parts, exclude_invalid_files=True)
    table = ds.to_table(columns=columns)
    for c in PARTITIONS.names:  # identifiers as text, also when a file stores them dictionary-coded
        i = table.schema.get_field_index(c)
        if i >= 0 and table.schema.field(i).type != pa.string():
            table = table.set_column(i, c, table.column(i).cast(pa.string()))
    # Arrow strings and dictionaries stay Arrow-backed, as the readers give them (pandas cannot
    # rebuild a dictionary ArrowDtype from the stored pandas metadata by itself)
    df = table.to_pandas(types_mapper=lambda t: pd.ArrowDtype(t) if t == pa.string() or pa.types.is_dictionary(t)
                         else None)
    for c in PARTITIONS.names:
        if c in df.columns:
            df[c] = df[c].astype(pd.StringDtype("pyarrow"))
    return df


def validate_tests(df: pd.DataFrame, *, source: str | None = None, columns: Mapping[str, str] | None = None,
                   **options: Any) -> pd.DataFrame:
    """The long test table of ``read_stdf(tests=True)`` (hive keys ``lot_id``, ``wafer_id`` included):
    the columns renamed by ``columns`` and the needed ones (:data:`TEST_COLUMNS`) checked; values are
    carried as stored."""
    if columns:
        df = df.rename(columns=dict(columns))
    missing = [c for c in TEST_COLUMNS if c not in df.columns]
    if missing:
        have = list(map(str, df.columns))
        raise SchemaError(f"the test table lacks column(s) {', '.join(missing)}; it has {', '.join(have[:30])}"
                          f"{', ...' if len(have) > 30 else ''}. Expected the long test table of "
                          "read_stdf(tests=True) (or the DATASET_tests/ of yieldkit convert).",
                          source=source, column=missing[0])
    return df


def read_tests(path: str | os.PathLike[str]) -> pd.DataFrame:
    """The long test table of a Parquet file or a hive-partitioned dataset (the ``DATASET_tests/``
    of ``yieldkit convert``), checked with :func:`validate_tests`.

    Raises
    ------
    InputNotFoundError
        ``path`` does not exist, or the directory holds no Parquet file.
    ParseError
        A file is not Parquet.
    SchemaError
        A needed column is missing.
    """
    p = Path(path)
    if not p.exists():
        raise InputNotFoundError(f"{p}: no such file or directory (expected a Parquet test table or dataset)")
    if p.is_dir() and not any(f.suffix == ".parquet" for f in p.rglob("*") if f.is_file()):
        raise InputNotFoundError(f"{p}: the directory holds no Parquet file")
    try:
        if p.is_file():
            pq.read_metadata(p)  # a directory skips files that are not Parquet; a file named here must be one
        df = read_partitioned(p)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OSError) as exc:
        raise ParseError(f"cannot read it as a Parquet test table ({exc})", path=p) from exc
    return validate_tests(df, source=str(p))


def write_partitions(table: pa.Table, root: str | os.PathLike[str], basename: str) -> None:
    """Add the rows of ``table`` to the dataset at ``root`` as ``<basename>-<i>.parquet`` files,
    one per (lot_id, wafer_id) partition; the partition columns are left out of the files."""
    pads.write_dataset(
        table, root, format="parquet", partitioning=pads.partitioning(PARTITIONS, flavor="hive"),
        basename_template=basename + "-{i}.parquet", existing_data_behavior="overwrite_or_ignore",
        max_partitions=1 << 20,
    )


def write_dataset(table: pd.DataFrame, path: str | os.PathLike[str], *, basename: str = "part") -> Path:
    """Write a table with ``lot_id`` and ``wafer_id`` columns as a hive-partitioned dataset (atomically).

    Raises
    ------
    SchemaError
        When the table lacks ``lot_id`` or ``wafer_id``.
    """
    miss = [c for c in PARTITIONS.names if c not in table.columns]
    if miss:
        raise SchemaError(f"a partitioned dataset needs the column(s) {', '.join(miss)}; the table has "
                          f"{', '.join(map(str, table.columns[:20]))}")
    tbl = pa.Table.from_pandas(table, preserve_index=False)
    for name in PARTITIONS.names:
        tbl = tbl.set_column(tbl.schema.get_field_index(name), name, tbl[name].cast(pa.string()))
    with atomic_dir(path) as tmp:
        write_partitions(tbl, tmp, basename)
    return Path(path)
