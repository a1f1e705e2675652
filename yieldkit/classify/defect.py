"""Automatic defect classification (ADC): learn ``defect_class`` from defect attributes.

:class:`DefectClassifier` derives features from a canonical defect table -- size, aspect ratio,
position on the wafer (radius, angle) and inside the die, and any other numeric columns a KLARF
file carries (``XSIZE``, ``YSIZE``, ``DEFECTAREA``, ``DSIZE``, roughness, grades, ...) -- and learns
the reviewed classes with gradient-boosted trees. Users retrain it on their own reviewed defects;
:meth:`DefectClassifier.report` gives per-class precision and recall and the confusion matrix.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import NotFittedError as SkNotFittedError
from sklearn.utils.validation import validate_data

from ..errors import NotFittedError, SchemaError, YieldkitValueError
from ..schema import STRING, UNCLASSIFIED

log = logging.getLogger(__name__)

__all__ = ["DefectClassificationReport", "DefectClassifier", "defect_features"]

# identifiers and labels never used as features
_NOT_FEATURES = {"lot_id", "wafer_id", "defect_id", "die_x", "die_y", "defect_class", "layer", "product",
                 "slot", "test_seq"}


class DefectNotFittedError(NotFittedError, SkNotFittedError):
    """Raised by an unfitted :class:`DefectClassifier`; also a scikit-learn ``NotFittedError``."""


def defect_features(defects: pd.DataFrame, *, wafer_radius_um: float | None = None) -> pd.DataFrame:
    """Numeric features of defects: size, aspect, position on the wafer and in the die, extra columns.

    Parameters
    ----------
    defects : DataFrame
        Canonical defect table (:func:`yieldkit.read_defects`); any subset of ``x_um``, ``y_um``,
        ``xrel_um``, ``yrel_um``, ``size_um`` and extra numeric columns.
    wafer_radius_um : float, optional
        Wafer radius [um] used to normalise the radius; default: the largest defect radius.

    Returns
    -------
    DataFrame
        float64 columns, NaN where an attribute is unknown: ``log_size`` (log10 of ``size_um``),
        ``aspect`` (``max/min`` of ``xsize``/``ysize`` columns when present), ``radius``
        (normalised distance from the wafer centre), ``cos_angle``, ``sin_angle``, ``xrel_um``,
        ``yrel_um``, then every other numeric column under its own name.
    """
    if not isinstance(defects, pd.DataFrame):
        raise YieldkitValueError(
            f"The 'defects' argument of defect_features must be a DataFrame. Got {type(defects).__name__} instead.")
    n = len(defects)
    cols = {c.lower(): c for c in defects.columns}
    out: dict[str, np.ndarray] = {}

    def num(c: str) -> np.ndarray:
        return pd.to_numeric(defects[c], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)

    nan = np.full(n, np.nan)
    size = num("size_um") if "size_um" in defects.columns else nan
    with np.errstate(divide="ignore", invalid="ignore"):
        out["log_size"] = np.where(size > 0, np.log10(np.where(size > 0, size, 1.0)), np.nan)
    xs = next((cols[c] for c in ("xsize", "xsize_um") if c in cols), None)
    ys = next((cols[c] for c in ("ysize", "ysize_um") if c in cols), None)
    if xs is not None and ys is not None:
        a, b = num(xs), num(ys)
        with np.errstate(divide="ignore", invalid="ignore"):
            out["aspect"] = np.maximum(a, b) / np.minimum(a, b)
        out["aspect"][~np.isfinite(out["aspect"])] = np.nan
    elif "aspect" in cols:
        out["aspect"] = num(cols["aspect"])
    else:
        out["aspect"] = nan
    if "x_um" in defects.columns and "y_um" in defects.columns:
        x, y = num("x_um"), num("y_um")
        r = np.hypot(x, y)
        rmax = float(wafer_radius_um) if wafer_radius_um else (np.nanmax(r) if np.isfinite(r).any() else 1.0)
        out["radius"] = r / max(rmax, 1e-9)
        with np.errstate(invalid="ignore", divide="ignore"):
            out["cos_angle"] = np.where(r > 0, x / r, 0.0)
            out["sin_angle"] = np.where(r > 0, y / r, 0.0)
    else:
        out["radius"] = out["cos_angle"] = out["sin_angle"] = nan
    for c in ("xrel_um", "yrel_um"):
        out[c] = num(c) if c in defects.columns else nan
    used = {"size_um", "x_um", "y_um", "xrel_um", "yrel_um", "aspect"}
    for c in defects.columns:
        if c in _NOT_FEATURES or c in used or c in out:
            continue
        s = defects[c]
        if pd.api.types.is_bool_dtype(s) or pd.api.types.is_numeric_dtype(s):
            out[str(c)] = num(c)
    return pd.DataFrame(out, index=defects.index)


@dataclass(frozen=True)
class DefectClassificationReport:
    """Per-class precision/recall and the confusion matrix of a defect classifier on labelled data.

    Attributes
    ----------
    per_class : DataFrame
        ``defect_class``, ``precision``, ``recall``, ``f1``, ``support``.
    confusion : DataFrame
        Counts; rows = true class, columns = predicted class.
    accuracy, macro_f1 : float
    """

    per_class: pd.DataFrame
    confusion: pd.DataFrame
    accuracy: float
    macro_f1: float

    def plot(self, *, ax: Any = None, normalize: bool = True) -> Any:
        """Draw the confusion matrix (see :func:`yieldkit.plotting.classify.plot_confusion`)."""
        from ..plotting.classify import plot_confusion

        return plot_confusion(self.confusion, ax=ax, normalize=normalize)


class DefectClassifier(ClassifierMixin, BaseEstimator):
    """Learn defect classes (ADC) from defect attributes with gradient-boosted trees.

    Parameters
    ----------
    max_iter : int
        Boosting iterations (>= 1).
    learning_rate : float
        Shrinkage, in (0, 1].
    max_leaf_nodes : int
        Leaves per tree (>= 2).
    class_weight : "balanced", dict or None
        Class weights; ``"balanced"`` gives rare classes the weight of common ones.
    wafer_radius_um : float, optional
        Wafer radius [um] for the normalised radius feature (default: largest defect radius).
    random_state : int or None
        Seed.
    n_threads : int, optional
        OpenMP threads used for fitting (default: all cores). 1 is fastest on a busy machine.

    Attributes
    ----------
    classes_ : ndarray of str
    feature_names_ : list of str
        Feature columns used (from :func:`defect_features`, or ``x0..`` for arrays).
    model_ : HistGradientBoostingClassifier

    Notes
    -----
    ``fit`` takes a canonical defect table (features are derived with :func:`defect_features` and
    the target defaults to its ``defect_class`` column; ``"unclassified"`` rows are left out) or a
    numeric feature matrix with ``y``. Missing attributes are NaN and handled natively by the trees.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(0)
    >>> n = 400
    >>> cls = np.where(rng.random(n) < 0.5, "particle", "scratch")
    >>> d = pd.DataFrame({"lot_id": "L", "wafer_id": "1", "defect_id": np.arange(n),
    ...                   "x_um": rng.normal(0, 5e4, n), "y_um": rng.normal(0, 5e4, n),
    ...                   "size_um": np.where(cls == "particle", 0.3, 8.0) * rng.lognormal(0, 0.2, n),
    ...                   "defect_class": cls})
    >>> clf = DefectClassifier(max_iter=20).fit(d)
    >>> round(clf.report(d).accuracy, 2)
    1.0
    """

    def __init__(self, *, max_iter: int = 200, learning_rate: float = 0.1, max_leaf_nodes: int = 31,
                 class_weight: Any = "balanced", wafer_radius_um: float | None = None,
                 random_state: Any = None, n_threads: int | None = None) -> None:
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.max_leaf_nodes = max_leaf_nodes
        self.class_weight = class_weight
        self.wafer_radius_um = wafer_radius_um
        self.random_state = random_state
        self.n_threads = n_threads

    def _xy(self, X: Any, y: Any, *, fit: bool, class_col: str) -> tuple[np.ndarray, np.ndarray | None]:
        if isinstance(X, pd.DataFrame) and ({"defect_id", "lot_id"} & set(X.columns) or class_col in X.columns):
            if y is None and fit:
                if class_col not in X.columns:
                    raise SchemaError(
                        f"DefectClassifier.fit needs y or a {class_col!r} column; found {', '.join(map(str, X.columns))}")
                y = X[class_col]
            if fit and y is not None:
                yy = pd.Series(np.asarray(y, dtype=object), index=X.index)
                keep = yy.notna() & (yy.astype(str) != UNCLASSIFIED)
                X = X.loc[keep.to_numpy()]
                y = yy[keep].astype(str).to_numpy()
            F = defect_features(X, wafer_radius_um=self.wafer_radius_um)
            if fit:
                F = F.loc[:, F.notna().any().to_numpy()]  # attributes this data set does not have
                if F.shape[1] == 0:
                    raise SchemaError("DefectClassifier.fit found no usable defect attribute (size, position, ...)")
                self.feature_names_ = list(F.columns)
                self.n_features_in_ = len(self.feature_names_)
                self._table_input = True
            else:
                if not getattr(self, "_table_input", False):
                    raise YieldkitValueError("This DefectClassifier was fitted on a feature matrix; pass one to predict.")
                F = F.reindex(columns=self.feature_names_)
            return F.to_numpy(np.float64), (None if y is None else np.asarray(y))
        A = validate_data(self, X, reset=fit, dtype=np.float64, ensure_all_finite="allow-nan")
        if np.isinf(A).any():
            raise YieldkitValueError("Input X contains infinity; defect attributes must be finite or NaN.")
        if fit:
            self.feature_names_ = [f"x{i}" for i in range(A.shape[1])]
            self._table_input = False
        return A, (None if y is None else np.asarray(y))

    def fit(self, X: Any, y: Any = None, *, class_col: str = "defect_class") -> DefectClassifier:
        """Fit on reviewed defects.

        Parameters
        ----------
        X : DataFrame or array of shape (n_defects, n_features)
            Canonical defect table, or a numeric feature matrix.
        y : array-like of str, optional
            Classes; default ``X[class_col]`` for a defect table.
        class_col : str
            Column holding the reviewed class.

        Raises
        ------
        SchemaError
            When no class is given.
        YieldkitValueError
            On bad hyperparameters or fewer than two classes.
        """
        from sklearn.ensemble import HistGradientBoostingClassifier
        from sklearn.utils.multiclass import check_classification_targets
        from sklearn.utils.validation import column_or_1d

        for name, lo in (("max_iter", 1), ("max_leaf_nodes", 2)):
            v = getattr(self, name)
            if not isinstance(v, int | np.integer) or isinstance(v, bool) or v < lo:
                raise YieldkitValueError(
                    f"The {name!r} argument of DefectClassifier must be an int >= {lo}. Got {v!r} instead.")
        if not 0 < float(self.learning_rate) <= 1:
            raise YieldkitValueError(
                f"The 'learning_rate' argument of DefectClassifier must be in (0, 1]. Got {self.learning_rate!r} instead.")
        if y is None and not isinstance(X, pd.DataFrame):
            raise YieldkitValueError("DefectClassifier.fit requires y to be passed, but the target y is None.")
        F, yy = self._xy(X, y, fit=True, class_col=class_col)
        yy = column_or_1d(yy, warn=True)
        if F.shape[0] < 2:
            raise YieldkitValueError(f"DefectClassifier.fit needs at least 2 defects. Got n_samples={F.shape[0]}.")
        if len(yy) != F.shape[0]:
            raise YieldkitValueError(
                f"The 'y' argument of DefectClassifier.fit must have one class per defect ({F.shape[0]}). "
                f"Got {len(yy)} instead.")
        check_classification_targets(yy)
        if len(np.unique(yy)) < 2:
            raise YieldkitValueError("DefectClassifier.fit needs at least 2 defect classes. Got 1.")
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=self.n_threads, user_api="openmp"):
            self.model_ = HistGradientBoostingClassifier(
                max_iter=self.max_iter, learning_rate=self.learning_rate, max_leaf_nodes=self.max_leaf_nodes,
                class_weight=self.class_weight, early_stopping=False, random_state=self.random_state,
            ).fit(F, yy)
        self.classes_ = self.model_.classes_
        self.n_iter_ = self.model_.n_iter_
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            raise DefectNotFittedError("This DefectClassifier instance is not fitted yet. Call 'fit' first.")

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, shape (n_defects, n_classes)."""
        self._check_fitted()
        F, _ = self._xy(X, None, fit=False, class_col="defect_class")
        return self.model_.predict_proba(F)

    def __sklearn_tags__(self):  # type: ignore[no-untyped-def]
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        return tags

    def predict(self, X: Any) -> np.ndarray:
        """Most probable class per defect."""
        self._check_fitted()
        F, _ = self._xy(X, None, fit=False, class_col="defect_class")
        return self.model_.predict(F)

    def classify(self, defects: pd.DataFrame, *, out_col: str = "defect_class_pred") -> pd.DataFrame:
        """Copy of ``defects`` with the predicted class and its probability (``<out_col>_prob``)."""
        p = self.predict_proba(defects)
        k = np.argmax(p, axis=1)
        out = defects.copy()
        out[out_col] = pd.array(self.classes_[k].astype(str), dtype=STRING)
        out[out_col + "_prob"] = p[np.arange(len(k)), k]
        return out

    def report(self, X: Any, y: Any = None, *, class_col: str = "defect_class") -> DefectClassificationReport:
        """Per-class precision/recall/F1 and the confusion matrix on labelled defects.

        ``y`` defaults to ``X[class_col]``; ``"unclassified"`` rows are left out.
        """
        self._check_fitted()
        if y is None:
            if not isinstance(X, pd.DataFrame) or class_col not in X.columns:
                raise SchemaError(f"DefectClassifier.report needs y or a {class_col!r} column")
            y = X[class_col]
        yy = pd.Series(np.asarray(y, dtype=object))
        keep = (yy.notna() & (yy.astype(str) != UNCLASSIFIED)).to_numpy()
        Xk = X.loc[keep] if isinstance(X, pd.DataFrame) else np.asarray(X)[keep]
        return classification_report_table(yy[keep].astype(str).to_numpy(), self.predict(Xk))


def classification_report_table(y_true: Any, y_pred: Any, *, label_name: str = "defect_class") -> DefectClassificationReport:
    """Precision, recall, F1 per class and the confusion matrix of true vs predicted labels."""
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    yt = np.asarray(y_true).astype(str)
    yp = np.asarray(y_pred).astype(str)
    labels = np.unique(np.concatenate([yt, yp]))
    p, r, f, s = precision_recall_fscore_support(yt, yp, labels=labels, zero_division=0)
    per = pd.DataFrame({label_name: labels, "precision": p, "recall": r, "f1": f, "support": s})
    cm = pd.DataFrame(confusion_matrix(yt, yp, labels=labels), index=pd.Index(labels, name="true"),
                      columns=pd.Index(labels, name="predicted"))
    present = s > 0
    return DefectClassificationReport(per, cm, float(np.mean(yt == yp)) if len(yt) else float("nan"),
                                      float(np.mean(f[present])) if present.any() else float("nan"))
