"""Put a found LR where a model's schedule takes its peak: the schedule's absolute ``max_lr``, or the optimizer's LR.

Works on the model arguments of :class:`~lightning_lrsched.SyntheticClassifier` (``lr`` and
``scheduler``), written plainly or as LightningCLI's ``{"class_path": ..., "init_args": {...}}``, and
on a whole ``lrsched fit`` config (its ``model:`` section).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from lightning_lrsched.errors import InvalidType
from lightning_lrsched.schedules import Schedule
from lightning_lrsched.schedules.curve import CATALOG
from lightning_lrsched.schedules.tutorial import TUTORIAL_SCHEDULES, resolve_schedule
from lightning_lrsched.validation import check_positive


def peak_key(scheduler: Any) -> str:
    """Where the peak LR of a model with this ``scheduler`` argument lives: ``"max_lr"`` or ``"lr"``.

    A schedule with an absolute ``max_lr`` argument (``onecycle``, ``cyclic``) peaks at it and ignores
    the optimizer's LR; every other schedule (the warmup family, cosine, step, ...) scales the
    optimizer's LR, so its peak is ``lr``. The answer comes from the schedule's own signature.

    Example:
        >>> peak_key({"name": "onecycle", "max_lr": 0.1}), peak_key("warmup_cosine"), peak_key(None)
        ('max_lr', 'lr', 'lr')
    """
    if scheduler is None:
        return "lr"
    name: Any
    if isinstance(scheduler, Schedule):
        name = scheduler.name
    elif isinstance(scheduler, Mapping):
        name = scheduler.get("name")
    else:
        name = scheduler
    entry = CATALOG.get(name) if isinstance(name, str) else None
    if entry is None:
        resolve_schedule(scheduler)  # the catalog's own error for an unknown name or a bad spec
        raise InvalidType(f"`scheduler` must name a schedule: got {scheduler!r}")
    return "max_lr" if "max_lr" in entry.parameters() else "lr"


def with_peak_lr(model_args: Mapping[str, Any], lr: float) -> dict[str, Any]:
    """A copy of ``model_args`` whose schedule peaks at ``lr``.

    Sets the scheduler spec's ``max_lr`` for schedules with an absolute peak (see :func:`peak_key`),
    otherwise ``lr``. The new schedule is checked (a ``cyclic`` whose ``base_lr`` is above the new
    ``max_lr`` raises here, not at the start of training).

    Args:
        model_args: ``SyntheticClassifier``-style arguments (``lr``, ``scheduler``, ...), plain or as
            ``{"class_path": ..., "init_args": {...}}``.
        lr: the peak LR to set.

    Example:
        >>> with_peak_lr({"optimizer": "sgd", "lr": 0.1, "scheduler": "cosine"}, 0.03)
        {'optimizer': 'sgd', 'lr': 0.03, 'scheduler': 'cosine'}
        >>> with_peak_lr({"scheduler": {"name": "onecycle", "max_lr": 0.5}}, 0.03)
        {'scheduler': {'name': 'onecycle', 'max_lr': 0.03}}
    """
    check_positive("lr", lr)
    if not isinstance(model_args, Mapping):
        raise InvalidType(f"`model_args` must be a mapping of model arguments: got {model_args!r}")
    out = copy.deepcopy(dict(model_args))
    if "class_path" in out:
        init_args = out.get("init_args") or {}
        if not isinstance(init_args, Mapping):
            raise InvalidType(f"`init_args` must be a mapping of model arguments: got {init_args!r}")
        out["init_args"] = with_peak_lr(init_args, lr)
        return out
    scheduler: Any = out.get("scheduler")
    if peak_key(scheduler) == "lr":
        out["lr"] = float(lr)
        return out
    if isinstance(scheduler, Schedule):
        spec = scheduler.to_dict()
    elif isinstance(scheduler, str):
        spec = {"name": scheduler, **TUTORIAL_SCHEDULES.get(scheduler, {})}
    else:
        spec = dict(scheduler)
    spec["max_lr"] = float(lr)
    resolve_schedule(spec)
    out["scheduler"] = spec
    return out
