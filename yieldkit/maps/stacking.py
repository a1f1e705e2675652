"""Stacked (composite) maps across wafers and lots, and reticle stacking."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .._deprecation import renamed_kwargs
from .._keys import position_codes
from ..errors import SchemaError, YieldkitValueError, check_choice
from ..intervals import clopper_pearson
from ..schema import STRING

__all__ = ["bin_frequency", "reticle_stack", "stack_map"]



def _final(dies: pd.DataFrame, where: str, need: tuple[str, ...] = ("passed",)) -> pd.DataFrame:
    missing = [c for c in ("lot_id", "wafer_id", "die_x", "die_y", *need) if c not in dies.columns]
    if missing:
        raise SchemaError(f"{where} needs column(s) {', '.join(missing)}", column=missing[0])
    from ..yields import final_results, placed

    if "passed" in dies.columns and "hbin" in dies.columns:
        dies = final_results(dies)
    return placed(dies, where)


def _groups(d: pd.DataFrame, level: str, where: str) -> tuple[np.ndarray, pd.DataFrame]:
    check_choice(level, ("pooled", "lot"), name="level", where=where)
    if level == "pooled":
        return np.zeros(len(d), np.int64), pd.DataFrame(index=[0])
    codes, lots = pd.factorize(d["lot_id"])
    return codes.astype(np.int64), pd.DataFrame({"lot_id": pd.array(np.asarray(lots, dtype=object), dtype=STRING)})


@renamed_kwargs(value="value_col")
def stack_map(dies: pd.DataFrame, *, level: str = "pooled", value_col: str | None = None) -> pd.DataFrame:
    """Composite map: per die position, the fail rate (and mean of ``value_col``) over the wafers.

    Parameters
    ----------
    dies : DataFrame
        Die table (final results are used) with ``passed``, or the output of
        :func:`~yieldkit.maps.die_defect_counts` (``passed`` optional).
    level : {"pooled", "lot"}
        One composite over all wafers, or one per lot.
    value_col : str, optional
        Numeric column to average per position, e.g. ``n_defects``.

    Returns
    -------
    DataFrame
        [``lot_id``], ``die_x``, ``die_y``, ``n_wafers``, and with ``passed``: ``n_fail``,
        ``fail_rate``, ``ci_lower``, ``ci_upper`` (Clopper-Pearson of the fail rate); with
        ``value_col``: ``mean_<value_col>``.

    Examples
    --------
    >>> import yieldkit as yk
    >>> fab = yk.simulate_fab(n_lots=1, wafers_per_lot=3, random_state=1)
    >>> s = stack_map(fab.dies)
    >>> int(s["n_wafers"].max()), len(s) == fab.layout.n_dies
    (3, True)
    """
    need = () if value_col is not None else ("passed",)
    d = _final(dies, "stack_map", need)
    if value_col is not None and value_col not in d.columns:
        raise SchemaError(f"stack_map: value column {value_col!r} is missing", column=value_col)
    g, groups = _groups(d, level, "stack_map")
    pos, positions = position_codes(d["die_x"].to_numpy(), d["die_y"].to_numpy())
    n_p = len(positions)
    key = g * n_p + pos
    size = len(groups) * n_p
    n = np.bincount(key, minlength=size)
    keep = n > 0
    out = groups.iloc[np.repeat(np.arange(len(groups)), n_p)].reset_index(drop=True)
    out["die_x"] = np.tile(positions["die_x"].to_numpy(), len(groups))
    out["die_y"] = np.tile(positions["die_y"].to_numpy(), len(groups))
    out["n_wafers"] = n
    if "passed" in d.columns:
        fail = np.bincount(key, weights=~d["passed"].to_numpy(dtype=bool), minlength=size).astype(np.int64)
        lo, hi = clopper_pearson(fail, n)
        out["n_fail"] = fail
        with np.errstate(invalid="ignore", divide="ignore"):
            out["fail_rate"] = fail / n
        out["ci_lower"] = lo
        out["ci_upper"] = hi
    if value_col is not None:
        s = np.bincount(key, weights=d[value_col].to_numpy(dtype=float), minlength=size)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[f"mean_{value_col}"] = s / n
    return out.loc[keep].reset_index(drop=True)


@renamed_kwargs(column="bin_col")
def bin_frequency(dies: pd.DataFrame, *, level: str = "pooled", bin_col: str = "hbin") -> pd.DataFrame:
    """Frequency of every bin at every die position over the wafers (long format, zeros included).

    Returns
    -------
    DataFrame
        [``lot_id``], ``die_x``, ``die_y``, ``<bin_col>``, ``n``, ``n_wafers``, ``frequency``.
        Dies without a bin (a missing soft bin) are counted under the bin ``"missing"``.
    """
    d = _final(dies, "bin_frequency", (bin_col,))
    g, groups = _groups(d, level, "bin_frequency")
    pos, positions = position_codes(d["die_x"].to_numpy(), d["die_y"].to_numpy())
    bcode, uniques = pd.factorize(d[bin_col], sort=True)
    bins: Any = uniques
    if (bcode < 0).any():  # missing bins are a category of their own, as in die_defect_counts
        bins = pd.Index(uniques).astype(object).append(pd.Index(["missing"]))
        bcode = np.where(bcode < 0, len(bins) - 1, bcode)
    n_p, n_b, n_g = len(positions), len(bins), len(groups)
    cnt = np.bincount((g * n_p + pos) * n_b + bcode, minlength=n_g * n_p * n_b)
    tot = np.bincount(g * n_p + pos, minlength=n_g * n_p)
    gi = np.repeat(np.arange(n_g), n_p * n_b)
    pi = np.tile(np.repeat(np.arange(n_p), n_b), n_g)
    out = groups.iloc[gi].reset_index(drop=True)
    out["die_x"] = positions["die_x"].to_numpy()[pi]
    out["die_y"] = positions["die_y"].to_numpy()[pi]
    out[bin_col] = np.tile(np.asarray(bins), n_g * n_p)
    out["n"] = cnt
    out["n_wafers"] = np.repeat(tot, n_b)
    keep = out["n_wafers"].to_numpy() > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        out["frequency"] = cnt / out["n_wafers"].to_numpy()
    return out.loc[keep].reset_index(drop=True)


def reticle_stack(
    dies: pd.DataFrame,
    *,
    shot: tuple[int, int],
    offset: tuple[int, int] = (0, 0),
    die_area_cm2: float | None = None,
    conf_level: float = 0.95,
) -> pd.DataFrame:
    """Yield and defect density per reticle site (die position within the exposure shot).

    Parameters
    ----------
    dies : DataFrame
        Die table with ``passed`` (final results are used) and/or ``n_defects`` (e.g. the
        output of :func:`~yieldkit.maps.die_defect_counts` for a die table).
    shot : (int, int)
        Dies per shot in x and y.
    offset : (int, int)
        Die index of a shot's lower-left die (the site ``(0, 0)``), modulo the shot.
    die_area_cm2 : float, optional
        Die area [cm^2], for ``density``.

    Returns
    -------
    DataFrame
        ``site_x``, ``site_y``, ``n_dies``, and with ``passed``: ``good``, ``yield``,
        ``ci_lower``, ``ci_upper``; with ``n_defects``: ``n_defects``, ``mean_defects`` and
        (given the area) ``density`` [defects/cm^2].

    Notes
    -----
    ``site_x = (die_x - offset_x) mod shot_x``, likewise y.
    """
    sx, sy = (int(v) for v in shot)
    if sx < 1 or sy < 1:
        raise YieldkitValueError(f"The 'shot' argument of reticle_stack must be two integers >= 1. Got {shot!r} instead.")
    has_pass = "passed" in dies.columns
    if not has_pass and "n_defects" not in dies.columns:
        raise SchemaError("reticle_stack needs 'passed' or 'n_defects'", column="passed")
    d = _final(dies, "reticle_stack", ())
    ox, oy = (int(v) for v in offset)
    site_x = np.mod(d["die_x"].to_numpy(np.int64) - ox, sx)
    site_y = np.mod(d["die_y"].to_numpy(np.int64) - oy, sy)
    key = site_y * sx + site_x
    n = np.bincount(key, minlength=sx * sy)
    out = pd.DataFrame({"site_x": np.tile(np.arange(sx), sy), "site_y": np.repeat(np.arange(sy), sx), "n_dies": n})
    if has_pass:
        good = np.bincount(key, weights=d["passed"].to_numpy(dtype=bool), minlength=sx * sy).astype(np.int64)
        lo, hi = clopper_pearson(good, n, conf_level)
        out["good"] = good
        with np.errstate(invalid="ignore", divide="ignore"):
            out["yield"] = good / n
        out["ci_lower"] = lo
        out["ci_upper"] = hi
    if "n_defects" in d.columns:
        k = np.bincount(key, weights=d["n_defects"].to_numpy(dtype=float), minlength=sx * sy)
        out["n_defects"] = k.astype(np.int64)
        with np.errstate(invalid="ignore", divide="ignore"):
            out["mean_defects"] = k / n
            if die_area_cm2 is not None:
                out["density"] = k / (n * float(die_area_cm2))
    return out
