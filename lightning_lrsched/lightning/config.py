"""Lightning's scheduler dict for a schedule: built for a Trainer's run, checked against its callbacks.

:meth:`Schedule.lightning_config <lightning_lrsched.schedules.Schedule.lightning_config>` and
:meth:`GroupSchedules.lightning_config <lightning_lrsched.schedules.GroupSchedules.lightning_config>`
are one-line entry points to the functions here: the run is read from the Trainer once
(:func:`~lightning_lrsched.lightning.plan_from_trainer`), the schedule is built against that
plan by ``schedules/`` (which never sees the Trainer), and the dict is checked against the
Trainer's callbacks (a ``plateau`` schedule needs a :class:`PlateauDriver`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import lightning.pytorch as pl
from torch.optim import Optimizer

from lightning_lrsched.errors import InvalidValue
from lightning_lrsched.lightning.plateau_driver import PlateauDriver
from lightning_lrsched.lightning.run_plan import plan_from_trainer
from lightning_lrsched.schedules.duration import Interval
from lightning_lrsched.schedules.per_group import GroupSchedules
from lightning_lrsched.schedules.schedule import Schedule, check_run_is_known
from lightning_lrsched.schedules.scheduler import GroupScheduledLR


def lightning_config(
    schedule: Schedule,
    optimizer: Optimizer,
    trainer: pl.Trainer,
    *,
    name: str | None = None,
    adopt_settings: bool = False,
    param: str = "lr",
) -> dict[str, Any]:
    """What :meth:`Schedule.lightning_config <lightning_lrsched.schedules.Schedule.lightning_config>` returns."""
    plan = plan_from_trainer(trainer)
    args = plan.build_args(schedule.interval)
    check_run_is_known([schedule], plan, args)
    scheduler = schedule.build(optimizer, **args, adopt_settings=adopt_settings, param=param)
    return scheduler_config(scheduler, trainer, schedule.interval, name or f"{param}-{schedule.name}")


def groups_lightning_config(
    groups: GroupSchedules,
    optimizer: Optimizer,
    trainer: pl.Trainer,
    *,
    name: str | None = None,
    monitors: Sequence[str | None] | None = None,
    param: str = "lr",
) -> dict[str, Any]:
    """What :meth:`GroupSchedules.lightning_config
    <lightning_lrsched.schedules.GroupSchedules.lightning_config>` returns."""
    plan = plan_from_trainer(trainer)
    args = plan.build_args(groups.interval)
    check_run_is_known(groups.schedules, plan, args)
    if (
        args["steps_per_epoch"] is None
        and groups.interval == "step"
        and any(s.interval == "epoch" for s in groups.schedules)
    ):
        raise InvalidValue(
            "GroupSchedules mixing epoch and step schedules steps every optimizer step and needs the epoch length "
            f"to count epochs, but it is unknown: {plan.length_hint()}"
        )
    scheduler = groups.build(optimizer, **args, monitors=monitors, param=param)
    return scheduler_config(scheduler, trainer, groups.interval, name or f"{param}-groups")


def scheduler_config(scheduler: GroupScheduledLR, trainer: pl.Trainer, interval: Interval, name: str) -> dict[str, Any]:
    """Lightning's scheduler dict for one of our schedulers, checked against ``trainer``'s callbacks."""
    monitors = [lane.monitor for lane in scheduler.lanes if lane.monitor is not None]
    if monitors and not any(isinstance(c, PlateauDriver) for c in getattr(trainer, "callbacks", ())):
        raise InvalidValue(
            f"`plateau` is driven by validation results ({', '.join(monitors)}): add "
            "lightning_lrsched.PlateauDriver() to Trainer(callbacks=[...]) or return it from your "
            "LightningModule's configure_callbacks()"
        )
    if interval == "step":
        scheduler.count_updates()
    config: dict[str, Any] = {"scheduler": scheduler, "interval": interval, "frequency": 1, "name": name}
    if len(monitors) == 1:
        config["monitor"] = monitors[0]
    return config
