"""Dask scale-out gives exactly the in-memory results."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import yieldkit as yk
from yieldkit.errors import SchemaError

dd = pytest.importorskip("dask.dataframe")
from yieldkit.distributed import read_dies_dask, wafer_yield_dask  # noqa: E402


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    fab = yk.simulate_fab(n_lots=3, wafers_per_lot=4, retest_rate=0.03, random_state=12)
    root = tmp_path_factory.mktemp("ds") / "dies"
    pq.write_to_dataset(pa.Table.from_pandas(fab.dies, preserve_index=False), root, partition_cols=["lot_id"])
    return fab, root


def test_wafer_yield_dask_equals_in_memory(dataset):
    fab, root = dataset
    ddf = read_dies_dask(root)
    assert ddf.npartitions >= 3
    got = wafer_yield_dask(ddf, scheduler="synchronous")
    want = yk.wafer_yield(fab.dies)
    key = ["lot_id", "wafer_id"]
    got = got.sort_values(key).reset_index(drop=True)
    want = want.sort_values(key).reset_index(drop=True)[got.columns]
    pd.testing.assert_frame_equal(got, want, check_dtype=False)


def test_a_wafer_split_over_partitions_is_added_up():
    d = yk.read_dies(pd.DataFrame({"lot": ["L"] * 4, "wafer": ["1"] * 4, "x": [0, 1, 2, 3], "y": 0, "bin": [1, 1, 2, 1]}))
    ddf = dd.from_pandas(d, npartitions=2)
    w = wafer_yield_dask(ddf, scheduler="synchronous")
    assert w[["tested", "good"]].iloc[0].tolist() == [4, 3]


def test_bad_partition_raises_schema_error(tmp_path):
    raw = pd.DataFrame({"lot": ["L", "L"], "wafer": ["1", "1"], "x": [0, 1], "y": [0, 0], "bin": [1, -3]})
    p = tmp_path / "bad.parquet"
    raw.to_parquet(p)
    with pytest.raises(SchemaError, match="hbin"):
        read_dies_dask(p).compute(scheduler="synchronous")
    # a bad row beyond the rows sampled for the schema surfaces when the partition is computed
    good = pd.DataFrame({"lot": ["L"] * 200, "wafer": ["1"] * 200, "x": range(200), "y": 0, "bin": [1] * 199 + [-3]})
    good.to_parquet(p)
    ddf = read_dies_dask(p)
    with pytest.raises(SchemaError, match="hbin"):
        ddf.compute(scheduler="synchronous")
