"""Statistical yield and bin limits (AEC-Q002): flag lots or wafers whose yield or bin counts are unusual.

From at least six reference lots, the statistical yield limit is ``mean - 3 sigma`` of the lot
(or wafer) yields and each failing bin's statistical bin limit ``mean + 3 sigma`` of its fail
fractions; a second tier at 4 sigma separates the clearly abnormal. Three ways to estimate them:

``"normal"``
    Mean and standard deviation (divisor n - 1) of the per-unit values, as AEC-Q002 writes them.
``"robust"``
    Median and robust sigma ``(Q3 - Q1) / 1.35`` (linear quantiles): a bad reference lot does not
    widen the limits.
``"poisson"``
    For bins with few fails, where mean + 3 sigma of fractions is meaningless (sigma of a handful of
    zeros and ones): the fail count of a unit of n dies is Poisson with mean ``lambda * n``
    (``lambda`` the reference fail rate per die), and the limit is its quantile at the normal
    tail probability of the tier, ``Phi(3) = 0.99865`` and ``Phi(4)``; for the yield the same on the
    count of failing dies. Limits then depend on each unit's size and are computed per unit.

References
----------
AEC-Q002 Rev B, *Guidelines for statistical yield analysis*, Automotive Electronics Council, 2003:
SYL = mean - 3 sigma, SBL = mean + 3 sigma from at least six lots; yield and bin limits reviewed
per lot.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from .._keys import wafer_codes
from ..errors import YieldkitValueError, check_choice
from ..results import TableResult
from ._tables import need_columns
from .limits import RS_DIVISOR

__all__ = ["StatisticalLimits", "check_statistical_limits", "statistical_limits"]

_METHODS = ("normal", "robust", "poisson")


@dataclass(frozen=True, repr=False)
class StatisticalLimits(TableResult):
    """Statistical yield and bin limits from reference lots.

    Attributes
    ----------
    table : DataFrame
        One row per item: ``kind`` ("yield" or "bin"), ``bin`` (missing for the yield),
        ``n_units``, ``mean``, ``std``, ``median``, ``robust_sigma`` (of the per-unit yields or
        fail fractions), ``rate`` (fails per die over all reference dies), ``limit_1`` and
        ``limit_2`` (tiers ``k[0]`` and ``k[1]``; for ``"poisson"`` at the mean unit size
        ``mean_dies``, as fractions).
    method, level, k, n_lots, mean_dies, bin_col :
        How the limits were set.
    """

    table: pd.DataFrame
    method: str
    level: str
    k: tuple[float, float]
    n_lots: int
    mean_dies: float
    bin_col: str

    def __repr__(self) -> str:
        return (f"StatisticalLimits(method={self.method!r}, level={self.level!r}, k={self.k}, {self.n_lots} lots, "
                f"{int((self.table['kind'] == 'bin').sum())} bins)")


def _units(dies: pd.DataFrame, level: str, bin_col: str, where: str) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, np.ndarray]:
    """Final results grouped per unit: (units table, unit code per die, passed, bin)."""
    need_columns(dies, ("lot_id", "wafer_id", "die_x", "die_y", "passed", bin_col), what="dies", where=where)
    from ..yields import final_results

    d = final_results(dies)
    if level == "wafer":
        code, units = wafer_codes(d)
    else:
        c, lots = pd.factorize(d["lot_id"])
        code = np.asarray(c, dtype=np.int64)
        units = pd.DataFrame({"lot_id": pd.array(np.asarray(lots, dtype=object), dtype="string[pyarrow]")})
    return units, np.asarray(code, dtype=np.int64), d["passed"].to_numpy(bool), d[bin_col].to_numpy(
        dtype=np.int64, na_value=-1)


def _tier_k(k: Any, where: str) -> tuple[float, float]:
    try:
        k1, k2 = (float(v) for v in k)
    except (TypeError, ValueError):
        raise YieldkitValueError(f"The 'k' argument of {where} must be two numbers 0 < k1 < k2. Got {k!r} instead."
                                 ) from None
    if not (0 < k1 < k2 and np.isfinite(k2)):
        raise YieldkitValueError(f"The 'k' argument of {where} must be two numbers 0 < k1 < k2. Got {k!r} instead.")
    return k1, k2


def statistical_limits(
    reference: pd.DataFrame,
    *,
    level: str = "lot",
    method: str = "normal",
    k: Sequence[float] = (3.0, 4.0),
    bins: Sequence[int] | None = None,
    bin_col: str = "hbin",
    min_lots: int = 6,
) -> StatisticalLimits:
    """Statistical yield limit and bin limits (AEC-Q002) from reference lots.

    Parameters
    ----------
    reference : DataFrame
        Die table of the reference lots (final results are used).
    level : {"lot", "wafer"}
        The unit whose yields and fail fractions are compared.
    method : {"normal", "robust", "poisson"}
        See the module notes.
    k : (float, float)
        The two tiers [sigmas] (AEC-Q002: 3; yieldkit's second tier 4).
    bins : sequence of int, optional
        Bins to set limits for (default: every bin of a failing reference die).
    bin_col : {"hbin", "sbin"}
        Hard or soft bins.
    min_lots : int
        Fewest reference lots (AEC-Q002: 6).

    Returns
    -------
    StatisticalLimits

    Raises
    ------
    YieldkitValueError
        Fewer than ``min_lots`` lots, a bad ``method``, ``level`` or ``k``. SchemaError: a
        missing column.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(0)
    >>> lots = [pd.DataFrame({"lot_id": f"L{i}", "wafer_id": "1", "die_x": np.arange(500), "die_y": 0,
    ...                       "hbin": np.where(rng.random(500) < 0.04, 3, 1)}) for i in range(8)]
    >>> ref = pd.concat(lots, ignore_index=True).assign(passed=lambda d: d["hbin"] == 1)
    >>> lim = statistical_limits(ref)
    >>> lim.table["kind"].tolist(), lim.table["bin"].tolist()
    (['yield', 'bin'], [<NA>, 3])
    """
    where = "statistical_limits"
    check_choice(level, ("lot", "wafer"), name="level", where=where)
    check_choice(method, _METHODS, name="method", where=where)
    check_choice(bin_col, ("hbin", "sbin"), name="bin_col", where=where)
    k12 = _tier_k(k, where)
    units, code, passed, b = _units(reference, level, bin_col, where)
    n_lots = int(reference["lot_id"].nunique())
    if n_lots < min_lots:
        raise YieldkitValueError(f"statistical_limits needs at least {min_lots} reference lots (AEC-Q002 asks for six); "
                                 f"the reference holds {n_lots}.")
    n_u = len(units)
    n = np.bincount(code, minlength=n_u).astype(float)
    fail_bins = np.unique(b[~passed]) if bins is None else np.asarray(sorted(int(x) for x in bins), dtype=np.int64)
    rows = []
    items: list[tuple[str, Any, np.ndarray]] = [("yield", pd.NA, np.bincount(code, weights=passed, minlength=n_u))]
    for bb in fail_bins.tolist():
        items.append(("bin", int(bb), np.bincount(code, weights=(b == bb) & ~passed, minlength=n_u)))
    mean_n = float(n.mean())
    for kind, bb, cnt in items:
        frac = cnt / n
        q1, med, q3 = np.quantile(frac, [0.25, 0.5, 0.75])
        rs = (q3 - q1) / RS_DIVISOR
        mu, sd = float(frac.mean()), float(frac.std(ddof=1)) if n_u > 1 else float("nan")
        fails = (n - cnt) if kind == "yield" else cnt
        rate = float(fails.sum() / n.sum())
        lim = []
        for kk in k12:
            if method == "normal":
                v = mu - kk * sd if kind == "yield" else mu + kk * sd
            elif method == "robust":
                v = med - kk * rs if kind == "yield" else med + kk * rs
            else:
                c = float(stats.poisson.ppf(stats.norm.cdf(kk), rate * mean_n)) / mean_n
                v = 1 - c if kind == "yield" else c
            lim.append(float(v))
        rows.append({"kind": kind, "bin": bb, "n_units": n_u, "mean": mu, "std": sd, "median": float(med),
                     "robust_sigma": float(rs), "rate": rate, "limit_1": lim[0], "limit_2": lim[1]})
    tab = pd.DataFrame(rows)
    tab["bin"] = tab["bin"].astype("Int64")
    tab["kind"] = tab["kind"].astype("string[pyarrow]")
    return StatisticalLimits(table=tab, method=method, level=level, k=k12, n_lots=n_lots, mean_dies=mean_n,
                             bin_col=bin_col)


def check_statistical_limits(dies: pd.DataFrame, limits: StatisticalLimits) -> pd.DataFrame:
    """Flag the lots (or wafers) of ``dies`` whose yield or bin fractions pass the statistical limits.

    Returns
    -------
    DataFrame
        One row per (unit, item): ``lot_id``, [``wafer_id``], ``kind``, ``bin``, ``n`` (dies),
        ``count`` (good dies for the yield, fails in the bin otherwise), ``value`` (yield or fail
        fraction), ``limit_1``, ``limit_2`` (for ``"poisson"``: at this unit's size), ``tier``
        (0: within, 1: beyond tier 1, 2: beyond tier 2).

    Notes
    -----
    Poisson limits on counts: a unit of n dies is flagged at a tier when its fail count exceeds
    ``poisson.ppf(Phi(k), rate * n)``, the smallest count whose cumulative probability reaches the
    tier's.
    """
    where = "check_statistical_limits"
    if not isinstance(limits, StatisticalLimits):
        raise YieldkitValueError(f"The 'limits' argument of {where} must be StatisticalLimits. "
                                 f"Got {type(limits).__name__} instead.")
    units, code, passed, b = _units(dies, limits.level, limits.bin_col, where)
    n_u = len(units)
    n = np.bincount(code, minlength=n_u).astype(float)
    out = []
    for r in limits.table.to_dict("records"):
        if r["kind"] == "yield":
            cnt = np.bincount(code, weights=passed, minlength=n_u)
            fails = n - cnt
        else:
            cnt = np.bincount(code, weights=(b == int(r["bin"])) & ~passed, minlength=n_u)
            fails = cnt
        value = cnt / n
        if limits.method == "poisson":
            c1, c2 = (stats.poisson.ppf(stats.norm.cdf(kk), r["rate"] * n) for kk in limits.k)
            tier = np.where(fails > c2, 2, np.where(fails > c1, 1, 0))
            l1 = 1 - c1 / n if r["kind"] == "yield" else c1 / n
            l2 = 1 - c2 / n if r["kind"] == "yield" else c2 / n
        else:
            l1, l2 = np.full(n_u, r["limit_1"]), np.full(n_u, r["limit_2"])
            if r["kind"] == "yield":
                tier = np.where(value < l2, 2, np.where(value < l1, 1, 0))
            else:
                tier = np.where(value > l2, 2, np.where(value > l1, 1, 0))
        t = units.copy()
        t["kind"] = r["kind"]
        t["bin"] = r["bin"]
        t["n"] = n.astype(np.int64)
        t["count"] = cnt.astype(np.int64)
        t["value"] = value
        t["limit_1"] = l1
        t["limit_2"] = l2
        t["tier"] = tier.astype(np.int64)
        out.append(t)
    res = pd.concat(out, ignore_index=True)
    res["bin"] = res["bin"].astype("Int64")
    res["kind"] = res["kind"].astype("string[pyarrow]")
    return res
