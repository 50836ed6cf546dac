"""What is off with a run's LR schedules: the checks behind ``ScheduleCheck``, free of Lightning.

:func:`check_schedulers` lays out the run (a :class:`~lightning_lrsched.schedules.run.RunPlan`),
evaluates each schedule's closed form over it in one vectorised pass, and returns every problem as
a :class:`Finding`. What it knows about a schedule comes from the catalog's metadata
(:class:`~lightning_lrsched.schedules.curve.Entry`: the interval it is meant for, the argument that
ends it, its durations); torch's own schedulers are read as their catalog twins.
:func:`resume_findings` compares a checkpoint's scheduler states and run length with this run's;
:func:`unlogged_monitors` checks plateau monitors against the logged metrics.

A scheduler config is anything with Lightning's config fields (``scheduler``, ``interval``,
``frequency``, ``name``, ``monitor``); nothing here reads a Trainer.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, cast

import numpy as np
from torch.optim import Optimizer
from torch.optim.lr_scheduler import ReduceLROnPlateau

from lightning_lrsched.errors import InvalidType, InvalidValue
from lightning_lrsched.schedules.checkpoint import saved_run, saved_specs
from lightning_lrsched.schedules.curve import CATALOG, Curve, Entry, combine
from lightning_lrsched.schedules.run import RunPlan, needs_epoch_length, needs_run_length
from lightning_lrsched.schedules.schedule import Schedule, base_lr
from lightning_lrsched.schedules.scheduler import GroupScheduledLR, Lane
from lightning_lrsched.schedules.torch_schedulers import RAISES_PAST_END, catalog_entry, catalog_twin, torch_arguments

__all__ = [
    "Finding",
    "Subject",
    "check_schedulers",
    "plateau_monitors",
    "resume_findings",
    "subjects",
    "unlogged_monitors",
]

# A report needs no more positions than this; longer stretches are sampled (bounded memory).
MAX_SIMULATED = 1_000_000


@dataclass(frozen=True)
class Finding:
    """One problem: a short ``code`` (for filtering), the scheduler it concerns, and the explanation.

    ``fatal``: the run cannot go on as asked (a resume that would load another scheduler's state, or
    step a restored torch scheduler past its end); :class:`ScheduleCheck` raises even when not strict.
    """

    code: str
    scheduler: str
    message: str
    fatal: bool = False

    def __str__(self) -> str:
        return f"{self.scheduler}: {self.message}"


@dataclass(frozen=True)
class Subject:
    """One schedule as this run steps it: everything the checks read.

    Attributes:
        label: how the report names it.
        name: the catalog name, or the torch class name.
        entry: its catalog metadata (for a torch scheduler, its catalog twin's).
        params: its arguments (a torch scheduler's attributes of the same names).
        interval: what one unit of its time is.
        built_for: the interval a catalog scheduler was built to be stepped at (``None``: torch's).
        stepped: the interval Lightning steps its scheduler at (the config's ``interval``).
        used: time units the run uses (``None``: unknown).
        calls: ``step()`` calls Lightning makes in the run (``None``: unknown).
        start: the time unit the run starts at (after a resume).
        length: time units after which its shape is complete (``None``: never, or unknown).
        warmup: time units of warmup.
        lr: the planned LR of its first param group at an array of times, when known.
        raises_past_end: its ``step()`` raises past ``length`` (torch's OneCycleLR).
        parts: for a composite (``join``, ``chain``), each part as a subject of its own, on the part's
            clock and checked against the part's span (a join's part ends where the next one starts).
        hands_over: it is a join's part before the last, so its shape may end exactly where its span
            does (the next part takes over there: a warmup reaching its peak at the boundary).
    """

    label: str
    name: str
    entry: Entry
    params: Mapping[str, Any]
    interval: str
    built_for: str | None
    stepped: str
    used: int | None
    calls: int | None
    start: int
    length: int | None
    warmup: int = 0
    lr: Callable[[np.ndarray], np.ndarray] | None = None
    raises_past_end: bool = False
    parts: tuple[Subject, ...] = ()
    hands_over: bool = False

    @property
    def torch(self) -> bool:
        return self.built_for is None

    @property
    def unit(self) -> str:
        return f"{self.interval}s"


def check_schedulers(configs: list[Any], plan: RunPlan) -> list[Finding]:
    """Every problem with the scheduler configs for the run ``plan`` describes.

    ``configs`` are Lightning scheduler configs (``scheduler``, ``interval``, ``frequency``,
    ``name``). Catalog schedules (each lane of a :class:`GroupScheduledLR`) and torch's schedulers
    (through their catalog twins) go through the same checks.

    Example:
        >>> import torch
        >>> from types import SimpleNamespace
        >>> from lightning_lrsched.schedules import get_schedule
        >>> opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
        >>> config = SimpleNamespace(scheduler=get_schedule("cosine", T_max=5).build(opt), interval="epoch",
        ...                          frequency=1, name="lr-cosine", monitor=None)
        >>> [f.code for f in check_schedulers([config], RunPlan(total_steps=100, batches_per_epoch=10))]
        ['ends-early']
    """
    findings: list[Finding] = []
    for config in configs:
        for subject in subjects(config, plan):
            findings.extend(check_subject(subject, plan))
    return findings


def check_subject(s: Subject, plan: RunPlan) -> list[Finding]:
    """The clock checks, then (unless its durations count the wrong unit) the length checks."""
    wrong_unit = _wrong_clock(s) or _epoch_durations_on_steps(s, plan)
    if wrong_unit is not None:
        return [wrong_unit]
    found = [_per_step_schedule_per_epoch(s)]
    if s.used is not None:
        found.append(_warmup_too_long(s) or _raises_past_end(s) or _end_misplaced(s) or _never_changes(s))
    return [f for f in found if f is not None] + [f for part in s.parts for f in check_subject(part, plan)]


# -- what each schedule is in this run -------------------------------------------------------------
def subjects(config: Any, plan: RunPlan) -> list[Subject]:
    """The :class:`Subject` of each catalog lane of ``config.scheduler``, or of a torch scheduler."""
    scheduler, interval, frequency = config.scheduler, config.interval, config.frequency
    run = {
        "stepped": interval,
        "used": plan.positions(interval, frequency),
        "calls": plan.scheduler_steps(interval, frequency),
        "start": plan.position(plan.global_step, interval, frequency),
    }
    if isinstance(scheduler, GroupScheduledLR):
        return [_lane_subject(config, i, lane, **run) for i, lane in enumerate(scheduler.lanes)]
    entry = catalog_entry(scheduler)
    if entry is None:
        return []  # a scheduler the catalog has no twin for (LambdaLR, SequentialLR, ...): nothing known to check
    params, twin, optimizer = torch_arguments(scheduler), catalog_twin(scheduler), scheduler.optimizer
    lr = None if twin is None else _planned_lr(twin.resolve(None, None, base_lr(optimizer)), optimizer, 0)
    length = _torch_length(params.get(entry.end_arg)) if entry.end_arg else None
    raises = isinstance(scheduler, tuple(RAISES_PAST_END))
    name = type(scheduler).__name__
    return [
        Subject(
            _label(config), name, entry, params, interval, None, length=length, lr=lr, raises_past_end=raises, **run
        )
    ]


def _lane_subject(
    config: Any, i: int, lane: Lane, used: int | None, calls: int | None, start: int, stepped: str
) -> Subject:
    """A lane's time is the scheduler's step divided by its stride (an epoch lane stepped per optimizer step)."""
    # A lane holds a Schedule; its protocol type only keeps schedules/scheduler.py from importing schedule.py.
    schedule, curve, stride, lanes = cast(Schedule, lane.schedule), lane.curve, lane.stride, config.scheduler.lanes
    label = _label(config) + (
        "" if len(lanes) == 1 else f" lane {i} ({schedule.name}, param groups {list(lane.groups)})"
    )
    subject = Subject(
        label, schedule.name, CATALOG[schedule.name], schedule.params, schedule.interval,
        built_for="step" if stride > 1 else schedule.interval, stepped=stepped,
        used=None if used is None else (used - 1) // stride + 1, calls=None if calls is None else calls // stride,
        start=start // stride, length=curve.length, warmup=curve.warmup,
        lr=_planned_lr(curve, config.scheduler.optimizer, lane.groups[0]),
    )  # fmt: skip
    return _with_parts(subject, schedule, curve)


def _shifted(lr: Callable[[np.ndarray], np.ndarray], start: int) -> Callable[[np.ndarray], np.ndarray]:
    """``lr`` on a part's own clock, which starts at ``start`` of the composite's."""
    return lambda t: lr(t + start)


def _with_parts(s: Subject, schedule: Schedule, curve: Curve) -> Subject:
    """A composite's subject: its own clock and boundaries, and a subject per part on the part's clock.

    A composite is meant for the clock its parts run on, so only its parts are checked for being
    per-step schedules; a join's part is checked against its span as if that were the run.
    """
    if not schedule.parts:
        return s
    entry = CATALOG[schedule.name]
    starts = [start for start, _ in curve.parts]
    parts = []
    for i, (part, (start, part_curve)) in enumerate(zip(schedule.parts, curve.parts, strict=True)):
        hands_over = entry.parts == "sequence" and i + 1 < len(starts)
        end = starts[i + 1] if hands_over else s.used
        used = None if end is None else min(end, s.used if s.used is not None else end) - start
        if used is not None and used < 1:
            continue  # the run ends before this part starts
        span = f"{s.unit} {start}..{'end' if end is None or end == s.used else end}"
        lr = s.lr
        part_subject = Subject(
            f"{s.label} part {i} ({part.name}, {span})", part.name, CATALOG[part.name], part.params, s.interval,
            built_for=s.stepped, stepped=s.stepped, used=used, calls=None, start=max(0, s.start - start),
            length=part_curve.length, warmup=part_curve.warmup,
            lr=None if lr is None else _shifted(lr, start), hands_over=hands_over,
        )  # fmt: skip
        parts.append(_with_parts(part_subject, part, part_curve))
    return replace(s, entry=replace(entry, interval=schedule.interval), parts=tuple(parts))


def _label(config: Any) -> str:
    scheduler = config.scheduler
    if isinstance(scheduler, GroupScheduledLR):
        what = "+".join(lane.schedule.name for lane in scheduler.lanes)
    else:
        what = type(scheduler).__name__
    name = config.name or f"lr-{type(scheduler.optimizer).__name__}"
    return f"{name} ({what}, interval={config.interval!r})"


def _torch_length(value: Any) -> int | None:
    if isinstance(value, (list, tuple)):
        value = max(value, default=None)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _planned_lr(curve: Curve, optimizer: Optimizer, group: int) -> Callable[[np.ndarray], np.ndarray]:
    """The LR ``curve`` gives param group ``group`` at an array of times (its base: ``initial_lr``, torch's)."""
    first = lambda v: float(v[0] if isinstance(v, tuple) else v)  # noqa: E731
    params = optimizer.param_groups[group]
    peak = float(params.get("initial_lr", params["lr"])) if curve.peak is None else first(curve.peak)
    floor = first(curve.floor)

    def lr(t: np.ndarray) -> np.ndarray:
        w = curve.weights(t)
        return combine(w.peak, 0.0 if w.floor is None else w.floor, peak, floor)

    return lr


def _lr_between(s: Subject, start: int, stop: int) -> np.ndarray | None:
    """The planned LR at times ``start .. stop-1``; longer stretches sampled at :data:`MAX_SIMULATED` times."""
    if s.lr is None or stop <= start:
        return None
    if stop - start > MAX_SIMULATED:
        return s.lr(np.linspace(start, stop - 1, MAX_SIMULATED).astype(np.int64))
    return s.lr(np.arange(start, stop, dtype=np.int64))


def _lr_at(s: Subject, t: int) -> str:
    lrs = _lr_between(s, t, t + 1)
    return "" if lrs is None else f" (LR {float(lrs[0]):.3g} at the last step)"


def _describe_tail(lrs: np.ndarray | None) -> str:
    if lrs is None or not len(lrs):
        return "the rest of the run is past its end"
    low, high, first = float(lrs.min()), float(lrs.max()), float(lrs[0])
    if high - low <= 1e-12 * max(abs(high), 1e-30):
        return f"past its end the LR stays at {first:.3g}" + (" (nothing is learned)" if first == 0 else "")
    if high > first:
        return f"past its end the LR rises again, up to {high:.3g}"
    return f"past its end the LR keeps changing, between {low:.3g} and {high:.3g}"


# -- the checks: each looks at one thing and returns one Finding or None ----------------------------------
def _wrong_clock(s: Subject) -> Finding | None:
    if s.built_for is None or s.stepped == s.built_for:
        return None
    return Finding(
        "interval",
        s.label,
        f"the schedule was built for interval={s.built_for!r} (its durations count {s.built_for}s) but Lightning "
        f"steps it every {s.stepped}, so it runs on the wrong clock. Build the config with "
        f"schedule.lightning_config(optimizer, trainer), or set 'interval': {s.built_for!r}.",
    )


def _per_step_schedule_per_epoch(s: Subject) -> Finding | None:
    if s.entry.interval != "step" or s.interval != "epoch":
        return None
    fix = (
        "Return it as {'scheduler': ..., 'interval': 'step'}."
        if s.torch
        else f"Use interval='step' (the default of get_schedule({s.name!r}, ...))."
    )
    changes = f"only {s.used} times" if s.used is not None else "only once per epoch"
    return Finding(
        "step-schedule-per-epoch",
        s.label,
        f"{s.name} is a per-step schedule, but here it advances once per epoch, so the LR changes {changes} in "
        f"this run. {fix}",
    )


def _epoch_durations_on_steps(s: Subject, plan: RunPlan) -> Finding | None:
    """An epoch-style schedule stepped per optimizer step, with plain-int durations that fit in the epoch count."""
    epochs, spe = plan.epochs, plan.steps_per_epoch
    if s.entry.interval != "epoch" or s.interval != "step" or epochs is None or spe is None or spe < 2:
        return None
    for arg in s.entry.durations:
        value: Any = s.params.get(arg)
        ints = [int(v) for v in (value if isinstance(value, (list, tuple)) else [value]) if _plain_int(v)]
        if ints and 0 < max(ints) <= epochs:
            n = max(ints)
            fix = (
                f"Use interval='epoch', or give {arg} in steps ({n} epochs = {n * spe} steps)."
                if s.torch
                else f"Write it in epochs (e.g. {arg}='{n}ep') or use interval='epoch'."
            )
            return Finding(
                "epoch-durations-on-steps",
                s.label,
                f"{s.name} advances every optimizer step, but {arg}={value!r} looks like a number of epochs (the run "
                f"has {epochs} epochs of {spe} steps); with interval='step' it counts steps. {fix}",
            )
    return None


def _plain_int(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, str) and value.strip().isdigit())


def _warmup_too_long(s: Subject) -> Finding | None:
    if not s.warmup or s.used is None or s.warmup < s.used + s.hands_over:
        return None
    return Finding(
        "warmup",
        s.label,
        f"the warmup lasts {s.warmup} {s.unit} but the run has only {s.used}: the LR never reaches its peak. "
        "Shorten the warmup (e.g. warmup='5%') or train longer.",
    )


def _raises_past_end(s: Subject) -> Finding | None:
    if not s.raises_past_end or s.length is None or s.calls is None or s.calls <= s.length:
        return None
    arg = s.entry.end_arg
    return Finding(
        "ends-early",
        s.label,
        f"{arg}={s.length} but Lightning will call step() {s.calls} times: torch raises ValueError at call "
        f"{s.length + 1}. "
        + (
            f"Resumed at call {s.start}, its {arg} is the checkpoint's: resume with the checkpoint's "
            "max_epochs/max_steps, or start a fresh run without ckpt_path."
            if s.start
            else f"Set {arg}={s.used} (trainer.estimated_stepping_batches with interval='step')."
        ),
        fatal=s.start > 0,  # resumed: the restored scheduler raises within the run, maybe at once
    )


def _end_misplaced(s: Subject) -> Finding | None:
    """A schedule meant to end with the run ending well before or after it, or an end the run never reaches."""
    arg, length, used = s.entry.end_arg, s.length, s.used
    if arg is None or length is None or used is None:
        return None
    if s.torch:
        fix = f"Set {arg}={used}." if s.entry.ends_with_run else f"Keep {arg} below {used}."
    elif not s.entry.ends_with_run:
        fix = f"Keep {arg} below {used} (e.g. as a share of the run: '75%')."
    elif s.entry.end_defaults_to_run():
        fix = f"Leave `{arg}` unset (it defaults to the run) or set {arg}={used}."
    else:
        fix = f"Set {arg}={used} (or {arg}='100%')."
    if not s.entry.ends_with_run:
        if length < used + s.hands_over:
            return None
        return Finding(
            "ends-late",
            s.label,
            f"{arg}={s.params.get(arg)!r} ends at {length} {s.unit}, at or after the run's end ({used}): the LR never "
            f"reaches the schedule's end. {fix}",
        )
    what = f"{arg}={length}" if s.torch else s.name
    if used - length > max(1, used // 100):
        tail = _describe_tail(_lr_between(s, max(s.start, length), used))
        return Finding(
            "ends-early", s.label, f"{what} ends after {length} {s.unit} but the run lasts {used}; {tail}. {fix}"
        )
    if used < 0.9 * length:
        return Finding(
            "ends-late",
            s.label,
            f"{what} lasts {length} {s.unit} but the run ends after {used}, at {used / length:.0%} of the "
            f"schedule{_lr_at(s, used - 1)}, before the LR has decayed. {fix}",
        )
    return None


def _never_changes(s: Subject) -> Finding | None:
    """A schedule holding its LR until its ``first_change_arg`` (``step``'s ``step_size``), never reached in the run."""
    arg = s.entry.first_change_arg
    if arg is None or s.used is None or s.lr is None or s.used <= s.warmup:
        return None
    lrs = _lr_between(s, s.warmup, s.used)
    if lrs is None or not len(lrs):
        return None
    held, high = float(lrs[0]), float(lrs.max())
    if high - float(lrs.min()) > 1e-12 * max(abs(high), 1e-30):
        return None
    # Far past the run it has changed, unless it never does (gamma=1): then nothing is wrong with the run's length.
    later = float(s.lr(np.array([10**6 * max(s.used, 1)], dtype=np.int64))[0])
    if abs(later - held) <= 1e-12 * max(abs(held), 1e-30):
        return None
    return Finding(
        "never-changes",
        s.label,
        f"{arg}={s.params.get(arg)!r} is never reached: the run has {s.used} {s.unit}, so the LR stays at {held:.3g} "
        f"for the whole run and {s.name} never changes it. Set {arg} below {s.used} (e.g. as a share of the run: "
        "'25%') or train longer.",
    )


# -- resume: the checkpoint's schedulers and run against this run's --------------------------------------
def resume_findings(
    configs: list[Any], states: list[Mapping[str, Any]], before: RunPlan | None, now: RunPlan, step: int
) -> list[Finding]:
    """What changes when this run resumes from a checkpoint, before its training state is restored.

    Args:
        configs: this run's scheduler configs, as built (not yet restored).
        states: the checkpoint's ``lr_schedulers`` states.
        before: the checkpoint's run plan from ScheduleCheck's own state (``None``: not saved); a
            scheduler state that holds the run it was resolved against (``run``) is read instead.
        now: this run's plan.
        step: the checkpoint's global step.
    """
    if len(states) != len(configs):
        return [
            Finding(
                "changed",
                "schedulers",
                f"the checkpoint was trained with {len(states)} scheduler(s) but this run has {len(configs)}; the "
                "resumed LR will not continue the checkpoint's. Resume with the same configure_optimizers, or start "
                "a fresh run without ckpt_path.",
            )
        ]
    out = []
    for config, state in zip(configs, states, strict=True):
        changed = _changed_settings(config, state, step)
        out.extend(changed)
        if not changed and isinstance(config.scheduler, GroupScheduledLR):
            out.extend(_run_length_changed(config, state, before, now, step))
    return out


def _changed_settings(config: Any, state: Mapping[str, Any], step: int) -> list[Finding]:
    scheduler = config.scheduler
    if not isinstance(scheduler, GroupScheduledLR) and (foreign := _foreign_state(scheduler, state)):
        return [
            Finding(
                "replaced",
                _label(config),
                f"the checkpoint's scheduler is not this run's {type(scheduler).__name__} ({foreign}): Lightning "
                "would load its state into this one (a wrong LR, or an error mid-run). Resume with the checkpoint's "
                "scheduler, or start a fresh run without ckpt_path.",
                fatal=True,
            )
        ]
    if not isinstance(scheduler, GroupScheduledLR):
        new = torch_arguments(scheduler)
        old = {arg: sorted(v.elements()) if hasattr(v, "elements") else v for arg, v in state.items() if arg in new}
        diff = {arg: (old[arg], new[arg]) for arg in old if old[arg] != new[arg]}
        if not diff:
            return []
        changes = ", ".join(f"{arg} {a!r} -> {b!r}" for arg, (a, b) in diff.items())
        what = f"torch's load_state_dict restores the checkpoint's values, so the new ones are NOT applied ({changes})"
    else:
        old_specs = saved_specs(state)
        new_specs = [lane.schedule.to_dict() for lane in scheduler.lanes]
        if old_specs is None or list(old_specs) == new_specs:
            return []
        if scheduler.adopts_settings:
            verdict = f"the new settings apply from step {step}, so the LR may jump"
        else:
            verdict = "loading the checkpoint refuses it (an error names each setting)"
        what = (
            f"the schedule differs from the checkpoint's: was {_specs(old_specs)}, now {_specs(new_specs)}; {verdict}"
        )
    return [
        Finding(
            "changed",
            _label(config),
            f"{what}. Resume with the checkpoint's schedule, or start a fresh run without ckpt_path.",
        )
    ]


VERSION_KEYS = frozenset({"verbose", "anneal_func"})
"""Public keys of a torch scheduler's state that some torch versions have and others do not (``OneCycleLR``
kept its ``anneal_func`` up to torch 2.1; later ones load such a state)."""


def _foreign_state(scheduler: Any, state: Mapping[str, Any]) -> str:
    """Why ``state`` is another scheduler's than torch's ``scheduler`` (``""``: it may be its own).

    Its own state holds its constructor's arguments and no public attribute it lacks; keys torch
    keeps private (``_step_count``) or drops between versions (``verbose``) say nothing. Only torch's
    own classes are read so (a subclass or third-party scheduler may save other keys), and any
    scheduler is told a state of this package's.
    """
    specs = saved_specs(state)
    if specs is not None:
        return f"the checkpoint's is lightning_lrsched's {_specs(list(specs))}"
    if not type(scheduler).__module__.startswith("torch."):
        return ""  # a scheduler of its own may save what it likes
    missing = [arg for arg in torch_arguments(scheduler) if arg not in state]
    own = vars(scheduler)
    extra = [k for k in state if not k.startswith("_") and k not in own and k not in VERSION_KEYS]
    if not missing and not extra:
        return ""
    parts = [f"its state lacks {', '.join(missing)}"] if missing else []
    parts += [f"has {', '.join(extra)}"] if extra else []
    return " and ".join(parts)


def _specs(specs: list[Any]) -> str:
    return str(specs[0]) if len(specs) == 1 else str(list(specs))


def _run_length_changed(
    config: Any, state: Mapping[str, Any], before: RunPlan | None, now: RunPlan, step: int
) -> list[Finding]:
    """Lanes whose resolved schedule differs between the checkpoint's run length and this one's.

    The checkpoint's run is the one its scheduler was resolved against (its state's ``run``), or
    for older checkpoints ScheduleCheck's saved plan (``before``); with neither, nothing is said.
    """
    scheduler, out = config.scheduler, []
    position = int(state.get("last_epoch", 0))
    saved = saved_run(state)
    for s, lane in zip(subjects(config, now), scheduler.lanes, strict=True):
        if saved is not None:
            args = saved
        elif before is not None:
            args = before.build_args(lane.schedule.interval)
        else:
            continue
        old_stride = (args["steps_per_epoch"] or 1) if lane.stride > 1 else 1
        try:
            schedule = cast(Schedule, lane.schedule)
            old = schedule.resolve(
                args["total_steps"], args["steps_per_epoch"], base_lr(scheduler.optimizer), len(lane.groups)
            )
        except (InvalidType, InvalidValue):
            continue  # the checkpoint's run could not resolve it either: nothing to compare
        lr_old = float(_planned_lr(old, scheduler.optimizer, lane.groups[0])(np.array([position // old_stride]))[0])
        lr_new = float(s.lr(np.array([position // lane.stride]))[0])  # type: ignore[misc]
        if (old.length, old.warmup, lr_old) == (lane.curve.length, lane.curve.warmup, lr_new):
            continue
        arg = needs_run_length(lane.schedule) or needs_epoch_length(lane.schedule)
        fix = f", or give `{arg}` in steps" if arg else ""
        out.append(
            Finding(
                "run-length",
                s.label,
                f"the run length changed: the checkpoint's run was {_length(args, lane.schedule.interval)}, this one "
                f"is {_length(now.build_args(lane.schedule.interval), lane.schedule.interval)}, and "
                f"{lane.schedule.name} is resolved against the run, so at the resume step {step} the LR goes from "
                f"{lr_old:.3g} (the checkpoint's schedule) to {lr_new:.3g}. Resume with the checkpoint's "
                f"max_epochs/max_steps to finish its schedule{fix}.",
            )
        )
    return out


def _length(args: Mapping[str, int | None], interval: str) -> str:
    """A run as ``Schedule.build``'s ``total_steps`` and ``steps_per_epoch`` give it, in words."""
    total, per_epoch = args["total_steps"], args["steps_per_epoch"]
    if total is None:
        return "of unknown length"
    if per_epoch is None:  # an epoch is one scheduler step: total counts the interval's units
        return f"{total} optimizer steps" if interval == "step" else f"{total} epochs"
    return f"{total} optimizer steps ({-(-total // per_epoch)} epochs of {per_epoch})"


# -- the plateau monitor -------------------------------------------------------------------------------------
def plateau_monitors(configs: list[Any]) -> list[tuple[str, str]]:
    """``(label, monitored key)`` for every metric-driven scheduler config (or ``plateau`` lane)."""
    out: list[tuple[str, str]] = []
    for config in configs:
        scheduler = config.scheduler
        if isinstance(scheduler, GroupScheduledLR):
            out.extend((_label(config), lane.monitor) for lane in scheduler.lanes if lane.monitor)
        elif isinstance(scheduler, ReduceLROnPlateau) and config.monitor:
            out.append((_label(config), config.monitor))
    return out


def unlogged_monitors(monitors: list[tuple[str, str]], logged: Mapping[str, Any], when: str) -> list[Finding]:
    keys = sorted(logged)
    out = []
    for label, key in monitors:
        if key in logged:
            continue
        close = difflib.get_close_matches(key, keys, n=1)
        fix = f"set monitor={close[0]!r}" if close else "set monitor= to one of the logged keys"
        # `when` says what should have logged it: the first validation run, or the whole training.
        out.append(
            Finding(
                "monitor",
                label,
                f"it reduces the LR when {key!r} plateaus, but {when} did not log {key!r} (logged: "
                f"{', '.join(keys) or 'nothing'}). Log it with self.log({key!r}, ...) in validation_step, or {fix}.",
            )
        )
    return out
