"""HTML report: sections, escaping, self-containment, PDF, CLI (report and pareto)."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import numpy as np
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
    return yk.simulate_fab(n_lots=2, wafers_per_lot=3, retest_rate=0.01, signature_rate=0.3, random_state=8)


@pytest.fixture(scope="module")
def html(fab):
    return build_report(analyze(fab.dies, fab.defects, fab.wafers, fab.layout, fab.bin_names), max_maps=4)


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
    out = build_report(analyze(dies, defects, layout=fab.layout), title=EVIL, max_maps=2,
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


# -- degenerate inputs: every section renders or is left out with a note, never a crash -------------------

_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class _Structure(HTMLParser):
    """Checks that every non-void element is closed in order; collects the section ids."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.sections: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "section":
            self.sections.append(dict(attrs).get("id") or "")
        if tag not in _VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in _VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes <{self.stack[-1] if self.stack else None}>")
            return
        self.stack.pop()


def _check_html(out: str) -> _Structure:
    p = _Structure()
    p.feed(out)
    p.close()
    assert not p.errors, p.errors[:3]
    assert p.stack == [], p.stack
    assert "summary" in p.sections and "wafers" in p.sections
    return p


def _set_result(d: pd.DataFrame, passed: bool) -> pd.DataFrame:
    d = d.copy()
    d["passed"] = passed
    d["hbin"] = np.int32(1 if passed else 5)
    d["sbin"] = d["hbin"].astype("Int32")
    return d


@pytest.fixture(scope="module")
def small():
    return yk.simulate_fab(n_lots=1, wafers_per_lot=3, random_state=2)


def _degenerate(small, case: str) -> dict:
    d, f, lay = small.dies, small.defects, small.layout
    w1 = d[d["wafer_id"] == "01"].reset_index(drop=True)
    f1 = f[f["wafer_id"] == "01"].reset_index(drop=True)
    if case == "one_wafer":
        return {"dies": w1, "defects": f1, "wafers": small.wafers, "layout": lay}
    if case == "one_die":
        one = w1.iloc[[0]].reset_index(drop=True)
        fd = f1.iloc[:2].copy()
        fd["die_x"], fd["die_y"] = one["die_x"].iloc[0], one["die_y"].iloc[0]
        return {"dies": one, "defects": fd, "layout": lay}
    if case == "one_die_no_layout":
        return {"dies": w1.iloc[[0]].reset_index(drop=True)}
    if case == "all_pass":
        return {"dies": _set_result(d, True), "defects": f, "wafers": small.wafers, "layout": lay}
    if case == "all_fail":
        return {"dies": _set_result(d, False), "defects": f, "wafers": small.wafers, "layout": lay}
    if case == "defects_none":
        return {"dies": d, "layout": lay}
    if case == "defects_empty":
        return {"dies": d, "defects": f.iloc[:0], "layout": lay}
    if case == "defects_without_class":
        return {"dies": d, "defects": f.drop(columns=["defect_class"]), "layout": lay}
    if case == "layout_inferred":
        return {"dies": d, "defects": f}
    if case == "defects_xy_only_no_layout":
        return {"dies": d, "defects": f.drop(columns=["die_x", "die_y", "xrel_um", "yrel_um"])}
    if case == "retests_only":
        first = _set_result(w1, False).assign(test_seq=np.int16(1))
        return {"dies": pd.concat([first, w1.assign(test_seq=np.int16(2))], ignore_index=True), "defects": f1,
                "layout": lay}
    if case in ("final_test_units", "final_test_no_positions"):
        from yieldkit.schema import validate_dies

        raw = pd.DataFrame({"lot": ["L"] * 6, "wafer": ["1"] * 6, "x": [None, None, None, 0, 0, 1],
                            "y": [None, None, None, 0, 0, 0], "bin": [1, 2, 5, 1, 5, 1], "test_seq": [1, 1, 1, 1, 2, 1]})
        if case == "final_test_no_positions":
            raw = raw.assign(x=None, y=None, test_seq=1)
        return {"dies": validate_dies(raw, missing_xy="unit")}
    raise AssertionError(case)


DEGENERATE = ["one_wafer", "one_die", "one_die_no_layout", "all_pass", "all_fail", "defects_none", "defects_empty",
              "defects_without_class", "layout_inferred", "defects_xy_only_no_layout", "retests_only",
              "final_test_units", "final_test_no_positions"]


@pytest.mark.parametrize("case", DEGENERATE)
def test_report_on_degenerate_inputs(small, case):
    """A chart that is not drawn leaves its section out (or says why); the document stays well formed."""
    c = _degenerate(small, case)
    res = analyze(c["dies"], c.get("defects"), c.get("wafers"), c.get("layout"))
    out = build_report(res, max_maps=2)
    p = _check_html(out)
    assert p.sections[0] == "summary"
    if res.u_chart is None:
        assert "u-chart of defects" not in out and "No defect u-chart" in out
    if not len(res.bin_pareto):
        assert "No failing dies" in out and "bin Pareto chart" not in out


def test_cli_report_on_an_all_pass_lot(small, tmp_path, capsys):
    """``yieldkit report allpass.csv`` writes the report (it used to exit 1 with a traceback)."""
    csv = tmp_path / "allpass.csv"
    _set_result(small.dies, True).to_csv(csv, index=False)
    rc = main(["--quiet", "report", str(csv), "--max-maps", "1", "-o", str(tmp_path / "r.html")])
    err = capsys.readouterr().err
    assert rc == 0, err
    assert "Traceback" not in err
    _check_html((tmp_path / "r.html").read_text())


def test_u_chart_note_on_inspected_wafers(small):
    """The SPC section says how wafers without a defect record were treated."""
    res = analyze(small.dies, small.defects, layout=small.layout)
    out = build_report(res, max_maps=0)
    assert 'id="u-chart-note"' in out and "treated as not inspected" in out
    res = analyze(small.dies, small.defects, layout=small.layout,
                  inspected_wafers=small.wafers[["lot_id", "wafer_id"]])
    assert 'id="u-chart-note"' not in build_report(res, max_maps=0)


# -- readable, explorable report ------------------------------------------------------------------


def test_column_formats_are_read_by_people():
    """Yields as percentages with fixed decimals, never an exponent; units in one mapping."""
    from yieldkit.report.columns import COLUMNS, column_format, format_value

    assert format_value(0.8977, "percent") == ("89.77", repr(0.8977))
    assert format_value(-2.511e4, "fixed2")[0] == "-25,110.00"
    assert format_value(6.0e-77, "pvalue")[0] == "< 0.0001"
    assert format_value(float("inf"), "sig3")[0] == "∞"
    assert format_value(float("nan"), "percent") == ("", None)
    assert format_value(None, "text") == ("", None)
    assert format_value(True, "bool") == ("yes", None)
    assert format_value(9732.34, "ppm")[0] == "9,732"
    assert format_value(3.1e-9, "sig3")[0] == "< 0.000001"
    assert format_value(12345, "count")[0] == "12,345" and format_value(12345, "id")[0] == "12345"
    assert COLUMNS["yield"].unit == "%" and column_format("d0").unit == "/cm²"
    assert column_format("yield@0.3").label == "Yield at 0.3 cm²"
    assert column_format("some_new_thing", np.dtype("float64")).fmt == "sig3"
    for v in (1e-12, 3.3e-7, 0.5, 7.0, 1234.5, 2.5e8, -4.2e-5):
        for fmt in ("percent", "percent4", "fixed2", "fixed3", "sig3", "pvalue", "ppm", "count", "id"):
            assert not re.search(r"\d[eE][+-]?\d", format_value(v, fmt)[0]), (v, fmt)


def test_tables_have_labels_units_sort_keys_and_no_empty_columns(html):
    models = html[html.index('id="models-table"'):]
    models = models[:models.index("</table>")]
    assert 'data-col="warnings"' not in models and 'data-col="error"' not in models  # empty: left out
    assert "D0 <span class=\"unit\">[/cm²]</span>" in models
    lots = html[html.index('id="lot-table"'):]
    lots = lots[:lots.index("</table>")]
    assert '<th scope="col" title="yield" class="num" data-col="yield">Yield <span class="unit">[%]</span></th>' in lots
    assert re.search(r'<td data-v="0\.8\d+">8\d\.\d\d</td>', lots)
    body = re.sub(r'data-v="[^"]*"', "", html[html.index("<body>"):])
    body = re.sub(r'src="data:image/png;base64,[^"]*"', "", body)
    assert not re.search(r">[^<]*\d[eE][+-]\d+[^<]*<", body)


def test_executive_summary_links_to_the_sections(fab, html):
    from yieldkit.report.summary import executive_summary, flagged_wafers

    res = analyze(fab.dies, fab.defects, fab.wafers, fab.layout, fab.bin_names)
    sentences = [str(s) for s in executive_summary(res)]
    assert sentences[0].startswith("Final yield is <strong>")
    joined = " ".join(sentences)
    worst = res.lot_yield.nsmallest(1, "yield")["lot_id"].iloc[0]
    assert f"Worst <a href=\"#lots\">lot</a>: {worst} (" in joined
    top_bin = res.bin_pareto.iloc[0]
    assert f'<a href="#bin-pareto">bin {top_bin["category"]} ({top_bin["name"]})</a>' in joined
    assert f'<a href="#defect-pareto">{res.defect_pareto_kill["category"].iloc[0]}</a>' in joined
    fw = flagged_wafers(res)
    expected = set(zip(res.clustering["lot_id"], res.clustering["wafer_id"], strict=True))
    expected |= set(zip(res.zonal["lot_id"], res.zonal["wafer_id"], strict=True))
    pats = res.patterns[res.patterns["pattern"] != "none"]
    expected |= set(zip(pats["lot_id"], pats["wafer_id"], strict=True))
    assert set(zip(fw["lot_id"], fw["wafer_id"], strict=True)) == {(str(a), str(b)) for a, b in expected}
    assert fw["yield"].is_monotonic_increasing
    assert f"{len(fw)} flagged wafer" in joined
    sec = html[html.index('<section id="summary">'):html.index("</section>")]
    assert sec.index('id="executive-summary"') < sec.index('class="cards"')
    for href in re.findall(r'<a href="#([a-z-]+)">', sec):
        assert f'<section id="{href}">' in html, href


def test_executive_summary_escapes_data(fab):
    from yieldkit.report.summary import executive_summary

    dies = fab.dies.copy()
    dies["lot_id"] = dies["lot_id"].astype(object).where(dies["lot_id"] != "L0001", EVIL).astype("string[pyarrow]")
    text = " ".join(str(s) for s in executive_summary(analyze(dies, layout=fab.layout)))
    assert EVIL not in text and "&lt;script&gt;" in text


def test_gallery_filters_legend_and_script(html, fab):
    figs = re.findall(r'<figure data-lot="([^"]*)" data-wafer="([^"]*)" data-pattern="([^"]*)" data-yield="([^"]*)">'
                      r'<img src="data:image/png;base64,', html)
    assert len(figs) == 4
    assert all(0 <= float(y) <= 100 for *_, y in figs)
    assert any(p for _, _, p, _ in figs)  # the pretrained classifier's pattern, to filter by
    assert '<form class="gallery-filter" id="gallery-filter" hidden>' in html  # shown by the script only
    legend = html[html.index('id="bin-legend"'):html.index("</ul>", html.index('id="bin-legend"'))]
    assert legend.count("<li>") == yk.final_results(fab.dies)["hbin"].nunique()  # the bins on the maps
    assert "1 PASS (pass)" in legend
    scripts = re.findall(r"<script\b[^>]*>(.*?)</script>", html, flags=re.S)
    assert len(scripts) == 1
    js = scripts[0]
    assert len(js.splitlines()) < 200  # hand-written and small
    for word in ("fetch(", "XMLHttpRequest", "import(", "http:", "https:", "eval(", "innerHTML"):
        assert word not in js, word


def test_report_script_file_is_inlined_whole():
    from importlib.resources import files

    from yieldkit.report.html import _script

    text = files("yieldkit.report").joinpath("templates", "report.js").read_text(encoding="utf-8")
    assert str(_script()) == text and "</script" not in text.lower()
