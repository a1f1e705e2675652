"""Wafer-map failure-pattern classification: :class:`WaferPatternClassifier`.

The classifier turns each wafer grid into size-independent hand-crafted features
(:mod:`yieldkit.classify.features`) and learns the pattern with gradient-boosted trees. Fitted
trees are exported to flat numpy arrays (:class:`yieldkit.classify.forest.Forest`) and predicted
in numpy, so a saved model is a plain ``.npz`` that loads without pickle and without a matching
scikit-learn version.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import NotFittedError as SkNotFittedError
from sklearn.utils.validation import check_array, validate_data
from threadpoolctl import threadpool_limits

from ..errors import NotFittedError, YieldkitValueError, check_choice
from ..schema import STRING
from .features import (
    extract_features,
    feature_names,
    image_feature_names,
    image_features,
    shape_feature_names,
    shape_features,
    spot_feature_names,
    spot_features,
)
from .forest import Forest, read_model, savez_bytes, write_model

log = logging.getLogger(__name__)

__all__ = ["PATTERNS", "WaferPatternClassifier", "signature_names"]

#: The nine WM-811K classes, in LSWMD spelling.
PATTERNS = ("Center", "Donut", "Edge-Loc", "Edge-Ring", "Loc", "Near-full", "Random", "Scratch", "none")

_FORMAT = "yieldkit-wafer-pattern-model"
_FEATURE_SETS = ("standard", "standard+image", "standard+shape", "standard+spot")


def signature_names(proba: np.ndarray, labels: Any, *, threshold: float = 0.5) -> list[str]:
    """Every label with probability >= ``threshold``, most probable first, joined by ``" + "``.

    >>> signature_names(np.array([[0.9, 0.2, 0.6], [0.1, 0.2, 0.3]]), ["Center", "Loc", "Scratch"])
    ['Center + Scratch', 'none']
    """
    labels = np.asarray(labels).astype(str)
    p = np.asarray(proba, np.float64)
    order = np.argsort(-p, axis=1, kind="stable")
    on = np.take_along_axis(p >= threshold, order, axis=1)
    names = labels[order]
    return [" + ".join(n[o]) or "none" for n, o in zip(names, on, strict=True)]


class PatternNotFittedError(NotFittedError, SkNotFittedError):
    """Raised by an unfitted classifier; also a scikit-learn ``NotFittedError``."""


def read_checked(path: str | os.PathLike[str], sha256: str | None = None) -> bytes:
    """The bytes of a model file, checked against an expected SHA-256 (hex) when one is given."""
    data = Path(path).read_bytes()
    if sha256 is not None:
        got = hashlib.sha256(data).hexdigest()
        if got != sha256.lower():
            raise YieldkitValueError(
                f"{path}: SHA-256 mismatch (expected {sha256}, got {got}); the model file is corrupt or "
                "not the one expected.")
    return data


def prediction_table(
    proba: Callable[[Any], np.ndarray], X: Any, *, classes: Any, multilabel: bool, threshold: float = 0.5,
    labels: Callable[[np.ndarray], np.ndarray] | None = None, wafers: pd.DataFrame | None = None,
    causes: bool = True,
) -> pd.DataFrame:
    """The table of ``predict_table`` for any pattern model, given its ``predict_proba``.

    ``labels`` maps the probabilities to the predicted class of every wafer (single-label mode;
    default: the most probable class). See :meth:`WaferPatternClassifier.predict_table`.
    """
    if wafers is None and isinstance(X, pd.DataFrame) and {"lot_id", "wafer_id"} <= set(X.columns):
        # a die table: one row per wafer, identified by its lot and wafer
        from .grid import dies_to_grids

        ids, X = dies_to_grids(X)
        wafers = ids[["lot_id", "wafer_id"]]
    p = proba(X)
    classes = np.asarray(classes)
    k = np.argmax(p, axis=1)
    if multilabel:
        # every signature the wafer carries (p >= threshold), most probable first; "none" without any
        out = pd.DataFrame({"pattern": pd.array(signature_names(p, classes, threshold=threshold), dtype=STRING),
                            "n_patterns": (p >= threshold).sum(axis=1).astype(np.int64)})
    else:
        top = classes[k] if labels is None else labels(p)
        out = pd.DataFrame({"pattern": pd.array(np.asarray(top).astype(str), dtype=STRING),
                            "probability": p[np.arange(len(k)), k]})
    for j, c in enumerate(classes):
        out[f"p_{c}"] = p[:, j]
    if wafers is not None:
        if len(wafers) != len(out):
            raise YieldkitValueError(
                f"The 'wafers' argument of predict_table must have one row per wafer ({len(out)}). "
                f"Got {len(wafers)} instead.")
        out = pd.concat([wafers.reset_index(drop=True), out], axis=1)
    if causes:
        from .causes import attach_causes

        out = attach_causes(out)
    return out

_FORMAT_VERSION = 1


def _grids_of(X: Any) -> Any:
    """Grids as given, or one grid per wafer of a canonical die table (in order of first appearance)."""
    if isinstance(X, pd.DataFrame):
        from .grid import dies_to_grids

        return dies_to_grids(X)[1]
    return X


class WaferPatternClassifier(ClassifierMixin, BaseEstimator):
    """Classify wafer-map failure patterns (Center, Donut, Edge-Ring, Scratch, ...).

    Parameters
    ----------
    input : {"grids", "features"}
        ``"grids"``: ``X`` is a sequence of 2-D wafer grids (0 = no die, 1 = pass, 2 = fail), a
        3-D array, or a canonical die table (one grid per wafer, see
        :func:`yieldkit.classify.dies_to_grids`). ``"features"``: ``X`` is a precomputed feature matrix
        (:func:`yieldkit.classify.extract_features`).
    features : {"standard", "standard+image", "standard+shape", "standard+spot"}
        Features computed from grids: the pattern features of
        :func:`yieldkit.classify.extract_features`, or those plus the 13 x 13 fail-density image
        (:func:`yieldkit.classify.features.image_features`), which helps on fixed-size maps with
        mixed patterns. ``"standard+shape"`` adds the line, blob and ring features of
        :func:`yieldkit.classify.features.shape_features` (better on Donut and Loc).
        ``"standard+spot"`` adds the multi-scale local fail density of
        :func:`yieldkit.classify.features.spot_features` at the map's own resolution (on WM-811K,
        no better than ``"standard"`` in 5-fold cross-validation: see ``scripts/train_pattern_cnn.py``).
    multilabel : bool
        Learn several patterns per wafer (mixed patterns as in MixedWM38): ``y`` is an indicator
        matrix (n_wafers, n_labels) or a DataFrame of booleans; one binary model per label.
    max_iter : int
        Boosting iterations (trees per class).
    learning_rate : float
        Shrinkage of each tree, in (0, 1].
    max_leaf_nodes : int
        Leaves per tree (>= 2).
    min_samples_leaf : int
        Minimum samples per leaf (>= 1).
    l2_regularization : float
        L2 penalty on leaf values (>= 0).
    max_features : float
        Share of the features drawn at random for each split, in (0, 1] (1 = all).
    class_weight : dict, "balanced" or None
        Passed to scikit-learn's ``HistGradientBoostingClassifier``.
    random_state : int, Generator or None
        Seed of the boosting: the features drawn for each split when ``max_features < 1``, and
        tie-breaking.
    n_threads : int, optional
        OpenMP threads used for fitting (default: all cores). 1 is fastest on a busy machine.
    n_models : int
        Boosted models fitted with the seeds ``random_state``, ``random_state + 1``, ... (they differ
        through ``max_features``) and averaged in raw-score (logit) space, so the result depends
        less on one seed; prediction evaluates all their trees in one pass.

    Attributes
    ----------
    classes_ : ndarray of str
        Class labels (single-label mode) or label names (multi-label mode).
    forest_ : Forest
        The fitted trees in portable form.
    n_features_in_ : int
        Number of features.
    n_iter_ : int
        Boosting iterations run.
    feature_names_ : tuple of str
        Names of the features.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> base = np.ones((30, 30), np.uint8)
    >>> def center():
    ...     g = base.copy(); g[12:18, 12:18] = 2; return g
    >>> def noisy():
    ...     g = base.copy(); g[rng.random(g.shape) < 0.05] = 2; return g
    >>> X = [center() for _ in range(20)] + [noisy() for _ in range(20)]
    >>> y = ["Center"] * 20 + ["none"] * 20
    >>> clf = WaferPatternClassifier(max_iter=20, min_samples_leaf=5).fit(X, y)
    >>> clf.predict([center(), noisy()]).tolist()
    ['Center', 'none']
    """

    def __init__(
        self,
        *,
        input: str = "grids",
        features: str = "standard",
        multilabel: bool = False,
        max_iter: int = 300,
        learning_rate: float = 0.1,
        max_leaf_nodes: int = 31,
        min_samples_leaf: int = 20,
        l2_regularization: float = 1.0,
        max_features: float = 1.0,
        class_weight: Any = None,
        random_state: Any = None,
        n_threads: int | None = None,
        n_models: int = 1,
    ) -> None:
        self.input = input
        self.features = features
        self.multilabel = multilabel
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.max_leaf_nodes = max_leaf_nodes
        self.min_samples_leaf = min_samples_leaf
        self.l2_regularization = l2_regularization
        self.max_features = max_features
        self.class_weight = class_weight
        self.random_state = random_state
        self.n_threads = n_threads
        self.n_models = n_models

    # ------------------------------------------------------------------ helpers
    def _check_params(self) -> None:
        where = "WaferPatternClassifier"
        check_choice(self.input, ("grids", "features"), name="input", where=where)
        check_choice(self.features, _FEATURE_SETS, name="features", where=where)
        for name, lo in (("max_iter", 1), ("max_leaf_nodes", 2), ("min_samples_leaf", 1), ("n_models", 1)):
            v = getattr(self, name)
            if not isinstance(v, int | np.integer) or isinstance(v, bool) or v < lo:
                raise YieldkitValueError(f"The {name!r} argument of {where} must be an int >= {lo}. Got {v!r} instead.")
        if not (0 < float(self.learning_rate) <= 1):
            raise YieldkitValueError(
                f"The 'learning_rate' argument of {where} must be in (0, 1]. Got {self.learning_rate!r} instead.")
        if not (0 < float(self.max_features) <= 1):
            raise YieldkitValueError(
                f"The 'max_features' argument of {where} must be in (0, 1]. Got {self.max_features!r} instead.")
        if float(self.l2_regularization) < 0:
            raise YieldkitValueError(
                f"The 'l2_regularization' argument of {where} must be >= 0. Got {self.l2_regularization!r} instead.")

    def _features(self, X: Any, *, reset: bool) -> np.ndarray:
        if self.input == "grids":
            F = self.transform_features(X)
            if reset:
                self.n_features_in_ = F.shape[1]
            return F
        if reset:
            return validate_data(self, X, reset=True, dtype=np.float64, ensure_all_finite="allow-nan")
        return validate_data(self, X, reset=False, dtype=np.float64, ensure_all_finite="allow-nan")

    def _grid_feature_names(self) -> tuple[str, ...]:
        extra = {"standard+image": image_feature_names(), "standard+shape": shape_feature_names(),
                 "standard+spot": spot_feature_names()}
        return feature_names() + extra.get(self.features, ())

    def transform_features(self, X: Any) -> np.ndarray:
        """The feature matrix this classifier computes from grids (or a die table), whatever ``input`` is."""
        check_choice(self.features, _FEATURE_SETS, name="features", where="WaferPatternClassifier")
        grids = _grids_of(X)
        F = extract_features(grids)
        if self.features == "standard+image":
            F = np.c_[F, image_features(grids)]
        elif self.features == "standard+shape":
            F = np.c_[F, shape_features(grids)]
        elif self.features == "standard+spot":
            F = np.c_[F, spot_features(grids)]
        return F

    def _seed(self, i: int) -> Any:
        """Boosting seed of the ``i``-th averaged model: ``random_state + i`` for an int seed."""
        rs = self.random_state
        return rs + i if isinstance(rs, int | np.integer) and not isinstance(rs, bool) else rs

    def _hgb(self, i: int = 0) -> Any:
        from sklearn.ensemble import HistGradientBoostingClassifier

        return HistGradientBoostingClassifier(
            max_iter=self.max_iter, learning_rate=self.learning_rate, max_leaf_nodes=self.max_leaf_nodes,
            min_samples_leaf=self.min_samples_leaf, l2_regularization=self.l2_regularization,
            max_features=self.max_features, class_weight=self.class_weight, early_stopping=False, random_state=self._seed(i),
        )

    # ------------------------------------------------------------------ API
    def fit(self, X: Any, y: Any) -> WaferPatternClassifier:
        """Fit the classifier.

        Parameters
        ----------
        X : sequence of 2-D grids, 3-D array, or feature matrix (``input="features"``)
            Training wafers.
        y : array-like of str, or indicator matrix / DataFrame of bool (``multilabel=True``)
            Pattern of every wafer.

        Returns
        -------
        self

        Raises
        ------
        YieldkitValueError
            On a bad hyperparameter, bad grids, or ``y`` of the wrong length or with one class.
        """
        self._check_params()
        if y is None:
            raise YieldkitValueError(
                "WaferPatternClassifier.fit requires y to be passed, but the target y is None.")
        F = self._features(X, reset=True)
        if F.shape[0] < 2:
            raise YieldkitValueError(
                f"The 'X' argument of WaferPatternClassifier.fit must hold at least 2 wafers. "
                f"Got n_samples={F.shape[0]} instead.")
        if self.input == "grids":
            self.feature_names_ = self._grid_feature_names()
        else:
            self.feature_names_ = tuple(getattr(self, "feature_names_in_", [f"x{i}" for i in range(F.shape[1])]))
        if self.multilabel:
            names = list(y.columns) if isinstance(y, pd.DataFrame) else None
            Y = check_array(np.asarray(y), ensure_2d=True, dtype=None)
            if Y.shape[0] != F.shape[0]:
                raise YieldkitValueError(
                    f"The 'y' argument of WaferPatternClassifier.fit must have one row per wafer ({F.shape[0]}). "
                    f"Got {Y.shape[0]} instead.")
            Y = Y.astype(bool)
            self.classes_ = np.asarray(names if names is not None else np.arange(Y.shape[1]))
            for j in range(Y.shape[1]):
                if Y[:, j].all() or not Y[:, j].any():
                    raise YieldkitValueError(
                        f"The 'y' argument of WaferPatternClassifier.fit must have positives and negatives "
                        f"for every label; label {self.classes_[j]!r} has only one value.")
            sets = []
            with threadpool_limits(limits=self.n_threads, user_api="openmp"):
                for i in range(self.n_models):
                    sets.append([self._hgb(i).fit(F, Y[:, j]) for j in range(Y.shape[1])])
        else:
            from sklearn.utils.validation import column_or_1d

            try:
                yy = column_or_1d(y, warn=True)
            except ValueError:
                yy = np.asarray(y)
            if yy.ndim != 1 or yy.shape[0] != F.shape[0]:
                raise YieldkitValueError(
                    f"The 'y' argument of WaferPatternClassifier.fit must be 1-D with one label per wafer "
                    f"({F.shape[0]}). Got shape {np.shape(y)} instead.")
            from sklearn.utils.multiclass import check_classification_targets

            check_classification_targets(yy)
            classes = np.unique(yy)
            if len(classes) < 2:
                raise YieldkitValueError(
                    "The 'y' argument of WaferPatternClassifier.fit must hold at least 2 classes. "
                    f"Got {len(classes)} instead.")
            with threadpool_limits(limits=self.n_threads, user_api="openmp"):
                sets = [[self._hgb(i).fit(F, yy)] for i in range(self.n_models)]
            self.classes_ = sets[0][0].classes_
        forests = [Forest.from_hgb(models) for models in sets]
        self.forest_ = forests[0] if len(forests) == 1 else Forest.average(forests)
        self.n_iter_ = int(max(m.n_iter_ for models in sets for m in models))
        return self

    def _proba(self, X: Any) -> np.ndarray:
        if not hasattr(self, "forest_"):
            raise PatternNotFittedError(
                "This WaferPatternClassifier instance is not fitted yet. Call 'fit' or load a model first.")
        F = self._features(X, reset=False) if self.input == "features" else self.transform_features(X)
        if F.shape[1] != self.n_features_in_:
            raise YieldkitValueError(
                f"X has {F.shape[1]} features, but WaferPatternClassifier was fitted with {self.n_features_in_}.")
        p = self.forest_.predict_proba(F)
        if not self.multilabel and p.shape[1] == 1:
            p = np.c_[1 - p[:, 0], p[:, 0]]
        return p

    def predict_proba(self, X: Any) -> np.ndarray:
        """Probability of every class (rows sum to 1), or of every label in multi-label mode.

        Returns
        -------
        ndarray of shape (n_wafers, len(classes_))
        """
        return self._proba(X)

    def predict(self, X: Any) -> np.ndarray:
        """Most probable pattern per wafer, or the indicator matrix (p >= 0.5) in multi-label mode."""
        p = self._proba(X)
        if self.multilabel:
            return (p >= 0.5).astype(np.int64)
        return self.classes_[np.argmax(p, axis=1)]

    def predict_table(self, X: Any, *, wafers: pd.DataFrame | None = None, causes: bool = True) -> pd.DataFrame:
        """Predictions as a tidy table: pattern, its probability and (optionally) candidate causes.

        In multi-label mode ``pattern`` lists every signature the wafer carries (probability
        >= 0.5, most probable first, joined by ``" + "``; ``"none"`` when there is none) and
        ``n_patterns`` counts them; candidate causes are those of each listed signature.

        Parameters
        ----------
        X : grids, features or a canonical die table
            As for :meth:`predict`. A die table gives one row per wafer, led by its ``lot_id`` and
            ``wafer_id``.
        wafers : DataFrame, optional
            Identifier columns (e.g. ``lot_id``, ``wafer_id``) placed before the predictions.
        causes : bool
            Add ``process_area`` and ``candidate_causes`` from :func:`yieldkit.classify.causes.pattern_causes`.
        """
        return prediction_table(self._proba, X, classes=self.classes_, multilabel=self.multilabel,
                                wafers=wafers, causes=causes)

    # ------------------------------------------------------------------ persistence
    def to_bytes(self, *, meta: dict[str, Any] | None = None) -> bytes:
        """The fitted model as the bytes of a compressed ``.npz`` (no pickle)."""
        if not hasattr(self, "forest_"):
            raise PatternNotFittedError("This WaferPatternClassifier instance is not fitted yet. Call 'fit' first.")
        info = {
            "format": _FORMAT, "format_version": _FORMAT_VERSION, "params": self.get_params(),
            "classes": [str(c) for c in self.classes_], "feature_names": list(self.feature_names_),
            "n_features": int(self.n_features_in_),
        }
        info["params"]["random_state"] = None if not isinstance(self.random_state, int) else self.random_state
        info["params"]["class_weight"] = self.class_weight if isinstance(self.class_weight, str | type(None)) else None
        info.update(meta or {})
        return savez_bytes(self.forest_.to_arrays(), info)

    def save(self, path: str | os.PathLike[str], *, meta: dict[str, Any] | None = None) -> str:
        """Write the model atomically to ``path`` (``.npz``); return its SHA-256 (hex)."""
        return write_model(self.to_bytes(meta=meta), path)

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, sha256: str | None = None) -> WaferPatternClassifier:
        """Load a model written by :meth:`save`.

        Parameters
        ----------
        path : path-like
            The ``.npz`` file.
        sha256 : str, optional
            Expected SHA-256 (hex) of the file; a mismatch raises.

        Raises
        ------
        YieldkitValueError
            When the hash does not match or the file is not a yieldkit pattern model.
        """
        return cls.from_bytes(read_checked(path, sha256), source=str(path))

    @classmethod
    def from_bytes(cls, data: bytes, *, source: str = "<bytes>") -> WaferPatternClassifier:
        """Rebuild a model from :meth:`to_bytes` output (never unpickles)."""
        arrays, meta = read_model(data, source, fmt=_FORMAT, version=_FORMAT_VERSION, what="yieldkit pattern model")
        params = {k: v for k, v in meta["params"].items() if k in cls().get_params()}
        obj = cls(**params)
        obj.forest_ = Forest.from_arrays(arrays)
        obj.classes_ = np.asarray(meta["classes"], dtype=object)
        obj.n_features_in_ = int(meta["n_features"])
        obj.n_iter_ = int(meta["params"].get("max_iter", 0))
        obj.feature_names_ = tuple(meta["feature_names"])
        if obj.input == "grids" and obj.feature_names_ != obj._grid_feature_names():
            raise YieldkitValueError(
                f"{source}: the model was trained on features that differ from this yieldkit's "
                "extract_features; retrain it with scripts/train_pattern_classifier.py.")
        obj.metadata_ = meta
        return obj

    def __sklearn_tags__(self):  # type: ignore[no-untyped-def]
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        return tags

