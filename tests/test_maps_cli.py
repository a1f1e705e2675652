"""Tests of ``yieldkit map`` (in-process)."""

from __future__ import annotations

import json

import pytest

import yieldkit as yk
from yieldkit.cli import main
from yieldkit.simulate import write_fab


@pytest.fixture(scope="module")
def fab_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("fab")
    fab = yk.simulate_fab(n_lots=1, wafers_per_lot=3, random_state=3, signatures={0: "edge-ring"})
    write_fab(fab, d, formats=("csv",))
    return d


def test_map_one_wafer_and_stack(fab_dir, tmp_path):
    lay = str(fab_dir / "layout.json")
    assert main(["map", str(fab_dir / "dies.csv"), "-o", str(tmp_path / "w.png"), "--layout", lay,
                 "--bin-names", str(fab_dir / "bins.json"), "--wafer", "L0001/02"]) == 0
    assert (tmp_path / "w.png").read_bytes()[:4] == b"\x89PNG"
    assert main(["map", str(fab_dir / "dies.csv"), "-o", str(tmp_path / "s.svg"), "--stack", "--layout", lay]) == 0
    assert (tmp_path / "s.svg").read_text().lstrip().startswith("<?xml")
    assert main(["map", str(fab_dir / "dies.csv"), "-o", str(tmp_path / "d.png"), "--value", "density",
                 "--defects", str(fab_dir / "defects.csv"), "--layout", lay]) == 0
    assert (tmp_path / "d.png").stat().st_size > 1000


def test_map_all(fab_dir, tmp_path):
    out = tmp_path / "maps"
    assert main(["map", str(fab_dir / "dies.csv"), "-o", str(out), "--all", "--value", "pass"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["L0001_01.png", "L0001_02.png", "L0001_03.png", "stacked.png"]


def test_map_errors(fab_dir, tmp_path, capsys):
    assert main(["map", str(fab_dir / "dies.csv"), "-o", str(tmp_path / "x.txt")]) == 1
    assert "--output must end in" in capsys.readouterr().err
    assert main(["map", str(fab_dir / "dies.csv"), "-o", str(tmp_path / "x.png"), "--wafer", "99"]) == 1
    assert "matches no wafer" in capsys.readouterr().err
    assert main(["map", str(fab_dir / "dies.csv"), "-o", str(tmp_path / "x.png"), "--value", "density"]) == 1
    assert "needs --defects" in capsys.readouterr().err
    for dpi in ("-5", "0"):
        assert main(["map", str(fab_dir / "dies.csv"), "-o", str(tmp_path / "x.png"), "--dpi", dpi]) == 1
        err = capsys.readouterr().err
        assert err == f"yieldkit: error: --dpi must be > 0; got {dpi}\n"
    assert not (tmp_path / "x.png").exists()
    assert json.loads((fab_dir / "layout.json").read_text())["diameter_mm"] == 200


def test_map_dpi_sets_the_resolution(fab_dir, tmp_path):
    """--dpi reaches the PNG: twice the dpi, about twice the width (read from the IHDR chunk)."""
    widths = []
    for dpi in (50, 100):
        out = tmp_path / f"w{dpi}.png"
        assert main(["map", str(fab_dir / "dies.csv"), "-o", str(out), "--value", "pass", "--dpi", str(dpi)]) == 0
        widths.append(int.from_bytes(out.read_bytes()[16:20], "big"))
    assert widths[1] == pytest.approx(2 * widths[0], rel=0.05)
