"""Die-level defect counts: one row per inspected die, zero-defect dies included.

This is the input of yield-model fitting: the inspected-die set comes from a die table, an
inspected-die table (e.g. a KLARF SampleTestPlan) or a wafer layout, and every defect is
assigned to its die by integer keys (no string group-by). Defects that fall on no inspected
die are counted and reported, never dropped silently.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from .._deprecation import warn_deprecated
from .._keys import dense_die_keys, joint_wafer_codes, lookup_rows
from ..errors import DataQualityWarning, SchemaError, YieldkitValueError
from ..layout import WaferLayout
from ..results import TableResult
from ..schema import STRING

log = logging.getLogger(__name__)

__all__ = ["DieDefectCounts", "die_defect_counts", "die_defect_density"]



def _strings(s: pd.Series) -> Any:
    """The column as an Arrow-backed string array (no copy when it already is one)."""
    if s.dtype == STRING:
        return s.array
    return pd.array(s.astype(str).to_numpy(), dtype=STRING)


def _ints(s: pd.Series) -> np.ndarray:
    """An integer die index column as a numpy array, without a copy when it already is one."""
    a = s.to_numpy()
    return a if a.dtype.kind == "i" else s.to_numpy(dtype=np.int64)


def _die_positions(defects: pd.DataFrame, layout: WaferLayout | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """die_x, die_y (int64) and a validity mask for every defect."""
    if "die_x" in defects.columns and "die_y" in defects.columns:
        dx = defects["die_x"]
        dy = defects["die_y"]
        valid = (dx.notna() & dy.notna()).to_numpy()
        x = dx.to_numpy(dtype="float64", na_value=np.nan)
        y = dy.to_numpy(dtype="float64", na_value=np.nan)
        if layout is not None and "x_um" in defects.columns:
            # fill missing die indices from wafer-frame positions
            need = ~valid & defects["x_um"].notna().to_numpy()
            if need.any():
                loc = layout.locate(defects["x_um"].to_numpy(dtype="float64", na_value=np.nan)[need],
                                    defects["y_um"].to_numpy(dtype="float64", na_value=np.nan)[need])
                x[need] = loc["die_x"].to_numpy(dtype="float64", na_value=np.nan)
                y[need] = loc["die_y"].to_numpy(dtype="float64", na_value=np.nan)
                valid = np.isfinite(x) & np.isfinite(y)
        return np.where(valid, x, 0).astype(np.int64), np.where(valid, y, 0).astype(np.int64), valid
    if "x_um" in defects.columns and "y_um" in defects.columns:
        if layout is None:
            raise SchemaError(
                "die_defect_counts: the defect table has only wafer-frame positions (x_um, y_um); "
                "pass a WaferLayout (as dies_or_layout or layout=) to assign defects to dies",
                column="die_x",
            )
        loc = layout.locate(defects["x_um"].to_numpy(dtype="float64", na_value=np.nan),
                            defects["y_um"].to_numpy(dtype="float64", na_value=np.nan))
        valid = loc["die_x"].notna().to_numpy()
        return (loc["die_x"].to_numpy(dtype="int64", na_value=0), loc["die_y"].to_numpy(dtype="int64", na_value=0), valid)
    raise SchemaError(
        "die_defect_counts needs defect positions: die_x and die_y, or x_um and y_um with a layout. "
        f"Found columns: {', '.join(map(str, defects.columns))}",
        column="die_x",
    )


def _categories(defects: pd.DataFrame, by: str, bins: Any) -> tuple[np.ndarray, pd.Index]:
    """Integer category per defect and the category labels."""
    if by not in defects.columns:
        raise SchemaError(
            f"The 'by' argument of die_defect_counts names column {by!r}, which the defect table does not have. "
            f"Found columns: {', '.join(map(str, defects.columns))}",
            column=by,
        )
    s = defects[by]
    if bins is not None:
        edges = np.asarray(bins, dtype=float)
        if edges.ndim != 1 or len(edges) < 2 or np.any(np.diff(edges) <= 0):
            raise YieldkitValueError(
                f"The 'bins' argument of die_defect_counts must be increasing bin edges. Got {bins!r} instead."
            )
        s = pd.cut(s.astype("float64"), edges, right=False)  # type: ignore[call-overload]
        codes = s.cat.codes.to_numpy().astype(np.int64)
        labels = s.cat.categories.astype(str)
        if (codes < 0).any():
            labels = labels.append(pd.Index(["out of bins"]))
            codes = np.where(codes < 0, len(labels) - 1, codes)
        return codes, pd.Index(labels)
    if pd.api.types.is_float_dtype(s) and s.nunique() > 50:
        raise YieldkitValueError(
            f"die_defect_counts: column {by!r} is continuous; give bins= (bin edges) to split it."
        )
    codes, uniques = pd.factorize(s, sort=True, use_na_sentinel=True)
    codes = codes.astype(np.int64)
    labels = pd.Index(uniques)
    if (codes < 0).any():
        labels = labels.astype(object).append(pd.Index(["missing"]))
        codes = np.where(codes < 0, len(labels) - 1, codes)
    return codes, labels


@dataclass(frozen=True, repr=False)
class DieDefectCounts(TableResult):
    """Defects per inspected die and the defects on no inspected die (from :func:`die_defect_counts`).

    Attributes
    ----------
    table : DataFrame
        ``lot_id``, ``wafer_id``, ``die_x``, ``die_y`` [, ``by``], ``n_defects`` (int64)
        [, ``passed``]: one row per inspected die (and category), zero-defect dies included.
    n_off_die : int
        Defects on no inspected die (including defects of wafers absent from the die set).
    off_die : dict
        ``(lot_id, wafer_id)`` to that wafer's off-die count (wafers with at least one).
    """

    table: pd.DataFrame
    n_off_die: int = 0
    off_die: dict[tuple[str, str], int] = field(default_factory=dict)

    def __repr__(self) -> str:
        return f"DieDefectCounts(dies={len(self.table)}, defects={int(self.table['n_defects'].sum())}, n_off_die={self.n_off_die})"


class _InspectedDies(NamedTuple):
    """The inspected-die set and the defects' keys into it (``w``: wafer code, ``x``/``y``: die index)."""

    base: dict[str, Any]  # the output's die columns (own copies: the result is built with copy=False)
    passed: np.ndarray | None
    w_tab: np.ndarray
    x_tab: np.ndarray
    y_tab: np.ndarray
    dw: np.ndarray
    dx: np.ndarray
    dy: np.ndarray
    valid: np.ndarray
    wafers: pd.DataFrame


def _dies_of_layout(lay: WaferLayout, defects: pd.DataFrame) -> _InspectedDies:
    """Every on-wafer die of the layout on every wafer present in ``defects``."""
    dx, dy, valid = _die_positions(defects, lay)
    (dw,), wafers = joint_wafer_codes(defects)
    grid = lay.dies()
    n_w, n_g = len(wafers), len(grid)
    w_tab = np.repeat(np.arange(n_w, dtype=np.int64), n_g)
    x_tab = np.tile(grid["die_x"].to_numpy(np.int64), n_w)
    y_tab = np.tile(grid["die_y"].to_numpy(np.int64), n_w)
    base = {
        "lot_id": _strings(wafers["lot_id"]).take(w_tab),
        "wafer_id": _strings(wafers["wafer_id"]).take(w_tab),
        "die_x": x_tab.astype(np.int32),
        "die_y": y_tab.astype(np.int32),
    }
    return _InspectedDies(base, None, w_tab, x_tab, y_tab, dw, dx, dy, valid, wafers)


def _dies_of_table(tab: pd.DataFrame, defects: pd.DataFrame, layout: WaferLayout | None) -> _InspectedDies:
    """The dies of a canonical die table (final results, with ``passed``) or of an inspected-die
    table (first row of each die)."""
    missing = [c for c in ("lot_id", "wafer_id", "die_x", "die_y") if c not in tab.columns]
    if missing:
        raise SchemaError(
            "The 'dies_or_layout' argument of die_defect_counts must be a WaferLayout or a table with "
            f"lot_id, wafer_id, die_x, die_y; missing column(s) {', '.join(missing)}",
            column=missing[0],
        )
    canonical = "passed" in tab.columns
    if canonical:
        from ..yields import final_results

        tab = final_results(tab)
    dx, dy, valid = _die_positions(defects, layout)
    (w_tab, dw), wafers = joint_wafer_codes(tab, defects)
    x_tab = _ints(tab["die_x"])
    y_tab = _ints(tab["die_y"])
    if not canonical and len(tab):
        # an inspected-die table may repeat dies: keep the first row of each
        nx = int(x_tab.max() - x_tab.min()) + 1
        ny = int(y_tab.max() - y_tab.min()) + 1
        k = (w_tab * ny + (y_tab - y_tab.min())) * nx + (x_tab - x_tab.min())
        _, first = np.unique(k, return_index=True)
        if len(first) < len(k):
            keep = np.sort(first)
            tab = tab.iloc[keep]
            w_tab, x_tab, y_tab = w_tab[keep], x_tab[keep], y_tab[keep]
    base = {
        "lot_id": _strings(tab["lot_id"]),
        "wafer_id": _strings(tab["wafer_id"]),
        "die_x": x_tab.astype(np.int32),
        "die_y": y_tab.astype(np.int32),
    }
    passed = tab["passed"].to_numpy(dtype=bool, copy=True) if canonical else None
    return _InspectedDies(base, passed, w_tab, x_tab, y_tab, dw, dx, dy, valid, wafers)


def _defect_rows(dies: _InspectedDies) -> tuple[np.ndarray, np.ndarray]:
    """The die-table row of every defect on an inspected die, and the mask of those defects."""
    dense = dense_die_keys(dies.w_tab, dies.x_tab, dies.y_tab, dies.dw, dies.dx, dies.dy, dies.valid)
    if dense is None:
        row = lookup_rows(dies.w_tab, dies.x_tab, dies.y_tab, dies.dw, dies.dx, dies.dy, dies.valid)
        on = row >= 0
        return row[on], on
    # a row number for every key of the table, then the row of each defect: one scatter over
    # the dies and one gather over the defects (no gather over the dies from a key-sized array)
    k_tab, k_q, ok, space = dense
    n_rows = len(dies.w_tab)
    row_of_key = np.full(space, -1, dtype=np.int32 if n_rows < 2**31 - 1 else np.int64)
    row_of_key[k_tab] = np.arange(n_rows, dtype=row_of_key.dtype)
    row_q = row_of_key[k_q]
    hit = row_q >= 0
    on = ok.copy()
    on[ok] = hit
    return row_q[hit].astype(np.int64, copy=False), on


def die_defect_counts(
    dies_or_layout: pd.DataFrame | WaferLayout,
    defects: pd.DataFrame,
    *,
    by: str | None = None,
    bins: Any = None,
    layout: WaferLayout | None = None,
) -> DieDefectCounts:
    """Number of defects on every inspected die, zero-defect dies included.

    Parameters
    ----------
    dies_or_layout : DataFrame or WaferLayout
        The inspected dies:

        * a canonical die table (has ``passed``): its final results, one row per die; the
          output carries ``passed``;
        * an inspected-die table (``lot_id``, ``wafer_id``, ``die_x``, ``die_y``), e.g. a
          KLARF SampleTestPlan;
        * a :class:`~yieldkit.layout.WaferLayout`: every on-wafer die of every wafer present
          in ``defects``.
    defects : DataFrame
        Canonical defect table. Positions as ``die_x``/``die_y`` or, with a layout, as
        ``x_um``/``y_um`` [um] in the wafer frame.
    by : str, optional
        Defect column to split by (``defect_class``, ``layer``, ``size_um`` with ``bins``):
        long format, one row per die and category, zeros included.
    bins : sequence of float, optional
        Bin edges for a continuous ``by`` column, left-closed, e.g. sizes [um].
    layout : WaferLayout, optional
        Used to place defects that carry only wafer-frame positions when ``dies_or_layout``
        is a table.

    Returns
    -------
    DieDefectCounts
        ``.table``: ``lot_id``, ``wafer_id``, ``die_x``, ``die_y`` [, ``by``], ``n_defects``
        (int64) [, ``passed``]; ``.n_off_die``: the number of defects on no inspected die
        (including defects of wafers absent from the die set); ``.off_die``: ``(lot_id,
        wafer_id)`` to that wafer's off-die count (wafers with at least one).

    Warns
    -----
    DataQualityWarning
        When some defects fall on no inspected die.

    Raises
    ------
    SchemaError
        When a required column is missing, or defects carry only wafer-frame positions and
        no layout is given.

    Examples
    --------
    >>> import pandas as pd, yieldkit as yk
    >>> lay = yk.WaferLayout(diameter_mm=100, die_pitch_um=(20_000, 20_000), edge_exclusion_mm=0)
    >>> d = pd.DataFrame({"lot_id": ["L", "L"], "wafer_id": ["1", "1"], "defect_id": [1, 2],
    ...                   "die_x": [0, 0], "die_y": [0, 0]})
    >>> c = yk.die_defect_counts(lay, d)
    >>> len(c.table), int(c.table["n_defects"].sum()), int(c.table["n_defects"].max()), c.n_off_die
    (9, 2, 2, 0)
    """
    if (isinstance(dies_or_layout, pd.DataFrame) and "defect_id" in dies_or_layout.columns
            and (isinstance(defects, WaferLayout) or "defect_id" not in getattr(defects, "columns", ()))):
        warn_deprecated("die_defect_counts(defects, dies_or_layout) is deprecated and will be removed in the next "
                        "release; pass the dies (or the layout) first: die_defect_counts(dies_or_layout, defects).")
        dies_or_layout, defects = defects, dies_or_layout
    for col in ("lot_id", "wafer_id"):
        if col not in defects.columns:
            raise SchemaError(f"die_defect_counts needs a defect table with {col!r}; it is missing", column=col)
    if not isinstance(dies_or_layout, (WaferLayout, pd.DataFrame)):
        raise YieldkitValueError(
            "The 'dies_or_layout' argument of die_defect_counts must be a DataFrame or a WaferLayout. "
            f"Got {type(dies_or_layout).__name__} instead."
        )
    dies = (_dies_of_layout(dies_or_layout, defects) if isinstance(dies_or_layout, WaferLayout)
            else _dies_of_table(dies_or_layout, defects, layout))
    n_rows = len(dies.w_tab)
    cat, labels = _categories(defects, by, bins) if by is not None else (None, None)
    n_c = 1 if labels is None else len(labels)
    row, on = _defect_rows(dies)
    keys = row if cat is None else row * n_c + cat[on]
    n = np.bincount(keys, minlength=n_rows * n_c).astype(np.int64, copy=False)
    cols: dict[str, Any]
    passed = dies.passed
    if by is None:
        cols = dict(dies.base)
    else:
        idx = np.repeat(np.arange(n_rows), n_c)
        cols = {k: c.take(idx) for k, c in dies.base.items()}
        lab = np.tile(np.asarray(labels, dtype=object), n_rows)
        cols[by] = pd.array(lab.astype(str), dtype=STRING) if bins is not None or not pd.api.types.is_numeric_dtype(
            defects[by]) else lab
        if passed is not None:
            passed = passed[idx]
    cols["n_defects"] = n
    if passed is not None:
        cols["passed"] = passed
    out = pd.DataFrame(cols, copy=False)

    off = ~on
    n_off = int(off.sum())
    off_map: dict[tuple[str, str], int] = {}
    if n_off:
        per = np.bincount(dies.dw[off], minlength=len(dies.wafers))
        nz = np.flatnonzero(per)
        lots = dies.wafers["lot_id"].to_numpy()[nz]
        wids = dies.wafers["wafer_id"].to_numpy()[nz]
        off_map = {(str(a), str(b)): int(c) for a, b, c in zip(lots, wids, per[nz], strict=True)}
        warnings.warn(
            f"die_defect_counts: {n_off} of {len(defects)} defects fall on no inspected die "
            f"(on {len(off_map)} wafers); they are not in n_defects (see the result's off_die)",
            DataQualityWarning,
            stacklevel=2,
        )
    log.debug("counted %d defects on %d dies (%d off-die)", int(on.sum()), n_rows, n_off)
    return DieDefectCounts(out, n_off_die=n_off, off_die=off_map)


def die_defect_density(counts: Any, die_area_cm2: float | WaferLayout) -> Any:
    """Add the per-die defect density ``density_per_cm2`` = ``n_defects / die_area`` [defects/cm^2].

    Parameters
    ----------
    counts : DieDefectCounts or DataFrame
        Output of :func:`die_defect_counts` (or its table).
    die_area_cm2 : float or WaferLayout
        Die area [cm^2] (or the layout that gives it).

    Returns
    -------
    DieDefectCounts or DataFrame
        The same kind as ``counts``, its table with ``density_per_cm2`` added.
    """
    if isinstance(counts, DieDefectCounts):
        return replace(counts, table=die_defect_density(counts.table, die_area_cm2))
    area = die_area_cm2.die_area_cm2 if isinstance(die_area_cm2, WaferLayout) else float(die_area_cm2)
    if isinstance(die_area_cm2, WaferLayout) and die_area_cm2.inferred:
        raise YieldkitValueError("die_defect_density: an inferred layout has no die area; give die_area_cm2 [cm^2]")
    if not (area > 0 and np.isfinite(area)):
        raise YieldkitValueError(f"The 'die_area_cm2' argument of die_defect_density must be > 0. Got {area!r} instead.")
    if "n_defects" not in counts.columns:
        raise SchemaError("die_defect_density needs the 'n_defects' column of die_defect_counts", column="n_defects")
    out = counts.copy()
    out["density_per_cm2"] = out["n_defects"].to_numpy(dtype=float) / area
    return out
