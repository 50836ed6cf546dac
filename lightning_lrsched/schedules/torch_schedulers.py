"""What the catalog knows about ``torch.optim.lr_scheduler``'s own classes.

Each torch scheduler that has a catalog schedule of the same formula maps to it, so its metadata
(the interval it is meant for, the argument that ends it, its durations: see
:class:`~lightning_lrsched.schedules.curve.Entry`) is written once, with the catalog schedule.
Torch's classes store their arguments as attributes of the same names, which lets a built torch
scheduler be read back as its catalog twin.

Example:
    >>> from torch.optim.lr_scheduler import OneCycleLR
    >>> entry = catalog_entry(OneCycleLR)
    >>> entry.interval, entry.end_arg
    ('step', 'total_steps')
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from torch.optim import lr_scheduler as torch_lr

from lightning_lrsched.errors import InvalidType, InvalidValue
from lightning_lrsched.schedules.curve import CATALOG, Entry
from lightning_lrsched.schedules.schedule import Schedule, get_schedule

# torch class -> the catalog schedule with the same formula and argument names.
TORCH_SCHEDULERS: dict[type, str] = {
    torch_lr.StepLR: "step",
    torch_lr.MultiStepLR: "multistep",
    torch_lr.ExponentialLR: "exponential",
    torch_lr.CosineAnnealingLR: "cosine",
    torch_lr.CosineAnnealingWarmRestarts: "cosine_restarts",
    torch_lr.PolynomialLR: "polynomial",
    torch_lr.LinearLR: "linear",
    torch_lr.ConstantLR: "constant",
    torch_lr.CyclicLR: "cyclic",
    torch_lr.OneCycleLR: "onecycle",
    torch_lr.ReduceLROnPlateau: "plateau",
}
# Classes whose step() raises past their end instead of holding the last LR.
RAISES_PAST_END: frozenset[type] = frozenset({torch_lr.OneCycleLR})


def catalog_entry(scheduler: Any) -> Entry | None:
    """The catalog metadata of a torch scheduler (an instance or a class), or ``None`` for other classes."""
    cls = scheduler if isinstance(scheduler, type) else type(scheduler)
    for kind in cls.__mro__:
        if kind in TORCH_SCHEDULERS:
            return CATALOG[TORCH_SCHEDULERS[kind]]
    return None


def torch_arguments(scheduler: Any) -> dict[str, Any]:
    """The catalog arguments a built torch scheduler stores as attributes (``milestones`` as a sorted list)."""
    entry = catalog_entry(scheduler)
    if entry is None:
        return {}
    out = {}
    for arg in entry.parameters():
        if hasattr(scheduler, arg):
            value = getattr(scheduler, arg)
            out[arg] = sorted(value.elements()) if isinstance(value, Counter) else value
    return out


def catalog_twin(scheduler: Any) -> Schedule | None:
    """The catalog schedule that gives a built torch scheduler's LRs, or ``None`` when it cannot be read back.

    Example:
        >>> import torch
        >>> opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
        >>> catalog_twin(torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=5))
        Schedule('cosine', T_max=5, eta_min=0.0, interval='step')
    """
    entry = catalog_entry(scheduler)
    if entry is None:
        return None
    try:
        # `interval` only says what a plain int counts: torch's are all in its own steps.
        return get_schedule(entry.name, interval="step", **torch_arguments(scheduler))
    except (InvalidType, InvalidValue):
        return None  # a required argument torch keeps under another name (OneCycleLR's max_lr)
