"""The result contract: tables, or frozen result objects carrying ``.table`` and typed scalars."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pandas as pd
import pytest

import yieldkit as yk
from yieldkit.errors import DataQualityWarning
from yieldkit.results import TableResult


@pytest.fixture(scope="module")
def fab():
    return yk.simulate_fab(n_lots=1, wafers_per_lot=4, random_state=7)


def _results(fab):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataQualityWarning)
        counts = yk.die_defect_counts(fab.dies, fab.defects)
        return {
            "counts": counts,
            "kill": yk.kill_ratio(fab.dies, fab.defects),
            "models": yk.compare_models(counts.table, area=fab.layout.die_area_cm2, models=["poisson", "nb"]),
            "coverage": yk.required_coverage(0.85, [100, 1000]),
            "chart": yk.p_chart(yk.wafer_yield(fab.dies)),
            "clusters": yk.detect_clusters(fab.defects, fab.layout),
        }


def test_results_are_frozen_table_results(fab):
    for name, res in _results(fab).items():
        assert isinstance(res, TableResult), name
        assert isinstance(res.table, pd.DataFrame) and res.table.attrs == {}, name
        pd.testing.assert_frame_equal(res.to_frame(), res.table)
        assert res.to_frame() is not res.table
        r = repr(res)
        assert r.startswith(type(res).__name__ + "(") and "\n" not in r and len(r) < 200, name
        html = res._repr_html_()
        assert html.startswith("<p><code>") and "<table" in html, name
        with pytest.raises(dataclasses.FrozenInstanceError):
            res.table = pd.DataFrame()  # type: ignore[misc]


def test_model_comparison_carries_the_fits(fab):
    comp = _results(fab)["models"]
    assert set(comp.models) == {"poisson", "nb"} and comp.route == "counts" and comp.criterion == "aic"
    assert comp.best is comp.models[comp.table["model"].iloc[0]]
    assert comp.table["aic"].iloc[0] == pytest.approx(comp.best.aic_)


def test_required_coverage_one_type_for_scalars_and_arrays():
    one = yk.required_coverage(0.5, 6907.5)
    many = yk.required_coverage(np.array([[0.5], [0.9]]), [10.0, 100.0, 1000.0])
    assert type(one) is type(many)
    assert np.ndim(one.coverage) == 0 and one.table["coverage"].iloc[0] == one.coverage
    assert many.coverage.shape == (2, 3) and len(many.table) == 6
    np.testing.assert_array_equal(many.table["coverage"].to_numpy(), many.coverage.ravel())
    with pytest.raises(TypeError):
        yk.required_coverage(0.5, 100, full_output=True)  # type: ignore[call-arg]


def test_density_keeps_the_off_die_count(fab):
    counts = _results(fab)["counts"]
    dens = yk.maps.die_defect_density(counts, fab.layout)
    assert isinstance(dens, type(counts)) and (dens.n_off_die, dens.off_die) == (counts.n_off_die, counts.off_die)
    np.testing.assert_allclose(dens.table["density_per_cm2"], counts.table["n_defects"] / fab.layout.die_area_cm2)


def test_kill_ratio_without_joint_estimate_has_nan_joint_yield(fab):
    res = yk.kill_ratio(fab.dies, fab.defects, method="contingency")
    assert np.isnan(res.y_clean_joint) and np.isnan(res.y_clean_joint_ci).all()
    assert not np.isnan(_results(fab)["kill"].y_clean_joint)
