"""Optimizers by name, with torch's own argument names.

The schedule-free optimizers of the ``schedulefree`` package (``adamw_schedulefree``,
``sgd_schedulefree``; optional extra: ``pip install lightning-lrsched[schedulefree]``) are named
the same way, with that package's argument names. They keep two sets of weights and must be put in
``train()`` mode to step and ``eval()`` mode to evaluate or save:
:class:`~lightning_lrsched.ScheduleFreeMode` does that around Lightning's loops.

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

SCHEDULE_FREE: dict[str, str] = {"adamw_schedulefree": "AdamWScheduleFree", "sgd_schedulefree": "SGDScheduleFree"}
"""Schedule-free optimizers by name: their class in the ``schedulefree`` package (imported on use)."""

EXTRA_HINT = "pip install lightning-lrsched[schedulefree]"
OptimizerSpec = str | Mapping[str, Any]


def optimizer_names() -> list[str]:
    """Every name :func:`make_optimizer` takes (the schedule-free ones need the ``schedulefree`` extra)."""
    return [*OPTIMIZERS, *SCHEDULE_FREE]


def is_schedule_free(spec: OptimizerSpec) -> bool:
    """Whether ``spec`` names a schedule-free optimizer (no import: the extra need not be installed).

    Example:
        >>> is_schedule_free({"name": "adamw_schedulefree", "warmup_steps": 10}), is_schedule_free("adamw")
        (True, False)
    """
    name = spec if isinstance(spec, str) else spec.get("name") if isinstance(spec, Mapping) else None
    return isinstance(name, str) and name.lower() in SCHEDULE_FREE


def optimizer_class(name: str) -> type[torch.optim.Optimizer]:
    """The class an optimizer name stands for; a schedule-free one imports ``schedulefree``.

    Raises:
        InvalidValue: an unknown name, or a schedule-free one without the ``schedulefree`` extra.
    """
    key = name.lower() if isinstance(name, str) else name
    if key in OPTIMIZERS:
        return OPTIMIZERS[key]
    if key in SCHEDULE_FREE:
        try:
            import schedulefree
        except ImportError:
            raise InvalidValue(f"`optimizer`: {key} needs the optional extra `schedulefree`: {EXTRA_HINT}") from None
        return getattr(schedulefree, SCHEDULE_FREE[key])
    raise InvalidValue(f"`optimizer`: unknown optimizer {name!r}: use one of {', '.join(optimizer_names())}")


def optimizer_spec(spec: OptimizerSpec) -> tuple[str, dict[str, Any]]:
    """Split ``"adam"`` or ``{"name": "adam", **kwargs}`` into a checked name and its arguments."""
    if isinstance(spec, str):
        name, kwargs = spec, {}
    elif isinstance(spec, Mapping):
        kwargs = dict(spec)
        name = kwargs.pop("name", None)
    else:
        raise InvalidType(f"`optimizer` must be a name or a dict with a `name`: got {spec!r}")
    if not isinstance(name, str):
        raise InvalidValue(f"`optimizer`: unknown optimizer {name!r}: use one of {', '.join(optimizer_names())}")
    cls = optimizer_class(name)
    name = name.lower()
    accepted = [p for p in inspect.signature(cls).parameters if p not in ("params", "self")]
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
        return optimizer_class(name)(params, **kwargs)
    except (ValueError, TypeError) as error:
        raise InvalidValue(f"`optimizer`: {name}({_args(kwargs)}) is invalid: {error}") from None


def _args(kwargs: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
