"""Small convolutional networks for wafer maps, evaluated in numpy.

A wafer grid of any size becomes a fixed-size two-channel image (:func:`grid_tensor`): channel 0
is the failing share and channel 1 the die-present share of every output cell, both resampled by
area. :class:`ConvNet` runs a small CNN described by a JSON-able layer list plus numpy arrays
(weights in PyTorch's layout, batch-norm folded into the convolutions), by im2col and one matrix
product per layer, chunk by chunk. :class:`CNNPatternClassifier` wraps a network as a fitted
pattern classifier with the same public surface as
:class:`~yieldkit.classify.pattern.WaferPatternClassifier` (``predict_proba``, ``predict``,
``predict_table``, ``save``/``load`` with the SHA-256 check). Networks are trained elsewhere (for
instance in PyTorch by a training script) and exported to the arrays; yieldkit never imports a
deep-learning framework, and a saved model is a plain ``.npz`` read without pickle.

Layer spec
----------
``spec = {"layers": [...]}``; every layer is a dict with a ``"type"``:

``{"type": "conv2d", "name": N, "stride": s, "padding": p}``
    Cross-correlation with arrays ``N_weight`` (out, in, kh, kw) and ``N_bias`` (out,), zero
    padding ``p`` on every side (an int or ``[ph, pw]``), stride ``s`` (int or ``[sh, sw]``).
``{"type": "relu"}``
    ``max(x, 0)``.
``{"type": "maxpool", "kernel": k, "stride": s, "padding": p}``
    Max over ``k x k`` windows (``stride`` defaults to ``k``, ``padding`` to 0; padded cells are
    -inf; partial windows at the end are dropped, as PyTorch's ``floor`` mode).
``{"type": "gap"}``
    Global average pool: (n, c, h, w) -> (n, c).
``{"type": "flatten"}``
    (n, c, h, w) -> (n, c * h * w) in channel-major order (as ``torch.flatten`` on NCHW).
``{"type": "features", "name": N}``
    Concatenate the extra per-wafer features given to :meth:`ConvNet.forward`, standardised as
    ``(f - N_mean) / N_scale``, after the current (flat) activations.
``{"type": "dense", "name": N}``
    ``x @ N_weight.T + N_bias`` with ``N_weight`` of shape (out, in).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view
from threadpoolctl import threadpool_limits

from ..errors import YieldkitValueError, check_choice
from .features import _resample_matrix
from .forest import model_format, read_model, savez_bytes, write_model
from .grid import as_grids, shape_batches

__all__ = ["CNNPatternClassifier", "ConvNet", "grid_tensor"]

_FORMAT = "yieldkit-cnn-pattern-model"
_FORMAT_VERSION = 1
_LAYERS = ("conv2d", "relu", "maxpool", "gap", "flatten", "features", "dense")
_PIX_BUDGET = 4_000_000  # input cells resampled per batch in grid_tensor


def grid_tensor(grids: Any, size: int = 64) -> np.ndarray:
    """Wafer grids of any size as a (n, 2, size, size) float32 image, resampled by area.

    Every output cell covers ``height / size`` x ``width / size`` input cells (fractions of cells
    count by the area covered). Channel 0 is the covered area's share of failing dies, channel 1
    its share of die cells (pass or fail), both in [0, 1].

    Parameters
    ----------
    grids : ndarray (n, height, width) or sequence of 2-D arrays
        Grids with 0 = no die, 1 = pass, 2 = fail; the sizes may differ.
    size : int
        Side of the output image [cells], >= 1.

    Returns
    -------
    ndarray of shape (n, 2, size, size), float32

    Notes
    -----
    Resampling is linear: ``out = R_h @ g @ R_w.T`` with ``R[i, j]`` the share of output cell ``i``
    covered by input cell ``j``. It is exact for integer ratios (a ``k``-fold reduction averages
    ``k x k`` blocks, a ``k``-fold enlargement repeats every cell) and keeps the failing share of
    the wafer: ``out[:, 0].sum() / out[:, 1].sum()`` equals ``n_fail / n_die`` of the grid.

    Examples
    --------
    >>> g = np.ones((4, 4), np.uint8); g[:2, :2] = 2; g[3, 3] = 0
    >>> t = grid_tensor([g], size=2)
    >>> t[0, 0].tolist(), t[0, 1].tolist()
    ([[1.0, 0.0], [0.0, 0.0]], [[1.0, 1.0], [1.0, 0.75]])
    """
    if not isinstance(size, int | np.integer) or isinstance(size, bool) or size < 1:
        raise YieldkitValueError(f"The 'size' argument of grid_tensor must be an int >= 1. Got {size!r} instead.")
    gl = as_grids(grids, name="grids", where="grid_tensor")
    out = np.zeros((len(gl), 2, size, size), np.float32)
    if not gl:
        return out
    for part, g in shape_batches(gl, _PIX_BUDGET):
        ry, rx = _resample_matrix(g.shape[1], size), _resample_matrix(g.shape[2], size)
        for c, cells in enumerate(((g == 2), (g > 0))):
            out[part, c] = ry @ cells.astype(np.float32) @ rx.T
    np.clip(out, 0.0, 1.0, out=out)
    return out


def _boxed(g: np.ndarray) -> np.ndarray:
    """The grid cut to the bounding box of its dies and padded with no-die cells to a centred square."""
    rows, cols = np.flatnonzero(g.any(axis=1)), np.flatnonzero(g.any(axis=0))
    if not len(rows):
        return g
    g = g[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    h, w = g.shape
    side = max(h, w)
    top, left = (side - h) // 2, (side - w) // 2
    return np.pad(g, ((top, side - h - top), (left, side - w - left)))


def _pair(v: Any, what: str) -> tuple[int, int]:
    a = np.atleast_1d(np.asarray(v, dtype=np.int64))
    if a.size == 1:
        a = np.repeat(a, 2)
    if a.shape != (2,):
        raise YieldkitValueError(f"ConvNet spec: {what} must be an int or a pair of ints. Got {v!r} instead.")
    return int(a[0]), int(a[1])


class ConvNet:
    """A small CNN (convolutions, ReLU, max-pooling, global average pooling, dense) in numpy.

    Parameters
    ----------
    spec : dict
        ``{"layers": [...]}``, JSON-able; see the module docstring for the layer types.
    arrays : mapping of str to ndarray
        The weights by name (``"<layer>_weight"``, ``"<layer>_bias"``, ``"<layer>_mean"``,
        ``"<layer>_scale"``), convolution weights in PyTorch's (out, in, kh, kw) layout.

    Notes
    -----
    Activations are kept channels-last. A convolution gathers every window with
    :func:`numpy.lib.stride_tricks.sliding_window_view` (im2col) and multiplies by the weight
    matrix, in float32. :meth:`forward` works on ``chunk`` wafers at a time, so the memory is
    bounded by the chunk size, not the batch.

    Examples
    --------
    >>> spec = {"layers": [{"type": "conv2d", "name": "c", "padding": 1}, {"type": "relu"}, {"type": "maxpool", "kernel": 3},
    ...                    {"type": "flatten"}, {"type": "dense", "name": "d"}]}
    >>> arrays = {"c_weight": np.ones((1, 2, 3, 3)), "c_bias": np.zeros(1),
    ...           "d_weight": np.ones((1, 1)), "d_bias": np.zeros(1)}
    >>> ConvNet(spec, arrays).forward(np.ones((1, 2, 3, 3))).tolist()  # the middle window sums 2 x 3 x 3 ones
    [[18.0]]
    """

    def __init__(self, spec: dict[str, Any], arrays: Any) -> None:
        layers = spec.get("layers") if isinstance(spec, dict) else None
        if not isinstance(layers, list) or not layers:
            raise YieldkitValueError("ConvNet spec must be a dict with a non-empty list 'layers'.")
        self.spec = {"layers": [dict(layer) for layer in layers]}
        self.arrays: dict[str, np.ndarray] = {}
        self._wmat: dict[str, np.ndarray] = {}  # convolution weights as (kh * kw * in, out) matrices
        self.n_features_ = 0
        for i, layer in enumerate(self.spec["layers"]):
            kind = check_choice(layer.get("type"), _LAYERS, name=f"layers[{i}]['type']", where="ConvNet")
            if kind in ("conv2d", "dense", "features"):
                name = layer.get("name")
                if not isinstance(name, str) or not name:
                    raise YieldkitValueError(f"ConvNet spec: layer {i} ({kind}) needs a 'name'.")
                parts = ("mean", "scale") if kind == "features" else ("weight", "bias")
                for part in parts:
                    key = f"{name}_{part}"
                    try:
                        self.arrays[key] = np.asarray(arrays[key], dtype=np.float32)
                    except KeyError:
                        raise YieldkitValueError(f"ConvNet: the array {key!r} of layer {i} ({kind}) is missing.") from None
                w = self.arrays[f"{name}_{parts[0]}"]
                b = self.arrays[f"{name}_{parts[1]}"]
                want = {"conv2d": 4, "dense": 2, "features": 1}[kind]
                if w.ndim != want or b.ndim != 1 or b.shape[0] != w.shape[0]:
                    raise YieldkitValueError(
                        f"ConvNet: layer {i} ({kind} {name!r}) has arrays of shapes {w.shape} and {b.shape}.")
                if kind == "features":
                    if self.n_features_:
                        raise YieldkitValueError("ConvNet spec: at most one 'features' layer.")
                    self.n_features_ = int(w.shape[0])
                    if np.any(self.arrays[f"{name}_scale"] == 0):
                        raise YieldkitValueError(f"ConvNet: {name}_scale must be non-zero.")
            if kind == "conv2d":
                w = self.arrays[f"{layer['name']}_weight"]
                self._wmat[layer["name"]] = np.ascontiguousarray(w.transpose(2, 3, 1, 0).reshape(-1, w.shape[0]))
                _pair(layer.get("stride", 1), "stride")
                _pair(layer.get("padding", 0), "padding")
            if kind == "maxpool":
                _pair(layer.get("kernel", 2), "kernel")

    # ------------------------------------------------------------------ layers (channels-last)
    def _conv(self, x: np.ndarray, name: str, stride: tuple[int, int], pad: tuple[int, int]) -> np.ndarray:
        n, h, wd, c = x.shape
        o, ci, kh, kw = self.arrays[f"{name}_weight"].shape
        if ci != c:
            raise YieldkitValueError(f"ConvNet: the convolution {name!r} expects {ci} input channels, got {c}.")
        if pad != (0, 0):
            x = np.pad(x, ((0, 0), (pad[0], pad[0]), (pad[1], pad[1]), (0, 0)))
        # im2col: every window as one row ordered (kh, kw, c), contiguous along the channels
        win = sliding_window_view(x, (kh, kw), axis=(1, 2))[:, ::stride[0], ::stride[1]]  # (n, oh, ow, c, kh, kw)
        oh, ow = win.shape[1], win.shape[2]
        cols = win.transpose(0, 1, 2, 4, 5, 3).reshape(n * oh * ow, kh * kw * c)
        y = cols @ self._wmat[name]
        y += self.arrays[f"{name}_bias"]
        return y.reshape(n, oh, ow, o)

    @staticmethod
    def _maxpool(x: np.ndarray, kernel: tuple[int, int], stride: tuple[int, int], pad: tuple[int, int]) -> np.ndarray:
        if pad != (0, 0):
            x = np.pad(x, ((0, 0), (pad[0], pad[0]), (pad[1], pad[1]), (0, 0)), constant_values=-np.inf)
        (kh, kw), (sh, sw) = kernel, stride
        oh, ow = (x.shape[1] - kh) // sh + 1, (x.shape[2] - kw) // sw + 1
        out = None
        for i in range(kh):  # the maximum of the kh * kw strided views, one per window offset
            for j in range(kw):
                v = x[:, i:i + sh * (oh - 1) + 1:sh, j:j + sw * (ow - 1) + 1:sw]
                out = v.copy() if out is None else np.maximum(out, v, out=out)
        assert out is not None
        return out

    def _forward_chunk(self, x: np.ndarray, extra: np.ndarray | None) -> np.ndarray:
        a = x
        for layer in self.spec["layers"]:
            kind = layer["type"]
            if kind == "conv2d":
                name = layer["name"]
                a = self._conv(a, name, _pair(layer.get("stride", 1), "stride"), _pair(layer.get("padding", 0), "padding"))
            elif kind == "relu":
                np.maximum(a, 0, out=a)
            elif kind == "maxpool":
                k = _pair(layer.get("kernel", 2), "kernel")
                a = self._maxpool(a, k, _pair(layer.get("stride", k), "stride"), _pair(layer.get("padding", 0), "padding"))
            elif kind == "gap":
                a = a.mean(axis=(1, 2), dtype=np.float32)
            elif kind == "flatten":
                a = np.ascontiguousarray(a.transpose(0, 3, 1, 2)).reshape(len(a), -1)
            elif kind == "features":
                name = layer["name"]
                assert extra is not None
                f = (extra - self.arrays[f"{name}_mean"]) / self.arrays[f"{name}_scale"]
                a = np.concatenate([a.reshape(len(a), -1), f.astype(np.float32)], axis=1)
            else:  # dense
                name = layer["name"]
                if a.ndim != 2:
                    raise YieldkitValueError("ConvNet: a dense layer needs flat input; add 'gap' or 'flatten' before it.")
                a = a @ self.arrays[f"{name}_weight"].T + self.arrays[f"{name}_bias"]
        if a.ndim != 2:
            raise YieldkitValueError("ConvNet: the last layer must give flat output (n, k); end with 'dense'.")
        return a

    def forward(self, x: Any, *, features: Any = None, chunk: int = 32, n_threads: int | None = 1) -> np.ndarray:
        """Logits of the network for a batch of images.

        Parameters
        ----------
        x : array-like of shape (n, channels, height, width)
            Input images (e.g. :func:`grid_tensor`).
        features : array-like of shape (n, n_features), optional
            Extra per-wafer features, required when the spec has a ``"features"`` layer.
        chunk : int
            Images processed at a time (bounds the memory of the im2col matrices). A short last
            chunk is filled up with blank images, so every matrix product has the same shape and
            an image's logits do not depend on the batch it came in (BLAS kernels round
            differently for different matrix sizes).
        n_threads : int or None
            BLAS threads for the matrix products (None: the library's default). The products are
            small, so one thread is fastest on a busy machine.

        Returns
        -------
        ndarray of shape (n, k), float32
        """
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 4:
            raise YieldkitValueError(
                f"The 'x' argument of ConvNet.forward must be 4-D (n, channels, height, width). Got shape {x.shape}.")
        if int(chunk) < 1:
            raise YieldkitValueError(f"The 'chunk' argument of ConvNet.forward must be >= 1. Got {chunk!r} instead.")
        f = None
        if self.n_features_:
            if features is None:
                raise YieldkitValueError("ConvNet.forward: this network takes extra features; pass 'features'.")
            f = np.asarray(features, dtype=np.float32)
            if f.shape != (len(x), self.n_features_):
                raise YieldkitValueError(
                    f"The 'features' argument of ConvNet.forward must have shape {(len(x), self.n_features_)}. "
                    f"Got {f.shape} instead.")
            f = np.nan_to_num(f, nan=0.0, posinf=0.0, neginf=0.0)
        nhwc = x.transpose(0, 2, 3, 1)
        chunk = int(chunk)

        def padded(a: np.ndarray) -> np.ndarray:  # a short last chunk, filled up with zeros
            return a if len(a) == chunk else np.concatenate([a, np.zeros((chunk - len(a), *a.shape[1:]), a.dtype)])

        with threadpool_limits(limits=n_threads, user_api="blas"):
            parts = [self._forward_chunk(padded(np.ascontiguousarray(nhwc[a:a + chunk])),
                                         None if f is None else padded(f[a:a + chunk]))[:len(x) - a]
                     for a in range(0, len(x), chunk)]
        if not parts:
            return np.zeros((0, self.n_outputs), np.float32)
        return np.concatenate(parts).astype(np.float32, copy=False)

    @property
    def n_outputs(self) -> int:
        """Width of the output: the rows of the last dense layer."""
        dense = [la for la in self.spec["layers"] if la["type"] == "dense"]
        return int(self.arrays[f"{dense[-1]['name']}_weight"].shape[0]) if dense else 0

    # ------------------------------------------------------------------ (de)serialisation
    def to_arrays(self, prefix: str = "net_") -> dict[str, np.ndarray]:
        """The weights for :func:`numpy.savez`, every name led by ``prefix``."""
        return {prefix + k: v for k, v in self.arrays.items()}

    @classmethod
    def from_arrays(cls, arrays: Any, spec: dict[str, Any], prefix: str = "net_") -> ConvNet:
        """Rebuild from the mapping written by :meth:`to_arrays` and the layer spec."""
        return cls(spec, {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)})


class CNNPatternClassifier:
    """A wafer-map pattern classifier whose model is a :class:`ConvNet`.

    The network is trained outside yieldkit and wrapped with :meth:`from_net`, or a saved model is
    read with :meth:`load` / :meth:`from_bytes`. The public surface matches
    :class:`~yieldkit.classify.pattern.WaferPatternClassifier`: ``classes_``, ``multilabel``,
    ``predict_proba``, ``predict``, ``predict_table``, ``save``/``load``, ``metadata_``.

    Parameters
    ----------
    size : int
        Side of the image the grids are resampled to (:func:`grid_tensor`) [cells].
    multilabel : bool
        One sigmoid per label (several patterns per wafer); a label is on when its probability
        is >= ``threshold``. Otherwise one softmax over the classes.
    threshold : float
        Probability at which a label is on (multi-label mode), in (0, 1).
    temperature : float
        Softmax temperature (> 0; calibration): probabilities are ``softmax(logits / temperature)``.
    unknown_threshold : float or None
        Softmax mode: a wafer whose top probability is below it is predicted ``"unknown"``.
        None never answers ``"unknown"``.
    features : {None, "standard"}
        ``"standard"``: the network also takes the features of
        :func:`yieldkit.classify.extract_features` (its spec has a ``"features"`` layer).
    box_margin : int or None
        None: every grid is resampled to ``size`` as given. An int ``m``: every grid is first cut to
        the bounding box of its dies and padded with no-die cells to a centred square, which is
        resampled to ``size - m`` cells and placed at row and column ``m`` of the image (the
        layout of training maps whose wafer fills all but the first ``m`` rows and columns, as
        MixedWM38's), so a die table, whose grids are cut to the dies, gives the training layout.

    Attributes
    ----------
    net_ : ConvNet
    classes_ : ndarray of str
        Class labels (softmax) or label names (multi-label).
    feature_names_ : tuple of str
        Names of the extra features (empty without them).
    metadata_ : dict
        The JSON metadata of a loaded model (training data, figures, citation).

    Examples
    --------
    >>> spec = {"layers": [{"type": "gap"}, {"type": "dense", "name": "d"}]}
    >>> net = ConvNet(spec, {"d_weight": np.array([[100.0, 0.0]]), "d_bias": np.array([-4.0])})
    >>> clf = CNNPatternClassifier.from_net(net, ["Center"], size=8, multilabel=True)
    >>> g = np.ones((16, 16), np.uint8); g[6:10, 6:10] = 2
    >>> clf.predict([g, np.ones((16, 16), np.uint8)]).tolist()
    [[1], [0]]
    """

    net_: ConvNet
    classes_: np.ndarray
    feature_names_: tuple[str, ...]
    metadata_: dict[str, Any]

    def __init__(self, *, size: int = 64, multilabel: bool = False, threshold: float = 0.5, temperature: float = 1.0,
                 unknown_threshold: float | None = None, features: str | None = None,
                 box_margin: int | None = None) -> None:
        self.size = size
        self.multilabel = multilabel
        self.threshold = threshold
        self.temperature = temperature
        self.unknown_threshold = unknown_threshold
        self.features = features
        self.box_margin = box_margin

    def get_params(self) -> dict[str, Any]:
        """The options, as given to the constructor."""
        return {"size": self.size, "multilabel": self.multilabel, "threshold": self.threshold,
                "temperature": self.temperature, "unknown_threshold": self.unknown_threshold,
                "features": self.features, "box_margin": self.box_margin}

    def _check_params(self) -> None:
        where = "CNNPatternClassifier"
        check_choice(self.features, (None, "standard"), name="features", where=where)
        if not isinstance(self.size, int | np.integer) or isinstance(self.size, bool) or self.size < 1:
            raise YieldkitValueError(f"The 'size' argument of {where} must be an int >= 1. Got {self.size!r} instead.")
        if not (0 < float(self.threshold) < 1):
            raise YieldkitValueError(f"The 'threshold' argument of {where} must be in (0, 1). Got {self.threshold!r} instead.")
        if not (float(self.temperature) > 0):
            raise YieldkitValueError(f"The 'temperature' argument of {where} must be > 0. Got {self.temperature!r} instead.")
        m = self.box_margin
        if m is not None and (not isinstance(m, int | np.integer) or isinstance(m, bool) or not 0 <= m < self.size):
            raise YieldkitValueError(
                f"The 'box_margin' argument of {where} must be None or an int in [0, size). Got {m!r} instead.")
        u = self.unknown_threshold
        if u is not None and not (0 <= float(u) <= 1):
            raise YieldkitValueError(
                f"The 'unknown_threshold' argument of {where} must be in [0, 1] or None. Got {u!r} instead.")

    @classmethod
    def from_net(cls, net: ConvNet, classes: Any, **options: Any) -> CNNPatternClassifier:
        """A fitted classifier from a network and its class (label) names.

        ``options`` are the constructor's parameters. The network must have one output per class
        and a ``"features"`` layer exactly when ``features="standard"``.
        """
        obj = cls(**options)
        obj._check_params()
        obj.net_ = net
        obj.classes_ = np.asarray([str(c) for c in classes], dtype=object)
        obj.feature_names_ = obj._wanted_feature_names()
        if net.n_outputs != len(obj.classes_):
            raise YieldkitValueError(
                f"CNNPatternClassifier: the network has {net.n_outputs} outputs for {len(obj.classes_)} classes.")
        if net.n_features_ != len(obj.feature_names_):
            raise YieldkitValueError(
                f"CNNPatternClassifier: the network takes {net.n_features_} extra features, the option "
                f"features={obj.features!r} gives {len(obj.feature_names_)}.")
        obj.metadata_ = {}
        return obj

    def _wanted_feature_names(self) -> tuple[str, ...]:
        if self.features == "standard":
            from .features import feature_names

            return feature_names()
        return ()

    # ------------------------------------------------------------------ prediction
    def _check_fitted(self) -> None:
        if not hasattr(self, "net_"):
            from .pattern import PatternNotFittedError

            raise PatternNotFittedError(
                "This CNNPatternClassifier instance is not fitted yet. Use from_net or load a model first.")

    def decision_function(self, X: Any) -> np.ndarray:
        """Logits of the network (n_wafers, len(classes_)), float32."""
        self._check_fitted()
        from .pattern import _grids_of

        grids = as_grids(_grids_of(X), name="X", where="CNNPatternClassifier")
        extra = None
        if self.features == "standard":
            from .features import extract_features

            extra = extract_features(grids)
        return self.net_.forward(self._image(grids), features=extra)

    def _image(self, grids: list[np.ndarray]) -> np.ndarray:
        if self.box_margin is None:
            return grid_tensor(grids, self.size)
        m = int(self.box_margin)
        x = np.zeros((len(grids), 2, self.size, self.size), np.float32)
        x[:, :, m:, m:] = grid_tensor([_boxed(g) for g in grids], self.size - m)
        return x

    def predict_proba(self, X: Any) -> np.ndarray:
        """Probability of every class (rows sum to 1), or of every label in multi-label mode.

        Parameters
        ----------
        X : sequence of 2-D grids, 3-D array, or a canonical die table
            The wafers.

        Returns
        -------
        ndarray of shape (n_wafers, len(classes_)), float64
        """
        z = self.decision_function(X).astype(np.float64)
        if self.multilabel:
            return 0.5 * (1.0 + np.tanh(0.5 * z))  # the logistic function, without overflow
        z = z / float(self.temperature)
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    def _labels(self, p: np.ndarray) -> np.ndarray:
        top = self.classes_[np.argmax(p, axis=1)].astype(object)
        if self.unknown_threshold is not None:
            top[p.max(axis=1) < float(self.unknown_threshold)] = "unknown"
        return top

    def predict(self, X: Any) -> np.ndarray:
        """Most probable pattern per wafer (``"unknown"`` below ``unknown_threshold``), or the
        indicator matrix (p >= ``threshold``) in multi-label mode."""
        p = self.predict_proba(X)
        if self.multilabel:
            return (p >= float(self.threshold)).astype(np.int64)
        return self._labels(p)

    def predict_table(self, X: Any, *, wafers: pd.DataFrame | None = None, causes: bool = True) -> pd.DataFrame:
        """Predictions as a tidy table, as :meth:`WaferPatternClassifier.predict_table
        <yieldkit.classify.pattern.WaferPatternClassifier.predict_table>`.

        In multi-label mode ``pattern`` lists every signature with probability >= ``threshold``
        (most probable first, joined by ``" + "``, ``"none"`` without any) and ``n_patterns``
        counts them; otherwise ``pattern`` is the most probable class (``"unknown"`` below
        ``unknown_threshold``) with its ``probability``. Then ``p_<class>`` per class and,
        with ``causes``, ``process_area`` and ``candidate_causes``.
        """
        from .pattern import prediction_table

        return prediction_table(self.predict_proba, X, classes=self.classes_, multilabel=self.multilabel,
                                threshold=float(self.threshold), labels=self._labels, wafers=wafers, causes=causes)

    # ------------------------------------------------------------------ persistence
    def to_bytes(self, *, meta: dict[str, Any] | None = None) -> bytes:
        """The model as the bytes of a compressed ``.npz`` (numpy arrays plus JSON; no pickle)."""
        self._check_fitted()
        info: dict[str, Any] = {
            "format": _FORMAT, "format_version": _FORMAT_VERSION, "params": self.get_params(),
            "classes": [str(c) for c in self.classes_], "spec": self.net_.spec,
            "feature_names": list(self.feature_names_),
        }
        info.update(meta or {})
        return savez_bytes(self.net_.to_arrays("net_"), info)

    def save(self, path: str | os.PathLike[str], *, meta: dict[str, Any] | None = None) -> str:
        """Write the model atomically to ``path`` (``.npz``); return its SHA-256 (hex)."""
        return write_model(self.to_bytes(meta=meta), path)

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, sha256: str | None = None) -> CNNPatternClassifier:
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
            When the hash does not match or the file is not a yieldkit CNN pattern model.
        """
        from .pattern import read_checked

        return cls.from_bytes(read_checked(path, sha256), source=str(path))

    @classmethod
    def from_bytes(cls, data: bytes, *, source: str = "<bytes>") -> CNNPatternClassifier:
        """Rebuild a model from :meth:`to_bytes` output (never unpickles)."""
        arrays, meta = read_model(data, source, fmt=_FORMAT, version=_FORMAT_VERSION,
                                  what="yieldkit CNN pattern model")
        try:
            params = {k: v for k, v in meta["params"].items() if k in cls().get_params()}
            net = ConvNet.from_arrays(arrays, meta["spec"], prefix="net_")
            obj = cls.from_net(net, meta["classes"], **params)
        except (KeyError, TypeError) as exc:
            raise YieldkitValueError(f"{source}: malformed yieldkit CNN pattern model ({exc!r})") from None
        if tuple(meta.get("feature_names", ())) != obj.feature_names_:
            raise YieldkitValueError(
                f"{source}: the model was trained on features that differ from this yieldkit's extract_features; "
                "retrain it.")
        obj.metadata_ = meta
        return obj

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"CNNPatternClassifier({opts})"


def model_from_bytes(data: bytes, *, source: str = "<bytes>") -> Any:
    """A saved pattern model of either kind (boosted trees or CNN), by the format in its metadata."""
    if model_format(data, source) == _FORMAT:
        return CNNPatternClassifier.from_bytes(data, source=source)
    from .pattern import WaferPatternClassifier

    return WaferPatternClassifier.from_bytes(data, source=source)
