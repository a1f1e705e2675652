"""Plot tests (Agg backend): content is checked, not just that nothing raised."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest

import yieldkit as yk
from yieldkit.errors import SchemaError, YieldkitValueError
from yieldkit.maps import defect_kde, radial_profile, stack_map
from yieldkit.plotting.maps import (
    plot_defect_kde,
    plot_defect_scatter,
    plot_radial_profile,
    plot_stacked_map,
)
from yieldkit.plotting.wafermap import WaferMapDisplay, plot_wafer_map


@pytest.fixture(scope="module")
def fab():
    return yk.simulate_fab(n_lots=1, wafers_per_lot=3, random_state=5, retest_rate=0.02, signatures={0: "scratch"})


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def _not_blank(fig):
    fig.canvas.draw()
    rgb = np.asarray(fig.canvas.buffer_rgba())[..., :3]
    return rgb.std() > 5


def test_wafer_map_display_bins(fab):
    one = fab.dies[fab.dies.wafer_id == "01"]
    disp = WaferMapDisplay.from_dies(one, layout=fab.layout, bin_names=fab.bin_names, title="W01")
    final = yk.final_results(one)
    assert int(disp.image_.get_array().count()) == len(final) == fab.layout.n_dies
    texts = [t.get_text() for t in disp.legend_.get_texts()]
    present = sorted(final["hbin"].unique())
    assert len(texts) == len(present)
    for b, t in zip(present, texts, strict=True):
        n = int((final["hbin"] == b).sum())
        assert t == f"{b} {fab.bin_names[b]} ({n})"
    assert _not_blank(disp.figure_)
    assert len(disp.ax_.patches) == 3  # outline, edge exclusion, notch
    disp2 = disp.plot(legend=False)
    assert disp2.legend_ is None


def test_wafer_map_display_pass_and_value(fab):
    one = yk.final_results(fab.dies[fab.dies.wafer_id == "02"])
    d = WaferMapDisplay.from_dies(one, value="pass")
    assert [t.get_text().split()[0] for t in d.legend_.get_texts()] == sorted(
        {"pass", "fail"} & {("pass" if p else "fail") for p in one.passed}, key=["pass", "fail"].index)
    c = yk.die_defect_counts(one, fab.defects[fab.defects.wafer_id == "02"].dropna(subset=["die_x"])).table
    v = WaferMapDisplay.from_dies(c, value="value", value_col="n_defects", layout=fab.layout)
    assert v.colorbar_ is not None
    assert int(v.image_.get_array().count()) == len(c)
    assert np.nanmax(v.image_.get_array()) == c.n_defects.max()
    with pytest.raises(SchemaError, match="one wafer"):
        WaferMapDisplay.from_dies(fab.dies)
    with pytest.raises(YieldkitValueError, match="'value'"):
        WaferMapDisplay.from_dies(one, value="colour")


def test_report_call_still_works(fab):
    one = yk.final_results(fab.dies[fab.dies.wafer_id == "03"])
    fig, ax = plt.subplots()
    out = plot_wafer_map(one, value="bin", layout=fab.layout, bin_names=fab.bin_names, ax=ax, title="t", legend=False)
    assert out is ax and ax.get_legend() is None and len(ax.images) == 1


def test_stacked_map_and_profile(fab):
    s = stack_map(fab.dies)
    img = plot_stacked_map(s, layout=fab.layout, title="stacked").images[-1]
    assert int(img.get_array().count()) == len(s)
    np.testing.assert_allclose(np.nanmax(img.get_array()), s.fail_rate.max())
    assert _not_blank(img.axes.figure)
    p = radial_profile(fab.defects, fab.layout, n_rings=6)
    lines = plot_radial_profile(p).containers
    assert len(lines) == 1
    np.testing.assert_allclose(lines[0].lines[0].get_ydata(), p.density)
    pl = radial_profile(fab.defects, fab.layout, n_rings=6, level="wafer")
    assert len(plot_radial_profile(pl).containers) == 3
    with pytest.raises(SchemaError, match="'nope'"):
        plot_stacked_map(s, value_col="nope")


def test_defect_scatter_and_kde(fab):
    one = fab.defects[fab.defects.wafer_id == "01"]
    ax = plot_defect_scatter(one, fab.layout, title="defects")
    drawn = ax.collections[1:]  # after the die outlines
    assert sum(len(c.get_offsets()) for c in drawn) == len(one)
    assert len(ax.collections[0].get_paths()) == fab.layout.n_dies  # die outlines
    labels = [t.get_text().split(" (")[0] for t in ax.get_legend().get_texts()]
    assert labels == sorted(one.defect_class.unique())
    k = defect_kde(one, fab.layout, grid_size=64)
    img = plot_defect_kde(k, layout=fab.layout).images[-1]
    assert img.get_array().shape == (64, 64) and _not_blank(img.axes.figure)


def test_bin_colours_give_every_wafer_the_same_palette(fab):
    """``colours=`` from :func:`bin_colours` over all wafers colours a bin alike on every map, even on a
    wafer that lacks the bins before it (its own palette would shift the colours)."""
    from yieldkit.plotting.wafermap import _FAIL_COLOURS, _PASS_COLOURS, bin_colours

    pal = bin_colours([1, 2, 3, 5, 2], pass_bins=[1])
    assert pal == {1: _PASS_COLOURS[0], 2: _FAIL_COLOURS[0], 3: _FAIL_COLOURS[1], 5: _FAIL_COLOURS[2]}
    dies = yk.final_results(fab.dies)
    w = dies[dies["wafer_id"] == dies["wafer_id"].iloc[0]]
    w = w[w["hbin"].isin([1, 5]) | (w["hbin"] == w["hbin"].max())].copy()
    w.loc[~w["passed"], "hbin"] = 5
    own = WaferMapDisplay.from_dies(w, legend=False)
    shared = WaferMapDisplay.from_dies(w, legend=False, colours=pal)
    assert own.colours == [_PASS_COLOURS[0], _FAIL_COLOURS[0]]  # bin 5 is this wafer's first fail bin
    assert shared.colours == [pal[1], pal[5]]
