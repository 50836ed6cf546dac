"""The run a schedule is resolved against: how many optimizer steps, how they fall into epochs.

:class:`RunPlan` is the one model of a training run here. The Lightning layer reads it from a
``Trainer`` (:func:`lightning_lrsched.lightning.plan_from_trainer`); here it is a plain value: it gives
a schedule what it resolves its durations against (:meth:`RunPlan.build_args`), and lays out where
a scheduler stepped at an ``interval`` and ``frequency`` is at every optimizer step (what
``ScheduleCheck`` checks).

:func:`needs_run_length` and :func:`needs_epoch_length` say, from the catalog metadata, whether a
schedule can be resolved at all when the run (or epoch) length is unknown, e.g. with an iterable
dataset without ``__len__``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from lightning_lrsched.schedules.curve import CATALOG
from lightning_lrsched.schedules.duration import Duration, Interval, parse_duration


@dataclass(frozen=True)
class RunPlan:
    """How a run's optimizer steps fall into epochs, and where it starts.

    Attributes:
        total_steps: optimizer steps in the whole run (``None``: unknown or unbounded).
        batches_per_epoch: training batches per epoch (``None``: unknown, e.g. an iterable dataset).
        accumulate: gradient accumulation (batches per optimizer step).
        global_step: optimizer steps already done (a resumed run starts there).
        epoch: the epoch the run starts in.
        max_epochs: the Trainer's epoch limit (``None``: none).
        max_steps: the Trainer's step limit (``None``: none).

    Example:
        >>> plan = RunPlan(total_steps=30, batches_per_epoch=10, accumulate=2)
        >>> plan.steps_per_epoch, plan.epochs
        (5, 6)
        >>> plan.build_args("epoch")
        {'total_steps': 30, 'steps_per_epoch': 5}
    """

    total_steps: int | None
    batches_per_epoch: int | None
    accumulate: int = 1
    global_step: int = 0
    epoch: int = 0
    max_epochs: int | None = None
    max_steps: int | None = None

    @property
    def steps_per_epoch(self) -> int | None:
        """Optimizer steps per epoch (``None``: unknown); a partial accumulation at an epoch's end steps too."""
        if self.batches_per_epoch is None:
            return None
        return max(1, math.ceil(self.batches_per_epoch / self.accumulate))

    @property
    def epochs(self) -> int | None:
        """Epochs in the run (a partial last one counts), or ``None`` when unknown."""
        spe = self.steps_per_epoch
        if spe is None:
            # Epochs of unknown length still end the run exactly at max_epochs when no step limit cuts in.
            return self.max_epochs if self.max_steps is None else None
        if self.total_steps is None:
            return None
        return math.ceil(self.total_steps / spe)

    def build_args(self, interval: Interval) -> dict[str, int | None]:
        """``total_steps`` and ``steps_per_epoch`` for ``Schedule.build`` of a schedule of ``interval``.

        An epoch schedule whose epochs have unknown length still knows the run in epochs: it gets
        that count as ``total_steps`` with an epoch of one step.
        """
        spe = self.steps_per_epoch
        if interval == "epoch" and spe is None:
            return {"total_steps": self.epochs, "steps_per_epoch": None}
        return {"total_steps": self.total_steps, "steps_per_epoch": spe}

    def length_hint(self) -> str:
        """What would make the run length known, for an error message."""
        if self.batches_per_epoch is None:
            return (
                "the training data has no length, so only a step limit bounds the run: "
                "set Trainer(max_steps=...) and leave max_epochs unset (or -1)"
            )
        return "set Trainer(max_epochs=...) or Trainer(max_steps=...)"

    def describe(self) -> str:
        spe, epochs = self.steps_per_epoch, self.epochs
        if self.total_steps is None:
            text = f"a run of {epochs} epoch(s) of unknown length" if epochs else "a run of unknown length"
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
        if spe is None or self.batches_per_epoch is None:  # the one is known when the other is
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
        """How many scheduler positions the run's optimizer steps use (``None``: unknown)."""
        if interval == "epoch" and self.steps_per_epoch is None:
            return None if not self.epochs else (self.epochs - 1) // frequency + 1
        if self.total_steps is None or self.total_steps < 1:
            return None
        return self.position(self.total_steps - 1, interval, frequency) + 1

    def scheduler_steps(self, interval: str, frequency: int) -> int | None:
        """How many times Lightning calls ``scheduler.step()`` in the run (``None``: unknown)."""
        if interval == "epoch":
            # Only completed epochs step an epoch scheduler.
            spe, epochs = self.steps_per_epoch, self.epochs
            if spe is None:
                return None if epochs is None else epochs // frequency
            return None if self.total_steps is None else (self.total_steps // spe) // frequency
        if self.total_steps is None:
            return None
        return self.position(self.total_steps, interval, frequency)


def durations(schedule: Any, prefix: str = "") -> Iterator[tuple[str, Duration]]:
    """``(argument, duration)`` for every duration a schedule was given, its generic warmup included.

    ``schedule`` is a :class:`~lightning_lrsched.schedules.Schedule` (anything with ``name``,
    ``params``, ``warmup`` and ``parts``); list arguments (``milestones``) give one pair per element,
    and a composite's parts give theirs under ``schedules[i].``.

    Example:
        >>> from lightning_lrsched.schedules import get_schedule
        >>> s = get_schedule("join", schedules=[{"name": "warmup_constant", "warmup": 10}, "cosine"], boundaries=["5%"])
        >>> [(arg, str(d)) for arg, d in durations(s)]
        [('boundaries', '5%'), ('schedules[0].warmup', '10')]
    """
    if getattr(schedule, "warmup", None) is not None:
        yield f"{prefix}warmup", schedule.warmup
    for arg in CATALOG[schedule.name].durations:
        value = schedule.params.get(arg)
        for item in value if isinstance(value, (list, tuple)) else [value]:
            if item is not None:
                yield f"{prefix}{arg}", parse_duration(arg, item)
    for i, part in enumerate(getattr(schedule, "parts", ())):
        yield from durations(part, f"{prefix}schedules[{i}].")


def needs_run_length(schedule: Any) -> str | None:
    """The argument that makes ``schedule`` depend on the run length, or ``None`` if it never does.

    A share of the run (``"25%"``) always does; so does an ``end_arg`` left to default to the run
    (``cosine`` without ``T_max``, ``warmup_cosine`` without ``total``, ``onecycle`` without
    ``total_steps``). Such a schedule cannot be built for a run of unknown length: set that
    argument, or a run length. Inside a ``join`` only the last part reaches the end of the run (the
    others' defaults cover their own span); every part of a ``chain`` spans the whole run.

    Example:
        >>> from lightning_lrsched.schedules import get_schedule
        >>> needs_run_length(get_schedule("cosine")), needs_run_length(get_schedule("warmup_constant", warmup=10))
        ('T_max', None)
        >>> needs_run_length(get_schedule("warmup_cosine", warmup="5%", total=100))
        'warmup'
        >>> needs_run_length(get_schedule("join", schedules=["cosine", "cosine"], boundaries=[10]))
        'schedules[1].T_max'
    """
    for arg, duration in durations(schedule):
        if duration.unit == "%":
            return arg
    return _end_follows_run(schedule, "")


def _end_follows_run(schedule: Any, prefix: str) -> str | None:
    entry = CATALOG[schedule.name]
    parts = list(getattr(schedule, "parts", ()))
    if entry.parts == "sequence":
        parts = [(len(parts) - 1, parts[-1])] if parts else []
    else:
        parts = list(enumerate(parts))
    for i, part in parts:
        arg = _end_follows_run(part, f"{prefix}schedules[{i}].")
        if arg is not None:
            return arg
    if entry.end_defaults_to_run() and schedule.params.get(entry.end_arg) is None:
        return f"{prefix}{entry.end_arg}"
    return None


def needs_epoch_length(schedule: Any) -> str | None:
    """The duration argument that needs the epoch length in steps, or ``None``.

    Steps in an epoch schedule (``"500st"``) and epochs in a step schedule (``"2ep"``) do. A share of
    the run needs only the run length in the schedule's own unit (:meth:`RunPlan.build_args`).

    Example:
        >>> from lightning_lrsched.schedules import get_schedule
        >>> needs_epoch_length(get_schedule("warmup_cosine", warmup="1ep", total=100))
        'warmup'
        >>> needs_epoch_length(get_schedule("step", step_size="2ep")) is None
        True
    """
    foreign = "ep" if schedule.interval == "step" else "st"
    for arg, duration in durations(schedule):
        if duration.unit == foreign:
            return arg
    return None
