"""Optimizers by name, with torch's own argument names.

Example:
    >>> import torch
    >>> opt = make_optimizer({"name": "sgd", "momentum": 0.9}, torch.nn.Linear(2, 1).parameters(), lr=0.1)
    >>> type(opt).__name__, opt.defaults["momentum"]
    ('SGD', 0.9)
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Mapping
from typing import Any

import torch

from lightning_lrsched.errors import InvalidType, InvalidValue

OPTIMIZERS: dict[str, type[torch.optim.Optimizer]] = {
    "sgd": torch.optim.SGD,
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "rmsprop": torch.optim.RMSprop,
}

OptimizerSpec = str | Mapping[str, Any]


def optimizer_spec(spec: OptimizerSpec) -> tuple[str, dict[str, Any]]:
    """Split ``"adam"`` or ``{"name": "adam", **kwargs}`` into a checked name and its arguments."""
    if isinstance(spec, str):
        name, kwargs = spec, {}
    elif isinstance(spec, Mapping):
        kwargs = dict(spec)
        name = kwargs.pop("name", None)
    else:
        raise InvalidType(f"`optimizer` must be a name or a dict with a `name`: got {spec!r}")
    if not isinstance(name, str) or name.lower() not in OPTIMIZERS:
        raise InvalidValue(f"`optimizer`: unknown optimizer {name!r}: use one of {', '.join(OPTIMIZERS)}")
    name = name.lower()
    accepted = [p for p in inspect.signature(OPTIMIZERS[name]).parameters if p not in ("params", "self")]
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        raise InvalidType(
            f"`optimizer`: {name} has no argument(s) {', '.join(unknown)}: valid arguments are {', '.join(accepted)}"
        )
    return name, kwargs


def make_optimizer(spec: OptimizerSpec, params: Iterable[Any], lr: float) -> torch.optim.Optimizer:
    """Make the optimizer ``spec`` names over ``params``; ``lr`` unless the spec sets its own.

    Bad argument values are reported as ``ValueError`` naming the optimizer, not torch tracebacks.
    """
    name, kwargs = optimizer_spec(spec)
    kwargs.setdefault("lr", lr)
    try:
        return OPTIMIZERS[name](params, **kwargs)
    except (ValueError, TypeError) as error:
        raise InvalidValue(f"`optimizer`: {name}({_args(kwargs)}) is invalid: {error}") from None


def _args(kwargs: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
