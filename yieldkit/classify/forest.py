"""Gradient-boosted trees in a portable form: flat numpy arrays and a vectorised traversal.

A fitted :class:`sklearn.ensemble.HistGradientBoostingClassifier` is exported to a handful of
arrays (split feature, threshold, children, leaf value, output column of every tree) that can be
saved with :func:`numpy.savez` and loaded with ``allow_pickle=False``. Prediction walks all trees
for all samples at once, one tree level per step, so it needs neither pickle nor a matching
scikit-learn version.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import YieldkitValueError

__all__ = ["Forest"]

_ARRAYS = ("feature", "threshold", "left", "right", "is_leaf", "value", "missing_left", "roots", "tree_out",
           "baseline")


class Forest:
    """Additive tree ensemble with a link function, evaluated in numpy.

    Parameters
    ----------
    feature, threshold, left, right, is_leaf, value, missing_left : ndarray
        One entry per node (all trees concatenated); children are global node indices. A sample
        goes left when ``x[feature] <= threshold`` (or when ``x`` is NaN and ``missing_left``).
    roots : ndarray of int
        Root node of every tree.
    tree_out : ndarray of int
        Output column each tree adds its leaf value to.
    baseline : ndarray of float
        Initial raw score of every output column.
    link : {"softmax", "sigmoid"}
        ``softmax`` over columns (multiclass) or ``sigmoid`` per column (binary or multi-label).
    """

    def __init__(self, *, feature, threshold, left, right, is_leaf, value, missing_left, roots, tree_out,
                 baseline, link: str) -> None:
        self.feature = np.asarray(feature, np.int64)
        self.threshold = np.asarray(threshold, np.float64)
        self.left = np.asarray(left, np.int64)
        self.right = np.asarray(right, np.int64)
        self.is_leaf = np.asarray(is_leaf, bool)
        self.value = np.asarray(value, np.float64)
        self.missing_left = np.asarray(missing_left, bool)
        self.roots = np.asarray(roots, np.int64)
        self.tree_out = np.asarray(tree_out, np.int64)
        self.baseline = np.asarray(baseline, np.float64).ravel()
        if link not in ("softmax", "sigmoid"):
            raise YieldkitValueError(f"link must be 'softmax' or 'sigmoid'. Got {link!r} instead.")
        self.link = link
        self._compile()

    def _compile(self) -> None:
        """Lay the nodes out for fast traversal: the children of a split are adjacent (``child``,
        ``child + 1``) and a leaf is its own child, so one step is ``node = child[node] + goes_right``."""
        n_nodes = len(self.feature)
        n_trees = len(self.roots)
        internal = np.flatnonzero(~self.is_leaf)
        pos = np.empty(n_nodes, np.int64)
        pos[self.roots] = np.arange(n_trees)
        k = np.arange(len(internal))
        pos[self.left[internal]] = n_trees + 2 * k
        pos[self.right[internal]] = n_trees + 2 * k + 1
        child = np.empty(n_nodes, np.int64)
        child[pos] = pos  # leaves point to themselves
        child[pos[internal]] = n_trees + 2 * k
        feat = np.zeros(n_nodes, np.int64)
        feat[pos[internal]] = self.feature[internal]
        thr = np.full(n_nodes, np.inf)
        thr[pos[internal]] = self.threshold[internal]
        miss = np.ones(n_nodes, bool)
        miss[pos[internal]] = self.missing_left[internal]
        leaf = np.zeros(n_nodes, bool)
        leaf[pos] = self.is_leaf
        value = np.zeros(n_nodes)
        value[pos] = self.value
        self._c_child, self._c_feat, self._c_thr, self._c_miss, self._c_leaf, self._c_value = (
            child, feat, thr, miss, leaf, value)
        self._c_onehot = np.zeros((n_trees, self.n_outputs))
        self._c_onehot[np.arange(n_trees), self.tree_out] = 1.0

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_hgb(cls, models: list[Any]) -> Forest:
        """Export fitted HistGradientBoostingClassifier models.

        One multiclass model gives a softmax forest with one column per class. Several binary
        models (one per label) give a sigmoid forest with one column per model; a single binary
        model gives one sigmoid column (probability of ``classes_[1]``).
        """
        parts: dict[str, list[np.ndarray]] = {k: [] for k in _ARRAYS}
        offset = 0
        n_out = 0
        multiclass = len(models) == 1 and len(models[0].classes_) > 2
        for m in models:
            if getattr(m, "is_categorical_", None) is not None and np.any(m.is_categorical_):
                raise YieldkitValueError("categorical features cannot be exported")
            k_per_iter = len(m._predictors[0])
            for iteration in m._predictors:
                for k, pred in enumerate(iteration):
                    nodes = pred.nodes
                    parts["feature"].append(nodes["feature_idx"])
                    parts["threshold"].append(nodes["num_threshold"])
                    parts["left"].append(nodes["left"].astype(np.int64) + offset)
                    parts["right"].append(nodes["right"].astype(np.int64) + offset)
                    parts["is_leaf"].append(nodes["is_leaf"].astype(bool))
                    parts["value"].append(nodes["value"])
                    parts["missing_left"].append(nodes["missing_go_to_left"].astype(bool))
                    parts["roots"].append(np.array([offset]))
                    parts["tree_out"].append(np.array([n_out + k]))
                    offset += len(nodes)
            parts["baseline"].append(np.asarray(m._baseline_prediction, np.float64).ravel())
            n_out += k_per_iter
        arrays = {k: np.concatenate(v) for k, v in parts.items()}
        return cls(**arrays, link="softmax" if multiclass else "sigmoid")

    # ------------------------------------------------------------------ prediction
    @property
    def n_outputs(self) -> int:
        return len(self.baseline)

    def raw_predict(self, X: np.ndarray, *, chunk: int = 1024) -> np.ndarray:
        """Raw scores (n_samples, n_outputs): baseline plus the sum of leaf values."""
        X = np.ascontiguousarray(X, dtype=np.float64)
        n, nf = X.shape
        n_trees = len(self.roots)
        out = np.tile(self.baseline, (n, 1))
        flat = X.ravel()
        child, feat, thr, miss, leaf = self._c_child, self._c_feat, self._c_thr, self._c_miss, self._c_leaf
        any_nan = bool(np.isnan(flat).any())
        for a in range(0, n, chunk):
            m = min(chunk, n - a)
            node = np.tile(np.arange(n_trees, dtype=np.int64), m)
            base = np.repeat(np.arange(a, a + m, dtype=np.int64) * nf, n_trees)
            active = np.arange(m * n_trees)
            while active.size:
                nd = node[active]
                xv = flat[base[active] + feat[nd]]
                right = ~(xv <= thr[nd])
                if any_nan:
                    right = np.where(np.isnan(xv), ~miss[nd], right)
                nd = child[nd] + right
                node[active] = nd
                active = active[~leaf[nd]]
            out[a:a + m] += self._c_value[node].reshape(m, n_trees) @ self._c_onehot
        return out

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Class probabilities (softmax) or per-column probabilities (sigmoid)."""
        raw = self.raw_predict(X)
        if self.link == "softmax":
            raw -= raw.max(axis=1, keepdims=True)
            e = np.exp(raw)
            return e / e.sum(axis=1, keepdims=True)
        return 1.0 / (1.0 + np.exp(-raw))

    # ------------------------------------------------------------------ (de)serialisation
    def to_arrays(self, prefix: str = "forest_") -> dict[str, np.ndarray]:
        """Arrays for :func:`numpy.savez` (compact dtypes)."""
        return {
            prefix + "feature": self.feature.astype(np.int32),
            prefix + "threshold": self.threshold,
            prefix + "left": self.left.astype(np.int32),
            prefix + "right": self.right.astype(np.int32),
            prefix + "is_leaf": self.is_leaf,
            prefix + "value": self.value,
            prefix + "missing_left": self.missing_left,
            prefix + "roots": self.roots.astype(np.int32),
            prefix + "tree_out": self.tree_out.astype(np.int32),
            prefix + "baseline": self.baseline,
            prefix + "link": np.array(self.link),
        }

    @classmethod
    def from_arrays(cls, arrays: Any, prefix: str = "forest_") -> Forest:
        """Rebuild from the mapping written by :meth:`to_arrays`."""
        try:
            kw = {k: np.asarray(arrays[prefix + k]) for k in _ARRAYS}
            link = str(np.asarray(arrays[prefix + "link"]))
        except KeyError as exc:
            raise YieldkitValueError(f"model file lacks the array {exc.args[0]!r}") from None
        return cls(**kw, link=link)


def savez_bytes(arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> bytes:
    """Serialise arrays plus JSON metadata into the bytes of a compressed ``.npz``."""
    buf = io.BytesIO()
    payload: dict[str, Any] = dict(arrays)
    payload["meta_json"] = np.frombuffer(json.dumps(meta, sort_keys=True).encode("utf-8"), np.uint8)
    np.savez_compressed(buf, **payload)
    return buf.getvalue()


def loadz(data: bytes) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Inverse of :func:`savez_bytes`; never unpickles."""
    with np.load(io.BytesIO(data), allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(arrays.pop("meta_json").tobytes().decode("utf-8"))
    return arrays, meta


#: what a model file that is not a readable ``.npz`` raises from numpy or zipfile
_UNREADABLE = (ValueError, OSError, KeyError, EOFError, zipfile.BadZipFile)


def write_model(data: bytes, path: str | os.PathLike[str]) -> str:
    """Write a model's bytes atomically to ``path``; return their SHA-256 (hex)."""
    from ..io.atomic import atomic_path

    with atomic_path(path) as tmp:
        Path(tmp).write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def model_format(data: bytes, source: str) -> Any:
    """The ``format`` a saved pattern model states in its metadata (any yieldkit model kind)."""
    try:
        _, meta = loadz(data)
    except _UNREADABLE as exc:
        # the loader's own text (numpy suggests allow_pickle) stays in the chained exception only
        raise YieldkitValueError(f"{source}: not a yieldkit pattern model") from exc
    return meta.get("format")


def read_model(data: bytes, source: str, *, fmt: str, version: int, what: str,
               unreadable: str | None = None) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The arrays and metadata of a saved model of format ``fmt``, checked: a readable ``.npz``
    (else "not a ``unreadable``", default ``what``), the format (else "not a ``what``") and a
    format version this yieldkit reads."""
    try:
        arrays, meta = loadz(data)
    except _UNREADABLE as exc:
        raise YieldkitValueError(f"{source}: not a {unreadable or what}") from exc
    if meta.get("format") != fmt:
        raise YieldkitValueError(f"{source}: not a {what} (format {meta.get('format')!r})")
    if int(meta.get("format_version", 0)) > version:
        raise YieldkitValueError(
            f"{source}: model format version {meta['format_version']} is newer than this yieldkit supports "
            f"({version}); upgrade yieldkit.")
    return arrays, meta
