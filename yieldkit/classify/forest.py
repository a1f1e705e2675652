"""Gradient-boosted trees in a portable form: flat numpy arrays and a vectorised traversal.

A fitted :class:`sklearn.ensemble.HistGradientBoostingClassifier` is exported to a handful of
arrays (split feature, threshold, children, leaf value, output column of every tree) that can be
saved with :func:`numpy.savez` and loaded with ``allow_pickle=False``. Prediction evaluates all
trees for blocks of samples with whole-array numpy operations (leaf bitmasks, or a level-by-level
walk for trees of more than 64 leaves), so it needs neither pickle nor a matching scikit-learn version.
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
        """Lay the nodes out for fast traversal.

        Trees of at most 64 leaves (every tree scikit-learn grows with ``max_leaf_nodes <= 64``) are
        evaluated with leaf bitmasks (QuickScorer [1]_): the leaves of a tree are
        numbered left to right, and a split the sample passes to the right rules out the leaves of its
        left subtree; the exit leaf is the first leaf no such split rules out, the lowest zero bit of
        the OR of their masks. Every split of every tree is tested, but with whole-array operations and
        no data-dependent control flow. The tests compare small integers: each feature is cut at the
        sorted distinct thresholds of its splits, so ``x > threshold`` is ``bin(x) > rank(threshold)``.
        Larger trees are walked one level per step (:meth:`_walk_leaf_values`).

        References
        ----------
        .. [1] C. Lucchese, F. M. Nardini, S. Orlando, R. Perego, N. Tonellotto and R. Venturini,
           "QuickScorer: a fast algorithm to rank documents with additive ensembles of regression
           trees", SIGIR 2015, pp. 73-82. https://doi.org/10.1145/2766462.2767733
        """
        n_trees = len(self.roots)
        self._c_onehot = np.zeros((n_trees, self.n_outputs))
        self._c_onehot[np.arange(n_trees), self.tree_out] = 1.0
        tree_of, n_leaves_below, first_leaf = self._tree_structure()
        n_leaves = np.bincount(tree_of[self.is_leaf], minlength=n_trees)
        internal = np.flatnonzero(~self.is_leaf)
        if (n_trees and n_leaves.max() > 64) or np.isnan(self.threshold[internal]).any():
            self._compile_walk()
            return
        self._c_walk = False
        mask_dtype = np.dtype(np.uint32) if not n_trees or n_leaves.max() <= 32 else np.dtype(np.uint64)
        # -- bins: the distinct thresholds of every feature, sorted; a split compares bin and rank
        feat, thr = self.feature[internal], self.threshold[internal]
        order = np.lexsort((thr, feat))
        f_sorted, t_sorted = feat[order], thr[order]
        new_feat = np.ones(len(order), bool)
        new_feat[1:] = f_sorted[1:] != f_sorted[:-1]
        new_cut = new_feat.copy()
        new_cut[1:] |= t_sorted[1:] != t_sorted[:-1]  # -0.0 and 0.0 are one cut, as in the comparison
        cut_id = np.cumsum(new_cut) - 1
        self._q_features = f_sorted[new_feat]
        self._q_cuts = t_sorted[new_cut]
        self._q_cut_start = np.append(cut_id[new_feat], len(self._q_cuts))
        self._q_cut_column = np.repeat(np.arange(len(self._q_features)), np.diff(self._q_cut_start))
        rank = np.empty(len(internal), np.int64)
        rank[order] = cut_id - cut_id[new_feat][np.cumsum(new_feat) - 1]
        column = np.empty(len(internal), np.intp)
        column[order] = np.cumsum(new_feat) - 1
        # a split whose missing values go left reads the bins in which NaN is bin 0 (never > rank);
        # in the others NaN is the last bin, beyond every rank, so it goes right
        column += len(self._q_features) * self.missing_left[internal]
        n_cuts = int(np.diff(self._q_cut_start).max()) if len(internal) else 0
        self._q_bin_dtype = np.dtype(np.uint8 if n_cuts <= 0xFF else np.uint16 if n_cuts <= 0xFFFF else np.uint32)
        # -- leaf masks: the bits of the leaves a split rules out when the sample goes right
        left = self.left[internal]
        left_bits = ((np.uint64(1) << n_leaves_below[left].astype(np.uint64)) - np.uint64(1)
                     ) << first_leaf[internal].astype(np.uint64)
        # -- split slots: trees sorted by split count (descending); slot k holds the k-th split of
        # every tree that has more than k, so slot k is a prefix of the sorted trees
        split_tree = tree_of[internal]
        n_splits = np.bincount(split_tree, minlength=n_trees)
        by_size = np.argsort(-n_splits, kind="stable")
        self._q_tree_pos = np.empty(n_trees, np.intp)
        self._q_tree_pos[by_size] = np.arange(n_trees)
        by_tree = np.argsort(split_tree, kind="stable")
        k = np.empty(len(internal), np.int64)
        k[by_tree] = np.arange(len(internal)) - np.repeat(np.cumsum(n_splits) - n_splits, n_splits)
        self._q_slot_size = np.bincount(k, minlength=int(n_splits.max()) if n_trees else 0)  # trees with > k splits
        slot_start = np.concatenate([[0], np.cumsum(self._q_slot_size)])
        slot = slot_start[k] + self._q_tree_pos[split_tree]
        self._q_slot_start = slot_start
        self._q_column = np.empty(len(internal), np.intp)
        self._q_column[slot] = column
        block = self._BLOCK
        rank_s = np.empty(len(internal), self._q_bin_dtype)
        rank_s[slot] = rank
        mask_s = np.empty(len(internal), mask_dtype)
        mask_s[slot] = left_bits.astype(mask_dtype)
        self._q_rank = np.repeat(rank_s[:, None], block, axis=1)
        self._q_mask = np.repeat(mask_s[:, None], block, axis=1)
        # -- leaf values by (sorted tree, leaf number)
        leaf_count_s = n_leaves[by_size]
        self._q_leaf_start = (np.cumsum(leaf_count_s) - leaf_count_s)[:, None]
        leaves = np.flatnonzero(self.is_leaf)
        self._q_value = np.empty(len(leaves))
        self._q_value[self._q_leaf_start[self._q_tree_pos[tree_of[leaves]], 0] + first_leaf[leaves]] = self.value[leaves]

    def _tree_structure(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per node: its tree, the number of leaves below it, and the left-to-right number (within
        its tree) of the first leaf below it."""
        n_nodes = len(self.feature)
        levels = [self.roots]
        while True:
            split = levels[-1][~self.is_leaf[levels[-1]]]
            if not split.size:
                break
            if len(levels) > n_nodes:
                raise YieldkitValueError("the forest's child arrays do not form trees")
            levels.append(np.concatenate([self.left[split], self.right[split]]))
        tree_of = np.zeros(n_nodes, np.int64)
        tree_of[self.roots] = np.arange(len(self.roots))
        for lv in levels[:-1]:
            split = lv[~self.is_leaf[lv]]
            tree_of[self.left[split]] = tree_of[split]
            tree_of[self.right[split]] = tree_of[split]
        below = self.is_leaf.astype(np.int64)
        for lv in reversed(levels[:-1]):
            split = lv[~self.is_leaf[lv]]
            below[split] = below[self.left[split]] + below[self.right[split]]
        first = np.zeros(n_nodes, np.int64)
        for lv in levels[:-1]:
            split = lv[~self.is_leaf[lv]]
            first[self.left[split]] = first[split]
            first[self.right[split]] = first[split] + below[self.left[split]]
        return tree_of, below, first

    def _compile_walk(self) -> None:
        """Layout for :meth:`_walk_leaf_values`: the children of a split are adjacent (``child``,
        ``child + 1``) and a leaf is its own child, so one step is ``node = child[node] + goes_right``."""
        self._c_walk = True
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

    @classmethod
    def average(cls, forests: list[Forest]) -> Forest:
        """One forest whose raw score is the mean of the raw scores of ``forests`` (same outputs and
        link): their trees side by side with leaf values divided by their number, the mean baseline.
        The probabilities are those of the averaged logits (softmax or sigmoid of the mean)."""
        if not forests:
            raise YieldkitValueError("Forest.average needs at least one forest.")
        f0 = forests[0]
        for f in forests[1:]:
            if f.link != f0.link or f.n_outputs != f0.n_outputs:
                raise YieldkitValueError(
                    f"Forest.average needs forests of one link and output count; got {f0.link}/{f0.n_outputs} "
                    f"and {f.link}/{f.n_outputs}.")
        k = len(forests)
        parts: dict[str, list[np.ndarray]] = {name: [] for name in _ARRAYS}
        offset = 0
        for f in forests:
            parts["feature"].append(f.feature)
            parts["threshold"].append(f.threshold)
            parts["left"].append(f.left + offset)
            parts["right"].append(f.right + offset)
            parts["is_leaf"].append(f.is_leaf)
            parts["value"].append(f.value / k)
            parts["missing_left"].append(f.missing_left)
            parts["roots"].append(f.roots + offset)
            parts["tree_out"].append(f.tree_out)
            offset += len(f.feature)
        arrays = {name: np.concatenate(v) for name, v in parts.items() if name != "baseline"}
        baseline = np.mean([f.baseline for f in forests], axis=0)
        return cls(**arrays, baseline=baseline, link=f0.link)

    # ------------------------------------------------------------------ prediction
    @property
    def n_outputs(self) -> int:
        return len(self.baseline)

    def raw_predict(self, X: np.ndarray, *, chunk: int = 1024) -> np.ndarray:
        """Raw scores (n_samples, n_outputs): baseline plus the sum of leaf values."""
        X = np.ascontiguousarray(X, dtype=np.float64)
        n = len(X)
        out = np.tile(self.baseline, (n, 1))
        leaf_values = self._walk_leaf_values if self._c_walk else self._mask_leaf_values
        for a in range(0, n, chunk):
            m = min(chunk, n - a)
            out[a:a + m] += leaf_values(X[a:a + m]) @ self._c_onehot
        return out

    #: samples evaluated together by :meth:`_mask_leaf_values`; their bins of one feature are gathered
    #: as one or more 8-byte words
    _BLOCK = 8

    def _mask_leaf_values(self, X: np.ndarray) -> np.ndarray:
        """The leaf value every tree gives every sample (n_samples, n_trees), from the leaf bitmasks."""
        m = len(X)
        block = self._BLOCK
        n_blocks = -(-m // block)
        n_trees = len(self.roots)
        n_cols = len(self._q_features)
        bins = np.zeros((2 * n_cols, n_blocks * block), self._q_bin_dtype)
        cuts, start = self._q_cuts, self._q_cut_start
        x = X[:, self._q_features].T
        if m <= block and n_cols:  # few samples: count the cuts below every value in one pass
            below = ~(x[self._q_cut_column] <= cuts[:, None])  # NaN is above every cut, as in searchsorted
            bins[:n_cols, :m] = np.add.reduceat(below, start[:-1], axis=0, dtype=np.intp)
        else:
            for c in range(n_cols):
                bins[c, :m] = np.searchsorted(cuts[start[c]:start[c + 1]], x[c])
        bins[n_cols:, :m] = bins[:n_cols, :m]
        nan = np.isnan(x)
        if nan.any():
            bins[n_cols:, :m][nan] = 0
        # (block, column, sample in block): one row is the bins of one column for the block's samples
        words = np.ascontiguousarray(bins.reshape(2 * n_cols, n_blocks, block).transpose(1, 0, 2)).view(np.uint64)
        goes_right = np.empty(self._q_rank.shape, bool)
        ruled_out = np.empty(self._q_mask.shape, self._q_mask.dtype)
        flat = ruled_out.reshape(-1)
        acc = np.empty(n_trees * block, ruled_out.dtype)
        slot_start, slot_size = self._q_slot_start * block, self._q_slot_size * block
        tree_pos, leaf_start, value = self._q_tree_pos, self._q_leaf_start, self._q_value
        out = np.empty((n_blocks * block, n_trees))
        for b in range(n_blocks):
            split_bins = np.take(words[b], self._q_column, axis=0).view(self._q_bin_dtype)
            np.greater(split_bins, self._q_rank, out=goes_right)
            np.multiply(goes_right, self._q_mask, out=ruled_out)
            acc.fill(0)
            for k in range(len(slot_size)):
                part = acc[:slot_size[k]]
                np.bitwise_or(part, flat[slot_start[k]:slot_start[k] + slot_size[k]], out=part)
            # the lowest zero bit of acc: its exit leaf's number
            exit_bit = np.bitwise_and(acc + 1, np.invert(acc))
            leaf = np.frexp(exit_bit.astype(np.float64))[1].reshape(n_trees, block) - 1
            out[b * block:(b + 1) * block] = value[leaf + leaf_start][tree_pos].T
        return out[:m]

    def _walk_leaf_values(self, X: np.ndarray) -> np.ndarray:
        """The leaf value every tree gives every sample (n_samples, n_trees), walking all trees for
        all samples at once, one level per step; a sample-tree pair leaves the walk at its leaf."""
        m, nf = X.shape
        n_trees = len(self.roots)
        flat = X.ravel()
        child, feat, thr, miss, leaf = self._c_child, self._c_feat, self._c_thr, self._c_miss, self._c_leaf
        any_nan = bool(np.isnan(flat).any())
        node = np.tile(np.arange(n_trees, dtype=np.int64), m)
        base = np.repeat(np.arange(m, dtype=np.int64) * nf, n_trees)
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
        return self._c_value[node].reshape(m, n_trees)

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


def savez_bytes(arrays: dict[str, np.ndarray], meta: dict[str, Any], *, compress: bool = True) -> bytes:
    """Serialise arrays plus JSON metadata into the bytes of an ``.npz`` (compressed unless
    ``compress=False``, for bytes that are read back at once and never stored)."""
    buf = io.BytesIO()
    payload: dict[str, Any] = dict(arrays)
    payload["meta_json"] = np.frombuffer(json.dumps(meta, sort_keys=True).encode("utf-8"), np.uint8)
    (np.savez_compressed if compress else np.savez)(buf, **payload)
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
