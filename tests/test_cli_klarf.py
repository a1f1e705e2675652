"""KLARF files on the command line, and the file's own layout in maps and reports.

``map``, ``summary``, ``report`` and ``fit`` take a KLARF file alone (its sample test plan is
the set of inspected dies, its die pitch the die area); ``map`` and ``report`` use the layout a
file gives unless ``--layout`` is given; ``yieldkit layout FILE`` writes it.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import yieldkit as yk
from yieldkit.cli import main

PLAN_LAYOUT = yk.WaferLayout(diameter_mm=100, die_pitch_um=(8000.0, 5000.0), edge_exclusion_mm=3)


def _run(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def klarf(tmp_path: Path, rng: np.random.Generator) -> tuple[Path, pd.DataFrame, yk.WaferLayout]:
    """Two wafers of one lot, 8 x 5 mm dies, a sample test plan of the dies with die_y >= -3."""
    grid = PLAN_LAYOUT.dies()
    plan = grid[grid["die_y"] >= -3][["die_x", "die_y"]]
    layout = PLAN_LAYOUT.with_die_set(plan)
    rows = []
    for wafer, n in (("01", 40), ("02", 25)):
        pick = plan.sample(n, replace=True, random_state=int(rng.integers(1 << 30)))
        rows.append(pd.DataFrame({
            "lot_id": "L1", "wafer_id": wafer, "defect_id": np.arange(1, n + 1),
            "die_x": pick["die_x"].to_numpy(), "die_y": pick["die_y"].to_numpy(),
            "xrel_um": rng.uniform(0, 8000, n), "yrel_um": rng.uniform(0, 5000, n),
            "defect_class": rng.choice(["particle", "scratch", "residue"], n), "size_um": rng.uniform(0.1, 5, n),
        }))
    defects = pd.concat(rows, ignore_index=True)
    path = tmp_path / "scan.klarf"
    yk.write_klarf(defects, path, layout=layout)
    return path, defects, layout


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> list:
    """What ``map`` hands to save_figure (a Display), instead of writing images."""
    import yieldkit.plotting.export as export

    seen: list = []

    def fake(obj, path, **kwargs):
        seen.append((obj, Path(path)))
        export.close(obj)

    monkeypatch.setattr(export, "save_figure", fake)
    return seen


# -- summary --------------------------------------------------------------------------------
def test_summary_klarf_defects_and_density_per_wafer(klarf, tmp_path: Path) -> None:
    path, defects, layout = klarf
    code, out, err = _run(["summary", str(path), "--format", "csv"])
    assert code == 0, err
    t = pd.read_csv(io.StringIO(out), dtype={"wafer_id": str})
    assert t["wafer_id"].tolist() == ["01", "02"]
    assert t["n_defects"].tolist() == [40, 25]
    n_plan = len(layout.die_set)
    assert t["n_inspected_dies"].tolist() == [n_plan, n_plan]
    area = n_plan * 0.8 * 0.5  # 8 x 5 mm dies [cm^2]
    np.testing.assert_allclose(t["area_cm2"], area)
    np.testing.assert_allclose(t["density_per_cm2"], np.array([40, 25]) / area)
    assert (t["ci_lower"] < t["density_per_cm2"]).all() and (t["density_per_cm2"] < t["ci_upper"]).all()


def test_summary_klarf_by_class_and_lot(klarf) -> None:
    path, defects, _ = klarf
    code, out, err = _run(["summary", str(path), "--by", "class", "--format", "csv"])
    assert code == 0, err
    t = pd.read_csv(io.StringIO(out), dtype={"wafer_id": str})
    want = defects.groupby(["wafer_id", "defect_class"]).size()
    got = t.set_index(["wafer_id", "defect_class"])["n_defects"]
    assert got.sort_index().to_dict() == want.sort_index().to_dict()
    code, out, err = _run(["summary", str(path), "--by", "lot", "--format", "csv"])
    lot = pd.read_csv(io.StringIO(out))
    assert code == 0 and lot["n_defects"].tolist() == [65] and lot["n_wafers"].tolist() == [2]


def test_summary_by_class_of_a_die_file_is_refused(tmp_path: Path) -> None:
    fab = yk.simulate_fab(n_lots=1, wafers_per_lot=1, random_state=1)
    p = tmp_path / "dies.csv"
    fab.dies.to_csv(p, index=False)
    code, _, err = _run(["summary", str(p), "--by", "class"])
    assert code == 1 and "--by class counts defects per class" in err and str(p) in err


def test_summary_klarf_without_plan_uses_the_dies_on_the_wafer(tmp_path: Path) -> None:
    d = pd.DataFrame({"lot_id": "L", "wafer_id": "1", "defect_id": [1, 2], "die_x": [0, 1], "die_y": [0, 0],
                      "xrel_um": [10.0, 20.0], "yrel_um": [10.0, 20.0]})
    p = tmp_path / "noplan.klarf"
    yk.write_klarf(d, p, layout=PLAN_LAYOUT)
    code, out, err = _run(["summary", str(p), "--format", "csv"])
    t = pd.read_csv(io.StringIO(out))
    assert code == 0, err
    lay = yk.read_klarf(p).layouts[("L", "1")]  # a KLARF states no edge exclusion: every die on the wafer
    assert lay.die_set is None
    assert t["n_inspected_dies"].tolist() == [lay.n_dies]
    np.testing.assert_allclose(t["density_per_cm2"], 2 / (lay.n_dies * lay.die_area_cm2))


# -- fit ------------------------------------------------------------------------------------
def test_fit_klarf_alone_counts_the_inspected_dies_with_its_die_area(klarf) -> None:
    path, _, layout = klarf
    code, out, err = _run(["fit", str(path), "--model", "poisson", "--format", "csv"])
    assert code == 0, err
    t = pd.read_csv(io.StringIO(out))
    # Poisson MLE: D0 = defects / (inspected dies x die area)
    assert math.isclose(t["d0"].iloc[0], 65 / (2 * len(layout.die_set) * 0.4), rel_tol=1e-6)


# -- map ------------------------------------------------------------------------------------
def test_map_klarf_draws_defects_on_its_die_grid(klarf, captured: list, tmp_path: Path) -> None:
    from yieldkit.plotting.maps import DefectMapDisplay

    path, defects, layout = klarf
    code, _, err = _run(["map", str(path), "--wafer", "02", "-o", str(tmp_path / "m.png")])
    assert code == 0, err
    disp, _ = captured[0]
    assert isinstance(disp, DefectMapDisplay)
    assert sum(disp.counts) == 25
    assert disp.layout.die_pitch_um == (8000.0, 5000.0) and len(disp.layout.die_set) == len(layout.die_set)
    want = defects[defects["wafer_id"] == "02"]["defect_class"].value_counts()
    assert dict(zip(disp.labels, disp.counts, strict=True)) == want.to_dict()
    # bigger defects, bigger markers
    read = yk.read_klarf(path).defects
    sizes = read.loc[read["wafer_id"] == "02", "size_um"].to_numpy()
    ms = disp.marker_size[np.argsort(sizes, kind="stable")]
    assert np.all(np.diff(ms) >= 0) and ms[-1] > ms[0]


def test_map_klarf_all_writes_every_wafer(klarf, captured: list, tmp_path: Path) -> None:
    path, _, _ = klarf
    code, _, err = _run(["map", str(path), "--all", "-o", str(tmp_path / "maps")])
    assert code == 0, err
    assert sorted(p.name for _, p in captured) == ["L1_01.png", "L1_02.png", "stacked.png"]
    assert sum(captured[-1][0].counts) == 65


def test_map_of_a_klarf_refuses_value_options(klarf, tmp_path: Path) -> None:
    path, _, _ = klarf
    code, _, err = _run(["map", str(path), "--value", "pass", "-o", str(tmp_path / "m.png")])
    assert code == 1 and "is a defect file (KLARF)" in err


def test_map_uses_the_files_layout_and_layout_option_wins(shared_samples: Path, captured: list,
                                                          tmp_path: Path) -> None:
    """E142 gives 3900 x 3000 um dies on a 200 mm wafer: the map is drawn at that pitch, not in die indices."""
    e142 = shared_samples / "e142" / "G6P139.14-E142.xml"
    code, _, err = _run(["map", str(e142), "-o", str(tmp_path / "m.png")])
    assert code == 0, err
    disp = captured[-1][0]
    assert disp.layout.die_pitch_um == (3900.0, 3000.0) and disp.layout.diameter_mm == 200
    w = disp.extent[1] - disp.extent[0]
    h = disp.extent[3] - disp.extent[2]
    assert math.isclose(w / disp.grid.shape[1], 3900.0) and math.isclose(h / disp.grid.shape[0], 3000.0)
    given = tmp_path / "layout.json"
    given.write_text(json.dumps({"diameter_mm": 200, "die_pitch_um": [1000, 1000]}))
    code, _, err = _run(["map", str(e142), "--layout", str(given), "-o", str(tmp_path / "m.png")])
    assert code == 0, err
    assert captured[-1][0].layout.die_pitch_um == (1000.0, 1000.0)


def test_report_uses_the_files_layout_and_layout_option_wins(shared_samples: Path, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    import yieldkit.analysis as analysis

    seen: list = []
    real = analysis.analyze

    def spy(*args, **kwargs):  # type: ignore[no-untyped-def]
        seen.append(args[3])
        return real(*args, **kwargs)

    monkeypatch.setattr(analysis, "analyze", spy)
    e142 = shared_samples / "e142" / "G6P139.14-E142.xml"
    code, _, err = _run(["report", str(e142), "-o", str(tmp_path / "r.html"), "--max-maps", "1"])
    assert code == 0, err
    assert seen[-1].die_pitch_um == (3900.0, 3000.0) and not seen[-1].inferred
    given = tmp_path / "layout.json"
    given.write_text(json.dumps({"diameter_mm": 200, "die_pitch_um": [1000, 1000]}))
    code, _, err = _run(["report", str(e142), "--layout", str(given), "-o", str(tmp_path / "r.html"),
                         "--max-maps", "1"])
    assert code == 0, err
    assert seen[-1].die_pitch_um == (1000.0, 1000.0)


def test_map_of_final_test_data_names_the_file(shared_samples: Path, tmp_path: Path) -> None:
    """d10_1.std: one final-test part without die coordinates: no wafer map, said in words with the file."""
    p = shared_samples / "stdf" / "d10_1.std"
    code, _, err = _run(["map", str(p), "-o", str(tmp_path / "m.png")])
    assert code == 1 and f"{p}: no die has a wafer position" in err


def test_klarf_without_die_pitch_is_said_in_words(shared_samples: Path, tmp_path: Path) -> None:
    """No DiePitch: no wafer positions and no die area; map and fit say so, naming the file."""
    import re

    text = (shared_samples / "klarf" / "klarf12Example.klarf").read_text()
    p = tmp_path / "nopitch.klarf"
    p.write_text(re.sub(r"(?m)^DiePitch[^;]*;\s*\n", "", text))
    code, _, err = _run(["map", str(p), "-o", str(tmp_path / "m.png")])
    assert code == 1 and f"{p}: the KLARF gives no die pitch" in err and "--layout" in err
    code, _, err = _run(["fit", str(p)])
    assert code == 1 and f"{p}: the KLARF gives no die pitch" in err and "--area" in err
    code, out, err = _run(["summary", str(p), "--format", "csv"])
    assert code == 0 and pd.read_csv(io.StringIO(out))["n_defects"].tolist() == [2]


# -- layout ---------------------------------------------------------------------------------
def test_layout_writes_the_klarf_layout_that_layout_reads_back(klarf, tmp_path: Path) -> None:
    path, _, layout = klarf
    out = tmp_path / "layout.json"
    code, _, err = _run(["layout", str(path), "-o", str(out)])
    assert code == 0, err
    back = yk.WaferLayout.from_dict(json.loads(out.read_text()))
    assert back.die_pitch_um == layout.die_pitch_um and back.diameter_mm == layout.diameter_mm
    assert len(back.die_set) == len(layout.die_set)
    np.testing.assert_allclose(back.origin_um, yk.read_klarf(path).layouts[("L1", "01")].origin_um)
    code, _, err = _run(["map", str(path), "--layout", str(out), "-o", str(tmp_path / "m.png")])
    assert code == 0, err


def test_layout_default_output_is_next_to_the_input(klarf) -> None:
    path, _, _ = klarf
    code, _, err = _run(["layout", str(path)])
    assert code == 0, err
    assert (path.parent / "scan_layout.json").is_file()


def test_layout_refuses_files_without_geometry(tmp_path: Path, shared_samples: Path) -> None:
    fab = yk.simulate_fab(n_lots=1, wafers_per_lot=1, random_state=1)
    p = tmp_path / "dies.csv"
    fab.dies.to_csv(p, index=False)
    code, _, err = _run(["layout", str(p), "-o", str(tmp_path / "x.json")])
    assert code == 1 and f"{p}: a csv file gives no wafer layout" in err
    gtk = shared_samples / "ascii" / "QR646.04_CP1_2022_03_10_17_07_12.map.zip"
    code, _, err = _run(["layout", str(gtk), "-o", str(tmp_path / "x.json")])
    assert code == 1 and "implies no layout" in err and str(gtk) in err
    assert not (tmp_path / "x.json").exists()


def test_layout_of_wafers_with_different_grids_needs_wafer(shared_samples: Path, tmp_path: Path) -> None:
    """simple18.klarf: two wafers, same die pitch, SampleCenterLocation 23 um apart."""
    f = shared_samples / "klarf" / "simple18.klarf"
    out = tmp_path / "x.json"
    code, _, err = _run(["layout", str(f), "-o", str(out)])
    assert code == 1 and "different layouts" in err and "--wafer" in err
    code, _, err = _run(["layout", str(f), "--wafer", "SecondWaferId", "-o", str(out)])
    assert code == 0, err
    assert json.loads(out.read_text())["origin_um"] == pytest.approx([-4952.008, 491.294])


# -- report and the defects-only analysis ---------------------------------------------------
def test_report_klarf_alone_is_a_defects_only_report(klarf, tmp_path: Path) -> None:
    path, _, _ = klarf
    out = tmp_path / "r.html"
    code, _, err = _run(["report", str(path), "-o", str(out), "--max-maps", "1"])
    assert code == 0, err
    html = out.read_text()
    for section in ("defect-density", "defect-pareto", "spc", "wafer-maps", "notes"):
        assert f'<section id="{section}"' in html
    assert '<section id="bin-pareto"' not in html and '<section id="lots"' not in html
    assert "Dies inspected" in html and "First-pass yield" not in html
    assert html.count('alt="wafer map L1') == 1  # --max-maps 1


def test_report_mixing_klarf_and_die_files_is_refused(klarf, tmp_path: Path) -> None:
    path, _, _ = klarf
    fab = yk.simulate_fab(n_lots=1, wafers_per_lot=1, random_state=1)
    p = tmp_path / "dies.csv"
    fab.dies.to_csv(p, index=False)
    code, _, err = _run(["report", str(p), str(path), "-o", str(tmp_path / "r.html")])
    assert code == 1 and "--defects" in err


def test_analyze_without_dies(klarf) -> None:
    path, defects, layout = klarf
    k = yk.read_klarf(path)
    res = yk.analyze(None, k.defects, layout=layout, inspected_dies=k.inspected_dies, inspected_wafers=k.wafers)
    assert res.p_chart is None and res.models is None and res.kill_ratios is None
    assert res.summary["defects"] == 65 and math.isnan(res.summary["yield"])
    assert res.summary["dies"] == 2 * len(layout.die_set)
    assert res.defect_density["n_defects"].tolist() == [40, 25]
    assert int(res.defect_pareto["count"].sum()) == 65
    assert res.u_chart is not None and len(res.u_chart.table) == 2
    # stacked map: mean defects per die position over the two wafers, on the inspected dies
    assert len(res.stacked) == len(layout.die_set)
    assert math.isclose(res.stacked["mean_n_defects"].sum() * 2, 65)
    assert any("no die table" in n for n in res.notes)
    # ring zones over the inspected dies of both wafers
    assert int(res.zonal_density["n_defects"].sum()) == 65
    np.testing.assert_allclose(res.zonal_density["area_cm2"].sum(), 2 * len(layout.die_set) * 0.4)
    # a plan of the centre die only leaves the outer zones without inspected area: said, not divided by 0
    centre = PLAN_LAYOUT.with_die_set(pd.DataFrame({"die_x": [0], "die_y": [0]}))
    one = k.defects.assign(die_x=0, die_y=0)
    res = yk.analyze(None, one.drop(columns=["x_um", "y_um"]), layout=centre)
    assert res.zonal_density is None and any("hold no inspected die" in n for n in res.notes)


def test_analyze_needs_dies_or_defects() -> None:
    with pytest.raises(yk.errors.YieldkitValueError, match="may be None only with a defect table"):
        yk.analyze(None, None)


def test_defect_density_counts_defect_free_wafers() -> None:
    from yieldkit.analysis import defect_density

    d = pd.DataFrame({"lot_id": ["L"], "wafer_id": ["1"], "defect_id": [1], "die_x": [0], "die_y": [0]})
    wafers = pd.DataFrame({"lot_id": ["L", "L"], "wafer_id": ["1", "2"]})
    t = defect_density(d, PLAN_LAYOUT, wafers=wafers)
    assert t["n_defects"].tolist() == [1, 0]
    assert t["density_per_cm2"].iloc[1] == 0 and t["ci_upper"].iloc[1] > 0
    with pytest.raises(ValueError, match="by"):
        defect_density(d, PLAN_LAYOUT, by="die")
