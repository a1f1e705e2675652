"""Zones of the wafer and zonal yield with statistics.

A zone scheme splits the wafer (in the wafer frame, by die centre) into regions: center /
middle / edge of equal area, ``n`` rings of equal area, quadrants, ``n`` angular sectors, or
rings between user-given radii. :func:`zonal_yield` gives the yield of every zone of every
wafer with an exact interval and tests each zone against the rest of its wafer, controlling
the false discovery rate within the wafer and gating on the size of the difference.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from .._keys import joint_wafer_codes, wafer_groups
from ..errors import SchemaError, YieldkitValueError, check_choice
from ..intervals import clopper_pearson, garwood
from ..layout import WaferLayout
from ..schema import STRING
from ..significance import benjamini_hochberg, fisher_exact_2x2, two_proportion_ztest

log = logging.getLogger(__name__)

__all__ = ["ZONE_SCHEMES", "assign_zones", "benjamini_hochberg", "fisher_exact_2x2", "zonal_density", "zonal_yield"]

ZONE_SCHEMES = ("ring", "rings", "quadrant", "sector", "radii")


def assign_zones(
    x_um: Any,
    y_um: Any,
    *,
    scheme: str = "ring",
    radius_um: float,
    n_zones: int | None = None,
    radii_um: Any = None,
) -> tuple[np.ndarray, list[str]]:
    """Zone of each point of the wafer frame (vectorised).

    Parameters
    ----------
    x_um, y_um : array_like
        Positions in the wafer frame (die centres or defects) [um].
    scheme : {"ring", "rings", "quadrant", "sector", "radii"}
        ``ring``: center / middle / edge, three rings of equal area; ``rings``: ``n_zones``
        rings of equal area (default 5); ``quadrant``: Q1 (x >= 0, y >= 0) counter-clockwise to
        Q4; ``sector``: ``n_zones`` angular sectors (default 8) counter-clockwise from the +x
        axis; ``radii``: rings between the given ``radii_um``.
    radius_um : float
        Outer radius of the rings (usually the usable radius of the layout) [um]; points
        beyond it belong to the outermost ring.
    n_zones : int, optional
        Number of rings or sectors.
    radii_um : sequence of float, optional
        Inner ring boundaries for ``scheme="radii"`` [um], increasing, > 0.

    Returns
    -------
    codes : ndarray of int64
        Zone index of each point, into ``labels``.
    labels : list of str

    Notes
    -----
    Ring ``k`` of ``n`` equal-area rings spans ``R*sqrt((k-1)/n) <= r < R*sqrt(k/n)``.
    Points on a boundary belong to the outer ring (angles: to the sector that starts there).

    Examples
    --------
    >>> codes, labels = assign_zones([0, 0, 90], [0, 70, 0], scheme="ring", radius_um=100)
    >>> [labels[c] for c in codes]
    ['center', 'middle', 'edge']
    """
    check_choice(scheme, ZONE_SCHEMES, name="scheme", where="assign_zones")
    x = np.asarray(x_um, dtype=np.float64)
    y = np.asarray(y_um, dtype=np.float64)
    if not (radius_um > 0 and np.isfinite(radius_um)):
        raise YieldkitValueError(f"The 'radius_um' argument of assign_zones must be > 0. Got {radius_um!r} instead.")
    if scheme in ("ring", "rings", "radii"):
        r = np.hypot(x, y)
        if scheme == "radii":
            edges = np.asarray(radii_um if radii_um is not None else [], dtype=float)
            if edges.ndim != 1 or len(edges) == 0 or np.any(edges <= 0) or np.any(np.diff(edges) <= 0):
                raise YieldkitValueError(
                    "The 'radii_um' argument of assign_zones must be increasing radii > 0 [um]. "
                    f"Got {radii_um!r} instead."
                )
            bounds = np.concatenate([[0.0], edges, [np.inf]])
            labels = [f"{bounds[k] / 1000:g}-{bounds[k + 1] / 1000:g}mm" for k in range(len(bounds) - 1)]
        else:
            n = 3 if scheme == "ring" else _check_n(n_zones, 5)
            edges = radius_um * np.sqrt(np.arange(1, n) / n)
            labels = ["center", "middle", "edge"] if scheme == "ring" else [f"ring{k + 1}" for k in range(n)]
        codes = np.searchsorted(edges, r, side="right")
    else:
        theta = np.mod(np.arctan2(y, x), 2 * np.pi)
        n = 4 if scheme == "quadrant" else _check_n(n_zones, 8)
        codes = np.minimum((theta / (2 * np.pi / n)).astype(np.int64), n - 1)
        # exact quadrant rule on the axes: x >= 0, y >= 0 is Q1, etc.
        if scheme == "quadrant":
            codes = np.select([(x >= 0) & (y >= 0), (x < 0) & (y >= 0), (x < 0) & (y < 0)], [0, 1, 2], 3)
            labels = ["Q1", "Q2", "Q3", "Q4"]
        else:
            step = 360.0 / n
            labels = [f"{k * step:g}-{(k + 1) * step:g}deg" for k in range(n)]
    return np.asarray(codes, dtype=np.int64), labels


def _die_zones(x: np.ndarray, y: np.ndarray, lay: WaferLayout, **kw: Any) -> tuple[np.ndarray, list[str]]:
    """Zone of each die by its centre, through a look-up table over the die index range."""
    if len(x) == 0:
        return assign_zones(np.zeros(0), np.zeros(0), radius_um=lay.usable_radius_um, **kw)
    xmin, ymin = int(x.min()), int(y.min())
    nx, ny = int(x.max()) - xmin + 1, int(y.max()) - ymin + 1
    if nx * ny > 4 * len(x) + 10_000:
        cx, cy = lay.die_centers(x, y)
        return assign_zones(cx, cy, radius_um=lay.usable_radius_um, **kw)
    gx, gy = np.meshgrid(np.arange(xmin, xmin + nx), np.arange(ymin, ymin + ny))
    cx, cy = lay.die_centers(gx.ravel(), gy.ravel())
    lut, labels = assign_zones(cx, cy, radius_um=lay.usable_radius_um, **kw)
    idx = y - y.dtype.type(ymin)  # stays in the indices' own integer type (int32 for canonical tables)
    idx *= nx
    idx += x.astype(idx.dtype, copy=False)
    idx -= xmin
    return lut[idx], labels


def _check_n(n: int | None, default: int) -> int:
    if n is None:
        return default
    if int(n) != n or n < 1:
        raise YieldkitValueError(f"The 'n_zones' argument of assign_zones must be an integer >= 1. Got {n!r} instead.")
    return int(n)


def _die_table(dies: pd.DataFrame, where: str) -> pd.DataFrame:
    missing = [c for c in ("lot_id", "wafer_id", "die_x", "die_y", "passed") if c not in dies.columns]
    if missing:
        raise SchemaError(f"{where} needs a canonical die table; missing column(s) {', '.join(missing)}", column=missing[0])
    from ..yields import final_results, placed

    return placed(final_results(dies), where)


def _layout(dies: pd.DataFrame, layout: WaferLayout | None) -> WaferLayout:
    return layout if layout is not None else WaferLayout.from_dies(dies)


def zonal_yield(
    dies: pd.DataFrame,
    layout: WaferLayout | None = None,
    *,
    scheme: str = "ring",
    n_zones: int | None = None,
    radii_um: Any = None,
    conf_level: float = 0.95,
    fdr: float = 0.05,
    min_effect: float = 0.10,
    test: str = "auto",
    flag: str = "worse",
) -> pd.DataFrame:
    """Yield of every zone of every wafer, each zone tested against the rest of its wafer.

    Parameters
    ----------
    dies : DataFrame
        Canonical die table (final results are used).
    layout : WaferLayout, optional
        Places die centres in the wafer frame; inferred from the dies when absent.
    scheme, n_zones, radii_um
        Zone scheme, see :func:`assign_zones`; rings run to the usable radius.
    conf_level : float
        Level of the Clopper-Pearson interval of each zone's yield.
    fdr : float
        False discovery rate of the Benjamini-Hochberg procedure over the zones of a wafer.
    min_effect : float
        Smallest absolute yield difference (zone - rest) that may be flagged [fraction].
    test : {"auto", "fisher", "z"}
        Fisher's exact test, the pooled two-proportion z-test, or Fisher when any expected
        cell count of the 2x2 table is below 5 (``auto``).
    flag : {"worse", "both"}
        Flag only zones yielding worse than the rest of their wafer (default), or either way.

    Returns
    -------
    DataFrame
        One row per (wafer, zone): ``lot_id``, ``wafer_id``, ``zone``, ``tested``, ``good``,
        ``yield``, ``ci_lower``, ``ci_upper``, ``rest_tested``, ``rest_yield``, ``diff``
        (zone - rest yield), ``p_value``, ``q_value`` (BH within the wafer), ``flagged``
        (``q_value < fdr`` and ``diff <= -min_effect``, or ``|diff| >= min_effect`` with
        ``flag="both"``).

    Notes
    -----
    The test of zone z on wafer w is on the 2x2 table (fail, pass) x (zone, rest). The BH
    step controls the expected share of false flags among a wafer's flags at ``fdr``; the
    effect-size gate keeps statistically clear but practically negligible differences out.

    References
    ----------
    Benjamini, Y., & Hochberg, Y. (1995). https://doi.org/10.1111/j.2517-6161.1995.tb02031.x

    Examples
    --------
    >>> import yieldkit as yk
    >>> fab = yk.simulate_fab(n_lots=1, wafers_per_lot=2, signatures={0: "edge-ring"}, random_state=3)
    >>> z = zonal_yield(fab.dies, fab.layout)
    >>> z.loc[z.flagged, ["wafer_id", "zone"]].values.tolist()
    [['01', 'edge']]
    """
    check_choice(test, ("auto", "fisher", "z"), name="test", where="zonal_yield")
    check_choice(flag, ("worse", "both"), name="flag", where="zonal_yield")
    if not 0 < fdr < 1:
        raise YieldkitValueError(f"The 'fdr' argument of zonal_yield must be in (0, 1). Got {fdr!r} instead.")
    if not 0 <= min_effect <= 1:
        raise YieldkitValueError(f"The 'min_effect' argument of zonal_yield must be in [0, 1]. Got {min_effect!r} instead.")
    d = _die_table(dies, "zonal_yield")
    lay = _layout(d, layout)
    (w,), wafers = joint_wafer_codes(d)
    z, labels = _die_zones(d["die_x"].to_numpy(), d["die_y"].to_numpy(), lay,
                           scheme=scheme, n_zones=n_zones, radii_um=radii_um)
    n_z, n_w = len(labels), len(wafers)
    key = w * n_z + z
    passed = d["passed"].to_numpy(dtype=bool)
    tested = np.bincount(key, minlength=n_w * n_z)
    good = np.bincount(key[passed], minlength=n_w * n_z)
    # wafer totals from the zone counts: no further pass over the dies
    wt = np.repeat(tested.reshape(n_w, n_z).sum(axis=1), n_z)
    wg = np.repeat(good.reshape(n_w, n_z).sum(axis=1), n_z)
    keep = tested > 0
    tested, good, wt, wg = tested[keep], good[keep], wt[keep], wg[keep]
    widx = (np.arange(n_w * n_z) // n_z)[keep]
    zidx = (np.arange(n_w * n_z) % n_z)[keep]
    rt, rg = wt - tested, wg - good
    lo, hi = clopper_pearson(good, tested, conf_level)
    with np.errstate(invalid="ignore", divide="ignore"):
        y = good / tested
        ry = np.where(rt > 0, rg / np.maximum(rt, 1), np.nan)
    # 2x2: rows zone/rest, columns fail/pass
    a, b, c, e = tested - good, good, rt - rg, rg
    if test == "z":
        use_f = np.zeros(len(a), bool)
    elif test == "fisher":
        use_f = np.ones(len(a), bool)
    else:
        tot = np.maximum(wt, 1)
        fails = a + c
        exp_min = np.minimum.reduce([tested * fails / tot, tested * (tot - fails) / tot,
                                     rt * fails / tot, rt * (tot - fails) / tot])
        use_f = exp_min < 5
    p = np.ones(len(a))
    p[~use_f] = two_proportion_ztest(good[~use_f], tested[~use_f], rg[~use_f], rt[~use_f])
    if use_f.any():
        p[use_f] = fisher_exact_2x2(a[use_f], b[use_f], c[use_f], e[use_f])
    p = np.where(rt > 0, p, 1.0)
    q = benjamini_hochberg(p, widx)
    diff = y - ry
    effect = np.nan_to_num(-diff if flag == "worse" else np.abs(diff), nan=0.0)
    out = pd.DataFrame(
        {
            "lot_id": wafers["lot_id"].to_numpy()[widx],
            "wafer_id": wafers["wafer_id"].to_numpy()[widx],
            "zone": pd.Categorical(np.asarray(labels, dtype=object)[zidx], categories=labels),
            "tested": tested.astype(np.int64),
            "good": good,
            "yield": y,
            "ci_lower": lo,
            "ci_upper": hi,
            "rest_tested": rt.astype(np.int64),
            "rest_yield": ry,
            "diff": diff,
            "p_value": p,
            "q_value": q,
            "flagged": (q < fdr) & (effect >= min_effect),
        }
    )
    for col in ("lot_id", "wafer_id"):
        out[col] = out[col].astype(STRING)
    log.debug("zonal_yield: %d wafers x %d zones, %d flagged", n_w, n_z, int(out["flagged"].sum()))
    return out


def zonal_density(
    defects: pd.DataFrame,
    layout: WaferLayout,
    *,
    scheme: str = "ring",
    n_zones: int | None = None,
    radii_um: Any = None,
    conf_level: float = 0.95,
    level: str = "wafer",
    wafers: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Defect density of every zone [defects/cm^2] with a Garwood interval.

    Zone area is the area of its on-wafer dies (the inspected area), so densities are
    comparable with die-level D0.

    Parameters
    ----------
    defects : DataFrame
        Canonical defect table with ``x_um``, ``y_um`` [um].
    layout : WaferLayout
        Die grid (not inferred: the area must be known).
    level : {"wafer", "lot", "pooled"}
        One row per zone of each wafer, of each lot (wafers of the lot pooled), or overall.
    wafers : DataFrame, optional
        The inspected wafers (``lot_id``, ``wafer_id``: a wafer table or a die table), so that
        wafers without defects count in the area. Without it the wafers are those of
        ``defects``, and a defect-free wafer is left out: a lot or pooled density is then too
        high by (wafers inspected) / (wafers with defects), and the wafer has no rows.

    Returns
    -------
    DataFrame
        [``lot_id`` [, ``wafer_id``]], ``zone``, ``n_defects``, ``area_cm2`` (total over the
        wafers pooled), ``density``, ``ci_lower``, ``ci_upper`` [defects/cm^2]. Defects on no
        die are left out (they lie outside the inspected area).
    """
    check_choice(level, ("wafer", "lot", "pooled"), name="level", where="zonal_density")
    if layout.inferred:
        raise YieldkitValueError("zonal_density needs a layout with a known die pitch (not an inferred one)")
    for col in ("lot_id", "wafer_id", "x_um", "y_um"):
        if col not in defects.columns:
            raise SchemaError(f"zonal_density needs the defect column {col!r}", column=col)
    grid = layout.dies()
    gz, labels = assign_zones(grid["x_center_um"], grid["y_center_um"], scheme=scheme,
                              radius_um=layout.usable_radius_um, n_zones=n_zones, radii_um=radii_um)
    n_z = len(labels)
    area_zone = np.bincount(gz, minlength=n_z) * layout.die_area_cm2
    loc = layout.locate(defects["x_um"].to_numpy(float), defects["y_um"].to_numpy(float))
    on = loc["die_x"].notna().to_numpy()
    cx, cy = layout.die_centers(loc["die_x"].to_numpy("float64", na_value=0), loc["die_y"].to_numpy("float64", na_value=0))
    dz, _ = assign_zones(cx, cy, scheme=scheme, radius_um=layout.usable_radius_um, n_zones=n_zones, radii_um=radii_um)
    g, groups, n_wafers = wafer_groups(defects, level, "zonal_density", wafers)
    n_g = len(groups)
    k = np.bincount(g[on] * n_z + dz[on], minlength=n_g * n_z).astype(np.int64)
    area = np.repeat(n_wafers, n_z) * np.tile(area_zone, n_g)
    lo, hi = garwood(k, area, conf_level)
    out = groups.iloc[np.repeat(np.arange(n_g), n_z)].reset_index(drop=True)
    out["zone"] = pd.Categorical(np.tile(np.asarray(labels, dtype=object), n_g), categories=labels)
    out["n_defects"] = k
    out["area_cm2"] = area
    with np.errstate(invalid="ignore", divide="ignore"):
        out["density"] = k / area
    out["ci_lower"] = lo
    out["ci_upper"] = hi
    return out
