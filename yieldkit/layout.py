"""Wafer layout: the die grid in the wafer frame.

The wafer frame has its origin at the wafer centre, x to the right, y up, the notch (or
flat) at the bottom, seen from the front side; positions are in micrometres.

Die ``(i, j)`` covers ``[x0 + i*w, x0 + (i+1)*w) x [y0 + j*h, y0 + (j+1)*h)``: the lower and
left edges belong to the die, the upper and right edges to its neighbours. A die is *on the
wafer* when its four corners lie inside the radius less the edge exclusion.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ._deprecation import renamed_kwargs
from .errors import SchemaError, YieldkitValueError

log = logging.getLogger(__name__)

__all__ = ["WaferLayout"]


@dataclass(frozen=True, eq=False)
class WaferLayout:
    """The geometry of a wafer's die grid.

    Parameters
    ----------
    diameter_mm : float
        Wafer diameter [mm].
    die_pitch_um : (float, float)
        Die pitch (width, height) [um]; the step of the die grid, scribe lane included.
    origin_um : (float, float), optional
        Lower-left corner of die (0, 0) in the wafer frame [um]. Default: die (0, 0) centred
        on the wafer centre, i.e. ``(-w/2, -h/2)``.
    edge_exclusion_mm : float
        Edge exclusion [mm]: dies must lie inside ``diameter/2 - edge_exclusion``.
    inferred : bool
        True when the geometry was not known and was inferred from the dies present
        (:meth:`from_dies`); the pitch is then 1 um and areas are meaningless.
    die_set : DataFrame, optional
        Explicit set of on-wafer dies (``die_x``, ``die_y``). When given it replaces the
        corner test: an inferred layout, or a tool's sample plan, knows exactly which dies exist.

    Examples
    --------
    >>> lay = WaferLayout(diameter_mm=200, die_pitch_um=(10_000, 10_000), edge_exclusion_mm=3)
    >>> round(lay.die_area_cm2, 3)
    1.0
    >>> lay.locate([0.0, 5_000.0], [0.0, -5_001.0])[["die_x", "die_y"]].to_numpy().tolist()
    [[0, 0], [1, -1]]
    """

    diameter_mm: float = 300.0
    die_pitch_um: tuple[float, float] = (10_000.0, 10_000.0)
    origin_um: tuple[float, float] | None = None
    edge_exclusion_mm: float = 3.0
    inferred: bool = False
    die_set: pd.DataFrame | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        w, h = (float(v) for v in self.die_pitch_um)
        if not (math.isfinite(self.diameter_mm) and self.diameter_mm > 0):
            raise YieldkitValueError(
                f"The 'diameter_mm' argument of WaferLayout must be > 0. Got {self.diameter_mm!r} instead."
            )
        if not (w > 0 and h > 0 and math.isfinite(w) and math.isfinite(h)):
            raise YieldkitValueError(
                f"The 'die_pitch_um' argument of WaferLayout must be two numbers > 0. Got {self.die_pitch_um!r} instead."
            )
        if not (0 <= self.edge_exclusion_mm < self.diameter_mm / 2):
            raise YieldkitValueError(
                "The 'edge_exclusion_mm' argument of WaferLayout must be in [0, diameter/2). "
                f"Got {self.edge_exclusion_mm!r} instead."
            )
        object.__setattr__(self, "die_pitch_um", (w, h))
        origin = self.origin_um if self.origin_um is not None else (-w / 2.0, -h / 2.0)
        object.__setattr__(self, "origin_um", (float(origin[0]), float(origin[1])))
        if self.die_set is not None:
            ds = pd.DataFrame(
                {
                    "die_x": np.asarray(self.die_set["die_x"], dtype=np.int32),
                    "die_y": np.asarray(self.die_set["die_y"], dtype=np.int32),
                }
            ).drop_duplicates().sort_values(["die_y", "die_x"]).reset_index(drop=True)
            object.__setattr__(self, "die_set", ds)

    # -- basic geometry -------------------------------------------------------------------
    @property
    def radius_um(self) -> float:
        """Wafer radius [um]."""
        return self.diameter_mm * 500.0

    @property
    def usable_radius_um(self) -> float:
        """Radius less the edge exclusion [um]."""
        return (self.diameter_mm / 2.0 - self.edge_exclusion_mm) * 1000.0

    @property
    def die_area_cm2(self) -> float:
        """Die area w*h [cm^2]."""
        w, h = self.die_pitch_um
        return w * h * 1e-8

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, WaferLayout):
            return NotImplemented
        same = (
            math.isclose(self.diameter_mm, other.diameter_mm)
            and np.allclose(self.die_pitch_um, other.die_pitch_um)
            and np.allclose(self.origin_um, other.origin_um)  # type: ignore[arg-type]
            and math.isclose(self.edge_exclusion_mm, other.edge_exclusion_mm)
            and self.inferred == other.inferred
        )
        if not same:
            return False
        if (self.die_set is None) != (other.die_set is None):
            return False
        return self.die_set is None or self.die_set.equals(other.die_set)

    __hash__ = None  # type: ignore[assignment]

    # -- dies ---------------------------------------------------------------------------------
    def _index_range(self) -> tuple[np.ndarray, np.ndarray]:
        w, h = self.die_pitch_um
        x0, y0 = self.origin_um  # type: ignore[misc]
        r = self.usable_radius_um
        i = np.arange(math.floor((-r - x0) / w) - 1, math.ceil((r - x0) / w) + 1)
        j = np.arange(math.floor((-r - y0) / h) - 1, math.ceil((r - y0) / h) + 1)
        return i, j

    def on_wafer(self, die_x: Any, die_y: Any) -> np.ndarray:
        """Whether each die (vectorised) is on the wafer: all four corners inside the usable radius,
        or, for a layout with an explicit ``die_set``, membership in that set."""
        i = np.asarray(die_x, dtype=np.float64)
        j = np.asarray(die_y, dtype=np.float64)
        if self.die_set is not None:
            ds = self.die_set
            key = pd.MultiIndex.from_arrays([ds["die_x"].to_numpy(np.int64), ds["die_y"].to_numpy(np.int64)])
            ok = np.isfinite(i) & np.isfinite(j)
            res = np.zeros(i.shape, bool)
            if ok.any():
                q = pd.MultiIndex.from_arrays([i[ok].astype(np.int64), j[ok].astype(np.int64)])
                res[ok] = q.isin(key)
            return res
        w, h = self.die_pitch_um
        x0, y0 = self.origin_um  # type: ignore[misc]
        xl = x0 + i * w
        xr = xl + w
        yb = y0 + j * h
        yt = yb + h
        r2 = self.usable_radius_um**2
        # the farthest corner from the centre decides
        fx = np.maximum(np.abs(xl), np.abs(xr))
        fy = np.maximum(np.abs(yb), np.abs(yt))
        with np.errstate(invalid="ignore"):
            return (fx * fx + fy * fy) <= r2

    def dies(self) -> pd.DataFrame:
        """Every on-wafer die with its centre.

        Returns
        -------
        DataFrame
            ``die_x``, ``die_y`` (int32), ``x_center_um``, ``y_center_um`` (float64), ordered
            by row (``die_y``) then column.
        """
        if self.die_set is not None:
            ix = self.die_set["die_x"].to_numpy(np.int64)
            jy = self.die_set["die_y"].to_numpy(np.int64)
        else:
            i, j = self._index_range()
            ii, jj = np.meshgrid(i, j)
            ii = ii.ravel()
            jj = jj.ravel()
            keep = self.on_wafer(ii, jj)
            ix, jy = ii[keep], jj[keep]
        w, h = self.die_pitch_um
        x0, y0 = self.origin_um  # type: ignore[misc]
        return pd.DataFrame(
            {
                "die_x": ix.astype(np.int32),
                "die_y": jy.astype(np.int32),
                "x_center_um": x0 + (ix + 0.5) * w,
                "y_center_um": y0 + (jy + 0.5) * h,
            }
        )

    @property
    def n_dies(self) -> int:
        """Number of on-wafer dies."""
        return len(self.dies())

    # -- coordinates ---------------------------------------------------------------------------
    def die_index(self, x_um: Any, y_um: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Die index and in-die position of wafer-frame points, for any point (on wafer or not).

        Returns ``(die_x, die_y, xrel_um, yrel_um)`` as int64, int64, float64, float64 arrays;
        NaN inputs give index 0 and NaN offsets.
        """
        x = np.asarray(x_um, dtype=np.float64)
        y = np.asarray(y_um, dtype=np.float64)
        w, h = self.die_pitch_um
        x0, y0 = self.origin_um  # type: ignore[misc]
        i, xr = _floor_div(x - x0, w)
        j, yr = _floor_div(y - y0, h)
        return i, j, xr, yr

    def locate(self, x_um: Any, y_um: Any) -> pd.DataFrame:
        """Die and in-die position of points in the wafer frame (vectorised).

        Points on a die's lower or left edge belong to that die; points on its upper or right
        edge belong to the neighbour. Points that fall on no on-wafer die get missing
        ``die_x``/``die_y`` (and their offsets from the die grid all the same).

        Returns
        -------
        DataFrame
            ``die_x``, ``die_y`` (nullable Int32), ``xrel_um``, ``yrel_um`` (float64).
        """
        i, j, xr, yr = self.die_index(x_um, y_um)
        x = np.asarray(x_um, dtype=np.float64)
        y = np.asarray(y_um, dtype=np.float64)
        ok = np.isfinite(x) & np.isfinite(y)
        on = ok & self.on_wafer(np.where(ok, i, 0), np.where(ok, j, 0))
        dx = pd.array(np.where(on, i, 0).astype(np.int32), dtype="Int32")
        dy = pd.array(np.where(on, j, 0).astype(np.int32), dtype="Int32")
        dx[~on] = pd.NA
        dy[~on] = pd.NA
        return pd.DataFrame({"die_x": dx, "die_y": dy, "xrel_um": xr, "yrel_um": yr})

    def position(self, die_x: Any, die_y: Any, xrel_um: Any = None, yrel_um: Any = None) -> tuple[np.ndarray, np.ndarray]:
        """Wafer-frame position of a point given by die index and in-die offset (default: die centre)."""
        w, h = self.die_pitch_um
        x0, y0 = self.origin_um  # type: ignore[misc]
        i = np.asarray(die_x, dtype=np.float64)
        j = np.asarray(die_y, dtype=np.float64)
        xr = np.full(i.shape, w / 2.0) if xrel_um is None else np.asarray(xrel_um, dtype=np.float64)
        yr = np.full(j.shape, h / 2.0) if yrel_um is None else np.asarray(yrel_um, dtype=np.float64)
        return x0 + i * w + xr, y0 + j * h + yr

    def die_centers(self, die_x: Any, die_y: Any) -> tuple[np.ndarray, np.ndarray]:
        """Centres of the given dies in the wafer frame [um]."""
        return self.position(die_x, die_y)

    # -- construction -------------------------------------------------------------------------
    @classmethod
    @renamed_kwargs(die_x="die_x_col", die_y="die_y_col")
    def from_dies(cls, dies: pd.DataFrame, *, die_x_col: str = "die_x", die_y_col: str = "die_y") -> WaferLayout:
        """A layout inferred from the dies present when no geometry is known.

        The pitch is 1 um (so :attr:`die_area_cm2` is meaningless), the grid is centred on
        the middle of the index range, and the die set is exactly the distinct dies present.
        The result has ``inferred=True``.
        """
        placed = dies[[die_x_col, die_y_col]].dropna()  # parts without a wafer position have no place on it
        if len(placed) == 0:
            raise SchemaError("cannot infer a wafer layout from an empty die table (or one without die positions)")
        ix = placed[die_x_col].to_numpy(dtype=np.int64)
        jy = placed[die_y_col].to_numpy(dtype=np.int64)
        cx = (ix.min() + ix.max() + 1) / 2.0
        cy = (jy.min() + jy.max() + 1) / 2.0
        origin = (-cx, -cy)
        # radius that holds every die's farthest corner, plus half a die
        fx = np.maximum(np.abs(ix - cx), np.abs(ix + 1 - cx))
        fy = np.maximum(np.abs(jy - cy), np.abs(jy + 1 - cy))
        r_um = float(np.sqrt(fx * fx + fy * fy).max()) + 0.5
        ds = pd.DataFrame({"die_x": ix, "die_y": jy})
        log.info("no wafer geometry given: inferred a layout from %d distinct dies (unit pitch)", len(ds.drop_duplicates()))
        return cls(
            diameter_mm=2.0 * r_um / 1000.0,
            die_pitch_um=(1.0, 1.0),
            origin_um=origin,
            edge_exclusion_mm=0.0,
            inferred=True,
            die_set=ds,
        )

    def with_die_set(self, dies: pd.DataFrame) -> WaferLayout:
        """The same geometry restricted to an explicit set of dies (e.g. a sample test plan)."""
        return WaferLayout(
            diameter_mm=self.diameter_mm,
            die_pitch_um=self.die_pitch_um,
            origin_um=self.origin_um,
            edge_exclusion_mm=self.edge_exclusion_mm,
            inferred=self.inferred,
            die_set=dies[["die_x", "die_y"]],
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description (the die set, if any, as two lists)."""
        d: dict[str, Any] = {
            "diameter_mm": self.diameter_mm,
            "die_pitch_um": list(self.die_pitch_um),
            "origin_um": list(self.origin_um),  # type: ignore[arg-type]
            "edge_exclusion_mm": self.edge_exclusion_mm,
            "inferred": self.inferred,
        }
        if self.die_set is not None:
            d["die_set"] = {
                "die_x": self.die_set["die_x"].astype(int).tolist(),
                "die_y": self.die_set["die_y"].astype(int).tolist(),
            }
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> WaferLayout:
        """Inverse of :meth:`to_dict`."""
        ds = d.get("die_set")
        return cls(
            diameter_mm=float(d["diameter_mm"]),
            die_pitch_um=tuple(d["die_pitch_um"]),  # type: ignore[arg-type]
            origin_um=tuple(d["origin_um"]) if d.get("origin_um") is not None else None,  # type: ignore[arg-type]
            edge_exclusion_mm=float(d.get("edge_exclusion_mm", 0.0)),
            inferred=bool(d.get("inferred", False)),
            die_set=pd.DataFrame(ds) if ds is not None else None,
        )


def _floor_div(v: np.ndarray, step: float) -> tuple[np.ndarray, np.ndarray]:
    """Floor division with the remainder guaranteed in [0, step) despite rounding."""
    with np.errstate(invalid="ignore"):
        q = np.floor(v / step)
        r = v - q * step
        over = r >= step
        q = np.where(over, q + 1, q)
        r = np.where(over, r - step, r)
        under = r < 0
        q = np.where(under, q - 1, q)
        r = np.where(under, r + step, r)
    finite = np.isfinite(q)
    qi = np.where(finite, q, 0).astype(np.int64)
    r = np.where(finite, r, np.nan)
    return qi, r
