"""JSON round trips of fitted models: ``to_dict``/``from_dict``, ``save_fit``/``load_fit``."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ParseError, YieldkitValueError
from ..io.atomic import atomic_write
from .registry import model_class, registered_models

__all__ = ["load_fit", "model_from_dict", "model_to_dict", "save_fit"]

FORMAT = "yieldkit.fit/1"


def _enc(x: Any) -> Any:
    """Floats as JSON numbers, non-finite ones as the strings 'inf', '-inf', 'nan'."""
    if isinstance(x, (list, tuple, np.ndarray)):
        return [_enc(v) for v in x]
    if isinstance(x, (float, np.floating)):
        x = float(x)
        if math.isnan(x):
            return "nan"
        if math.isinf(x):
            return "inf" if x > 0 else "-inf"
        return x
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.bool_):
        return bool(x)
    return x


def _dec(x: Any) -> Any:
    if isinstance(x, list):
        return [_dec(v) for v in x]
    if x in ("inf", "-inf", "nan"):
        return float(x)
    return x


def model_to_dict(model) -> dict[str, Any]:
    d: dict[str, Any] = {"format": FORMAT, "model": type(model).__name__,
                         "hyperparameters": {k: _enc(v) for k, v in model.get_params().items()
                                             if k != "random_state" or v is None or isinstance(v, int)}}
    if not hasattr(model, "params_"):
        return d
    names = list(model.params_.index)
    d["fit"] = {
        "route": model.route_, "method": model.method_, "pooling": model.pooling_,
        "area_cm2": _enc(model.area_), "n_obs": model.n_obs_, "n_units": model.n_units_, "n_groups": model.n_groups_,
        "n_excluded": model.n_excluded_, "converged": model.converged_, "loglik": _enc(model.loglik_),
        "ci_method": model.ci_method_, "parameters": names,
        "estimate": _enc(model.params_.to_numpy()),
        "ci_lower": _enc(model.ci_["ci_lower"].to_numpy()), "ci_upper": _enc(model.ci_["ci_upper"].to_numpy()),
        "cov": _enc(model.cov_.to_numpy()), "cov_unconstrained": _enc(model._cov_u),
        "fixed_cluster_alpha": _enc(model.cluster_alpha_), "y0": _enc(model.y0_),
        "replicates": None if model._replicates is None else _enc(np.asarray(model._replicates)),
    }
    return d


def model_from_dict(d: dict[str, Any], expected: type | None = None):
    if not isinstance(d, dict) or d.get("format") != FORMAT:
        raise YieldkitValueError(f"not a yieldkit fit (expected format {FORMAT!r}, got {d.get('format') if isinstance(d, dict) else d!r})")
    name = d.get("model")
    try:
        cls = model_class(name) if isinstance(name, str) else None
    except YieldkitValueError:
        cls = None
    if cls is None:
        known = sorted(c.__name__ for c in registered_models().values())
        raise YieldkitValueError(f"unknown model {name!r}; known: {known}")
    if expected is not None and expected.__name__ != "YieldModel" and cls is not expected:
        raise YieldkitValueError(f"{expected.__name__}.from_dict was given a {name} fit")
    model = cls(**{k: _dec(v) for k, v in d.get("hyperparameters", {}).items()})
    f = d.get("fit")
    if not f:
        return model
    names = f["parameters"]
    est = np.asarray(_dec(f["estimate"]), dtype=float)
    model.route_, model.method_, model.pooling_ = f["route"], f["method"], f["pooling"]
    model.area_ = _dec(f["area_cm2"])
    model.n_obs_, model.n_groups_, model.n_excluded_ = f["n_obs"], f["n_groups"], f["n_excluded"]
    model.n_units_ = int(f.get("n_units") or f["n_obs"])
    model._cells = None
    res = {
        "params": {"cluster_alpha": _dec(f["fixed_cluster_alpha"]), "y0": _dec(f["y0"]),
                   **dict(zip(names, est))},
        "cov": np.asarray(_dec(f["cov"]), dtype=float), "cov_u": np.asarray(_dec(f["cov_unconstrained"]), dtype=float),
        "ci_lower": np.asarray(_dec(f["ci_lower"]), dtype=float), "ci_upper": np.asarray(_dec(f["ci_upper"]), dtype=float),
        "ci_method": f["ci_method"], "loglik": _dec(f["loglik"]), "converged": f["converged"],
        "replicates": None if f.get("replicates") is None else np.asarray(_dec(f["replicates"]), dtype=float),
    }
    model._free_names = lambda: list(names)  # type: ignore[method-assign]
    try:
        model._finish(res)
    finally:
        del model._free_names
    return model


def save_fit(model, path: str | os.PathLike[str]) -> Path:
    """Write a model (fitted or not) to a JSON file atomically. Returns the path.

    Examples
    --------
    >>> import tempfile, pathlib, numpy as np, yieldkit as yk
    >>> from yieldkit.models import save_fit, load_fit
    >>> m = yk.PoissonYield().fit(np.array([0, 1, 0, 2, 0]), area=1.0)
    >>> p = save_fit(m, pathlib.Path(tempfile.mkdtemp()) / "fit.json")
    >>> load_fit(p).d0_ == m.d0_
    True
    """
    with atomic_write(path) as fh:
        json.dump(model.to_dict(), fh, indent=2, allow_nan=False)
        fh.write("\n")
    return Path(path)


def load_fit(path: str | os.PathLike[str]):
    """Read a model written by :func:`save_fit`.

    Raises
    ------
    ParseError
        The file is not JSON or not a yieldkit fit.
    """
    p = Path(path)
    try:
        d = json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ParseError(f"not JSON: {exc.msg}", path=p, line=exc.lineno) from None
    try:
        return model_from_dict(d)
    except (YieldkitValueError, KeyError, TypeError) as exc:
        raise ParseError(f"not a yieldkit fit: {exc}", path=p) from None


