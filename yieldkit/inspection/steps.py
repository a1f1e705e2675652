"""Defects of one wafer inspected after several process steps: source step, adders, adder summary.

A wafer inspected after step 1, 2, 3, ... shows at every inspection the defects of the steps
before it again (when the tool detects them). :func:`match_steps` follows each physical defect
from the inspection where it was first seen: every step is aligned to the first step's frame
(:func:`~yieldkit.inspection.align`) and its defects are matched one to one, within a radius,
to the defects seen so far; a defect without a match is an *adder* of its step, and its
``source_step`` is that step.

Glossary
--------
adder
    A defect first seen at this inspection (new since the previous ones).
carried over
    A defect already seen at an earlier inspection.
source step
    The step at which a defect was first seen.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .._keys import joint_wafer_codes
from ..errors import SchemaError, YieldkitValueError, check_choice
from ..results import TableResult
from ..schema import STRING
from .align import MODELS, _alignment_table, _warn_unaligned, align_arrays, apply_transform, match_points

log = logging.getLogger(__name__)

__all__ = ["DEFAULT_SIZE_BINS", "StepMatch", "adder_summary", "match_steps"]

#: Size-bin edges [um] of :func:`adder_summary`.
DEFAULT_SIZE_BINS: tuple[float, ...] = (0.0, 0.2, 0.5, 1.0, 2.0, math.inf)


@dataclass(frozen=True, repr=False)
class StepMatch(TableResult):
    """Defects of several inspections matched across steps (from :func:`match_steps`).

    Attributes
    ----------
    table : DataFrame
        The defect table (row order kept) with ``source_step``, ``is_adder``, ``track_id`` (the
        ``defect_id`` of the defect's first sighting, so one physical defect keeps one id) and
        ``x_ref_um``, ``y_ref_um`` (position in the first step's frame).
    alignments : DataFrame
        One row per wafer and later step: ``step``, the transform into the first step's frame and
        its ``residual_um`` (columns of :class:`~yieldkit.inspection.Alignment`), and the matching
        ``radius_um``.
    order : tuple of str
        The steps in order.
    """

    table: pd.DataFrame
    alignments: pd.DataFrame
    order: tuple[str, ...]

    def __repr__(self) -> str:
        n_add = int(self.table["is_adder"].sum()) if len(self.table) else 0
        return f"StepMatch(steps={list(self.order)}, defects={len(self.table)}, adders={n_add})"


def _order(defects: pd.DataFrame, step_col: str, order: Sequence[str] | None, where: str) -> list[str]:
    present = pd.unique(defects[step_col].dropna().astype(str))
    if order is None:
        return [str(s) for s in present]
    order = [str(s) for s in order]
    missing = sorted(set(present) - set(order))
    if missing:
        raise YieldkitValueError(f"The 'order' argument of {where} lacks the step(s) {missing} of the "
                                 f"{step_col!r} column. Got {order!r} instead.")
    return order


def match_steps(
    defects: pd.DataFrame,
    order: Sequence[str] | None = None,
    *,
    radius_um: float | None = None,
    radius_sigmas: float = 4.0,
    step_col: str = "layer",
    model: str = "rigid",
    max_offset_um: float = 100.0,
    align_steps: bool = True,
) -> StepMatch:
    """Give every defect the step where it was first seen, across cumulative inspections.

    Parameters
    ----------
    defects : DataFrame
        Defect tables of several inspections of the same wafers, one table (``lot_id``,
        ``wafer_id``, ``defect_id``, ``x_um``, ``y_um`` in each tool's frame, and ``step_col``).
    order : sequence of str, optional
        The steps in process order (default: order of first appearance in the table).
    radius_um : float, optional
        Largest distance of a match [um]. Default ``radius_sigmas`` times the wafer's alignment
        residual (per-axis standard deviation of the position difference between inspections).
    radius_sigmas : float
        Multiple of the residual used as the default radius.
    step_col : str
        Column naming the inspection step.
    model : {"rigid", "similarity", "affine"}
        Transform between tool frames.
    max_offset_um : float
        Largest expected offset between two tools' frames [um].
    align_steps : bool
        Align every step to the first step's frame (False: the positions share one frame already).

    Returns
    -------
    StepMatch
        ``.table`` with ``source_step``, ``is_adder``, ``track_id``, ``x_ref_um``, ``y_ref_um``.

    Raises
    ------
    SchemaError
        A needed column is missing.
    YieldkitValueError
        A bad option.

    Notes
    -----
    Steps are taken in order; the defects of step ``k`` (in the first step's frame) are matched
    one to one to the latest sighting of every defect seen at steps ``< k`` by
    :func:`~yieldkit.inspection.match_points` (greedy by distance within the radius). A missed
    detection at one step is bridged: a defect keeps its track until it is seen again. With a
    per-axis normal jitter ``s`` of the difference, a match is lost with probability
    ``exp(-radius_sigmas^2 / 2)`` (3e-4 at 4 sigma). All wafers of a step are handled at once.

    Examples
    --------
    >>> from yieldkit.inspection import match_steps, simulate_inspections
    >>> fab = simulate_inspections(n_lots=1, wafers_per_lot=2, detect_prob=1.0, random_state=3)
    >>> m = match_steps(fab.defects, order=fab.steps)
    >>> truth = fab.truth["observations"]["is_adder"].to_numpy()
    >>> bool((m.table["is_adder"].to_numpy() == truth).mean() > 0.99)
    True
    """
    where = "match_steps"
    check_choice(model, MODELS, name="model", where=where)
    need = ["lot_id", "wafer_id", "defect_id", "x_um", "y_um", step_col]
    missing = [c for c in need if c not in defects.columns]
    if missing:
        raise SchemaError(f"{where} needs column(s) {missing} in the defect table; found {list(defects.columns)}.",
                          column=missing[0])
    if radius_um is not None and not radius_um > 0:
        raise YieldkitValueError(f"The 'radius_um' argument of {where} must be > 0. Got {radius_um!r} instead.")
    if not radius_sigmas > 0:
        raise YieldkitValueError(f"The 'radius_sigmas' argument of {where} must be > 0. Got {radius_sigmas!r} instead.")
    steps = _order(defects, step_col, order, where)
    n = len(defects)
    (w,), wafers = joint_wafer_codes(defects)
    n_g = len(wafers)
    step_code = pd.Index(steps).get_indexer(defects[step_col].astype(str).to_numpy(object))
    x = defects["x_um"].to_numpy(float)
    y = defects["y_um"].to_numpy(float)
    ids = defects["defect_id"].to_numpy(np.int64)
    xr, yr = np.full(n, np.nan), np.full(n, np.nan)
    source = np.full(n, -1, np.int64)
    track = np.full(n, -1, np.int64)
    # tracks: rows of the latest sighting of each defect seen so far
    track_rows = np.zeros(0, np.int64)
    alignments: list[pd.DataFrame] = []
    for k, _name in enumerate(steps):  # a loop over the few steps; every wafer at once inside
        rows = np.flatnonzero(step_code == k)
        if k == 0 or len(track_rows) == 0:
            xr[rows], yr[rows] = x[rows], y[rows]
            source[rows] = k
            track[rows] = ids[rows]
            track_rows = np.r_[track_rows, rows]
            continue
        tw, tx, ty = w[track_rows], xr[track_rows], yr[track_rows]
        if align_steps:
            params, sigma, n_pairs = align_arrays(tw, tx, ty, w[rows], x[rows], y[rows], n_g, model=model,
                                                  max_offset_um=max_offset_um)
        else:
            params = np.tile([1.0, 0.0, 0.0, 1.0, 0.0, 0.0], (n_g, 1))
            sigma, n_pairs = np.full(n_g, np.nan), np.zeros(n_g, np.int64)
        px, py = apply_transform(params[w[rows]], x[rows], y[rows])
        xr[rows], yr[rows] = px, py
        if radius_um is not None:
            radius = np.full(n_g, float(radius_um))
        else:
            radius = radius_sigmas * sigma
            if not align_steps:
                raise YieldkitValueError(f"{where}: pass radius_um when align_steps=False (no residual to derive it).")
        ia, ib, _ = match_points(tw, tx, ty, w[rows], px, py, radius)
        matched_rows = rows[ib]
        matched_tracks = track_rows[ia]
        source[rows] = k
        track[rows] = ids[rows]
        source[matched_rows] = source[matched_tracks]
        track[matched_rows] = track[matched_tracks]
        # the latest sighting replaces the track's row; unmatched defects start new tracks
        track_rows = track_rows.copy()
        track_rows[ia] = matched_rows
        new = np.ones(len(rows), bool)
        new[ib] = False
        track_rows = np.r_[track_rows, rows[new]]
        na = np.bincount(tw, minlength=n_g)
        nb = np.bincount(w[rows], minlength=n_g)
        at = _alignment_table(wafers, params, sigma, n_pairs, na, nb)
        at.insert(2, "step", pd.array([steps[k]] * n_g, dtype=STRING))
        at["radius_um"] = radius
        at = at[(na > 0) & (nb > 0)]
        if align_steps:
            _warn_unaligned(at, where)
        alignments.append(at)
    out = defects.copy()
    steps_arr = np.asarray(steps, dtype=object)
    src_names = steps_arr[np.maximum(source, 0)] if len(steps_arr) else np.full(n, None, dtype=object)
    src_names[source < 0] = None
    out["source_step"] = pd.array(src_names, dtype=STRING)
    out["is_adder"] = (source == step_code) & (step_code >= 0)
    out["track_id"] = track
    out["x_ref_um"] = xr
    out["y_ref_um"] = yr
    al = pd.concat(alignments, ignore_index=True) if alignments else _empty_alignments()
    log.info("%s: %d defects over %d steps, %d adders", where, n, len(steps), int(out["is_adder"].sum()))
    return StepMatch(table=out, alignments=al, order=tuple(steps))


def _empty_alignments() -> pd.DataFrame:
    t = _alignment_table(pd.DataFrame({"lot_id": [], "wafer_id": []}), np.zeros((0, 6)), np.zeros(0),
                         np.zeros(0, np.int64), np.zeros(0), np.zeros(0))
    t.insert(2, "step", pd.array([], dtype=STRING))
    t["radius_um"] = np.zeros(0)
    return t


def _size_labels(edges: Sequence[float]) -> list[str]:
    def f(v: float) -> str:
        return "inf" if math.isinf(v) else f"{v:g}"

    return [f"[{f(a)}, {f(b)})" for a, b in zip(edges[:-1], edges[1:], strict=True)]


def adder_summary(
    matched: pd.DataFrame | StepMatch,
    *,
    by: Sequence[str] = ("defect_class", "size_bin"),
    size_bins: Sequence[float] = DEFAULT_SIZE_BINS,
    area_cm2: float | None = None,
    layout: Any = None,
    step_col: str = "layer",
    order: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Defects, adders and carried-over defects per wafer and step (and class and size bin).

    Parameters
    ----------
    matched : DataFrame or StepMatch
        Output of :func:`match_steps` (its ``.table``), with ``is_adder``.
    by : sequence of str
        Further grouping columns; ``"size_bin"`` is made from ``size_um`` and ``size_bins``.
    size_bins : sequence of float
        Increasing size-bin edges [um].
    area_cm2 : float, optional
        Inspected area per wafer [cm^2] for ``adder_density``; default the usable wafer area of
        ``layout`` (``pi * (radius - edge exclusion)^2``).
    layout : WaferLayout, optional
        Gives the default area.
    step_col : str
        Step column.
    order : sequence of str, optional
        Step order of the output (default the order of a StepMatch, else of first appearance).

    Returns
    -------
    DataFrame
        ``lot_id``, ``wafer_id``, ``step``, the ``by`` columns, ``total``, ``adders``,
        ``carried_over``, ``adder_fraction`` and, with an area, ``adder_density`` [defects/cm^2].

    Examples
    --------
    >>> from yieldkit.inspection import adder_summary, match_steps, simulate_inspections
    >>> fab = simulate_inspections(n_lots=1, wafers_per_lot=1, random_state=3)
    >>> s = adder_summary(match_steps(fab.defects), by=(), layout=fab.layout)
    >>> print(s[["step", "total", "adders", "carried_over"]].to_string(index=False))
    step  total  adders  carried_over
      M1     63      63             0
      V1    114      55            59
      M2    189      77           112
    """
    where = "adder_summary"
    table = matched.table if isinstance(matched, StepMatch) else matched
    missing = [c for c in ("lot_id", "wafer_id", step_col, "is_adder") if c not in table.columns]
    if missing:
        raise SchemaError(f"{where} needs the output of match_steps; column(s) {missing} are missing.",
                          column=missing[0])
    edges = np.asarray(size_bins, dtype=float)
    if len(edges) < 2 or np.any(np.diff(edges) <= 0):
        raise YieldkitValueError(f"The 'size_bins' argument of {where} must be increasing edges. Got {size_bins!r} instead.")
    if area_cm2 is None and layout is not None:
        area_cm2 = math.pi * (layout.usable_radius_um * 1e-4) ** 2
    t = table[["lot_id", "wafer_id", step_col, "is_adder"]].rename(columns={step_col: "step"})
    t = t.assign(is_adder=t["is_adder"].astype(bool))
    keys = ["lot_id", "wafer_id", "step"]
    for col in by:
        if col == "size_bin":
            if "size_um" not in table.columns:
                raise SchemaError(f"{where}: by 'size_bin' needs the 'size_um' column.", column="size_um")
            code = np.searchsorted(edges, table["size_um"].to_numpy(float), side="right") - 1
            labels = np.asarray(_size_labels(list(edges)) + ["unsized"], dtype=object)
            code = np.where((code < 0) | (code >= len(edges) - 1) | np.isnan(table["size_um"].to_numpy(float)),
                            len(edges) - 1, code)
            t["size_bin"] = pd.Categorical(labels[code], categories=list(labels))
        elif col in table.columns:
            t[col] = table[col].to_numpy()
        else:
            raise SchemaError(f"{where}: the 'by' column {col!r} is not in the table.", column=col)
        keys.append(col)
    steps = list(order) if order is not None else list(matched.order) if isinstance(matched, StepMatch) else []
    steps += [s for s in pd.unique(t["step"].astype(str)) if s not in steps]
    t["step"] = pd.Categorical(t["step"].astype(str), categories=steps)
    g = t.groupby(keys, observed=True, sort=True)["is_adder"]
    out = g.agg(total="size", adders="sum").reset_index()
    out["adders"] = out["adders"].astype(np.int64)
    out["total"] = out["total"].astype(np.int64)
    out["carried_over"] = out["total"] - out["adders"]
    out["adder_fraction"] = out["adders"] / out["total"]
    if area_cm2 is not None:
        out["adder_density"] = out["adders"] / float(area_cm2)
    for c in ("step", "size_bin"):
        if c in out.columns:
            out[c] = pd.array(out[c].astype(str).to_numpy(object), dtype=STRING)
    return out
