"""Yield-loss budget: where the lost yield went, impact Pareto and entitlement.

The die yield is split into multiplicative components,

``Y = Y0 * prod_i Y_i * prod_b Y_b * Y_rest``,

with ``Y0`` the systematic yield (window method, or given), ``Y_i`` the defect-limited yield of
each defect category (layer and class) from the joint kill-ratio model, ``Y_b`` the yield of
each parametric test bin (the pass rate of the dies that reached it, in test order) and
``Y_rest`` the unexplained remainder (``Y`` over the product of the others: undetected defects,
overlap of clustered components, misfit). The loss ``1 - Y`` is allocated by log share,

``L_c = (1 - Y) * log(Y_c) / log(Y)``,

so the losses add up to ``1 - Y`` exactly whatever the order of the components. The sequential
waterfall (each component removing its share of what the earlier ones left) also adds up to
``1 - Y``, but its split depends on the order: :func:`sequential_waterfall` says so in its
output.

Glossary
--------
component
    One factor of the budget: ``systematic``, ``<layer> / <class>``, ``bin <b>`` or ``remainder``.
limited yield ``Y_c``
    The yield the component alone would leave.
entitlement
    The yield the process should reach: a high percentile of its wafers, or the model yield
    without the defect components.

References
----------
Stapper, C. H. & Rosner, R. J. (1995). Integrated circuit yield management and yield analysis:
development and implementation. IEEE Trans. Semicond. Manuf. 8(2), 95-102. doi:10.1109/66.382272
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from .errors import BoundaryWarning, SchemaError, YieldkitValueError, check_choice
from .intervals import wilson
from .killratio import die_defects, joint_kill_ratio_patterns
from .results import TableResult
from .schema import STRING
from .yields import final_results

log = logging.getLogger(__name__)

__all__ = [
    "FIT",
    "BudgetStatistics",
    "Entitlement",
    "YieldBudget",
    "budget_from_statistics",
    "budget_statistics",
    "combine_statistics",
    "die_category_counts",
    "entitlement",
    "impact_pareto",
    "sequential_waterfall",
    "statistics_from_counts",
    "yield_budget",
    "yield_budget_dask",
]

#: ``systematic=FIT``: estimate Y0 by the window method.
FIT = "fit"
_SEP = "\x1f"
_KINDS = ("systematic", "defect", "parametric", "remainder")


@dataclass(frozen=True)
class BudgetStatistics:
    """Sufficient statistics of a yield budget (small: per count pattern and per bin).

    Attributes
    ----------
    categories : ndarray of str
        Defect categories (the ``by`` columns joined), sorted.
    patterns : ndarray of int, shape (n_rows, n_categories)
        Distinct per-die defect counts of each wafer (the all-zero pattern included).
    n, good : ndarray
        Dies and passing dies of the wafer with the pattern.
    wafer : ndarray of str
        The wafer of each row (``lot_id`` and ``wafer_id`` joined).
    bins : DataFrame
        ``wafer``, ``hbin``, ``n``: final dies per wafer and hard bin.
    by : tuple of str
        The category columns.
    """

    categories: np.ndarray
    patterns: np.ndarray
    n: np.ndarray
    good: np.ndarray
    wafer: np.ndarray
    bins: pd.DataFrame
    by: tuple[str, ...]

    @property
    def tested(self) -> int:
        return int(self.n.sum())

    @property
    def passed(self) -> int:
        return int(self.good.sum())


@dataclass(frozen=True, repr=False)
class YieldBudget(TableResult):
    """Yield-loss budget (from :func:`yield_budget`).

    Attributes
    ----------
    table : DataFrame
        One row per component: ``component``, ``kind`` (systematic, defect, parametric,
        remainder), the ``by`` columns (defect components), ``hbin`` (parametric), ``yield``
        (limited yield ``Y_c``), ``ci_lower``, ``ci_upper``, ``loss`` (log-share allocation of
        ``1 - Y``), ``share`` (of the loss); ``loss`` adds up to ``1 - Y``.
    observed_yield : float
        ``Y``: passing over tested dies (final results).
    tested_dies, good_dies : int
    conf_level : float
    y_clean : float
        Yield of a die without detected defects (joint model; NaN without defects).
    """

    table: pd.DataFrame
    observed_yield: float
    tested_dies: int
    good_dies: int
    conf_level: float
    y_clean: float = float("nan")

    def __repr__(self) -> str:
        return (f"YieldBudget(Y={self.observed_yield:.4g}, components={len(self.table)}, "
                f"tested_dies={self.tested_dies})")


def _combined(table: pd.DataFrame, by: Sequence[str], where: str) -> pd.Series:
    parts = []
    for col in by:
        if col not in table.columns:
            raise SchemaError(f"{where}: the 'by' column {col!r} is not in the defect table; columns are "
                              f"{list(table.columns)}.", column=col)
        s = table[col]
        if col == "defect_class":
            s = s.fillna("unclassified")
        parts.append(s.astype(str))
    out = parts[0]
    for p in parts[1:]:
        out = out + _SEP + p
    return out.astype(STRING)


def budget_statistics(
    dies: pd.DataFrame,
    defects: pd.DataFrame | None = None,
    *,
    by: Sequence[str] = ("layer", "defect_class"),
) -> BudgetStatistics:
    """The sufficient statistics of :func:`yield_budget` for one table (or one partition).

    Parameters
    ----------
    dies : DataFrame
        Canonical die table.
    defects : DataFrame, optional
        Defects with ``die_x``/``die_y``; with ``is_adder`` (from
        :func:`~yieldkit.inspection.match_steps`) only adders count.
    by : sequence of str
        Category columns of the defect components.

    Returns
    -------
    BudgetStatistics
    """
    where = "yield_budget"
    by = tuple(by)
    final = final_results(dies)
    if defects is None or len(defects) == 0:
        return _statistics(final, np.zeros(0, dtype=object), np.zeros((len(final), 0), np.int64), by)
    d = defects
    if "is_adder" in d.columns:
        d = d[d["is_adder"].to_numpy(dtype=bool)]
    d = d.assign(_category=_combined(d, by, where))
    dd = die_defects(final, d, by="_category")
    return _statistics(dd.dies, dd.categories, dd.counts(), by)


def _statistics(final: pd.DataFrame, cats: np.ndarray, counts: np.ndarray, by: tuple[str, ...]) -> BudgetStatistics:
    """Pattern statistics per wafer of final die results and their (n_dies, n_categories) defect counts."""
    from ._keys import wafer_codes

    codes, wafers = wafer_codes(final)
    keys = (wafers["lot_id"].astype(str) + _SEP + wafers["wafer_id"].astype(str)).to_numpy(object)
    die_wafer = keys[codes] if len(final) else np.zeros(0, dtype=object)
    if "hbin" in final.columns:
        bins = pd.DataFrame({"wafer": die_wafer, "hbin": final["hbin"].to_numpy(np.int64)})
        bins = bins.groupby(["wafer", "hbin"], sort=True).size().rename("n").reset_index()
    else:
        bins = pd.DataFrame({"wafer": np.zeros(0, dtype=object), "hbin": np.zeros(0, np.int64),
                             "n": np.zeros(0, np.int64)})
    passed = final["passed"].to_numpy(bool)
    keep = counts.sum(axis=0) > 0  # categories seen on tested dies only
    cats, counts = np.asarray(cats, dtype=object)[keep], counts[:, keep]
    rows = np.column_stack([np.asarray(codes, np.int64), counts]) if len(final) else np.zeros((0, 1 + len(cats)), np.int64)
    pat, inv = np.unique(rows, axis=0, return_inverse=True)
    inv = inv.ravel()
    n = np.bincount(inv, minlength=len(pat)).astype(np.int64)
    good = np.bincount(inv, weights=passed.astype(float), minlength=len(pat)).round().astype(np.int64)
    return _canonical(cats, keys[pat[:, 0]] if len(pat) else np.zeros(0, dtype=object),
                      pat[:, 1:].astype(np.int64).reshape(len(pat), len(cats)), n, good, bins, by)


def _canonical(cats: np.ndarray, wafer: np.ndarray, pat: np.ndarray, n: np.ndarray, good: np.ndarray,
               bins: pd.DataFrame, by: tuple[str, ...]) -> BudgetStatistics:
    """Rows sorted by wafer, then pattern: the same statistics give the same arrays however computed."""
    w_codes, w_uniq = pd.factorize(pd.Series(wafer, dtype=object), sort=True)
    order = np.lexsort(tuple(pat[:, k] for k in range(pat.shape[1] - 1, -1, -1)) + (w_codes,)) if len(pat) \
        else np.zeros(0, np.int64)
    bins = bins.sort_values(["wafer", "hbin"], kind="stable").reset_index(drop=True)
    return BudgetStatistics(categories=np.asarray(cats, dtype=object), patterns=pat[order], n=n[order],
                            good=good[order], wafer=np.asarray(wafer, dtype=object)[order], bins=bins, by=by)


def die_category_counts(defects: pd.DataFrame, *, by: Sequence[str] = ("layer", "defect_class")) -> pd.DataFrame:
    """Defects per die and category (adders only when ``is_adder`` is present): ``lot_id``,
    ``wafer_id``, ``die_x``, ``die_y``, ``category``, ``n``; the defect side of a budget's statistics."""
    d = defects
    if "is_adder" in d.columns:
        d = d[d["is_adder"].to_numpy(dtype=bool)]
    d = d[d["die_x"].notna().to_numpy() & d["die_y"].notna().to_numpy()]
    t = pd.DataFrame({"lot_id": d["lot_id"].astype(str).to_numpy(object), "wafer_id": d["wafer_id"].astype(str).to_numpy(object),
                      "die_x": d["die_x"].to_numpy(np.int64), "die_y": d["die_y"].to_numpy(np.int64),
                      "category": _combined(d, tuple(by), "yield_budget").astype(str).to_numpy(object)})
    return t.groupby(["lot_id", "wafer_id", "die_x", "die_y", "category"], sort=False).size().rename("n").reset_index()


def statistics_from_counts(dies: pd.DataFrame, counts: pd.DataFrame, *, by: Sequence[str]) -> BudgetStatistics:
    """:func:`budget_statistics` from a die table and :func:`die_category_counts` of its defects
    (counts of wafers not in ``dies`` are ignored)."""
    final = final_results(dies)
    cats = np.asarray(sorted(pd.unique(counts["category"].astype(str))), dtype=object)
    mat = np.zeros((len(final), len(cats)), np.int64)
    if len(final) and len(counts):
        keys = pd.MultiIndex.from_arrays([final["lot_id"].astype(str).to_numpy(object),
                                          final["wafer_id"].astype(str).to_numpy(object),
                                          final["die_x"].to_numpy(np.int64), final["die_y"].to_numpy(np.int64)])
        q = pd.MultiIndex.from_arrays([counts["lot_id"].to_numpy(object), counts["wafer_id"].to_numpy(object),
                                       counts["die_x"].to_numpy(np.int64), counts["die_y"].to_numpy(np.int64)])
        row = keys.get_indexer(q)
        col = pd.Index(cats).get_indexer(counts["category"].astype(str).to_numpy(object))
        hit = row >= 0
        np.add.at(mat, (row[hit], col[hit]), counts["n"].to_numpy(np.int64)[hit])
    return _statistics(final, cats, mat, tuple(by))


def combine_statistics(parts: Iterable[BudgetStatistics]) -> BudgetStatistics:
    """Statistics of disjoint sets of wafers added together (e.g. the partitions of a Dask frame)."""
    parts = list(parts)
    if not parts:
        raise YieldkitValueError("combine_statistics needs at least one BudgetStatistics.")
    by = parts[0].by
    cats = np.asarray(sorted({str(c) for p in parts for c in p.categories}), dtype=object)
    index = pd.Index(cats)
    mats: list[np.ndarray] = []
    ns: list[np.ndarray] = []
    gs: list[np.ndarray] = []
    for p in parts:
        m = np.zeros((len(p.patterns), len(cats)), np.int64)
        if len(p.categories):
            m[:, index.get_indexer(p.categories.astype(str))] = p.patterns
        mats.append(m)
        ns.append(p.n)
        gs.append(p.good)
    allm = np.vstack(mats) if mats else np.zeros((0, len(cats)), np.int64)
    wafer = np.concatenate([p.wafer for p in parts]).astype(object)
    if len(set(wafer)) != len(set().union(*[set(p.wafer) for p in parts])) or \
            sum(len(set(p.wafer)) for p in parts) != len(set(wafer)):
        raise YieldkitValueError("combine_statistics: a wafer appears in several parts; partition the tables by wafer.")
    bins = pd.concat([p.bins for p in parts], ignore_index=True)
    return _canonical(cats, wafer, allm, np.concatenate(ns), np.concatenate(gs), bins, by)


def _fit_y0(dies: pd.DataFrame, area: float, conf_level: float, random_state: Any) -> tuple[float, float, float]:
    from .models import NegativeBinomialYield

    with warnings.catch_warnings():
        # no clustering is an ordinary outcome here: Y0 is what the budget needs
        warnings.simplefilter("ignore", BoundaryWarning)
        m = NegativeBinomialYield(conf_level=conf_level, random_state=random_state).fit_window(dies, area)
    s = m.summary()
    row = s.loc["y0"]
    return float(row["estimate"]), float(row["ci_lower"]), float(row["ci_upper"])


def _systematic(systematic: Any, dies: pd.DataFrame | None, area: float | None, conf_level: float,
                random_state: Any, where: str) -> tuple[float, float, float] | None:
    if systematic is None:
        return None
    if isinstance(systematic, str):
        check_choice(systematic, (FIT,), name="systematic", where=where)
        if dies is None:
            raise YieldkitValueError(f"{where}: systematic='fit' needs the die table; pass the systematic yield "
                                     "as a number instead.")
        if area is None or not area > 0:
            raise YieldkitValueError(f"{where}: systematic='fit' (the window method) needs the die area: pass "
                                     "die_area_cm2= or layout=, or give systematic as a number or None.")
        return _fit_y0(dies, area, conf_level, random_state)
    if hasattr(systematic, "y0_"):
        s = systematic.summary()
        if "y0" in s.index:
            r = s.loc["y0"]
            return float(r["estimate"]), float(r["ci_lower"]), float(r["ci_upper"])
        return float(systematic.y0_), float("nan"), float("nan")
    try:
        v = float(systematic)
    except (TypeError, ValueError):
        v = float("nan")
    if not (0 < v <= 1):
        raise YieldkitValueError(f"The 'systematic' argument of {where} must be 'fit', a yield in (0, 1], a fitted "
                                 f"yield model or None. Got {systematic!r} instead.")
    return v, float("nan"), float("nan")


def _mean_variance(dev: np.ndarray, dev2: np.ndarray, wafer: np.ndarray, n_w: int, n_tot: float) -> float:
    """Variance of a mean over ``n_tot`` dies from row deviations ``dev`` (summed: n * (w - mean))
    and squared deviations ``dev2``: the larger of the die-level and the wafer-clustered estimates."""
    die = float(dev2.sum()) / (n_tot * n_tot)
    if n_w < 2:
        return die
    s_w = np.bincount(wafer, weights=dev, minlength=n_w)
    clustered = float(s_w @ s_w) / (n_tot * n_tot) * n_w / (n_w - 1)
    return max(die, clustered)


def _cluster_cov(j: dict[str, Any], st: BudgetStatistics, wafer: np.ndarray, n_w: int) -> np.ndarray:
    """Covariance of ``(log Y_clean, log(1 - k_c))``: the larger (per diagonal) of the model-based
    one and the wafer-clustered sandwich ``H^-1 (sum_w s_w s_w') H^-1``."""
    theta = np.r_[math.log(max(j["y_clean"], 1e-300)), np.log1p(-np.minimum(j["kill_prob"], 1.0 - 1e-15))]
    x = np.column_stack([np.ones(len(st.n)), st.patterns.astype(float)])
    eta = np.minimum(x @ theta, -1e-12)
    f = st.n - st.good
    cov = np.asarray(j["cov"], dtype=float)
    if not np.all(np.isfinite(cov)):
        # a category at a bound (k = 0 or 1) makes the information singular: the pseudo-inverse keeps
        # the others' variances (the bound category's own is then meaningless, and shown as such)
        p = np.exp(eta)
        info = x.T @ (x * (f * p / (1.0 - p) ** 2)[:, None])
        cov = np.linalg.pinv(info)
    if n_w < 2:
        return cov
    r = st.good - f * np.exp(eta) / -np.expm1(eta)  # d loglik / d eta per row
    scores = np.column_stack([np.bincount(wafer, weights=x[:, k] * r, minlength=n_w) for k in range(x.shape[1])])
    meat = scores.T @ scores * n_w / (n_w - 1)
    sandwich = cov @ meat @ cov
    out = cov.copy()
    d = np.maximum(np.diag(cov), np.diag(sandwich))
    np.fill_diagonal(out, d)
    return out


def budget_from_statistics(
    st: BudgetStatistics,
    *,
    systematic: tuple[float, float, float] | None = None,
    parametric_bins: Sequence[int] = (),
    conf_level: float = 0.95,
) -> YieldBudget:
    """The yield budget from its sufficient statistics and the systematic yield.

    Parameters
    ----------
    st : BudgetStatistics
        From :func:`budget_statistics` (or :func:`combine_statistics`).
    systematic : (float, float, float), optional
        ``Y0`` and its interval (NaN when unknown); None: no systematic component.
    parametric_bins : sequence of int
        Parametric hard bins in test order.
    conf_level : float
        Confidence level.

    Returns
    -------
    YieldBudget
    """
    where = "yield_budget"
    if not 0 < conf_level < 1:
        raise YieldkitValueError(f"The 'conf_level' argument of {where} must be in (0, 1). Got {conf_level!r} instead.")
    z = float(stats.norm.ppf(0.5 + conf_level / 2))
    n_tot, g_tot = st.tested, st.passed
    if n_tot == 0:
        raise YieldkitValueError(f"{where}: the die table has no tested dies.")
    y = g_tot / n_tot
    rows: list[dict[str, Any]] = []
    log_var: list[float] = []
    if systematic is not None:
        y0, lo, hi = systematic
        rows.append({"component": "systematic", "kind": "systematic", "yield": y0, "ci_lower": lo, "ci_upper": hi})
        log_var.append(((math.log(hi) - math.log(lo)) / (2 * z)) ** 2 if lo > 0 and hi > 0 else 0.0)
    y_clean = float("nan")
    n_c = len(st.categories)
    w_code, w_uniq = pd.factorize(pd.Series(st.wafer, dtype=object), sort=True)
    n_w = len(w_uniq)
    if n_c:
        pat, inv = np.unique(st.patterns, axis=0, return_inverse=True)  # pooled over wafers for the fit
        inv = inv.ravel()
        n_p = np.bincount(inv, weights=st.n.astype(float), minlength=len(pat))
        g_p = np.bincount(inv, weights=st.good.astype(float), minlength=len(pat))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            j = joint_kill_ratio_patterns(pat, n_p, g_p, conf_level=conf_level)
        y_clean = float(j["y_clean"])
        b = np.log1p(-np.minimum(j["kill_prob"], 1.0 - 1e-15))
        cov_b = _cluster_cov(j, st, w_code, n_w)[1:, 1:]
        parts = pd.DataFrame([str(c).split(_SEP) for c in st.categories], columns=list(st.by))
        nf = st.n.astype(float)
        for c in range(n_c):  # one row per category: the dies are arrays
            w = np.exp(st.patterns[:, c] * b[c])
            yc = float(nf @ w / n_tot)
            grad = float((nf * w) @ st.patterns[:, c] / (nf @ w))
            samp = _mean_variance(nf * (w - yc), nf * (w - yc) ** 2, w_code, n_w, n_tot) / (yc * yc)
            v = grad * grad * max(float(cov_b[c, c]), 0.0) + samp
            se = math.sqrt(v) if np.isfinite(v) else float("nan")
            rows.append({"component": " / ".join(parts.iloc[c].tolist()), "kind": "defect",
                         **{k: parts.iloc[c][k] for k in st.by},
                         "yield": yc, "ci_lower": yc * math.exp(-z * se), "ci_upper": min(yc * math.exp(z * se), 1.0)})
            log_var.append(v)
    if parametric_bins:
        bw = st.bins.assign(w=pd.Index(w_uniq).get_indexer(st.bins["wafer"]))
        bw = bw[bw["w"] >= 0]
        listed = [int(b_) for b_ in parametric_bins]
        per = np.column_stack([np.bincount(bw.loc[bw["hbin"] == b_, "w"], weights=bw.loc[bw["hbin"] == b_, "n"],
                                           minlength=n_w) for b_ in listed]) if n_w else np.zeros((0, len(listed)))
        reach_w = np.asarray(np.bincount(w_code, weights=st.n.astype(float), minlength=n_w), dtype=float)
        for k, b_ in enumerate(listed):
            nb_w = per[:, k]
            reach, nb = float(reach_w.sum()), float(nb_w.sum())
            yb = 1.0 - nb / reach if reach > 0 else float("nan")
            # Wilson for the proportion, widened on the log scale when wafers vary more than binomially
            w_lo, w_hi = wilson(np.array([reach - nb]), np.array([reach]), conf_level)
            v_bin = nb / (reach * (reach - nb)) if reach > nb else float("nan")
            resid = (reach_w - nb_w) - yb * reach_w  # per wafer: passes less the expected passes
            v_clu = float(resid @ resid) / (reach * reach) * n_w / (n_w - 1) / (yb * yb) \
                if yb > 0 and n_w >= 2 and reach > 0 else float("nan")
            widen = math.sqrt(v_clu / v_bin) if np.isfinite(v_clu) and v_bin > 0 and v_clu > v_bin else 1.0
            lo_b = yb * (float(w_lo[0]) / yb) ** widen if yb > 0 else float(w_lo[0])
            hi_b = min(yb * (float(w_hi[0]) / yb) ** widen, 1.0) if yb > 0 else float(w_hi[0])
            rows.append({"component": f"bin {b_}", "kind": "parametric", "hbin": b_, "yield": yb,
                         "ci_lower": lo_b, "ci_upper": hi_b})
            log_var.append(max(v_bin, v_clu) if np.isfinite(v_clu) else v_bin)
            reach_w = reach_w - nb_w
    table = pd.DataFrame(rows)
    for col in ("component", "kind", "yield", "ci_lower", "ci_upper", *st.by, "hbin"):
        if col not in table.columns:
            table[col] = pd.Series(dtype="float64" if col not in ("component", "kind", *st.by) else object)
    log_y = math.log(y) if y > 0 else -math.inf
    log_rest = log_y - float(np.log(table["yield"].to_numpy(float)).sum()) if len(table) else log_y
    var_rest = (1 - y) / (n_tot * y) + float(np.nansum(log_var)) if y > 0 else float("nan")
    se_r = math.sqrt(var_rest) if np.isfinite(var_rest) else float("nan")
    y_rest = math.exp(log_rest)
    rest = {"component": "remainder", "kind": "remainder", "yield": y_rest,
            "ci_lower": y_rest * math.exp(-z * se_r), "ci_upper": y_rest * math.exp(z * se_r)}
    table = pd.concat([table, pd.DataFrame([rest])], ignore_index=True)
    logs = np.log(table["yield"].to_numpy(float))
    total = float(logs.sum())  # equals log Y up to rounding, by construction of the remainder
    with np.errstate(invalid="ignore", divide="ignore"):
        share = logs / total if total != 0 else np.zeros(len(logs))
    table["loss"] = (1.0 - y) * share + 0.0  # no negative zero for a lossless component
    table["share"] = share
    table["hbin"] = pd.array(table["hbin"], dtype="Int64")
    table["component"] = pd.array(table["component"].astype(str).to_numpy(object), dtype=STRING)
    table["kind"] = pd.array(table["kind"].astype(str).to_numpy(object), dtype=STRING)
    for col in st.by:
        table[col] = pd.array(table[col].to_numpy(object), dtype=STRING)
    cols = ["component", "kind", *st.by, "hbin", "yield", "ci_lower", "ci_upper", "loss", "share"]
    return YieldBudget(table=table[cols], observed_yield=y, tested_dies=n_tot, good_dies=g_tot,
                       conf_level=conf_level, y_clean=y_clean)


def yield_budget(
    dies: pd.DataFrame,
    defects: pd.DataFrame | None = None,
    *,
    systematic: Any = FIT,
    by: Sequence[str] = ("layer", "defect_class"),
    parametric_bins: Sequence[int] = (),
    die_area_cm2: float | None = None,
    layout: Any = None,
    conf_level: float = 0.95,
    random_state: Any = None,
) -> YieldBudget:
    """Split the yield loss ``1 - Y`` into systematic, defect, parametric and remainder components.

    Parameters
    ----------
    dies : DataFrame
        Canonical die table (final results count).
    defects : DataFrame, optional
        Defects with die positions; the output of :func:`~yieldkit.inspection.match_steps` keeps
        its adders only (each physical defect once, at its source step).
    systematic : "fit", float, fitted yield model or None
        ``"fit"`` (:data:`FIT`): ``Y0`` of a negative-binomial window-method fit
        (:meth:`~yieldkit.NegativeBinomialYield.fit_window`, wafer-bootstrap interval); a number:
        a known ``Y0``; a fitted model: its ``y0_``; None: no systematic component.
    by : sequence of str
        Category columns of the defect components (default layer and class).
    parametric_bins : sequence of int
        Parametric hard bins in test order: ``Y_b`` is the pass rate of the dies that reached
        bin ``b``'s test (not failed in an earlier listed bin).
    die_area_cm2 : float, optional
        Die area [cm^2] for the window method (default from ``layout``).
    layout : WaferLayout, optional
        Gives the die area.
    conf_level : float
        Confidence level of the intervals.
    random_state : int, optional
        Seed of the window method's bootstrap.

    Returns
    -------
    YieldBudget

    Raises
    ------
    SchemaError
        A needed column is missing.
    YieldkitValueError
        A bad option, or ``systematic="fit"`` without a die area.

    Notes
    -----
    Defect components: the joint kill model ``P(pass) = Y_clean * prod_c (1 - k_c)^{n_c}``
    gives ``Y_c = mean_d (1 - k_c)^{n_dc}``. Intervals are normal on the log scale: for defect
    components the delta method on ``log(1 - k_c)`` plus the sampling variance of the mean over
    dies, each the larger of the model-based (dies independent) and the wafer-clustered
    (sandwich over wafers) estimate, so that densities varying from wafer to wafer widen them;
    Wilson for bins (widened likewise when wafers vary more than binomially); the window
    bootstrap for ``Y0``; for the remainder the variances of ``log Y`` and of the other
    components added (covariances neglected). ``Y_rest > 1`` (a negative loss) means the components overlap, e.g. defect
    classes clustered on the same wafers.

    Examples
    --------
    >>> from yieldkit.budget import yield_budget
    >>> from yieldkit.inspection import match_steps, simulate_inspections
    >>> fab = simulate_inspections(n_lots=1, wafers_per_lot=4, random_state=5)
    >>> adders = match_steps(fab.defects, order=fab.steps).table   # each defect once, at its source step
    >>> b = yield_budget(fab.dies, adders, systematic=0.97, parametric_bins=[6, 7])
    >>> bool(abs(b.table["loss"].sum() - (1 - b.observed_yield)) < 1e-12)
    True
    """
    where = "yield_budget"
    area = die_area_cm2 if die_area_cm2 is not None else (layout.die_area_cm2 if layout is not None else None)
    sysy = _systematic(systematic, dies, area, conf_level, random_state, where)
    st = budget_statistics(dies, defects, by=by)
    return budget_from_statistics(st, systematic=sysy, parametric_bins=[int(b) for b in parametric_bins],
                                  conf_level=conf_level)


def _table_of(budget: YieldBudget | pd.DataFrame) -> pd.DataFrame:
    return budget.table if isinstance(budget, YieldBudget) else budget


def sequential_waterfall(budget: YieldBudget | pd.DataFrame, order: Sequence[str] | None = None) -> pd.DataFrame:
    """The sequential waterfall of a budget: each component removes its share of what is left.

    The losses add up to ``1 - Y`` like the log-share allocation, but each component's loss
    depends on the ORDER of the components (a component late in the order loses less); the
    output's ``method`` column says so.

    Parameters
    ----------
    budget : YieldBudget or its table
    order : sequence of str, optional
        Component names in order (default the table's order); components left out follow.

    Returns
    -------
    DataFrame
        ``component``, ``yield``, ``yield_before``, ``yield_after``, ``loss``, ``method``
        (``"sequential (order-dependent)"``).
    """
    t = _table_of(budget)
    names = t["component"].astype(str).tolist()
    if order is not None:
        unknown = [o for o in order if o not in names]
        if unknown:
            raise YieldkitValueError(f"The 'order' argument of sequential_waterfall names unknown component(s) "
                                     f"{unknown}; components are {names}.")
        seq = list(order) + [n for n in names if n not in order]
        t = t.set_index(t["component"].astype(str)).loc[seq].reset_index(drop=True)
    y = t["yield"].to_numpy(float)
    after = np.cumprod(y)
    before = np.r_[1.0, after[:-1]]
    return pd.DataFrame({"component": t["component"].to_numpy(), "yield": y, "yield_before": before,
                         "yield_after": after, "loss": before - after,
                         "method": "sequential (order-dependent)"})


def impact_pareto(
    budget: YieldBudget | pd.DataFrame,
    *,
    price_per_die: float | None = None,
    dies_per_wafer: float | None = None,
    wafers: float | None = None,
    include_remainder: bool = False,
) -> pd.DataFrame:
    """Rank the budget's components by lost yield points (and by value with a die price).

    Parameters
    ----------
    budget : YieldBudget or its table
    price_per_die : float, optional
        Value of a good die (any currency) for ``value``.
    dies_per_wafer : float, optional
        Dies per wafer: the value is then per wafer (times ``wafers`` if given); otherwise per
        die started.
    wafers : float, optional
        Wafers (e.g. per month) for the value.
    include_remainder : bool
        Keep the unexplained remainder as a row.

    Returns
    -------
    DataFrame
        ``category`` (the component), ``kind``, ``yield_points`` (100 x loss), ``share``,
        ``cum_share`` and, with a price, ``value``; by decreasing loss (a Pareto table, drawable
        with :func:`yieldkit.plotting.pareto.plot_pareto`).
    """
    t = _table_of(budget)
    if not include_remainder:
        t = t[t["kind"].astype(str) != "remainder"]
    if price_per_die is not None and not price_per_die >= 0:
        raise YieldkitValueError(f"The 'price_per_die' argument of impact_pareto must be >= 0. Got {price_per_die!r} instead.")
    out = pd.DataFrame({"category": t["component"].to_numpy(), "kind": t["kind"].to_numpy(),
                        "yield_points": 100.0 * t["loss"].to_numpy(float)})
    out = out.sort_values("yield_points", ascending=False, kind="stable").reset_index(drop=True)
    pos = out["yield_points"].clip(lower=0.0)
    tot = float(pos.sum())
    out["share"] = pos / tot if tot > 0 else 0.0
    out["cum_share"] = out["share"].cumsum()
    if price_per_die is not None:
        per = float(price_per_die) * out["yield_points"] / 100.0
        if dies_per_wafer is not None:
            per = per * float(dies_per_wafer) * (float(wafers) if wafers is not None else 1.0)
        out["value"] = per
    return out


@dataclass(frozen=True, repr=False)
class Entitlement(TableResult):
    """Entitlement yield and the gap to it, split by component (from :func:`entitlement`).

    Attributes
    ----------
    table : DataFrame
        ``component``, ``gap`` (yield the component costs against the entitlement), ``share``.
    entitlement : float
        Entitlement yield.
    current : float
        Current (mean) yield.
    method : str
    """

    table: pd.DataFrame
    entitlement: float
    current: float
    method: str

    @property
    def gap(self) -> float:
        return self.entitlement - self.current

    def __repr__(self) -> str:
        return (f"Entitlement(method={self.method!r}, entitlement={self.entitlement:.4g}, current={self.current:.4g}, "
                f"gap={self.gap:.4g})")


def entitlement(
    wafer_yields: pd.DataFrame | None = None,
    method: str = "percentile",
    *,
    budget: YieldBudget | None = None,
    percentile: float = 90.0,
    yield_col: str = "yield",
) -> Entitlement:
    """The entitlement yield, and the gap to it split by budget component.

    Parameters
    ----------
    wafer_yields : DataFrame, optional
        One row per wafer with ``yield_col`` (e.g. :func:`yieldkit.wafer_yield`); needed by
        ``"percentile"``.
    method : {"percentile", "model"}
        ``"percentile"``: the entitlement is the ``percentile``-th percentile of the wafer yields
        (what the best wafers show the process can do), the current yield their mean;
        ``"model"``: the budget's yield without its defect components
        (``Y / prod_i Y_i``), the current yield the budget's ``Y``.
    budget : YieldBudget, optional
        Splits the gap (needed by ``"model"``).
    percentile : float
        Percentile of ``"percentile"`` [0, 100].
    yield_col : str
        Yield column of ``wafer_yields``.

    Returns
    -------
    Entitlement

    Notes
    -----
    The gap is split by log share over the components that can close it: the defect components
    for ``"model"``, every component except the systematic one for ``"percentile"``; without a
    budget the table is empty.
    """
    where = "entitlement"
    check_choice(method, ("percentile", "model"), name="method", where=where)
    if method == "percentile":
        if wafer_yields is None or yield_col not in wafer_yields.columns:
            raise SchemaError(f"{where}: method='percentile' needs wafer yields with a {yield_col!r} column.",
                              column=yield_col)
        if not 0 <= percentile <= 100:
            raise YieldkitValueError(f"The 'percentile' argument of {where} must be in [0, 100]. Got {percentile!r} instead.")
        v = wafer_yields[yield_col].to_numpy(float)
        v = v[np.isfinite(v)]
        if len(v) == 0:
            raise YieldkitValueError(f"{where}: no finite wafer yield.")
        ent, cur = float(np.percentile(v, percentile)), float(v.mean())
        kinds: tuple[str, ...] = ("defect", "parametric", "remainder")
    else:
        if budget is None:
            raise YieldkitValueError(f"{where}: method='model' needs budget=.")
        t = budget.table
        dl = float(np.prod(t.loc[t["kind"] == "defect", "yield"].to_numpy(float)))
        cur = budget.observed_yield
        ent = cur / dl if dl > 0 else float("nan")
        kinds = ("defect",)
    rows = pd.DataFrame({"component": pd.array([], dtype=STRING), "gap": [], "share": []})
    if budget is not None:
        t = budget.table[budget.table["kind"].astype(str).isin(kinds)]
        logs = np.log(t["yield"].to_numpy(float))
        tot = float(logs.sum())
        share = logs / tot if tot != 0 else np.zeros(len(logs))
        rows = pd.DataFrame({"component": t["component"].to_numpy(), "gap": (ent - cur) * share, "share": share})
        rows = rows.sort_values("gap", ascending=False, kind="stable").reset_index(drop=True)
    return Entitlement(table=rows, entitlement=ent, current=cur, method=method)


def yield_budget_dask(
    dies: Any,
    defects: Any = None,
    *,
    systematic: Any = None,
    by: Sequence[str] = ("layer", "defect_class"),
    parametric_bins: Sequence[int] = (),
    conf_level: float = 0.95,
) -> YieldBudget:
    """:func:`yield_budget` of Dask DataFrames, from per-partition sufficient statistics.

    The defect partitions are reduced to defects per die and category
    (:func:`die_category_counts`), every die partition to its pattern statistics
    (:func:`statistics_from_counts`), and these are added up (:func:`combine_statistics`): the
    result equals the in-memory budget. Partitions must hold whole wafers (retests of a die in
    one partition).

    Parameters
    ----------
    dies, defects : dask DataFrame
        Die and defect tables (``defects`` may also be a pandas DataFrame or None).
    systematic : float, fitted yield model or None
        As in :func:`yield_budget`, except ``"fit"``: the window method needs the die maps in
        memory, so fit it there (or on a sample) and pass the fitted model.
    by, parametric_bins, conf_level
        As in :func:`yield_budget`.

    Returns
    -------
    YieldBudget
    """
    import dask

    where = "yield_budget_dask"
    if isinstance(systematic, str):
        raise YieldkitValueError(f"{where}: systematic='fit' needs the die maps in memory; fit the window method "
                                 "(e.g. NegativeBinomialYield().fit_window) and pass the fitted model, a number or None.")
    sysy = _systematic(systematic, None, None, conf_level, None, where)
    by = tuple(by)
    if defects is None:
        counts = pd.DataFrame({"lot_id": [], "wafer_id": [], "die_x": np.zeros(0, np.int64),
                               "die_y": np.zeros(0, np.int64), "category": [], "n": np.zeros(0, np.int64)})
    elif isinstance(defects, pd.DataFrame):
        counts = die_category_counts(defects, by=by)
    else:
        parts = dask.compute(*[dask.delayed(die_category_counts)(p, by=by) for p in defects.to_delayed()])
        counts = pd.concat(parts, ignore_index=True)
        counts = counts.groupby(["lot_id", "wafer_id", "die_x", "die_y", "category"], sort=False)["n"].sum().reset_index()
    die_parts = dies.to_delayed() if hasattr(dies, "to_delayed") else [dies]
    stats_parts = dask.compute(*[dask.delayed(statistics_from_counts)(p, counts, by=by) for p in die_parts])
    st = combine_statistics(stats_parts)
    return budget_from_statistics(st, systematic=sysy, parametric_bins=[int(b) for b in parametric_bins],
                                  conf_level=conf_level)
