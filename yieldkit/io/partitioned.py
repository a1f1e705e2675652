"""Hive-partitioned Parquet datasets (``DATASET/lot_id=<lot>/wafer_id=<wafer>/...``), written atomically.

A dataset directory is written into a temporary directory beside it and renamed at the end,
so a reader never sees half a dataset and a failed conversion leaves the old one in place.
Partition values are URI-encoded by pyarrow where they hold characters a path cannot.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pads

from ..errors import SchemaError
from .atomic import atomic_dir

__all__ = ["PARTITIONS", "atomic_dir", "hive_partitioning", "read_partitioned", "write_dataset", "write_partitions"]

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
    ds = pads.dataset(path, format="parquet", partitioning=hive_partitioning(path), exclude_invalid_files=True)
    df = ds.to_table(columns=columns).to_pandas(types_mapper=lambda t: pd.ArrowDtype(t) if t == pa.string() else None)
    for c in PARTITIONS.names:
        if c in df.columns:
            df[c] = df[c].astype(pd.StringDtype("pyarrow"))
    return df


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
