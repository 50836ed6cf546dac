"""`Schedule`: a named, validated schedule whose durations resolve once the run is known."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from torch.optim import Optimizer

# Importing the formula modules fills the catalog.
import lightning_lrsched.schedules.classic
import lightning_lrsched.schedules.compose
import lightning_lrsched.schedules.plateau
import lightning_lrsched.schedules.warmup  # noqa: F401
from lightning_lrsched.errors import InvalidType, InvalidValue
from lightning_lrsched.fingerprint import fingerprint
from lightning_lrsched.schedules.curve import CATALOG, Binder, Curve, Entry, chain, check_warmup, hold, join, ramp
from lightning_lrsched.schedules.duration import INTERVALS, Duration, Interval, Run, parse_duration
from lightning_lrsched.schedules.run import RunPlan, needs_epoch_length, needs_run_length
from lightning_lrsched.schedules.scheduler import PlateauLR, ScheduledLR, param_key
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
        parts: for a composite (``join``, ``chain``), its parts as :class:`Schedule` objects, in
            order (``params["schedules"]`` holds their specs); empty otherwise.
    """

    def __init__(
        self,
        entry: Entry,
        params: dict[str, Any],
        interval: Interval,
        warmup: Duration | None,
        binder: Binder,
        parts: tuple[Schedule, ...] = (),
    ) -> None:
        self.name = entry.name
        self.params = params
        self.interval = interval
        self.warmup = warmup
        self.parts = parts
        self._binder = binder

    @property
    def is_plateau(self) -> bool:
        """Whether metric values drive it: ``plateau``, or a composite with a ``plateau`` part."""
        return self.name == "plateau" or any(part.is_plateau for part in self.parts)

    @property
    def monitor(self) -> str | None:
        """The metric a ``plateau`` schedule (or a composite's ``plateau`` part) reads; ``None`` if time-driven."""
        if self.name == "plateau":
            return self.params.get("monitor", CATALOG["plateau"].parameters()["monitor"])
        return next((part.monitor for part in self.parts if part.is_plateau), None)

    def to_dict(self) -> dict[str, Any]:
        """The spec that :func:`get_schedule` turns back into this schedule."""
        spec: dict[str, Any] = {"name": self.name, **self.params, "interval": self.interval}
        if self.warmup is not None:
            spec["warmup"] = str(self.warmup) if self.warmup.unit != "int" else int(self.warmup.amount)
        return spec

    def describe(self) -> str:
        """A short form for legends and reports: the name and the arguments given, a composite's parts inline.

        Example:
            >>> parts = [{"name": "linear", "total_iters": 5}, "cosine"]
            >>> get_schedule("join", schedules=parts, boundaries=[5]).describe()
            'join(linear(total_iters=5), cosine(); boundaries=[5])'
        """
        args = [f"{k}={v}" for k, v in self.params.items() if k != "schedules"]
        if self.warmup is not None:
            args.append(f"warmup={self.warmup}")
        if self.parts:
            parts = ", ".join(part.describe() for part in self.parts)
            return f"{self.name}({parts}{'; ' if args else ''}{', '.join(args)})"
        return f"{self.name}({', '.join(args)})"

    def fingerprint(self) -> str:
        """A short hash of the spec: equal for equal schedules, different when any argument differs."""
        return fingerprint(self.to_dict())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Schedule) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash(self.fingerprint())

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.to_dict().items() if k != "name")
        return f"Schedule({self.name!r}, {args})"

    # -- binding to a run -------------------------------------------------------------------
    def curve(self, run: Run) -> Curve:
        """Resolve every duration against ``run`` and return the closed form.

        A generic ``warmup`` is a join: a linear ramp up to the schedule's first value, then the
        schedule on its own clock, its run-length defaults covering what is left of the run.
        """
        if self.warmup is None:
            return self._binder(run)
        w = run.count("warmup", self.warmup)
        check_warmup(w, run.remaining, run.interval)
        if w == 0:
            return self._binder(run)
        inner = self._binder(replace(run, span=None if run.remaining is None else run.remaining - w))
        warmed = join([chain([ramp(w), hold(inner)]), inner], [w])
        # `parts` lists this schedule's own parts (a composite's), which the warmup moves later.
        return replace(warmed, parts=tuple((w + start, part) for start, part in inner.parts))

    def resolve(self, total_steps: int | None, steps_per_epoch: int | None, base: float, num_groups: int = 1) -> Curve:
        """The closed form for a run of ``total_steps`` optimizer steps, ``steps_per_epoch`` to an epoch.

        ``base`` is the optimizer's default value of the driven hyperparameter (its LR for ``"lr"``)
        and ``num_groups`` its number of param groups; ``None`` lengths are unknown (an epoch is then
        one step). Every ``build`` and preview resolves through here.
        """
        return self.curve(Run(self.interval, total_steps, steps_per_epoch or 1, base, num_groups))

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
        curve = self.resolve(total_steps, steps_per_epoch, base, len(optimizer.param_groups))
        scheduler = (PlateauLR if curve.plateau is not None else ScheduledLR)(optimizer, self, curve, param)
        scheduler.adopts_settings = adopt_settings
        scheduler.resolved_run = {"total_steps": total_steps, "steps_per_epoch": steps_per_epoch}
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
            values :class:`~lightning_lrsched.PlateauDriver` (which must be among the
            trainer's callbacks) feeds to the scheduler at the end of each validation run.
        """
        # The Lightning layer sits above this one: imported here, so `schedules` never imports it.
        from lightning_lrsched.lightning.config import lightning_config

        return lightning_config(self, optimizer, trainer, name=name, adopt_settings=adopt_settings, param=param)


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
            warmup family, ``warmup`` (a linear warmup in front). The parts of a composite
            (``join``, ``chain``: ``schedules=[...]``) are specs, names or :class:`Schedule` objects.

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
    parts: tuple[Schedule, ...] = ()
    if entry.parts is not None:
        parts, interval = _parts(name, params.pop("schedules", None), params.pop("interval", None))
        params = {"schedules": [part.to_dict() for part in parts], **params}
        if isinstance(params.get("boundaries"), tuple):
            params["boundaries"] = list(params["boundaries"])
    else:
        interval = check_choice("interval", params.pop("interval", entry.interval), INTERVALS)
    ramp_ = None
    if not entry.own_warmup and "warmup" in params:
        value = params.pop("warmup")
        ramp_ = None if value is None else parse_duration("warmup", value)
    accepted = entry.parameters()
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        extra = ["interval"] + ([] if entry.own_warmup else ["warmup"])
        valid = ", ".join([*accepted, *extra])
        raise InvalidType(f"`{name}` got unknown argument(s) {', '.join(unknown)}: valid arguments are {valid}")
    missing = [k for k, default in accepted.items() if default is inspect.Parameter.empty and k not in params]
    if missing:
        raise InvalidType(f"`{name}` needs the argument(s) {', '.join(missing)}")
    binder = entry.constructor(**{**params, "schedules": parts} if parts else params)
    return Schedule(entry, params, interval, ramp_, binder, parts)


def _parts(name: str, specs: Any, interval: Any) -> tuple[tuple[Schedule, ...], Interval]:
    """A composite's parts as schedules on one clock, and that clock's interval.

    The interval is the composite's own if given, else the one its parts name (they must agree),
    else ``"step"`` when any part is a per-step schedule and ``"epoch"`` otherwise. A part given
    without an interval runs on it; a part that names another one is refused.
    """
    if isinstance(specs, (str, Mapping, Schedule)) or not isinstance(specs, (list, tuple)) or len(specs) < 2:
        raise InvalidType(
            f"`{name}` needs `schedules`: a list of at least two schedules (names, spec dicts or Schedule "
            f"objects): got schedules={specs!r}"
        )
    if interval is not None:
        interval = check_choice("interval", interval, INTERVALS)
    named = {i: _named_interval(spec) for i, spec in enumerate(specs)}
    named = {i: value for i, value in named.items() if value is not None}
    if interval is None and len(set(named.values())) > 1:
        raise InvalidValue(
            f"the parts of `{name}` name different intervals ({_intervals(named)}): a composite runs all its parts "
            "on one clock; set `interval` on the composite and drop it from the parts"
        )
    if interval is None:
        defaults = {_default_interval(spec) for spec in specs}
        interval = next(iter(named.values()), "step" if "step" in defaults else "epoch")
    clashing = {i: value for i, value in named.items() if value != interval}
    if clashing:
        raise InvalidValue(
            f"the parts of `{name}` run on its clock, interval={interval!r}, but {_intervals(clashing)}: drop the "
            "part's interval, or make it match"
        )
    parts = []
    for i, spec in enumerate(specs):
        if isinstance(spec, Schedule):
            parts.append(spec)
            continue
        try:
            parts.append(get_schedule(spec, interval=interval))
        except (InvalidType, InvalidValue) as error:
            raise type(error)(f"`schedules[{i}]` of `{name}`: {error}") from error
    return tuple(parts), interval


def _named_interval(spec: Any) -> str | None:
    if isinstance(spec, Schedule):
        return spec.interval
    if isinstance(spec, Mapping):
        return spec.get("interval")
    return None


def _default_interval(spec: Any) -> str:
    """The interval a part would have on its own (a composite's from its parts)."""
    name = spec.get("name") if isinstance(spec, Mapping) else spec
    entry = CATALOG.get(name) if isinstance(name, str) else None
    if entry is None:
        return "epoch"  # an unknown name is reported when the part is made
    if entry.parts is not None and isinstance(spec, Mapping) and isinstance(spec.get("schedules"), (list, tuple)):
        return "step" if any(_default_interval(part) == "step" for part in spec["schedules"]) else "epoch"
    return entry.interval


def _intervals(named: Mapping[int, str | None]) -> str:
    return ", ".join(f"schedules[{i}] has interval={value!r}" for i, value in named.items())
