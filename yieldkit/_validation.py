"""Argument checks shared by the package: numeric arrays in a range, confidence levels, choices.

Each check converts its argument (to a float array where numeric) and raises
:class:`~yieldkit.errors.YieldkitValueError` in the project's one shape: "The 'coverage' argument of williams_brown must be in [0, 1].
Got 1.2 instead."
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .errors import YieldkitValueError, check_choice

__all__ = [
    "as_at_least",
    "as_fraction",
    "as_nonnegative",
    "as_positive",
    "as_yield_fraction",
    "check_choice",
    "check_conf_level",
    "out",
]


def _first_bad(arr: np.ndarray, bad: np.ndarray) -> Any:
    value = arr[bad].ravel()[0] if arr.ndim else arr[()]
    return float(value)


def _as_float(value: Any, name: str, where: str) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise YieldkitValueError(
            f"The {name!r} argument of {where} must be numeric. Got {value!r} instead."
        ) from exc
    return arr


def as_fraction(value: Any, name: str, where: str) -> np.ndarray:
    """Return ``value`` as a float array with every element in [0, 1]."""
    arr = _as_float(value, name, where)
    bad = ~((arr >= 0.0) & (arr <= 1.0))  # also catches NaN
    if np.any(bad):
        raise YieldkitValueError(
            f"The {name!r} argument of {where} must be in [0, 1]. Got {_first_bad(arr, bad)!r} instead."
        )
    return arr


def as_nonnegative(value: Any, name: str, where: str, *, allow_inf: bool = False) -> np.ndarray:
    """Return ``value`` as a float array with every element >= 0 (and finite unless ``allow_inf``)."""
    arr = _as_float(value, name, where)
    ok = arr >= 0.0
    if not allow_inf:
        ok &= np.isfinite(arr)
    if np.any(~ok):
        rng = ">= 0" if allow_inf else ">= 0 and finite"
        raise YieldkitValueError(
            f"The {name!r} argument of {where} must be {rng}. Got {_first_bad(arr, ~ok)!r} instead."
        )
    return arr


def as_positive(value: Any, name: str, where: str, *, allow_inf: bool = False) -> np.ndarray:
    """Return ``value`` as a float array with every element > 0 (infinity allowed if asked)."""
    arr = _as_float(value, name, where)
    ok = arr > 0.0
    if not allow_inf:
        ok &= np.isfinite(arr)
    if np.any(~ok):
        rng = "> 0" if allow_inf else "> 0 and finite"
        raise YieldkitValueError(
            f"The {name!r} argument of {where} must be {rng}. Got {_first_bad(arr, ~ok)!r} instead."
        )
    return arr


def as_at_least(value: Any, lower: float, name: str, where: str) -> np.ndarray:
    """Return ``value`` as a finite float array with every element >= ``lower``."""
    arr = _as_float(value, name, where)
    ok = (arr >= lower) & np.isfinite(arr)
    if np.any(~ok):
        raise YieldkitValueError(
            f"The {name!r} argument of {where} must be >= {lower:g} and finite. "
            f"Got {_first_bad(arr, ~ok)!r} instead."
        )
    return arr


def check_conf_level(conf_level: Any, where: str) -> float:
    """Return ``conf_level`` as a float in (0, 1) (a number, not a string)."""
    try:
        if isinstance(conf_level, (str, bytes)):
            raise TypeError("a string")
        level = float(conf_level)
    except (TypeError, ValueError) as exc:
        raise YieldkitValueError(
            f"The 'conf_level' argument of {where} must be in (0, 1). Got {conf_level!r} instead."
        ) from exc
    if not 0.0 < level < 1.0:
        raise YieldkitValueError(
            f"The 'conf_level' argument of {where} must be in (0, 1). Got {conf_level!r} instead."
        )
    return level


def as_yield_fraction(value: Any, name: str, where: str) -> np.ndarray:
    """Return ``value`` as a float array with every element in (0, 1] (a systematic yield)."""
    arr = np.asarray(value, dtype=np.float64)
    if np.any(np.isnan(arr) | (arr <= 0) | (arr > 1)):
        raise YieldkitValueError(f"The {name!r} argument of {where} must be in (0, 1]. Got {value!r} instead.")
    return arr


def out(arr: np.ndarray) -> Any:
    """A 0-d result as a numpy float scalar, anything else as an array."""
    arr = np.asarray(arr, dtype=np.float64)
    return arr[()] if arr.ndim == 0 else arr
