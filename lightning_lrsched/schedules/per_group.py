"""`GroupSchedules`: a schedule per param group, driven by one torch scheduler."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from torch.optim import Optimizer

from lightning_lrsched.errors import InvalidType, InvalidValue
from lightning_lrsched.schedules.duration import Interval
from lightning_lrsched.schedules.schedule import Schedule, base_value, check_build_args, get_schedule
from lightning_lrsched.schedules.scheduler import GroupScheduledLR, Lane

ScheduleSpec = str | Mapping[str, Any] | Schedule


class GroupSchedules:
    """One schedule per param group: schedule ``i`` drives group ``i`` of the optimizer.

    Closed-form and ``plateau`` schedules mix freely; each ``plateau`` group is judged on its own
    metric. When the schedules share an interval the scheduler steps at that interval; otherwise it
    steps every optimizer step, and an epoch schedule's time is ``step // steps_per_epoch`` (what
    :func:`~lightning_lrsched.schedules.preview` shows): the same LR at every optimizer step as
    that schedule alone, stepped at epoch ends, whenever each epoch has ``steps_per_epoch`` steps.

    Args:
        schedules: one per param group: a :class:`Schedule`, a spec dict ``{"name": ..., **params}``
            or a bare name (the schedule's defaults), as :func:`get_schedule` takes them.

    Attributes:
        schedules: the schedules, as :class:`Schedule` objects.
        interval: ``"step"`` or ``"epoch"``: what one step of the built scheduler is.

    Example:
        >>> import torch
        >>> backbone, head = torch.nn.Linear(4, 4), torch.nn.Linear(4, 2)
        >>> opt = torch.optim.SGD([{"params": backbone.parameters()}, {"params": head.parameters(), "lr": 1.0}], lr=0.1)
        >>> sched = GroupSchedules([{"name": "step", "step_size": 2, "gamma": 0.5}, "cosine"]).build(opt, total_steps=4)
        >>> for _ in range(4):
        ...     print([round(lr, 4) for lr in sched.get_last_lr()])
        ...     opt.step(); sched.step()
        [0.1, 1.0]
        [0.1, 0.8536]
        [0.05, 0.5]
        [0.05, 0.1464]
    """

    def __init__(self, schedules: Sequence[ScheduleSpec]) -> None:
        if isinstance(schedules, (str, Mapping, Schedule)) or not isinstance(schedules, Sequence) or not schedules:
            raise InvalidType(
                f"`schedules` must be a non-empty list with one schedule per param group: got {schedules!r}"
            )
        self.schedules = [s if isinstance(s, Schedule) else get_schedule(s) for s in schedules]
        intervals = {s.interval for s in self.schedules}
        self.interval: Interval = intervals.pop() if len(intervals) == 1 else "step"

    def __repr__(self) -> str:
        return f"GroupSchedules({self.schedules!r})"

    def build(
        self,
        optimizer: Optimizer,
        *,
        total_steps: int | None = None,
        steps_per_epoch: int | None = None,
        monitors: Sequence[str | None] | None = None,
        param: str = "lr",
    ) -> GroupScheduledLR:
        """Make the torch scheduler that drives group ``i`` of ``optimizer`` along schedule ``i``.

        Args:
            optimizer: the optimizer, with one param group per schedule.
            total_steps: optimizer steps in the whole run (see :meth:`Schedule.build`).
            steps_per_epoch: optimizer steps per epoch (see :meth:`Schedule.build`); it is also the
                stride of epoch schedules when the scheduler steps every optimizer step.
            monitors: per schedule, the logged metric a ``plateau`` schedule reads instead of its
                own ``monitor`` (``None`` entries keep it), e.g. ``[None, "val_loss/head"]``.
        """
        check_build_args(optimizer, total_steps, steps_per_epoch)
        n = len(self.schedules)
        if len(optimizer.param_groups) != n:
            raise InvalidValue(
                f"GroupSchedules has {n} schedules but the optimizer has {len(optimizer.param_groups)} param groups: "
                "give one schedule per param group"
            )
        keys = [None] * n if monitors is None else list(monitors)
        if len(keys) != n:
            raise InvalidValue(f"`monitors` must have one entry per schedule ({n}): got {len(keys)}")
        per_epoch, lr = steps_per_epoch or 1, base_value(optimizer, param)
        lanes = []
        for i, (schedule, key) in enumerate(zip(self.schedules, keys, strict=True)):
            curve = schedule.resolve(total_steps, per_epoch, lr)
            stride = per_epoch if schedule.interval == "epoch" and self.interval == "step" else 1
            lanes.append(Lane(schedule, curve, (i,), stride, key))
        scheduler = GroupScheduledLR(optimizer, lanes, param)
        scheduler.resolved_run = {"total_steps": total_steps, "steps_per_epoch": steps_per_epoch}
        return scheduler

    def lightning_config(
        self,
        optimizer: Optimizer,
        trainer: Any,
        *,
        name: str | None = None,
        monitors: Sequence[str | None] | None = None,
        param: str = "lr",
    ) -> dict[str, Any]:
        """Build for ``trainer``'s run and return Lightning's scheduler dict (see :meth:`Schedule.lightning_config`).

        ``plateau`` groups are fed their metrics by :class:`~lightning_lrsched.PlateauDriver`
        at each validation end (averaged across processes).
        """
        # The Lightning layer sits above this one: imported here, so `schedules` never imports it.
        from lightning_lrsched.lightning.config import groups_lightning_config

        return groups_lightning_config(self, optimizer, trainer, name=name, monitors=monitors, param=param)
