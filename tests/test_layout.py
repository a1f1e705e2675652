"""WaferLayout: on-wafer die set, coordinate round trips, edge conventions, inference."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from yieldkit import WaferLayout
from yieldkit.errors import SchemaError, YieldkitValueError


def _brute_force_on_wafer(lay: WaferLayout) -> set[tuple[int, int]]:
    """Every die whose four corners lie inside the usable radius, by direct enumeration."""
    w, h = lay.die_pitch_um
    x0, y0 = lay.origin_um
    r = lay.usable_radius_um
    n = int(math.ceil(lay.radius_um / min(w, h))) + 3
    out = set()
    for i in range(-n, n + 1):
        for j in range(-n, n + 1):
            corners = [(x0 + (i + a) * w, y0 + (j + b) * h) for a in (0, 1) for b in (0, 1)]
            if all(cx * cx + cy * cy <= r * r for cx, cy in corners):
                out.add((i, j))
    return out


@pytest.mark.parametrize(
    "kw",
    [
        dict(diameter_mm=200, die_pitch_um=(6000, 5000), edge_exclusion_mm=3),
        dict(diameter_mm=150, die_pitch_um=(3100, 7300), origin_um=(-1234.5, 777.0), edge_exclusion_mm=0),
        dict(diameter_mm=300, die_pitch_um=(10000, 10000), origin_um=(0.0, 0.0), edge_exclusion_mm=5),
    ],
)
def test_on_wafer_dies_match_brute_force_corner_test(kw):
    lay = WaferLayout(**kw)
    got = set(map(tuple, lay.dies()[["die_x", "die_y"]].to_numpy().tolist()))
    assert got == _brute_force_on_wafer(lay)
    assert lay.n_dies == len(got)


def test_die_area_and_default_origin():
    lay = WaferLayout(diameter_mm=200, die_pitch_um=(6000, 5000))
    assert lay.die_area_cm2 == pytest.approx(0.3)
    assert lay.origin_um == (-3000.0, -2500.0)


def test_locating_a_die_centre_gives_that_die():
    lay = WaferLayout(diameter_mm=200, die_pitch_um=(6000, 5000), origin_um=(-1000.0, 300.0))
    d = lay.dies()
    loc = lay.locate(d["x_center_um"], d["y_center_um"])
    assert (loc["die_x"].to_numpy() == d["die_x"].to_numpy()).all()
    assert (loc["die_y"].to_numpy() == d["die_y"].to_numpy()).all()
    np.testing.assert_allclose(loc["xrel_um"], 3000.0)
    np.testing.assert_allclose(loc["yrel_um"], 2500.0)


def test_points_on_die_edges_go_to_the_documented_side():
    """The lower/left edge belongs to the die; the upper/right edge to its neighbour."""
    lay = WaferLayout(diameter_mm=200, die_pitch_um=(6000, 5000), origin_um=(0.0, 0.0))
    loc = lay.locate([0.0, 6000.0, 0.0, 5999.999], [0.0, 0.0, 5000.0, 4999.999])
    assert loc["die_x"].tolist() == [0, 1, 0, 0]
    assert loc["die_y"].tolist() == [0, 0, 1, 0]
    assert loc["xrel_um"].tolist()[:3] == [0.0, 0.0, 0.0]
    # rounding must never give an offset outside [0, pitch)
    x = np.array([0.1 + 0.2, 3 * 0.1 * 20000, -1e-9, -6000.0 * 7])
    i, j, xr, yr = lay.die_index(x, x)
    assert ((xr >= 0) & (xr < 6000)).all() and ((yr >= 0) & (yr < 5000)).all()


@settings(max_examples=200, deadline=None)
@given(
    x=st.floats(-99_000, 99_000, allow_nan=False),
    y=st.floats(-99_000, 99_000, allow_nan=False),
    w=st.floats(500, 20_000),
    h=st.floats(500, 20_000),
)
def test_locate_position_round_trip(x, y, w, h):
    lay = WaferLayout(diameter_mm=200, die_pitch_um=(w, h), edge_exclusion_mm=0)
    i, j, xr, yr = lay.die_index([x], [y])
    assert 0 <= xr[0] < w and 0 <= yr[0] < h
    bx, by = lay.position(i, j, xr, yr)
    assert bx[0] == pytest.approx(x, abs=1e-6) and by[0] == pytest.approx(y, abs=1e-6)


def test_points_off_every_die_keep_missing_die_index():
    lay = WaferLayout(diameter_mm=100, die_pitch_um=(5000, 5000), edge_exclusion_mm=3)
    loc = lay.locate([0.0, 49_900.0, np.nan], [0.0, 0.0, 1.0])
    assert loc["die_x"].isna().tolist() == [False, True, True]
    assert str(loc["die_x"].dtype) == "Int32"


def test_from_dies_infers_a_flagged_layout_with_exactly_those_dies():
    dies = pd.DataFrame({"die_x": [0, 1, 2, 1, 1], "die_y": [1, 1, 1, 0, 2]})
    lay = WaferLayout.from_dies(dies)
    assert lay.inferred
    assert lay.die_pitch_um == (1.0, 1.0)
    got = set(map(tuple, lay.dies()[["die_x", "die_y"]].to_numpy().tolist()))
    assert got == {(0, 1), (1, 1), (2, 1), (1, 0), (1, 2)}
    assert lay.on_wafer([0, 0], [1, 0]).tolist() == [True, False]
    # the inferred grid is centred: die (1, 1) is at the origin
    cx, cy = lay.die_centers([1], [1])
    assert cx[0] == pytest.approx(0.0) and cy[0] == pytest.approx(0.0)


def test_to_dict_round_trip():
    lay = WaferLayout(diameter_mm=150, die_pitch_um=(3100, 7300), origin_um=(-5.0, 2.0), edge_exclusion_mm=2)
    assert WaferLayout.from_dict(lay.to_dict()) == lay
    inferred = WaferLayout.from_dies(pd.DataFrame({"die_x": [0, 1], "die_y": [0, 0]}))
    assert WaferLayout.from_dict(inferred.to_dict()) == inferred


@pytest.mark.parametrize(
    "kw, match",
    [
        (dict(diameter_mm=-1), "diameter_mm"),
        (dict(die_pitch_um=(0, 5)), "die_pitch_um"),
        (dict(diameter_mm=100, edge_exclusion_mm=60), "edge_exclusion_mm"),
    ],
)
def test_bad_geometry_is_a_clear_error(kw, match):
    with pytest.raises(YieldkitValueError, match=match):
        WaferLayout(**kw)


def test_from_empty_dies_is_an_error():
    with pytest.raises(SchemaError, match="empty"):
        WaferLayout.from_dies(pd.DataFrame({"die_x": [], "die_y": []}))
