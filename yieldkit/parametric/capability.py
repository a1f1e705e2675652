"""Process capability of parametric tests: Cp, Cpk, Pp, Ppk with confidence intervals.

:func:`capability` summarises every test of the long test table (per lot by default):
within-subgroup (wafer) and overall sigma, the capability indices, their confidence intervals
and the expected fraction outside the limits. It works on a pandas DataFrame, and on a Dask
DataFrame of the same table by reducing per-partition sufficient statistics.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from .._validation import check_conf_level
from ..errors import YieldkitValueError, check_choice
from ..results import TableResult
from ._table import check_frame, is_dask, prepare, require, warn_tests

log = logging.getLogger(__name__)

__all__ = ["CapabilityResult", "bissell_interval", "capability", "cp_interval"]

#: the normal quantiles that play the role of mean -/+ 3 sigma in the percentile method
_P_LO, _P_HI = stats.norm.cdf(-3.0), stats.norm.cdf(3.0)
_META = ("lo_limit", "hi_limit", "test_name", "units")


@dataclass(frozen=True, repr=False)
class CapabilityResult(TableResult):
    """Result of :func:`capability`.

    Attributes
    ----------
    table : DataFrame
        One row per group (the ``by`` keys) and test: ``test_num``, ``pin`` (missing for
        single-result tests), ``test_name``, ``units``, ``lo_limit``, ``hi_limit``, ``n``,
        ``n_subgroups``, ``mean``, ``sigma_within``, ``sigma_overall``, ``cp``, ``cp_lower``,
        ``cp_upper``, ``cpl``, ``cpu``, ``cpk``, ``cpk_lower``, ``cpk_upper``, ``pp``,
        ``pp_lower``, ``pp_upper``, ``ppl``, ``ppu``, ``ppk``, ``ppk_lower``, ``ppk_upper``,
        ``expected_ppm`` (normal model, overall sigma) and ``observed_ppm``.
    conf_level : float
    method : str
        ``"normal"`` or ``"percentile"``.
    by : tuple of str
    subgroup : str or None
    """

    table: pd.DataFrame
    conf_level: float
    method: str
    by: tuple[str, ...]
    subgroup: str | None

    def __repr__(self) -> str:
        worst = self.table["cpk"].min() if len(self.table) else float("nan")
        return (f"CapabilityResult({len(self.table)} test rows, method={self.method!r}, "
                f"conf_level={self.conf_level:g}, worst cpk={worst:.3g})")


def cp_interval(cp: Any, df: Any, conf_level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Two-sided chi-square confidence interval of Cp (or Pp) with ``df`` degrees of freedom.

    Notes
    -----
    ``Cp * sqrt(chi2_{(1-c)/2, df} / df)`` to ``Cp * sqrt(chi2_{(1+c)/2, df} / df)``, exact
    for normal data (sigma estimated with ``df`` degrees of freedom).

    References
    ----------
    Chou, Y.-M., Owen, D. B., & Borrego A., S. A. (1990). Lower confidence limits on process
    capability indices. J. Quality Technology 22(3), 223-229.
    https://doi.org/10.1080/00224065.1990.11979242

    Examples
    --------
    >>> lo, hi = cp_interval(0.50896, 74, conf_level=0.90)
    >>> round(float(lo), 4), round(float(hi), 4)
    (0.4395, 0.5769)
    """
    cp = np.asarray(cp, dtype=float)
    df = np.asarray(df, dtype=float)
    a = (1.0 - conf_level) / 2.0
    with np.errstate(invalid="ignore", divide="ignore"):
        ok = df > 0
        d = np.where(ok, df, 1.0)
        lo = cp * np.sqrt(stats.chi2.ppf(a, d) / d)
        hi = cp * np.sqrt(stats.chi2.ppf(1.0 - a, d) / d)
    return np.where(ok, lo, np.nan), np.where(ok, hi, np.nan)


def bissell_interval(cpk: Any, n: Any, df: Any = None, conf_level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Bissell's approximate two-sided confidence interval of Cpk (or Ppk, Cpl, Cpu).

    Notes
    -----
    ``Cpk -/+ z sqrt(1 / (9 n) + Cpk^2 / (2 df))`` with ``z`` the normal quantile and ``df``
    the degrees of freedom of sigma (``n - 1`` by default). Good for n >= 30 or so.

    References
    ----------
    Bissell, A. F. (1990). How reliable is your capability index? J. R. Stat. Soc. C 39(3),
    331-340. https://doi.org/10.2307/2347383

    Examples
    --------
    >>> lo, hi = bissell_interval(0.41192, 75, conf_level=0.90)
    >>> round(float(lo), 3), round(float(hi), 3)
    (0.328, 0.496)
    """
    cpk = np.asarray(cpk, dtype=float)
    n = np.asarray(n, dtype=float)
    df = n - 1.0 if df is None else np.asarray(df, dtype=float)
    z = stats.norm.ppf(0.5 + conf_level / 2.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        se = np.sqrt(1.0 / (9.0 * n) + cpk**2 / (2.0 * df))
        se = np.where((n > 0) & (df > 0), se, np.nan)
    return cpk - z * se, cpk + z * se


# -- sufficient statistics ---------------------------------------------------------------------
def _codes(col: Any) -> tuple[np.ndarray, Any]:
    """Integer codes of a key column (missing values get their own code) and its distinct values."""
    codes, uniq = pd.factorize(col, use_na_sentinel=False)
    return codes.astype(np.int64), uniq


def _key_values(uniq: Any, idx: np.ndarray) -> np.ndarray:
    """The key values at ``idx``: numbers as they are, anything else as Python objects (so that
    partitions with other categories or string types concatenate and sort alike)."""
    arr = np.asarray(uniq.take(idx) if hasattr(uniq, "take") else np.asarray(uniq)[idx])
    return arr if np.issubdtype(arr.dtype, np.number) or arr.dtype == bool else arr.astype(object)


def subgroup_stats(frame: pd.DataFrame, keys: list[str], subgroup: str | None) -> pd.DataFrame:
    """Per (keys, subgroup): ``n``, ``mean``, ``m2`` (sum of squared deviations, two-pass), counts
    below and above the limits, and the first limits, name and units. Combinable across partitions.

    Computed on integer group codes with :func:`numpy.bincount` (one pass per statistic)."""
    gkeys = keys + ([subgroup] if subgroup else [])
    gid = np.zeros(len(frame), np.int64)
    uniq: list[Any] = []
    col_codes: list[np.ndarray] = []
    for k in gkeys:
        kc, u = _codes(frame[k])
        col_codes.append(kc)
        uniq.append(u)
        gid = gid * max(len(u), 1) + kc
        gid, _ = pd.factorize(gid)  # keep the combined codes compact (no overflow)
        gid = gid.astype(np.int64)
    m = int(gid.max()) + 1 if len(gid) else 0
    v = frame["value"].to_numpy(np.float64)
    lo = frame["lo_limit"].to_numpy(np.float64)
    hi = frame["hi_limit"].to_numpy(np.float64)
    n = np.bincount(gid, minlength=m).astype(np.float64)
    mean = np.bincount(gid, weights=v, minlength=m) / np.where(n > 0, n, 1.0)
    m2 = np.bincount(gid, weights=(v - mean[gid]) ** 2, minlength=m)
    # first row of each group: factorize numbers the groups in order of first appearance
    first = np.flatnonzero(gid > np.maximum.accumulate(np.r_[np.int64(-1), gid[:-1]]))
    out = pd.DataFrame({k: _key_values(u, col_codes[i][first]) for i, (k, u) in enumerate(zip(gkeys, uniq))})
    out["n"] = n.astype(np.int64)
    out["mean"] = mean
    out["m2"] = m2
    out["below"] = np.bincount(gid, weights=(v < lo), minlength=m).astype(np.int64)
    out["above"] = np.bincount(gid, weights=(v > hi), minlength=m).astype(np.int64)
    for c in _META:
        if c not in frame.columns:
            continue
        col = frame[c]
        given = col.notna().to_numpy()
        fi = np.full(m, len(gid), np.int64)  # first row of the group that gives a value
        np.minimum.at(fi, gid[given], np.flatnonzero(given))
        fi[fi == len(gid)] = -1
        vals = col.to_numpy(dtype=np.float64, na_value=np.nan) if c in ("lo_limit", "hi_limit") else col.to_numpy()
        picked = vals[np.maximum(fi, 0)] if len(vals) else np.full(m, np.nan)
        if c in ("lo_limit", "hi_limit"):
            out[c] = np.where(fi >= 0, picked, np.nan)
        else:
            out[c] = pd.Series(picked, dtype=object).where(fi >= 0, None).to_numpy()
    return out


def combine_subgroups(parts: pd.DataFrame, gkeys: list[str]) -> pd.DataFrame:
    """Merge rows of the same (keys, subgroup) from several partitions (Chan et al.'s update)."""
    if not parts.duplicated(gkeys).any():
        return parts
    g = parts.groupby(gkeys, sort=False, dropna=False, observed=True)
    n = g["n"].transform("sum").to_numpy(np.float64)
    nm = parts["n"].to_numpy(np.float64) * parts["mean"].to_numpy()
    mean = pd.Series(nm).groupby([parts[k].to_numpy() for k in gkeys], sort=False, dropna=False).transform("sum")
    mean = mean.to_numpy() / n
    dev = parts["n"].to_numpy(np.float64) * (parts["mean"].to_numpy() - mean) ** 2
    work = parts.assign(_dev=dev)
    agg: dict[str, Any] = {"n": "sum", "m2": "sum", "_dev": "sum", "below": "sum", "above": "sum"}
    for c in _META:
        if c in parts.columns:
            agg[c] = "first"
    out = work.groupby(gkeys, sort=False, dropna=False, observed=True).agg(agg)
    nn = out["n"].to_numpy(np.float64)
    means = pd.Series(nm).groupby([parts[k].to_numpy() for k in gkeys], sort=False, dropna=False).sum()
    out["mean"] = means.to_numpy() / nn
    out["m2"] = out["m2"].to_numpy() + out.pop("_dev").to_numpy()
    return out.reset_index()


def _reduce(sub: pd.DataFrame, keys: list[str], subgroup: str | None) -> pd.DataFrame:
    """Group-level n, mean, within and overall sigma from the subgroup statistics."""
    n_i = sub["n"].to_numpy(np.float64)
    nm = n_i * sub["mean"].to_numpy()
    work = sub[keys].assign(n=n_i, nm=nm, m2=sub["m2"].to_numpy(), below=sub["below"].to_numpy(),
                            above=sub["above"].to_numpy(), k=1)
    for c in _META:
        if c in sub.columns:
            work[c] = sub[c].to_numpy() if c in ("lo_limit", "hi_limit") else sub[c]
    g = work.groupby(keys, sort=True, dropna=False, observed=True)
    agg: dict[str, Any] = {"n": "sum", "nm": "sum", "m2": "sum", "below": "sum", "above": "sum", "k": "sum"}
    agg.update({c: "first" for c in _META if c in work.columns})
    out = g.agg(agg)
    n = out["n"].to_numpy()
    mean = out["nm"].to_numpy() / n
    # overall sum of squares: within + between subgroups
    gmean = pd.Series(mean, index=out.index)
    idx = pd.MultiIndex.from_frame(sub[keys]) if len(keys) > 1 else pd.Index(sub[keys[0]])
    m_of_row = gmean.reindex(idx).to_numpy()
    between = pd.Series(n_i * (sub["mean"].to_numpy() - m_of_row) ** 2).groupby(
        [sub[k].to_numpy() for k in keys], sort=True, dropna=False).sum().to_numpy()
    m2_within = out["m2"].to_numpy()
    m2_total = m2_within + between
    k = out["k"].to_numpy(np.float64)
    res = out.drop(columns=["nm", "m2", "k"]).reset_index()
    res["n"] = n.astype(np.int64)
    res["n_subgroups"] = k.astype(np.int64)
    res["mean"] = mean
    with np.errstate(invalid="ignore", divide="ignore"):
        df_w = n - k
        res["sigma_within"] = np.where(df_w > 0, np.sqrt(m2_within / np.where(df_w > 0, df_w, 1.0)), np.nan)
        res["sigma_overall"] = np.where(n > 1, np.sqrt(m2_total / np.where(n > 1, n - 1.0, 1.0)), np.nan)
    res["_df_within"] = df_w
    return res


# -- the indices -------------------------------------------------------------------------------
def _indices(res: pd.DataFrame, conf_level: float, where: str) -> pd.DataFrame:
    lo = res["lo_limit"].to_numpy(np.float64)
    hi = res["hi_limit"].to_numpy(np.float64)
    mean = res["mean"].to_numpy()
    n = res["n"].to_numpy(np.float64)
    no_limits = np.isnan(lo) & np.isnan(hi)
    warn_tests(no_limits, res, "have no spec limit: their capability indices are NaN", where)
    out: dict[str, np.ndarray] = {}
    for tag, sigma_col, df in (("c", "sigma_within", res["_df_within"].to_numpy(np.float64)),
                               ("p", "sigma_overall", n - 1.0)):
        s = res[sigma_col].to_numpy()
        s = np.where(s > 0, s, np.nan)
        with np.errstate(invalid="ignore", divide="ignore"):
            two = (hi - lo) / (6.0 * s)
            low = (mean - lo) / (3.0 * s)
            upp = (hi - mean) / (3.0 * s)
        k = np.fmin(low, upp)  # one-sided when a limit is missing
        lo2, hi2 = cp_interval(two, df, conf_level)
        klo, khi = bissell_interval(k, n, df, conf_level)
        out[f"{tag}p"], out[f"{tag}p_lower"], out[f"{tag}p_upper"] = two, lo2, hi2
        out[f"{tag}pl"], out[f"{tag}pu"] = low, upp
        out[f"{tag}pk"], out[f"{tag}pk_lower"], out[f"{tag}pk_upper"] = k, klo, khi
    flat = ~no_limits & ~(res["sigma_overall"].to_numpy() > 0)
    warn_tests(flat, res, "have no spread (all values equal, or a single value): their capability indices are NaN",
               where)
    for c, v in out.items():
        res[c] = v
    s = res["sigma_overall"].to_numpy()
    s = np.where(s > 0, s, np.nan)
    with np.errstate(invalid="ignore"):
        below = np.where(np.isnan(lo), 0.0, stats.norm.cdf((lo - mean) / s))
        above = np.where(np.isnan(hi), 0.0, stats.norm.sf((hi - mean) / s))
    res["expected_ppm"] = np.where(no_limits, np.nan, 1e6 * (below + above))
    res["observed_ppm"] = np.where(no_limits, np.nan, 1e6 * (res.pop("below") + res.pop("above")).to_numpy() / n)
    return res


def _percentiles(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    g = frame.groupby(keys, sort=True, dropna=False, observed=True)["value"]
    q = g.quantile([_P_LO, 0.5, _P_HI]).unstack()
    q.columns = ["_q_lo", "_q_med", "_q_hi"]
    return q.reset_index()


def _apply_percentiles(res: pd.DataFrame, q: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    res = res.merge(q, on=keys, how="left")
    lo, hi = res["lo_limit"].to_numpy(np.float64), res["hi_limit"].to_numpy(np.float64)
    ql, qm, qh = (res.pop(c).to_numpy() for c in ("_q_lo", "_q_med", "_q_hi"))
    with np.errstate(invalid="ignore", divide="ignore"):
        res["pp"] = (hi - lo) / np.where(qh > ql, qh - ql, np.nan)
        res["ppl"] = (qm - lo) / np.where(qm > ql, qm - ql, np.nan)
        res["ppu"] = (hi - qm) / np.where(qh > qm, qh - qm, np.nan)
    res["ppk"] = np.fmin(res["ppl"].to_numpy(), res["ppu"].to_numpy())
    for c in ("pp_lower", "pp_upper", "ppk_lower", "ppk_upper"):
        res[c] = np.nan
    return res


_ORDER = ["test_num", "pin", "test_name", "units", "lo_limit", "hi_limit", "n", "n_subgroups", "mean",
          "sigma_within", "sigma_overall", "cp", "cp_lower", "cp_upper", "cpl", "cpu", "cpk", "cpk_lower",
          "cpk_upper", "pp", "pp_lower", "pp_upper", "ppl", "ppu", "ppk", "ppk_lower", "ppk_upper", "expected_ppm",
          "observed_ppm"]


def capability(
    tests: Any,
    *,
    by: Sequence[str] | str | None = ("lot_id",),
    subgroup: str | None = "wafer_id",
    conf_level: float = 0.95,
    method: str = "normal",
    value: str = "value",
) -> CapabilityResult:
    """Capability indices of every parametric test, per group, with confidence intervals.

    Parameters
    ----------
    tests : DataFrame or dask DataFrame
        The long test table (:func:`yieldkit.read_stdf` with ``tests=True``): ``test_num``,
        ``value``, ``lo_limit``, ``hi_limit``, the ``by`` and ``subgroup`` columns, optionally
        ``pin``, ``test_name``, ``units``. Results that are missing (FTR, invalid) are left out.
    by : str or sequence of str, optional
        Group columns (default per lot); ``None`` or ``()`` pools everything.
    subgroup : str, optional
        Rational subgroup for the within sigma (default the wafer); ``None``: one subgroup per
        group, so that Cp = Pp.
    conf_level : float
        Confidence level of the intervals, in (0, 1).
    method : {"normal", "percentile"}
        ``"percentile"`` replaces Pp, Ppl, Ppu and Ppk by their percentile forms (ISO 22514-2,
        Clements): the 0.135 % and 99.865 % quantiles and the median in place of mean -/+ 3 sigma
        and the mean, for non-normal tests; their intervals are NaN.
    value : str
        Column of the measured values.

    Returns
    -------
    CapabilityResult
        ``.table``: one row per group and test (see :class:`CapabilityResult`).

    Raises
    ------
    SchemaError
        When a needed column is missing.
    YieldkitValueError
        ``conf_level`` outside (0, 1), an unknown ``method``, or a percentile summary of a Dask
        frame whose partitions split a group.

    Warns
    -----
    DataQualityWarning
        Tests without any spec limit, or without spread (all values equal): their indices are NaN.

    Notes
    -----
    With mean m, within-subgroup sigma s_w (pooled: sqrt(sum of squared deviations from the
    subgroup means / (n - k)) over k subgroups) and overall sigma s (n - 1 divisor):
    Cp = (USL - LSL) / (6 s_w), Cpl = (m - LSL) / (3 s_w), Cpu = (USL - m) / (3 s_w),
    Cpk = min(Cpl, Cpu) -- Cpl or Cpu alone when only one limit is given; Pp, Ppl, Ppu, Ppk
    the same with s. Intervals: chi-square for Cp (n - k degrees of freedom) and Pp (n - 1),
    Bissell's normal approximation for Cpk and Ppk. ``expected_ppm`` is the normal tail mass
    outside the limits (m, s); ``observed_ppm`` counts the results outside. Within sigma is
    not corrected by c4. On a Dask frame the per-subgroup n, mean and sum of squares are
    computed per partition and merged (a wafer may span partitions): the results equal the
    in-memory ones to rounding; the percentile method needs partitions aligned with ``by``.

    References
    ----------
    Montgomery, D. C. (2019). Introduction to Statistical Quality Control, 8th ed., ch. 8.
    Bissell, A. F. (1990). How reliable is your capability index? J. R. Stat. Soc. C 39(3),
    331-340. https://doi.org/10.2307/2347383

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(0)
    >>> t = pd.DataFrame({"lot_id": "L1", "wafer_id": np.repeat(["1", "2"], 50), "test_num": 100,
    ...                   "value": rng.normal(1.0, 0.01, 100), "lo_limit": 0.95, "hi_limit": 1.05})
    >>> r = capability(t)
    >>> bool(1.4 < r.table["cpk"].iloc[0] < 2.0)
    True
    """
    where = "capability"
    check_frame(tests, where)
    level = check_conf_level(conf_level, where)
    check_choice(method, ("normal", "percentile"), name="method", where=where)
    by_t: tuple[str, ...] = (by,) if isinstance(by, str) else tuple(by or ())
    if subgroup is not None and subgroup in by_t:
        raise YieldkitValueError(f"The 'subgroup' argument of capability must not be one of the 'by' columns. "
                                 f"Got {subgroup!r} instead.")
    keys = [*by_t, "test_num", "pin"]
    extra = [subgroup] if subgroup else []
    require(tests.columns, [*by_t, *extra, "test_num", value], where)
    if is_dask(tests):
        import dask

        parts = tests.to_delayed()

        def part_stats(pdf: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame | None]:
            f = prepare(pdf, by=by_t, extra=extra, value=value, where=where)
            return subgroup_stats(f, keys, subgroup), (_percentiles(f, keys) if method == "percentile" else None)

        computed = dask.compute(*[dask.delayed(part_stats)(p) for p in parts])
        sub = pd.concat([c[0] for c in computed], ignore_index=True)
        sub = combine_subgroups(sub, keys + extra)
        q = None
        if method == "percentile":
            q = pd.concat([c[1] for c in computed], ignore_index=True)
            if q.duplicated(keys).any():
                raise YieldkitValueError("capability(method='percentile') of a Dask frame needs every group (the "
                                         f"'by' columns {list(by_t)} and test) inside one partition; repartition "
                                         "by lot first")
    else:
        frame = prepare(tests, by=by_t, extra=extra, value=value, where=where)
        sub = subgroup_stats(frame, keys, subgroup)
        q = _percentiles(frame, keys) if method == "percentile" else None
    if not len(sub):
        log.info("capability: no finite test result")
    res = _reduce(sub, keys, subgroup)
    for c in ("lo_limit", "hi_limit"):
        if c not in res.columns:
            res[c] = np.nan
    res = _indices(res, level, where)
    if q is not None:
        res = _apply_percentiles(res, q, keys)
    raw_pin = res["pin"].to_numpy(np.int64)
    pin = pd.array(np.maximum(raw_pin, 0), dtype="Int64")
    pin[raw_pin < 0] = pd.NA
    res["pin"] = pin
    cols = [*by_t] + [c for c in _ORDER if c in res.columns]
    table = res[cols].reset_index(drop=True)
    return CapabilityResult(table=table, conf_level=level, method=method, by=by_t, subgroup=subgroup)
