"""End to end: a lot written by write_stdf with PTRs -> read_stdf(tests=True) -> capability, shift,
association -> plots, the report's parametric section and ``yieldkit parametric``."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import yieldkit as yk
from yieldkit.cli import main
from yieldkit.io.stdf import read_stdf, write_stdf
from yieldkit.parametric import capability, shift, test_bin_association

#: (test_num, name, units, lo, hi, mean, sigma)
_TESTS = [(100, "vdd_leak", "nA", np.nan, 50.0, 20.0, 5.0),
          (200, "ring_osc", "MHz", 480.0, 520.0, 500.0, 8.0),
          (300, "idd_q", "uA", 1.0, 9.0, 5.0, 0.8)]


def _lot_with_tests(seed: int, lot: str, offset: float = 0.0, wafers: int = 2) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A simulated lot and its parametric results: bin-3 (parametric) dies leak more and draw
    more current; failing dies stop after test 100, so only some of them ran tests 200 and 300."""
    rng = np.random.default_rng(seed)
    dies = yk.simulate_fab(n_lots=1, wafers_per_lot=wafers, random_state=seed).dies.assign(lot_id=lot)
    n = len(dies)
    bad = (dies["hbin"] == 3).to_numpy()
    rows = []
    for num, name, units, lo, hi, mu, sd in _TESTS:
        v = rng.normal(mu + offset * sd, sd, n)
        if num in (100, 300):
            v = v + bad * 2.5 * sd
        ran = np.ones(n, bool) if num == 100 else (dies["passed"].to_numpy() | (rng.random(n) < 0.6))
        passed = ~((v < lo) | (v > hi))
        rows.append(dies.loc[ran, ["lot_id", "wafer_id", "die_x", "die_y"]].assign(
            test_num=num, test_name=name, units=units, lo_limit=lo, hi_limit=hi, value=v[ran], passed=passed[ran]))
    tests = pd.concat(rows, ignore_index=True)
    return dies, tests


@pytest.fixture
def datalog(tmp_path):
    dies, tests = _lot_with_tests(3, "LOTA")
    p = tmp_path / "lota.stdf"
    write_stdf(dies, p, tests=tests)
    return p, dies, tests


def test_stdf_round_trip_to_capability_and_association(datalog):
    p, dies, tests = datalog
    f = read_stdf(p, tests=True)
    t = f.tests
    assert len(t) == len(tests) and set(t["test_num"]) == {100, 200, 300}
    cap = capability(t).table
    assert cap["test_num"].tolist() == [100, 200, 300] and (cap["lot_id"] == "LOTA").all()
    # equal to the capability of the values as written (float32 in STDF)
    ref = capability(tests.assign(value=tests["value"].astype(np.float32).astype(float),
                                  lo_limit=tests["lo_limit"].astype(np.float32).astype(float),
                                  hi_limit=tests["hi_limit"].astype(np.float32).astype(float))).table
    np.testing.assert_allclose(cap["cpk"], ref["cpk"], rtol=1e-12)
    assert cap.loc[cap.test_num == 100, "cp"].isna().all() and cap.loc[cap.test_num == 100, "cpu"].notna().all()
    assert cap["test_name"].tolist() == ["vdd_leak", "ring_osc", "idd_q"] and cap["units"].tolist() == ["nA", "MHz", "uA"]
    a = test_bin_association(f.dies, t)
    top3 = a[a["bin"] == 3].iloc[0]
    assert top3["test_num"] in (100, 300) and top3["auc"] > 0.9
    ro = a[(a["bin"] == 3) & (a["test_num"] == 200)].iloc[0]
    assert ro["separation"] < 0.3  # ring_osc does not tell bin 3 from good dies
    # only the dies that ran the test count
    n_ran = (tests.test_num == 300).sum()
    r300 = a[(a.test_num == 300)]
    good_300 = int(tests[(tests.test_num == 300)].merge(dies, on=["lot_id", "wafer_id", "die_x", "die_y"])["passed_y"].sum())
    assert (r300["n_good"] == good_300).all() and r300["n_fail"].sum() == n_ran - good_300


def test_shift_between_two_written_lots(tmp_path):
    dies_a, tests_a = _lot_with_tests(4, "LOTA")
    dies_b, tests_b = _lot_with_tests(5, "LOTB", offset=1.5)
    ta, tb = (tmp_path / "a.stdf"), (tmp_path / "b.stdf")
    write_stdf(dies_a, ta, tests=tests_a)
    write_stdf(dies_b, tb, tests=tests_b)
    both = pd.concat([read_stdf(ta, tests=True).tests, read_stdf(tb, tests=True).tests], ignore_index=True)
    ref = read_stdf(ta, tests=True).tests
    r = shift(both, ref.drop(columns="lot_id")).table
    alarms = r[r["alarm"]]
    assert set(alarms["lot_id"]) == {"LOTB"} and set(alarms["test_num"]) == {100, 200, 300}
    assert (alarms["shift_sigma"] > 1.0).all()


def test_report_and_plots(datalog, tmp_path):
    from yieldkit.plotting.parametric import ParametricMapDisplay, plot_capability, plot_test_distribution
    from yieldkit.report import build_report

    p, dies, _ = datalog
    f = read_stdf(p, tests=True)
    res = yk.analyze(f.dies, wafers=f.wafers, layout=f.layout, bin_names=f.bins, tests=f.tests)
    sec = res.parametric
    assert sec is not None and sec.n_tests == 3 and sec.shifts is None
    assert sec.worst["cpk"].is_monotonic_increasing
    assert set(sec.association["bin"]) <= set(f.dies.loc[~f.dies["passed"], "hbin"])
    html = build_report(res, max_maps=1)
    assert '<section id="parametric">' in html and 'id="parametric-worst-table"' in html
    assert 'id="parametric-association-table"' in html and "ring_osc" in html
    # without tests there is no section
    assert '<section id="parametric">' not in build_report(yk.analyze(f.dies), max_maps=0)
    one = f.tests[f.tests.wafer_id == f.tests.wafer_id.iloc[0]]
    for kind in ("value", "zscore", "fail"):
        disp = ParametricMapDisplay.from_tests(one, 300, kind=kind, layout=f.layout)
        assert disp.ax_ is not None and disp.categorical == (kind == "fail")
    n300 = one[one.test_num == 300].drop_duplicates(["die_x", "die_y"])
    assert sum(disp.counts) == len(n300)
    with pytest.raises(yk.errors.SchemaError, match="draws one wafer"):
        ParametricMapDisplay.from_tests(f.tests, 300)
    with pytest.raises(yk.errors.SchemaError, match="no result of test 999"):
        plot_test_distribution(f.tests, 999)
    ax = plot_test_distribution(f.tests, 200, pat_limits=(485.0, 515.0))
    assert len(ax.lines) == 4
    ax = plot_capability(capability(f.tests).table)
    assert len(ax.patches) == 3


def test_cli_writes_tables_and_report(datalog, tmp_path, capsys):
    p, _, _ = datalog
    dies_b, tests_b = _lot_with_tests(6, "LOTB", offset=2.0)
    ref = tmp_path / "ref.stdf"
    write_stdf(dies_b, ref, tests=tests_b)
    out = tmp_path / "capability.csv"
    code = main(["parametric", str(p), "-o", str(out), "--shift", str(tmp_path / "shift.csv"), "--reference", str(ref),
                 "--association", str(tmp_path / "assoc.csv"), "--report", str(tmp_path / "r.html")])
    assert code == 0
    cap = pd.read_csv(out)
    assert cap["test_num"].tolist() == [100, 200, 300] and "cpk_lower" in cap.columns
    sh = pd.read_csv(tmp_path / "shift.csv")
    assert sh["alarm"].all()  # LOTA against a reference two sigma away
    assert len(pd.read_csv(tmp_path / "assoc.csv"))
    assert '<section id="parametric">' in (tmp_path / "r.html").read_text()
    assert main(["parametric", str(p)]) == 0
    assert "ring_osc" in capsys.readouterr().out


def test_cli_bad_input(tmp_path, capsys):
    dies = yk.simulate_fab(n_lots=1, wafers_per_lot=1, random_state=1).dies
    p = tmp_path / "bins_only.stdf"
    write_stdf(dies, p)
    assert main(["parametric", str(p)]) == 1
    assert "holds no parametric result" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["parametric", str(p), "--conf-level", "1.5"])
    assert "confidence level in (0, 1)" in capsys.readouterr().err


def test_report_section_with_several_lots():
    from yieldkit.parametric import parametric_section
    from yieldkit.report import build_report

    lots = [_lot_with_tests(8 + i, f"LOT{i}", offset=3.0 if i == 3 else 0.0, wafers=1) for i in range(4)]
    dies = pd.concat([d for d, _ in lots], ignore_index=True)
    tests = pd.concat([t for _, t in lots], ignore_index=True)
    sec = parametric_section(dies, tests, top=4)
    assert len(sec.worst) == 4 and sec.shift_tested == 12
    # each lot against all lots pooled: only the shifted one alarms
    assert set(sec.shifts["lot_id"]) == {"LOT3"} and (sec.shifts["shift_sigma"] > 1).all()
    assert sec.worst_results["test_num"].nunique() == 1 and sec.worst_results["lot_id"].nunique() == 1
    html = build_report(yk.analyze(dies, tests=tests), max_maps=0)
    assert 'id="parametric-shift-table"' in html and "LOT3" in html


def test_cli_report_with_tests(datalog, tmp_path):
    """``yieldkit report --tests``: from the STDF datalog itself and from a Parquet test table,
    the same parametric section; bad test inputs are yieldkit errors naming the path."""
    from yieldkit.io.partitioned import read_tests, write_dataset

    p, _, _ = datalog
    a, b = tmp_path / "a.html", tmp_path / "b.html"
    assert main(["--quiet", "report", str(p), "--tests", str(p), "-o", str(a)]) == 0
    html = a.read_text()
    assert '<section id="parametric">' in html and "ring_osc" in html
    t = read_stdf(p, tests=True).tests
    write_dataset(t, tmp_path / "tests_ds")
    back = read_tests(tmp_path / "tests_ds")
    assert len(back) == len(t) and set(back["test_num"]) == {100, 200, 300}
    assert main(["--quiet", "report", str(p), "--tests", str(tmp_path / "tests_ds"), "-o", str(b)]) == 0
    assert '<section id="parametric">' in b.read_text() and "ring_osc" in b.read_text()
    with pytest.raises(yk.errors.InputNotFoundError, match="nowhere"):
        read_tests(tmp_path / "nowhere")
    bad = tmp_path / "bad.parquet"
    bad.write_text("not parquet")
    with pytest.raises(yk.errors.ParseError, match="bad.parquet"):
        read_tests(bad)
    t.drop(columns="value").to_parquet(tmp_path / "novalue.parquet")
    with pytest.raises(yk.errors.SchemaError, match="value"):
        read_tests(tmp_path / "novalue.parquet")
    assert main(["--quiet", "report", str(p), "--tests", str(tmp_path / "nowhere"), "-o", str(b)]) == 1
