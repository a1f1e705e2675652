"""The parametric summaries on a Dask DataFrame equal the in-memory ones (1e-9 relative)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from yieldkit.errors import YieldkitValueError
from yieldkit.parametric import capability, shift

dd = pytest.importorskip("dask.dataframe")


def long_table(rng, n_lots=3, wafers=4, dies=150, tests=(10, 20, 30)):
    n = n_lots * wafers * dies
    base = pd.DataFrame({"lot_id": np.repeat([f"L{i}" for i in range(n_lots)], wafers * dies),
                         "wafer_id": np.tile(np.repeat([f"{w:02d}" for w in range(wafers)], dies), n_lots),
                         "die_x": np.tile(np.arange(dies), n_lots * wafers)})
    parts = []
    for t in tests:
        parts.append(base.assign(test_num=t, test_name=f"T{t}", units="V",
                                 value=rng.normal(t / 10, 0.1, n) + base["wafer_id"].astype(int) * 0.01,
                                 lo_limit=t / 10 - 0.4, hi_limit=t / 10 + 0.4 if t != 30 else np.nan))
    tab = pd.concat(parts, ignore_index=True).sort_values(["lot_id", "wafer_id", "die_x"], kind="stable")
    return tab.reset_index(drop=True)


def by_lot(df):
    return dd.concat([dd.from_pandas(g, npartitions=1, sort=False) for _, g in df.groupby("lot_id", sort=True)])


def assert_tables_equal(a, b):
    assert list(a.columns) == list(b.columns) and len(a) == len(b)
    for c in a.columns:
        if pd.api.types.is_float_dtype(a[c]):
            np.testing.assert_allclose(b[c].to_numpy(float), a[c].to_numpy(float), rtol=1e-9, atol=0, equal_nan=True)
        else:
            assert a[c].astype(str).tolist() == b[c].astype(str).tolist(), c


def test_capability_dask_equals_memory(rng):
    tab = long_table(rng)
    mem = capability(tab)
    # rows cut into 7 partitions: wafers span partitions, their statistics are merged
    ddf = dd.from_pandas(tab, npartitions=7, sort=False)
    assert ddf.npartitions == 7
    per_part = sum(len(p.compute()[["lot_id", "wafer_id"]].drop_duplicates()) for p in ddf.to_delayed())
    assert per_part > len(tab[["lot_id", "wafer_id"]].drop_duplicates())  # some wafer spans partitions
    assert_tables_equal(mem.table, capability(ddf).table)
    assert_tables_equal(capability(tab, by=None, subgroup="lot_id").table,
                        capability(ddf, by=None, subgroup="lot_id").table)
    # the percentile form needs lot-aligned partitions
    assert_tables_equal(capability(tab, method="percentile").table,
                        capability(by_lot(tab), method="percentile").table)
    with pytest.raises(YieldkitValueError, match="inside one partition"):
        capability(ddf, method="percentile")


def test_shift_dask_equals_memory(rng):
    tab = long_table(rng)
    ref = tab[tab.lot_id == "L0"].drop(columns="lot_id")
    mem = shift(tab, ref, effect=0.05)
    got = shift(by_lot(tab), dd.from_pandas(ref, npartitions=2), effect=0.05)
    assert_tables_equal(mem.table, got.table)
    assert got.n_alarms == mem.n_alarms
    with pytest.raises(YieldkitValueError, match="inside one partition"):
        shift(dd.from_pandas(tab, npartitions=7, sort=False), ref)
