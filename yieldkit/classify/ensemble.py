"""A calibrated ensemble of pattern classifiers: :class:`EnsemblePatternClassifier`.

The members (boosted trees on hand-crafted features, :class:`~yieldkit.classify.pattern.WaferPatternClassifier`,
and small CNNs on the resampled map, :class:`~yieldkit.classify.cnn.CNNPatternClassifier`) predict
the same single-label classes; the ensemble averages their probabilities with fixed weights,
rescales the average by a temperature fitted on a calibration set
(:func:`yieldkit.classify.calibration.fit_temperature`) and answers ``"unknown"`` when the top
calibrated probability is below ``unknown_threshold``. The whole ensemble is one ``.npz`` file of
numpy arrays and JSON, read without pickle.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pandas as pd

from ..errors import YieldkitValueError
from .forest import Forest, loadz, model_format, read_model, savez_bytes, write_model

__all__ = ["EnsemblePatternClassifier", "pattern_model_from_bytes"]

_FORMAT = "yieldkit-ensemble-pattern-model"
_FORMAT_VERSION = 1


class EnsemblePatternClassifier:
    """Weighted average of single-label pattern classifiers, temperature-scaled, with "unknown".

    Parameters
    ----------
    members : sequence of fitted classifiers
        Single-label models with the same ``classes_`` in the same order (boosted trees with
        ``input="grids"`` and/or CNNs in softmax mode).
    weights : sequence of float, optional
        Weight of every member (>= 0, not all 0; normalised to sum 1). Default: equal weights.
    temperature : float
        Calibration: probabilities are ``softmax(log(p_avg) / temperature)`` (> 0; 1 keeps the
        average).
    unknown_threshold : float or None
        A wafer whose top calibrated probability is below it is predicted ``"unknown"``. None never
        answers ``"unknown"``.

    Attributes
    ----------
    classes_ : ndarray of str
        The classes, as in every member.
    forest_ : Forest
        The trees of the first boosted-tree member (its class probabilities from
        :func:`yieldkit.classify.extract_features`), for code that uses them directly.
    metadata_ : dict
        Training split, held-out figures and provenance when loaded from a file.
    """

    multilabel = False

    def __init__(self, members: Any, *, weights: Any = None, temperature: float = 1.0,
                 unknown_threshold: float | None = None) -> None:
        self.members = list(members)
        self.weights = None if weights is None else [float(w) for w in weights]
        self.temperature = temperature
        self.unknown_threshold = unknown_threshold
        self._check()
        self.metadata_: dict[str, Any] = {}

    def _check(self) -> None:
        where = "EnsemblePatternClassifier"
        if not self.members:
            raise YieldkitValueError(f"The 'members' argument of {where} must hold at least one fitted model.")
        classes = [tuple(str(c) for c in getattr(m, "classes_", ())) for m in self.members]
        if not classes[0] or any(c != classes[0] for c in classes):
            raise YieldkitValueError(f"The members of {where} must be fitted on the same classes. Got {classes} instead.")
        if any(getattr(m, "multilabel", False) for m in self.members):
            raise YieldkitValueError(f"The members of {where} must be single-label models.")
        if self.weights is not None:
            w = np.asarray(self.weights, np.float64)
            if w.shape != (len(self.members),) or np.any(w < 0) or not np.isfinite(w).all() or w.sum() <= 0:
                raise YieldkitValueError(
                    f"The 'weights' argument of {where} must hold one weight >= 0 per member, not all 0. "
                    f"Got {self.weights!r} instead.")
        if not (float(self.temperature) > 0):
            raise YieldkitValueError(f"The 'temperature' argument of {where} must be > 0. Got {self.temperature!r} instead.")
        u = self.unknown_threshold
        if u is not None and not (0 <= float(u) <= 1):
            raise YieldkitValueError(
                f"The 'unknown_threshold' argument of {where} must be in [0, 1] or None. Got {u!r} instead.")
        self.classes_ = np.asarray(classes[0], dtype=object)

    @property
    def weights_(self) -> np.ndarray:
        """The normalised member weights."""
        w = np.ones(len(self.members)) if self.weights is None else np.asarray(self.weights, np.float64)
        return w / w.sum()

    @property
    def trees_(self) -> Any:
        """The first boosted-tree member (a :class:`~yieldkit.classify.WaferPatternClassifier`)."""
        from .pattern import WaferPatternClassifier

        for m in self.members:
            if isinstance(m, WaferPatternClassifier):
                return m
        raise AttributeError("this ensemble has no boosted-tree member")

    @property
    def forest_(self) -> Forest:
        """The trees of the first boosted-tree member."""
        return self.trees_.forest_  # type: ignore[no-any-return]

    # ------------------------------------------------------------------ prediction
    def member_proba(self, X: Any) -> list[np.ndarray]:
        """Every member's probabilities (uncalibrated), in member order."""
        from .grid import as_grids
        from .pattern import _grids_of

        grids = as_grids(_grids_of(X), name="X", where="EnsemblePatternClassifier")
        return [np.asarray(m.predict_proba(grids), np.float64) for m in self.members]

    @staticmethod
    def combine(probas: list[np.ndarray], weights: Any, temperature: float = 1.0) -> np.ndarray:
        """``softmax(log(sum_i w_i p_i) / temperature)`` of member probabilities ``probas``.

        >>> p = EnsemblePatternClassifier.combine([np.array([[0.8, 0.2]]), np.array([[0.4, 0.6]])], [0.5, 0.5])
        >>> p.round(3).tolist()
        [[0.6, 0.4]]
        """
        w = np.asarray(weights, np.float64)
        avg = sum(wi * np.asarray(p, np.float64) for wi, p in zip(w / w.sum(), probas, strict=True))
        if float(temperature) == 1.0:
            return avg / avg.sum(axis=1, keepdims=True)
        from .calibration import softmax

        return softmax(np.log(np.maximum(avg, 1e-300)), float(temperature))

    def predict_proba(self, X: Any) -> np.ndarray:
        """Calibrated probability of every class (rows sum to 1).

        Parameters
        ----------
        X : sequence of 2-D grids, 3-D array, or a canonical die table
            The wafers.

        Returns
        -------
        ndarray of shape (n_wafers, len(classes_))
        """
        return self.combine(self.member_proba(X), self.weights_, self.temperature)

    def _labels(self, p: np.ndarray) -> np.ndarray:
        top = self.classes_[np.argmax(p, axis=1)].astype(object)
        if self.unknown_threshold is not None:
            top[p.max(axis=1) < float(self.unknown_threshold)] = "unknown"
        return top

    def predict(self, X: Any) -> np.ndarray:
        """Most probable pattern per wafer, ``"unknown"`` below ``unknown_threshold``."""
        return self._labels(self.predict_proba(X))

    def predict_table(self, X: Any, *, wafers: pd.DataFrame | None = None, causes: bool = True) -> pd.DataFrame:
        """Predictions as a tidy table, as :meth:`WaferPatternClassifier.predict_table
        <yieldkit.classify.pattern.WaferPatternClassifier.predict_table>`; ``pattern`` is
        ``"unknown"`` below ``unknown_threshold``."""
        from .pattern import prediction_table

        return prediction_table(self.predict_proba, X, classes=self.classes_, multilabel=False,
                                labels=self._labels, wafers=wafers, causes=causes)

    # ------------------------------------------------------------------ persistence
    def to_bytes(self, *, meta: dict[str, Any] | None = None) -> bytes:
        """The ensemble as the bytes of one compressed ``.npz`` (members' arrays and JSON; no pickle)."""
        arrays: dict[str, np.ndarray] = {}
        infos = []
        for i, m in enumerate(self.members):
            a, info = loadz(m.to_bytes())
            arrays.update({f"m{i}__{k}": v for k, v in a.items()})
            infos.append(info)
        head: dict[str, Any] = dict(meta or {})
        head.update({  # the structure wins over same-named metadata
            "format": _FORMAT, "format_version": _FORMAT_VERSION, "classes": [str(c) for c in self.classes_],
            "weights": self.weights_.tolist(), "temperature": float(self.temperature),
            "unknown_threshold": None if self.unknown_threshold is None else float(self.unknown_threshold),
            "members": infos,
        })
        return savez_bytes(arrays, head)

    def save(self, path: str | os.PathLike[str], *, meta: dict[str, Any] | None = None) -> str:
        """Write the ensemble atomically to ``path`` (``.npz``); return its SHA-256 (hex)."""
        return write_model(self.to_bytes(meta=meta), path)

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, sha256: str | None = None) -> EnsemblePatternClassifier:
        """Load an ensemble written by :meth:`save` (a SHA-256 mismatch raises ``YieldkitValueError``)."""
        from .pattern import read_checked

        return cls.from_bytes(read_checked(path, sha256), source=str(path))

    @classmethod
    def from_bytes(cls, data: bytes, *, source: str = "<bytes>") -> EnsemblePatternClassifier:
        """Rebuild an ensemble from :meth:`to_bytes` output (never unpickles)."""
        arrays, meta = read_model(data, source, fmt=_FORMAT, version=_FORMAT_VERSION,
                                  what="yieldkit ensemble pattern model", unreadable="yieldkit pattern model")
        from .cnn import model_from_bytes

        members = []
        try:
            for i, info in enumerate(meta["members"]):
                pre = f"m{i}__"
                sub = {k[len(pre):]: v for k, v in arrays.items() if k.startswith(pre)}
                members.append(model_from_bytes(savez_bytes(sub, info, compress=False), source=f"{source} (member {i})"))
            obj = cls(members, weights=meta["weights"], temperature=meta["temperature"],
                      unknown_threshold=meta["unknown_threshold"])
        except (KeyError, TypeError) as exc:
            raise YieldkitValueError(f"{source}: malformed yieldkit ensemble pattern model ({exc!r})") from None
        obj.metadata_ = {k: v for k, v in meta.items() if k != "members"}
        return obj

    def __repr__(self) -> str:
        names = ", ".join(type(m).__name__ for m in self.members)
        return (f"EnsemblePatternClassifier([{names}], weights={self.weights_.round(3).tolist()}, "
                f"temperature={float(self.temperature):.3g}, unknown_threshold={self.unknown_threshold!r})")


def pattern_model_from_bytes(data: bytes, *, source: str = "<bytes>") -> Any:
    """A saved pattern model of any kind (ensemble, CNN or boosted trees), by the format in its metadata."""
    if model_format(data, source) == _FORMAT:
        return EnsemblePatternClassifier.from_bytes(data, source=source)
    from .cnn import model_from_bytes

    return model_from_bytes(data, source=source)
