"""Method registry: ``register(name)``, ``build(name, **kwargs)``, ``list_methods()``.

Names are the papers' (``"mixup"``, ``"cutmix"``, ``"dcutmix"``, …). ``build`` drops keyword
arguments whose value is ``None`` (so command-line flags defaulting to ``None`` mean "the method's
own default") and rejects unknown keywords with the list of valid ones.
"""

from __future__ import annotations

import inspect
from typing import Callable, Dict, List, Type, TypeVar

T = TypeVar("T", bound=type)

_REGISTRY: Dict[str, type] = {}


def register(name: str) -> Callable[[T], T]:
    """Class decorator adding a mixer under ``name``; a duplicate name is an error."""

    def wrap(cls: T) -> T:
        if name in _REGISTRY:
            raise ValueError(f"register: a method named {name!r} is already registered "
                             f"({_REGISTRY[name].__qualname__})")
        _REGISTRY[name] = cls
        cls.method_name = name  # type: ignore[attr-defined]
        return cls

    return wrap


def list_methods() -> List[str]:
    """Registered method names, sorted."""
    return sorted(_REGISTRY)


def get_method(name: str) -> Type:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown method {name!r}; valid names: {', '.join(list_methods())}") from None


def method_options(name: str) -> List[str]:
    """The keyword arguments the method's constructor accepts."""
    params = inspect.signature(get_method(name)).parameters.values()
    return [p.name for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)]


def checked_options(kwargs: dict, valid: List[str], who: str) -> dict:
    """``kwargs`` without ``None`` values; an unknown keyword is a ``TypeError`` listing ``valid``."""
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    unknown = sorted(set(kwargs) - set(valid))
    if unknown:
        raise TypeError(f"{who}: unknown option(s) {', '.join(unknown)}; "
                        f"valid options: {', '.join(valid) or 'none'}")
    return kwargs


def build(name: str, **kwargs):
    """Instantiate the method registered as ``name`` with ``kwargs`` (``None`` values dropped)."""
    cls = get_method(name)
    return cls(**checked_options(kwargs, method_options(name), f"build({name!r})"))
