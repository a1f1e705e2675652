"""PAT limits and geographic rules on Dask DataFrames equal the in-memory results."""

from __future__ import annotations

import pandas as pd
import pytest

from yieldkit.errors import SchemaError
from yieldkit.pat import GEO_RULES, geo_pat, pat_limits
from yieldkit.simulate import LatentSpec, simulate_fab

dd = pytest.importorskip("dask.dataframe")

_KEYS = ["lot_id", "wafer_id", "die_x", "die_y", "test_seq"]


@pytest.fixture(scope="module")
def fab():
    return simulate_fab(n_lots=3, wafers_per_lot=3, retest_rate=0.02, random_state=14, latent=LatentSpec(n_tests=3))


def _by_lot(df):
    """A dask frame with one partition per lot (aligned: no shuffle needed)."""
    parts = [g.reset_index(drop=True) for _, g in df.groupby("lot_id", sort=False, observed=True)]
    return dd.concat([dd.from_pandas(p, npartitions=1, sort=False) for p in parts])


@pytest.mark.parametrize("by", [("lot_id",), ("lot_id", "wafer_id"), ()])
@pytest.mark.parametrize("method", ["robust_dynamic", "dynamic"])
@pytest.mark.parametrize("aligned", [True, False])
def test_pat_limits_dask_equals_in_memory(fab, by, method, aligned):
    tests = fab.tests
    ddf = _by_lot(tests) if aligned else dd.from_pandas(tests, npartitions=5, sort=False)
    assert ddf.npartitions >= 3
    mem = pat_limits(tests, by=by, method=method, dies=fab.dies)
    dk = pat_limits(ddf, by=by, method=method, dies=fab.dies)
    pd.testing.assert_frame_equal(dk.table, mem.table, check_exact=False, rtol=1e-12)
    assert (dk.method, dk.by, dk.rule) == (mem.method, mem.by, mem.rule)


@pytest.mark.parametrize("aligned", [True, False])
def test_geo_pat_dask_equals_in_memory(fab, aligned):
    dies = fab.dies
    ddf = _by_lot(dies) if aligned else dd.from_pandas(dies, npartitions=4, sort=False)
    kw = dict(rules=GEO_RULES, shot=(2, 2), tests=fab.tests, nnr_tests=[1000, 1001])
    mem = geo_pat(dies, **kw).table
    dk = geo_pat(ddf, **kw)
    assert dk.npartitions == ddf.npartitions
    out = dk.compute()
    assert mem["pat_rule"].notna().sum() > 50
    pd.testing.assert_frame_equal(out.sort_values(_KEYS).reset_index(drop=True),
                                  mem.sort_values(_KEYS).reset_index(drop=True))


def test_dask_bad_input(fab):
    ddf = dd.from_pandas(fab.tests.drop(columns="value"), npartitions=2)
    with pytest.raises(SchemaError, match="lacks column.*value"):
        pat_limits(ddf)
    with pytest.raises(SchemaError, match="lacks column.*passed"):
        geo_pat(dd.from_pandas(fab.dies.drop(columns="passed"), npartitions=2))
