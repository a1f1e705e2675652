"""Geographic PAT: ink good dies by where they sit, on every wafer of a die table at once.

Every rule works on dense per-wafer grids (a ``(wafers, rows, columns)`` array built from integer
die keys) with array shifts, so a rule costs a few passes over the grid whatever the number of
wafers; no Python loop touches a die.

Rules, in the order :func:`geo_pat` applies them (each seeing the inks of the earlier ones as bad):

``zpat`` (stacked / Z-PAT)
    A die position failing on at least ``zpat_fraction`` of a lot's wafers is inked on all of them.
``reticle``
    A reticle position (die site within the exposure shot) failing on more than
    ``reticle_fraction`` of a wafer's shots is inked on that whole wafer. Needs ``shot``.
``cluster`` (bad-cluster inking)
    Good dies within ``ring`` dies (8-connected) of a 4-connected cluster of at least
    ``cluster_min_size`` bad dies.
``gdbn`` (good die in bad neighbourhood, count rule)
    At least ``min_bad`` bad dies among the neighbours within Chebyshev radius ``radius``.
``opposite`` (opposite-sides rule)
    Bad dies on both sides of the die along its row, column or a diagonal.
``weighted`` (weighted neighbourhood)
    Adjacent (edge-sharing) bad neighbours weigh 2, diagonal ones 1; inked at a weight of at
    least ``weighted_threshold``. At the wafer edge the weight is scaled up to the full 12 of an
    interior die (``edge="scale"``) or missing neighbours count as bad (``edge="bad"``).
``nnr`` (nearest-neighbour residual)
    For each test in ``nnr_tests``: the die's value minus the median of the ``nnr_closest``
    closest-in-value values among the good dies of its 5 x 5 window; inked outside the wafer's
    residual median +/- ``nnr_k`` RS (robust sigma of the residuals of the wafer's good dies).

Defaults and their sources: no standard fixes any geographic rule. AEC-Q001 Rev D names
geographic screening (GDBN) as an additional method without fixing its parameters; the
weighted rule's 2/1 weights and threshold 8 and the NNR's 5 x 5 window follow common industry
practice (e.g. Daasch & Madge, "Variance reduction and outliers: statistical analysis of
semiconductor test data", ITC 2005, doi:10.1109/TEST.2005.1584013, for NNR). All other defaults
(16 closest-in-value neighbours for NNR -- see :class:`GeoParams` for why --, count rule 6 of 8,
clusters of 5 with a ring of 1, Z-PAT at half the lot's wafers, reticle at more than half of
the shots) are yieldkit's own choices, stated here so that they can be changed knowingly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from .._keys import wafer_codes
from ..errors import SchemaError, YieldkitValueError, check_choice
from ._tables import die_row_of_tests, need_columns
from .apply import screen_dies
from .limits import RS_DIVISOR

__all__ = ["GEO_RULES", "DEFAULT_GEO_BIN", "GeoParams", "geo_pat", "geo_rule"]

#: the geographic rules in the order geo_pat applies them
GEO_RULES = ("zpat", "reticle", "cluster", "gdbn", "opposite", "weighted", "nnr")
#: hard (and soft) bin of dies inked by a geographic rule (no standard fixes one)
DEFAULT_GEO_BIN = 91
_ROOK = ((0, 1), (0, -1), (1, 0), (-1, 0))
_DIAG = ((1, 1), (1, -1), (-1, 1), (-1, -1))
_LINES = ((0, 1), (1, 0), (1, 1), (1, -1))


@dataclass(frozen=True)
class GeoParams:
    """Parameters of the geographic rules (see the module notes for each rule and its source).

    Parameters
    ----------
    radius : int
        Count rule: Chebyshev radius of the neighbourhood [dies] (1: the 8 neighbours).
    min_bad : int
        Count rule: bad neighbours that ink (yieldkit default 6 of 8).
    weighted_threshold : float
        Weighted rule: weight that inks (adjacent 2, diagonal 1; default 8 of 12).
    edge : {"scale", "bad"}
        Weighted rule at the wafer edge: scale the weight to 12, or count missing dies as bad.
    cluster_min_size : int
        Bad-cluster inking: fewest dies of a 4-connected bad cluster (default 5).
    ring : int
        Bad-cluster inking: width of the inked ring [dies] (default 1).
    shot : (int, int), optional
        Reticle rule: dies per exposure shot in x and y (as :func:`yieldkit.maps.reticle_stack`).
    shot_offset : (int, int)
        Reticle rule: die index of a shot's lower-left die, modulo the shot.
    reticle_fraction : float
        Reticle rule: a position failing on more than this fraction of a wafer's shots is inked.
    zpat_fraction : float
        Z-PAT: a position failing on at least this fraction of a lot's wafers is inked.
    nnr_k : float
        NNR: width of the residual limits in robust sigmas (default 6, as AEC-Q001's PAT).
    nnr_closest : int
        NNR: how many closest-in-value neighbours the estimate uses (default 16 of the 24). Measured
        on normal noise over 5 wafers of 60 x 60 dies with ``nnr_k=6``: 8 inks 1.9 % of the
        outlier-free dies, 16 inks 0.02 % and finds every planted +6 sigma outlier, all 24 (the
        plain window median) finds only 46 % of them.
    nnr_window : int
        NNR: half-width of the window [dies] (default 2: 5 x 5).
    nnr_min_neighbors : int
        NNR: fewest usable neighbours for a residual (fewer: the die gets none).
    """

    radius: int = 1
    min_bad: int = 6
    weighted_threshold: float = 8.0
    edge: str = "scale"
    cluster_min_size: int = 5
    ring: int = 1
    shot: tuple[int, int] | None = None
    shot_offset: tuple[int, int] = (0, 0)
    reticle_fraction: float = 0.5
    zpat_fraction: float = 0.5
    nnr_k: float = 6.0
    nnr_closest: int = 16
    nnr_window: int = 2
    nnr_min_neighbors: int = 3

    def checked(self, where: str) -> GeoParams:
        check_choice(self.edge, ("scale", "bad"), name="edge", where=where)
        for name in ("radius", "min_bad", "cluster_min_size", "ring", "nnr_closest", "nnr_window", "nnr_min_neighbors"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise YieldkitValueError(f"The {name!r} argument of {where} must be an integer >= 1. Got {v!r} instead.")
        for name in ("reticle_fraction", "zpat_fraction"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and 0 < v <= 1):
                raise YieldkitValueError(f"The {name!r} argument of {where} must be in (0, 1]. Got {v!r} instead.")
        for name in ("weighted_threshold", "nnr_k"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and np.isfinite(v) and v > 0):
                raise YieldkitValueError(f"The {name!r} argument of {where} must be a number > 0. Got {v!r} instead.")
        if self.shot is not None:
            sx, sy = (int(v) for v in self.shot)
            if sx < 1 or sy < 1:
                raise YieldkitValueError(f"The 'shot' argument of {where} must be two integers >= 1. "
                                         f"Got {self.shot!r} instead.")
        return self


class _Grid:
    """The final, placed dies of a table on dense per-wafer grids with a margin of ``pad`` dies."""

    def __init__(self, dies: pd.DataFrame, pad: int) -> None:
        from ..yields import _pick

        rows = _pick(dies, last=True)
        has_xy = dies["die_x"].notna().to_numpy()[rows] & dies["die_y"].notna().to_numpy()[rows]
        rows = rows[has_xy]
        d = dies.iloc[rows]
        self.rows = rows
        self.n_table = len(dies)
        w, wafers = wafer_codes(d)
        self.w = np.asarray(w, dtype=np.int64)
        self.wafers = wafers
        self.dx = d["die_x"].to_numpy(dtype=np.int64)
        self.dy = d["die_y"].to_numpy(dtype=np.int64)
        self.pad = pad
        if len(rows):
            x0, y0 = int(self.dx.min()), int(self.dy.min())
            nx, ny = int(self.dx.max()) - x0 + 1, int(self.dy.max()) - y0 + 1
        else:
            x0 = y0 = 0
            nx = ny = 1
        self.nx, self.ny = nx, ny
        self.gx = self.dx - x0 + pad
        self.gy = self.dy - y0 + pad
        self.shape = (max(len(wafers), 1), ny + 2 * pad, nx + 2 * pad)
        # flat positions of the dies in the padded grid and in its interior (1-D takes are fast)
        self.flat = (self.w * self.shape[1] + self.gy) * self.shape[2] + self.gx
        self.flat_in = (self.w * ny + (self.gy - pad)) * nx + (self.gx - pad)
        self.exists = self.scatter(np.ones(len(rows), bool), False)
        self.good = d["passed"].to_numpy(bool)

    def scatter(self, values: np.ndarray, fill: Any) -> np.ndarray:
        """A padded grid holding ``values`` (one per grid row) at the dies, ``fill`` elsewhere."""
        g = np.full(self.shape, fill, dtype=np.asarray(values).dtype)
        g.ravel()[self.flat] = values
        return g

    def at(self, grid: np.ndarray, dy: int = 0, dx: int = 0) -> np.ndarray:
        """The value of the padded ``grid`` at each die's neighbour (die + (dx, dy)), per grid row."""
        return grid.ravel()[self.flat + (dy * self.shape[2] + dx)]

    def shifted(self, grid: np.ndarray, dy: int, dx: int) -> np.ndarray:
        """The interior of ``grid`` seen from (dx, dy) away: ``out[w, y, x] = grid[w, y + dy, x + dx]``."""
        p = self.pad
        return grid[:, p + dy: p + dy + self.ny, p + dx: p + dx + self.nx]

    def to_rows(self, interior: np.ndarray) -> np.ndarray:
        """Per grid row, the value of an interior-shaped array at its die."""
        return np.ascontiguousarray(interior).ravel()[self.flat_in]


# -- the rules on a grid: each returns, per grid row, whether it fires (on good dies only) ---------
def _gdbn(g: _Grid, bad: np.ndarray, p: GeoParams) -> np.ndarray:
    r = p.radius
    count = np.zeros((g.shape[0], g.ny, g.nx), np.int32)
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            if dx or dy:
                count += g.shifted(bad, dy, dx)
    return g.to_rows(count) >= p.min_bad


def _opposite(g: _Grid, bad: np.ndarray, p: GeoParams) -> np.ndarray:
    hit = np.zeros((g.shape[0], g.ny, g.nx), bool)
    for dy, dx in _LINES:
        hit |= g.shifted(bad, dy, dx) & g.shifted(bad, -dy, -dx)
    return g.to_rows(hit)


def _weighted(g: _Grid, bad: np.ndarray, p: GeoParams) -> np.ndarray:
    wsum = np.zeros((g.shape[0], g.ny, g.nx), np.float64)
    avail = np.zeros_like(wsum)
    b = bad | ~g.exists if p.edge == "bad" else bad
    for offs, weight in ((_ROOK, 2.0), (_DIAG, 1.0)):
        for dy, dx in offs:
            wsum += weight * g.shifted(b, dy, dx)
            avail += weight * g.shifted(g.exists, dy, dx)
    if p.edge == "scale":
        with np.errstate(invalid="ignore", divide="ignore"):
            wsum = np.where(avail > 0, wsum * 12.0 / avail, 0.0)
    return g.to_rows(wsum) >= p.weighted_threshold - 1e-9


def _cluster(g: _Grid, bad: np.ndarray, p: GeoParams) -> np.ndarray:
    from scipy import ndimage

    structure = np.zeros((3, 3, 3), bool)
    structure[1] = [[0, 1, 0], [1, 1, 1], [0, 1, 0]]  # 4-connected within a wafer, never across wafers
    labels, n = ndimage.label(bad, structure=structure)
    if n == 0:
        return np.zeros(len(g.rows), bool)
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    big = sizes >= p.cluster_min_size
    big[0] = False
    core = big[labels]
    r = p.ring
    near = np.zeros((g.shape[0], g.ny, g.nx), bool)
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            near |= g.shifted(core, dy, dx)
    return g.to_rows(near)


def _reticle(g: _Grid, bad_rows: np.ndarray, p: GeoParams) -> np.ndarray:
    if p.shot is None:
        raise YieldkitValueError("The reticle rule of geo_pat needs the shot size: pass shot=(dies in x, dies in y).")
    sx, sy = (int(v) for v in p.shot)
    ox, oy = (int(v) for v in p.shot_offset)
    site = np.mod(g.dy - oy, sy) * sx + np.mod(g.dx - ox, sx)
    key = g.w * (sx * sy) + site
    m = g.shape[0] * sx * sy
    n = np.bincount(key, minlength=m)
    nb = np.bincount(key, weights=bad_rows, minlength=m)
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = nb / n
    return frac[key] > p.reticle_fraction


def _zpat(g: _Grid, bad_rows: np.ndarray, p: GeoParams) -> np.ndarray:
    lc, _ = pd.factorize(g.wafers["lot_id"])
    lot = np.asarray(lc, dtype=np.int64)[g.w] if len(g.w) else np.zeros(0, np.int64)
    pos = (g.gy - g.pad) * g.nx + (g.gx - g.pad)
    key = lot * (g.nx * g.ny) + pos
    m = (int(lot.max()) + 1 if len(lot) else 1) * g.nx * g.ny
    n = np.bincount(key, minlength=m)
    nb = np.bincount(key, weights=bad_rows, minlength=m)
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = nb / n
    return frac[key] >= p.zpat_fraction - 1e-12


def _nnr_residuals(g: _Grid, values: np.ndarray, usable: np.ndarray, p: GeoParams) -> np.ndarray:
    """Per grid row: value minus the median of its ``nnr_closest`` closest-in-value usable
    neighbours in the window (NaN when the die has no value or too few neighbours). Ties in
    distance go to the neighbour earlier in row-major window order."""
    r = p.nnr_window
    v = np.where(usable, values, np.nan)
    vg = g.scatter(v, np.nan).ravel()
    res = np.full(len(v), np.nan)
    rows = np.flatnonzero(~np.isnan(v))  # only dies with a usable value get a residual
    if len(rows) == 0:
        return res
    vr = v[rows]
    offs = [dy * g.shape[2] + dx for dy in range(-r, r + 1) for dx in range(-r, r + 1) if dx or dy]
    flat = g.flat[rows]
    nb = np.empty((len(rows), len(offs)))
    for j, o in enumerate(offs):  # one column per window position
        nb[:, j] = vg[flat + o]
    dist = np.abs(nb - vr[:, None])
    dist[np.isnan(dist)] = np.inf
    kc = min(p.nnr_closest, len(offs))
    order = np.argsort(dist, axis=1, kind="stable")[:, :kc]
    sel = np.take_along_axis(nb, order, axis=1)
    sel.sort(axis=1)  # NaN last
    m = np.isfinite(sel).sum(axis=1)
    idx = np.arange(len(rows))
    lo_i = np.maximum((m - 1) // 2, 0)
    hi_i = np.maximum(m // 2, 0)
    med = (sel[idx, lo_i] + sel[idx, hi_i]) / 2
    out = vr - med
    out[m < p.nnr_min_neighbors] = np.nan
    res[rows] = out
    return res


def _nnr(g: _Grid, bad_rows: np.ndarray, p: GeoParams, test_values: list[np.ndarray]) -> np.ndarray:
    fired = np.zeros(len(g.rows), bool)
    usable = ~bad_rows
    for vals in test_values:
        res = _nnr_residuals(g, vals, usable, p)
        ok = usable & np.isfinite(res)
        lo, hi = _per_wafer_robust_limits(res, ok, g.w, g.shape[0], p.nnr_k)
        fired |= ok & ((res < lo[g.w]) | (res > hi[g.w]))
    return fired


def _per_wafer_robust_limits(res: np.ndarray, ok: np.ndarray, w: np.ndarray, n_w: int, k: float
                             ) -> tuple[np.ndarray, np.ndarray]:
    from .limits import _segments_quantiles

    qs = _segments_quantiles(res[ok], w[ok], n_w, "linear")
    rs = (qs[:, 2] - qs[:, 0]) / RS_DIVISOR
    return qs[:, 1] - k * rs, qs[:, 1] + k * rs


def _nnr_values(g: _Grid, dies: pd.DataFrame, tests: pd.DataFrame | None, nnr_tests: Sequence[int]) -> list[np.ndarray]:
    if tests is None:
        raise YieldkitValueError("The nnr rule of geo_pat needs the test table: pass tests=... and nnr_tests=[...].")
    need_columns(tests, ("lot_id", "wafer_id", "die_x", "die_y", "test_num", "value"), what="tests", where="geo_pat")
    if not nnr_tests:  # every test with values
        vals = tests["value"].to_numpy(dtype=np.float64, na_value=np.nan)
        nnr_tests = np.unique(tests["test_num"].to_numpy(np.int64)[np.isfinite(vals)]).tolist()
    if len(g.rows) == 0:
        return [np.zeros(0) for _ in nnr_tests]
    out = []
    tests = tests.loc[np.isin(tests["test_num"].to_numpy(), np.asarray(list(nnr_tests), dtype=np.int64))]
    row = die_row_of_tests(dies, tests, g.rows)
    pos = np.full(g.n_table, -1, np.int64)
    pos[g.rows] = np.arange(len(g.rows))
    num = tests["test_num"].to_numpy(np.int64)
    val = tests["value"].to_numpy(np.float64, na_value=np.nan)
    for t in nnr_tests:
        sel = (num == int(t)) & (row >= 0)
        if not sel.any():
            raise YieldkitValueError(f"The 'nnr_tests' argument of geo_pat names test {t}, which the test table "
                                     "does not hold.")
        v = np.full(len(g.rows), np.nan)
        v[pos[row[sel]]] = val[sel]
        out.append(v)
    return out


def _pad_for(rules: Sequence[str], p: GeoParams) -> int:
    pad = 1
    if "gdbn" in rules:
        pad = max(pad, p.radius)
    if "cluster" in rules:
        pad = max(pad, p.ring)
    if "nnr" in rules:
        pad = max(pad, p.nnr_window)
    return pad


def _run_rules(dies: pd.DataFrame, rules: Sequence[str], p: GeoParams, tests: pd.DataFrame | None,
               nnr_tests: Sequence[int]) -> tuple[_Grid, list[tuple[str, np.ndarray]]]:
    """The rules in order on the grid: per rule the mask (over grid rows) of good dies it fired on."""
    g = _Grid(dies, _pad_for(rules, p))
    bad_rows = ~g.good
    fired = []
    for rule in GEO_RULES:
        if rule not in rules:
            continue
        if rule in ("zpat", "reticle"):
            hit = (_zpat if rule == "zpat" else _reticle)(g, bad_rows.astype(float), p)
        elif rule == "nnr":
            hit = _nnr(g, bad_rows, p, _nnr_values(g, dies, tests, nnr_tests))
        else:
            bad = g.scatter(bad_rows, False)
            hit = {"cluster": _cluster, "gdbn": _gdbn, "opposite": _opposite, "weighted": _weighted}[rule](g, bad, p)
        hit = hit & g.good
        fired.append((rule, hit))
        bad_rows = bad_rows | hit
    return g, fired


def _check_rules(rules: Any, where: str) -> tuple[str, ...]:
    r = (rules,) if isinstance(rules, str) else tuple(rules)
    for x in r:
        check_choice(x, GEO_RULES, name="rules", where=where)
    if not r:
        raise YieldkitValueError(f"The 'rules' argument of {where} must name at least one rule of "
                                 f"{', '.join(GEO_RULES)}.")
    return r


def geo_rule(dies: pd.DataFrame, rule: str, *, params: GeoParams | None = None, tests: pd.DataFrame | None = None,
             nnr_tests: Sequence[int] = (), **kwargs: Any) -> np.ndarray:
    """Whether one geographic rule fires on each row of a die table (alone: no earlier inks).

    Parameters
    ----------
    dies : DataFrame
        Die table with ``passed`` (final results are used; other rows get False).
    rule : str
        One of :data:`GEO_RULES`.
    params : GeoParams, optional
        Rule parameters; keyword arguments override single fields (``min_bad=5``).
    tests, nnr_tests :
        The long test table and the tests of the ``nnr`` rule.

    Returns
    -------
    ndarray of bool
        Per row of ``dies``: the rule fired on that (good, final) die.

    Examples
    --------
    >>> import pandas as pd
    >>> from yieldkit.pat import geo_rule
    >>> xy = [(x, y) for y in range(3) for x in range(3)]
    >>> dies = pd.DataFrame({"lot_id": "L", "wafer_id": "1", "die_x": [a for a, _ in xy],
    ...                      "die_y": [b for _, b in xy], "hbin": 1})
    >>> dies["passed"] = ~dies[["die_x", "die_y"]].apply(tuple, axis=1).isin([(0, 1), (2, 1), (1, 2)])
    >>> bool(geo_rule(dies, "opposite")[4]), bool(geo_rule(dies, "weighted")[4])
    (True, False)
    """
    where = "geo_rule"
    check_choice(rule, GEO_RULES, name="rule", where=where)
    p = replace(params or GeoParams(), **kwargs).checked(where)
    _check_dies(dies, where)
    g, fired = _run_rules(dies, (rule,), p, tests, nnr_tests)
    out = np.zeros(len(dies), bool)
    out[g.rows] = fired[0][1]
    return out


def _check_dies(dies: Any, where: str) -> None:
    if not isinstance(dies, pd.DataFrame):
        raise YieldkitValueError(f"The 'dies' argument of {where} must be a DataFrame. Got {type(dies).__name__} instead.")
    need_columns(dies, ("lot_id", "wafer_id", "die_x", "die_y", "passed"), what="dies", where=where)
    if "hbin" not in dies.columns:
        raise SchemaError(f"The 'dies' argument of {where} lacks column(s) hbin", column="hbin")


def geo_pat(
    dies: Any,
    *,
    rules: Sequence[str] | str = ("zpat", "cluster", "gdbn", "opposite", "weighted"),
    params: GeoParams | None = None,
    tests: pd.DataFrame | None = None,
    nnr_tests: Sequence[int] = (),
    pat_bin: int = DEFAULT_GEO_BIN,
    **kwargs: Any,
) -> Any:
    """Apply geographic PAT rules in order, each seeing the earlier inks as bad.

    Parameters
    ----------
    dies : DataFrame or dask DataFrame
        Die table with ``hbin`` and ``passed`` (final results are screened) -- e.g. the table
        of a parametric screen (:attr:`PatResult.table`), whose inks then count as bad. A dask
        DataFrame is screened lot by lot on lot-aligned partitions (repartitioned when not).
    rules : sequence of str
        Rules to apply, from :data:`GEO_RULES`; always applied in that order (``zpat``,
        ``reticle``, ``cluster``, ``gdbn``, ``opposite``, ``weighted``, ``nnr``). ``reticle``
        needs ``shot``; ``nnr`` needs ``tests`` and ``nnr_tests``.
    params : GeoParams, optional
        Rule parameters; keyword arguments override single fields (``min_bad=5, shot=(2, 3)``).
    tests : DataFrame, optional
        The long test table, for ``nnr``.
    nnr_tests : sequence of int
        The ``test_num`` of each test the ``nnr`` rule screens (default: every test with values).
    pat_bin : int
        Hard and soft bin of inked dies (default 91; no standard fixes one).

    Returns
    -------
    PatResult
        (a dask DataFrame of the screened table for a dask input). Every rule that fired on a
        die is in its ``pat_rule``; ``loss_by_rule`` gives per rule the dies it fired on and the
        dies it inked first.

    Raises
    ------
    SchemaError
        A missing column. YieldkitValueError: an unknown rule or a bad parameter.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from yieldkit.pat import geo_pat
    >>> xy = np.array([(x, y) for y in range(5) for x in range(5)])
    >>> dies = pd.DataFrame({"lot_id": "L", "wafer_id": "1", "die_x": xy[:, 0], "die_y": xy[:, 1], "hbin": 1})
    >>> dies["passed"] = ~((abs(dies["die_x"] - 2) <= 1) & (abs(dies["die_y"] - 2) <= 1) & (dies["die_x"] != 2))
    >>> res = geo_pat(dies, rules=["gdbn", "opposite"])
    >>> res.inked[["die_x", "die_y", "pat_rule"]].to_numpy().tolist()
    [[2, 1, 'opposite'], [2, 2, 'gdbn;opposite'], [2, 3, 'opposite']]
    """
    where = "geo_pat"
    r = _check_rules(rules, where)
    p = replace(params or GeoParams(), **kwargs).checked(where)
    from .apply import _check_bin

    pat_bin = _check_bin(pat_bin, where)
    if type(dies).__module__.startswith("dask"):
        from functools import partial

        from .dask import geo_pat_dask

        return geo_pat_dask(dies, partial(geo_pat, rules=r, params=p, nnr_tests=nnr_tests, pat_bin=pat_bin),
                            tests=tests)
    _check_dies(dies, where)
    g, fired = _run_rules(dies, r, p, tests, nnr_tests)
    good = np.zeros(len(dies), bool)
    good[g.rows] = g.good
    full = []
    for rule, hit in fired:
        m = np.zeros(len(dies), bool)
        m[g.rows] = hit
        full.append((rule, m))
    return screen_dies(dies, full, good, pat_bin)
