"""The command line, run in-process through main(argv)."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from yieldkit import __version__
from yieldkit.cli import main


def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert __version__ in capsys.readouterr().out


def test_simulate_then_summary(tmp_path, capsys):
    out = tmp_path / "fab"
    assert main(["-q", "simulate", str(out), "--seed", "3", "--lots", "2", "--wafers-per-lot", "3"]) == 0
    for name in ("dies.csv", "dies.parquet", "defects.parquet", "wafers.csv", "layout.json", "truth.json"):
        assert (out / name).exists()
    capsys.readouterr()
    assert main(["summary", str(out / "dies.parquet"), "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 6 and {"lot_id", "wafer_id", "tested", "good", "yield"} <= set(rows[0])
    assert main(["summary", str(out / "dies.csv"), "--by", "lot", "--format", "csv", "-o", str(tmp_path / "l.csv")]) == 0
    lots = pd.read_csv(tmp_path / "l.csv")
    assert lots["wafers"].tolist() == [3, 3]


def test_error_is_one_line_without_traceback(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("lot,wafer,x,y\nL,1,0,0\n")
    assert main(["summary", str(bad)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("yieldkit: error:") and "hbin" in err[0]
    assert "Traceback" not in "\n".join(err)
    assert main(["summary", str(tmp_path / "missing.csv")]) == 1
    assert "no such file" in capsys.readouterr().err


def test_no_command_prints_help(capsys):
    assert main([]) == 2
    assert "usage" in capsys.readouterr().err.lower()
