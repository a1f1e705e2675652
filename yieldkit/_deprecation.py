"""Deprecated spellings of the public API: the old one keeps working for one release, with a DeprecationWarning."""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import Any, TypeVar, cast

F = TypeVar("F", bound=Callable[..., Any])


def warn_deprecated(message: str, stacklevel: int = 3) -> None:
    """Warn with :class:`DeprecationWarning`, by default at the caller of the public function calling this."""
    warnings.warn(message, DeprecationWarning, stacklevel=stacklevel)


def renamed_kwargs(**old_to_new: str) -> Callable[[F], F]:
    """Decorator accepting each old keyword name in ``old_to_new`` as an alias of its new name.

    Passing an old name warns (:class:`DeprecationWarning`, pointing at the caller) and forwards
    the value under the new name; passing both names is a :class:`TypeError`, as for any keyword
    given twice.
    """

    def decorate(func: F) -> F:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            for old, new in old_to_new.items():
                if old in kwargs:
                    if new in kwargs:
                        raise TypeError(f"{func.__qualname__}() got both {old!r} and its new name {new!r}")
                    warn_deprecated(
                        f"The {old!r} argument of {func.__qualname__} is deprecated and will be removed in "
                        f"the next release; use {new!r} instead.",
                        stacklevel=3,
                    )
                    kwargs[new] = kwargs.pop(old)
            return func(*args, **kwargs)

        return cast(F, wrapper)

    return decorate
