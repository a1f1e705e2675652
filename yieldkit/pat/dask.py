"""PAT on Dask DataFrames: limits and geographic rules lot by lot on lot-aligned partitions.

Limits of a lot need all of its values, and the stacked (Z-PAT) rule all of its wafers, so both
run per partition on partitions that each hold whole lots (or, for pooled static limits, whole
tests). A frame that is not aligned is shuffled on the lot (or test) first. Each partition is
then handled by the in-memory code, so the results equal the in-memory ones.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import pandas as pd

from ..errors import YieldkitValueError

log = logging.getLogger(__name__)

__all__ = ["aligned", "geo_pat_dask", "pat_limits_dask"]


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


def pat_limits_dask(tests: Any, *, method: str, k: float, by: tuple[str, ...], min_samples: int, good_only: bool,
                    clip_to_spec: bool, quantiles: str, dies: pd.DataFrame | None, exclude: Sequence[Any],
                    require_spec: bool = False) -> Any:
    """:func:`yieldkit.pat.pat_limits` of a dask test table (see there): per lot-aligned partition
    (test-aligned for pooled limits), with exact quantiles, then concatenated."""
    import dask

    from ._tables import need_columns
    from .limits import RULE_OF_METHOD, PatLimits, _limits_table

    need_columns(tests._meta, ("lot_id", "wafer_id", "die_x", "die_y", "test_num", "value"), what="tests",
                 where="pat_limits")
    ddf = aligned(tests, "lot_id" if by else "test_num")
    parts = [dask.delayed(_limits_table)(p, method, k, by, min_samples, good_only, clip_to_spec, quantiles, dies,
                                         exclude, require_spec) for p in ddf.to_delayed()]
    tables = [t for t in dask.compute(*parts) if len(t)]
    if not tables:
        tab = _limits_table(tests._meta, method, k, by, min_samples, good_only, clip_to_spec, quantiles, dies, exclude,
                            require_spec)
    else:
        tab = pd.concat(tables, ignore_index=True)
        keys = list(by) + ["test_num"] + (["pin"] if "pin" in tab.columns else [])
        tab = tab.sort_values(keys, kind="stable", na_position="first", ignore_index=True)
        if "pin" in tab.columns:
            tab["pin"] = tab["pin"].astype("Int32")
        cols = list(by) + ["test_num"] + [c for c in ("pin", "test_name") if c in tab.columns]
        tab = tab[cols + [c for c in tab.columns if c not in cols]]
    return PatLimits(table=tab, method=method, k=k, by=by, quantiles=quantiles, min_samples=min_samples,
                     rule=RULE_OF_METHOD[method])


def _geo_table(part: pd.DataFrame, rules: tuple[str, ...], params: Any, tests: pd.DataFrame | None,
               nnr_tests: Sequence[int], pat_bin: int) -> pd.DataFrame:
    from .geographic import geo_pat

    if tests is not None and len(part):
        lots = part["lot_id"].unique()
        tests = tests.loc[tests["lot_id"].isin(lots).to_numpy()]
    res: Any = geo_pat(part, rules=rules, params=params, tests=tests, nnr_tests=nnr_tests, pat_bin=pat_bin)
    return res.table  # type: ignore[no-any-return]


def geo_pat_dask(dies: Any, *, rules: tuple[str, ...], params: Any, tests: Any, nnr_tests: Sequence[int],
                 pat_bin: int) -> Any:
    """:func:`yieldkit.pat.geo_pat` of a dask die table: the screened table as a dask DataFrame,
    each lot screened whole in its partition."""
    from ._tables import need_columns

    need_columns(dies._meta, ("lot_id", "wafer_id", "die_x", "die_y", "hbin", "passed"), what="dies", where="geo_pat")
    if tests is not None and not isinstance(tests, pd.DataFrame):
        tests = tests.compute() if hasattr(tests, "compute") else tests
        if not isinstance(tests, pd.DataFrame):
            raise YieldkitValueError("The 'tests' argument of geo_pat must be a DataFrame or a dask DataFrame.")
    ddf = aligned(dies, "lot_id")
    meta = _geo_table(ddf._meta, rules, params, tests, nnr_tests, pat_bin)
    return ddf.map_partitions(_geo_table, rules, params, tests, nnr_tests, pat_bin, meta=meta)
