"""Explicit good bins decide pass/fail even when the table carries a ``passed`` column."""

from __future__ import annotations

import warnings

import pandas as pd
import pytest

import yieldkit as yk
from yieldkit.cli import main
from yieldkit.errors import DataQualityWarning, YieldkitValueError

RAW = pd.DataFrame({"lot": ["L"] * 4, "wafer": ["1"] * 4, "x": [0, 1, 2, 3], "y": [0] * 4,
                    "bin": [1, 2, 7, 1], "passed": [True, False, False, True]})


def test_table_passed_is_kept_without_good_bins():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert yk.read_dies(RAW)["passed"].tolist() == [True, False, False, True]


def test_explicit_good_bins_win_over_passed_column():
    with pytest.warns(DataQualityWarning, match=r"disagrees with hard bins 1, 2 .* 1 of 4 rows \(first at row 1\)"):
        d = yk.read_dies(RAW, good_bins=(1, 2))
    assert d["passed"].tolist() == [True, True, False, True]
    with pytest.warns(DataQualityWarning):
        assert not yk.read_dies(RAW, good_bins=(99,))["passed"].any()


def test_good_bins_that_agree_do_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert yk.read_dies(RAW, good_bins=[1])["passed"].tolist() == [True, False, False, True]
        assert yk.read_dies(RAW, good_bins=1)["passed"].tolist() == [True, False, False, True]


@pytest.mark.parametrize("bad", ["abc", "1", [1.5], [-1], [], object(), [True]])
def test_bad_good_bins_are_a_yieldkit_error(bad):
    with pytest.raises(YieldkitValueError, match="'good_bins' argument of read_dies must be hard bin numbers"):
        yk.read_dies(RAW, good_bins=bad)


def test_cli_good_bins_change_the_yield(tmp_path, capsys):
    p = tmp_path / "d.parquet"
    RAW.to_parquet(p)
    got = {}
    for bins in ("1", "2", "1,2", "99"):
        assert main(["summary", str(p), "--good-bins", bins, "--format", "json"]) == 0
        got[bins] = pd.read_json(__import__("io").StringIO(capsys.readouterr().out))["yield"].iloc[0]
    assert got == {"1": 0.5, "2": 0.25, "1,2": 0.75, "99": 0.0}


def test_cli_good_bins_abc_is_a_usage_error(tmp_path, capsys):
    p = tmp_path / "d.parquet"
    RAW.to_parquet(p)
    with pytest.raises(SystemExit) as exc:
        main(["summary", str(p), "--good-bins", "abc"])
    assert exc.value.code == 2
    assert "hard bin numbers separated by commas" in capsys.readouterr().err
