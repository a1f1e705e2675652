"""Scores and calibration of single-label pattern classifiers.

Pure numpy functions on predicted probabilities (or logits) and true labels:

* :func:`pattern_scores` -- accuracy, macro-F1, per-class precision / recall / F1 and the confusion
  matrix;
* :func:`expected_calibration_error` and :func:`reliability_table` -- how far the top probability
  is from the observed accuracy [Guo2017]_;
* :func:`fit_temperature` -- the temperature ``T`` of ``softmax(logits / T)`` that minimises the
  negative log-likelihood on a calibration set [Guo2017]_;
* :func:`unknown_coverage` and :func:`choose_unknown_threshold` -- the "unknown pattern" answer
  (top probability below a threshold): the share of wafers still answered and the accuracy on them.

The calibration set must be carved out of the training data: fitting the temperature or choosing
the threshold on held-out data would make the held-out figures optimistic.

References
----------
.. [Guo2017] C. Guo, G. Pleiss, Y. Sun, K. Q. Weinberger, "On calibration of modern neural
   networks," Proc. 34th ICML, PMLR 70:1321-1330, 2017. arXiv:1706.04599
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..errors import YieldkitValueError

__all__ = [
    "PatternScores",
    "choose_unknown_threshold",
    "expected_calibration_error",
    "fit_temperature",
    "log_softmax",
    "pattern_scores",
    "reliability_table",
    "softmax",
    "unknown_coverage",
]


def softmax(logits: Any, temperature: float = 1.0) -> np.ndarray:
    """Row-wise ``softmax(logits / temperature)`` (numerically stable).

    >>> softmax(np.array([[0.0, 0.0], [0.0, np.log(3.0)]])).round(3).tolist()
    [[0.5, 0.5], [0.25, 0.75]]
    """
    z = np.asarray(logits, np.float64) / float(temperature)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def log_softmax(logits: Any, temperature: float = 1.0) -> np.ndarray:
    """Row-wise ``log(softmax(logits / temperature))``."""
    z = np.asarray(logits, np.float64) / float(temperature)
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def _check_proba(proba: Any, y: Any, where: str) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(proba, np.float64)
    yy = np.asarray(y)
    if p.ndim != 2 or p.shape[0] == 0:
        raise YieldkitValueError(
            f"The 'proba' argument of {where} must be a non-empty 2-D array (n_wafers, n_classes). "
            f"Got shape {p.shape} instead.")
    if yy.shape != (p.shape[0],):
        raise YieldkitValueError(
            f"The 'y' argument of {where} must hold one class index per row of proba ({p.shape[0]}). "
            f"Got shape {yy.shape} instead.")
    if not np.issubdtype(yy.dtype, np.integer) or yy.min() < 0 or yy.max() >= p.shape[1]:
        raise YieldkitValueError(
            f"The 'y' argument of {where} must hold integer class indices in [0, {p.shape[1]}). "
            f"Got {yy.dtype} values instead.")
    return p, yy.astype(np.int64)


def reliability_table(proba: Any, y: Any, *, n_bins: int = 15) -> pd.DataFrame:
    """Reliability diagram as a table: top probability binned on [0, 1] in ``n_bins`` equal bins.

    Parameters
    ----------
    proba : array-like of shape (n_wafers, n_classes)
        Predicted probabilities (rows sum to 1).
    y : array-like of int
        True class index of every wafer.
    n_bins : int
        Number of equal-width confidence bins.

    Returns
    -------
    DataFrame
        One row per non-empty bin: ``lower``, ``upper``, ``n``, ``confidence`` (mean top
        probability), ``accuracy`` (share of correct top predictions), ``gap``
        (``confidence - accuracy``).
    """
    p, yy = _check_proba(proba, y, "reliability_table")
    if not isinstance(n_bins, int | np.integer) or n_bins < 1:
        raise YieldkitValueError(f"The 'n_bins' argument of reliability_table must be an int >= 1. Got {n_bins!r} instead.")
    conf = p.max(axis=1)
    correct = (p.argmax(axis=1) == yy).astype(np.float64)
    b = np.minimum((conf * n_bins).astype(np.int64), n_bins - 1)
    n = np.bincount(b, minlength=n_bins)
    sc = np.bincount(b, conf, minlength=n_bins)
    sa = np.bincount(b, correct, minlength=n_bins)
    on = n > 0
    edges = np.arange(n_bins + 1) / n_bins
    out = pd.DataFrame({"lower": edges[:-1][on], "upper": edges[1:][on], "n": n[on].astype(np.int64),
                        "confidence": sc[on] / n[on], "accuracy": sa[on] / n[on]})
    out["gap"] = out["confidence"] - out["accuracy"]
    return out


def expected_calibration_error(proba: Any, y: Any, *, n_bins: int = 15) -> float:
    """Expected calibration error: ``sum_b (n_b / n) |confidence_b - accuracy_b|`` [Guo2017]_.

    Bins are ``n_bins`` equal-width intervals of the top probability.

    >>> p = np.array([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.6, 0.4]])
    >>> round(expected_calibration_error(p, np.array([0, 0, 0, 1]), n_bins=10), 3)
    0.1
    """
    t = reliability_table(proba, y, n_bins=n_bins)
    return float(np.sum(t["n"] * np.abs(t["gap"])) / t["n"].sum())


def fit_temperature(logits: Any, y: Any, *, bounds: tuple[float, float] = (0.05, 20.0)) -> float:
    """Temperature ``T`` minimising the negative log-likelihood of ``softmax(logits / T)`` [Guo2017]_.

    Parameters
    ----------
    logits : array-like of shape (n_wafers, n_classes)
        Raw scores (for an average of probabilities, pass its logarithm).
    y : array-like of int
        True class index of every wafer (a calibration set, not the evaluation set).
    bounds : (float, float)
        Search interval of ``T``.

    Returns
    -------
    float
        The temperature (> 1 softens over-confident scores, < 1 sharpens).

    Notes
    -----
    The NLL is convex in ``1 / T``; a bounded scalar search on ``log T`` finds its minimum.
    Temperature scaling leaves the arg-max, hence accuracy and F1, unchanged.
    """
    z, yy = _check_proba(logits, y, "fit_temperature")
    from scipy.optimize import minimize_scalar

    rows = np.arange(len(yy))

    def nll(log_t: float) -> float:
        return float(-log_softmax(z, float(np.exp(log_t)))[rows, yy].mean())

    lo, hi = np.log(bounds[0]), np.log(bounds[1])
    res = minimize_scalar(nll, bounds=(lo, hi), method="bounded", options={"xatol": 1e-4})
    return float(np.exp(res.x))


def unknown_coverage(proba: Any, y: Any, threshold: float) -> dict[str, float]:
    """Effect of answering "unknown" when the top probability is below ``threshold``.

    Returns
    -------
    dict
        ``coverage`` (share of wafers answered), ``accuracy`` (on the answered wafers; NaN when
        none is), ``unknown_rate`` (``1 - coverage``), ``accuracy_all`` (without the unknown answer).

    >>> p = np.array([[0.9, 0.1], [0.55, 0.45], [0.2, 0.8]])
    >>> unknown_coverage(p, np.array([0, 1, 1]), 0.6)
    {'threshold': 0.6, 'coverage': 0.6666666666666666, 'accuracy': 1.0, 'unknown_rate': 0.33333333333333337, 'accuracy_all': 0.6666666666666666}
    """
    p, yy = _check_proba(proba, y, "unknown_coverage")
    conf = p.max(axis=1)
    correct = p.argmax(axis=1) == yy
    ans = conf >= threshold
    cov = float(ans.mean())
    acc = float(correct[ans].mean()) if ans.any() else float("nan")
    return {"threshold": float(threshold), "coverage": cov, "accuracy": acc, "unknown_rate": 1.0 - cov,
            "accuracy_all": float(correct.mean())}


def choose_unknown_threshold(proba: Any, y: Any, *, target_accuracy: float = 0.99) -> float:
    """Smallest top-probability threshold whose answered wafers reach ``target_accuracy``.

    Candidate thresholds are the distinct top probabilities of the calibration set; the smallest
    one at which the accuracy on the wafers answered (top probability >= threshold) reaches the
    target keeps the largest coverage. When even the most confident wafers miss the target, the
    threshold of the best accuracy is returned. Choose it on a calibration set, never on the
    evaluation set.

    >>> p = np.array([[0.95, 0.05], [0.9, 0.1], [0.7, 0.3], [0.6, 0.4]])
    >>> choose_unknown_threshold(p, np.array([0, 0, 1, 0]), target_accuracy=0.99)
    0.9
    """
    p, yy = _check_proba(proba, y, "choose_unknown_threshold")
    if not (0 < float(target_accuracy) <= 1):
        raise YieldkitValueError(
            f"The 'target_accuracy' argument of choose_unknown_threshold must be in (0, 1]. "
            f"Got {target_accuracy!r} instead.")
    conf = p.max(axis=1)
    correct = (p.argmax(axis=1) == yy).astype(np.float64)
    order = np.argsort(-conf, kind="stable")
    c = conf[order]
    acc = np.cumsum(correct[order]) / np.arange(1, len(c) + 1)
    last = np.r_[c[1:] != c[:-1], True]  # a threshold answers every wafer with the same confidence
    cand = np.flatnonzero(last)
    ok = cand[acc[cand] >= target_accuracy - 1e-12]
    pick = ok[-1] if len(ok) else cand[np.argmax(acc[cand])]
    return float(c[pick])


@dataclass
class PatternScores:
    """Scores of single-label predictions (see :func:`pattern_scores`)."""

    accuracy: float
    macro_f1: float
    per_class: pd.DataFrame = field(repr=False)
    confusion: pd.DataFrame = field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary: accuracy, macro-F1 and per-class F1 (rounded to 4 digits)."""
        return {"accuracy": round(self.accuracy, 4), "macro_f1": round(self.macro_f1, 4),
                "per_class_f1": {str(k): round(float(v), 4) for k, v in self.per_class["f1"].items()}}


def pattern_scores(y_true: Any, y_pred: Any, *, labels: Any = None) -> PatternScores:
    """Accuracy, macro-F1, per-class precision / recall / F1 / support and the confusion matrix.

    Parameters
    ----------
    y_true, y_pred : array-like of str
        True and predicted patterns. A prediction outside ``labels`` (e.g. ``"unknown"``) counts
        as wrong for its wafer and as nobody's false positive.
    labels : sequence of str, optional
        Classes to score (default: the sorted true classes). Macro-F1 averages their F1.

    Returns
    -------
    PatternScores
        ``per_class`` indexed by class (``precision, recall, f1, support``); ``confusion`` with
        true classes as rows and predicted classes (plus any extra predicted value) as columns.

    >>> s = pattern_scores(["a", "a", "b", "b"], ["a", "b", "b", "b"])
    >>> round(s.macro_f1, 4), s.per_class["f1"].round(3).tolist()
    (0.7333, [0.667, 0.8])
    """
    yt = np.asarray(y_true).astype(str)
    yp = np.asarray(y_pred).astype(str)
    if yt.shape != yp.shape or yt.ndim != 1:
        raise YieldkitValueError(
            f"The 'y_true' and 'y_pred' arguments of pattern_scores must be 1-D of the same length. "
            f"Got shapes {yt.shape} and {yp.shape} instead.")
    lab = np.unique(yt) if labels is None else np.asarray(labels).astype(str)
    extra = [str(v) for v in np.unique(yp) if v not in set(lab)]
    cols = np.asarray([*lab.tolist(), *extra], dtype=object)
    ti = pd.Categorical(yt, categories=cols).codes
    pi = pd.Categorical(yp, categories=cols).codes
    ok = (ti >= 0) & (pi >= 0)
    k = len(cols)
    cm = np.bincount(ti[ok] * k + pi[ok], minlength=k * k).reshape(k, k)[: len(lab)]
    tp = np.diag(cm[:, : len(lab)]).astype(np.float64)
    support = cm.sum(axis=1).astype(np.float64)
    predicted = cm[:, : len(lab)].sum(axis=0).astype(np.float64)
    prec = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    rec = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    f1 = np.divide(2 * prec * rec, prec + rec, out=np.zeros_like(tp), where=(prec + rec) > 0)
    per = pd.DataFrame({"precision": prec, "recall": rec, "f1": f1, "support": support.astype(np.int64)},
                       index=pd.Index(lab, name="pattern"))
    conf = pd.DataFrame(cm, index=pd.Index(lab, name="true"), columns=pd.Index(cols, name="predicted"))
    return PatternScores(accuracy=float(np.mean(yt == yp)), macro_f1=float(f1.mean()), per_class=per,
                         confusion=conf)
