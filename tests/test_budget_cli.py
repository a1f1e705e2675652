"""``yieldkit adders`` and ``yieldkit budget`` on KLARF files of simulated inspections, and the
report's budget section."""

from __future__ import annotations

import pandas as pd
import pytest

import yieldkit as yk
from yieldkit.cli import main
from yieldkit.inspection import adder_summary, match_steps, simulate_inspections


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("steps")
    f = simulate_inspections(n_lots=1, wafers_per_lot=6, detect_prob=1.0, random_state=12)
    klarfs = [str(yk.write_klarf(f.defects[f.defects.layer == s], d / f"{s}.klarf", layout=f.layout))
              for s in f.steps]
    dies = d / "dies.csv"
    f.dies.to_csv(dies, index=False)
    return f, klarfs, str(dies), d


def test_adders_command(files):
    f, klarfs, _, d = files
    out = d / "adders.csv"
    assert main(["adders", *klarfs, "-o", str(out), "--matched", str(d / "matched.parquet"),
                 "--alignments", str(d / "al.csv")]) == 0
    s = pd.read_csv(out, dtype={"wafer_id": str})
    mem = adder_summary(match_steps(f.defects, order=f.steps), layout=f.layout)
    assert s["adders"].sum() == mem["adders"].sum() and s["total"].sum() == len(f.defects)
    assert {"step", "defect_class", "size_bin", "adder_density"} <= set(s.columns)
    m = pd.read_parquet(d / "matched.parquet")
    obs = f.truth["observations"][["lot_id", "wafer_id", "defect_id", "is_adder"]]
    j = m.astype({"lot_id": str, "wafer_id": str}).merge(obs, on=["lot_id", "wafer_id", "defect_id"])
    assert len(j) == len(f.defects)
    assert (j["is_adder_x"] == j["is_adder_y"]).mean() > 0.99
    al = pd.read_csv(d / "al.csv")
    assert set(al["step"]) == {"V1", "M2"} and (al["residual_um"] < 1.0).all()


def test_adders_command_names_steps_after_files(files, tmp_path, capsys):
    f, _, _, _ = files
    paths = []
    for s in f.steps:  # CSV files without a layer column: steps are the file names
        p = tmp_path / f"step_{s}.csv"
        f.defects[f.defects.layer == s].drop(columns=["layer"]).to_csv(p, index=False)
        paths.append(str(p))
    assert main(["adders", *paths, "--by", "", "--format", "csv"]) == 0
    out = pd.read_csv(pd.io.common.StringIO(capsys.readouterr().out))
    assert list(out["step"].iloc[:3]) == ["step_M1", "step_V1", "step_M2"]


def test_budget_command_html_and_csv(files):
    f, klarfs, dies, d = files
    html = d / "budget.html"
    assert main(["budget", dies, "--defects", *klarfs, "--parametric-bins", "6,7", "--price-per-die", "12", "--systematic", "0.95",
                 "-o", str(html)]) == 0
    text = html.read_text()
    for needle in ('id="budget"', 'id="budget-table"', 'id="budget-impact-table"', "data:image/png;base64",
                   "Sequential waterfall (order-dependent)", "Adders per step", "M1 / particle"):
        assert needle in text
    csv = d / "budget.csv"
    assert main(["budget", dies, "--defects", *klarfs, "--systematic", "0.9", "-o", str(csv)]) == 0
    t = pd.read_csv(csv)
    assert abs(t["loss"].sum() - (1 - f.dies["passed"].mean())) < 1e-9
    assert t.loc[t.component == "systematic", "yield"].iloc[0] == 0.9
    assert main(["budget", dies, "--systematic", "high"]) == 1
    assert main(["budget", dies, "--systematic", "none", "-o", str(d / "b.txt")]) == 1


def test_report_shows_a_budget_section(files):
    f, _, _, _ = files
    from yieldkit.budget import yield_budget
    from yieldkit.report import build_report

    res = yk.analyze(f.dies, layout=f.layout)
    res.budget = yield_budget(f.dies, match_steps(f.defects, order=f.steps).table, systematic=0.95)
    html = build_report(res, max_maps=0)
    assert 'id="budget"' in html and 'id="budget-table"' in html


def test_adders_command_finds_repeaters(tmp_path):
    f = simulate_inspections(n_lots=1, wafers_per_lot=2, repeaters=1, random_state=6)
    klarfs = [str(yk.write_klarf(f.defects[f.defects.layer == s], tmp_path / f"{s}.klarf", layout=f.layout))
              for s in f.steps]
    rep, png = tmp_path / "rep.csv", tmp_path / "field.png"
    assert main(["adders", *klarfs, "--shot", "2,2", "--repeaters", str(rep), "--field-map", str(png)]) == 0
    r = pd.read_csv(rep)
    assert len(r) == 2 and (r["layer"] == "M2").all()
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert main(["adders", *klarfs, "--repeaters", str(rep)]) == 1  # no --shot


def test_budget_command_needs_a_die_area_to_fit(files, capsys):
    _, _, dies, _ = files
    assert main(["budget", dies]) == 1
    assert "--layout" in capsys.readouterr().err
