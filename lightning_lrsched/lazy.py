"""Packages whose names load on first use (PEP 562): importing the package imports none of them."""

from __future__ import annotations

import importlib
import inspect
import sys
import types
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


def callable_package(name: str, function: str, module: str) -> None:
    """Make the package ``name`` callable as its function ``function`` (defined in ``module``, imported on call).

    ``lightning_lrsched.compare`` is both a function (exported by the top package) and a subpackage;
    once any ``lightning_lrsched.compare.*`` module is imported, the import system sets the
    subpackage as the top package's attribute, and ``from lightning_lrsched import compare`` gives
    it. Callable, it still does what the function does: ``compare(...)`` works whatever was imported
    first, and ``inspect.signature`` and ``help`` show the function's.
    """
    package = sys.modules[name]

    class CallablePackage(types.ModuleType):
        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            return _target()(*args, **kwargs)

        @property
        def __signature__(self) -> inspect.Signature:
            return inspect.signature(_target())

    def _target() -> Any:
        return getattr(importlib.import_module(module), function)

    CallablePackage.__call__.__doc__ = f"Call :func:`{module}.{function}` (the package is callable as it)."
    CallablePackage.__name__ = CallablePackage.__qualname__ = f"{function}_package"
    package.__class__ = CallablePackage
