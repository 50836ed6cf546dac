"""`ScheduleCheck`: find LR-schedule misconfigurations before they cost a training run.

At the start of training it lays out the run (epochs, optimizer steps per epoch, max_steps,
gradient accumulation, each scheduler's interval and frequency, the position a resumed run
starts from), evaluates each catalog schedule's closed form over the whole run in one vectorised
pass, and reports every problem in one message. The plateau monitor is checked after the first
validation run, when it must have been logged.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any

import lightning.pytorch as pl
import numpy as np
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities.exceptions import MisconfigurationException
from lightning.pytorch.utilities.rank_zero import rank_zero_warn
from torch.optim.lr_scheduler import (
    ConstantLR,
    CosineAnnealingLR,
    CosineAnnealingWarmRestarts,
    CyclicLR,
    LinearLR,
    MultiStepLR,
    OneCycleLR,
    PolynomialLR,
    ReduceLROnPlateau,
    StepLR,
)

from lightning_lrsched.errors import InvalidType
from lightning_lrsched.schedules import GroupScheduledLR, Lane, ScheduledLR
from lightning_lrsched.schedules.curve import CATALOG, combine

# Schedules whose shape is meant to end with the run (decay to a final LR); the argument that sets it.
END_ALIGNED = {
    "cosine": "T_max",
    "polynomial": "total_iters",
    "warmup_linear": "total",
    "warmup_cosine": "total",
    "warmup_cosine_restarts": "total",
    "warmup_polynomial": "total",
    "wsd": "total",
}
# Epoch-style catalog schedules and their duration arguments (an int there counts interval units).
EPOCH_DURATIONS = {
    "step": ("step_size",),
    "multistep": ("milestones",),
    "cosine": ("T_max",),
    "cosine_restarts": ("T_0",),
    "polynomial": ("total_iters",),
    "linear": ("total_iters",),
    "constant": ("total_iters",),
}
# Public hyperparameters of torch schedulers that identify a configuration (never their progress).
TORCH_HYPERPARAMETERS = (
    "T_max",
    "T_0",
    "T_mult",
    "eta_min",
    "step_size",
    "gamma",
    "milestones",
    "total_iters",
    "start_factor",
    "end_factor",
    "power",
    "total_steps",
    "mode",
    "factor",
    "patience",
    "threshold",
    "threshold_mode",
    "cooldown",
    "min_lrs",
    "eps",
)
# A report needs no more positions than this; longer stretches are sampled (bounded memory).
MAX_SIMULATED = 1_000_000


class ScheduleWarning(UserWarning):
    """The warning :class:`ScheduleCheck` gives (``strict=False``)."""


@dataclass(frozen=True)
class Finding:
    """One problem: a short ``code`` (for filtering), the scheduler it concerns, and the explanation."""

    code: str
    scheduler: str
    message: str

    def __str__(self) -> str:
        return f"{self.scheduler}: {self.message}"


@dataclass(frozen=True)
class RunPlan:
    """How a run's optimizer steps fall into epochs, and where it starts.

    Attributes:
        total_steps: optimizer steps in the whole run (``None``: unbounded).
        batches_per_epoch: training batches per epoch (``None``: unknown, e.g. an iterable dataset).
        accumulate: gradient accumulation (batches per optimizer step).
        global_step: optimizer steps already done (a resumed run starts there).
        epoch: the epoch the run starts in.
    """

    total_steps: int | None
    batches_per_epoch: int | None
    accumulate: int = 1
    global_step: int = 0
    epoch: int = 0

    @classmethod
    def from_trainer(cls, trainer: pl.Trainer) -> RunPlan:
        total = trainer.estimated_stepping_batches
        batches = trainer.num_training_batches
        return cls(
            total_steps=int(total) if math.isfinite(total) else None,
            batches_per_epoch=int(batches) if math.isfinite(batches) and batches > 0 else None,
            accumulate=int(trainer.accumulate_grad_batches),
            global_step=int(trainer.global_step),
            epoch=int(trainer.current_epoch),
        )

    @property
    def steps_per_epoch(self) -> int | None:
        if self.batches_per_epoch is None:
            return None
        return max(1, math.ceil(self.batches_per_epoch / self.accumulate))

    @property
    def epochs(self) -> int | None:
        spe = self.steps_per_epoch
        if self.total_steps is None or spe is None:
            return None
        return math.ceil(self.total_steps / spe)

    def describe(self) -> str:
        spe, epochs = self.steps_per_epoch, self.epochs
        if self.total_steps is None:
            text = "an unbounded run"
        elif epochs is None:
            text = f"{self.total_steps} optimizer steps"
        else:
            text = f"{self.total_steps} optimizer steps = {epochs} epoch(s) of up to {spe}"
        if self.global_step:
            text += f", resumed at step {self.global_step} (epoch {self.epoch})"
        return text

    # -- where a scheduler is at each optimizer step ----------------------------------------------
    def _step_pattern(self, frequency: int) -> tuple[np.ndarray, int] | None:
        """Per epoch: scheduler steps before each optimizer step, and the count per epoch.

        Lightning steps a ``"step"`` scheduler after an optimizer step whose batch index ``b`` (in
        its epoch) has ``(b + 1) % frequency == 0``.
        """
        spe = self.steps_per_epoch
        if spe is None:
            return None
        j = np.arange(spe, dtype=np.int64)
        last_batch = np.minimum((j + 1) * self.accumulate, self.batches_per_epoch)
        steps = (last_batch % frequency) == 0
        before = np.concatenate(([0], np.cumsum(steps)[:-1]))
        return before, int(steps.sum())

    def position(self, k: int, interval: str, frequency: int) -> int:
        """The scheduler position (its ``last_epoch``) that optimizer step ``k`` uses."""
        if interval == "epoch":
            spe = self.steps_per_epoch or 1
            return (k // spe) // frequency
        pattern = self._step_pattern(frequency)
        if pattern is None:
            period = frequency // math.gcd(self.accumulate, frequency)
            return k // period
        before, per_epoch = pattern
        spe = len(before)
        return (k // spe) * per_epoch + int(before[k % spe])

    def positions(self, interval: str, frequency: int) -> int | None:
        """How many scheduler positions the run's optimizer steps use (``None``: unbounded)."""
        if self.total_steps is None or self.total_steps < 1:
            return None
        if interval == "epoch" and self.steps_per_epoch is None:
            return None  # an epoch of unknown length: nothing to count in
        return self.position(self.total_steps - 1, interval, frequency) + 1

    def scheduler_steps(self, interval: str, frequency: int) -> int | None:
        """How many times Lightning calls ``scheduler.step()`` in the run (``None``: unknown)."""
        if self.total_steps is None:
            return None
        if interval == "epoch":
            spe = self.steps_per_epoch
            # Only completed epochs step an epoch scheduler.
            return None if spe is None else (self.total_steps // spe) // frequency
        return self.position(self.total_steps, interval, frequency)


def check_schedulers(configs: list[Any], plan: RunPlan) -> list[Finding]:
    """Every problem with the scheduler configs for the run ``plan`` describes.

    ``configs`` are Lightning scheduler configs (``scheduler``, ``interval``, ``frequency``,
    ``name``). Catalog schedules (:class:`ScheduledLR`, and each lane of a
    :class:`GroupScheduledLR`) are checked on their closed form; torch's own schedulers on their
    public arguments.

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
        scheduler = config.scheduler
        if isinstance(scheduler, GroupScheduledLR):
            for i, lane in enumerate(scheduler.lanes):
                label = _label(config)
                if len(scheduler.lanes) > 1:
                    label += f" lane {i} ({lane.schedule.name}, param groups {list(lane.groups)})"
                findings.extend(_check_lane(label, scheduler, lane, config, plan))
        else:
            findings.extend(_check_torch(config, plan))
    return findings


def _label(config: Any) -> str:
    scheduler = config.scheduler
    if isinstance(scheduler, GroupScheduledLR):
        what = "+".join(lane.schedule.name for lane in scheduler.lanes)
    else:
        what = type(scheduler).__name__
    name = config.name or f"lr-{type(scheduler.optimizer).__name__}"
    return f"{name} ({what}, interval={config.interval!r})"


def _unit(interval: str) -> str:
    return f"{interval}s"


def _check_lane(label: str, scheduler: GroupScheduledLR, lane: Lane, config: Any, plan: RunPlan) -> list[Finding]:
    """Check one schedule of a catalog scheduler, in its own time unit.

    A lane's time is the scheduler's step divided by ``lane.stride`` (an epoch schedule stepped
    every optimizer step has ``stride`` = steps per epoch), so it runs in ``schedule.interval`` units.
    """
    schedule, curve, stride = lane.schedule, lane.curve, lane.stride
    name, frequency = schedule.name, config.frequency
    interval = schedule.interval
    expected = "step" if stride > 1 else schedule.interval
    out: list[Finding] = []
    if config.interval != expected:
        out.append(
            Finding(
                "interval",
                label,
                f"the schedule was built for interval={schedule.interval!r} (its durations count "
                f"{_unit(schedule.interval)}) but Lightning steps it every {config.interval}, so it runs on the wrong "
                f"clock. Build the config with schedule.lightning_config(optimizer, trainer), or set "
                f"'interval': {expected!r}.",
            )
        )
        return out
    steps = plan.positions(config.interval, frequency)
    used = None if steps is None else (steps - 1) // stride + 1
    native = CATALOG[name].interval
    if native == "step" and interval == "epoch":
        changes = f" only {used} times" if used is not None else " only once per epoch"
        out.append(
            Finding(
                "step-schedule-per-epoch",
                label,
                f"{name} is a per-step schedule, but here it advances once per epoch, so the LR changes{changes} "
                f"in this run. Use interval='step' (the default of get_schedule({name!r}, ...)).",
            )
        )
    if native == "epoch" and interval == "step":
        finding = _epoch_like_durations(label, name, schedule.params, plan)
        if finding is not None:
            out.append(finding)
            return out
    if used is None:
        return out
    unit = _unit(interval)
    length = curve.length
    if curve.warmup and curve.warmup >= used:
        out.append(
            Finding(
                "warmup",
                label,
                f"the warmup lasts {curve.warmup} {unit} but the run has only {used}: the LR never reaches its "
                "peak. Shorten the warmup (e.g. warmup='5%') or train longer.",
            )
        )
        return out
    if length is None:
        return out
    start = plan.position(plan.global_step, config.interval, frequency) // stride
    if name == "onecycle" and length != used:
        last = _lr_at(scheduler, lane, used - 1)
        if length < used:
            detail = f"the last {used - length} {unit} stay at its final LR {last:.3g}"
        else:
            detail = (
                f"the run ends at {used / length:.0%} of the cycle (LR {last:.3g} at the last step), before the LR "
                "has annealed"
            )
        out.append(
            Finding(
                "onecycle-total-steps",
                label,
                f"total_steps={length} but the run makes {used} scheduler steps: {detail}. Leave total_steps unset "
                f"(it defaults to the run) or set total_steps={used}.",
            )
        )
        return out
    tolerance = max(1, used // 100)
    if name in END_ALIGNED and used - length > tolerance:
        tail = _describe_tail(_simulate(scheduler, lane, max(start, length), used))
        arg = END_ALIGNED[name]
        out.append(
            Finding(
                "ends-early",
                label,
                f"{name} ends after {length} {unit} but the run lasts {used}; {tail}. Leave `{arg}` unset "
                f"(it defaults to the run) or set {arg}={used}.",
            )
        )
    elif name in END_ALIGNED and used < 0.9 * length:
        at_end = f" (LR {_lr_at(scheduler, lane, used - 1):.3g} at the last step)"
        arg = END_ALIGNED[name]
        out.append(
            Finding(
                "ends-late",
                label,
                f"{name} lasts {length} {unit} but the run ends after {used}, at {used / length:.0%} of the "
                f"schedule{at_end}, before the LR has decayed. Leave `{arg}` unset (it defaults to the run) or set "
                f"{arg}={used}.",
            )
        )
    elif name == "multistep" and length >= used:
        out.append(
            Finding(
                "ends-late",
                label,
                f"the last milestone ({length}) is at or after the run's end ({used} {unit}): the LR never takes "
                "that step. Use milestones inside the run (e.g. as a share of it: '75%').",
            )
        )
    elif name in ("linear", "constant") and length > used:
        out.append(
            Finding(
                "ends-late",
                label,
                f"total_iters={length} but the run has only {used} {unit}: the LR never reaches its final factor. "
                f"Use total_iters < {used}.",
            )
        )
    return out


def _epoch_like_durations(label: str, name: str, params: dict[str, Any], plan: RunPlan) -> Finding | None:
    """An epoch-style schedule stepped per optimizer step whose plain-int durations fit in the epoch count."""
    epochs, spe = plan.epochs, plan.steps_per_epoch
    if epochs is None or spe is None or spe < 2:
        return None
    for arg in EPOCH_DURATIONS.get(name, ()):
        value = params.get(arg)
        values = value if isinstance(value, (list, tuple)) else [value]
        ints = [int(v) for v in values if _plain_int(v)]
        if ints and max(ints) <= epochs:
            return Finding(
                "epoch-durations-on-steps",
                label,
                f"{name} advances every optimizer step, but {arg}={value!r} looks like a number of epochs (the run "
                f"has {epochs} epochs of {spe} steps); with interval='step' it counts steps. Write it in epochs "
                f"(e.g. {arg}='{max(ints)}ep') or use interval='epoch'.",
            )
    return None


def _plain_int(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, str) and value.strip().isdigit())


def _simulate(scheduler: GroupScheduledLR, lane: Lane, start: int, stop: int) -> np.ndarray | None:
    """The planned LR of the lane's first param group at lane times ``start .. stop-1``, in one pass.

    Longer stretches are sampled at :data:`MAX_SIMULATED` evenly spaced times (first and last
    included): enough to tell what the LR does there, in bounded memory.
    """
    if stop <= start:
        return None
    if stop - start > MAX_SIMULATED:
        t = np.linspace(start, stop - 1, MAX_SIMULATED).astype(np.int64)
    else:
        t = np.arange(start, stop, dtype=np.int64)
    w = lane.curve.weights(t)
    g = lane.groups[0]
    return combine(w.peak, 0.0 if w.floor is None else w.floor, scheduler.peaks[g], scheduler.floors[g])


def _lr_at(scheduler: GroupScheduledLR, lane: Lane, t: int) -> float:
    """The planned LR of the lane's first param group at lane time ``t``."""
    return float(_simulate(scheduler, lane, t, t + 1)[0])  # type: ignore[index]


def _describe_tail(lrs: np.ndarray | None) -> str:
    if lrs is None or not len(lrs):
        return "the rest of the run is past its end"
    low, high, first = float(lrs.min()), float(lrs.max()), float(lrs[0])
    if high - low <= 1e-12 * max(abs(high), 1e-30):
        return f"past its end the LR stays at {first:.3g}" + (" (nothing is learned)" if first == 0 else "")
    if high > first:
        return f"past its end the LR rises again, up to {high:.3g}"
    return f"past its end the LR keeps changing, between {low:.3g} and {high:.3g}"


def _check_torch(config: Any, plan: RunPlan) -> list[Finding]:
    scheduler, interval, frequency = config.scheduler, config.interval, config.frequency
    label = _label(config)
    cls = type(scheduler).__name__
    out: list[Finding] = []
    if isinstance(scheduler, (OneCycleLR, CyclicLR)) and interval == "epoch":
        out.append(
            Finding(
                "step-schedule-per-epoch",
                label,
                f"{cls} is a per-step schedule, but Lightning steps it once per epoch here (its default interval). "
                "Return it as {'scheduler': ..., 'interval': 'step'}.",
            )
        )
    durations = {
        StepLR: ("step_size",),
        MultiStepLR: ("milestones",),
        CosineAnnealingLR: ("T_max",),
        CosineAnnealingWarmRestarts: ("T_0",),
        PolynomialLR: ("total_iters",),
        LinearLR: ("total_iters",),
        ConstantLR: ("total_iters",),
    }
    epochs, spe = plan.epochs, plan.steps_per_epoch
    if interval == "step" and epochs is not None and spe is not None and spe >= 2:
        for kind, args in durations.items():
            if not isinstance(scheduler, kind):
                continue
            for arg in args:
                value = getattr(scheduler, arg)
                biggest = max(value) if arg == "milestones" else value
                if isinstance(biggest, int) and 0 < biggest <= epochs:
                    out.append(
                        Finding(
                            "epoch-durations-on-steps",
                            label,
                            f"{arg}={biggest} looks like a number of epochs (the run has {epochs} epochs of {spe} "
                            f"steps), but with interval='step' {cls} counts optimizer steps. Use interval='epoch', or "
                            f"give {arg} in steps ({biggest} epochs = {biggest * spe} steps).",
                        )
                    )
                    return out
    used = plan.positions(interval, frequency)
    if used is None:
        return out
    unit = _unit(interval)
    tolerance = max(1, used // 100)
    if isinstance(scheduler, OneCycleLR):
        total, calls = scheduler.total_steps, plan.scheduler_steps(interval, frequency)
        if calls is not None and total < calls:
            out.append(
                Finding(
                    "onecycle-total-steps",
                    label,
                    f"total_steps={total} but Lightning will call step() {calls} times: torch raises ValueError at "
                    f"call {total + 1}. Set total_steps=trainer.estimated_stepping_batches ({plan.total_steps}).",
                )
            )
        elif total != used:
            out.append(
                Finding(
                    "onecycle-total-steps",
                    label,
                    f"total_steps={total} but the run makes {used} scheduler steps: it ends at {used / total:.0%} of "
                    "the cycle, before the LR has annealed. Set total_steps=trainer.estimated_stepping_batches "
                    f"({plan.total_steps}).",
                )
            )
    elif isinstance(scheduler, (CosineAnnealingLR, PolynomialLR)):
        arg = "T_max" if isinstance(scheduler, CosineAnnealingLR) else "total_iters"
        length = getattr(scheduler, arg)
        after = "rises again (the cosine is periodic)" if arg == "T_max" else "stays at 0"
        if used - length > tolerance:
            out.append(
                Finding(
                    "ends-early",
                    label,
                    f"{arg}={length} but the run lasts {used} {unit}: past step {length} of the schedule the LR "
                    f"{after}. Set {arg}={used}.",
                )
            )
        elif used < 0.9 * length:
            out.append(
                Finding(
                    "ends-late",
                    label,
                    f"{arg}={length} but the run ends after {used} {unit}, at {used / length:.0%} of the schedule, "
                    f"before the LR has decayed. Set {arg}={used}.",
                )
            )
    elif isinstance(scheduler, MultiStepLR):
        late = sorted(m for m in scheduler.milestones if m >= used)
        if late:
            out.append(
                Finding(
                    "ends-late",
                    label,
                    f"milestones {late} are at or after the run's end ({used} {unit}): the LR never takes those "
                    "steps. Use milestones inside the run.",
                )
            )
    elif isinstance(scheduler, (LinearLR, ConstantLR)) and scheduler.total_iters > used:
        out.append(
            Finding(
                "ends-late",
                label,
                f"total_iters={scheduler.total_iters} but the run has only {used} {unit}: the LR never reaches its "
                f"final factor. Use total_iters < {used}.",
            )
        )
    return out


def plateau_monitors(configs: list[Any]) -> list[tuple[str, str]]:
    """``(label, monitored key)`` for every metric-driven scheduler config (or ``plateau`` lane)."""
    out = []
    for config in configs:
        scheduler = config.scheduler
        if isinstance(scheduler, GroupScheduledLR):
            out.extend((_label(config), lane.metric) for lane in scheduler.lanes if lane.metric)
        elif isinstance(scheduler, ReduceLROnPlateau) and config.monitor:
            out.append((_label(config), config.monitor))
    return out


def fingerprint(config: Any) -> dict[str, Any]:
    """The identity of a scheduler config: a readable ``spec`` and its short hash."""
    scheduler = config.scheduler
    if isinstance(scheduler, ScheduledLR):
        schedule: Any = scheduler.schedule.to_dict()
        digest = scheduler.schedule.fingerprint()
    elif isinstance(scheduler, GroupScheduledLR):
        schedule = [{**lane.schedule.to_dict(), "param_groups": list(lane.groups)} for lane in scheduler.lanes]
        digest = _hash([[lane.schedule.fingerprint(), list(lane.groups), lane.monitor] for lane in scheduler.lanes])
    else:
        schedule = {"class": type(scheduler).__name__}
        for arg in TORCH_HYPERPARAMETERS:
            if hasattr(scheduler, arg):
                value = getattr(scheduler, arg)
                schedule[arg] = sorted(value) if arg == "milestones" else value
        digest = _hash(schedule)
    spec = {"schedule": schedule, "interval": config.interval, "frequency": config.frequency}
    return {
        "name": _label(config),
        "spec": spec,
        "fingerprint": _hash({"schedule": digest, "interval": config.interval, "frequency": config.frequency}),
    }


def _hash(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]


class ScheduleCheck(Callback):
    """Check the LR schedules against the run at the start of training, and report what is off.

    Reports, in one message (a :class:`ScheduleWarning`, or with ``strict=True`` a
    ``MisconfigurationException``): a schedule that ends before the run (past its end the LR sits
    at its floor or, for a cosine, rises again) or long after it (the LR never decays); a warmup
    as long as the run; a per-step schedule (onecycle, cyclic, the warmup family, torch's
    OneCycleLR and CyclicLR) stepped per epoch; an epoch-style schedule stepped per optimizer step
    with durations that look like epochs; a OneCycle ``total_steps`` other than the run's; a
    catalog schedule built for one interval and stepped on the other; and, on resume, a scheduler
    config that differs from the checkpoint's. After the first validation run it reports, in a
    second message, a plateau monitor that was not logged. Nothing found, nothing said.

    The run is laid out from the trainer (``estimated_stepping_batches``, ``num_training_batches``,
    ``accumulate_grad_batches``, each config's ``interval`` and ``frequency``, ``global_step`` on
    resume) and catalog schedules are evaluated over it in one vectorised pass: a run of 10^6 steps
    takes milliseconds.

    Args:
        strict: raise instead of warning.

    Attributes:
        findings: every :class:`Finding` reported so far.

    Example:
        >>> import lightning.pytorch as pl
        >>> trainer = pl.Trainer(callbacks=[ScheduleCheck(strict=True)], logger=False)
    """

    def __init__(self, strict: bool = False) -> None:
        if not isinstance(strict, bool):
            raise InvalidType(f"`strict` must be True or False: got strict={strict!r}")
        self.strict = strict
        self.findings: list[Finding] = []
        self.fingerprints: list[dict[str, Any]] = []
        self._checkpoint_fingerprints: list[dict[str, Any]] | None = None
        self._monitors: list[tuple[str, str]] = []

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        configs = trainer.lr_scheduler_configs
        plan = RunPlan.from_trainer(trainer)
        findings = check_schedulers(configs, plan)
        self.fingerprints = [fingerprint(c) for c in configs]
        before, self._checkpoint_fingerprints = self._checkpoint_fingerprints, None
        if before is not None:
            findings.extend(_compare(before, self.fingerprints, trainer.global_step))
        self._monitors = plateau_monitors(configs)
        self._report(findings, f"the LR schedule of this run ({plan.describe()})")

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or trainer.state.fn != "fit" or not self._monitors:
            return
        monitors, self._monitors = self._monitors, []
        logged = sorted(trainer.callback_metrics)
        findings = [
            Finding(
                "monitor",
                label,
                f"it reduces the LR when {key!r} plateaus, but the first validation run did not log {key!r} "
                f"(logged: {', '.join(logged) or 'nothing'}). Log it with self.log({key!r}, ...) in "
                "validation_step, or set monitor= to one of the logged keys.",
            )
            for label, key in monitors
            if key not in trainer.callback_metrics
        ]
        self._report(findings, "the plateau monitor")

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        monitors, self._monitors = self._monitors, []
        findings = [
            Finding(
                "monitor",
                label,
                f"it reduces the LR when {key!r} plateaus, but no validation ran and {key!r} was never logged, so "
                "the LR was never reduced. Add validation data, or monitor a training metric.",
            )
            for label, key in monitors
            if key not in trainer.callback_metrics
        ]
        self._report(findings, "the plateau monitor")

    def _report(self, findings: list[Finding], subject: str) -> None:
        if not findings:
            return
        self.findings.extend(findings)
        lines = "\n".join(f"  - {f}" for f in findings)
        message = f"ScheduleCheck: {len(findings)} problem(s) with {subject}:\n{lines}"
        if self.strict:
            raise MisconfigurationException(message)
        rank_zero_warn(message, category=ScheduleWarning)

    def state_dict(self) -> dict[str, Any]:
        return {"schedulers": [dict(f) for f in self.fingerprints]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        schedulers = state_dict.get("schedulers")
        self._checkpoint_fingerprints = None if schedulers is None else [dict(f) for f in schedulers]


def _compare(before: list[dict[str, Any]], now: list[dict[str, Any]], step: int) -> list[Finding]:
    if len(before) != len(now):
        return [
            Finding(
                "changed",
                "schedulers",
                f"the checkpoint was trained with {len(before)} scheduler(s) ({', '.join(b['name'] for b in before)}) "
                f"but this run has {len(now)}; the resumed LR will not continue the checkpoint's. Resume with the same "
                "configure_optimizers, or start a fresh run without ckpt_path.",
            )
        ]
    return [
        Finding(
            "changed",
            new["name"],
            f"the schedule differs from the checkpoint's: was {old['spec']}, now {new['spec']}. The run resumes at "
            f"step {step} on the new schedule, so the LR may jump. Resume with the same schedule, or start a fresh "
            "run without ckpt_path.",
        )
        for old, new in zip(before, now, strict=True)
        if old.get("fingerprint") != new["fingerprint"]
    ]
