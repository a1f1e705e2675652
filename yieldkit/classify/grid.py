"""Conversion between canonical die tables and 2-D wafer grids.

A wafer *grid* is a 2-D ``uint8`` array in the WM-811K convention: ``0`` = no die, ``1`` = pass,
``2`` = fail. Row 0 is the top of the wafer (largest ``die_y``), column 0 its left edge (smallest
``die_x``), so that ``grid[row, col]`` is the die at ``die_x = x0 + col``,
``die_y = y0 + (height - 1 - row)``: the picture you see when you look at the wafer front side with
the notch down (the yieldkit wafer frame).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence

import numpy as np
import pandas as pd

from .._keys import wafer_codes
from ..errors import SchemaError, YieldkitValueError
from ..schema import STRING

log = logging.getLogger(__name__)

__all__ = ["NO_DIE", "PASS", "FAIL", "as_grids", "dies_to_grids", "grids_to_dies"]

NO_DIE, PASS, FAIL = 0, 1, 2


def as_grids(grids: object, *, name: str = "grids", where: str = "classify") -> list[np.ndarray]:
    """Validate wafer grids and return them as a list of 2-D ``uint8`` arrays.

    Parameters
    ----------
    grids : ndarray of shape (n, height, width) or sequence of 2-D arrays
        Grids with values 0 (no die), 1 (pass) and 2 (fail). A single 2-D array is taken as one
        grid.
    name, where : str
        Argument and function names used in error messages.

    Raises
    ------
    YieldkitValueError
        When a grid is not 2-D, is empty, or holds values other than 0, 1, 2.
    """
    if isinstance(grids, np.ndarray):
        if grids.ndim == 2:
            seq: Sequence = [grids]
        elif grids.ndim == 3:
            seq = list(grids)
        else:
            raise YieldkitValueError(
                f"The {name!r} argument of {where} must be a 3-D array (n, height, width) or a sequence of "
                f"2-D grids. Got an array with {grids.ndim} dimension(s) instead."
            )
    elif isinstance(grids, (str, bytes)) or not isinstance(grids, Sequence | pd.Series):
        raise YieldkitValueError(
            f"The {name!r} argument of {where} must be a sequence of 2-D wafer grids. "
            f"Got {type(grids).__name__} instead."
        )
    else:
        seq = list(grids)
    out = []
    for i, g in enumerate(seq):
        a = np.asarray(g)
        if a.ndim != 2 or a.size == 0:
            raise YieldkitValueError(
                f"The {name!r} argument of {where} must hold non-empty 2-D grids. "
                f"Grid {i} has shape {a.shape} instead."
            )
        if a.dtype != np.uint8:
            if not np.issubdtype(a.dtype, np.number) and a.dtype != bool:
                raise YieldkitValueError(
                    f"The {name!r} argument of {where} must hold numeric grids with values 0, 1, 2. "
                    f"Grid {i} has dtype {a.dtype} instead."
                )
            if np.issubdtype(a.dtype, np.floating) and not np.all(np.isfinite(a)):
                raise YieldkitValueError(
                    f"The {name!r} argument of {where} must hold values 0, 1, 2. Grid {i} has NaN or inf."
                )
            if a.min() < 0 or a.max() > 2 or np.any(a != np.round(a)):
                raise YieldkitValueError(
                    f"The {name!r} argument of {where} must hold values 0 (no die), 1 (pass), 2 (fail). "
                    f"Grid {i} has values outside that set."
                )
            a = a.astype(np.uint8)
        elif a.max() > 2:
            raise YieldkitValueError(
                f"The {name!r} argument of {where} must hold values 0 (no die), 1 (pass), 2 (fail). "
                f"Grid {i} has the value {int(a.max())}."
            )
        out.append(a)
    return out


def dies_to_grids(
    dies: pd.DataFrame, *, extent: str = "wafer"
) -> tuple[pd.DataFrame, list[np.ndarray]]:
    """Turn a canonical die table into one 2-D grid per wafer.

    Parameters
    ----------
    dies : DataFrame
        Canonical die table (:func:`yieldkit.read_dies`) with ``lot_id``, ``wafer_id``, ``die_x``,
        ``die_y`` and ``passed``. Retests (several rows at a die, ordered by ``test_seq``) keep
        the last result.
    extent : {"wafer", "common"}
        ``"wafer"``: each grid spans the bounding box of its own dies. ``"common"``: every grid
        spans the bounding box of all dies in the table (same shape for all wafers).

    Returns
    -------
    wafers : DataFrame
        ``lot_id``, ``wafer_id``, ``x0``, ``y0`` (die index of the grid's lower-left cell),
        ``height``, ``width``, ``n_die``, ``n_fail``; one row per wafer in order of first
        appearance.
    grids : list of ndarray of uint8
        ``grids[i]`` belongs to ``wafers.iloc[i]``; 0 = no die, 1 = pass, 2 = fail.

    Raises
    ------
    SchemaError
        When a required column is missing.
    YieldkitValueError
        When ``extent`` is not one of the choices.

    Examples
    --------
    >>> import pandas as pd
    >>> d = pd.DataFrame({"lot_id": ["L"] * 3, "wafer_id": ["1"] * 3, "die_x": [0, 1, 1],
    ...                   "die_y": [0, 0, 1], "passed": [True, False, True]})
    >>> wafers, grids = dies_to_grids(d)
    >>> grids[0]
    array([[0, 1],
           [1, 2]], dtype=uint8)
    """
    from ..errors import check_choice

    check_choice(extent, ("wafer", "common"), name="extent", where="dies_to_grids")
    missing = [c for c in ("lot_id", "wafer_id", "die_x", "die_y", "passed") if c not in dies.columns]
    if missing:
        raise SchemaError(
            f"dies_to_grids needs a canonical die table (yieldkit.read_dies); missing column(s) "
            f"{', '.join(missing)}; found {', '.join(map(str, dies.columns))}"
        )
    from ..yields import final_results, placed

    if "test_seq" in dies.columns:
        dies = final_results(dies)
    dies = placed(dies, "dies_to_grids")
    if len(dies) == 0:
        return (
            pd.DataFrame({"lot_id": pd.array([], STRING), "wafer_id": pd.array([], STRING),
                          "x0": [], "y0": [], "height": [], "width": [], "n_die": [], "n_fail": []}),
            [],
        )
    codes, wafers = wafer_codes(dies)
    x = dies["die_x"].to_numpy(dtype=np.int64)
    y = dies["die_y"].to_numpy(dtype=np.int64)
    passed = dies["passed"].to_numpy(dtype=bool, na_value=False)
    nw = len(wafers)
    if extent == "common":
        xmin = np.full(nw, x.min())
        xmax = np.full(nw, x.max())
        ymin = np.full(nw, y.min())
        ymax = np.full(nw, y.max())
    else:
        xmin = np.full(nw, np.iinfo(np.int64).max)
        ymin = xmin.copy()
        xmax = np.full(nw, np.iinfo(np.int64).min)
        ymax = xmax.copy()
        np.minimum.at(xmin, codes, x)
        np.minimum.at(ymin, codes, y)
        np.maximum.at(xmax, codes, x)
        np.maximum.at(ymax, codes, y)
    width = xmax - xmin + 1
    height = ymax - ymin + 1
    sizes = width * height
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    buf = np.zeros(int(offsets[-1]), np.uint8)
    # cell of each die: offset + (ymax - y) * width + (x - xmin), with one die-sized temporary at a time
    cell = (offsets[:-1] + ymax * width - xmin)[codes]
    cell += x
    step = width[codes]
    step *= y
    cell -= step
    del step
    buf[cell] = np.where(passed, PASS, FAIL)
    del cell
    grids = [buf[offsets[i]:offsets[i + 1]].reshape(int(height[i]), int(width[i])) for i in range(nw)]
    wafers = wafers.assign(
        x0=xmin.astype(np.int32), y0=ymin.astype(np.int32),
        height=height.astype(np.int32), width=width.astype(np.int32),
        n_die=np.bincount(codes, minlength=nw).astype(np.int32),
        n_fail=np.bincount(codes, weights=~passed, minlength=nw).astype(np.int32),
    )
    return wafers, grids


def grids_to_dies(
    grids: object,
    *,
    lot_id: str | Sequence[str] = "LOT",
    wafer_id: str | Sequence[str] | None = None,
    x0: int = 0,
    y0: int = 0,
    pass_bin: int = 1,
    fail_bin: int = 0,
) -> pd.DataFrame:
    """Turn 2-D wafer grids into a canonical die table (the inverse of :func:`dies_to_grids`).

    Parameters
    ----------
    grids : ndarray or sequence of 2-D arrays
        One grid (2-D) or several; 0 = no die, 1 = pass, 2 = fail.
    lot_id : str or sequence of str
        Lot of every grid, or one per grid.
    wafer_id : sequence of str, optional
        One per grid; default ``"1"``, ``"2"``, ...
    x0, y0 : int
        Die index of each grid's lower-left cell.
    pass_bin, fail_bin : int
        Hard bin written for passing and failing dies.

    Returns
    -------
    DataFrame
        ``lot_id``, ``wafer_id``, ``die_x``, ``die_y`` (int32), ``hbin`` (int32), ``passed`` --
        one row per cell that holds a die.

    Raises
    ------
    YieldkitValueError
        When the grids are malformed or the number of ids does not match.
    """
    gl = as_grids(grids, name="grids", where="grids_to_dies")
    n = len(gl)
    lots = [lot_id] * n if isinstance(lot_id, str) else list(lot_id)
    wids = [str(i + 1) for i in range(n)] if wafer_id is None else (
        [wafer_id] if isinstance(wafer_id, str) else list(wafer_id))
    if len(lots) != n or len(wids) != n:
        raise YieldkitValueError(
            f"The 'lot_id' and 'wafer_id' arguments of grids_to_dies must give one id per grid ({n}). "
            f"Got {len(lots)} and {len(wids)} instead."
        )
    parts_w, parts_r, parts_c, parts_v = [], [], [], []
    for i, g in enumerate(gl):
        r, c = np.nonzero(g)
        parts_w.append(np.full(len(r), i, np.int64))
        parts_r.append((g.shape[0] - 1 - r) + y0)
        parts_c.append(c + x0)
        parts_v.append(g[r, c])
    w = np.concatenate(parts_w) if parts_w else np.zeros(0, np.int64)
    v = np.concatenate(parts_v) if parts_v else np.zeros(0, np.uint8)
    lots_a = np.asarray(lots, dtype=object)
    wids_a = np.asarray(wids, dtype=object)
    passed = v == PASS
    return pd.DataFrame({
        "lot_id": pd.array(lots_a[w], dtype=STRING),
        "wafer_id": pd.array(wids_a[w], dtype=STRING),
        "die_x": (np.concatenate(parts_c) if parts_c else np.zeros(0)).astype(np.int32),
        "die_y": (np.concatenate(parts_r) if parts_r else np.zeros(0)).astype(np.int32),
        "hbin": np.where(passed, pass_bin, fail_bin).astype(np.int32),
        "passed": passed,
    })


def shape_batches(grids: list[np.ndarray], budget: int, *, pad: int = 0) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Grids of the same shape stacked in batches of at most ``budget`` cells (each grid counted
    with ``pad`` extra rows and columns): yields the grids' positions in ``grids`` and their stack
    (``(k, height, width)``), so a vectorised routine runs once per batch, not per grid."""
    if not grids:
        return
    shapes = np.array([g.shape for g in grids], np.int64)
    key = shapes[:, 0] * 1_000_003 + shapes[:, 1]
    order = np.argsort(key, kind="stable")
    starts = np.flatnonzero(np.r_[True, key[order][1:] != key[order][:-1], True])
    for a, b in zip(starts[:-1], starts[1:], strict=False):
        idx = order[a:b]
        h, w = grids[idx[0]].shape
        step = max(1, budget // ((h + pad) * (w + pad)))
        for s in range(0, len(idx), step):
            part = idx[s:s + step]
            yield part, np.stack([grids[i] for i in part])
