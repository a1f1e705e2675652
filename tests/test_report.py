"""HTML report: sections, escaping, self-containment, PDF, CLI (report and pareto)."""

from __future__ import annotations

import re

import pandas as pd
import pytest

import yieldkit as yk
from yieldkit.analysis import analyze
from yieldkit.cli import main
from yieldkit.errors import YieldkitValueError
from yieldkit.report import build_report

EVIL = "<script>alert(1)</script>"


@pytest.fixture(scope="module")
def fab():
    return yk.simulate_fab(n_lots=2, wafers_per_lot=3, retest_rate=0.01, signature_rate=0.3, seed=8)


@pytest.fixture(scope="module")
def html(fab):
    return build_report(fab.dies, defects=fab.defects, wafers=fab.wafers, layout=fab.layout,
                        bin_names=fab.bin_names, max_maps=4)


def test_sections_and_images(html):
    for sec in ("summary", "lots", "retest", "wafer-maps", "bin-pareto", "defect-pareto", "kill-ratios", "spc",
                "wafers"):
        assert f'<section id="{sec}">' in html, sec
    assert html.count('<img src="data:image/png;base64,') == 4  # gallery, cut to max_maps
    assert len(re.findall(r'src="data:image/png;base64,', html)) >= 4 + 6
    assert 'id="kill-ratio-table"' in html and 'id="defect-kill-table"' in html


def test_self_contained(html):
    assert not re.search(r'(src|href)="(https?:)?//', html)
    assert "@import" not in html and "<link" not in html


def test_data_strings_are_escaped(fab, tmp_path):
    dies = fab.dies.copy()
    dies["lot_id"] = dies["lot_id"].astype(object).where(dies["lot_id"] != "L0001", EVIL).astype("string[pyarrow]")
    defects = fab.defects.copy()
    defects["lot_id"] = defects["lot_id"].astype(object).where(defects["lot_id"] != "L0001", EVIL).astype(
        "string[pyarrow]")
    defects["defect_class"] = defects["defect_class"].astype(object).where(
        defects["defect_class"] != "void", '"><img src=x onerror=alert(2)>').astype("string[pyarrow]")
    out = build_report(dies, defects=defects, layout=fab.layout, title=EVIL, max_maps=2,
                       output=tmp_path / "evil.html")
    assert EVIL not in out and "<img src=x" not in out
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in out
    assert (tmp_path / "evil.html").read_text() == out


def test_results_object_and_pdf(fab, tmp_path):
    res = analyze(fab.dies, fab.defects, layout=fab.layout)
    out = build_report(res, max_maps=0, pdf=tmp_path / "r.pdf")
    assert (tmp_path / "r.pdf").read_bytes()[:5] == b"%PDF-"
    assert "Gallery (0 of 6 wafers" in out
    with pytest.raises(YieldkitValueError, match="'results' argument of build_report"):
        build_report({"dies": 1})


def test_cli_report_and_pareto(fab, tmp_path):
    yk.simulate.write_fab(fab, tmp_path / "fab", formats=("parquet",))
    d = tmp_path / "fab"
    rc = main(["--quiet", "report", str(d / "dies.parquet"), "--defects", str(d / "defects.parquet"),
               "--wafers", str(d / "wafers.parquet"), "--layout", str(d / "layout.json"),
               "--bin-names", str(d / "bins.json"), "--max-maps", "2", "-o", str(tmp_path / "r.html")])
    assert rc == 0 and '<section id="kill-ratios">' in (tmp_path / "r.html").read_text()
    assert main(["pareto", str(d / "defects.parquet"), "-o", str(tmp_path / "p.csv")]) == 0
    p = pd.read_csv(tmp_path / "p.csv")
    assert dict(zip(p["category"], p["count"])) == fab.defects["defect_class"].value_counts().to_dict()
    assert main(["pareto", str(d / "defects.parquet"), "--weight", "kill", "--dies", str(d / "dies.parquet"),
                 "--top", "3", "-o", str(tmp_path / "p.html")]) == 0
    assert "data:image/png;base64," in (tmp_path / "p.html").read_text()
    assert main(["pareto", str(d / "dies.parquet"), "--by", "hbin", "-o", str(tmp_path / "b.png")]) == 0
    assert (tmp_path / "b.png").read_bytes()[:4] == b"\x89PNG"
    assert main(["pareto", str(d / "defects.parquet"), "--weight", "kill"]) == 1
    assert main(["pareto", str(d / "defects.parquet"), "-o", str(tmp_path / "p.txt")]) == 1
