"""PAT on Dask DataFrames: limits and geographic rules lot by lot on lot-aligned partitions.

Limits of a lot need all of its values, and the stacked (Z-PAT) rule all of its wafers, so both
run per partition on partitions that each hold whole lots (or, for pooled static limits, whole
tests). A frame that is not aligned is shuffled on the lot (or test) first. Each partition is
then handled by the in-memory code, so the results equal the in-memory ones.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pandas as pd

from ..errors import YieldkitValueError

log = logging.getLogger(__name__)

__all__ = ["aligned", "combine_limit_tables", "geo_pat_dask", "limits_table_dask"]


def aligned(ddf: Any, column: str) -> Any:
    """``ddf`` with every value of ``column`` in one partition (shuffled on it when not already)."""
    if column not in ddf.columns:
        from ..errors import SchemaError

        raise SchemaError(f"The dask DataFrame lacks column {column!r}; found {', '.join(map(str, ddf.columns))}",
                          column=column)
    per_part = ddf[column].map_partitions(lambda s: s.drop_duplicates(), meta=ddf._meta[column]).compute()
    if not per_part.duplicated().any():
        return ddf
    log.info("partitions split some %s values; shuffling on %s", column, column)
    return ddf.shuffle(on=column, npartitions=ddf.npartitions)


def limits_table_dask(tests: Any, table_fn: Callable[..., pd.DataFrame], *, by: tuple[str, ...],
                      args: tuple[Any, ...]) -> pd.DataFrame:
    """The PAT limits table of a dask test table: ``table_fn(partition, *args)`` (the in-memory
    kernel of :func:`yieldkit.pat.pat_limits`) per lot-aligned partition (test-aligned for pooled
    limits), with exact quantiles, then concatenated in the in-memory order."""
    import dask

    from ._tables import need_columns

    need_columns(tests._meta, ("lot_id", "wafer_id", "die_x", "die_y", "test_num", "value"), what="tests",
                 where="pat_limits")
    ddf = aligned(tests, "lot_id" if by else "test_num")
    tables = [t for t in dask.compute(*[dask.delayed(table_fn)(p, *args) for p in ddf.to_delayed()]) if len(t)]
    if not tables:
        return table_fn(tests._meta, *args)
    return combine_limit_tables(tables, by)


def combine_limit_tables(tables: list[pd.DataFrame], by: tuple[str, ...]) -> pd.DataFrame:
    """The limits tables of lot-aligned (test-aligned for pooled limits) parts as one table in the
    in-memory order."""
    tab = pd.concat(tables, ignore_index=True)
    keys = list(by) + ["test_num"] + (["pin"] if "pin" in tab.columns else [])
    tab = tab.sort_values(keys, kind="stable", na_position="first", ignore_index=True)
    if "pin" in tab.columns:
        tab["pin"] = tab["pin"].astype("Int32")
    cols = list(by) + ["test_num"] + [c for c in ("pin", "test_name") if c in tab.columns]
    return tab[cols + [c for c in tab.columns if c not in cols]]


def _geo_table(part: pd.DataFrame, geo_fn: Callable[..., Any], tests: pd.DataFrame | None) -> pd.DataFrame:
    if tests is not None and len(part):
        lots = part["lot_id"].unique()
        tests = tests.loc[tests["lot_id"].isin(lots).to_numpy()]
    return geo_fn(part, tests=tests).table  # type: ignore[no-any-return]


def geo_pat_dask(dies: Any, geo_fn: Callable[..., Any], *, tests: Any) -> Any:
    """The screened table of a dask die table as a dask DataFrame: ``geo_fn(partition, tests=...)``
    (the in-memory :func:`yieldkit.pat.geo_pat` with its rules bound), each lot screened whole in
    its partition."""
    from ._tables import need_columns

    need_columns(dies._meta, ("lot_id", "wafer_id", "die_x", "die_y", "hbin", "passed"), what="dies", where="geo_pat")
    if tests is not None and not isinstance(tests, pd.DataFrame):
        tests = tests.compute() if hasattr(tests, "compute") else tests
        if not isinstance(tests, pd.DataFrame):
            raise YieldkitValueError("The 'tests' argument of geo_pat must be a DataFrame or a dask DataFrame.")
    ddf = aligned(dies, "lot_id")
    meta = _geo_table(ddf._meta, geo_fn, tests)
    return ddf.map_partitions(_geo_table, geo_fn, tests, meta=meta)
