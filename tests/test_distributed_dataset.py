"""Opening tables as Dask DataFrames (``open_table``) and wafer-aligned partitions (``align_wafers``)."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import yieldkit as yk
from yieldkit.errors import InputNotFoundError, ParseError, SchemaError, YieldkitValueError

dask = pytest.importorskip("dask")
dd = pytest.importorskip("dask.dataframe")
pytest.importorskip("distributed")
from yieldkit.distributed import align_wafers, dask_client, open_table  # noqa: E402
from yieldkit.distributed.dataset import ORDER_COL, wafer_partitions  # noqa: E402

KEY = ["lot_id", "wafer_id"]


@pytest.fixture(scope="module")
def fab():
    return yk.simulate_fab(n_lots=3, wafers_per_lot=3, retest_rate=0.05, random_state=4)


@pytest.fixture(scope="module")
def hive(fab, tmp_path_factory):
    root = tmp_path_factory.mktemp("hive") / "dies"
    pq.write_to_dataset(pa.Table.from_pandas(fab.dies, preserve_index=False), root, partition_cols=["lot_id"])
    return root


def _sync(ddf):
    return ddf.compute(scheduler="synchronous")


def _sorted(t: pd.DataFrame) -> pd.DataFrame:
    cols = [c for c in ("lot_id", "wafer_id", "die_x", "die_y", "test_seq") if c in t.columns]
    return t.sort_values(cols, kind="stable").reset_index(drop=True)


def test_hive_dataset_reads_like_read_dies(hive):
    got = open_table(hive)
    assert got.npartitions == 1  # three small lot directories in one partition
    assert str(got._meta["lot_id"].dtype) == str(yk.read_dies(hive)["lot_id"].dtype)  # hive keys: strings
    want = yk.read_dies(hive)
    pd.testing.assert_frame_equal(_sync(got)[want.columns].reset_index(drop=True), want)
    # one partition per lot when a partition holds fewer rows than a lot
    per_lot = open_table(hive, partition_rows=100)
    assert per_lot.npartitions == 3
    pd.testing.assert_frame_equal(_sync(per_lot)[want.columns].reset_index(drop=True), want)
    assert align_wafers(per_lot) is per_lot  # whole lot directories: known to be wafer-aligned


def test_glob_and_list_of_paths(hive):
    files = sorted(hive.rglob("*.parquet"))
    want = _sorted(yk.read_dies(hive))
    for src in (str(hive / "lot_id=*" / "*.parquet"), [str(f) for f in files], [hive]):
        got = _sync(open_table(src))
        pd.testing.assert_frame_equal(_sorted(got)[want.columns], want)


def test_dask_frame_with_categorical_keys(fab):
    raw = dd.from_pandas(fab.dies.assign(lot_id=fab.dies["lot_id"].astype("category")), npartitions=3)
    got = _sync(open_table(raw))
    assert not isinstance(got["lot_id"].dtype, pd.CategoricalDtype)
    assert got["lot_id"].tolist() == fab.dies["lot_id"].astype(str).tolist()


def test_pandas_is_cut_at_wafer_boundaries(fab):
    d = fab.dies
    got = open_table(d, partition_rows=2000)
    assert got.npartitions > 1
    assert not wafer_partitions(got).duplicated(KEY).any()
    pd.testing.assert_frame_equal(_sync(got).reset_index(drop=True), yk.read_dies(d).reset_index(drop=True))
    # interleaved wafers: grouped, the input order kept in the order column
    mixed = pd.concat([d.iloc[::2], d.iloc[1::2]], ignore_index=True)
    got = _sync(open_table(mixed, partition_rows=2000))
    assert ORDER_COL in got.columns
    back = got.sort_values(ORDER_COL).drop(columns=ORDER_COL).reset_index(drop=True)
    pd.testing.assert_frame_equal(back, yk.read_dies(mixed).reset_index(drop=True))


def test_missing_dataset_and_empty_glob(tmp_path):
    with pytest.raises(InputNotFoundError, match="nowhere"):
        open_table(tmp_path / "nowhere")
    with pytest.raises(InputNotFoundError, match="no file matches"):
        open_table(str(tmp_path / "lot_id=*" / "*.parquet"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputNotFoundError, match="holds no data files"):
        open_table(tmp_path / "empty")
    with pytest.raises(InputNotFoundError, match="missing.parquet"):
        open_table([str(tmp_path / "missing.parquet")])


def test_non_parquet_file_in_a_dataset_names_the_file(hive, tmp_path):
    import shutil

    root = tmp_path / "ds"
    shutil.copytree(hive, root)
    (root / "lot_id=L9").mkdir()
    (root / "lot_id=L9" / "notes.parquet").write_text("lot,wafer,x,y,bin\nL,1,0,0,1\n")
    with pytest.raises(ParseError, match=r"lot_id=L9.notes\.parquet.*not a readable Parquet file"):
        open_table(root)


def _write(root, lot, df):
    (root / f"lot_id={lot}").mkdir(parents=True, exist_ok=True)
    df.to_parquet(root / f"lot_id={lot}" / "part-0.parquet")


def test_partition_with_other_columns_names_its_file(tmp_path):
    base = pd.DataFrame({"wafer_id": ["1", "1"], "die_x": [0, 1], "die_y": [0, 0], "hbin": [1, 2]})
    root = tmp_path / "extra"
    _write(root, "A", base)
    _write(root, "B", base.assign(product="X"))
    with pytest.raises(SchemaError, match=r"lot_id=B.part-0\.parquet: the columns differ.*unexpected product"):
        _sync(open_table(root, partition_rows=1))
    root = tmp_path / "missing"
    _write(root, "A", base)
    _write(root, "B", base.drop(columns="hbin"))
    with pytest.raises(SchemaError, match=r"lot_id=B.part-0\.parquet.*hbin"):
        _sync(open_table(root, partition_rows=1))
    root = tmp_path / "bad"
    _write(root, "A", base)
    _write(root, "B", base.assign(hbin=[1, -3]))
    with pytest.raises(SchemaError, match=r"lot_id=B.part-0\.parquet.*hbin"):
        _sync(open_table(root))


def test_defects_and_wafers_kinds(fab, tmp_path):
    p = tmp_path / "defects.parquet"
    fab.defects.to_parquet(p)
    got = _sync(open_table(p, "defects", layout=fab.layout))
    want = yk.read_defects(p, layout=fab.layout)
    pd.testing.assert_frame_equal(got[want.columns], want)
    w = _sync(open_table(fab.wafers, "wafers"))
    assert len(w) == len(fab.wafers)
    with pytest.raises(YieldkitValueError, match="kind"):
        open_table(p, "bins")


@pytest.mark.parametrize("nparts", [1, 4, 11])
def test_align_wafers_pair(fab, nparts):
    dies = open_table(dd.from_pandas(fab.dies, npartitions=nparts, sort=False))
    defects = open_table(dd.from_pandas(fab.defects, npartitions=3, sort=False), "defects", layout=fab.layout)
    a, b = align_wafers(dies, defects, partition_rows=2000)
    assert a.npartitions == b.npartitions
    wd = wafer_partitions(a)
    assert not wd.duplicated(KEY).any()
    home = {(r.lot_id, r.wafer_id): r.part for r in wd.itertuples()}
    for r in wafer_partitions(b).itertuples():
        assert home[(r.lot_id, r.wafer_id)] == r.part
    d = _sync(a)
    assert len(d) == len(fab.dies) and len(_sync(b)) == len(fab.defects)
    # the input order survives the move
    if ORDER_COL in d.columns:
        back = d.sort_values(ORDER_COL).drop(columns=ORDER_COL).reset_index(drop=True)
        pd.testing.assert_frame_equal(back, yk.read_dies(fab.dies).reset_index(drop=True))


def test_dask_client_local_cluster(fab):
    with dask_client(workers=1, processes=False, threads_per_worker=1) as client:
        assert len(client.scheduler_info()["workers"]) == 1
        n = open_table(fab.dies).map_partitions(len).compute().sum()
    assert n == len(fab.dies)
    assert client.status == "closed"
    with pytest.raises(YieldkitValueError, match="either a scheduler"):
        with dask_client("tcp://127.0.0.1:1", workers=2):
            pass


def test_hive_keys_stay_text(fab, tmp_path):
    """Wafer ids such as "01" in hive directories are identifiers: kept as written, not read as numbers."""
    root = tmp_path / "by_wafer"
    pq.write_to_dataset(pa.Table.from_pandas(fab.dies, preserve_index=False), root, partition_cols=["lot_id", "wafer_id"])
    got = _sync(open_table(root))
    assert sorted(set(got["wafer_id"])) == sorted(set(fab.dies["wafer_id"].astype(str)))
    assert align_wafers(open_table(root, partition_rows=1000)).npartitions == 9  # one directory per wafer


def _per_group(df: pd.DataFrame, keys: list[str]):
    return dd.concat([dd.from_pandas(g.reset_index(drop=True), npartitions=1, sort=False)
                      for _, g in df.groupby(keys, sort=False)])


def _same_partitions(got, want, n: int) -> None:
    assert got.npartitions == want.npartitions == n
    for i in range(n):
        pd.testing.assert_frame_equal(_sync(got.get_partition(i)), _sync(want.get_partition(i)), check_categorical=False)


@pytest.mark.parametrize("layout", ["by_wafer", "by_lot", "rows", "stray"])
def test_defects_gathered_as_the_shuffle_moves_them(fab, layout):
    """Defects moved to the die partitions from the partition pairs their wafers connect: the
    same partitions, rows, order and order column as the general shuffle, whether the defect
    partitions follow the wafers, span several die partitions, cut wafers, or hold wafers
    without dies."""
    from yieldkit.distributed import dataset as ds_mod

    dies = open_table(_per_group(fab.dies, ["lot_id"] if layout == "by_wafer" else KEY))
    table = fab.defects.copy()
    if layout == "stray":
        table["wafer_id"] = table["wafer_id"].astype(str).where(table.index % 7 > 0, "no-such-wafer")
    if layout in ("by_wafer", "stray"):
        raw = _per_group(table, KEY)
    elif layout == "by_lot":
        raw = _per_group(table, ["lot_id"])
    else:
        raw = dd.from_pandas(table, npartitions=4, sort=False)
    defects = open_table(raw, "defects", layout=fab.layout)
    mapping = wafer_partitions(dies).rename(columns={"part": ds_mod._PART_COL})
    n = dies.npartitions
    got = ds_mod._gather(defects, mapping, n)
    _same_partitions(got, ds_mod._shuffle_to(defects, mapping, n), n)
    assert sum(len(_sync(got.get_partition(i))) for i in range(n)) == len(table)
    if layout == "by_wafer":  # each defect partition read whole into its lot's partition
        for i in range(n):
            assert set(_sync(got.get_partition(i))["lot_id"].astype(str)) == {fab.dies["lot_id"].unique()[i]}


def test_gather_of_an_empty_defect_table(fab):
    from yieldkit.distributed import dataset as ds_mod

    dies = open_table(_per_group(fab.dies, ["lot_id"]))
    empty = open_table(dd.from_pandas(fab.defects.iloc[:0], npartitions=1), "defects", layout=fab.layout)
    mapping = wafer_partitions(dies).rename(columns={"part": ds_mod._PART_COL})
    got = ds_mod._gather(empty, mapping, dies.npartitions)
    assert got.npartitions == dies.npartitions and len(_sync(got)) == 0
    assert ds_mod.ORDER_COL in got.columns
