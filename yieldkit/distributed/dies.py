"""Scale-out with Dask: canonical die tables and yield summaries beyond one machine's memory.

A Dask DataFrame is a collection of pandas partitions; each partition here is a canonical die
table (the same schema :func:`yieldkit.read_dies` returns). Validation and per-wafer counting
run partition by partition, on a local thread pool or on a ``dask.distributed`` cluster, and
only the small per-wafer sums travel back.

Requirement: all test results of one die (its retests) lie in the same partition. This holds
when the dataset is partitioned by lot or by wafer (e.g. a hive-partitioned Parquet dataset
``lot_id=.../``), which is how wafer-sort data is normally stored. A wafer may span
partitions; its counts are added up.

Install with ``pip install 'yieldkit[dask]'``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InputNotFoundError, ParseError, YieldkitError, YieldkitTypeError
from ..intervals import clopper_pearson
from ..io.partitioned import hive_partitioning
from ..schema import STRING, good_bin_set, validate_dies
from ..yields import wafer_yield

log = logging.getLogger(__name__)

__all__ = ["read_dies_dask", "wafer_yield_dask"]

_COUNT_COLUMNS = ["lot_id", "wafer_id", "tested", "good", "first_pass_good"]


def _dask() -> Any:
    try:
        import dask.dataframe as dd
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise YieldkitError("Dask is not installed: pip install 'yieldkit[dask]'") from exc
    return dd


def _validate_partition(df: pd.DataFrame, columns: Mapping[str, str] | None, good_bins: tuple[int, ...] | None,
                        source: str) -> pd.DataFrame:
    for c in df.columns:  # hive partition keys arrive as categoricals
        if isinstance(df[c].dtype, pd.CategoricalDtype):
            df = df.assign(**{c: df[c].astype(STRING)})
    return validate_dies(df, source=source, columns=columns, good_bins=good_bins)


def read_dies_dask(
    source: str | os.PathLike[str] | Any,
    *,
    columns: Mapping[str, str] | None = None,
    good_bins: Iterable[int] | None = None,
) -> Any:
    """A lazily validated canonical die table as a Dask DataFrame.

    Parameters
    ----------
    source : path or dask DataFrame
        A Parquet file or dataset directory (read with ``dask.dataframe.read_parquet``), or an
        existing Dask DataFrame of raw die rows.
    columns : mapping, optional
        Explicit ``{found_name: canonical_name}``, as for :func:`yieldkit.read_dies`.
    good_bins : iterable of int, optional
        Hard bins that pass, as for :func:`yieldkit.read_dies` (given, they win over a
        ``passed`` column).

    Returns
    -------
    dask.dataframe.DataFrame
        Each partition validated by :func:`yieldkit.schema.validate_dies` when computed; a bad
        value raises :class:`~yieldkit.errors.SchemaError` naming the partition's source.
    """
    dd = _dask()
    good = good_bin_set(good_bins, where="read_dies_dask")
    if isinstance(source, (str, os.PathLike)):
        name = str(source)
        if not os.path.exists(name):
            raise InputNotFoundError(f"{name}: no such file or directory")
        try:
            # lot and wafer partition keys are identifiers: read as text ("02" stays "02")
            raw = dd.read_parquet(name, dataset={"partitioning": hive_partitioning(name)}) if os.path.isdir(
                name) else dd.read_parquet(name)
            # the output schema: validate a few real rows of the first partition (this also fails
            # early on a dataset whose columns cannot be mapped, and on a broken file)
            sample = raw.get_partition(0).head(64, npartitions=-1, compute=True)
        except (OSError, ValueError, IndexError, TypeError) as exc:
            if isinstance(exc, YieldkitError):
                raise
            inner: BaseException = exc
            while inner.__cause__ is not None:  # dask wraps the reader's own error
                inner = inner.__cause__
            detail = str(inner).splitlines()[0] if str(inner) else type(inner).__name__
            raise ParseError(f"not a readable Parquet file or dataset ({detail})", path=name) from None
    elif hasattr(source, "map_partitions"):
        name = "<dask DataFrame>"
        raw = source
        sample = raw.get_partition(0).head(64, npartitions=-1, compute=True)
    else:
        raise YieldkitTypeError(
            "The 'source' argument of read_dies_dask must be a Parquet path or a dask DataFrame. "
            f"Got {type(source).__name__} instead."
        )
    meta = _validate_partition(sample, columns, good, name).iloc[:0]
    return raw.map_partitions(_validate_partition, columns, good, name, meta=meta)


def _partition_counts(df: pd.DataFrame) -> pd.DataFrame:
    w = wafer_yield(df)
    return pd.DataFrame({c: w[c] for c in _COUNT_COLUMNS})


def wafer_yield_dask(dies: Any, *, conf_level: float = 0.95, scheduler: str | None = None) -> pd.DataFrame:
    """Per-wafer yield of a Dask die table, the same table :func:`yieldkit.wafer_yield` returns.

    Each partition is reduced to per-wafer counts (tested, good, first-pass good) with the
    in-memory routine; the counts are summed across partitions and the yields and
    Clopper-Pearson intervals computed on the totals.

    Parameters
    ----------
    dies : dask.dataframe.DataFrame
        Canonical die table, e.g. from :func:`read_dies_dask`; every die's retests in one partition.
    conf_level : float
        Confidence level of the intervals.
    scheduler : str, optional
        Dask scheduler ("threads", "processes", "synchronous"); default: Dask's (or the active
        distributed client).
    """
    meta = pd.DataFrame(
        {
            "lot_id": pd.Series(dtype=STRING),
            "wafer_id": pd.Series(dtype=STRING),
            "tested": pd.Series(dtype=np.int64),
            "good": pd.Series(dtype=np.int64),
            "first_pass_good": pd.Series(dtype=np.int64),
        }
    )
    parts = dies.map_partitions(_partition_counts, meta=meta)
    counts = parts.compute(scheduler=scheduler) if scheduler else parts.compute()
    n_parts = counts.groupby(["lot_id", "wafer_id"], sort=False).size()
    if (n_parts > 1).any():
        log.info("%d wafers span several partitions; their counts are added", int((n_parts > 1).sum()))
    tot = counts.groupby(["lot_id", "wafer_id"], sort=False)[["tested", "good", "first_pass_good"]].sum().reset_index()
    lo, hi = clopper_pearson(tot["good"].to_numpy(), tot["tested"].to_numpy(), conf_level)
    with np.errstate(invalid="ignore", divide="ignore"):
        tot["yield"] = tot["good"] / tot["tested"]
        tot["first_pass_yield"] = tot["first_pass_good"] / tot["tested"]
    tot["ci_lower"] = lo
    tot["ci_upper"] = hi
    for c in ("lot_id", "wafer_id"):
        tot[c] = tot[c].astype(STRING)
    return tot[["lot_id", "wafer_id", "tested", "good", "yield", "first_pass_good", "first_pass_yield", "ci_lower", "ci_upper"]]
