"""The wafer frame transformation (yieldkit.frame): every orientation, its inverse, the policy."""

from __future__ import annotations

import itertools
import logging
import warnings

import numpy as np
import pytest

from yieldkit.errors import DataQualityWarning
from yieldkit.frame import (
    WAFER_FRAME,
    Orientation,
    assume,
    cannot_honour,
    from_wafer_frame,
    grid_to_wafer_frame,
    mark_angle,
    to_wafer_frame,
)

ALL = [Orientation(a, m) for a, m in itertools.product((0, 90, 180, 270), (False, True))]


@pytest.mark.parametrize("ori", ALL, ids=lambda o: f"{o.mark_deg}{'m' if o.mirrored else ''}")
def test_round_trip_every_orientation(ori: Orientation) -> None:
    rng = np.random.default_rng(7)
    x = rng.integers(-50, 50, 200)
    y = rng.integers(-50, 50, 200)
    fx, fy = to_wafer_frame(x, y, ori)
    bx, by = from_wafer_frame(fx, fy, ori)
    np.testing.assert_array_equal(bx, x)
    np.testing.assert_array_equal(by, y)
    wx, wy = from_wafer_frame(x, y, ori)  # the other way round too
    np.testing.assert_array_equal(np.vstack(to_wafer_frame(wx, wy, ori)), np.vstack([x, y]))
    m = ori.matrix
    assert abs(round(np.linalg.det(m))) == 1 and np.array_equal(m @ m.T, np.eye(2))
    assert round(np.linalg.det(m)) == (-1 if ori.mirrored else 1)


def test_eight_orientations_are_eight_distinct_transforms() -> None:
    mats = {tuple(o.matrix.ravel()) for o in ALL}
    assert len(mats) == 8


@pytest.mark.parametrize(("ori", "expect"), [
    (Orientation(0), (1, 2)),
    (Orientation(180), (-1, -2)),
    (Orientation(90), (-2, 1)),    # notch on the left: turn the picture counter-clockwise... x' = -y
    (Orientation(270), (2, -1)),
    (Orientation(0, True), (-1, 2)),
    (Orientation(180, True), (1, -2)),
])
def test_hand_cases(ori: Orientation, expect: tuple[int, int]) -> None:
    fx, fy = to_wafer_frame(np.array([1]), np.array([2]), ori)
    assert (int(fx[0]), int(fy[0])) == expect


@pytest.mark.parametrize(("flat", "xrev", "yrev", "expect"), [
    # STDF: POS_X/POS_Y sign flips, then the flat rotated to the bottom (x, y) = (3, 5)
    (0, False, False, (3, 5)),
    (0, True, False, (-3, 5)),
    (0, False, True, (3, -5)),
    (0, True, True, (-3, -5)),
    (180, False, False, (-3, -5)),
    (90, False, False, (-5, 3)),
    (270, False, False, (5, -3)),
    (90, True, False, (-5, -3)),
])
def test_from_axes_matches_sign_flips_then_rotation(flat: int, xrev: bool, yrev: bool,
                                                    expect: tuple[int, int]) -> None:
    fx, fy = to_wafer_frame(np.array([3]), np.array([5]), Orientation.from_axes(flat, xrev, yrev))
    assert (int(fx[0]), int(fy[0])) == expect


def test_grid_to_wafer_frame_quarter_turn_swaps_pitch() -> None:
    pitch, origin = grid_to_wafer_frame((10.0, 4.0), (-50.0, -20.0), Orientation(90))
    assert pitch == (4.0, 10.0)
    # centre of die (0, 0) at (-45, -18) goes to (18, -45); the lower-left corner is half a pitch off
    assert origin == pytest.approx((16.0, -50.0))
    assert grid_to_wafer_frame((10.0, 4.0), (-50.0, -20.0), WAFER_FRAME) == ((10.0, 4.0), (-50.0, -20.0))


def test_mark_angle_words_and_angles() -> None:
    assert [mark_angle(v) for v in ("DOWN", "left", "U", "R", "0", 90, "180.0", -90)] == [0, 90, 180, 270, 0, 90,
                                                                                          180, 270]
    assert mark_angle("45") is None and mark_angle("north") is None and mark_angle(None) is None
    assert mark_angle("LEFT", words=False) is None


def test_orientation_rejects_other_angles() -> None:
    with pytest.raises(ValueError, match="0, 90, 180 or 270"):
        Orientation(45)
    assert Orientation(-90) == Orientation(270)


def test_policy_assumption_logs_info_and_unhonoured_warns(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="yieldkit.frame"), warnings.catch_warnings():
        warnings.simplefilter("error")
        assume("a.klarf", "no %s; assuming DOWN", "OrientationMarkLocation")
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.INFO, "a.klarf: no OrientationMarkLocation; assuming DOWN")]
    with pytest.warns(DataQualityWarning, match=r"^b\.xml: orientation 'x'"):
        cannot_honour("b.xml", "orientation 'x' is not an angle")
