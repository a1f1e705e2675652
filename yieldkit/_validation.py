"""Argument checks shared by the package: numeric arrays in a range, confidence levels, choices,
the ``columns=`` and ``layout=`` arguments of the readers.

Each check converts its argument (to a float array where numeric) and raises
:class:`~yieldkit.errors.YieldkitValueError` in the project's one shape: "The 'coverage' argument of williams_brown must be in [0, 1].
Got 1.2 instead."
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from .errors import YieldkitTypeError, YieldkitValueError, check_choice

__all__ = [
    "as_at_least",
    "as_fraction",
    "as_nonnegative",
    "as_positive",
    "as_yield_fraction",
    "check_choice",
    "check_columns",
    "check_conf_level",
    "check_layout",
    "out",
    "short_repr",
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


def _as_signed(value: Any, name: str, where: str, *, strict: bool, allow_inf: bool) -> np.ndarray:
    arr = _as_float(value, name, where)
    ok = arr > 0.0 if strict else arr >= 0.0
    if not allow_inf:
        ok &= np.isfinite(arr)
    if np.any(~ok):
        rng = ("> 0" if strict else ">= 0") + ("" if allow_inf else " and finite")
        raise YieldkitValueError(
            f"The {name!r} argument of {where} must be {rng}. Got {_first_bad(arr, ~ok)!r} instead."
        )
    return arr


def as_nonnegative(value: Any, name: str, where: str, *, allow_inf: bool = False) -> np.ndarray:
    """Return ``value`` as a float array with every element >= 0 (and finite unless ``allow_inf``)."""
    return _as_signed(value, name, where, strict=False, allow_inf=allow_inf)


def as_positive(value: Any, name: str, where: str, *, allow_inf: bool = False) -> np.ndarray:
    """Return ``value`` as a float array with every element > 0 (infinity allowed if asked)."""
    return _as_signed(value, name, where, strict=True, allow_inf=allow_inf)


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


def short_repr(value: Any, width: int = 60) -> str:
    """``repr(value)``, cut to ``width`` characters with ``...`` when longer (for messages)."""
    text = repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def check_columns(columns: Any, where: str) -> None:
    """A ``columns=`` argument must be a mapping of found names to canonical names (or None)."""
    if columns is None:
        return
    if not isinstance(columns, Mapping) or not all(isinstance(k, str) and isinstance(v, str)
                                                    for k, v in columns.items()):
        raise YieldkitTypeError(
            f"The 'columns' argument of {where} must be a mapping of found column names to canonical names, "
            f"such as {{'LOT': 'lot_id', 'BIN': 'hbin'}}. Got {short_repr(columns)} instead."
        )


def check_layout(layout: Any, where: str) -> None:
    """A ``layout=`` argument must be a WaferLayout, a mapping of them, or None."""
    from .layout import WaferLayout

    ok = layout is None or isinstance(layout, WaferLayout) or (
        isinstance(layout, Mapping) and all(isinstance(v, WaferLayout) for v in layout.values()))
    if not ok:
        raise YieldkitTypeError(
            f"The 'layout' argument of {where} must be a WaferLayout (or None). Got {type(layout).__name__} "
            f"{short_repr(layout)} instead."
        )
