"""Parametric part average testing (PAT) limits: static, dynamic, robust dynamic and IQR fences.

Glossary
--------
RS (robust sigma)
    ``(Q3 - Q1) / 1.35``: the standard deviation of a normal distribution with that interquartile
    range (1.35 = 2 * 0.6745, rounded as AEC-Q001 rounds it).
Static PAT (SPAT)
    Limits ``median +/- 6 RS`` set from reference lots and frozen: saved with
    :meth:`PatLimits.save`, loaded with :func:`load_pat_limits` and applied to production lots.
Dynamic PAT (DPAT)
    Limits set per lot (or wafer) from its own parts that passed the specification (and static
    PAT): ``mean +/- k s`` ("dynamic"), or ``median +/- k RS`` ("robust_dynamic").
IQR fences
    ``Q1 - k IQR`` and ``Q3 + k IQR`` (Tukey's fences: k = 1.5 "outside", k = 3 "far out").

The quantile convention matters: on a small sample the interquartile range, hence RS, moves by
~20 % between conventions. yieldkit uses :func:`numpy.quantile`'s ``method`` names and defaults
to ``"linear"`` (Hyndman & Fan type 7, also R's and Excel's QUARTILE.INC default).

References
----------
AEC-Q001 Rev D, *Guidelines for part average testing*, Automotive Electronics Council, 2011:
static limits median +/- 6 RS; dynamic limits mean +/- 6 sigma of the lot's passing parts;
RS = IQR / 1.35; at least 30 parts per reference sample (yieldkit's ``min_samples`` default of
50 is its own, more cautious choice).
Hyndman, R. J. & Fan, Y. (1996). Sample quantiles in statistical packages. *The American
Statistician* 50(4), 361-365. doi:10.1080/00031305.1996.10473566
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .._keys import wafer_codes
from ..errors import SchemaError, YieldkitValueError, check_choice
from ..results import TableResult
from ._tables import die_row_of_tests, floats, lot_codes, need_columns, part_length, part_table, test_codes

__all__ = ["METHODS", "QUANTILE_METHODS", "PatLimits", "load_pat_limits", "pat_limits", "robust_stats"]

METHODS = ("static", "dynamic", "robust_dynamic", "iqr")
#: numpy.quantile methods (Hyndman & Fan types 1-9 and numpy's own)
QUANTILE_METHODS = (
    "linear", "inverted_cdf", "averaged_inverted_cdf", "closest_observation", "interpolated_inverted_cdf",
    "hazen", "weibull", "median_unbiased", "normal_unbiased", "lower", "higher", "midpoint", "nearest",
)
#: the rule name each method's inks carry
RULE_OF_METHOD = {"static": "spat", "dynamic": "dpat", "robust_dynamic": "dpat", "iqr": "iqr"}
RS_DIVISOR = 1.35
_BY_CHOICES = ((), ("lot_id",), ("lot_id", "wafer_id"))
_STAT_COLS = ["n", "mean", "std", "median", "q1", "q3", "robust_sigma", "lo_spec", "hi_spec", "lo_pat", "hi_pat",
              "skipped"]


@dataclass(frozen=True, repr=False)
class PatLimits(TableResult):
    """PAT limits per (population, test).

    Attributes
    ----------
    table : DataFrame
        The population columns (``by``), ``test_num``, [``pin``], ``test_name``, then ``n`` (parts
        used), ``mean``, ``std`` (divisor n - 1), ``median``, ``q1``, ``q3``, ``robust_sigma``
        (RS), ``lo_spec``/``hi_spec`` (the test's own limits, NaN when none), ``lo_pat``/``hi_pat``
        (NaN when skipped or open on that side) and ``skipped`` (why no limits were set:
        ``"too few samples"``, ``"zero spread"``, ``"no spec limits"``; missing when set).
    method, k, by, quantiles, min_samples :
        The arguments the limits were computed with.
    rule : str
        The name inks by these limits carry (``"spat"``, ``"dpat"``, ``"iqr"``).
    """

    table: pd.DataFrame
    method: str
    k: float
    by: tuple[str, ...]
    quantiles: str
    min_samples: int
    rule: str

    def __repr__(self) -> str:
        n_set = int(self.table["skipped"].isna().sum())
        return (f"PatLimits(method={self.method!r}, k={self.k:g}, by={self.by!r}, quantiles={self.quantiles!r}, "
                f"{n_set} of {len(self.table)} limits set)")

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the limits as JSON (atomically); :func:`load_pat_limits` reads them back."""
        from ..io.atomic import atomic_write

        t = self.table.astype(object).where(self.table.notna(), None)
        doc = {"format": "yieldkit.pat_limits", "version": 1, "method": self.method, "k": self.k, "by": list(self.by),
               "quantiles": self.quantiles, "min_samples": self.min_samples, "rule": self.rule,
               "columns": list(t.columns), "rows": t.to_numpy().tolist()}
        with atomic_write(path) as fh:
            json.dump(doc, fh, indent=1, default=_json_default)
        return Path(path)


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    return str(o)


def load_pat_limits(path: str | os.PathLike[str]) -> PatLimits:
    """Read limits written by :meth:`PatLimits.save`.

    Raises
    ------
    SchemaError
        When the file is not a yieldkit PAT-limits file.
    """
    from ..errors import InputNotFoundError

    p = Path(path)
    if not p.is_file():
        raise InputNotFoundError(f"{p}: no such PAT-limits file")
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SchemaError(f"not a JSON file ({exc})", source=str(p)) from exc
    if not isinstance(doc, dict) or doc.get("format") != "yieldkit.pat_limits":
        raise SchemaError("not a yieldkit PAT-limits file (expected format 'yieldkit.pat_limits')", source=str(p))
    t = pd.DataFrame(doc["rows"], columns=doc["columns"])
    types: dict[str, Any] = {c: "float64" for c in _STAT_COLS if c not in ("n", "skipped")}
    types.update({"n": "int64", "test_num": "int64", "skipped": "string[pyarrow]"})
    for c in ("lot_id", "wafer_id", "test_name"):
        if c in t.columns:
            types[c] = "string[pyarrow]"
    if "pin" in t.columns:
        types["pin"] = "Int32"
    t = t.astype(types)
    return PatLimits(table=t, method=doc["method"], k=float(doc["k"]), by=tuple(doc["by"]), quantiles=doc["quantiles"],
                     min_samples=int(doc["min_samples"]), rule=doc["rule"])


def robust_stats(values: Any, *, quantiles: str = "linear") -> dict[str, float]:
    """Median, quartiles and robust sigma RS = (Q3 - Q1) / 1.35 of one sample.

    Examples
    --------
    >>> s = robust_stats([9.9, 10.0, 10.1, 10.2])
    >>> round(s["median"], 3), round(s["robust_sigma"], 4)
    (10.05, 0.1111)
    """
    check_choice(quantiles, QUANTILE_METHODS, name="quantiles", where="robust_stats")
    v = np.asarray(values, dtype=np.float64)
    q1, med, q3 = np.quantile(v, [0.25, 0.5, 0.75], method=quantiles)  # type: ignore[call-overload]
    return {"median": float(med), "q1": float(q1), "q3": float(q3), "robust_sigma": float((q3 - q1) / RS_DIVISOR)}


def _by_tuple(by: Any, where: str) -> tuple[str, ...]:
    t = (by,) if isinstance(by, str) else tuple(by or ())
    if t not in _BY_CHOICES:
        raise YieldkitValueError(
            f"The 'by' argument of {where} must be one of {', '.join(map(repr, _BY_CHOICES))}. Got {by!r} instead.")
    return t


def _check_k(k: Any, where: str) -> float:
    try:
        kf = float(k)
    except (TypeError, ValueError):
        kf = float("nan")
    if isinstance(k, (bool, str)) or not (np.isfinite(kf) and kf > 0):
        raise YieldkitValueError(f"The 'k' argument of {where} must be a number > 0. Got {k!r} instead.")
    return kf


def _group_codes(tests: pd.DataFrame, by: tuple[str, ...], tcode: np.ndarray) -> tuple[np.ndarray, pd.DataFrame]:
    """Code per row of its (population, test) group and the populations."""
    if not by:
        return tcode, pd.DataFrame(index=[0])
    if by == ("lot_id",):
        pc, pop = lot_codes(tests)
    else:
        wc, w = wafer_codes(tests)
        order = np.lexsort((w["wafer_id"].to_numpy(object).astype(str), w["lot_id"].to_numpy(object).astype(str)))
        rank = np.empty(len(order), np.int64)
        rank[order] = np.arange(len(order))
        pc = rank[wc]
        pop = w.iloc[order].reset_index(drop=True)
    n_t = int(tcode.max()) + 1 if len(tcode) else 0
    return pc.astype(np.int64) * max(n_t, 1) + tcode, pop


def _group_order(gcode: np.ndarray, n_groups: int) -> np.ndarray:
    """Row order grouping the codes, rows of a group in their original order."""
    small = np.uint16 if n_groups <= 1 << 16 else np.int64  # 16-bit keys: numpy sorts them by radix, O(n)
    return np.argsort(gcode.astype(small), kind="stable")


def _segments_quantiles(values: np.ndarray, gcode: np.ndarray, n_groups: int, quantiles: str,
                        order: np.ndarray | None = None) -> np.ndarray:
    """(n_groups, 3) Q1, median, Q3 of each group (NaN for an empty group): one sort of the codes
    (or ``order``, rows grouped), then one numpy quantile call per group (a loop over groups,
    never over rows)."""
    out = np.full((n_groups, 3), np.nan)
    if len(values) == 0:
        return out
    sv = values[_group_order(gcode, n_groups) if order is None else order]
    counts = np.bincount(gcode, minlength=n_groups)
    ends = np.cumsum(counts)
    starts = ends - counts
    for g in np.flatnonzero(counts):
        out[g] = np.quantile(sv[starts[g]:ends[g]], [0.25, 0.5, 0.75], method=quantiles)  # type: ignore[call-overload]
    return out


def pat_limits(
    tests: Any,
    *,
    method: str = "robust_dynamic",
    k: float = 6.0,
    by: Sequence[str] | str = ("lot_id",),
    min_samples: int = 50,
    good_only: bool = True,
    clip_to_spec: bool = True,
    quantiles: str = "linear",
    dies: pd.DataFrame | None = None,
    exclude: Sequence[PatLimits] = (),
    require_spec: bool = False,
) -> PatLimits:
    """PAT limits of every test in every population (lot, wafer, or all parts pooled).

    Parameters
    ----------
    tests : DataFrame or dask DataFrame
        The long test table (:func:`yieldkit.read_stdf` with ``tests=True``): ``lot_id``,
        ``wafer_id``, ``die_x``, ``die_y``, ``test_num``, ``value``, and optionally ``pin``,
        ``test_name``, ``lo_limit``, ``hi_limit``, ``passed``, ``test_seq``. A dask DataFrame is
        computed per lot (or per test when ``by=()``) on partitions aligned to them, with results
        equal to the in-memory ones.
    method : {"static", "dynamic", "robust_dynamic", "iqr"}
        ``static`` and ``robust_dynamic``: median +/- k RS; ``dynamic``: mean +/- k s;
        ``iqr``: [Q1 - k IQR, Q3 + k IQR].
    k : float
        Width of the limits in sigmas (IQRs for ``iqr``). AEC-Q001: 6.
    by : (), ("lot_id",) or ("lot_id", "wafer_id")
        Population: all parts pooled (static limits from reference lots), per lot, or per wafer.
    min_samples : int
        Fewest parts a population needs for limits; fewer: skipped ("too few samples").
    good_only : bool
        Use only good parts: with ``dies``, parts whose final result passed; without, rows whose
        ``passed`` is not False and whose value lies within the spec limits.
    clip_to_spec : bool
        PAT limits never wider than the spec limits (AEC-Q001: PAT limits lie inside them).
    quantiles : str
        :func:`numpy.quantile` method of Q1, median and Q3 (default ``"linear"``, type 7).
    dies : DataFrame, optional
        Die table: only tests of final results count, and ``good_only`` uses their ``passed``.
    exclude : sequence of PatLimits
        Limits already applied (static PAT): parts failing any of them are left out, as AEC-Q001
        asks of dynamic limits.
    require_spec : bool
        Skip tests without spec limits ("no spec limits"): AEC-Q001 screens tests that have them.

    Returns
    -------
    PatLimits

    Raises
    ------
    SchemaError
        A missing column. YieldkitValueError: a bad ``method``, ``k``, ``by``, ``quantiles`` or
        ``min_samples``.

    Notes
    -----
    A test is skipped (no limits, listed with the reason) with fewer than ``min_samples`` good
    values ("too few samples"; a functional result without values has none), a zero spread ("zero
    spread": RS, s or the IQR is 0, e.g. a quantised or constant measurement), or, with
    ``require_spec=True``, no spec limits ("no spec limits"). Otherwise tests without spec limits
    get PAT limits too; ``lo_spec``/``hi_spec`` are then NaN.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> v = [9.95, 9.975, 9.98, 9.98, 9.99, 10.0, 10.0, 10.0, 10.0, 10.01, 10.015, 10.02, 10.02, 10.025, 10.035,
    ...      10.30]
    >>> t = pd.DataFrame({"lot_id": "L", "wafer_id": "1", "die_x": range(16), "die_y": 0, "test_num": 1,
    ...                   "value": v})
    >>> lim = pat_limits(t, min_samples=16).table
    >>> lim[["median", "q1", "q3"]].round(4).to_numpy().tolist()
    [[10.0, 9.9875, 10.02]]
    >>> lim[["lo_pat", "hi_pat"]].round(4).to_numpy().tolist()
    [[9.8556, 10.1444]]
    """
    where = "pat_limits"
    check_choice(method, METHODS, name="method", where=where)
    check_choice(quantiles, QUANTILE_METHODS, name="quantiles", where=where)
    kf = _check_k(k, where)
    byt = _by_tuple(by, where)
    if isinstance(min_samples, bool) or not isinstance(min_samples, (int, np.integer)) or min_samples < 2:
        raise YieldkitValueError(f"The 'min_samples' argument of {where} must be an integer >= 2. Got {min_samples!r} instead.")
    if _is_dask(tests):
        from .dask import limits_table_dask

        tab = limits_table_dask(tests, _limits_table, by=byt, args=(method, kf, byt, int(min_samples), good_only,
                                                                    clip_to_spec, quantiles, dies, exclude, require_spec))
        return PatLimits(table=tab, method=method, k=kf, by=byt, quantiles=quantiles, min_samples=int(min_samples),
                         rule=RULE_OF_METHOD[method])
    need_columns(tests, ("lot_id", "wafer_id", "die_x", "die_y", "test_num", "value"), what="tests", where=where)
    tab = _limits_table(tests, method, kf, byt, int(min_samples), good_only, clip_to_spec, quantiles, dies, exclude,
                        require_spec)
    return PatLimits(table=tab, method=method, k=kf, by=byt, quantiles=quantiles, min_samples=int(min_samples),
                     rule=RULE_OF_METHOD[method])


def _is_dask(obj: Any) -> bool:
    return type(obj).__module__.startswith("dask")


def _limits_table(
    tests: pd.DataFrame, method: str, k: float, by: tuple[str, ...], min_samples: int, good_only: bool,
    clip_to_spec: bool, quantiles: str, dies: pd.DataFrame | None, exclude: Sequence[PatLimits],
    require_spec: bool = False,
) -> pd.DataFrame:
    """The limits table of an in-memory test table (see :func:`pat_limits`)."""
    m = part_length(tests)
    if m is not None:
        return _limits_rect(tests, m, method, k, by, min_samples, good_only, clip_to_spec, quantiles, dies, exclude,
                            require_spec)
    value = floats(tests["value"])
    lo_s = floats(tests["lo_limit"]) if "lo_limit" in tests else np.full(len(tests), np.nan)
    hi_s = floats(tests["hi_limit"]) if "hi_limit" in tests else np.full(len(tests), np.nan)
    use = np.isfinite(value)
    if dies is not None:
        need_columns(dies, ("lot_id", "wafer_id", "die_x", "die_y", "passed"), what="dies", where="pat_limits")
        from ..yields import _pick

        final = _pick(dies, last=True)
        row = die_row_of_tests(dies, tests, final)
        use &= row >= 0
        if good_only:
            use &= dies["passed"].to_numpy(bool)[np.maximum(row, 0)]
    elif good_only:
        if "passed" in tests.columns:
            use &= tests["passed"].astype("boolean").fillna(True).to_numpy(bool)
        use &= ~(value < lo_s) & ~(value > hi_s)
    if exclude:
        for lim in exclude:
            use &= ~row_failures(tests, lim)
    tcode, tests_tab = test_codes(tests)
    gcode, pops = _group_codes(tests, by, tcode)
    n_t = len(tests_tab)
    n_g = len(pops) * n_t
    gu = gcode[use]
    vu = value[use]
    n = np.bincount(gu, minlength=n_g)
    s1 = np.bincount(gu, weights=vu, minlength=n_g)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = s1 / n
        dev = vu - mean[gu]
        ss = np.bincount(gu, weights=dev * dev, minlength=n_g)
        std = np.sqrt(ss / (n - 1))
    order = _group_order(gcode, n_g)  # all rows grouped; the used ones stay grouped
    qs = _segments_quantiles(value, gu, n_g, quantiles, order=order[use[order]])
    q1, med, q3 = qs[:, 0], qs[:, 1], qs[:, 2]
    rs = (q3 - q1) / RS_DIVISOR
    # the spec limits of each group: the first given (they are per test, not per part)
    counts_all = np.bincount(gcode, minlength=n_g)
    lo_spec = _first_per_group(lo_s, order, counts_all)
    hi_spec = _first_per_group(hi_s, order, counts_all)
    return _finish(method, k, by, min_samples, clip_to_spec, pops, tests_tab, n, mean, std, q1, med, q3, rs, lo_spec,
                   hi_spec, np.bincount(gcode, minlength=n_g) > 0, require_spec)


def _finish(method: str, k: float, by: tuple[str, ...], min_samples: int, clip_to_spec: bool, pops: pd.DataFrame,
            tests_tab: pd.DataFrame, n: np.ndarray, mean: np.ndarray, std: np.ndarray, q1: np.ndarray,
            med: np.ndarray, q3: np.ndarray, rs: np.ndarray, lo_spec: np.ndarray, hi_spec: np.ndarray,
            present: np.ndarray, require_spec: bool = False) -> pd.DataFrame:
    """The limits table from the per-(population, test) statistics, population-major."""
    n_t = len(tests_tab)
    n_g = len(pops) * n_t
    if method == "dynamic":
        centre, scale = mean, std
        lo, hi = centre - k * scale, centre + k * scale
    elif method == "iqr":
        scale = q3 - q1
        lo, hi = q1 - k * scale, q3 + k * scale
    else:
        scale = rs
        lo, hi = med - k * scale, med + k * scale
    skipped = np.full(n_g, None, dtype=object)
    if require_spec:
        skipped[np.isnan(lo_spec) & np.isnan(hi_spec)] = "no spec limits"
    skipped[scale == 0] = "zero spread"
    skipped[n < min_samples] = "too few samples"
    if clip_to_spec:
        lo = np.where(np.isfinite(lo_spec), np.maximum(lo, lo_spec), lo)
        hi = np.where(np.isfinite(hi_spec), np.minimum(hi, hi_spec), hi)
    bad = np.array([s is not None for s in skipped])
    lo = np.where(bad, np.nan, lo)
    hi = np.where(bad, np.nan, hi)
    pop_idx = np.repeat(np.arange(len(pops)), n_t)
    t_idx = np.tile(np.arange(n_t), len(pops))
    out = pd.concat([pops.iloc[pop_idx].reset_index(drop=True) if by else pd.DataFrame(index=range(n_g)),
                     tests_tab.iloc[t_idx].reset_index(drop=True)], axis=1)
    out = out.assign(n=n.astype(np.int64), mean=mean, std=std, median=med, q1=q1, q3=q3, robust_sigma=rs,
                     lo_spec=lo_spec, hi_spec=hi_spec, lo_pat=lo, hi_pat=hi,
                     skipped=pd.array(skipped, dtype="string[pyarrow]"))
    return out.loc[present].reset_index(drop=True)


def _limits_rect(
    tests: pd.DataFrame, m: int, method: str, k: float, by: tuple[str, ...], min_samples: int, good_only: bool,
    clip_to_spec: bool, quantiles: str, dies: pd.DataFrame | None, exclude: Sequence[PatLimits],
    require_spec: bool = False,
) -> pd.DataFrame:
    """:func:`_limits_table` of a rectangular table (every part the same ``m`` tests): statistics on
    the (parts x tests) matrix of values, one population at a time."""
    value = floats(tests["value"]).reshape(-1, m)
    p = len(value)
    lo_s = floats(tests["lo_limit"]).reshape(-1, m) if "lo_limit" in tests else None
    hi_s = floats(tests["hi_limit"]).reshape(-1, m) if "hi_limit" in tests else None
    parts = part_table(tests, m)
    use = np.isfinite(value)
    if dies is not None:
        need_columns(dies, ("lot_id", "wafer_id", "die_x", "die_y", "passed"), what="dies", where="pat_limits")
        from ..yields import _pick

        final = _pick(dies, last=True)
        row = die_row_of_tests(dies, parts, final)
        ok = row >= 0
        if good_only:
            ok &= dies["passed"].to_numpy(bool)[np.maximum(row, 0)]
        use &= ok[:, None]
    elif good_only:
        if "passed" in tests.columns:
            use &= tests["passed"].astype("boolean").fillna(True).to_numpy(bool).reshape(-1, m)
        if lo_s is not None:
            use &= ~(value < lo_s)
        if hi_s is not None:
            use &= ~(value > hi_s)
    if exclude:
        for lim in exclude:
            use &= ~row_failures(tests, lim).reshape(-1, m)
    num = tests["test_num"].to_numpy(np.int64)[:m]
    perm = np.argsort(num, kind="stable")  # tests in sorted order, as test_codes gives them
    tests_tab = pd.DataFrame({"test_num": num[perm]})
    if "test_name" in tests.columns:
        tests_tab["test_name"] = pd.array(tests["test_name"].iloc[:m].to_numpy(object)[perm], dtype="string[pyarrow]")
    pc, pops = _group_codes(parts, by, np.zeros(p, np.int64))
    n_pop = len(pops)
    stats = np.full((11, n_pop, m), np.nan)
    for g in range(n_pop):
        sel = np.flatnonzero(pc == g) if n_pop > 1 else slice(None)
        v, u = value[sel], use[sel]
        cnt = u.sum(axis=0)
        whole = u.all(axis=1)
        if not (u.any(axis=1) & ~whole).any():  # parts used whole or not at all: select rows
            v, u = v[whole], u[whole]
        with np.errstate(invalid="ignore", divide="ignore"):
            if len(v) == 0:
                mu = sd = np.full(m, np.nan)
                q = np.full((3, m), np.nan)
            elif u.all():
                mu = v.mean(axis=0)
                sd = v.std(axis=0, ddof=1) if len(v) > 1 else np.full(m, np.nan)
                # one contiguous row per test: partitioning along rows is several times faster
                q = np.quantile(np.ascontiguousarray(v.T), [0.25, 0.5, 0.75], axis=1,
                                method=quantiles)  # type: ignore[call-overload]
            else:
                w = np.where(u, v, np.nan)
                import warnings

                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns: NaN statistics
                    mu = np.nanmean(w, axis=0)
                    sd = np.sqrt(np.nansum((w - mu) ** 2, axis=0) / (cnt - 1))
                    q = np.nanquantile(w, [0.25, 0.5, 0.75], axis=0, method=quantiles)  # type: ignore[call-overload]
        stats[0, g], stats[1, g], stats[2, g] = cnt, mu, sd
        stats[3:6, g] = q
        for j, a in ((6, lo_s), (7, hi_s)):
            if a is not None:
                fin = np.isfinite(a[sel])
                first = fin.argmax(axis=0)
                stats[j, g] = np.where(fin.any(axis=0), a[sel][first, np.arange(m)], np.nan)
    st = stats[:, :, perm].reshape(11, -1)
    n = st[0].astype(np.int64)
    mean, std, q1, med, q3, lo_spec, hi_spec = st[1], st[2], st[3], st[4], st[5], st[6], st[7]
    return _finish(method, k, by, min_samples, clip_to_spec, pops, tests_tab, n, mean, std, q1, med, q3,
                   (q3 - q1) / RS_DIVISOR, lo_spec, hi_spec, np.ones(len(n), bool), require_spec)


def _first_per_group(a: np.ndarray, order: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """The first non-NaN value of ``a`` in each group (rows grouped by ``order``, ``counts`` per
    group; NaN when none): one pass with ``minimum.reduceat``."""
    n_g = len(counts)
    out = np.full(n_g, np.nan)
    nan = np.isnan(a)
    if len(a) == 0 or nan.all():
        return out
    starts = np.cumsum(counts) - counts
    has = counts > 0
    if not nan.any():  # every row gives a value: the first row of each group
        out[has] = a[order[starts[has]]]
        return out
    a_sorted = a[order]
    n = len(a_sorted)
    pos = np.where(np.isnan(a_sorted), n, np.arange(n))
    first = np.minimum.reduceat(pos, starts[has])
    ok = first < starts[has] + counts[has]
    vals = np.full(int(has.sum()), np.nan)
    vals[ok] = a_sorted[first[ok]]
    out[has] = vals
    return out


def _check_limits(limits: Any, where: str) -> PatLimits:
    if not isinstance(limits, PatLimits):
        raise YieldkitValueError(f"The 'limits' argument of {where} must be PatLimits (from pat_limits or "
                                 f"load_pat_limits). Got {type(limits).__name__} instead.")
    return limits


def row_failures(tests: pd.DataFrame, limits: PatLimits) -> np.ndarray:
    """Per test row: whether its value falls outside its population's PAT limits (False where
    there are none). A rectangular table (every part the same tests) is matched part by part."""
    t = limits.table
    by = list(limits.by)
    m = part_length(tests)
    keys = tests if m is None else part_table(tests, m)
    tc, tt = test_codes(tests if m is None else tests.iloc[:m])
    key_cols = ["test_num"] + (["pin"] if "pin" in tt.columns and "pin" in t.columns else [])
    # the limits row of each (population, test): match populations and tests through small tables
    lt = t[by + key_cols].copy()
    lt["_lrow"] = np.arange(len(t))
    if by:
        if by == ["lot_id"]:
            pc, lots = lot_codes(keys)
            pdf = pd.DataFrame({"lot_id": lots["lot_id"].to_numpy(object).astype(str)})
        else:
            from .._keys import wafer_codes

            pc, w = wafer_codes(keys)
            pdf = pd.DataFrame({c: w[c].to_numpy(object).astype(str) for c in by})
        pc = np.asarray(pc, dtype=np.int64)
        for c in by:
            lt[c] = lt[c].astype(str)
        combos = pdf.iloc[np.repeat(np.arange(len(pdf)), len(tt))].reset_index(drop=True)
        tiled = tt.iloc[np.tile(np.arange(len(tt)), len(pdf))].reset_index(drop=True)
        grid = pd.concat([combos, tiled[key_cols]], axis=1)
    else:
        pc = np.zeros(len(keys), np.int64)
        grid = tt[key_cols].copy()
    for c in key_cols:
        grid[c] = grid[c].astype(lt[c].dtype)
    merged = grid.merge(lt, on=by + key_cols, how="left", sort=False)
    lrow = merged["_lrow"].to_numpy(dtype=np.float64, na_value=np.nan)
    lrow = np.where(np.isnan(lrow), -1, lrow).astype(np.int64)
    lo_c = np.r_[t["lo_pat"].to_numpy(dtype=np.float64, na_value=np.nan), np.nan][lrow]
    hi_c = np.r_[t["hi_pat"].to_numpy(dtype=np.float64, na_value=np.nan), np.nan][lrow]
    code = pc * len(tt) + tc if m is None else (pc[:, None] * len(tt) + tc[None, :]).ravel()
    v = floats(tests["value"])
    return (v < lo_c[code]) | (v > hi_c[code])  # type: ignore[no-any-return]
