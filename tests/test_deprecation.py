"""Renamed keywords: the old name still works for one release, with a DeprecationWarning."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import yieldkit as yk
from yieldkit._deprecation import renamed_kwargs


def test_renamed_kwargs_forwards_warns_and_refuses_both():
    @renamed_kwargs(old="new")
    def f(*, new=0):
        return new

    assert f(new=3) == 3
    with pytest.warns(DeprecationWarning, match="'old' argument of .*f is deprecated.*use 'new'"):
        assert f(old=4) == 4
    with pytest.raises(TypeError, match="got both 'old' and its new name 'new'"):
        f(old=1, new=2)


def test_simulate_fab_seed_is_random_state():
    new = yk.simulate_fab(n_lots=1, wafers_per_lot=2, random_state=5)
    with pytest.warns(DeprecationWarning, match="'seed' argument of simulate_fab"):
        old = yk.simulate_fab(n_lots=1, wafers_per_lot=2, seed=5)
    pd.testing.assert_frame_equal(old.dies, new.dies)
    pd.testing.assert_frame_equal(old.defects, new.defects)


def test_clustering_stats_old_keywords():
    from yieldkit.spatial import clustering_stats

    fab = yk.simulate_fab(n_lots=1, wafers_per_lot=2, random_state=3)
    counts = yk.maps.die_defect_counts(fab.dies, fab.defects).table
    new = clustering_stats(counts, value_col="n_defects", permutations=19, random_state=1)
    with pytest.warns(DeprecationWarning) as rec:
        old = clustering_stats(counts, value="n_defects", permutations=19, seed=1)
    assert {str(w.message).split("'")[1] for w in rec} == {"value", "seed"}
    pd.testing.assert_frame_equal(old, new)


def test_critical_area_yield_takes_d0_first():
    """``critical_area_yield(d0, critical_area)`` like every other ``*_yield(d0, area)``."""
    d0, ac = np.array([1.0, 0.4]), np.array([0.2, 0.5])
    assert yk.critical_area_yield(d0=d0, critical_area=ac) == pytest.approx(np.exp(-(d0 * ac).sum()), rel=1e-15)
    with pytest.raises(yk.errors.YieldkitValueError, match="'d0' argument"):
        yk.critical_area_yield([-1.0], [1.0])


def test_column_keywords_end_in_col():
    from yieldkit.maps import bin_frequency, stack_map
    from yieldkit.quality import fallout_curve

    fab = yk.simulate_fab(n_lots=1, wafers_per_lot=2, random_state=2)
    counts = yk.maps.die_defect_counts(fab.dies, fab.defects).table
    with pytest.warns(DeprecationWarning, match="'value' argument of stack_map"):
        old = stack_map(counts, value="n_defects")
    pd.testing.assert_frame_equal(old, stack_map(counts, value_col="n_defects"))
    with pytest.warns(DeprecationWarning, match="'column' argument of bin_frequency"):
        old = bin_frequency(fab.dies, column="sbin")
    pd.testing.assert_frame_equal(old, bin_frequency(fab.dies, bin_col="sbin"))
    d = fab.dies.rename(columns={"die_x": "cx", "die_y": "cy"})
    with pytest.warns(DeprecationWarning) as rec:
        old = yk.layout.WaferLayout.from_dies(d, die_x="cx", die_y="cy")
    assert sorted(str(w.message).split("'")[1] for w in rec) == ["die_x", "die_y"]
    assert all("WaferLayout.from_dies" in str(w.message) for w in rec)
    assert old == yk.layout.WaferLayout.from_dies(d, die_x_col="cx", die_y_col="cy")
    dies = pd.DataFrame({"fft": [1, 2, None, None, 2, None]})
    tests = pd.DataFrame({"t": [1, 2], "cov": [0.5, 0.9]})
    with pytest.warns(DeprecationWarning) as rec:
        old = fallout_curve(dies, tests, first_fail_test="fft", test="t", coverage="cov")
    assert sorted(str(w.message).split("'")[1] for w in rec) == ["coverage", "first_fail_test", "test"]
    pd.testing.assert_frame_equal(old.table,
                                  fallout_curve(dies, tests, first_fail_col="fft", test_col="t", coverage_col="cov").table)


def test_die_defect_counts_takes_dies_first():
    fab = yk.simulate_fab(n_lots=1, wafers_per_lot=2, random_state=6)
    new = yk.die_defect_counts(fab.dies, fab.defects)
    with pytest.warns(DeprecationWarning, match=r"die_defect_counts\(defects, dies_or_layout\) is deprecated"):
        old = yk.die_defect_counts(fab.defects, fab.dies)
    pd.testing.assert_frame_equal(old.table, new.table)
    assert old.n_off_die == new.n_off_die and old.off_die == new.off_die
    with pytest.warns(DeprecationWarning):
        old = yk.die_defect_counts(fab.defects, fab.layout)
    pd.testing.assert_frame_equal(old.table, yk.die_defect_counts(fab.layout, fab.defects).table)


def test_commonality_moved_out_of_classify():
    import yieldkit.classify as classify
    from yieldkit.commonality import commonality

    assert yk.commonality is commonality
    assert "commonality" not in classify.__all__ and "CommonalityResult" not in classify.__all__
    with pytest.warns(DeprecationWarning, match="use yieldkit.commonality"):
        assert classify.commonality is commonality


def test_control_chart_column_keywords():
    t = pd.DataFrame({"lot_id": ["A", "A", "B"], "wafer_id": ["1", "2", "1"], "n": [100, 100, 50],
                      "g": [90, 80, 45], "c": [3, 5, 4], "a": [1.0, 2.0, 1.5]})
    new = yk.p_chart(t, tested_col="n", good_col="g", label_cols=["wafer_id"])
    with pytest.warns(DeprecationWarning, match="'n' argument of p_chart .* use 'tested_col'"):
        old = yk.p_chart(t, n="n", good_col="g", label_cols=["wafer_id"])
    pd.testing.assert_frame_equal(old.table, new.table)
    assert list(new.table.columns[:1]) == ["wafer_id"]
    new = yk.u_chart(t, count_col="c", exposure_col="a")
    with pytest.warns(DeprecationWarning, match="'exposure' argument of u_chart"):
        old = yk.u_chart(t, count_col="c", exposure="a")
    pd.testing.assert_frame_equal(old.table, new.table)
    assert new.statistic == "defects_per_cm2"


def test_fallout_fit_column_keywords():
    from yieldkit.quality import FalloutFit

    curve = pd.DataFrame({"t": [0.3, 0.6, 0.9], "f": [0.05, 0.08, 0.1]})
    new = FalloutFit().fit(curve, coverage_col="t", fail_fraction_col="f", n_tested=1000)
    with pytest.warns(DeprecationWarning, match="'coverage' argument of FalloutFit.fit"):
        old = FalloutFit().fit(curve, coverage="t", fail_fraction_col="f", n_tested=1000)
    pd.testing.assert_series_equal(old.params_, new.params_)


def test_plotting_column_keywords():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from yieldkit.plotting.maps import plot_defect_scatter, plot_stacked_map
    from yieldkit.plotting.pareto import plot_pareto
    from yieldkit.plotting.quality import plot_defect_level
    from yieldkit.plotting.wafermap import WaferMapDisplay, plot_wafer_map
    from yieldkit.quality import dppm_table

    fab = yk.simulate_fab(n_lots=1, wafers_per_lot=1, random_state=2)
    counts = yk.die_defect_counts(fab.dies, fab.defects).table
    try:
        with pytest.warns(DeprecationWarning, match="'column' argument of plot_wafer_map"):
            plot_wafer_map(counts, value="value", column="n_defects")
        with pytest.warns(DeprecationWarning, match="'column' argument of WaferMapDisplay.from_dies"):
            disp = WaferMapDisplay.from_dies(counts, value="value", column="n_defects")
        assert disp.value_col == "n_defects"
        with pytest.warns(DeprecationWarning, match="'value' argument of plot_stacked_map"):
            plot_stacked_map(yk.stack_map(fab.dies), value="fail_rate")
        with pytest.warns(DeprecationWarning, match="'hue' argument of plot_defect_scatter"):
            plot_defect_scatter(fab.defects, fab.layout, hue="defect_class")
        table = yk.pareto(fab.defects)
        with pytest.warns(DeprecationWarning, match="'value' argument of plot_pareto"):
            ax = plot_pareto(table, value="count", label="category")
        assert ax.get_ylabel() == "count"
        with pytest.warns(DeprecationWarning, match="'value' argument of plot_defect_level"):
            ax = plot_defect_level(dppm_table([0.5, 0.9], [0.8]), value="defect_level")
        assert ax.get_ylabel() == "defect level [-]"
    finally:
        plt.close("all")
