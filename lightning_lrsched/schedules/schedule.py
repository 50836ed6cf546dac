"""`Schedule`: a named, validated schedule whose durations resolve once the run is known."""

from __future__ import annotations

import hashlib
import inspect
import json
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import numpy as np
from torch.optim import Optimizer

# Importing the formula modules fills the catalog.
import lightning_lrsched.schedules.classic
import lightning_lrsched.schedules.plateau
import lightning_lrsched.schedules.warmup  # noqa: F401
from lightning_lrsched.errors import InvalidType, InvalidValue
from lightning_lrsched.schedules.curve import CATALOG, Binder, Curve, Entry, Weights, linear_ramp
from lightning_lrsched.schedules.duration import INTERVALS, Duration, Interval, Run, parse_duration
from lightning_lrsched.schedules.run import RunPlan, needs_epoch_length, needs_run_length
from lightning_lrsched.schedules.scheduler import GroupScheduledLR, PlateauLR, ScheduledLR, param_key
from lightning_lrsched.validation import check_bool, check_choice


class Schedule:
    """A learning-rate schedule: a name from the catalog, its arguments, and its interval.

    Made by :func:`get_schedule`. Arguments are checked when it is made; durations are resolved
    when it is bound to a run by :meth:`build`, :meth:`lightning_config` or :func:`preview`.

    Attributes:
        name: the catalog name (``"cosine"``, ``"warmup_cosine"``, ...).
        params: the arguments given (defaults are not repeated here).
        interval: ``"step"`` or ``"epoch"``: what one scheduler step is.
        warmup: the linear warmup in front, for schedules outside the warmup family.
    """

    def __init__(
        self, entry: Entry, params: dict[str, Any], interval: Interval, warmup: Duration | None, binder: Binder
    ) -> None:
        self.name = entry.name
        self.params = params
        self.interval = interval
        self.warmup = warmup
        self._binder = binder

    @property
    def is_plateau(self) -> bool:
        return self.name == "plateau"

    def to_dict(self) -> dict[str, Any]:
        """The spec that :func:`get_schedule` turns back into this schedule."""
        spec: dict[str, Any] = {"name": self.name, **self.params, "interval": self.interval}
        if self.warmup is not None:
            spec["warmup"] = str(self.warmup) if self.warmup.unit != "int" else int(self.warmup.amount)
        return spec

    def fingerprint(self) -> str:
        """A short hash of the spec: equal for equal schedules, different when any argument differs."""
        text = json.dumps(self.to_dict(), sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Schedule) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash(self.fingerprint())

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.to_dict().items() if k != "name")
        return f"Schedule({self.name!r}, {args})"

    # -- binding to a run -------------------------------------------------------------------
    def curve(self, run: Run) -> Curve:
        """Resolve every duration against ``run`` and return the closed form."""
        if self.warmup is None:
            return self._binder(run)
        w = run.count("warmup", self.warmup)
        length = run.length
        if length is not None and w >= length:
            unit = f"{run.interval}s"
            raise InvalidValue(f"`warmup` must be shorter than the run: got warmup={w} {unit}, total={length} {unit}")
        inner = self._binder(replace(run, skip=w))
        if w == 0:
            return inner
        start = inner.weights(np.zeros(1, dtype=np.int64)).at(0)

        def weights(t: np.ndarray) -> Weights:
            ramp, before = linear_ramp(t, w), t < w
            after = inner.weights(np.maximum(t - w, 0))
            hold = lambda x, x0: None if x is None else np.where(before, ramp * x0, x)  # noqa: E731
            momentum = None if after.momentum is None else np.where(before, start.momentum, after.momentum)
            return Weights(hold(after.peak, start.peak), hold(after.floor, start.floor), momentum)

        return replace(inner, weights=weights, warmup=w, length=None if inner.length is None else inner.length + w)

    def build(
        self,
        optimizer: Optimizer,
        *,
        total_steps: int | None = None,
        steps_per_epoch: int | None = None,
        adopt_settings: bool = False,
        param: str = "lr",
    ) -> ScheduledLR:
        """Make the torch scheduler that drives ``optimizer`` along this schedule.

        Args:
            optimizer: the optimizer whose param groups it sets; each group's base is its
                ``initial_lr`` when present, else its ``lr``.
            total_steps: optimizer steps in the whole run (needed for ``"25%"`` durations and for
                arguments that default to the run length).
            steps_per_epoch: optimizer steps per epoch (needed for ``"10ep"`` on step schedules and
                ``"500st"`` on epoch schedules). Without it, an epoch is one step: ``total_steps``
                then counts scheduler steps of either interval.
            adopt_settings: let ``load_state_dict`` take a state saved with other settings of this
                schedule (with a warning) instead of refusing it.
            param: the hyperparameter to drive: ``"lr"``, or any float key of the param groups
                (``"weight_decay"``, ...), relative to each group's own value, with the same formulas
                and durations; ``"momentum"`` is SGD's momentum or Adam's first beta.

        Example:
            >>> import torch
            >>> opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
            >>> sched = get_schedule("cosine").build(opt, total_steps=10)
            >>> [round(sched.get_last_lr()[0], 4) for _ in range(3) if not sched.step()]
            [0.0976, 0.0905, 0.0794]
        """
        check_build_args(optimizer, total_steps, steps_per_epoch)
        check_bool("adopt_settings", adopt_settings)
        base = base_value(optimizer, param)
        run = Run(self.interval, total_steps, steps_per_epoch or 1, base, len(optimizer.param_groups))
        curve = self.curve(run)
        scheduler = (PlateauLR if curve.plateau is not None else ScheduledLR)(optimizer, self, curve, param)
        scheduler.adopts_settings = adopt_settings
        return scheduler

    def lightning_config(
        self,
        optimizer: Optimizer,
        trainer: Any,
        *,
        name: str | None = None,
        adopt_settings: bool = False,
        param: str = "lr",
    ) -> dict[str, Any]:
        """Build for ``trainer``'s run and return Lightning's scheduler dict.

        The run length is ``trainer.estimated_stepping_batches`` (max_epochs, max_steps, limits and
        gradient accumulation included) and an epoch is ``num_training_batches`` /
        ``accumulate_grad_batches`` optimizer steps. Call it from ``configure_optimizers``. A per-step
        scheduler counts applied updates only (a step a GradScaler skipped does not advance it).

        Returns:
            ``{"scheduler", "interval", "frequency", "name"}``, plus ``monitor`` for ``plateau``, whose
            values :class:`~lightning_lrsched.callbacks.PlateauDriver` (which must be among the
            trainer's callbacks) feeds to the scheduler at the end of each validation run.
        """
        plan = RunPlan.from_trainer(trainer)
        args = plan.build_args(self.interval)
        check_run_is_known([self], plan, args)
        scheduler = self.build(optimizer, **args, adopt_settings=adopt_settings, param=param)
        return scheduler_config(scheduler, trainer, self.interval, name or f"{param}-{self.name}")


def scheduler_config(scheduler: GroupScheduledLR, trainer: Any, interval: Interval, name: str) -> dict[str, Any]:
    """Lightning's scheduler dict for one of our schedulers, checked against ``trainer``'s callbacks."""
    monitors = [lane.metric for lane in scheduler.lanes if lane.metric is not None]
    if monitors and not any(getattr(c, "drives_plateau_schedules", False) for c in getattr(trainer, "callbacks", ())):
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


def check_build_args(optimizer: Any, total_steps: Any, steps_per_epoch: Any) -> None:
    """The argument checks of every ``build``."""
    if not isinstance(optimizer, Optimizer):
        raise InvalidType(f"`optimizer` must be a torch.optim.Optimizer: got {type(optimizer).__name__}")
    for name, value in (("total_steps", total_steps), ("steps_per_epoch", steps_per_epoch)):
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            raise InvalidValue(f"`{name}` must be a positive int or None: got {name}={value!r}")


def base_lr(optimizer: Optimizer) -> float:
    """The optimizer's default LR (what ``warmup_polynomial``'s absolute ``lr_end`` is relative to)."""
    return base_value(optimizer, "lr")


def base_value(optimizer: Optimizer, param: str) -> float:
    """The optimizer's default value of the hyperparameter ``param`` drives (checked to exist)."""
    key = param_key(optimizer, param)
    value = optimizer.defaults.get(key, optimizer.param_groups[0][key])
    return float(value[0] if key == "betas" else value)


def check_run_is_known(schedules: list[Schedule], plan: RunPlan, args: dict[str, int | None]) -> None:
    """Refuse, by name, a schedule that needs a run length (or epoch length) the trainer does not know.

    A length-free schedule (``warmup_constant(warmup=10)``, ``step``, ``plateau``) trains exactly on a
    loader of unknown length; one bound to the run's length would fail mid-run or stretch wrongly.
    """
    for schedule in schedules:
        arg = needs_run_length(schedule) if args["total_steps"] is None else None
        what = "run length"
        if arg is None and args["steps_per_epoch"] is None:
            arg, what = needs_epoch_length(schedule), "epoch length"
        if arg is not None:
            raise InvalidValue(
                f"`{schedule.name}` needs the {what} for `{arg}`, but it is unknown: give `{arg}` explicitly "
                f"(in optimizer steps), or {plan.length_hint()}"
            )


def available_schedules() -> list[str]:
    """The names :func:`get_schedule` accepts.

    Example:
        >>> "warmup_cosine" in available_schedules()
        True
    """
    return sorted(CATALOG)


def get_schedule(name: str | Mapping[str, Any], **params: Any) -> Schedule:
    """Make a schedule from the catalog.

    Args:
        name: a name from :func:`available_schedules`, or a spec dict ``{"name": ..., **params}``.
        **params: the schedule's arguments (torch's names for torch's schedules, see each one's
            docstring), plus ``interval`` ("step" or "epoch") and, for any schedule outside the
            warmup family, ``warmup`` (a linear warmup in front).

    Raises:
        ValueError: unknown name, or an argument with a bad value.
        TypeError: an unknown or missing argument, or an argument of the wrong type.

    Example:
        >>> get_schedule("warmup_cosine", warmup="5%", min_lr_ratio=0.01)
        Schedule('warmup_cosine', warmup='5%', min_lr_ratio=0.01, interval='step')
    """
    if isinstance(name, Mapping):
        spec = dict(name)
        if "name" not in spec:
            raise InvalidValue(f"a schedule spec needs a `name`: got {spec!r}")
        name = spec.pop("name")
        params = {**spec, **params}
    if not isinstance(name, str) or name not in CATALOG:
        raise InvalidValue(f"unknown schedule {name!r}: use one of {', '.join(available_schedules())}")
    entry = CATALOG[name]
    params = dict(params)
    interval = check_choice("interval", params.pop("interval", entry.interval), INTERVALS)
    ramp = None
    if not entry.own_warmup and "warmup" in params:
        value = params.pop("warmup")
        ramp = None if value is None else parse_duration("warmup", value)
    accepted = entry.parameters()
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        extra = ["interval"] + ([] if entry.own_warmup else ["warmup"])
        valid = ", ".join([*accepted, *extra])
        raise InvalidType(f"`{name}` got unknown argument(s) {', '.join(unknown)}: valid arguments are {valid}")
    missing = [k for k, default in accepted.items() if default is inspect.Parameter.empty and k not in params]
    if missing:
        raise InvalidType(f"`{name}` needs the argument(s) {', '.join(missing)}")
    binder = entry.constructor(**params)
    return Schedule(entry, params, interval, ramp, binder)
