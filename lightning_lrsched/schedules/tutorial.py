"""The schedules of the classic scheduler tutorials, with the tutorials' arguments.

A bare name from :data:`TUTORIAL_SCHEDULES` means that schedule with these arguments, in the
synthetic classifier, ``lrsched fit`` and ``lrsched compare``; any other schedule needs its
arguments spelled out.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lightning_lrsched.errors import InvalidType
from lightning_lrsched.schedules.schedule import Schedule, get_schedule

TUTORIAL_SCHEDULES: dict[str, dict[str, Any]] = {
    "step": {"step_size": 10, "gamma": 0.1},
    "multistep": {"milestones": [10, 15], "gamma": 0.1},
    "exponential": {"gamma": 0.9},
    "cosine": {"eta_min": 0.0},
    "plateau": {"mode": "min", "factor": 0.5, "patience": 2},
    "cyclic": {"base_lr": 0.001, "max_lr": 0.1, "step_size_up": "2ep"},
}
"""The six seed schedules, in the order the tutorials show them."""


def resolve_schedule(spec: str | Mapping[str, Any] | Schedule) -> Schedule:
    """A :class:`Schedule` from a name (tutorial arguments for the seed six), a spec dict, or itself.

    Example:
        >>> resolve_schedule("step")
        Schedule('step', step_size=10, gamma=0.1, interval='epoch')
    """
    if isinstance(spec, Schedule):
        return spec
    if isinstance(spec, str):
        return get_schedule(spec, **TUTORIAL_SCHEDULES.get(spec, {}))
    if isinstance(spec, Mapping):
        return get_schedule(spec)
    raise InvalidType(f"`scheduler` must be a schedule name or a dict with a `name`: got {spec!r}")
