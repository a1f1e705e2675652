"""Kill ratio and defect-limited yield per layer, from the adders of each inspection step.

A defect seen at several inspections is one physical defect: counting it at every step would
count it several times. :func:`layer_kill_ratio` keeps each defect once, at its source step (the
adders of :func:`~yieldkit.inspection.match_steps`), and runs the joint kill-ratio model of
:mod:`yieldkit.killratio` on the categories (source step, class).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from ..errors import SchemaError
from ..killratio import die_defects, joint_kill_ratio_patterns, kill_ratio
from ..results import TableResult
from ..schema import STRING
from .steps import StepMatch

__all__ = ["LayerKillRatio", "layer_kill_ratio"]

_SEP = "\x1f"  # joins the category columns into one kill-ratio category


@dataclass(frozen=True, repr=False)
class LayerKillRatio(TableResult):
    """Kill ratios per (source step, class) and defect-limited yield per layer.

    Attributes
    ----------
    table : DataFrame
        One row per (layer, class) of the adders: the ``by`` columns, then the columns of
        :func:`yieldkit.kill_ratio` (``defects``, ``dies_affected``, ``kill_ratio``, ``kill_prob``
        with its interval, ...).
    layers : DataFrame
        One row per layer: ``defects``, ``limited_yield`` (mean over dies of
        ``prod_c (1 - k_c)^n_c`` over the layer's classes), ``ci_lower``, ``ci_upper``, ``yield_loss``.
    tested_dies : int
    y_clean : float
        Yield of a die without any detected defect (joint estimate).
    """

    table: pd.DataFrame
    layers: pd.DataFrame
    tested_dies: int
    y_clean: float

    def __repr__(self) -> str:
        return f"LayerKillRatio(layers={len(self.layers)}, categories={len(self.table)}, y_clean={self.y_clean:.4g})"


def _adders(defects: pd.DataFrame | StepMatch) -> pd.DataFrame:
    table = defects.table if isinstance(defects, StepMatch) else defects
    if "is_adder" in table.columns:
        table = table[table["is_adder"].to_numpy(dtype=bool)]
    return table


def combined_category(table: pd.DataFrame, by: Sequence[str], where: str) -> pd.Series:
    """The ``by`` columns joined into one category string per row (missing class: ``unclassified``)."""
    parts = []
    for col in by:
        if col not in table.columns:
            if col == "defect_class":
                parts.append(pd.Series("unclassified", index=table.index))
                continue
            raise SchemaError(f"{where}: the 'by' column {col!r} is not in the defect table; columns are "
                              f"{list(table.columns)}.", column=col)
        s = table[col].astype(str) if col != "defect_class" else table[col].fillna("unclassified").astype(str)
        parts.append(s)
    out = parts[0]
    for p in parts[1:]:
        out = out + _SEP + p
    return out.astype(STRING)


def split_category(cat: pd.Series | np.ndarray, by: Sequence[str]) -> pd.DataFrame:
    """Inverse of :func:`combined_category`: one column per ``by`` name."""
    s = pd.Series(np.asarray(cat, dtype=object)).astype(str)
    parts = s.str.split(_SEP, n=len(by) - 1, expand=True, regex=False)
    return pd.DataFrame({col: pd.array(parts[i].to_numpy(object), dtype=STRING) for i, col in enumerate(by)})


def layer_kill_ratio(
    dies: pd.DataFrame,
    defects: pd.DataFrame | StepMatch,
    *,
    by: Sequence[str] = ("source_step", "defect_class"),
    conf_level: float = 0.95,
) -> LayerKillRatio:
    """Kill ratio per (source step, class) on adders only, and defect-limited yield per layer.

    Parameters
    ----------
    dies : DataFrame
        Canonical die table (final results count).
    defects : DataFrame or StepMatch
        Output of :func:`~yieldkit.inspection.match_steps` (adders are kept: ``is_adder``), or a
        defect table in which every physical defect appears once.
    by : sequence of str
        Category columns, the layer first (default ``source_step``, ``defect_class``).
    conf_level : float
        Confidence level.

    Returns
    -------
    LayerKillRatio

    Notes
    -----
    Joint model: ``P(die passes) = Y_clean * prod_j (1 - k_c(j))`` over the die's adders (see
    :func:`yieldkit.killratio.joint_kill_ratio`). The limited yield of layer ``L`` is
    ``Y_L = mean_d prod_{c in L} (1 - k_c)^{n_dc}``; its interval is the delta method on
    ``log Y_L`` with the covariance of ``b_c = log(1 - k_c)`` from the fit, plus the sampling
    variance of the mean over dies (dies treated as independent; normal on the log scale).

    Examples
    --------
    >>> from yieldkit.inspection import layer_kill_ratio, match_steps, simulate_inspections
    >>> fab = simulate_inspections(n_lots=1, wafers_per_lot=4, detect_prob=1.0, random_state=4)
    >>> lk = layer_kill_ratio(fab.dies, match_steps(fab.defects, order=fab.steps))
    >>> lk.layers["source_step"].tolist()
    ['M1', 'V1', 'M2']
    """
    where = "layer_kill_ratio"
    by = list(by)
    adders = _adders(defects).copy()
    adders["_category"] = combined_category(adders, by, where)
    kr = kill_ratio(dies, adders, by="_category", method="both", conf_level=conf_level)
    table = pd.concat([split_category(kr.table["category"], by), kr.table.drop(columns=["category"])], axis=1)
    dd = die_defects(dies, adders, by="_category")
    counts = dd.counts()
    pat, inv = np.unique(counts, axis=0, return_inverse=True)
    inv = inv.ravel()
    n_pat = np.bincount(inv, minlength=len(pat)).astype(float)
    g_pat = np.bincount(inv, weights=dd.passed.astype(float), minlength=len(pat))
    j = joint_kill_ratio_patterns(pat, n_pat, g_pat, conf_level=conf_level)
    cats = split_category(dd.categories, by)
    layer_of = cats[by[0]].astype(str).to_numpy(object)
    order = list(dict.fromkeys(table[by[0]].astype(str)))
    if isinstance(defects, StepMatch):
        order = [s for s in defects.order if s in set(order)] + [s for s in order if s not in defects.order]
    b = np.log1p(-np.minimum(j["kill_prob"], 1.0 - 1e-15))
    cov_b = j["cov"][1:, 1:]
    z = stats.norm.ppf(0.5 + conf_level / 2)
    rows = []
    for layer in order:  # one row per layer: a loop over the few layers, the dies are arrays
        sel = layer_of == layer
        w_pat = np.exp(pat[:, sel] @ b[sel])
        y = float(n_pat @ w_pat / n_pat.sum())
        grad = np.zeros(len(b))
        grad[sel] = (n_pat * w_pat) @ pat[:, sel] / (n_pat @ w_pat)  # d log Y_L / d b_c
        var = float(grad @ cov_b @ grad) if np.all(np.isfinite(cov_b)) else np.nan
        var += float(n_pat @ (w_pat - y) ** 2) / n_pat.sum() ** 2 / (y * y)  # the mean over dies as a sample mean
        se = np.sqrt(max(var, 0.0)) if np.isfinite(var) else np.nan
        rows.append({by[0]: layer, "defects": int(np.bincount(dd.category, minlength=len(sel))[sel].sum()),
                     "limited_yield": y, "ci_lower": y * np.exp(-z * se), "ci_upper": min(y * np.exp(z * se), 1.0),
                     "yield_loss": 1.0 - y})
    layers = pd.DataFrame(rows, columns=[by[0], "defects", "limited_yield", "ci_lower", "ci_upper", "yield_loss"])
    layers[by[0]] = pd.array(layers[by[0]].astype(str).to_numpy(object), dtype=STRING)
    return LayerKillRatio(table=table, layers=layers, tested_dies=kr.tested_dies, y_clean=float(j["y_clean"]))
