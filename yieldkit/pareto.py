"""Defect and bin Paretos: ranked categories with shares, cumulative shares and yield impact.

A Pareto ranks categories (defect classes, size bins, layers, hard or soft bins) by a weight
— the count, the density or, when the die table accompanies the defect table, the
kill-weighted impact — and reports each category's share and the cumulative share, so the
"vital few" that make up 80 % of the total stand out. ``top=N`` keeps the first N
categories and folds the rest into ``"Other"``, which is always listed last.

Glossary
--------
share
    The category's weight over the group's total weight.
cum_share
    Running sum of ``share`` in ranked order.
vital_few
    The categories up to and including the one where ``cum_share`` first reaches 80 %.
impact
    Kill-weighted count: ``kill_ratio * dies_affected``, the dies the class is estimated to
    kill.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from .errors import DataQualityWarning, SchemaError, YieldkitValueError, check_choice
from .killratio import contingency_counts, contingency_kill_ratio, die_defects
from .schema import STRING
from .yields import final_results, first_pass_results

log = logging.getLogger(__name__)

__all__ = ["OTHER", "SIZE_EDGES_UM", "bin_pareto", "pareto", "retest_recovery", "size_bins"]

OTHER = "Other"
#: Default size-bin edges [um] for ``by="size_bin"``.
SIZE_EDGES_UM: tuple[float, ...] = (0.1, 0.2, 0.3, 0.5, 1.0, 2.0, 5.0)


def size_bins(size_um: pd.Series, edges_um: Sequence[float] = SIZE_EDGES_UM) -> pd.Series:
    """Label defect sizes with their bin, e.g. ``"0.2-0.3 um"``, ``"<0.1 um"``, ``">=5 um"``.

    Parameters
    ----------
    size_um : Series
        Defect sizes [um].
    edges_um : sequence of float
        Increasing bin edges [um].

    Examples
    --------
    >>> import pandas as pd
    >>> size_bins(pd.Series([0.05, 0.25, 7.0]), (0.1, 0.5)).tolist()
    ['<0.1 um', '0.1-0.5 um', '>=0.5 um']
    """
    e = np.asarray(edges_um, dtype=float)
    if e.ndim != 1 or len(e) == 0 or np.any(np.diff(e) <= 0):
        raise YieldkitValueError(f"The 'edges_um' argument of size_bins must be increasing. Got {edges_um!r} instead.")
    labels = np.array([f"<{e[0]:g} um"] + [f"{a:g}-{b:g} um" for a, b in zip(e[:-1], e[1:])] + [f">={e[-1]:g} um"],
                      dtype=object)
    v = size_um.to_numpy(dtype=float, na_value=np.nan)
    idx = np.searchsorted(e, v, side="right")
    out = labels[idx]
    out[np.isnan(v)] = "size unknown"
    return pd.Series(out, index=size_um.index, dtype=STRING, name="size_bin")


def _as_list(group: str | Sequence[str] | None) -> list[str]:
    if group is None:
        return []
    return [group] if isinstance(group, str) else list(group)


def _rank(out: pd.DataFrame, gcols: list[str], value: str, top: int | None) -> pd.DataFrame:
    """Sort within groups by ``value``, fold the tail into Other, add share/cum_share/vital_few."""
    out = out.sort_values([*gcols, value, "count"], ascending=[True] * len(gcols) + [False, False],
                          kind="stable", na_position="last")
    if gcols:
        rank = out.groupby(gcols, sort=False).cumcount().to_numpy()
    else:
        rank = np.arange(len(out))
    out["rank"] = rank + 1
    if top is not None:
        tail = out["rank"] > top
        if tail.any():
            head = out[~tail]
            rest = out[tail]
            agg: dict[str, Any] = {c: "sum" for c in ("count", "density", "impact", "yield_loss") if c in rest.columns}
            other = (rest.groupby(gcols, sort=False).agg(agg).reset_index() if gcols
                     else pd.DataFrame({c: [rest[c].sum()] for c in agg}))
            other["category"] = OTHER
            other["rank"] = top + 1
            other["n_categories"] = (rest.groupby(gcols, sort=False).size().to_numpy() if gcols else [len(rest)])
            out = pd.concat([head, other], ignore_index=True)
            out = out.sort_values([*gcols, "rank"], kind="stable")
    total = out.groupby(gcols, sort=False)[value].transform("sum") if gcols else out[value].sum()
    with np.errstate(invalid="ignore", divide="ignore"):
        out["share"] = out[value] / total
    out["cum_share"] = out.groupby(gcols, sort=False)["share"].cumsum() if gcols else out["share"].cumsum()
    prev = out["cum_share"] - out["share"]
    out["vital_few"] = (prev < 0.8 - 1e-12).to_numpy()
    return out.reset_index(drop=True)


def _category_table(t: pd.DataFrame, by: str, gcols: list[str], size_edges_um: Sequence[float]
                    ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The table with its category column prepared for a Pareto (size bins from ``size_um``, missing classes as unclassified), and the counts
    per group and category in order of first appearance."""
    if by == "size_bin" and "size_bin" not in t.columns:
        if "size_um" not in t.columns:
            raise SchemaError("pareto(by='size_bin') needs a 'size_bin' or a 'size_um' column.", column="size_um")
        t = t.assign(size_bin=size_bins(t["size_um"], size_edges_um))
    if by not in t.columns and by != "defect_class":
        raise SchemaError(f"The 'by' column {by!r} of pareto is not in the table; columns are {list(t.columns)}.",
                          column=by)
    if by == "defect_class" and by not in t.columns:
        from .schema import UNCLASSIFIED

        t = t.assign(defect_class=UNCLASSIFIED)
    cat = t[by].fillna("unclassified") if by == "defect_class" else t[by]
    if cat.isna().any():
        raise SchemaError(f"The 'by' column {by!r} has missing values; fill them before a Pareto.", column=by)
    keys = pd.DataFrame({c: t[c] for c in gcols})
    keys["category"] = cat.to_numpy()
    counted = keys.groupby([*gcols, "category"], sort=False, dropna=False).size().rename("count").reset_index()
    return t, counted


def pareto(
    table: pd.DataFrame,
    *,
    by: str = "defect_class",
    weight: str = "count",
    dies: pd.DataFrame | None = None,
    top: int | None = None,
    group: str | Sequence[str] | None = None,
    die_area_cm2: float | None = None,
    size_edges_um: Sequence[float] = SIZE_EDGES_UM,
    interval: str = "wilson",
    conf_level: float = 0.95,
) -> pd.DataFrame:
    """Pareto of a defect table (or any table) by a category column.

    Parameters
    ----------
    table : DataFrame
        Canonical defect table, or any table holding the ``by`` column.
    by : str
        Category column: ``defect_class`` (missing classes count as ``"unclassified"``),
        ``layer``, ``size_bin`` (computed from ``size_um`` with ``size_edges_um`` when absent),
        or any other column.
    weight : {"count", "density", "kill"}
        What ranks the categories: the number of rows; the density [defects/cm^2] (needs
        ``dies`` and ``die_area_cm2``); or the kill-weighted impact (needs ``dies``).
    dies : DataFrame, optional
        Canonical die table of the same wafers; adds ``dies_affected``, ``kill_ratio``
        (contingency, see :func:`yieldkit.kill_ratio`), ``limited_yield``, ``yield_loss`` and
        ``impact``.
    top : int, optional
        Keep the first ``top`` categories of each group and fold the rest into ``"Other"``.
    group : str or sequence of str, optional
        Separate Paretos per value of these columns (``lot_id``, ``layer``, ``product``, ...).
        With ``dies``, a group column the die table also holds restricts the tested dies too
        (per lot); one it lacks (``layer``) uses all tested dies.
    die_area_cm2 : float, optional
        Die area [cm^2] for ``weight="density"``.
    size_edges_um : sequence of float
        Size-bin edges [um] for ``by="size_bin"``.
    interval, conf_level
        Interval of the kill ratio (see :func:`yieldkit.kill_ratio`).

    Returns
    -------
    DataFrame
        Group columns, then ``category``, ``count``, [``density``], [``dies_affected``,
        ``fraction_affected``, ``kill_ratio``, ``kr_ci_lower``, ``kr_ci_upper``,
        ``limited_yield``, ``yield_loss``, ``impact``], ``rank``, ``share``, ``cum_share``,
        ``vital_few``; sorted by group then rank. The folded ``"Other"`` row sums the additive
        columns (count, density, impact, yield loss) and leaves the kill ratio NaN.

    Raises
    ------
    SchemaError
        ``by`` or a group column is missing.
    YieldkitValueError
        Bad ``weight`` or ``top``, or ``weight`` needs ``dies``/``die_area_cm2``.

    Notes
    -----
    ``share_i = w_i / sum_j w_j``; ``limited_yield = 1 - KR * f`` with ``f`` the fraction of
    tested dies carrying the category; ``impact = KR * dies_affected``.

    Examples
    --------
    >>> import pandas as pd
    >>> from yieldkit.pareto import pareto
    >>> t = pd.DataFrame({"defect_class": ["a", "b", "a", "c", "a", "b"]})
    >>> pareto(t)[["category", "count", "cum_share"]].round(3).values.tolist()
    [['a', 3, 0.5], ['b', 2, 0.833], ['c', 1, 1.0]]
    """
    check_choice(weight, ("count", "density", "kill"), name="weight", where="pareto")
    if top is not None and (not isinstance(top, int | np.integer) or top < 1):
        raise YieldkitValueError(f"The 'top' argument of pareto must be a positive integer. Got {top!r} instead.")
    if weight in ("density", "kill") and dies is None:
        raise YieldkitValueError(f"pareto(weight={weight!r}) needs the die table: pass dies=.")
    if weight == "density" and not (die_area_cm2 and die_area_cm2 > 0):
        raise YieldkitValueError(f"pareto(weight='density') needs die_area_cm2 > 0 [cm^2]. Got {die_area_cm2!r} instead.")
    gcols = _as_list(group)
    missing = [c for c in gcols if c not in table.columns]
    if missing:
        raise SchemaError(f"The 'group' column(s) {missing} of pareto are not in the table; columns are "
                          f"{list(table.columns)}.", column=missing[0])
    t, counted = _category_table(table, by, gcols, size_edges_um)
    if dies is not None:
        counted = _with_dies(counted, t, dies, by, gcols, interval, conf_level, die_area_cm2)
    value = {"count": "count", "density": "density", "kill": "impact"}[weight]
    return _rank(counted, gcols, value, top)


def _with_dies(counted: pd.DataFrame, t: pd.DataFrame, dies: pd.DataFrame, by: str, gcols: list[str],
               interval: str, conf_level: float, die_area_cm2: float | None) -> pd.DataFrame:
    dd = die_defects(dies, t, by=by)
    final = dd.dies
    dcols = [c for c in gcols if c in final.columns]
    # group code of each matched defect and of each group row of `counted`
    groups = counted[gcols].drop_duplicates().reset_index(drop=True) if gcols else pd.DataFrame(index=[0])
    G, C = len(groups), len(dd.categories)
    if gcols:
        gkey = pd.MultiIndex.from_frame(groups) if len(gcols) > 1 else pd.Index(groups[gcols[0]])
        sub = t.iloc[dd.defect_rows]
        dkey = pd.MultiIndex.from_frame(sub[gcols]) if len(gcols) > 1 else pd.Index(sub[gcols[0]])
        g_def = gkey.get_indexer(dkey).astype(np.int64)
    else:
        g_def = np.zeros(len(dd.die), np.int64)
    if dcols:
        stats = final.groupby(dcols, sort=False).agg(n=("passed", "size"), p=("passed", "sum")).reset_index()
        m = groups.merge(stats, on=dcols, how="left")
        g_dies = m["n"].fillna(0).to_numpy(np.int64)
        g_pass = m["p"].fillna(0).to_numpy(np.int64)
    else:
        g_dies = np.full(G, len(final), np.int64)
        g_pass = np.full(G, int(dd.passed.sum()), np.int64)
    cc = contingency_counts(dd.die, dd.category, g_def, dd.passed, G, C, g_dies, g_pass)
    long = groups.loc[np.repeat(np.arange(G), C)].reset_index(drop=True) if gcols else pd.DataFrame(index=range(C))
    long["category"] = np.tile(dd.categories, G)
    return _kill_table(counted, long, gcols, cc["affected"].ravel(), cc["pure"], cc["pure_passed"], cc["clean"],
                       cc["clean_passed"], g_dies, interval=interval, conf_level=conf_level, die_area_cm2=die_area_cm2)


def _kill_table(counted: pd.DataFrame, long: pd.DataFrame, gcols: list[str], affected: np.ndarray, pure: np.ndarray,
                pure_passed: np.ndarray, clean: np.ndarray, clean_passed: np.ndarray, g_dies: np.ndarray, *,
                interval: str, conf_level: float, die_area_cm2: float | None) -> pd.DataFrame:
    """The kill-weighted Pareto from its contingency counts (in memory and on Dask).

    ``long`` has one row per group x category (``gcols``, ``category``); ``affected`` is per
    row, ``pure``/``pure_passed`` per (group, category), ``clean``/``clean_passed``/``g_dies``
    per group. ``counted`` (the defect counts per group and category) gets the kill columns.
    """
    C = pure.shape[1]
    kr = contingency_kill_ratio(pure, pure_passed, np.repeat(clean[:, None], C, axis=1),
                                np.repeat(clean_passed[:, None], C, axis=1), interval=interval,
                                conf_level=conf_level, where="pareto", warn=False)
    long["dies_affected"] = affected
    with np.errstate(invalid="ignore", divide="ignore"):
        long["fraction_affected"] = affected / np.repeat(g_dies, C)
    for src, dst in (("kill_ratio", "kill_ratio"), ("ci_lower", "kr_ci_lower"), ("ci_upper", "kr_ci_upper")):
        long[dst] = kr[src].ravel()
    long["limited_yield"] = 1.0 - long["kill_ratio"] * long["fraction_affected"]
    long["yield_loss"] = 1.0 - long["limited_yield"]
    long["impact"] = long["kill_ratio"] * long["dies_affected"]
    long["_dies"] = np.repeat(g_dies, C)
    counted = counted.assign(category=counted["category"].astype(object))
    long["category"] = long["category"].astype(object)
    out = counted.merge(long, on=[*gcols, "category"], how="left")
    # categories seen only off-die or on untested dies
    out["dies_affected"] = out["dies_affected"].fillna(0).astype(np.int64)
    if die_area_cm2:
        with np.errstate(invalid="ignore", divide="ignore"):
            out["density"] = out["count"] / (out["_dies"].fillna(np.nan) * die_area_cm2)
    out = out.drop(columns="_dies")
    undefined = out["kill_ratio"].isna() & (out["dies_affected"] > 0)
    if undefined.any():
        warnings.warn(
            f"pareto: kill ratio undefined for {int(undefined.sum())} row(s) (no dies with only that category, "
            "no defect-free dies, or no passing defect-free die); reported as NaN.",
            DataQualityWarning, stacklevel=4,
        )
    return out


def _bin_names(bin_names: Any, by: str) -> dict[int, str]:
    if bin_names is None:
        return {}
    if isinstance(bin_names, pd.DataFrame):
        b = bin_names
        if "kind" in b.columns:
            b = b[b["kind"] == ("hard" if by == "hbin" else "soft")]
        b = b.dropna(subset=["name"])
        return {int(k): str(v) for k, v in zip(b["bin"], b["name"])}
    if isinstance(bin_names, Mapping):
        return {int(k): str(v) for k, v in bin_names.items()}
    raise YieldkitValueError("The 'bin_names' argument of bin_pareto must be a mapping bin -> name or the bins "
                             f"table of read_stdf. Got {type(bin_names).__name__} instead.")


def bin_pareto(
    dies: pd.DataFrame,
    *,
    by: str = "hbin",
    bin_names: Mapping[int, str] | pd.DataFrame | None = None,
    top: int | None = None,
    group: str | Sequence[str] | None = None,
    include_passing: bool = False,
    first_pass: bool = False,
) -> pd.DataFrame:
    """Pareto of the failing bins of a die table.

    Parameters
    ----------
    dies : DataFrame
        Canonical die table; final results count (first results with ``first_pass=True``).
    by : {"hbin", "sbin"}
        Hard or soft bin.
    bin_names : mapping or DataFrame, optional
        Bin -> name, or the ``bins`` table of :func:`yieldkit.read_stdf` (HBR/SBR names).
    top, group
        As in :func:`pareto`.
    include_passing : bool
        Also list the passing bins (ranked among the others).
    first_pass : bool
        Use first-pass results instead of final ones.

    Returns
    -------
    DataFrame
        Group columns, ``category`` (bin number), ``name``, ``count``, ``yield_loss`` (count over
        tested dies of the group), ``rank``, ``share``, ``cum_share``, ``vital_few``.

    Examples
    --------
    >>> import pandas as pd, yieldkit as yk
    >>> d = yk.read_dies(pd.DataFrame({"lot": ["L"] * 5, "wafer": ["1"] * 5, "x": range(5), "y": [0] * 5,
    ...                                "bin": [1, 2, 2, 3, 1]}))
    >>> bin_pareto(d, bin_names={2: "OPEN"})[["category", "name", "count"]].values.tolist()
    [[2, 'OPEN', 2], [3, '', 1]]
    """
    check_choice(by, ("hbin", "sbin"), name="by", where="bin_pareto")
    if top is not None and (not isinstance(top, int | np.integer) or top < 1):
        raise YieldkitValueError(f"The 'top' argument of bin_pareto must be a positive integer. Got {top!r} instead.")
    if by not in dies.columns:
        raise SchemaError(f"bin_pareto(by={by!r}) needs a {by!r} column in the die table.", column=by)
    gcols = _as_list(group)
    missing = [c for c in gcols if c not in dies.columns]
    if missing:
        raise SchemaError(f"The 'group' column(s) {missing} of bin_pareto are not in the die table.", column=missing[0])
    d = first_pass_results(dies) if first_pass else final_results(dies)
    tested = d.groupby(gcols, sort=False).size().rename("_tested").reset_index() if gcols else None
    sel = d if include_passing else d[~d["passed"].to_numpy(dtype=bool)]
    keys = pd.DataFrame({c: sel[c] for c in gcols})
    keys["category"] = sel[by].to_numpy(dtype=np.int64, na_value=-1)
    counted = keys.groupby([*gcols, "category"], sort=False).size().rename("count").reset_index()
    names = _bin_names(bin_names, by)
    counted["name"] = counted["category"].map(lambda b: names.get(int(b), "")).astype(object)
    if tested is not None:
        counted = counted.merge(tested, on=gcols, how="left")
        counted["yield_loss"] = counted["count"] / counted.pop("_tested")
    else:
        counted["yield_loss"] = counted["count"] / len(d)
    out = _rank(counted, gcols, "count", top)
    out["name"] = out["name"].fillna("")
    return out[[*gcols, "category", "name", *[c for c in out.columns if c not in (*gcols, "category", "name")]]]


def retest_recovery(dies: pd.DataFrame, *, by: str = "hbin",
                    bin_names: Mapping[int, str] | pd.DataFrame | None = None) -> pd.DataFrame:
    """The first-pass failing bins and how many of their dies retest recovered.

    Parameters
    ----------
    dies : DataFrame
        Canonical die table with ``test_seq``.
    by : {"hbin", "sbin"}
        First-pass bin to group by.
    bin_names : mapping or DataFrame, optional
        Bin names, as in :func:`bin_pareto`.

    Returns
    -------
    DataFrame
        ``category`` (first-pass bin), ``name``, ``first_pass_fails``, ``retested`` (dies with
        a later insertion), ``recovered`` (final result passes), ``still_failing``,
        ``recovery_rate`` (recovered / first-pass fails), sorted by ``recovered``. Empty
        without retests.

    Examples
    --------
    >>> import pandas as pd, yieldkit as yk
    >>> d = yk.read_dies(pd.DataFrame({"lot": ["L"] * 4, "wafer": ["1"] * 4, "x": [0, 0, 1, 2], "y": [0] * 4,
    ...                                "bin": [5, 1, 5, 1], "test_seq": [1, 2, 1, 1]}))
    >>> retest_recovery(d)[["category", "first_pass_fails", "recovered"]].values.tolist()
    [[5, 2, 1]]
    """
    check_choice(by, ("hbin", "sbin"), name="by", where="retest_recovery")
    first = first_pass_results(dies)
    final = final_results(dies)
    cols = ["category", "name", "first_pass_fails", "retested", "recovered", "still_failing", "recovery_rate"]
    fails = ~first["passed"].to_numpy(dtype=bool)
    if not fails.any():
        return pd.DataFrame({c: [] for c in cols})
    if first is final:  # no retests: each die's first result is its final one
        pos = np.arange(len(first))
    else:
        from ._keys import die_keys

        key_cols = ["lot_id", "wafer_id", "die_x", "die_y"]
        k = die_keys(pd.concat([first[key_cols], final[key_cols]], ignore_index=True))
        pos = pd.Index(k[len(first):]).get_indexer(k[: len(first)])
    fin_pass = final["passed"].to_numpy(dtype=bool)[pos]
    if "test_seq" in dies.columns:
        seq_first = first["test_seq"].to_numpy(dtype="int64", na_value=-1)
        seq_final = final["test_seq"].to_numpy(dtype="int64", na_value=-1)[pos]
        retested = seq_final != seq_first
    else:
        retested = np.zeros(len(first), bool)
    b = first[by].to_numpy(dtype=np.int64, na_value=-1)[fails]
    t = pd.DataFrame({"category": b, "retested": retested[fails], "recovered": fin_pass[fails]})
    out = t.groupby("category").agg(first_pass_fails=("recovered", "size"), retested=("retested", "sum"),
                                    recovered=("recovered", "sum")).reset_index()
    out["still_failing"] = out["first_pass_fails"] - out["recovered"]
    out["recovery_rate"] = out["recovered"] / out["first_pass_fails"]
    names = _bin_names(bin_names, by)
    out["name"] = out["category"].map(lambda x: names.get(int(x), "")).astype(object)
    out = out.sort_values(["recovered", "first_pass_fails"], ascending=False, kind="stable")
    return out[cols].reset_index(drop=True)
