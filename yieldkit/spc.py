"""Statistical process control of yield and defectivity: p- and u-charts with run rules.

A p-chart follows the wafer yield (good over tested dies), a u-chart the defects per wafer
(or per cm^2), in lot/time order, with 3-sigma limits that vary with each wafer's sample
size. Points are standardised, ``z_i = (x_i - centre) / sigma_i``, so the Western Electric
and Nelson run rules apply unchanged to varying limits.

References
----------
Montgomery, D. C. (2009). Introduction to Statistical Quality Control, 6th ed., Wiley:
sections 7.2 (p chart, variable sample size, standardized chart) and 7.3.3 (u chart).

Western Electric Company (1956). Statistical Quality Control Handbook.

Nelson, L. S. (1984). The Shewhart control chart -- tests for special causes. Journal of
Quality Technology 16(4), 237-239.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

from ._deprecation import renamed_kwargs
from .errors import SchemaError, YieldkitValueError, check_choice
from .results import TableResult

__all__ = [
    "ControlChart", "laney_sigma_z", "nelson_rules", "p_chart", "u_chart", "western_electric_rules"]

#: Rule name -> description.
RULES = {
    "WE1": "1 point beyond 3 sigma",
    "WE2": "2 of 3 beyond 2 sigma, same side",
    "WE3": "4 of 5 beyond 1 sigma, same side",
    "WE4": "8 in a row on one side",
    "N1": "1 point beyond 3 sigma",
    "N2": "9 in a row on one side",
    "N3": "6 in a row steadily increasing or decreasing",
    "N4": "14 in a row alternating up and down",
    "N5": "2 of 3 beyond 2 sigma, same side",
    "N6": "4 of 5 beyond 1 sigma, same side",
    "N7": "15 in a row within 1 sigma",
    "N8": "8 in a row beyond 1 sigma, either side",
}


def _run(flags: np.ndarray, k: int) -> np.ndarray:
    """True at i when flags[i-k+1 .. i] are all true (the point completing a run of k)."""
    out = np.zeros(len(flags), bool)
    if len(flags) >= k:
        out[k - 1:] = sliding_window_view(flags, k).all(axis=1)
    return out


def _k_of_m(flags: np.ndarray, m: int, need: int) -> np.ndarray:
    """True at i when flags[i] and at least ``need`` of flags[max(0, i-m+1) .. i] are true.

    This flags the last counted point of every window of at most ``m`` consecutive points
    holding ``need`` counted points, windows cut short by the start of the series included
    (two points beyond 2 sigma as the first two of the series are "2 of 3").
    """
    c = np.cumsum(flags, dtype=np.int64)
    before = np.zeros(len(flags), np.int64)  # counted points up to i - m
    before[m:] = c[:-m]
    return flags & (c - before >= need)


def _steps(z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per point: up from the previous point, down from it, and a change of direction there.

    ``alt[i]`` is true when the steps into ``i - 1`` and into ``i`` have opposite signs, so
    12 of them in a row make 14 points alternating up and down. A NaN takes no step.
    """
    n = len(z)
    inc, dec, alt = np.zeros(n, bool), np.zeros(n, bool), np.zeros(n, bool)
    d = np.diff(z)
    inc[1:] = d > 0
    dec[1:] = d < 0
    alt[2:] = (d[1:] * d[:-1]) < 0
    return inc, dec, alt


def western_electric_rules(z: Any) -> pd.DataFrame:
    """Western Electric rules WE1-WE4 on standardised points, flagged at the completing point.

    Parameters
    ----------
    z : array_like
        ``(x - centre) / sigma`` in time order. A NaN point (e.g. ``sigma = 0`` on a flat
        chart) never counts: it violates no rule, is never beyond or within a zone and
        breaks every run through it.

    Returns
    -------
    DataFrame
        Boolean columns ``WE1`` .. ``WE4``.

    Notes
    -----
    A violation is flagged at the point completing the pattern: for "k in a row" rules the
    k-th point of the run (and every later point while the run lasts); for "k of m" rules
    (WE2: 2 of 3 beyond 2 sigma, WE3: 4 of 5 beyond 1 sigma, each on one side) the last
    point beyond the limit in a window of m consecutive points holding k such points. Windows
    cut short by the start of the series count, so the first two points both beyond
    +2 sigma violate WE2 at the second. Zone boundaries do not count as beyond: z = 2 is
    not beyond 2 sigma.

    Examples
    --------
    >>> western_electric_rules([0, 3.5, 0, 2.1, 2.2])[["WE1", "WE2"]].any().tolist()
    [True, True]
    """
    z = np.asarray(z, dtype=np.float64)
    # comparisons with NaN are False, so a NaN point neither counts nor continues a run
    up2, lo2, up1, lo1 = z > 2, z < -2, z > 1, z < -1
    return pd.DataFrame({
        "WE1": np.abs(z) > 3,
        "WE2": _k_of_m(up2, 3, 2) | _k_of_m(lo2, 3, 2),
        "WE3": _k_of_m(up1, 5, 4) | _k_of_m(lo1, 5, 4),
        "WE4": _run(z > 0, 8) | _run(z < 0, 8),
    })


def nelson_rules(z: Any) -> pd.DataFrame:
    """Nelson's eight rules N1-N8 on standardised points, flagged at the completing point.

    Parameters
    ----------
    z : array_like
        ``(x - centre) / sigma`` in time order; NaN points are treated as in
        :func:`western_electric_rules` (a NaN also ends any increasing, decreasing or
        alternating run).

    Returns
    -------
    DataFrame
        Boolean columns ``N1`` .. ``N8``.

    Notes
    -----
    Flagged at the completing point, as in :func:`western_electric_rules`: N5 and N6 are
    WE2 and WE3; N3 (6 points, each above the one before, or each below) and N4 (14 points
    whose consecutive steps alternate in sign) are flagged at the 6th and 14th point.

    Examples
    --------
    >>> bool(nelson_rules([0.1, 0.2, 0.3, 0.4, 0.5, 0.6])["N3"].iloc[-1])
    True
    """
    z = np.asarray(z, dtype=np.float64)
    inc, dec, alt = _steps(z)
    up2, lo2, up1, lo1 = z > 2, z < -2, z > 1, z < -1
    return pd.DataFrame({
        "N1": np.abs(z) > 3,
        "N2": _run(z > 0, 9) | _run(z < 0, 9),
        "N3": _run(inc, 5) | _run(dec, 5),
        "N4": _run(alt, 12),
        "N5": _k_of_m(up2, 3, 2) | _k_of_m(lo2, 3, 2),
        "N6": _k_of_m(up1, 5, 4) | _k_of_m(lo1, 5, 4),
        "N7": _run(np.abs(z) < 1, 15),
        "N8": _run(np.abs(z) > 1, 8),
    })


@dataclass(frozen=True, repr=False)
class ControlChart(TableResult):
    """A control chart: one row per point plus the centre line.

    Attributes
    ----------
    kind : str
        ``"p"`` or ``"u"``.
    statistic : str
        What is plotted (``"yield"``, ``"fraction_defective"``, ``"defects_per_wafer"``,
        ``"defects_per_cm2"``).
    centre : float
        Centre line (pooled estimate).
    table : DataFrame
        Label columns, ``n`` (sample size or exposure), ``value``, ``sigma``, ``lcl``,
        ``ucl``, ``z``, one boolean column per rule, ``rules`` (comma-separated names of the
        rules violated, "" for none).
    sigma_level : float
        Width of the limits in sigmas.
    sigma_z : float
        Laney's between-sample variation factor (1 for the classic chart).
    """

    kind: str
    statistic: str
    centre: float
    table: pd.DataFrame
    sigma_level: float = 3.0
    sigma_z: float = 1.0

    def excursions(self) -> pd.DataFrame:
        """The points that violate at least one rule, with the rules named."""
        t = self.table
        rule_cols = [c for c in t.columns if c in RULES]
        return t.loc[t["rules"] != "", [c for c in t.columns if c not in rule_cols]].reset_index(drop=True)

    def __repr__(self) -> str:
        return (f"ControlChart(kind={self.kind!r}, statistic={self.statistic!r}, points={len(self.table)}, "
                f"centre={self.centre:.4g}, excursions={int((self.table['rules'] != '').sum())})")


def _apply_rules(z: np.ndarray, rules: str) -> pd.DataFrame:
    check_choice(rules, ("western_electric", "nelson", "both", "none"), name="rules", where="control chart")
    parts = []
    if rules in ("western_electric", "both"):
        parts.append(western_electric_rules(z))
    if rules in ("nelson", "both"):
        parts.append(nelson_rules(z))
    return pd.concat(parts, axis=1) if parts else pd.DataFrame(index=range(len(z)))


def _finish(table: pd.DataFrame, labels: pd.DataFrame, value: np.ndarray, n: np.ndarray, sigma: np.ndarray,
            centre: float, lo_bound: float, hi_bound: float, k: float, rules: str) -> pd.DataFrame:
    out = labels.reset_index(drop=True).copy()
    out["n"] = n
    out["value"] = value
    out["sigma"] = sigma
    out["lcl"] = np.maximum(centre - k * sigma, lo_bound)
    out["ucl"] = np.minimum(centre + k * sigma, hi_bound)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = (value - centre) / sigma
    out["z"] = z
    flags = _apply_rules(z, rules)
    out = pd.concat([out, flags], axis=1)
    text = np.full(len(out), "", dtype=object)
    for name in flags.columns:  # a handful of rules, vectorised over points
        text = text + np.where(flags[name].to_numpy(dtype=bool), name + ",", "")
    out["rules"] = pd.Series(text, dtype=object).str.rstrip(",").to_numpy(dtype=object)
    return out


def _labels(table: pd.DataFrame, label: Sequence[str] | None) -> pd.DataFrame:
    cols = [c for c in (label if label is not None else ("lot_id", "wafer_id")) if c in table.columns]
    return table[cols]


def _check_cols(table: pd.DataFrame, cols: Sequence[str], where: str) -> None:
    missing = [c for c in cols if c not in table.columns]
    if missing:
        raise SchemaError(f"{where} needs column(s) {', '.join(missing)}; found {list(table.columns)}.",
                          column=missing[0])


def _ordered(table: pd.DataFrame, order_by: str | Sequence[str] | None, sigma_level: float, where: str) -> pd.DataFrame:
    """The chart's rows in plotting order, after checking the limit width."""
    if not sigma_level > 0:
        raise YieldkitValueError(f"The 'sigma_level' argument of {where} must be > 0. Got {sigma_level!r} instead.")
    if order_by is None:
        return table
    return table.sort_values([order_by] if isinstance(order_by, str) else list(order_by), kind="stable")


def laney_sigma_z(value: np.ndarray, sigma: np.ndarray, centre: float) -> float:
    """Laney's sigma_z: the average moving range of the z-scores divided by d2 = 1.128.

    ``z_i = (value_i - centre) / sigma_i``; ``sigma_z = mean(|z_i - z_(i-1)|) / 1.128`` over
    consecutive finite z. About 1 when the within-sample (binomial or Poisson) variation explains
    the data; above 1 when samples differ more than that (overdispersion), which makes the
    classic p- and u-charts flag almost every point.

    References
    ----------
    Laney, D. B. (2002). Improved control charts for attributes. Quality Engineering 14(4),
    531-537. https://doi.org/10.1081/QEN-120003555
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        z = (np.asarray(value, float) - centre) / np.asarray(sigma, float)
    z = z[np.isfinite(z)]
    if len(z) < 2:
        return 1.0
    return float(np.mean(np.abs(np.diff(z))) / 1.128)


@renamed_kwargs(n="tested_col", good="good_col", label="label_cols")
def p_chart(
    table: pd.DataFrame,
    *,
    tested_col: str = "tested",
    good_col: str = "good",
    statistic: str = "yield",
    order_by: str | Sequence[str] | None = None,
    label_cols: Sequence[str] | None = None,
    rules: str = "both",
    sigma_level: float = 3.0,
    laney: bool = False,
) -> ControlChart:
    """p-chart of wafer yield (or fraction defective) with limits for varying sample sizes.

    Parameters
    ----------
    table : DataFrame
        One row per wafer (e.g. :func:`yieldkit.wafer_yield`), in lot/time order unless
        ``order_by`` is given.
    tested_col, good_col : str
        Columns of tested and good dies per wafer [1].
    statistic : {"yield", "fraction_defective"}
        Plot ``good/tested`` or ``1 - good/tested`` (the limits are symmetric, so rules agree).
    order_by : str or sequence of str, optional
        Sort by these columns first (e.g. ``test_time``).
    label_cols : sequence of str, optional
        Columns identifying each point (default ``lot_id``, ``wafer_id``).
    rules : {"both", "western_electric", "nelson", "none"}
        Run rules to flag.
    sigma_level : float
        Limits at ``centre +/- sigma_level * sigma_i`` (rules always use the 1-2-3 sigma zones).
    laney : bool
        Laney's p'-chart: ``sigma_i`` multiplied by :func:`laney_sigma_z`, for wafers whose
        yields vary more than binomially (large-area clustering, lot effects).

    Returns
    -------
    ControlChart

    Notes
    -----
    ``p_bar = sum(good) / sum(n)``, ``sigma_i = sqrt(p_bar (1 - p_bar) / n_i)``,
    ``UCL_i = min(1, p_bar + 3 sigma_i)``, ``LCL_i = max(0, p_bar - 3 sigma_i)``; with
    ``laney=True``, ``sigma_i`` is multiplied by ``sigma_z`` (Laney 2002).

    Examples
    --------
    >>> import pandas as pd
    >>> c = p_chart(pd.DataFrame({"tested": [100, 100, 50], "good": [90, 80, 45]}))
    >>> round(c.centre, 4), round(float(c.table["ucl"].iloc[2]), 4)
    (0.86, 1.0)
    """
    check_choice(statistic, ("yield", "fraction_defective"), name="statistic", where="p_chart")
    _check_cols(table, [tested_col, good_col], "p_chart")
    t = _ordered(table, order_by, sigma_level, "p_chart")
    nn = t[tested_col].to_numpy(dtype=np.float64)
    gg = t[good_col].to_numpy(dtype=np.float64)
    if np.any(nn <= 0) or np.any(gg < 0) or np.any(gg > nn):
        raise YieldkitValueError(f"p_chart needs 0 <= {good_col!r} <= {tested_col!r} and {tested_col!r} > 0 on every row.")
    p_bar = gg.sum() / nn.sum()
    value = gg / nn
    centre = p_bar
    if statistic == "fraction_defective":
        value = 1.0 - value
        centre = 1.0 - p_bar
    sigma = np.sqrt(p_bar * (1 - p_bar) / nn)
    sz = laney_sigma_z(value, sigma, centre) if laney else 1.0
    out = _finish(t, _labels(t, label_cols), value, nn, sigma * sz, centre, 0.0, 1.0, sigma_level, rules)
    return ControlChart("p", statistic, float(centre), out, sigma_level, sz)


@renamed_kwargs(count="count_col", exposure="exposure_col", label="label_cols")
def u_chart(
    table: pd.DataFrame,
    *,
    count_col: str = "n_defects",
    exposure_col: str | None = None,
    order_by: str | Sequence[str] | None = None,
    label_cols: Sequence[str] | None = None,
    rules: str = "both",
    sigma_level: float = 3.0,
    laney: bool = False,
) -> ControlChart:
    """u-chart of defects per wafer or per unit of exposure (e.g. inspected area [cm^2]).

    Parameters
    ----------
    table : DataFrame
        One row per wafer, in lot/time order unless ``order_by`` is given.
    count_col : str
        Column of defect counts [1].
    exposure_col : str, optional
        Column of exposure per wafer (inspected area [cm^2]); without it every wafer has
        exposure 1 and the chart is of defects per wafer (a c-chart).
    order_by, label_cols, rules, sigma_level, laney
        As in :func:`p_chart` (``laney=True``: Laney's u'-chart, for defect densities that vary
        more than Poisson from wafer to wafer -- clustered defects).

    Returns
    -------
    ControlChart

    Notes
    -----
    ``u_bar = sum(c) / sum(a)``, ``sigma_i = sqrt(u_bar / a_i)``,
    ``UCL_i = u_bar + 3 sigma_i``, ``LCL_i = max(0, u_bar - 3 sigma_i)``.

    Examples
    --------
    >>> import pandas as pd
    >>> c = u_chart(pd.DataFrame({"n_defects": [4, 6, 5]}))
    >>> c.centre, round(float(c.table["ucl"].iloc[0]), 4)
    (5.0, 11.7082)
    """
    _check_cols(table, [count_col] + ([exposure_col] if exposure_col else []), "u_chart")
    t = _ordered(table, order_by, sigma_level, "u_chart")
    c = t[count_col].to_numpy(dtype=np.float64)
    a = t[exposure_col].to_numpy(dtype=np.float64) if exposure_col else np.ones(len(t))
    if np.any(a <= 0) or np.any(c < 0):
        raise YieldkitValueError(f"u_chart needs {count_col!r} >= 0 and exposure > 0 on every row.")
    u_bar = c.sum() / a.sum()
    sigma = np.sqrt(u_bar / a)
    sz = laney_sigma_z(c / a, sigma, u_bar) if laney else 1.0
    out = _finish(t, _labels(t, label_cols), c / a, a, sigma * sz, u_bar, 0.0, np.inf, sigma_level, rules)
    stat = "defects_per_cm2" if exposure_col else "defects_per_wafer"
    return ControlChart("u", stat, float(u_bar), out, sigma_level, sz)
