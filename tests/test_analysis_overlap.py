"""analyze() warns when the defect table's wafers are mostly absent from the die table."""

from __future__ import annotations

import warnings

import pytest

import yieldkit as yk
from yieldkit.analysis import analyze
from yieldkit.errors import DataQualityWarning


@pytest.fixture(scope="module")
def fab():
    return yk.simulate_fab(n_lots=1, wafers_per_lot=4, seed=5)


def test_disjoint_wafers_warn(fab):
    defects = fab.defects.copy()
    defects["lot_id"] = "OTHER" + defects["lot_id"].astype(str)
    with pytest.warns(DataQualityWarning, match=r"only 0 of the 4 wafer\(s\) in the defect table are in the die table"):
        analyze(fab.dies, defects, layout=fab.layout)


def test_half_matching_wafers_do_not_warn(fab):
    defects = fab.defects.copy()
    wafers = sorted(defects["wafer_id"].astype(str).unique())
    moved = defects["wafer_id"].astype(str).isin(wafers[:2])
    defects["lot_id"] = defects["lot_id"].astype(str).where(~moved, "OTHER")
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*wafer\\(s\\) in the defect table.*", category=DataQualityWarning)
        analyze(fab.dies, defects, layout=fab.layout)
