"""The registry of fitted yield-model classes by public name.

``YieldModel.__init_subclass__`` registers every concrete model here
(``class PriceYield(YieldModel, name="price")``); :func:`~yieldkit.models.make_model`,
:func:`~yieldkit.models.compare_models` and :func:`~yieldkit.models.load_fit` look classes up here,
so a new yield model is one new module.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import YieldkitValueError

if TYPE_CHECKING:
    from .base import YieldModel

__all__ = ["model_class", "register_model", "registered_models"]

_REGISTRY: dict[str, type[YieldModel]] = {}


def register_model(name: str, cls: type[YieldModel]) -> None:
    """Register ``cls`` under the public ``name``.

    Registering the same class again (a module reloaded) replaces the entry.

    Raises
    ------
    YieldkitValueError
        Another class is already registered under ``name``.
    """
    known = _REGISTRY.get(name)
    if known is not None and (known.__module__, known.__qualname__) != (cls.__module__, cls.__qualname__):
        raise YieldkitValueError(f"A yield model named {name!r} is already registered ({known.__qualname__}).")
    _REGISTRY[name] = cls


def registered_models() -> dict[str, type[YieldModel]]:
    """The registered yield-model classes by public name (``"poisson"``, ``"nb"``, ...), in
    the order of registration."""
    return dict(_REGISTRY)


def model_class(name: str) -> type[YieldModel]:
    """The yield-model class registered as ``name`` (its public name, or its class name).

    Raises
    ------
    YieldkitValueError
        No such model; the message lists the registered names.
    """
    if name in _REGISTRY:
        return _REGISTRY[name]
    for cls in _REGISTRY.values():
        if cls.__name__ == name:
            return cls
    raise YieldkitValueError(f"The 'models' argument must name models among {', '.join(map(repr, _REGISTRY))}. "
                             f"Got {name!r} instead.")
