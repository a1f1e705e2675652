"""The per-wafer inspection functions on Dask DataFrames partitioned by wafer.

Matching across steps, adder summaries and repeaters work wafer by wafer, so on a Dask
DataFrame whose partitions each hold whole wafers (a wafer never spans two partitions) every
partition is handled by the in-memory function (``map_partitions``) and the result equals the
in-memory one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from ..errors import SchemaError, YieldkitValueError
from .repeaters import find_repeaters
from .steps import adder_summary, match_steps

__all__ = ["adder_summary_dask", "check_wafer_partitions", "find_repeaters_dask", "match_steps_dask"]


def check_wafer_partitions(ddf: Any, where: str) -> None:
    """Raise when a wafer spans two partitions of ``ddf``."""
    for col in ("lot_id", "wafer_id"):
        if col not in ddf.columns:
            raise SchemaError(f"{where}: the dask DataFrame lacks column {col!r}.", column=col)

    def wafers(p: pd.DataFrame) -> pd.DataFrame:
        return p[["lot_id", "wafer_id"]].astype(str).drop_duplicates()

    meta = pd.DataFrame({"lot_id": pd.Series(dtype=object), "wafer_id": pd.Series(dtype=object)})
    per_part = ddf.map_partitions(wafers, meta=meta).compute()
    if per_part.duplicated().any():
        first = per_part[per_part.duplicated()].iloc[0]
        raise YieldkitValueError(f"{where}: wafer {first['lot_id']}/{first['wafer_id']} spans several partitions; "
                                 "partition the table by wafer (e.g. set_index or shuffle on a wafer key) first.")


def match_steps_dask(ddf: Any, order: Sequence[str], **kwargs: Any) -> Any:
    """:func:`~yieldkit.inspection.match_steps` per partition: a lazy Dask DataFrame of the
    matched table (``order`` is required, every partition must use the same)."""
    check_wafer_partitions(ddf, "match_steps_dask")
    order = list(order)

    def one(p: pd.DataFrame) -> pd.DataFrame:
        return match_steps(p, order, **kwargs).table

    return ddf.map_partitions(one, meta=one(ddf._meta))


def adder_summary_dask(matched: Any, *, order: Sequence[str] | None = None, **kwargs: Any) -> pd.DataFrame:
    """:func:`~yieldkit.inspection.adder_summary` of a wafer-partitioned matched table (computed)."""
    check_wafer_partitions(matched, "adder_summary_dask")

    def one(p: pd.DataFrame) -> pd.DataFrame:
        return adder_summary(p, order=order, **kwargs)

    parts = matched.map_partitions(one, meta=one(matched._meta)).compute()
    return parts.sort_values(["lot_id", "wafer_id"], kind="stable").reset_index(drop=True)


def find_repeaters_dask(ddf: Any, layout: Any, **kwargs: Any) -> tuple[pd.DataFrame, pd.DataFrame]:
    """:func:`~yieldkit.inspection.find_repeaters` per partition: the repeater table and the
    per-group table (computed), equal to the in-memory ``.table`` and ``.groups``."""
    check_wafer_partitions(ddf, "find_repeaters_dask")

    import dask

    results = dask.compute(*[dask.delayed(find_repeaters)(p, layout, **kwargs) for p in ddf.to_delayed()])
    mem = find_repeaters(ddf._meta, layout, **kwargs)
    tables = [r.table for r in results if len(r.table)]
    groups = [r.groups for r in results if len(r.groups)]
    t = pd.concat(tables, ignore_index=True) if tables else mem.table
    g = pd.concat(groups, ignore_index=True) if groups else mem.groups
    return t, g
