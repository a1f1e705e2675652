"""Kill ratio and defect-limited yield per defect class.

Two standard estimators of how often a defect class kills its die:

* the **contingency** (die-based) kill ratio compares the yield of dies whose inspected defects
  are all of one class with the yield of defect-free dies,
  ``KR = 1 - Y_defective / Y_clean``;
* the **joint maximum-likelihood** estimate uses every die, including dies with several
  defects of different classes: ``P(die passes) = Y_clean * prod_j (1 - k_class(j))`` over the
  die's defects, so ``k`` is the kill probability of one defect of the class.

Glossary
--------
dies affected
    Tested dies with at least one defect of the class.
fraction affected ``f``
    Dies affected over tested dies.
limited yield
    ``1 - KR * f``: the yield the class alone would leave; ``1 - limited yield`` is the share
    of dies the class kills.

References
----------
Nurani, R. K., Akella, R. & Strojwas, A. J. (1996). In-line defect sampling methodology in
yield management: an integrated framework. IEEE Trans. Semicond. Manuf. 9(4), 506-517.

Stapper, C. H. & Rosner, R. J. (1995). Integrated circuit yield management and yield
analysis: development and implementation. IEEE Trans. Semicond. Manuf. 8(2), 95-102.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import optimize, stats

from ._keys import dense_die_keys, joint_wafer_codes, lookup_rows
from .errors import ConvergenceWarning, DataQualityWarning, SchemaError, YieldkitValueError, check_choice
from .intervals import clopper_pearson, wilson
from .results import TableResult
from .schema import STRING, UNCLASSIFIED
from .yields import final_results

log = logging.getLogger(__name__)

__all__ = ["DieDefects", "KillRatioResult", "KillRatioStats", "die_defects", "joint_kill_ratio",
           "joint_kill_ratio_patterns", "kill_ratio", "kill_ratio_stats"]

_INTERVALS = {"wilson": wilson, "clopper-pearson": clopper_pearson}


@dataclass
class DieDefects:
    """Defects matched to the final test result of their die.

    Attributes
    ----------
    dies : DataFrame
        Final results, one row per tested die.
    passed : ndarray of bool
        ``dies["passed"]``.
    die : ndarray of int64
        For each matched defect, its row in ``dies``.
    category : ndarray of int64
        For each matched defect, its code in ``categories``.
    categories : ndarray of object
        Category names (values of the ``by`` column), sorted.
    defect_rows : ndarray of int64
        Row position of each matched defect in the defect table.
    n_off_die, n_untested : int
        Defects off every die, and defects on a die without a test result (both left out).
    """

    dies: pd.DataFrame
    passed: np.ndarray
    die: np.ndarray
    category: np.ndarray
    categories: np.ndarray
    defect_rows: np.ndarray
    n_off_die: int
    n_untested: int

    def counts(self) -> np.ndarray:
        """Dense (n_dies, n_categories) matrix of defect counts per die and category."""
        n_c = len(self.categories)
        flat = np.bincount(self.die * n_c + self.category, minlength=len(self.dies) * n_c)
        return flat.reshape(len(self.dies), n_c)


def _category(defects: pd.DataFrame, by: str) -> pd.Series:
    if by not in defects.columns:
        if by == "defect_class":
            return pd.Series(UNCLASSIFIED, index=defects.index, dtype=STRING)
        raise SchemaError(f"The 'by' column {by!r} is not in the defect table; columns are {list(defects.columns)}.",
                          column=by)
    s = defects[by]
    if by == "defect_class":
        s = s.fillna(UNCLASSIFIED)
    return s


@dataclass(frozen=True, repr=False)
class KillRatioResult(TableResult):
    """Kill ratios per defect class and the counts behind them (from :func:`kill_ratio`).

    Attributes
    ----------
    table : DataFrame
        One row per category, by decreasing yield loss (columns in :func:`kill_ratio`).
    tested_dies : int
        Tested dies (final results) the ratios are over.
    defects_off_die : int
        Defects on no die of the die table.
    defects_on_untested_dies : int
        Defects on a die without a test result.
    y_clean_joint : float
        Yield of a defect-free die from the joint estimate (NaN without it).
    y_clean_joint_ci : tuple of float
        Its confidence interval (NaN, NaN without the joint estimate).
    """

    table: pd.DataFrame
    tested_dies: int
    defects_off_die: int
    defects_on_untested_dies: int
    y_clean_joint: float = float("nan")
    y_clean_joint_ci: tuple[float, float] = (float("nan"), float("nan"))

    def __repr__(self) -> str:
        return (f"KillRatioResult(categories={len(self.table)}, tested_dies={self.tested_dies}, "
                f"y_clean_joint={self.y_clean_joint:.4g}, defects_off_die={self.defects_off_die})")


def die_defects(dies: pd.DataFrame, defects: pd.DataFrame, *, by: str = "defect_class") -> DieDefects:
    """Match every defect to the final test result of its die.

    Parameters
    ----------
    dies : DataFrame
        Canonical die table (retests allowed: the final result counts).
    defects : DataFrame
        Canonical defect table with ``die_x``/``die_y`` (complete them from ``x_um``/``y_um``
        with :func:`yieldkit.schema.complete_positions` first).
    by : str
        Defect column that names the category (``defect_class``, ``layer``, a size bin, ...).

    Returns
    -------
    DieDefects

    Raises
    ------
    SchemaError
        When a table lacks the columns this needs.
    """
    needs: tuple[tuple[str, pd.DataFrame, tuple[str, ...]], ...] = (
        ("dies", dies, ("lot_id", "wafer_id", "die_x", "die_y", "passed")),
        ("defects", defects, ("lot_id", "wafer_id", "die_x", "die_y")))
    for name, table, need in needs:
        missing = [c for c in need if c not in table.columns]
        if missing:
            raise SchemaError(f"The {name!r} table needs column(s) {', '.join(missing)} for kill-ratio analysis; "
                              f"found {list(table.columns)}.", column=missing[0])
    final = final_results(dies)
    cat = _category(defects, by)
    on_die = (defects["die_x"].notna() & defects["die_y"].notna()).to_numpy(dtype=bool)
    rows = np.flatnonzero(on_die)
    die_pos = _match_dies(final, defects[["lot_id", "wafer_id", "die_x", "die_y"]].iloc[rows])
    matched = die_pos >= 0
    n_off = int((~on_die).sum())
    n_untested = int((~matched).sum())
    if n_off or n_untested:
        log.info("kill ratio: %d defect(s) off every die and %d on untested dies left out", n_off, n_untested)
    codes, uniques = pd.factorize(cat.iloc[rows[matched]], sort=True)
    if (codes < 0).any():
        raise SchemaError(f"The {by!r} column has missing values; fill them before a kill-ratio analysis.", column=by)
    return DieDefects(
        dies=final,
        passed=final["passed"].to_numpy(dtype=bool),
        die=die_pos[matched].astype(np.int64),
        category=codes.astype(np.int64),
        categories=np.asarray(uniques, dtype=object),
        defect_rows=rows[matched].astype(np.int64),
        n_off_die=n_off,
        n_untested=n_untested,
    )


def _match_dies(final: pd.DataFrame, on: pd.DataFrame) -> np.ndarray:
    """Row of ``final`` (one row per die) at each defect of ``on`` (die positions present); -1 where none.

    Integer keys over the two tables' joint wafer codes (no string keys and no copy of the die
    table): a dense lookup array over the dies' bounding box when it is compact, a sorted
    search otherwise. Dies without a position match no defect.
    """
    (w_tab, w_q), _ = joint_wafer_codes(final, on)
    sx, sy = final["die_x"], final["die_y"]
    x_q = on["die_x"].to_numpy(dtype=np.int64)
    y_q = on["die_y"].to_numpy(dtype=np.int64)
    valid_q = np.ones(len(on), bool)
    index: np.ndarray | None = None
    if sx.hasnans or sy.hasnans:
        index = np.flatnonzero(sx.notna().to_numpy() & sy.notna().to_numpy())
        w_tab, sx, sy = w_tab[index], sx.iloc[index], sy.iloc[index]
    x_tab = sx.to_numpy(dtype=np.int64) if sx.dtype.kind != "i" else sx.to_numpy()
    y_tab = sy.to_numpy(dtype=np.int64) if sy.dtype.kind != "i" else sy.to_numpy()
    dense = dense_die_keys(w_tab, x_tab, y_tab, w_q, x_q, y_q, valid_q)
    if dense is None:
        pos = lookup_rows(w_tab, x_tab.astype(np.int64, copy=False), y_tab.astype(np.int64, copy=False),
                          w_q, x_q, y_q, valid_q)
    else:
        k_tab, k_q, ok, space = dense
        row_of_key = np.full(space, -1, dtype=np.int32 if len(k_tab) < 2**31 - 1 else np.int64)
        row_of_key[k_tab] = np.arange(len(k_tab), dtype=row_of_key.dtype)
        del k_tab
        pos = np.full(len(on), -1, dtype=np.int64)
        pos[ok] = row_of_key[k_q]
    if index is not None:
        pos = np.where(pos >= 0, index[np.maximum(pos, 0)], -1)
    return pos


def contingency_counts(
    die: np.ndarray, category: np.ndarray, group: np.ndarray, passed: np.ndarray,
    n_groups: int, n_categories: int, group_dies: np.ndarray, group_passed: np.ndarray,
) -> dict[str, np.ndarray]:
    """Die counts of the contingency kill ratio, per (group, category), without row loops.

    ``die``, ``category``, ``group`` give each matched defect's die row, category code and group
    code; ``group_dies``/``group_passed`` the tested and passing dies of each group (the
    denominators). Returns (n_groups, n_categories) arrays ``affected``, ``pure``,
    ``pure_passed`` and (n_groups,) arrays ``clean``, ``clean_passed``.
    """
    G, C = n_groups, n_categories
    key = (die * G + group) * C + category
    u = np.unique(key)
    dg = u // C
    gc = (dg % G) * C + u % C
    affected = np.bincount(gc, minlength=G * C).reshape(G, C)
    dg_u, dg_inv, n_cls = np.unique(dg, return_inverse=True, return_counts=True)
    single = n_cls[dg_inv] == 1
    p = passed[dg // G].astype(np.float64)
    pure = np.bincount(gc[single], minlength=G * C).reshape(G, C)
    pure_passed = np.bincount(gc[single], weights=p[single], minlength=G * C).reshape(G, C)
    g_of = dg_u % G
    dirty = np.bincount(g_of, minlength=G)
    dirty_passed = np.bincount(g_of, weights=passed[dg_u // G].astype(np.float64), minlength=G)
    return {
        "affected": affected,
        "pure": pure,
        "pure_passed": np.rint(pure_passed).astype(np.int64),
        "clean": np.asarray(group_dies, dtype=np.int64) - dirty,
        "clean_passed": np.asarray(group_passed, dtype=np.int64) - np.rint(dirty_passed).astype(np.int64),
    }


def contingency_kill_ratio(
    pure: Any, pure_passed: Any, clean: Any, clean_passed: Any, *, interval: str = "wilson",
    conf_level: float = 0.95, where: str = "kill_ratio", warn: bool = True, stacklevel: int = 3,
) -> dict[str, np.ndarray]:
    """Contingency kill ratio ``1 - Y_defective / Y_clean`` with its interval (vectorised).

    Returns ``y_defective``, ``y_clean``, ``kill_ratio_raw``, ``kill_ratio`` (clipped to
    [0, 1]), ``ci_lower``, ``ci_upper``. Undefined ratios (no pure or no clean dies, or
    ``Y_clean = 0``) are NaN with a :class:`DataQualityWarning`.
    """
    check_choice(interval, tuple(_INTERVALS), name="interval", where=where)
    pure = np.asarray(pure, dtype=np.float64)
    pure_passed = np.asarray(pure_passed, dtype=np.float64)
    clean = np.asarray(clean, dtype=np.float64)
    clean_passed = np.asarray(clean_passed, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        y_def = pure_passed / pure
        y_clean = clean_passed / clean
        raw = 1.0 - y_def / y_clean
        lo_y, hi_y = _INTERVALS[interval](pure_passed, pure, conf_level)
        lo = np.clip(1.0 - hi_y / y_clean, 0.0, 1.0)
        hi = np.clip(1.0 - lo_y / y_clean, 0.0, 1.0)
    bad = ~np.isfinite(raw)
    if warn and bad.any():
        warnings.warn(
            f"{where}: kill ratio undefined for {int(bad.sum())} categor(ies) (no dies with only that class, "
            "no defect-free dies, or no passing defect-free die); reported as NaN.",
            DataQualityWarning, stacklevel=stacklevel,
        )
    lo = np.where(bad, np.nan, lo)
    hi = np.where(bad, np.nan, hi)
    return {"y_defective": y_def, "y_clean": y_clean, "kill_ratio_raw": raw,
            "kill_ratio": np.clip(raw, 0.0, 1.0), "ci_lower": lo, "ci_upper": hi}


def joint_kill_ratio(
    counts: np.ndarray, passed: np.ndarray, *, conf_level: float = 0.95,
) -> dict[str, Any]:
    """Joint maximum-likelihood kill probabilities from per-die defect counts.

    Parameters
    ----------
    counts : ndarray, shape (n_dies, n_classes)
        Defects of each class on each tested die [1].
    passed : ndarray of bool, shape (n_dies,)
        Final test result of each die.
    conf_level : float
        Confidence level of the intervals.

    Returns
    -------
    dict
        ``kill_prob``, ``ci_lower``, ``ci_upper``, ``std_err`` (of ``log(1 - k)``) per class;
        ``y_clean`` with ``y_clean_ci``; ``loglik``.

    Notes
    -----
    ``log P(pass_i) = a + sum_c n_ic * b_c`` with ``a = log Y_clean`` and ``b_c = log(1 - k_c)``,
    all <= 0. The Bernoulli log-likelihood is maximised over identical count patterns (so the
    work grows with distinct patterns, not dies) by bounded L-BFGS-B with the analytic
    gradient; Wald intervals on the ``b`` scale (from the observed information) are mapped to
    ``k = 1 - exp(b)``, so they stay in [0, 1]; at ``k = 0`` the lower limit is 0.
    """
    counts = np.asarray(counts, dtype=np.int64)
    passed = np.asarray(passed, dtype=bool)
    pat, inv = np.unique(counts, axis=0, return_inverse=True)
    inv = inv.ravel()
    n_pat = np.bincount(inv, minlength=len(pat)).astype(np.float64)
    g_pat = np.bincount(inv, weights=passed.astype(np.float64), minlength=len(pat))
    return joint_kill_ratio_patterns(pat, n_pat, g_pat, conf_level=conf_level)


def joint_kill_ratio_patterns(
    patterns: np.ndarray, n: np.ndarray, good: np.ndarray, *, conf_level: float = 0.95, stacklevel: int = 3,
) -> dict[str, Any]:
    """:func:`joint_kill_ratio` from distinct count patterns: ``patterns`` (n_patterns, n_classes),
    ``n`` dies and ``good`` passing dies with each pattern (the sufficient statistics of the fit).

    Returns the same dict as :func:`joint_kill_ratio`, plus ``cov``: the covariance of
    ``(log Y_clean, log(1 - k_1), ...)``.
    """
    pat = np.asarray(patterns, dtype=np.int64)
    n_pat = np.asarray(n, dtype=np.float64)
    g_pat = np.asarray(good, dtype=np.float64)
    n_c = pat.shape[1]
    f_pat = n_pat - g_pat
    X = np.column_stack([np.ones(len(pat)), pat.astype(np.float64)])

    def nll(theta: np.ndarray) -> tuple[float, np.ndarray]:
        eta = np.minimum(X @ theta, -1e-12)
        log1m = np.log(-np.expm1(eta))
        ll = g_pat @ eta + f_pat @ log1m
        # d/d eta: g - f * p/(1-p) with p = exp(eta)
        r = g_pat - f_pat * np.exp(eta - log1m)
        return -float(ll), -(X.T @ r)

    clean = pat.sum(axis=1) == 0
    y_clean0 = max(min(g_pat[clean].sum() / n_pat[clean].sum() if n_pat[clean].sum() > 0 else 0.9, 0.999), 1e-3)
    theta0 = np.r_[np.log(y_clean0), np.full(n_c, np.log(0.7))]
    bounds = [(-50.0, -1e-10)] + [(-50.0, 0.0)] * n_c
    res = optimize.minimize(nll, theta0, jac=True, method="L-BFGS-B", bounds=bounds,
                            options={"maxiter": 2000, "ftol": 1e-14, "gtol": 1e-9})
    if not res.success:
        # L-BFGS-B stops "abnormally" in the line search when it cannot improve at machine
        # precision; accept the point when the projected gradient vanishes (relative to n).
        _, g = nll(res.x)
        lo_b = np.array([b[0] for b in bounds])
        hi_b = np.array([b[1] for b in bounds])
        pg = np.where((res.x <= lo_b + 1e-12) & (g > 0), 0.0, g)
        pg = np.where((res.x >= hi_b - 1e-12) & (pg < 0), 0.0, pg)
        if np.max(np.abs(pg)) > 1e-5 * max(float(n_pat.sum()), 1.0):
            warnings.warn(f"joint kill-ratio fit did not converge: {res.message}", ConvergenceWarning, stacklevel=stacklevel)
    theta = res.x
    eta = np.minimum(X @ theta, -1e-12)
    p = np.exp(eta)
    # observed information of the Bernoulli model in eta (log-link): f * p / (1-p)^2 per pattern
    w = f_pat * p / (1.0 - p) ** 2
    info = X.T @ (X * w[:, None])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            cov = np.linalg.inv(info)
            se = np.sqrt(np.clip(np.diag(cov), 0, None))
        except np.linalg.LinAlgError:
            cov = np.full((len(theta), len(theta)), np.nan)
            se = np.full(len(theta), np.nan)
    if not np.all(np.isfinite(se)):
        warnings.warn("joint kill ratio: singular information matrix; intervals are NaN", ConvergenceWarning,
                      stacklevel=stacklevel)
    z = stats.norm.ppf(0.5 + conf_level / 2)
    b, sb = theta[1:], se[1:]
    k = -np.expm1(b) + 0.0  # no negative zero at the k = 0 boundary
    k_lo = np.maximum(-np.expm1(np.minimum(b + z * sb, 0.0)), 0.0) + 0.0
    k_hi = -np.expm1(b - z * sb)
    a, sa = theta[0], se[0]
    return {
        "kill_prob": k, "ci_lower": k_lo, "ci_upper": k_hi, "std_err": sb,
        "y_clean": float(np.exp(a)),
        # log Y_clean <= 0: the upper limit is capped at 1 before exponentiating (no overflow)
        "y_clean_ci": (float(np.exp(min(a - z * sa, 0.0))), float(np.exp(min(a + z * sa, 0.0)))),
        "loglik": -float(res.fun),
        "cov": cov,
    }


@dataclass(frozen=True)
class KillRatioStats:
    """Sufficient statistics of :func:`kill_ratio` over a set of dies (from :func:`kill_ratio_stats`).

    They add up over disjoint sets of wafers (:meth:`combine`), so that the kill ratio of data
    held in parts (e.g. the partitions of a Dask frame) is computed from the parts' statistics.

    Attributes
    ----------
    categories : ndarray of object
        Categories of the defects on tested dies, sorted.
    defects, affected, pure, pure_passed : ndarray of int64
        Per category: defects on tested dies; dies carrying the category; dies carrying only
        the category, and those of them that pass.
    tested, passed, dirty, dirty_passed : int
        Tested dies and passing dies; dies with at least one defect, and those that pass.
    patterns : ndarray of int64, shape (n_patterns, n_categories)
        The distinct non-zero per-die count patterns (defects of each category on one die), in
        lexicographic order.
    pattern_dies, pattern_passed : ndarray of int64
        Dies with each pattern, and those that pass.
    n_off_die, n_untested : int
        Defects off every die, and defects on a die without a test result.
    """

    categories: np.ndarray
    defects: np.ndarray
    affected: np.ndarray
    pure: np.ndarray
    pure_passed: np.ndarray
    tested: int
    passed: int
    dirty: int
    dirty_passed: int
    patterns: np.ndarray
    pattern_dies: np.ndarray
    pattern_passed: np.ndarray
    n_off_die: int = 0
    n_untested: int = 0

    def pattern_table(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every distinct pattern with its dies and passing dies, the zero pattern (clean dies) included."""
        clean = self.tested - self.dirty
        if clean <= 0:
            return self.patterns, self.pattern_dies, self.pattern_passed
        zero = np.zeros((1, len(self.categories)), np.int64)
        return (np.vstack([zero, self.patterns]), np.r_[clean, self.pattern_dies].astype(np.int64),
                np.r_[self.passed - self.dirty_passed, self.pattern_passed].astype(np.int64))

    @classmethod
    def combine(cls, parts: Any) -> KillRatioStats:
        """The statistics of the union of the parts' dies (the parts hold disjoint sets of wafers)."""
        parts = list(parts)
        if len(parts) == 1:
            return parts[0]
        allcat = np.concatenate([np.asarray(p.categories, dtype=object) for p in parts] + [np.zeros(0, object)])
        codes, uniques = pd.factorize(allcat, sort=True)
        cats = np.asarray(uniques, dtype=object)
        n_c = len(cats)
        sums = {f: np.zeros(n_c, np.int64) for f in ("defects", "affected", "pure", "pure_passed")}
        pats, n_pat, g_pat = [np.zeros((0, n_c), np.int64)], [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
        at = 0
        for p in parts:
            idx = codes[at:at + len(p.categories)]
            at += len(p.categories)
            for f, v in sums.items():
                v[idx] += getattr(p, f)
            wide = np.zeros((len(p.patterns), n_c), np.int64)
            wide[:, idx] = p.patterns
            pats.append(wide)
            n_pat.append(np.asarray(p.pattern_dies, np.int64))
            g_pat.append(np.asarray(p.pattern_passed, np.int64))
        allpat = np.vstack(pats)
        upat, inv = _unique_rows(allpat)
        return cls(
            categories=cats, **sums,
            tested=sum(int(p.tested) for p in parts), passed=sum(int(p.passed) for p in parts),
            dirty=sum(int(p.dirty) for p in parts), dirty_passed=sum(int(p.dirty_passed) for p in parts),
            patterns=upat.reshape(len(upat), n_c).astype(np.int64),
            pattern_dies=np.bincount(inv, weights=np.concatenate(n_pat).astype(np.float64),
                                     minlength=len(upat)).round().astype(np.int64),
            pattern_passed=np.bincount(inv, weights=np.concatenate(g_pat).astype(np.float64),
                                       minlength=len(upat)).round().astype(np.int64),
            n_off_die=sum(int(p.n_off_die) for p in parts), n_untested=sum(int(p.n_untested) for p in parts),
        )


def _unique_rows(m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(m, axis=0, return_inverse=True)`` of a non-negative int64 matrix, by one int64
    key per row (mixed radix, first column most significant: the same lexicographic order) when
    the keys fit; much faster than sorting rows."""
    n, c = m.shape
    if n == 0 or c == 0:
        u, inv = np.unique(m, axis=0, return_inverse=True) if n else (np.zeros((0, c), np.int64), np.zeros(0, np.int64))
        return u.reshape(len(u), c), np.asarray(inv).ravel()
    base = m.max(axis=0).astype(np.int64) + 1
    if float(np.prod(base.astype(np.float64))) >= 2.0**62:
        u, inv = np.unique(m, axis=0, return_inverse=True)
        return u.reshape(len(u), c), np.asarray(inv).ravel()
    place = np.ones(c, np.int64)
    for j in range(c - 2, -1, -1):
        place[j] = place[j + 1] * base[j + 1]
    key = m @ place
    ukey, inv = np.unique(key, return_inverse=True)
    u = (ukey[:, None] // place[None, :]) % base[None, :]
    return u.astype(np.int64), np.asarray(inv).ravel()


def kill_ratio_stats(dies: pd.DataFrame, defects: pd.DataFrame, *, by: str = "defect_class") -> KillRatioStats:
    """The sufficient statistics of :func:`kill_ratio`: contingency counts per category and the
    table of distinct per-die count patterns with their die and pass counts.

    Parameters are those of :func:`kill_ratio`. The work and the result grow with the defects
    and the distinct patterns, not with the dies (no per-die count matrix is built).
    """
    need = ["lot_id", "wafer_id", "die_x", "die_y", "passed", "test_seq"]
    if set(need[:5]) <= set(dies.columns):
        # only the columns the matching needs (no copy of the others, even when retests are dropped)
        dies = dies[[c for c in need if c in dies.columns]]
    dd = die_defects(dies, defects, by=by)
    n_c = len(dd.categories)
    cc = contingency_counts(dd.die, dd.category, np.zeros(len(dd.die), np.int64), dd.passed, 1, n_c,
                            np.array([len(dd.dies)]), np.array([int(dd.passed.sum())]))
    # the count pattern of every die with a defect: (die, category) cells, then one row per die
    cell, n_cell = np.unique(dd.die * n_c + dd.category, return_counts=True)
    dirty, row = np.unique(cell // max(n_c, 1), return_inverse=True)
    wide = np.zeros((len(dirty), n_c), np.int64)
    wide[row.ravel(), cell % max(n_c, 1)] = n_cell
    pat, inv = _unique_rows(wide)
    p_dirty = dd.passed[dirty]
    n_passed = int(dd.passed.sum())
    return KillRatioStats(
        categories=dd.categories,
        defects=np.bincount(dd.category, minlength=n_c).astype(np.int64),
        affected=cc["affected"][0].astype(np.int64),
        pure=cc["pure"][0].astype(np.int64),
        pure_passed=cc["pure_passed"][0].astype(np.int64),
        tested=len(dd.dies), passed=n_passed, dirty=len(dirty), dirty_passed=int(p_dirty.sum()),
        patterns=pat.reshape(len(pat), n_c).astype(np.int64),
        pattern_dies=np.bincount(inv, minlength=len(pat)).astype(np.int64),
        pattern_passed=np.bincount(inv, weights=p_dirty.astype(np.float64), minlength=len(pat)).round().astype(np.int64),
        n_off_die=dd.n_off_die, n_untested=dd.n_untested,
    )


def kill_ratio(
    dies: pd.DataFrame,
    defects: pd.DataFrame,
    *,
    by: str = "defect_class",
    method: str = "both",
    interval: str = "wilson",
    conf_level: float = 0.95,
    capture_rate: float | Mapping[str, float] | None = None,
) -> KillRatioResult:
    """Kill ratio and defect-limited yield of each defect class.

    Parameters
    ----------
    dies : DataFrame
        Canonical die table; final results count.
    defects : DataFrame
        Canonical defect table with ``die_x``/``die_y``.
    by : str
        Category column of the defect table (default ``defect_class``).
    method : {"both", "contingency", "joint"}
        Which estimators to report.
    interval : {"wilson", "clopper-pearson"}
        Interval of the defective-die yield behind the contingency kill ratio.
    conf_level : float
        Confidence level of all intervals.
    capture_rate : float or mapping, optional
        Share of the class's defects the inspection captures (0, 1], one value or per class;
        adds the corrected fraction affected and limited yield.

    Returns
    -------
    KillRatioResult
        ``.table`` has one row per category, by decreasing yield loss: ``category``, ``defects``,
        ``dies_affected``, ``fraction_affected`` ``f``, ``pure_dies``, ``pure_passed``,
        ``y_defective``, ``y_clean``, ``kill_ratio_raw``, ``kill_ratio`` (clipped to [0, 1]),
        ``kr_ci_lower``, ``kr_ci_upper``, ``limited_yield`` (``1 - KR * f``), ``yield_loss``;
        with the joint estimate ``kill_prob``, ``kill_prob_ci_lower``, ``kill_prob_ci_upper``,
        ``joint_limited_yield`` (mean over dies of ``(1 - k)^n``); with ``capture_rate`` also
        ``capture_rate``, ``fraction_affected_corrected``, ``limited_yield_corrected``.
        Beside it: ``tested_dies``, ``defects_off_die``, ``defects_on_untested_dies`` and, with
        the joint estimate, ``y_clean_joint`` and ``y_clean_joint_ci``.

    Raises
    ------
    SchemaError
        A table lacks a needed column.
    YieldkitValueError
        A bad option or capture rate.

    Notes
    -----
    Contingency: with ``n_c`` dies whose defects are all of class c (``g_c`` of them pass) and
    ``n_0`` defect-free dies (``g_0`` pass), ``KR_c = 1 - (g_c/n_c) / (g_0/n_0)``; its interval
    maps the Wilson (or Clopper-Pearson) interval of ``g_c/n_c`` through the formula, treating
    ``Y_clean`` as known (defect-free dies are usually far more numerous). ``KR`` is a per-die
    quantity (a die may carry several defects of the class), the joint ``k`` a per-defect one:
    for dies with one defect they agree. Capture-rate correction assumes Poisson counts per
    die, ``f_true = 1 - (1 - f)^(1/r)``.

    Examples
    --------
    >>> import yieldkit as yk
    >>> fab = yk.simulate_fab(n_lots=1, wafers_per_lot=5, random_state=3)
    >>> kr = yk.kill_ratio(fab.dies, fab.defects).table
    >>> bool(((kr["limited_yield"] - (1 - kr["kill_ratio"] * kr["fraction_affected"])).abs() < 1e-12).all())
    True
    """
    check_choice(method, ("both", "contingency", "joint"), name="method", where="kill_ratio")
    check_choice(interval, tuple(_INTERVALS), name="interval", where="kill_ratio")
    st = kill_ratio_stats(dies, defects, by=by)
    return _kill_ratio_result(st, method=method, interval=interval, conf_level=conf_level, capture_rate=capture_rate)


def _kill_ratio_result(st: KillRatioStats, *, method: str, interval: str, conf_level: float,
                       capture_rate: float | Mapping[str, float] | None) -> KillRatioResult:
    """The :func:`kill_ratio` result from its sufficient statistics."""
    joint: dict[str, Any] = {}
    n_d, n_c = st.tested, len(st.categories)
    clean, clean_passed = st.tested - st.dirty, st.passed - st.dirty_passed
    out = pd.DataFrame({"category": pd.array(st.categories, dtype=STRING)})
    out["defects"] = st.defects
    out["dies_affected"] = st.affected
    out["fraction_affected"] = st.affected / n_d
    out["pure_dies"] = st.pure
    out["pure_passed"] = st.pure_passed
    kr = contingency_kill_ratio(st.pure, st.pure_passed, np.repeat(clean, n_c), np.repeat(clean_passed, n_c),
                                interval=interval, conf_level=conf_level, stacklevel=4)
    out["y_defective"] = kr["y_defective"]
    out["y_clean"] = kr["y_clean"]
    out["kill_ratio_raw"] = kr["kill_ratio_raw"]
    out["kill_ratio"] = kr["kill_ratio"]
    out["kr_ci_lower"] = kr["ci_lower"]
    out["kr_ci_upper"] = kr["ci_upper"]
    out["limited_yield"] = 1.0 - out["kill_ratio"] * out["fraction_affected"]
    out["yield_loss"] = 1.0 - out["limited_yield"]
    if method in ("both", "joint"):
        pat, n_pat, g_pat = st.pattern_table()
        j = joint_kill_ratio_patterns(pat, n_pat, g_pat, conf_level=conf_level, stacklevel=4)
        out["kill_prob"] = j["kill_prob"]
        out["kill_prob_ci_lower"] = j["ci_lower"]
        out["kill_prob_ci_upper"] = j["ci_upper"]
        # mean over dies of (1 - k)^n, one term per distinct pattern
        out["joint_limited_yield"] = ((n_pat.astype(np.float64) @ np.power(1.0 - j["kill_prob"][None, :], pat)) / n_d
                                      if n_d else np.nan)
        joint = {"y_clean_joint": j["y_clean"], "y_clean_joint_ci": j["y_clean_ci"]}
    if method == "joint":
        out = out.drop(columns=["pure_dies", "pure_passed", "y_defective", "kill_ratio_raw", "kill_ratio",
                                "kr_ci_lower", "kr_ci_upper", "limited_yield", "yield_loss"])
    if capture_rate is not None:
        if isinstance(capture_rate, Mapping):
            r = np.array([float(capture_rate.get(str(c), 1.0)) for c in st.categories])
        else:
            r = np.full(n_c, float(capture_rate))
        if np.any(~(r > 0) | (r > 1)):
            raise YieldkitValueError(f"The 'capture_rate' argument of kill_ratio must be in (0, 1]. Got {capture_rate!r} instead.")
        out["capture_rate"] = r
        out["fraction_affected_corrected"] = -np.expm1(np.log1p(-out["fraction_affected"].to_numpy()) / r)
        if "kill_ratio" in out.columns:
            out["limited_yield_corrected"] = 1.0 - out["kill_ratio"] * out["fraction_affected_corrected"]
    sort_col = "yield_loss" if "yield_loss" in out.columns else "kill_prob"
    out = out.sort_values([sort_col, "defects"], ascending=False, kind="stable", na_position="last")
    return KillRatioResult(out.reset_index(drop=True), tested_dies=n_d, defects_off_die=st.n_off_die,
                           defects_on_untested_dies=st.n_untested, **joint)
