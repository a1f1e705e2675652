"""The plotting contract (Agg backend): ``ax`` keyword-only, the Axes or a Display returned,
``**kwargs`` reaching the main artist, data text drawn as given (no mathtext), figure export in
:mod:`yieldkit.plotting.export`, and no matplotlib in ``cli/`` or ``report/``."""

from __future__ import annotations

import ast
import inspect
import json
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.axes import Axes
from matplotlib.text import Text

import yieldkit as yk
from yieldkit.analysis import analyze
from yieldkit.cli import main
from yieldkit.errors import YieldkitValueError
from yieldkit.layout import WaferLayout
from yieldkit.maps import defect_kde, radial_profile
from yieldkit.plotting import classify as pclassify
from yieldkit.plotting import maps as pmaps
from yieldkit.plotting import models as pmodels
from yieldkit.plotting import pareto as ppareto
from yieldkit.plotting import quality as pquality
from yieldkit.plotting import spc as pspc
from yieldkit.plotting import wafermap as pwafermap
from yieldkit.plotting.export import figure_to_data_uri, pdf_pages, save_figure
from yieldkit.plotting.wafermap import WaferMapDisplay, plot_wafer_map
from yieldkit.report import build_report
from yieldkit.simulate import write_fab

PKG = Path(yk.__file__).parent
PLOTTERS = [f for mod in (pclassify, pmaps, pmodels, ppareto, pquality, pspc, pwafermap)
            for name, f in vars(mod).items() if name.startswith("plot_") and inspect.isfunction(f)
            and f.__module__ == mod.__name__]


@pytest.fixture(scope="module")
def fab():
    return yk.simulate_fab(n_lots=1, wafers_per_lot=2, random_state=11)


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


@pytest.mark.parametrize("f", PLOTTERS, ids=lambda f: f.__name__)
def test_every_plotter_takes_ax_keyword_only_and_kwargs(f):
    params = inspect.signature(f).parameters
    assert params["ax"].kind is inspect.Parameter.KEYWORD_ONLY
    assert params["ax"].default is None
    assert any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def test_plotters_return_axes_and_pass_kwargs(fab):
    one = yk.final_results(fab.dies[fab.dies.wafer_id == "01"])
    ax = plot_wafer_map(one, layout=fab.layout, cmap="Greys", alpha=0.5)
    assert isinstance(ax, Axes) and ax.images[-1].get_alpha() == 0.5
    ax = pmaps.plot_stacked_map(yk.stack_map(fab.dies), layout=fab.layout, cmap="Greys")
    assert isinstance(ax, Axes) and ax.images[-1].get_cmap().name == "Greys"
    prof = radial_profile(fab.defects, fab.layout, n_rings=4)
    ax = pmaps.plot_radial_profile(prof, color="#123456")
    assert isinstance(ax, Axes) and ax.containers[0].lines[0].get_color() == "#123456"
    ax = pmaps.plot_defect_scatter(fab.defects[fab.defects.wafer_id == "01"], fab.layout, marker="x")
    assert isinstance(ax, Axes) and len(ax.collections) > 1
    ax = pmaps.plot_defect_kde(defect_kde(fab.defects, fab.layout, grid_size=16), cmap="Greys")
    assert isinstance(ax, Axes) and ax.images[-1].get_cmap().name == "Greys"
    table = yk.pareto(fab.defects)
    ax = ppareto.plot_pareto(table, color="#9467bd", hatch="//")
    assert isinstance(ax, Axes) and ax.patches[0].get_hatch() == "//"
    np.testing.assert_allclose(ax.patches[0].get_facecolor()[:3], matplotlib.colors.to_rgb("#9467bd"))
    assert ax.cumulative_ax.get_ylabel() == "cumulative [%]"
    kr = yk.kill_ratio(fab.dies, fab.defects)
    ax = ppareto.plot_kill_ratios(kr, ms=9)
    assert isinstance(ax, Axes) and ax.lines[0].get_markersize() == 9
    chart = yk.p_chart(yk.wafer_yield(fab.dies))
    ax = pspc.plot_control_chart(chart, lw=3.0)
    assert isinstance(ax, Axes) and ax.lines[0].get_linewidth() == 3.0
    table = yk.quality.dppm_table([0.9], np.linspace(0.5, 0.99, 5))
    ax = pquality.plot_defect_level(table, ls=":")
    assert isinstance(ax, Axes) and ax.lines[0].get_linestyle() == ":"
    counts = np.random.default_rng(1).poisson(0.3, 400)
    ax = pmodels.plot_fit([yk.PoissonYield().fit(counts, area=1.0)], lw=2.5)
    assert isinstance(ax, Axes) and ax.lines[0].get_linewidth() == 2.5
    grid = np.ones((5, 5), dtype=int)
    ax = pclassify.plot_grid(grid, alpha=0.3)
    assert isinstance(ax, Axes) and ax.images[-1].get_alpha() == 0.3
    ax = pclassify.plot_confusion(pd.DataFrame([[2, 1], [0, 3]], index=["a", "b"], columns=["a", "b"]),
                                  cmap="Reds")
    assert isinstance(ax, Axes) and ax.images[-1].get_cmap().name == "Reds"
    s = pd.DataFrame({"lot_id": ["A", "B"], "pattern": ["Center", "none"], "wafers": [1, 2]})
    ax = pclassify.plot_pattern_counts(s, edgecolor="k")
    assert isinstance(ax, Axes) and len(ax.containers) == 2


def test_wafer_map_display_computes_once_and_plot_only_draws(fab):
    one = fab.dies[fab.dies.wafer_id == "02"]
    disp = WaferMapDisplay.from_dies(one, layout=fab.layout, bin_names=fab.bin_names)
    grid = disp.grid.copy()
    fig, ax = plt.subplots()
    assert disp.plot(ax=ax, alpha=0.4) is disp
    assert disp.ax_ is ax and disp.image_.get_alpha() == 0.4
    np.testing.assert_array_equal(disp.grid, grid)
    np.testing.assert_array_equal(np.ma.filled(disp.image_.get_array(), np.nan), grid)


def test_die_cells_have_the_layout_aspect_and_the_wafer_outline():
    """A 4 x 8 mm die is drawn as a 1:2 rectangle at its place in the wafer frame."""
    lay = WaferLayout(diameter_mm=100, die_pitch_um=(4_000.0, 8_000.0), edge_exclusion_mm=3)
    dies = lay.dies()
    dies["hbin"] = 1
    dies["passed"] = True
    disp = WaferMapDisplay.from_dies(dies, layout=lay)
    left, right, bottom, top = disp.image_.get_extent()
    ny, nx = disp.grid.shape
    assert (right - left) / nx == pytest.approx(4_000.0)
    assert (top - bottom) / ny == pytest.approx(8_000.0)
    assert disp.ax_.get_aspect() == 1.0
    assert len(disp.ax_.patches) == 3  # outline, edge exclusion, notch


def test_distinct_pass_bins_get_distinct_colours_and_bin_labels_show():
    dies = pd.DataFrame({"die_x": [0, 1, 2, 3], "die_y": [0, 0, 0, 0], "hbin": [1, 2, 31, 31],
                         "passed": [True, True, False, False]})
    disp = WaferMapDisplay.from_dies(dies, bin_names={1: "good", 2: "good-slow", 31: "open"},
                                     bin_labels={1: "0x01", 2: "0x02", 31: "0x1F"})
    assert len(set(disp.colours)) == 3
    texts = [t.get_text() for t in disp.legend_.get_texts()]
    assert texts == ["0x01 good (1)", "0x02 good-slow (1)", "0x1F open (2)"]
    passes = [matplotlib.colors.to_rgb(c) for c in disp.colours[:2]]
    assert all(g > r and g > b for r, g, b in passes)  # pass bins stay green


# --- data text with "$": drawn as text, never parsed as mathtext -------------------------------

DOLLARS = ["L$1$x", "$\\alpha$ bad", "a$b", "L$_$x", "$x^$"]


def _math_free(fig, needle: str) -> None:
    """The figure draws, and every text showing ``needle`` is plain text."""
    fig.canvas.draw()
    hits = [t for t in fig.findobj(Text) if needle in t.get_text()]
    assert hits, needle
    assert not any(t.get_parse_math() for t in hits), needle


@pytest.mark.parametrize("s", DOLLARS)
def test_dollar_in_data_text_is_not_mathtext(fab, s):
    one = yk.final_results(fab.dies[fab.dies.wafer_id == "01"])
    names = dict.fromkeys(one["hbin"].unique().tolist(), s)
    disp = WaferMapDisplay.from_dies(one, layout=fab.layout, bin_names=names, title=f"lot {s}")
    _math_free(disp.figure_, s)
    defects = fab.defects.copy()
    defects["defect_class"] = defects["defect_class"].astype(object).where(
        defects["defect_class"] != defects["defect_class"].iloc[0], s).astype("string[pyarrow]")
    _math_free(ppareto.plot_pareto(yk.pareto(defects), title=s).figure, s)
    _math_free(ppareto.plot_kill_ratios(yk.kill_ratio(fab.dies, defects)).figure, s)
    _math_free(pmaps.plot_defect_scatter(defects, fab.layout).figure, s)
    s2 = pd.DataFrame({"lot_id": [s, "B"], "pattern": [s, "none"], "wafers": [1, 2]})
    _math_free(pclassify.plot_pattern_counts(s2).figure, s)
    _math_free(pclassify.plot_confusion(pd.DataFrame([[1, 0], [0, 1]], index=[s, "b"], columns=[s, "b"])).figure, s)


@pytest.fixture(scope="module")
def dollar_dir(tmp_path_factory):
    """Lot "L$_$x", a defect class "$\\alpha$ bad" and a bin named "a$^$b": mathtext that fails to parse."""
    d = tmp_path_factory.mktemp("dollar")
    fab = yk.simulate_fab(n_lots=1, wafers_per_lot=2, random_state=4)
    write_fab(fab, d, formats=("csv",))
    for name in ("dies.csv", "defects.csv"):
        t = pd.read_csv(d / name, dtype={"wafer_id": str})
        t["lot_id"] = "L$_$x"
        if name == "defects.csv":
            t["defect_class"] = t["defect_class"].where(t["defect_class"] != t["defect_class"].iloc[0],
                                                        "$\\alpha$ bad $x^$")
        t.to_csv(d / name, index=False)
    bins = json.loads((d / "bins.json").read_text())
    (d / "bins.json").write_text(json.dumps({k: f"a$^$b {v}" for k, v in bins.items()}))
    return d


def test_cli_map_pareto_report_with_dollars(dollar_dir, tmp_path, capsys):
    d = dollar_dir
    lay, names = str(d / "layout.json"), str(d / "bins.json")
    assert main(["map", str(d / "dies.csv"), "-o", str(tmp_path / "m.png"), "--layout", lay, "--bin-names", names,
                 "--wafer", "L$_$x/01"]) == 0, capsys.readouterr().err
    assert (tmp_path / "m.png").read_bytes()[:4] == b"\x89PNG"
    assert main(["pareto", str(d / "defects.csv"), "-o", str(tmp_path / "p.png")]) == 0, capsys.readouterr().err
    assert main(["pareto", str(d / "defects.csv"), "-o", str(tmp_path / "p.html")]) == 0, capsys.readouterr().err
    assert "$\\alpha$ bad $x^$" in (tmp_path / "p.html").read_text()
    assert main(["--quiet", "report", str(d / "dies.csv"), "--defects", str(d / "defects.csv"), "--layout", lay,
                 "--bin-names", names, "--max-maps", "2", "-o", str(tmp_path / "r.html")]) == 0, \
        capsys.readouterr().err
    assert "L$_$x" in (tmp_path / "r.html").read_text()


def test_cli_map_of_several_wafers_says_it_drew_one(dollar_dir, tmp_path, capsys):
    assert main(["map", str(dollar_dir / "dies.csv"), "-o", str(tmp_path / "m.png")]) == 0
    warn = [ln for ln in capsys.readouterr().err.splitlines() if ln.lower().startswith("warning")]
    assert len(warn) == 1 and "2 wafers" in warn[0] and "drew only" in warn[0] and "--all" in warn[0], warn
    assert main(["map", str(dollar_dir / "dies.csv"), "-o", str(tmp_path / "m.png"), "--wafer", "02"]) == 0
    assert "drew only" not in capsys.readouterr().err


# --- export, report, and the layering of cli/ and report/ ---------------------------------------

def test_export_functions(fab, tmp_path):
    disp = WaferMapDisplay.from_dies(fab.dies[fab.dies.wafer_id == "01"])
    assert figure_to_data_uri(disp, close=False).startswith("data:image/png;base64,")
    with pdf_pages(tmp_path / "x.pdf") as pdf:
        figure_to_data_uri(disp.ax_, pdf=pdf, close=False)
    assert (tmp_path / "x.pdf").read_bytes()[:5] == b"%PDF-"
    assert save_figure(disp, tmp_path / "sub" / "x.svg").read_text().lstrip().startswith("<?xml")
    assert not plt.get_fignums()  # save_figure closed it
    with pytest.raises(YieldkitValueError, match=r"\.png, \.svg or \.pdf"):
        save_figure(plot_wafer_map(yk.final_results(fab.dies[fab.dies.wafer_id == "01"])), tmp_path / "x.txt")


def test_build_report_takes_results_only_and_times_the_build(fab, tmp_path):
    with pytest.raises(YieldkitValueError, match="call yieldkit.analyze first"):
        build_report(fab.dies)
    res = analyze(fab.dies, fab.defects, layout=fab.layout)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    build_report(res, max_maps=2, output=tmp_path / "r.html", timings=timings)
    wall = time.perf_counter() - t0
    assert 0 < timings["plotting_s"] <= timings["total_s"] <= wall
    assert timings["total_s"] > 0.7 * wall
    import yieldkit.report.html as html

    mutable = [n for n, v in vars(html).items() if not n.startswith("__") and isinstance(v, (list, dict))]
    assert not mutable  # no timing (or other) state kept between builds
    assert not hasattr(build_report, "last_timing")


LAYERED = sorted([*PKG.joinpath("cli").glob("*.py"), *PKG.joinpath("report").glob("*.py")])


@pytest.mark.parametrize("path", LAYERED, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_cli_and_report_never_touch_matplotlib(path):
    src = path.read_text()
    tree = ast.parse(src)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            assert not any(a.name.split(".")[0] == "matplotlib" for a in node.names), path
        elif isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            assert mod.split(".")[0] != "matplotlib", path
            assert not mod.endswith("plotting._mpl") and mod != "_mpl", path
        elif isinstance(node, ast.Attribute):
            assert node.attr not in ("savefig", "subplots", "gcf"), f"{path}: .{node.attr}"
        elif isinstance(node, ast.Name):
            assert node.id not in ("plt", "fig", "pyplot"), f"{path}: {node.id}"
