"""The parametric, PAT, similar-wafer and defects-only sections of ``analyze(engine="dask")``.

The reference is the in-memory engine on the same tables: the test results of ``yieldkit
convert`` (hive-partitioned by lot and wafer, values float32 as STDF stores them) read into
memory, against the Dask engine on the datasets themselves (a lot spans partitions, so the
tables are moved lot-aligned and then test-aligned) and on partitions cutting through wafers.
Counts must be equal, floats to 1e-9 relative.
"""

from __future__ import annotations

import warnings

import pandas as pd
import pytest

import yieldkit as yk
from yieldkit.errors import InputNotFoundError, ParseError, SchemaError, YieldkitValueError

dask = pytest.importorskip("dask")
dd = pytest.importorskip("dask.dataframe")

LOTS = ["L0001", "L0002", "L0003"]


def _equal(a: pd.DataFrame, b: pd.DataFrame, what: str) -> None:
    pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True), check_exact=False, rtol=1e-9,
                                  atol=0, obj=what)


def _dask_analyze(dies, **kw):
    with dask.config.set(scheduler="threads"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return yk.analyze(dies, engine="dask", **kw)


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """Three lots written as STDF and converted to die and test datasets; lot 2 shifted in test 1001;
    latent parts drift in two tests each (dies inked for several tests)."""
    from yieldkit.cli import main
    from yieldkit.io.partitioned import read_partitioned
    from yieldkit.io.stdf.writer import write_stdf
    from yieldkit.simulate import LatentSpec

    fab = yk.simulate_fab(n_lots=3, wafers_per_lot=4, retest_rate=0.02, random_state=21,
                          latent=LatentSpec(n_tests=4, rate=0.01, drift_fraction=1.0, n_drift_tests=2))
    t = fab.tests
    sd = t.loc[t["test_num"] == 1001, "value"].std()
    t.loc[(t["lot_id"] == LOTS[1]) & (t["test_num"] == 1001), "value"] += 2 * sd
    root = tmp_path_factory.mktemp("converted")
    for lot, d in fab.dies.groupby("lot_id", sort=True):
        f = root / f"{lot}.stdf"
        write_stdf(d.reset_index(drop=True), f, layout=fab.layout, tests=t[t["lot_id"] == lot].reset_index(drop=True))
        assert main(["-q", "convert", str(f), "-o", str(root / lot) + "/"]) == 0
    dies = pd.concat([yk.read_dies(root / lot) for lot in LOTS], ignore_index=True)
    tests = pd.concat([read_partitioned(root / f"{lot}_tests") for lot in LOTS], ignore_index=True)
    assert tests["value"].dtype == "float32"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mem = yk.analyze(dies, tests=tests)
    return root, dies, tests, mem


def _same_parametric(mem, got) -> None:
    a, b = mem.parametric, got.parametric
    for name in ("capability", "worst", "shifts", "association"):
        _equal(getattr(a, name), getattr(b, name), name)
    # the rows of the worst test: Dask reads text columns as Arrow strings
    pd.testing.assert_frame_equal(a.worst_results, b.worst_results, check_dtype=False, rtol=1e-9)
    assert (b.shift_tested, b.n_tests) == (a.shift_tested, a.n_tests)
    p, q = mem.pat, got.pat
    assert q.rules == p.rules
    for name in ("loss_by_rule", "loss_by_test"):
        _equal(getattr(p.result, name), getattr(q.result, name), name)
    assert (q.result.n_good_before, q.result.n_good_after) == (p.result.n_good_before, p.result.n_good_after)
    # the Dask screen keeps the inked dies: the in-memory table's inked rows, in input order
    pd.testing.assert_frame_equal(p.result.inked.reset_index(drop=True), q.result.table)
    assert len(q.limits) == len(p.limits)
    for x, y in zip(p.limits, q.limits, strict=True):
        _equal(x.table, y.table, "limits")
        assert (y.method, y.by, y.rule) == (x.method, x.by, x.rule)
    assert got.notes == mem.notes


def test_converted_datasets_equal_in_memory(converted):
    root, _, _, mem = converted
    a = mem.parametric
    assert a.shifts is not None and len(a.shifts) >= 1 and set(a.shifts["lot_id"]) == {LOTS[1]}
    assert len(a.association) and mem.pat.result.n_good_before > mem.pat.result.n_good_after
    # dies inked for several tests: their pat_tests order follows the whole table, not the lot
    assert mem.pat.result.inked["pat_tests"].astype(str).str.contains(";").sum() > 10
    got = _dask_analyze([str(root / lot) for lot in LOTS], tests=[str(root / f"{lot}_tests") for lot in LOTS],
                        dask_options={"partition_rows": 1500})  # partitions of a few wafers: lots span them
    _same_parametric(mem, got)


def test_partitions_cutting_through_wafers_equal_in_memory(converted):
    _, dies, tests, mem = converted
    got = _dask_analyze(dd.from_pandas(dies, npartitions=7, sort=False),
                        tests=dd.from_pandas(tests, npartitions=9, sort=False), dask_options={"partition_rows": 2000})
    _same_parametric(mem, got)


def test_lots_with_dies_only_or_tests_only_equal_in_memory(converted):
    """Results of a lot without dies stay together (one limits row per test); dies without results."""
    _, dies, tests, _ = converted
    d = dies[dies["lot_id"] != LOTS[2]].reset_index(drop=True)
    t = tests[tests["lot_id"] != LOTS[1]].reset_index(drop=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mem = yk.analyze(d, tests=t)
    assert set(mem.pat.limits[0].table["lot_id"]) == {LOTS[0], LOTS[2]}
    got = _dask_analyze(dd.from_pandas(d, npartitions=4, sort=False), tests=dd.from_pandas(t, npartitions=5, sort=False),
                        dask_options={"partition_rows": 1000})
    _same_parametric(mem, got)


def test_pandas_test_table_sorted_by_test_equals_in_memory():
    """An in-memory test table whose wafers are not contiguous is regrouped by wafer on the way in;
    the results (and the rows of the worst test) keep its order."""
    from yieldkit.simulate import LatentSpec

    fab = yk.simulate_fab(n_lots=2, wafers_per_lot=3, retest_rate=0.02, random_state=4, latent=LatentSpec(n_tests=3))
    tests = fab.tests.sort_values("test_num", kind="stable").reset_index(drop=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mem = yk.analyze(fab.dies, tests=tests)
    _same_parametric(mem, _dask_analyze(fab.dies, tests=tests, dask_options={"partition_rows": 2000}))


def test_public_functions_equal_in_memory(converted):
    from yieldkit.distributed import screen_dask, shift_dask, test_bin_association_dask
    from yieldkit.parametric import shift, test_bin_association
    from yieldkit.pat import screen

    _, dies, tests, _ = converted
    ddies = dd.from_pandas(dies, npartitions=5, sort=False)
    dtests = dd.from_pandas(tests, npartitions=6, sort=False)
    with dask.config.set(scheduler="threads"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = shift(tests, tests, effect=0.5)
        got = shift_dask(dtests, effect=0.5)
        _equal(want.table, got.table, "shift")
        assert got.n_alarms == want.n_alarms >= 1
        _equal(test_bin_association(dies, tests), test_bin_association_dask(ddies, dtests), "association")
        s_mem = screen(dies, tests, rules=("dpat", "gdbn"))
        s_dask = screen_dask(ddies, dtests, rules=("dpat", "gdbn"))
    _equal(s_mem.result.loss_by_rule, s_dask.result.loss_by_rule, "loss_by_rule")
    _equal(s_mem.result.loss_by_test, s_dask.result.loss_by_test, "loss_by_test")
    pd.testing.assert_frame_equal(s_mem.result.inked.reset_index(drop=True), s_dask.result.table)
    with pytest.raises(YieldkitValueError, match="by.*lot_id"):
        screen_dask(ddies, dtests, by=())


def test_dies_not_identified_by_their_keys(converted):
    """Test results without test_seq do not say which test of a retested die they belong to: part_index
    (the part's row in the die table, in dataset order) matches them, in memory and on Dask alike, also
    when the partitions cut through the lot; without part_index both refuse (analyze on Dask leaves
    the association out with a note)."""
    from yieldkit.distributed import test_bin_association_dask
    from yieldkit.parametric import test_bin_association

    _, dies, tests, _ = converted
    lot = dies[dies["lot_id"] == LOTS[0]].reset_index(drop=True)
    t = tests[tests["lot_id"] == LOTS[0]].drop(columns="test_seq").reset_index(drop=True)
    assert lot.duplicated(["wafer_id", "die_x", "die_y"]).any()
    keys = ["wafer_id", "die_x", "die_y"]
    at = lot.loc[t["part_index"].to_numpy(), keys].reset_index(drop=True)
    assert (at.astype(str) == t[keys].astype(str)).all().all()  # part_index is the row in this table
    want = test_bin_association(lot, t)
    assert len(want)
    with dask.config.set(scheduler="threads"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for n_dies, n_tests in ((1, 1), (2, 3), (5, 2)):
            got = test_bin_association_dask(dd.from_pandas(lot, npartitions=n_dies),
                                            dd.from_pandas(t, npartitions=n_tests))
            _equal(want, got, f"association ({n_dies}, {n_tests} partitions)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mem = yk.analyze(lot, tests=t)
    assert len(mem.parametric.association)
    got = _dask_analyze(dd.from_pandas(lot, npartitions=3), tests=dd.from_pandas(t, npartitions=2),
                        dask_options={"partition_rows": 500})
    assert mem.parametric.shifts is None and got.parametric.shifts is None  # one lot
    for name in ("capability", "worst", "association"):
        _equal(getattr(mem.parametric, name), getattr(got.parametric, name), name)
    assert got.notes == mem.notes
    bare = t.drop(columns="part_index")
    with pytest.raises(SchemaError, match="no part_index"):
        test_bin_association(lot, bare)
    with pytest.raises(SchemaError, match="do not identify a die and the tests have no part_index"):
        test_bin_association_dask(dd.from_pandas(lot, npartitions=2), dd.from_pandas(bare, npartitions=2))
    got = _dask_analyze(dd.from_pandas(lot, npartitions=2), tests=dd.from_pandas(bare, npartitions=2))
    assert len(got.parametric.association) == 0 and len(got.parametric.capability)
    assert any(n.startswith("test-bin association: the die keys") for n in got.notes)


def test_retests_matched_on_part_index_across_lots(converted):
    """Three lots, partitions cutting through lots and wafers: part_index numbers the parts of the whole
    die table (dataset order), and the Dask association equals the in-memory one."""
    from yieldkit.distributed import test_bin_association_dask
    from yieldkit.parametric import test_bin_association

    _, dies, tests, _ = converted
    start = dies.groupby("lot_id", sort=False).size().cumsum().shift(fill_value=0)
    t = tests.drop(columns="test_seq").reset_index(drop=True)
    t["part_index"] = t["part_index"].to_numpy() + start.reindex(t["lot_id"].astype(str)).to_numpy()
    want = test_bin_association(dies, t)
    assert len(want)
    with dask.config.set(scheduler="threads"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got = test_bin_association_dask(dd.from_pandas(dies, npartitions=7, sort=False),
                                        dd.from_pandas(t, npartitions=5, sort=False), partition_rows=1500)
    _equal(want, got, "association")


def test_bad_test_input_raises_the_in_memory_errors(converted, tmp_path):
    root, _, _, _ = converted
    dies = str(root / LOTS[0])
    with pytest.raises(InputNotFoundError, match="nowhere"):
        _dask_analyze(dies, tests=str(tmp_path / "nowhere"))
    bad = tmp_path / "bad.parquet"
    bad.write_text("lot,wafer\n")
    with pytest.raises(ParseError, match="bad.parquet"):
        _dask_analyze(dies, tests=str(bad))
    part = tmp_path / "t" / "lot_id=L0001" / "wafer_id=01"
    part.mkdir(parents=True)
    pd.DataFrame({"die_x": [0], "die_y": [0], "test_num": [1000], "result": [1.0]}).to_parquet(part / "p.parquet")
    with pytest.raises(SchemaError, match=r"wafer_id=01.*p\.parquet.*lacks column.*value"):
        _dask_analyze(dies, tests=str(tmp_path / "t"))


# ---------------------------------------------------------------------------------------
# similar wafers
# ---------------------------------------------------------------------------------------
def test_similar_gallery_equals_in_memory(tmp_path):
    from yieldkit.classify import SimilarWafers
    from yieldkit.classify.grid import dies_to_grids

    past = yk.simulate_fab(n_lots=2, wafers_per_lot=4, signatures={1: "edge-ring", 5: "edge-ring"}, random_state=3)
    ids, grids = dies_to_grids(past.dies)
    meta = ids[["lot_id", "wafer_id"]].assign(cause=["etch chamber B" if i in (1, 5) else "" for i in range(len(ids))])
    gal = tmp_path / "g.parquet"
    SimilarWafers(representation="features").fit(grids, meta).save(gal)
    fab = yk.simulate_fab(n_lots=3, wafers_per_lot=4, signatures={1: "edge-ring", 5: "center", 9: "edge-ring"},
                          random_state=8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mem = yk.analyze(fab.dies, layout=fab.layout, similar_gallery=gal)
    assert mem.similar is not None and len(mem.similar[["lot_id", "wafer_id"]].drop_duplicates()) >= 3
    for n in (1, 5):
        got = _dask_analyze(dd.from_pandas(fab.dies, npartitions=n, sort=False), layout=fab.layout,
                            similar_gallery=SimilarWafers.load(gal), dask_options={"partition_rows": 3000})
        pd.testing.assert_frame_equal(mem.similar, got.similar)
    assert _dask_analyze(dd.from_pandas(fab.dies, npartitions=2), layout=fab.layout).similar is None


# ---------------------------------------------------------------------------------------
# defects without dies
# ---------------------------------------------------------------------------------------
_DASK_ONLY = "defects: the Dask engine keeps"


def _same_defects_only(mem, got, shown: int | None = None) -> None:
    assert str(got.summary) == str(mem.summary)  # NaN yields
    for name in ("defect_density", "defect_pareto", "stacked", "clustering", "zonal_density"):
        a, b = getattr(mem, name), getattr(got, name)
        assert (a is None) == (b is None), name
        if a is not None:
            _equal(a, b, name)
    _equal(mem.u_chart.table, got.u_chart.table, "u_chart")
    assert got.clustering_tested == mem.clustering_tested
    assert [n for n in got.notes if not n.startswith(_DASK_ONLY)] == mem.notes
    assert got.p_chart is None and got.kill_ratios is None
    if shown is None:  # Dask reads text columns as Arrow strings (read_klarf's Categoricals too)
        pd.testing.assert_frame_equal(mem.defects, got.defects, check_dtype=False, check_categorical=False)
    else:  # the defects of the wafers the report's defect maps show
        assert got.defects.groupby(["lot_id", "wafer_id"]).ngroups == shown
        assert any(n.startswith(_DASK_ONLY) for n in got.notes)


@pytest.fixture(scope="module")
def inspection():
    return yk.simulate_fab(n_lots=3, wafers_per_lot=4, random_state=8)


def _mem(*args, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return yk.analyze(None, *args, **kw)


def test_defects_only_equals_in_memory(inspection, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    fab = inspection
    root = tmp_path / "defects"
    pq.write_to_dataset(pa.Table.from_pandas(fab.defects, preserve_index=False), root, partition_cols=["lot_id"])
    defects = yk.read_defects(root)
    mem = _mem(defects, layout=fab.layout)
    assert mem.zonal_density is not None and mem.clustering_tested == 12
    _same_defects_only(mem, _dask_analyze(None, defects=str(root), layout=fab.layout))
    _same_defects_only(mem, _dask_analyze(None, defects=str(root), layout=fab.layout, dask_options={"max_maps": 5}),
                       shown=5)
    # positions only in the wafer frame, partitions cutting through wafers
    xy = defects.drop(columns=["die_x", "die_y", "xrel_um", "yrel_um"])
    _same_defects_only(_mem(xy, layout=fab.layout),
                       _dask_analyze(None, defects=dd.from_pandas(xy, npartitions=5, sort=False), layout=fab.layout))
    # no layout: no area, no zones
    _same_defects_only(_mem(defects), _dask_analyze(None, defects=dd.from_pandas(defects, npartitions=3, sort=False)))


def test_defects_only_with_a_sample_plan_equals_in_memory(inspection):
    fab = inspection
    plan = fab.dies[["lot_id", "wafer_id", "die_x", "die_y"]].iloc[::2]
    listed = pd.concat([fab.wafers, pd.DataFrame({"lot_id": ["L9"], "wafer_id": ["01"]})], ignore_index=True)
    mem = _mem(fab.defects, listed, fab.layout, inspected_dies=plan)
    assert any("lie on no inspected die" in n for n in mem.notes) and len(mem.defect_density) == 13
    got = _dask_analyze(None, defects=dd.from_pandas(fab.defects, npartitions=4, sort=False), wafers=listed,
                        layout=fab.layout, inspected_dies=plan)
    _same_defects_only(mem, got)


def test_defects_only_of_a_real_klarf(shared_samples):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        k = yk.read_klarf(shared_samples / "klarf" / "QUU_NUU.000")  # three wafers of one lot
    layout = next(iter(k.layouts.values()))
    mem = _mem(k.defects, layout=layout, inspected_dies=k.inspected_dies, inspected_wafers=k.wafers)
    assert mem.summary["defects"] == 187 and mem.defect_pareto is not None
    got = _dask_analyze(None, defects=dd.from_pandas(k.defects, npartitions=2, sort=False), layout=layout,
                        inspected_dies=k.inspected_dies, inspected_wafers=k.wafers)
    _same_defects_only(mem, got)


def test_defects_only_bad_input(tmp_path):
    with pytest.raises(InputNotFoundError, match="nowhere"):
        _dask_analyze(None, defects=str(tmp_path / "nowhere"))
    bad = tmp_path / "bad.parquet"
    bad.write_text("x\n")
    with pytest.raises(ParseError, match="bad.parquet"):
        _dask_analyze(None, defects=str(bad))
    with pytest.raises(YieldkitValueError, match="neither dies nor defects"):
        _dask_analyze(None)


def test_defects_only_report_renders(inspection, tmp_path):
    from yieldkit.report import build_report

    fab = inspection
    got = _dask_analyze(None, defects=dd.from_pandas(fab.defects, npartitions=3, sort=False), layout=fab.layout,
                        dask_options={"max_maps": 3})
    html = build_report(got, max_maps=3)
    assert '<section id="defect-density"' in html and html.count('alt="wafer map L') == 3
