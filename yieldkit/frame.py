"""The wafer frame: the one transformation of file coordinates into it, and back.

The wafer frame is the central rule of the data model: x to the right, y up, with the notch
(or flat) at the bottom of the wafer as drawn. A file states where its orientation mark is
(KLARF ``OrientationMarkLocation``, STDF ``WF_FLAT``, a map's notch angle) and whether its
axes are mirrored (KLARF ``CoordinatesMirrored``, STDF ``POS_X``/``POS_Y``). An
:class:`Orientation` holds both; :func:`to_wafer_frame` takes coordinates into the wafer
frame and :func:`from_wafer_frame` (used by writers) takes them back.

Diagnostics follow one policy for every reader:

* a file that does not say: the wafer frame is assumed and :func:`assume` logs it at INFO,
  naming the file;
* a file that states an orientation that cannot be honoured (an unknown word, an angle that
  is not a multiple of 90 degrees): :func:`cannot_honour` warns with
  :class:`~yieldkit.errors.DataQualityWarning`, naming the file, and the wafer frame is used.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import DataQualityWarning

log = logging.getLogger(__name__)

__all__ = ["WAFER_FRAME", "Orientation", "assume", "cannot_honour", "from_wafer_frame", "grid_to_wafer_frame",
           "mark_angle", "rotation", "to_wafer_frame"]

#: mark angle [deg, counter-clockwise from the bottom as drawn] -> rotation into the wafer frame
_ROTATIONS: dict[int, np.ndarray] = {
    0: np.array([[1, 0], [0, 1]], np.int64),
    90: np.array([[0, -1], [1, 0]], np.int64),
    180: np.array([[-1, 0], [0, -1]], np.int64),
    270: np.array([[0, 1], [-1, 0]], np.int64),
}
_MIRROR = np.array([[-1, 0], [0, 1]], np.int64)

#: mark location words -> angle [deg]
MARK_WORDS = {"DOWN": 0, "D": 0, "BOTTOM": 0, "LEFT": 90, "L": 90, "UP": 180, "U": 180, "TOP": 180,
              "RIGHT": 270, "R": 270}
#: angle [deg] -> KLARF mark location word
ANGLE_WORDS = {0: "DOWN", 90: "LEFT", 180: "UP", 270: "RIGHT"}


def rotation(mark_deg: int) -> np.ndarray:
    """The 2x2 integer rotation taking a frame with the mark at ``mark_deg`` to the wafer frame."""
    return _ROTATIONS[int(mark_deg) % 360].copy()


@dataclass(frozen=True)
class Orientation:
    """How a file's coordinates lie relative to the wafer frame.

    Attributes
    ----------
    mark_deg : int
        Where the notch/flat is, counter-clockwise from the bottom as drawn: 0, 90, 180 or 270.
    mirrored : bool
        Whether the file's x axis is mirrored (applied before the rotation).
    """

    mark_deg: int = 0
    mirrored: bool = False

    def __post_init__(self) -> None:
        if int(self.mark_deg) % 360 not in _ROTATIONS:
            raise ValueError(f"mark_deg must be 0, 90, 180 or 270, got {self.mark_deg!r}")
        object.__setattr__(self, "mark_deg", int(self.mark_deg) % 360)
        object.__setattr__(self, "mirrored", bool(self.mirrored))

    @classmethod
    def from_axes(cls, mark_deg: int, x_reversed: bool, y_reversed: bool) -> Orientation:
        """The orientation of axes that may each point the other way (STDF ``POS_X``/``POS_Y``),
        with the mark at ``mark_deg``."""
        # diag(sx, sy) = R(180 if y reversed) @ (mirror if exactly one axis is reversed)
        return cls((mark_deg + (180 if y_reversed else 0)) % 360, bool(x_reversed) != bool(y_reversed))

    @property
    def matrix(self) -> np.ndarray:
        """The 2x2 integer matrix taking file coordinates to the wafer frame."""
        m = _ROTATIONS[self.mark_deg]
        return m @ _MIRROR if self.mirrored else m.copy()

    @property
    def is_identity(self) -> bool:
        """Whether the file is in the wafer frame already."""
        return self.mark_deg == 0 and not self.mirrored


#: the wafer frame itself (what the writers write)
WAFER_FRAME = Orientation(0, False)


def to_wafer_frame(x: Any, y: Any, orientation: Orientation) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates (die indices or positions, about the same origin) taken into the wafer frame."""
    x = np.asarray(x)
    y = np.asarray(y)
    if orientation.is_identity:
        return x, y
    m = orientation.matrix
    return m[0, 0] * x + m[0, 1] * y, m[1, 0] * x + m[1, 1] * y


def from_wafer_frame(x: Any, y: Any, orientation: Orientation) -> tuple[np.ndarray, np.ndarray]:
    """The inverse of :func:`to_wafer_frame`: wafer-frame coordinates in the frame of ``orientation``."""
    x = np.asarray(x)
    y = np.asarray(y)
    if orientation.is_identity:
        return x, y
    m = orientation.matrix.T  # orthogonal: the transpose is the inverse
    return m[0, 0] * x + m[0, 1] * y, m[1, 0] * x + m[1, 1] * y


def grid_to_wafer_frame(pitch: tuple[float, float], origin: tuple[float, float],
                        orientation: Orientation) -> tuple[tuple[float, float], tuple[float, float]]:
    """Die pitch and lower-left corner of die (0, 0) of a die grid, after the transformation into
    the wafer frame (the pitch components swap on a quarter turn)."""
    if orientation.is_identity:
        return pitch, origin
    m = orientation.matrix
    w, h = pitch
    new_pitch = (abs(m[0, 0]) * w + abs(m[0, 1]) * h, abs(m[1, 0]) * w + abs(m[1, 1]) * h)
    c = m @ np.array([origin[0] + w / 2.0, origin[1] + h / 2.0])
    return new_pitch, (float(c[0] - new_pitch[0] / 2.0), float(c[1] - new_pitch[1] / 2.0))


def assume(path: Any, message: str, *args: Any) -> None:
    """Log at INFO that a file does not say something and what is assumed (``message`` names it)."""
    log.info("%s: " + message, path, *args)


def cannot_honour(path: Any, message: str, *, stacklevel: int = 3) -> None:
    """Warn that a stated orientation cannot be honoured (the wafer frame is used instead)."""
    warnings.warn(f"{path}: {message}", DataQualityWarning, stacklevel=stacklevel)


def mark_angle(value: Any, *, words: bool = True) -> int | None:
    """The mark angle [deg] of a stated mark location: a word (``DOWN``/``LEFT``/``UP``/``RIGHT`` or
    their first letters, when ``words``) or an angle that rounds to a multiple of 90; None when it is
    neither."""
    if words and isinstance(value, str):
        word = value.strip().upper()
        if word in MARK_WORDS:
            return MARK_WORDS[word]
    try:
        a = float(value)
    except (TypeError, ValueError):
        return None
    if not np.isfinite(a):
        return None
    r = int(round(a)) % 360
    return r if r in _ROTATIONS else None
