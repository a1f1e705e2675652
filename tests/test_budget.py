"""Yield-loss budget (yieldkit.budget) against simulated truth, and its waterfall plot."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import inspect

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.axes import Axes

import yieldkit as yk
from yieldkit.budget import (
    FIT,
    YieldBudget,
    entitlement,
    impact_pareto,
    sequential_waterfall,
    yield_budget,
)
from yieldkit.errors import SchemaError, YieldkitValueError
from yieldkit.inspection import match_steps, simulate_inspections
from yieldkit.plotting.budget import plot_yield_waterfall
from yieldkit.plotting.inspection import plot_field_stack


@pytest.fixture(scope="module")
def fab():
    """90 wafers; wafer-level systematic loss (Y0 = 0.9), parametric bins 6 and 7, every defect
    detected at its own step (so the defect components' truth is exact)."""
    return simulate_inspections(n_lots=3, wafers_per_lot=30, detect_prob=1.0, y0=0.9, random_state=31)


@pytest.fixture(scope="module")
def adders(fab):
    return match_steps(fab.defects, order=fab.steps).table


@pytest.fixture(scope="module")
def budget(fab, adders):
    return yield_budget(fab.dies, adders, systematic=FIT, by=("source_step", "defect_class"),
                        parametric_bins=[6, 7], layout=fab.layout, conf_level=0.95, random_state=2)


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def test_components_recovered_within_their_intervals(fab, budget):
    """Y0 (window method), every (layer, class) limited yield, both bins and the remainder
    (truth 1: every defect detected) lie inside their 95 % intervals."""
    truth = fab.truth["components"].set_index("component")["yield"]
    t = budget.table.set_index(budget.table["component"].astype(str))
    missing = set(truth.index) - set(t.index)
    assert not missing
    for name, y in truth.items():
        lo, hi = t.loc[name, "ci_lower"], t.loc[name, "ci_upper"]
        assert lo <= y <= hi, (name, y, lo, hi)
    assert t.loc["systematic", "kind"] == "systematic" and t.loc["bin 6", "kind"] == "parametric"
    assert isinstance(budget, YieldBudget) and "YieldBudget" in repr(budget)


def test_losses_add_up_to_one_minus_yield_in_any_order(fab, adders, budget):
    y = budget.observed_yield
    assert y == pytest.approx(fab.dies["passed"].mean(), abs=0)
    assert abs(budget.table["loss"].sum() - (1 - y)) < 1e-12
    assert np.prod(budget.table["yield"]) == pytest.approx(y, rel=1e-12)
    # the log-share allocation does not depend on the order of the components
    rev = budget.table.iloc[::-1].reset_index(drop=True)
    assert abs(rev["loss"].sum() - (1 - y)) < 1e-12
    shuffled = yield_budget(fab.dies, adders.sample(frac=1.0, random_state=4), systematic=0.9,
                            by=("source_step", "defect_class"), parametric_bins=[6, 7])
    fixed = yield_budget(fab.dies, adders, systematic=0.9, by=("source_step", "defect_class"), parametric_bins=[6, 7])
    pd.testing.assert_frame_equal(shuffled.table, fixed.table, rtol=1e-9)
    # the sequential waterfall adds up too, but its split depends on the order
    seq = sequential_waterfall(budget)
    back = sequential_waterfall(budget, order=list(budget.table["component"].astype(str))[::-1])
    assert abs(seq["loss"].sum() - (1 - y)) < 1e-12 and abs(back["loss"].sum() - (1 - y)) < 1e-12
    first = seq.set_index("component").loc["systematic", "loss"]
    last = back.set_index("component").loc["systematic", "loss"]
    assert first > last
    assert (seq["method"] == "sequential (order-dependent)").all()


def test_budget_without_defects_or_systematic(fab):
    b = yield_budget(fab.dies, systematic=None, parametric_bins=[6])
    assert list(b.table["component"]) == ["bin 6", "remainder"]
    assert abs(b.table["loss"].sum() - (1 - b.observed_yield)) < 1e-12
    # bins in test order: the second bin's pass rate is over the dies that reached it
    b2 = yield_budget(fab.dies, systematic=None, parametric_bins=[6, 7])
    n6 = (fab.dies.hbin == 6).sum()
    n7 = (fab.dies.hbin == 7).sum()
    y7 = b2.table.set_index("component").loc["bin 7", "yield"]
    assert y7 == pytest.approx(1 - n7 / (len(fab.dies) - n6), rel=1e-12)


def test_impact_pareto_and_value(budget):
    p = impact_pareto(budget, price_per_die=20.0, dies_per_wafer=923, wafers=100)
    assert list(p["yield_points"]) == sorted(p["yield_points"], reverse=True)
    assert "remainder" not in set(p["category"])
    loss = budget.table.set_index("component")["loss"]
    top = p.iloc[0]
    assert top["yield_points"] == pytest.approx(100 * loss[top["category"]])
    assert top["value"] == pytest.approx(20.0 * 923 * 100 * loss[top["category"]])
    assert p["cum_share"].iloc[-1] == pytest.approx(1.0)
    from yieldkit.plotting.pareto import plot_pareto

    ax = plot_pareto(p, value_col="yield_points")
    assert isinstance(ax, Axes)


def test_entitlement(fab, budget):
    wy = yk.wafer_yield(fab.dies)
    e = entitlement(wy, budget=budget, percentile=90)
    assert e.entitlement == pytest.approx(np.percentile(wy["yield"], 90))
    assert e.current == pytest.approx(wy["yield"].mean())
    assert e.table["gap"].sum() == pytest.approx(e.gap)
    assert "systematic" not in set(e.table["component"])
    m = entitlement(method="model", budget=budget)
    defect = budget.table[budget.table["kind"] == "defect"]
    assert m.entitlement == pytest.approx(budget.observed_yield / np.prod(defect["yield"]))
    assert m.table["gap"].sum() == pytest.approx(m.gap)
    assert set(m.table["component"]) == set(defect["component"])
    with pytest.raises(YieldkitValueError, match="budget"):
        entitlement(method="model")
    with pytest.raises(YieldkitValueError, match="method"):
        entitlement(wy, method="best")
    with pytest.raises(SchemaError, match="yield"):
        entitlement(wy.drop(columns=["yield"]))


def test_errors(fab, adders):
    with pytest.raises(YieldkitValueError, match="die area"):
        yield_budget(fab.dies, adders, systematic=FIT)
    with pytest.raises(YieldkitValueError, match="systematic"):
        yield_budget(fab.dies, adders, systematic=1.5)
    with pytest.raises(YieldkitValueError, match="systematic"):
        yield_budget(fab.dies, adders, systematic="window")
    with pytest.raises(SchemaError, match="nope"):
        yield_budget(fab.dies, adders, systematic=None, by=("nope",))
    with pytest.raises(YieldkitValueError, match="order"):
        sequential_waterfall(yield_budget(fab.dies, systematic=None), order=["x"])


def test_a_fitted_model_gives_y0(fab, adders):
    m = yk.PoissonYield(ci_method="wald").fit_window(fab.dies, fab.layout.die_area_cm2)
    b = yield_budget(fab.dies, adders, systematic=m, by=("source_step", "defect_class"))
    row = b.table.set_index("component").loc["systematic"]
    assert row["yield"] == pytest.approx(m.y0_)


@pytest.mark.parametrize("f", [plot_yield_waterfall, plot_field_stack])
def test_plotters_follow_the_contract(f):
    params = inspect.signature(f).parameters
    assert params["ax"].kind is inspect.Parameter.KEYWORD_ONLY and params["ax"].default is None
    assert any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def test_waterfall_plot(budget):
    ax = plot_yield_waterfall(budget, color="#123456", title="$budget$")
    assert isinstance(ax, Axes)
    n = len(budget.table)
    bars = ax.patches
    assert len(bars) == n + 2  # start, components, yield
    assert bars[1].get_facecolor()[:3] == pytest.approx(matplotlib.colors.to_rgb("#123456"))
    assert bars[-1].get_height() == pytest.approx(budget.observed_yield)
    assert ax.get_title() == "$budget$"
    seq = plot_yield_waterfall(budget, sequential=True)
    assert "order-dependent" in seq.get_ylabel()
    with pytest.raises(SchemaError):
        plot_yield_waterfall(pd.DataFrame({"a": [1]}))


def test_field_stack_plot():
    from yieldkit.inspection import find_repeaters

    f = simulate_inspections(n_lots=1, wafers_per_lot=1, repeaters=2, random_state=13)
    m = match_steps(f.defects, order=f.steps).table
    r = find_repeaters(m[m.layer == "M2"], f.layout, shot=(2, 2), x_col="x_ref_um", y_col="y_ref_um")
    ax = plot_field_stack(r, field_size_um=(12_000, 10_000), s=3)
    assert isinstance(ax, Axes) and len(ax.collections) == 3
    assert ax.collections[0].get_sizes()[0] == 3


@pytest.mark.parametrize("name", ["YieldBudget", "Entitlement", "StepMatch", "RepeaterResult"])
def test_result_classes_are_exported(name):
    from yieldkit.results import TableResult

    cls = getattr(yk, name)
    assert issubclass(cls, TableResult) and name in yk.__all__
    module = __import__(cls.__module__, fromlist=["__all__"])
    assert name in module.__all__


def test_intervals_allow_for_wafer_clustering():
    """Densities varying from wafer to wafer (gamma, cluster_alpha = 2): the wafer-clustered
    variances keep every defect component's truth, (1 + A D k / alpha)^-alpha, inside its 99 %
    interval."""
    f = simulate_inspections(n_lots=2, wafers_per_lot=25, detect_prob=1.0, cluster_alpha=2.0, y0=0.95,
                             random_state=100)
    m = match_steps(f.defects, order=f.steps).table
    b = yield_budget(f.dies, m, systematic=0.95, by=("source_step", "defect_class"), parametric_bins=[6, 7],
                     conf_level=0.99)
    t = b.table.set_index(b.table["component"].astype(str))
    for name, y in f.truth["components"].set_index("component")["yield"].items():
        if name != "systematic":
            assert t.loc[name, "ci_lower"] <= y <= t.loc[name, "ci_upper"], name
