"""Packages whose names load on first use (PEP 562): importing the package imports none of them."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

Getattr = Callable[[str], Any]
Dir = Callable[[], list[str]]


def lazy_exports(namespace: dict[str, Any], exports: Mapping[str, str]) -> tuple[Getattr, Dir]:
    """The package's ``__getattr__`` and ``__dir__`` for ``exports`` (``{name: module that defines it}``).

    Example (in a package's ``__init__.py``)::

        __getattr__, __dir__ = lazy_exports(globals(), {"compare": "lightning_lrsched.compare.api"})
    """
    package = namespace["__name__"]

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value  # once: the next access is a plain attribute
        return value

    def __dir__() -> list[str]:
        return sorted({*namespace, *exports})

    return __getattr__, __dir__
