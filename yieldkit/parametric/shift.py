"""Lot-to-lot shifts of parametric tests against a reference population.

:func:`shift` compares each group (lot) of every test with the same test in a reference
(golden lots, the previous quarter): the shift of the median in robust sigmas of the
reference, the ratio of robust spreads, two-sample Kolmogorov-Smirnov and Anderson-Darling
p-values and Benjamini-Hochberg q-values. At die counts every p-value is tiny, so a group is
flagged only when the shift is large enough to matter *and* its q passes.
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

from .._validation import as_fraction, as_nonnegative
from ..errors import YieldkitValueError
from ..results import TableResult
from ..significance import benjamini_hochberg
from ._table import check_frame, is_dask, prepare, require, warn_tests

log = logging.getLogger(__name__)

__all__ = ["ShiftResult", "robust_sigma", "shift"]

#: MAD -> sigma of a normal distribution
MAD_TO_SIGMA = 1.482602218505602
_TKEYS = ["test_num", "pin"]


@dataclass(frozen=True, repr=False)
class ShiftResult(TableResult):
    """Result of :func:`shift`.

    Attributes
    ----------
    table : DataFrame
        One row per group and test: the ``by`` keys, ``test_num``, ``pin``, ``test_name``,
        ``n``, ``median``, ``sigma`` (robust), ``ref_n``, ``ref_median``, ``ref_sigma``,
        ``shift_sigma`` ((median - ref_median) / ref_sigma), ``spread_ratio`` (sigma /
        ref_sigma), ``p_ks``, ``p_ad``, ``q`` (Benjamini-Hochberg over all rows, from
        ``p_ks``) and ``alarm``.
    effect, fdr : float
    n_alarms : int
    """

    table: pd.DataFrame
    effect: float
    fdr: float
    n_alarms: int

    def __repr__(self) -> str:
        return f"ShiftResult({len(self.table)} rows, {self.n_alarms} alarm(s), effect={self.effect:g}, fdr={self.fdr:g})"


def robust_sigma(values: Any) -> float:
    """1.4826 x the median absolute deviation: sigma for normal data, robust to outliers.

    >>> robust_sigma([1.0, 2.0, 3.0, 4.0, 100.0])
    1.482602218505602
    """
    x = np.asarray(values, dtype=float)
    return float(MAD_TO_SIGMA * np.median(np.abs(x - np.median(x))))


def _robust(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Per group of ``keys``: n, median, robust sigma (vectorised)."""
    g = frame.groupby(keys, sort=True, dropna=False, observed=True)["value"]
    med = g.transform("median").to_numpy()
    dev = pd.Series(np.abs(frame["value"].to_numpy() - med), index=frame.index)
    out = g.agg(["count", "median"]).rename(columns={"count": "n"})
    out["sigma"] = MAD_TO_SIGMA * dev.groupby([frame[k].to_numpy() for k in keys], sort=True, dropna=False).median().to_numpy()
    if "test_name" in frame.columns:
        out["test_name"] = frame.groupby(keys, sort=True, dropna=False, observed=True)["test_name"].first().to_numpy()
    return out.reset_index()


def _pvalues(frame: pd.DataFrame, keys: list[str], ref_values: dict[tuple[int, int], np.ndarray]) -> pd.DataFrame:
    """scipy's two-sample KS and k-sample AD p-values, one call per group (the values sorted once)."""
    order = np.lexsort([pd.factorize(frame[k], sort=True, use_na_sentinel=False)[0] for k in reversed(keys)])
    f = frame.iloc[order]
    codes = f.groupby(keys, sort=False, dropna=False, observed=True).ngroup().to_numpy()
    starts = np.r_[0, np.flatnonzero(np.diff(codes)) + 1]
    ends = np.r_[starts[1:], len(codes)]
    vals = f["value"].to_numpy()
    tnum = f["test_num"].to_numpy()
    pin = f["pin"].to_numpy()
    p_ks = np.full(len(starts), np.nan)
    p_ad = np.full(len(starts), np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # anderson_ksamp: "p-value capped/floored"
        for i, (a, b) in enumerate(zip(starts.tolist(), ends.tolist())):
            ref = ref_values.get((int(tnum[a]), int(pin[a])))
            x = vals[a:b]
            if ref is None or len(ref) < 2 or len(x) < 2:
                continue
            p_ks[i] = stats.ks_2samp(x, ref).pvalue
            if np.ptp(np.r_[x, ref]) > 0:
                p_ad[i] = stats.anderson_ksamp([x, ref]).pvalue
    out = f.iloc[starts][keys].reset_index(drop=True)
    out["p_ks"] = p_ks
    out["p_ad"] = p_ad
    return out


def _group_table(frame: pd.DataFrame, keys: list[str], ref_values: dict[tuple[int, int], np.ndarray]) -> pd.DataFrame:
    rob = _robust(frame, keys)
    pv = _pvalues(frame, keys, ref_values)
    return rob.merge(pv, on=keys, how="left")


def shift(
    tests: Any,
    reference: Any,
    *,
    by: Sequence[str] | str = ("lot_id",),
    effect: float = 1.0,
    fdr: float = 0.01,
    value: str = "value",
) -> ShiftResult:
    """Shift of each group (lot) of every test against a reference population.

    Parameters
    ----------
    tests : DataFrame or dask DataFrame
        The long test table: ``test_num``, ``value``, the ``by`` columns, optionally ``pin``
        and ``test_name``. A Dask frame must hold each group in one partition (partitioned by
        lot).
    reference : DataFrame
        The reference results (same columns but ``by``), e.g. the golden lots or the
        population; a Dask frame is computed (the reference must fit in memory).
    by : str or sequence of str
        Group columns (default the lot).
    effect : float
        Smallest shift that matters [robust sigmas of the reference], >= 0.
    fdr : float
        False discovery rate of the Benjamini-Hochberg step, in [0, 1].
    value : str
        Column of the measured values.

    Returns
    -------
    ShiftResult
        ``.table`` sorted by group and test; ``alarm`` is ``|shift_sigma| >= effect`` and
        ``q <= fdr``.

    Raises
    ------
    SchemaError
        When a needed column is missing.
    YieldkitValueError
        ``effect`` < 0, ``fdr`` outside [0, 1], or a Dask frame whose partitions split a group.

    Notes
    -----
    Robust sigma is 1.4826 x MAD. ``p_ks`` is :func:`scipy.stats.ks_2samp` (exact for small
    samples, asymptotic for large), ``p_ad`` :func:`scipy.stats.anderson_ksamp` (its p-value is
    interpolated and kept within [0.001, 0.25]). The q-values are Benjamini-Hochberg over all
    groups and tests, from the KS p-values (the AD p-value is floored at 0.001 by scipy, too
    coarse for many tests at once). A group that holds fewer than two results has no p-value.

    References
    ----------
    Benjamini, Y., & Hochberg, Y. (1995). Controlling the false discovery rate. J. R. Stat.
    Soc. B 57(1), 289-300. https://doi.org/10.1111/j.2517-6161.1995.tb02031.x
    Scholz, F. W., & Stephens, M. A. (1987). K-sample Anderson-Darling tests. JASA 82(399),
    918-924. https://doi.org/10.1080/01621459.1987.10478517

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(1)
    >>> ref = pd.DataFrame({"test_num": 1, "value": rng.normal(0, 1, 2000)})
    >>> t = pd.DataFrame({"lot_id": np.repeat(["A", "B"], 500), "test_num": 1,
    ...                   "value": np.r_[rng.normal(0, 1, 500), rng.normal(2, 1, 500)]})
    >>> shift(t, ref).table["alarm"].tolist()
    [False, True]
    """
    where = "shift"
    check_frame(tests, where)
    check_frame(reference, where, name="reference")
    eff = float(as_nonnegative(effect, "effect", where))
    rate = float(as_fraction(fdr, "fdr", where))
    by_t: tuple[str, ...] = (by,) if isinstance(by, str) else tuple(by)
    if not by_t:
        raise YieldkitValueError("The 'by' argument of shift must name at least one column (e.g. 'lot_id').")
    require(tests.columns, [*by_t, "test_num", value], where)
    if is_dask(reference):
        reference = reference.compute()
    ref = prepare(reference, by=(), value=value, where=where + " (reference)")
    ref_stats = reference_stats(ref)
    ref_values = reference_values(ref)
    keys = [*by_t, *_TKEYS]
    if is_dask(tests):
        import dask

        def part(pdf: pd.DataFrame) -> pd.DataFrame:
            return _group_table(prepare(pdf, by=by_t, value=value, where=where), keys, ref_values)

        done = dask.compute(*[dask.delayed(part)(p) for p in tests.to_delayed()])
        table = pd.concat(done, ignore_index=True)
        if table.duplicated(keys).any():
            raise YieldkitValueError(f"shift of a Dask frame needs every group (the 'by' columns {list(by_t)}) inside "
                                     "one partition; repartition by lot first")
        table = table.sort_values(keys, kind="stable").reset_index(drop=True)
    else:
        table = _group_table(prepare(tests, by=by_t, value=value, where=where), keys, ref_values)
    return finish_shift(table, ref_stats, by_t, eff, rate, where)


def reference_values(ref: pd.DataFrame) -> dict[tuple[int, int], np.ndarray]:
    """The values of every test (``test_num``, ``pin``) of a prepared reference table."""
    order = np.lexsort((ref["pin"].to_numpy(), ref["test_num"].to_numpy()))
    r = ref.iloc[order]
    tk = r["test_num"].to_numpy()
    pk = r["pin"].to_numpy()
    brk = np.r_[0, np.flatnonzero((np.diff(tk) != 0) | (np.diff(pk) != 0)) + 1, len(r)]
    rv = r["value"].to_numpy()
    return {(int(tk[a]), int(pk[a])): rv[a:b] for a, b in zip(brk[:-1].tolist(), brk[1:].tolist()) if b > a}


def reference_stats(ref: pd.DataFrame) -> pd.DataFrame:
    """``ref_n``, ``ref_median``, ``ref_sigma`` per test of a prepared reference table."""
    ref_stats = _robust(ref, _TKEYS).rename(columns={"n": "ref_n", "median": "ref_median", "sigma": "ref_sigma"})
    return ref_stats.drop(columns=[c for c in ("test_name",) if c in ref_stats.columns])


def group_table(frame: pd.DataFrame, by: Sequence[str], ref_values: dict[tuple[int, int], np.ndarray]) -> pd.DataFrame:
    """Per group of ``by`` and test of a prepared table: robust statistics and p-values against the
    reference values (sorted by group and test)."""
    return _group_table(frame, [*by, *_TKEYS], ref_values)


def finish_shift(table: pd.DataFrame, ref_stats: pd.DataFrame, by_t: Sequence[str], eff: float, rate: float,
                 where: str = "shift") -> ShiftResult:
    """The :class:`ShiftResult` from the per-group table and the reference statistics: shifts,
    spread ratios, Benjamini-Hochberg q-values over all rows and alarms."""
    table = table.merge(ref_stats, on=_TKEYS, how="left")
    rs = table["ref_sigma"].to_numpy()
    warn_tests(np.isfinite(rs) & (rs <= 0), table, "have no spread in the reference: their shift is NaN", where)
    with np.errstate(invalid="ignore", divide="ignore"):
        rs = np.where(rs > 0, rs, np.nan)
        table["shift_sigma"] = (table["median"].to_numpy() - table["ref_median"].to_numpy()) / rs
        table["spread_ratio"] = table["sigma"].to_numpy() / rs
    table["q"] = benjamini_hochberg(table["p_ks"].to_numpy())
    table["alarm"] = (np.abs(table["shift_sigma"].to_numpy()) >= eff) & (table["q"].to_numpy() <= rate)
    raw_pin = table["pin"].to_numpy(np.int64)
    pin = pd.array(np.maximum(raw_pin, 0), dtype="Int64")
    pin[raw_pin < 0] = pd.NA
    table["pin"] = pin
    cols = [*by_t, "test_num", "pin", "test_name", "n", "median", "sigma", "ref_n", "ref_median", "ref_sigma",
            "shift_sigma", "spread_ratio", "p_ks", "p_ad", "q", "alarm"]
    table = table[[c for c in cols if c in table.columns]]
    return ShiftResult(table=table, effect=eff, fdr=rate, n_alarms=int(table["alarm"].sum()))
