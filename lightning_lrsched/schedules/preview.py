"""`preview`: the LR at every optimizer step of a run, computed in one vectorised pass."""

from __future__ import annotations

import math

import numpy as np

from lightning_lrsched.errors import InvalidType, InvalidValue
from lightning_lrsched.schedules.curve import combine
from lightning_lrsched.schedules.schedule import Schedule
from lightning_lrsched.validation import check_int

MAX_PREVIEW_STEPS = 10_000_000
"""The longest preview: it holds a few arrays of one value per step (about 80 MB each at this length)."""


def preview(
    schedule: Schedule, total_steps: int, base_lr: float = 1.0, steps_per_epoch: int | None = None
) -> np.ndarray:
    """The LR used at each of ``total_steps`` optimizer steps, for an optimizer with ``base_lr``.

    Step ``i`` of an epoch-interval schedule is in epoch ``i // steps_per_epoch`` (without
    ``steps_per_epoch``, an epoch is one step). ``plateau`` is shown without reductions: they
    depend on metrics. 10^6 steps take a few tens of milliseconds.

    Example:
        >>> from lightning_lrsched.schedules import get_schedule
        >>> preview(get_schedule("step", step_size=1, gamma=0.5), 4, base_lr=0.2, steps_per_epoch=2).tolist()
        [0.2, 0.2, 0.1, 0.1]
    """
    if not isinstance(schedule, Schedule):
        raise InvalidType(f"`schedule` must be a Schedule (from get_schedule): got {type(schedule).__name__}")
    check_int("total_steps", total_steps, minimum=1)  # a preview needs its length: there is no run to ask
    if total_steps > MAX_PREVIEW_STEPS:
        raise InvalidValue(
            f"`total_steps` must be at most {MAX_PREVIEW_STEPS} for a preview (it holds one LR per step in memory): "
            f"got total_steps={total_steps}"
        )
    if steps_per_epoch is not None:
        check_int("steps_per_epoch", steps_per_epoch, minimum=1)
    if not isinstance(base_lr, (int, float)) or isinstance(base_lr, bool) or not 0 < base_lr < math.inf:
        raise InvalidValue(f"`base_lr` must be a positive finite number: got base_lr={base_lr!r}")
    try:
        float(base_lr)
    except OverflowError:  # an int beyond every float (10**400)
        raise InvalidValue(f"`base_lr` must be a positive finite number: got base_lr={base_lr!r}") from None
    per_epoch = steps_per_epoch or 1
    curve = schedule.resolve(total_steps, per_epoch, float(base_lr))
    steps = np.arange(total_steps, dtype=np.int64)
    t = steps if schedule.interval == "step" else steps // per_epoch
    w = curve.weights(t)
    peak = float(base_lr) if curve.peak is None else _first(curve.peak)
    return combine(w.peak, 0.0 if w.floor is None else w.floor, peak, _first(curve.floor))


def _first(value: float | tuple[float, ...]) -> float:
    return float(value[0] if isinstance(value, tuple) else value)
