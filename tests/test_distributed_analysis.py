"""``analyze(engine="dask")`` gives the in-memory results, section by section.

The reference is ``analyze`` in memory on the same tables; the Dask engine runs on partitions
that keep lots whole (a hive dataset by lot), that split lots and wafers (a shuffle), on one
partition and with empty partitions. Counts must be equal, floats to 1e-9 relative.
"""

from __future__ import annotations

import warnings

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import yieldkit as yk
from yieldkit.errors import InputNotFoundError, ParseError, SchemaError

dask = pytest.importorskip("dask")
dd = pytest.importorskip("dask.dataframe")
pytest.importorskip("distributed")

# every die-derived section the Dask engine computes
FRAMES = ["wafer_yield", "lot_yield", "bin_pareto", "first_pass_bin_pareto", "retest", "stacked", "zonal",
          "patterns", "pattern_lots", "commonality"]


def _equal(a: pd.DataFrame, b: pd.DataFrame, what: str) -> None:
    pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True), check_exact=False, rtol=1e-9,
                                  atol=0, obj=what)


# and those from the defect table (yieldkit.distributed.defects)
DEFECT_FRAMES = ["defect_pareto", "defect_pareto_kill", "models", "dppm"]


def _same(mem, got, frames=FRAMES) -> None:
    assert got.summary == mem.summary
    for name in frames:
        _equal(getattr(mem, name), getattr(got, name), name)
    for name in DEFECT_FRAMES:
        a, b = getattr(mem, name), getattr(got, name)
        assert (a is None) == (b is None), name
        if a is not None:
            _equal(a, b, name)
    for name in ("kill_ratios", "u_chart"):
        a, b = getattr(mem, name), getattr(got, name)
        assert (a is None) == (b is None), name
        if a is not None:
            _equal(a.table, b.table, name)
    assert got.u_chart_note == mem.u_chart_note
    dask_only = "final dies: the Dask engine"
    assert [n for n in got.notes if not n.startswith(dask_only)] == mem.notes
    assert got.zonal_tested == mem.zonal_tested
    assert got.clustering_tested == mem.clustering_tested
    _equal(mem.p_chart.table, got.p_chart.table, "p_chart")
    assert got.p_chart.sigma_z == pytest.approx(mem.p_chart.sigma_z, rel=1e-9)


def _dask_analyze(dies, **kw):
    with dask.config.set(scheduler="threads"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return yk.analyze(dies, engine="dask", **kw)


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    """10^6 die rows with retests and spatial signatures, analysed once in memory."""
    fab = yk.simulate_fab(n_lots=44, wafers_per_lot=25, retest_rate=0.02, signatures={0: "edge-ring", 3: "center"},
                          signature_rate=0.05, random_state=3)
    assert len(fab.dies) >= 10**6
    root = tmp_path_factory.mktemp("big") / "dies"
    pq.write_to_dataset(pa.Table.from_pandas(fab.dies, preserve_index=False), root, partition_cols=["lot_id"])
    droot = root.parent / "defects"
    pq.write_to_dataset(pa.Table.from_pandas(fab.defects, preserve_index=False), droot, partition_cols=["lot_id"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mem = yk.analyze(yk.read_dies(root), yk.read_defects(droot), fab.wafers, fab.layout, fab.bin_names)
    assert mem.models is not None and mem.kill_ratios is not None and mem.u_chart is not None
    return fab, root, mem


def test_hive_dataset_by_lot_equals_in_memory(big):
    fab, root, mem = big
    got = _dask_analyze(str(root), defects=str(root.parent / "defects"), wafers=fab.wafers, layout=fab.layout,
                        bin_names=fab.bin_names, dask_options={"partition_rows": 300_000})
    _same(mem, got)
    # more wafers than the gallery shows: final dies of the 200 wafers of lowest yield, in input order
    shown = mem.wafer_yield.nsmallest(200, "yield")[["lot_id", "wafer_id"]].astype(str)
    f = mem.final_dies
    keep = f[["lot_id", "wafer_id"]].astype(str).merge(shown.assign(_s=1), how="left")["_s"].notna().to_numpy()
    _equal(f[keep], got.final_dies, "final_dies")
    assert any("200 wafer(s) of lowest yield" in n for n in got.notes)
    assert len(mem.zonal) and len(mem.patterns) == len(mem.wafer_yield)


def test_partitions_splitting_lots_and_wafers_equal_in_memory(big):
    fab, root, mem = big
    d = yk.read_dies(root)
    raw = dd.from_pandas(d, npartitions=13, sort=False)  # 13 cuts through wafers: a shuffle aligns them
    defects = dd.from_pandas(yk.read_defects(root.parent / "defects"), npartitions=7, sort=False)
    got = _dask_analyze(raw, defects=defects, wafers=fab.wafers, layout=fab.layout, bin_names=fab.bin_names,
                        dask_options={"partition_rows": 250_000})
    _same(mem, got)


@pytest.fixture(scope="module")
def small():
    fab = yk.simulate_fab(n_lots=3, wafers_per_lot=4, retest_rate=0.05, signatures={0: "edge-ring", 5: "center"},
                          random_state=7)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mem = yk.analyze(fab.dies, None, fab.wafers, fab.layout, fab.bin_names)
    return fab, mem


def test_one_partition_and_no_layout(small):
    fab, _ = small
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mem = yk.analyze(fab.dies, fab.defects, fab.wafers, None, fab.bin_names)  # layout inferred from the dies
    got = _dask_analyze(dd.from_pandas(fab.dies, npartitions=1), defects=dd.from_pandas(fab.defects, npartitions=1),
                        wafers=fab.wafers, bin_names=fab.bin_names)
    assert mem.kill_ratios is not None and mem.models is None  # no die area without a layout
    _same(mem, got)
    _equal(mem.final_dies, got.final_dies, "final_dies")


def test_empty_partitions(small):
    fab, mem = small
    raw = dd.from_pandas(fab.dies, npartitions=5, sort=False)
    holey = raw.map_partitions(lambda p, partition_info=None: p.iloc[:0] if partition_info["number"] % 2 else p,
                               meta=raw._meta)
    # the reference: the rows of the partitions kept
    parts = [raw.get_partition(i).compute() for i in range(raw.npartitions)]
    ref = pd.concat([p for i, p in enumerate(parts) if i % 2 == 0], ignore_index=True)
    assert 0 < len(ref) < len(fab.dies)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mem = yk.analyze(ref, None, fab.wafers, fab.layout, fab.bin_names)
    got = _dask_analyze(holey, wafers=fab.wafers, layout=fab.layout, bin_names=fab.bin_names)
    _same(mem, got)


def test_clustering_section_equal_on_any_partitioning(small):
    """The permutation p-values of a wafer do not depend on the other wafers of the call."""
    fab, mem = small
    for n in (12, 3, 1):
        got = _dask_analyze(dd.from_pandas(fab.dies, npartitions=n, sort=False), wafers=fab.wafers,
                            layout=fab.layout, dask_options={"partition_rows": 1})
        assert len(mem.clustering)
        _equal(mem.clustering, got.clustering, "clustering")


def test_report_renders_from_the_dask_result(small, tmp_path):
    fab, mem = small
    got = _dask_analyze(dd.from_pandas(fab.dies, npartitions=3, sort=False), wafers=fab.wafers, layout=fab.layout,
                        bin_names=fab.bin_names, defects=dd.from_pandas(fab.defects, npartitions=2))
    assert got.summary["defects"] == len(fab.defects)
    assert got.kill_ratios is not None and got.models is not None and got.dppm is not None
    from yieldkit.report import build_report

    html = build_report(got, max_maps=4)
    assert "Gallery (4 of 12 wafers" in html
    assert "Kill ratio" in html or "kill ratio" in html
    assert f"{100 * mem.summary['yield']:.2f}%" in html


def test_bad_input_raises_the_in_memory_errors(tmp_path):
    with pytest.raises(InputNotFoundError, match="nowhere"):
        yk.analyze(str(tmp_path / "nowhere"), engine="dask")
    bad = tmp_path / "bad.parquet"
    bad.write_text("lot,wafer\n")
    with pytest.raises(ParseError, match="bad.parquet"):
        yk.analyze(str(bad), engine="dask")
    root = tmp_path / "ds"
    for lot, extra in (("A", {}), ("B", {"product": "X"})):
        (root / f"lot_id={lot}").mkdir(parents=True)
        pd.DataFrame({"wafer_id": ["1", "1"], "die_x": [0, 1], "die_y": [0, 0], "hbin": [1, 2], **extra}).to_parquet(
            root / f"lot_id={lot}" / "part.parquet")
    with pytest.raises(SchemaError, match=r"lot_id=B.*part\.parquet.*unexpected product"):
        _dask_analyze(str(root))
    with pytest.raises(Exception, match="engine"):
        yk.analyze(pd.DataFrame(), engine="spark")


def test_cli_report_on_a_local_cluster(small, tmp_path):
    from yieldkit.cli import main

    fab, mem = small
    root = tmp_path / "dies"
    pq.write_to_dataset(pa.Table.from_pandas(fab.dies, preserve_index=False), root, partition_cols=["lot_id"])
    defects = tmp_path / "defects.parquet"
    fab.defects.to_parquet(defects)
    out = tmp_path / "r.html"
    assert main(["-q", "report", str(root), "--defects", str(defects), "--engine", "dask", "--workers", "1",
                 "--memory-limit", "2GiB", "-o", str(out), "--max-maps", "3"]) == 0
    html = out.read_text()
    assert "Gallery (3 of 12 wafers" in html
    assert f">{len(fab.defects):,}<" in html  # the defect count of the summary
    assert main(["-q", "report", str(root), "--workers", "2", "-o", str(out)]) == 1  # needs --engine dask


def test_parametric_capability_on_dask(small, rng):
    """Capability, the worst tests and their results equal the in-memory parametric section."""
    from yieldkit.parametric import parametric_section

    fab, _ = small
    dies = yk.final_results(fab.dies).drop(columns="test_seq")
    final = dies[["lot_id", "wafer_id", "die_x", "die_y"]]
    parts = [final.assign(test_num=t, test_name=f"T{t}", units="V", value=rng.normal(t / 10, 0.1, len(final)),
                          lo_limit=t / 10 - 0.3 - t / 100, hi_limit=t / 10 + 0.4) for t in (10, 20, 30)]
    tests = pd.concat(parts, ignore_index=True).sort_values(["lot_id", "wafer_id"], kind="stable")
    tests = tests.reset_index(drop=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = parametric_section(dies, tests)
    got = _dask_analyze(dd.from_pandas(dies, npartitions=2, sort=False), layout=fab.layout,
                        tests=dd.from_pandas(tests, npartitions=3, sort=False)).parametric
    _equal(want.capability, got.capability, "capability")
    _equal(want.worst, got.worst, "worst")
    # the rows of the Dask test table: Dask turned its text columns into Arrow strings on the way in
    pd.testing.assert_frame_equal(want.worst_results, got.worst_results, check_dtype=False, rtol=1e-9)
    assert got.n_tests == want.n_tests == 3
