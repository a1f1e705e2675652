"""Commonality analysis: which process tools, chambers, slots or time windows go with low yield.

For every factor of the wafer history (``tool_<step>``, ``chamber_<step>``, ``slot``, time windows)
:func:`commonality` tests whether wafer yield differs between the factor's levels:

- Kruskal-Wallis H test on the wafer yields of the levels (rank based, no normality assumed)
  [Kruskal1952]_, with the effect size epsilon-squared ``H / (n - 1)`` [Tomczak2014]_;
- Pearson chi-square test on the counts of bad and good wafers per level, with Cramer's V;
- Benjamini-Hochberg false-discovery-rate correction over all tests of all factors [BH1995]_;
- a random-forest permutation-importance view: how much a forest predicting yield from all
  factors together loses when one factor is shuffled [Breiman2001]_.

References
----------
.. [Kruskal1952] W. H. Kruskal, W. A. Wallis, "Use of ranks in one-criterion variance analysis,"
   J. Amer. Statist. Assoc. 47(260):583-621, 1952. doi:10.1080/01621459.1952.10483441
.. [Tomczak2014] M. Tomczak, E. Tomczak, "The need to report effect size estimates revisited,"
   Trends in Sport Sciences 1(21):19-25, 2014.
.. [BH1995] Y. Benjamini, Y. Hochberg, "Controlling the false discovery rate: a practical and
   powerful approach to multiple testing," J. R. Statist. Soc. B 57(1):289-300, 1995.
   doi:10.1111/j.2517-6161.1995.tb02031.x
.. [Breiman2001] L. Breiman, "Random forests," Machine Learning 45:5-32, 2001.
   doi:10.1023/A:1010933404324
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from .errors import DataQualityWarning, SchemaError, YieldkitValueError
from .results import TableResult
from .significance import benjamini_hochberg

log = logging.getLogger(__name__)

__all__ = ["CommonalityResult", "benjamini_hochberg", "commonality"]


@dataclass(frozen=True, repr=False)
class CommonalityResult(TableResult):
    """Process factors ranked by their association with low yield (from :func:`commonality`).

    Attributes
    ----------
    table : DataFrame
        One row per factor, best-ranked first (columns in :func:`commonality`).
    bad_threshold : float
        Wafers with a yield below it counted as bad (the chi-square test and
        ``worst_level_bad_share``).
    fdr : float
        False-discovery rate behind the ``significant`` column.
    """

    table: pd.DataFrame
    bad_threshold: float
    fdr: float = 0.05

    def __repr__(self) -> str:
        top = str(self.table["factor"].iloc[0]) if len(self.table) else None
        return (f"CommonalityResult(factors={len(self.table)}, significant={int(self.table['significant'].sum())}, "
                f"top={top!r}, bad_threshold={self.bad_threshold:.4g}, fdr={self.fdr:g})")

_MISSING = "<missing>"


def _default_factors(wafers: pd.DataFrame) -> list[str]:
    out = []
    for c in wafers.columns:
        lc = str(c).lower()
        if lc.startswith(("tool_", "chamber_")) or lc in ("slot", "tool", "chamber", "equipment"):
            out.append(str(c))
        elif pd.api.types.is_datetime64_any_dtype(wafers[c]) or lc.endswith(("_time", "_date", "_ts")):
            out.append(str(c))
    return out


def _levels(df: pd.DataFrame, col: str, time_windows: int) -> tuple[np.ndarray, np.ndarray]:
    """Level code of every wafer for one factor, and the level names (time columns binned into windows)."""
    s = df[col]
    lc = col.lower()
    if not pd.api.types.is_datetime64_any_dtype(s) and lc.endswith(("_time", "_date", "_ts")):
        conv = pd.to_datetime(s, errors="coerce", utc=True)
        if conv.notna().mean() > 0.9:
            s = conv
    if pd.api.types.is_datetime64_any_dtype(s):
        t = s.astype("int64").where(s.notna())
        try:
            bins = pd.qcut(t, q=time_windows, duplicates="drop")
        except ValueError:
            bins = pd.Series(pd.NA, index=s.index)
        codes = pd.Series(pd.Categorical(bins).codes, index=s.index)
        lo = s.groupby(codes).min()
        hi = s.groupby(codes).max()
        windows = {k: f"{lo[k]:%Y-%m-%d %H:%M}..{hi[k]:%Y-%m-%d %H:%M}" for k in lo.index if k >= 0}
        s = codes.map(windows)
    elif lc.startswith("chamber_"):
        tool = "tool_" + col[len("chamber_"):]
        tcol = next((c for c in df.columns if c.lower() == tool), None)
        if tcol is not None:
            s = df[tcol].astype("string").fillna(_MISSING) + "/" + s.astype("string").fillna(_MISSING)
    codes, uniq = pd.factorize(s, use_na_sentinel=True)
    labels = [str(u) for u in uniq]
    if (codes < 0).any():
        codes = np.where(codes < 0, len(labels), codes)
        labels.append(_MISSING)
    return np.asarray(codes, dtype=np.int64), np.asarray(labels, dtype=object)


def _kruskal(ranks: np.ndarray, tie: float, codes: np.ndarray, k: int) -> tuple[float, float]:
    """Kruskal-Wallis H (tie-corrected) and its chi-square p-value from precomputed ranks."""
    n = len(ranks)
    cnt = np.bincount(codes, minlength=k)
    rs = np.bincount(codes, weights=ranks, minlength=k)
    nz = cnt > 0
    h = 12.0 / (n * (n + 1)) * np.sum(rs[nz] ** 2 / cnt[nz]) - 3.0 * (n + 1)
    if tie <= 0:
        return 0.0, 1.0
    h /= tie
    return float(h), float(stats.chi2.sf(h, int(nz.sum()) - 1))


def _chi2(nbad: np.ndarray, cnt: np.ndarray) -> tuple[float, float]:
    """Pearson chi-square (no continuity correction) of the levels x (bad, good) table."""
    table = np.c_[nbad, cnt - nbad]
    table = table[cnt > 0]
    n = table.sum()
    col = table.sum(axis=0)
    if len(table) < 2 or col.min() <= 0:
        return np.nan, np.nan
    exp = table.sum(axis=1)[:, None] * col[None, :] / n
    c2 = float(np.sum((table - exp) ** 2 / exp))
    return c2, float(stats.chi2.sf(c2, len(table) - 1))


def _checked_factors(wafer_yield: pd.DataFrame, wafers: pd.DataFrame, factors: Sequence[str] | None,
                     yield_col: str, bad_quantile: float, fdr: float, time_windows: Any) -> list[str]:
    """Check the arguments of :func:`commonality` (tables, keys, ranges); return the factor columns."""
    where = "commonality"
    key = ["lot_id", "wafer_id"]
    for name, df in (("wafer_yield", wafer_yield), ("wafers", wafers)):
        if not isinstance(df, pd.DataFrame):
            raise YieldkitValueError(f"The {name!r} argument of {where} must be a DataFrame. Got {type(df).__name__} instead.")
        miss = [c for c in ("lot_id", "wafer_id") if c not in df.columns]
        if miss:
            raise SchemaError(f"The {name!r} table of {where} lacks column(s) {', '.join(miss)}; "
                              f"found {', '.join(map(str, df.columns))}")
    if yield_col not in wafer_yield.columns:
        raise SchemaError(f"The 'wafer_yield' table of {where} lacks the yield column {yield_col!r}; "
                          f"found {', '.join(map(str, wafer_yield.columns))}")
    if not 0 < bad_quantile < 1:
        raise YieldkitValueError(f"The 'bad_quantile' argument of {where} must be in (0, 1). Got {bad_quantile!r} instead.")
    if not 0 < fdr < 1:
        raise YieldkitValueError(f"The 'fdr' argument of {where} must be in (0, 1). Got {fdr!r} instead.")
    if not isinstance(time_windows, int | np.integer) or time_windows < 2:
        raise YieldkitValueError(f"The 'time_windows' argument of {where} must be an int >= 2. Got {time_windows!r} instead.")
    factors = list(_default_factors(wafers) if factors is None else factors)
    if not factors:
        raise SchemaError(f"{where}: the wafer table has no factor columns (tool_*, chamber_*, slot, *_time); "
                          f"found {', '.join(map(str, wafers.columns))}; pass factors=[...]")
    miss = [f for f in factors if f not in wafers.columns]
    if miss:
        raise SchemaError(f"The 'factors' argument of {where} names column(s) missing from 'wafers': {', '.join(miss)}")

    for name, t in (("wafer_yield", wafer_yield), ("wafers", wafers)):
        dup = t.duplicated(key)
        if dup.any():
            first = t.loc[dup.to_numpy(), key].iloc[0].tolist()
            raise SchemaError(f"The {name!r} table of {where} has {int(dup.sum())} duplicate (lot_id, wafer_id) "
                              f"row(s), e.g. {first}; it needs one row per wafer")
    return factors


def commonality(
    wafer_yield: pd.DataFrame,
    wafers: pd.DataFrame,
    *,
    factors: Sequence[str] | None = None,
    yield_col: str = "yield",
    bad_threshold: float | None = None,
    bad_quantile: float = 0.25,
    time_windows: int = 4,
    fdr: float = 0.05,
    importance: bool = True,
    n_repeats: int = 5,
    random_state: Any = 0,
) -> CommonalityResult:
    """Rank process-history factors by their association with low wafer yield.

    Parameters
    ----------
    wafer_yield : DataFrame
        One row per wafer with ``lot_id``, ``wafer_id`` and ``yield_col`` (e.g.
        :func:`yieldkit.wafer_yield`).
    wafers : DataFrame
        Wafer table with ``lot_id``, ``wafer_id`` and the factor columns.
    factors : sequence of str, optional
        Columns to test. Default: every ``tool_*`` and ``chamber_*`` column, ``slot``, and time
        columns (datetime dtype or names ending in ``_time``/``_date``/``_ts``). A
        ``chamber_<step>`` column is combined with ``tool_<step>`` (chamber B of tool T2 is
        ``"T2/B"``).
    yield_col : str
        Yield column of ``wafer_yield`` (fraction in [0, 1]).
    bad_threshold : float, optional
        A wafer is *bad* when its yield is below this value. Default: below the ``bad_quantile``
        quantile of all wafer yields.
    bad_quantile : float
        In (0, 1); used when ``bad_threshold`` is None.
    time_windows : int
        Number of equal-count windows a time column is cut into (>= 2).
    fdr : float
        False-discovery rate for the ``significant`` column, in (0, 1).
    importance : bool
        Compute the random-forest permutation importance (slower; off for quick scans).
    n_repeats : int
        Permutations per factor for the importance.
    random_state : int or None
        Seed of the forest and the permutations.

    Returns
    -------
    CommonalityResult
        ``.bad_threshold``, ``.fdr`` and ``.table``, one row per factor, best-ranked first: ``rank``, ``factor``, ``n_levels``, ``n_wafers``,
        ``worst_level``, ``worst_level_wafers``, ``worst_level_yield`` (mean),
        ``other_yield`` (mean of the other wafers), ``yield_delta``, ``worst_level_bad_share``,
        ``kw_stat``, ``kw_p``, ``epsilon_sq``, ``chi2_stat``, ``chi2_p``, ``cramers_v``,
        ``kw_p_adj``, ``chi2_p_adj`` (Benjamini-Hochberg over all tests), ``p_adj`` (the smaller
        of the two), ``significant`` (``p_adj < fdr``), ``importance``, ``importance_std``
        (permutation importance, decrease of R^2; NaN when ``importance=False``). Sorted by
        ``p_adj``, then by effect size.

    Raises
    ------
    SchemaError
        When a key, yield or factor column is missing, or no wafer is in both tables.
    YieldkitValueError
        On an out-of-range argument.

    Notes
    -----
    Levels are compared as unordered categories. Under the complete null (no factor matters) the
    Benjamini-Hochberg procedure keeps the chance of flagging any factor at ``fdr`` or below.
    A factor confounded with another (a tool used only by one lot) cannot be separated from it:
    commonality ranks associations, it does not prove causes.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(1)
    >>> w = pd.DataFrame({"lot_id": "L", "wafer_id": [str(i) for i in range(200)],
    ...                   "tool_etch": rng.choice(["E1", "E2", "E3"], 200),
    ...                   "tool_cmp": rng.choice(["C1", "C2"], 200)})
    >>> y = w[["lot_id", "wafer_id"]].assign(
    ...     **{"yield": 0.9 - 0.1 * (w["tool_etch"] == "E2") + rng.normal(0, 0.02, 200)})
    >>> t = commonality(y, w, importance=False).table
    >>> t.loc[0, ["factor", "worst_level"]].tolist(), bool(t.loc[0, "p_adj"] < 0.01)
    (['tool_etch', 'E2'], True)
    """
    where = "commonality"
    factors = _checked_factors(wafer_yield, wafers, factors, yield_col, bad_quantile, fdr, time_windows)
    key = ["lot_id", "wafer_id"]
    yv = wafer_yield[key + [yield_col]]
    wv = wafers[key + [c for c in factors if c not in key and c != yield_col]]
    yv = yv.assign(**{k: yv[k].astype(str) for k in key})
    wv = wv.assign(**{k: wv[k].astype(str) for k in key})
    df = yv.merge(wv, on=key, how="inner")
    y = pd.to_numeric(df[yield_col], errors="coerce").to_numpy(np.float64)
    ok = np.isfinite(y)
    if not ok.all():
        warnings.warn(f"{where}: {int((~ok).sum())} wafer(s) without a finite yield left out", DataQualityWarning,
                      stacklevel=2)
    df = df.loc[ok].reset_index(drop=True)
    y = y[ok]
    n = len(df)
    if n < 3:
        raise SchemaError(f"{where}: only {n} wafer(s) are in both tables (joined on lot_id, wafer_id); need >= 3")
    thr = float(np.quantile(y, bad_quantile)) if bad_threshold is None else float(bad_threshold)
    bad = y < thr
    if bad_threshold is None and not bad.any():
        bad = y <= thr
    ranks = stats.rankdata(y)
    _, tcounts = np.unique(y, return_counts=True)
    tie = 1.0 - float(np.sum(tcounts.astype(np.float64) ** 3 - tcounts)) / (float(n) ** 3 - n)
    rows = []
    codes_all = {}
    for f in factors:
        codes, uniq = _levels(df, f, int(time_windows))
        codes_all[f] = codes
        k = len(uniq)
        cnt = np.bincount(codes, minlength=k)
        mean = np.bincount(codes, weights=y, minlength=k) / np.maximum(cnt, 1)
        nbad = np.bincount(codes, weights=bad, minlength=k)
        worst = int(np.argmin(mean))
        cw = int(cnt[worst])
        other = (float(y.sum()) - float(mean[worst]) * cw) / max(n - cw, 1)
        r = {"factor": f, "n_levels": k, "n_wafers": n, "worst_level": str(uniq[worst]),
             "worst_level_wafers": cw, "worst_level_yield": float(mean[worst]),
             "other_yield": float(other) if n > cw else np.nan,
             "worst_level_bad_share": float(nbad[worst]) / cw,
             "kw_stat": np.nan, "kw_p": np.nan, "epsilon_sq": np.nan,
             "chi2_stat": np.nan, "chi2_p": np.nan, "cramers_v": np.nan}
        r["yield_delta"] = float(mean[worst]) - (float(other) if n > cw else np.nan)
        if k >= 2:
            h, p = _kruskal(ranks, tie, codes, k)
            r.update(kw_stat=h, kw_p=p, epsilon_sq=h / (n - 1))
            c2, p2 = _chi2(nbad, cnt)
            if np.isfinite(c2):
                r.update(chi2_stat=c2, chi2_p=p2, cramers_v=float(np.sqrt(c2 / n)))
        else:
            log.info("%s: factor %r has a single level; not tested", where, f)
        rows.append(r)
    out = pd.DataFrame(rows)
    adj = benjamini_hochberg(np.r_[out["kw_p"].to_numpy(), out["chi2_p"].to_numpy()])
    out["kw_p_adj"] = adj[: len(out)]
    out["chi2_p_adj"] = adj[len(out):]
    out["p_adj"] = np.fmin(out["kw_p_adj"], out["chi2_p_adj"])
    out["significant"] = out["p_adj"] < fdr
    out["importance"] = np.nan
    out["importance_std"] = np.nan
    if importance and len(factors) >= 1 and n >= 10:
        from sklearn.ensemble import RandomForestRegressor
        from sklearn.inspection import permutation_importance

        Xf = np.column_stack([codes_all[f] for f in factors]).astype(np.float64)
        rf = RandomForestRegressor(n_estimators=100, min_samples_leaf=5, random_state=random_state, n_jobs=1)
        rf.fit(Xf, y)
        pi = permutation_importance(rf, Xf, y, n_repeats=n_repeats, random_state=random_state, n_jobs=1)
        out["importance"] = pi.importances_mean
        out["importance_std"] = pi.importances_std
    out["_p"] = out["p_adj"].fillna(2.0)
    out["_e"] = -out["epsilon_sq"].fillna(0.0)
    out = out.sort_values(["_p", "_e"], kind="stable").drop(columns=["_p", "_e"]).reset_index(drop=True)
    out.insert(0, "rank", np.arange(1, len(out) + 1))
    cols = ["rank", "factor", "n_levels", "n_wafers", "worst_level", "worst_level_wafers", "worst_level_yield",
            "other_yield", "yield_delta", "worst_level_bad_share", "kw_stat", "kw_p", "epsilon_sq", "chi2_stat",
            "chi2_p", "cramers_v", "kw_p_adj", "chi2_p_adj", "p_adj", "significant", "importance", "importance_std"]
    return CommonalityResult(out[cols], bad_threshold=thr, fdr=fdr)
