"""``yieldkit pat`` and the one-call screen()."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from test_pat_stdf import _lot

from yieldkit.cli import main
from yieldkit.errors import YieldkitValueError
from yieldkit.io.stdf import read_stdf, write_stdf
from yieldkit.pat import load_pat_limits, screen


@pytest.fixture
def datalog(tmp_path, rng):
    dies, tests, geo, par = _lot(rng)
    path = tmp_path / "lot.stdf"
    write_stdf(dies, path, tests=tests)
    return path, geo, par


def test_cli_pat_writes_screened_table_and_static_limits(datalog, tmp_path, capsys):
    path, geo, par = datalog
    out = tmp_path / "screened.parquet"
    assert main(["pat", str(path), "-o", str(out), "--rules", "dpat,gdbn", "--save-static", str(tmp_path / "s.json"),
                 "--limits", str(tmp_path / "lim.csv"), "--format", "csv"]) == 0
    table = pd.read_parquet(out)
    inked = table[table["passed_orig"] & ~table["passed"]]
    assert len(inked) == len(geo) + len(par)
    assert set(inked["hbin"]) == {90, 91}
    loss = pd.read_csv(__import__("io").StringIO(capsys.readouterr().out))
    assert loss["rule"].tolist() == ["dpat", "gdbn"] and loss["n_inked"].tolist() == [3, 2]
    assert load_pat_limits(tmp_path / "s.json").method == "static"
    assert len(pd.read_csv(tmp_path / "lim.csv")) == 3
    # static limits from the file, screened bins written back as STDF
    out2 = tmp_path / "screened.stdf"
    assert main(["pat", str(path), "-o", str(out2), "--static", str(tmp_path / "s.json"), "--rules", "dpat"]) == 0
    back = read_stdf(out2)
    assert (back.dies["hbin"] == 90).sum() == 3
    # the rules of the example; nnr screens every test when none is named
    out3 = tmp_path / "s3.parquet"
    assert main(["pat", str(path), "--rules", "dpat,gdbn,nnr,zpat", "-o", str(out3)]) == 0
    assert set(pd.read_parquet(out3)["pat_rule"].dropna()) >= {"dpat", "gdbn"}


def test_cli_pat_errors(datalog, tmp_path, capsys):
    path, *_ = datalog
    with pytest.raises(SystemExit):
        main(["pat", str(path), "--rules", "dpat,xyz"])
    assert "expected rules from" in capsys.readouterr().err
    assert main(["pat", str(path), "--rules", "reticle", "-o", str(tmp_path / "x.parquet")]) != 0
    assert "shot" in capsys.readouterr().err
    no_tests = tmp_path / "bins.stdf"
    write_stdf(read_stdf(path).dies, no_tests)
    assert main(["pat", str(no_tests)]) != 0
    assert "no parametric test results" in capsys.readouterr().err


def test_screen_validates_rules(rng):
    dies, tests, *_ = _lot(rng)
    with pytest.raises(YieldkitValueError, match="'rules' argument of screen must be one of"):
        screen(dies, tests, rules=["dpat", "six"])
    with pytest.raises(YieldkitValueError, match="needs static limits"):
        screen(dies, tests, rules=["spat"])
    with pytest.raises(YieldkitValueError, match="need the test table"):
        screen(dies, rules=["dpat"])
    res = screen(dies, rules=["gdbn"])
    assert res.rules == ("gdbn",) and res.result.loss_by_rule["n_inked"].tolist() == [2]
    assert np.isclose(res.result.loss_by_rule["loss"].iloc[0], 2 / dies["passed"].sum())
